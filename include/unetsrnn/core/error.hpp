#pragma once
// Error helpers: every failure names what failed and why, so a user never has to guess.
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace unetsrnn {

template <class... Args>
std::string str_cat(Args&&... args) {
  std::ostringstream os;
  (os << ... << std::forward<Args>(args));
  return os.str();
}

// Thrown for malformed files (images, weights, datasets); carries the path in its message.
struct FormatError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

template <class... Args>
[[noreturn]] void fail_argument(Args&&... args) {
  throw std::invalid_argument(str_cat(std::forward<Args>(args)...));
}

template <class... Args>
[[noreturn]] void fail_format(Args&&... args) {
  throw FormatError(str_cat(std::forward<Args>(args)...));
}

}  // namespace unetsrnn
