#pragma once
// A small command-line parser shared by the example programs: declared options with defaults,
// --help, and clear errors (unknown option, missing or malformed value) with exit code 2.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <limits>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace cli {

struct Option {
  std::string name, value_name, help, default_value;
  bool flag = false, repeatable = false;
};

class Parser {
 public:
  Parser(std::string program, std::string summary)
      : program_(std::move(program)), summary_(std::move(summary)) {}

  Parser& option(const std::string& name, const std::string& value_name, const std::string& help,
                 const std::string& default_value = "") {
    options_.push_back({name, value_name, help, default_value, false, false});
    return *this;
  }
  Parser& repeated(const std::string& name, const std::string& value_name,
                   const std::string& help) {
    options_.push_back({name, value_name, help, "", false, true});
    return *this;
  }
  Parser& flag(const std::string& name, const std::string& help) {
    options_.push_back({name, "", help, "", true, false});
    return *this;
  }

  // Parses argv; prints help and exits 0 on --help; prints the error and exits 2 on misuse.
  void parse(int argc, char** argv) {
    for (int i = 1; i < argc; ++i) {
      std::string arg = argv[i];
      if (arg == "--help" || arg == "-h") {
        print_help();
        std::exit(0);
      }
      std::string value;
      bool has_value = false;
      if (auto eq = arg.find('='); arg.rfind("--", 0) == 0 && eq != std::string::npos) {
        value = arg.substr(eq + 1);
        arg = arg.substr(0, eq);
        has_value = true;
      }
      const Option* opt = find(arg);
      if (!opt) usage_error("unknown option '" + arg + "'");
      if (opt->flag) {
        if (has_value) usage_error("option '" + arg + "' takes no value");
        values_[opt->name].push_back("1");
        continue;
      }
      if (!has_value) {
        if (i + 1 >= argc)
          usage_error("option '" + arg + "' needs a value (" + opt->value_name + ")");
        value = argv[++i];
      }
      values_[opt->name].push_back(value);  // a repeated single-value option: the last one wins
    }
  }

  bool has(const std::string& name) const { return values_.count(name) > 0; }
  std::string get(const std::string& name) const {
    auto it = values_.find(name);
    if (it != values_.end()) return it->second.back();
    return find(name)->default_value;
  }
  std::vector<std::string> all(const std::string& name) const {
    auto it = values_.find(name);
    return it == values_.end() ? std::vector<std::string>{} : it->second;
  }
  int get_int(const std::string& name) const {
    const std::string v = get(name);
    try {
      std::size_t used = 0;
      const int out = std::stoi(v, &used);
      if (used == v.size()) return out;
    } catch (const std::exception&) {
    }
    usage_error("option '" + name + "' needs an integer, got '" + v + "'");
  }
  double get_double(const std::string& name) const {
    const std::string v = get(name);
    try {
      std::size_t used = 0;
      const double out = std::stod(v, &used);
      if (used == v.size()) return out;
    } catch (const std::exception&) {
    }
    usage_error("option '" + name + "' needs a number, got '" + v + "'");
  }

  // An integer option in [lo, hi]; anything else is a usage error naming the option.
  int get_int_in(const std::string& name, int lo, int hi = std::numeric_limits<int>::max()) const {
    const int v = get_int(name);
    if (v < lo || v > hi)
      usage_error("option '" + name + "' must be an integer " +
                  (hi == std::numeric_limits<int>::max()
                       ? ">= " + std::to_string(lo)
                       : "in " + std::to_string(lo) + ".." + std::to_string(hi)) +
                  ", got '" + get(name) + "'");
    return v;
  }
  // A finite number with lo <= v (lo < v when lo_open) and v <= hi (v < hi when hi_open).
  double get_double_in(const std::string& name, double lo, double hi, bool lo_open = false,
                       bool hi_open = false) const {
    const double v = get_double(name);
    const bool ok =
        std::isfinite(v) && (lo_open ? v > lo : v >= lo) && (hi_open ? v < hi : v <= hi);
    if (!ok) {
      std::ostringstream range;
      range << "a finite number ";
      if (std::isinf(hi))
        range << (lo_open ? "> " : ">= ") << lo;
      else
        range << "in " << (lo_open ? "(" : "[") << lo << ", " << hi << (hi_open ? ")" : "]");
      usage_error("option '" + name + "' must be " + range.str() + ", got '" + get(name) + "'");
    }
    return v;
  }

  [[noreturn]] void usage_error(const std::string& message) const {
    std::fprintf(stderr, "%s: %s (see %s --help)\n", program_.c_str(), message.c_str(),
                 program_.c_str());
    std::exit(2);
  }

  void print_help() const {
    std::printf("usage: %s [options]\n%s\n\noptions:\n", program_.c_str(), summary_.c_str());
    for (const auto& o : options_) {
      std::string left = "  " + o.name + (o.flag ? "" : " " + o.value_name);
      std::printf("%-28s %s", left.c_str(), o.help.c_str());
      if (!o.default_value.empty()) std::printf(" (default: %s)", o.default_value.c_str());
      std::printf("\n");
    }
  }

 private:
  const Option* find(const std::string& name) const {
    for (const auto& o : options_)
      if (o.name == name) return &o;
    return nullptr;
  }
  std::string program_, summary_;
  std::vector<Option> options_;
  std::map<std::string, std::vector<std::string>> values_;
};

// Runs body(); a library error becomes "program: message" on stderr and exit code 1.
template <class F>
int run_main(const char* program, F&& body) {
  try {
    return body();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: error: %s\n", program, e.what());
    return 1;
  }
}

}  // namespace cli
