#pragma once
// A run folder (train's and demo's --out, predict's --out): created on demand, written by one
// process at a time, and not left behind empty when a run fails.
//
// RunFolder::open(dir) creates `dir` (and missing parents), takes an exclusive flock on
// `dir/.unetsrnn-lock` (and writes its process id into it) and removes the temporary files that
// killed processes left there (remove_stale_temp_files). Another process opening the same folder
// fails at once: "output folder 'runs/a' is in use by process 4242 (it holds
// 'runs/a/.unetsrnn-lock'); wait for it to finish or choose another folder". Within one process a
// folder may be opened again (the Trainer inside the demo): the RunFolder objects share the lock.
//
// When the last RunFolder of a folder goes, the lock is released, the lock file removed, and the
// folders it created (the run folder, its missing parents, subfolder()s) are removed again if they
// are empty: a run that failed before writing anything leaves nothing. The lock is advisory and
// local to the machine's kernel (flock); on Windows there is no lock.
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "unetsrnn/core/error.hpp"
#include "unetsrnn/io/atomic_file.hpp"

#if !defined(_WIN32)
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#endif

namespace unetsrnn {

inline constexpr const char* kRunFolderLockName = ".unetsrnn-lock";

class RunFolder {
 public:
  static RunFolder open(const std::filesystem::path& dir) {
    namespace fs = std::filesystem;
    std::lock_guard<std::mutex> guard(registry_mutex());
    std::vector<fs::path> created = create_folders(dir);
    std::error_code ec;
    const std::string key = fs::canonical(dir, ec).string();
    if (ec)
      throw std::runtime_error(
          str_cat("output folder '", dir.string(), "' cannot be opened: ", ec.message()));
    // Shared within this process only (a forked child has a copy of the registry, not the lock).
    if (auto held = registry()[key].lock(); held && held->owner == detail::current_process_id())
      return RunFolder(held);
    auto state = std::make_shared<State>();
    state->dir = dir;
    state->created = std::move(created);
    state->lock();  // on failure, ~State removes the folders just created
    registry()[key] = state;
    remove_stale_temp_files(dir);
    return RunFolder(state);
  }

  const std::filesystem::path& path() const { return state_->dir; }

  // dir/name, created when missing (and removed again at the end if it is then empty); stale
  // temporary files in it are removed.
  std::filesystem::path subfolder(const std::string& name) {
    const std::filesystem::path sub = state_->dir / name;
    std::lock_guard<std::mutex> guard(registry_mutex());
    for (auto& p : create_folders(sub)) state_->created.push_back(std::move(p));
    remove_stale_temp_files(sub);
    return sub;
  }

 private:
  struct State {
    std::filesystem::path dir;
    std::vector<std::filesystem::path> created;  // outermost first
    int fd = -1;
    long owner = detail::current_process_id();

    void lock() {
#if !defined(_WIN32)
      const std::filesystem::path file = dir / kRunFolderLockName;
      for (int attempt = 0;; ++attempt) {
        fd = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0)
          throw std::runtime_error(str_cat("output folder '", dir.string(),
                                           "' cannot be locked: cannot open '", file.string(),
                                           "': ", std::strerror(errno)));
        if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
          const int error = errno;
          const std::string holder = read_holder();
          ::close(fd);
          fd = -1;
          if (error == EWOULDBLOCK)
            throw std::runtime_error(
                str_cat("output folder '", dir.string(), "' is in use by ",
                        holder.empty() ? std::string("another process") : "process " + holder,
                        " (it holds '", file.string(),
                        "'); wait for it to finish or choose another folder"));
          throw std::runtime_error(str_cat("output folder '", dir.string(), "' cannot be locked ('",
                                           file.string(), "'): ", std::strerror(error)));
        }
        // The previous holder removes the file when it finishes: if it did so between our open
        // and flock, we locked a file nobody else will see. Try again on the current one.
        struct stat held {
        }, now{};
        if (::fstat(fd, &held) == 0 && ::stat(file.c_str(), &now) == 0 &&
            held.st_dev == now.st_dev && held.st_ino == now.st_ino)
          break;
        ::close(fd);
        fd = -1;
        if (attempt == 100)
          throw std::runtime_error(str_cat("output folder '", dir.string(), "' cannot be locked: '",
                                           file.string(), "' keeps being replaced"));
      }
      const std::string pid = str_cat(detail::current_process_id(), "\n");
      if (::ftruncate(fd, 0) != 0 ||
          ::write(fd, pid.data(), pid.size()) != static_cast<ssize_t>(pid.size())) {
        // Not fatal: the lock holds; only the name of the holder is missing for others.
      }
#endif
    }

    std::string read_holder() const {
#if !defined(_WIN32)
      char buffer[32] = {};
      const ssize_t n = ::pread(fd, buffer, sizeof buffer - 1, 0);
      std::string text(buffer, n > 0 ? static_cast<std::size_t>(n) : 0);
      while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
      for (char c : text)
        if (c < '0' || c > '9') return {};
      return text;
#else
      return {};
#endif
    }

    ~State() {
      namespace fs = std::filesystem;
#if !defined(_WIN32)
      if (fd >= 0) {
        std::error_code ignored;
        fs::remove(dir / kRunFolderLockName, ignored);  // while still holding the lock
        ::close(fd);
      }
#endif
      for (auto it = created.rbegin(); it != created.rend(); ++it) {
        std::error_code ec;
        if (fs::is_directory(*it, ec) && fs::is_empty(*it, ec)) fs::remove(*it, ec);
      }
    }
  };

  explicit RunFolder(std::shared_ptr<State> state) : state_(std::move(state)) {}

  // Creates `dir` and its missing parents; returns those it created, outermost first.
  static std::vector<std::filesystem::path> create_folders(const std::filesystem::path& dir) {
    namespace fs = std::filesystem;
    std::vector<fs::path> missing;
    std::error_code ec;
    for (fs::path p = dir; !p.empty() && !fs::exists(p, ec); p = p.parent_path()) {
      missing.push_back(p);
      if (p == p.parent_path()) break;
    }
    fs::create_directories(dir, ec);
    if (ec || !fs::is_directory(dir))
      throw std::runtime_error(str_cat("output folder '", dir.string(), "' cannot be created: ",
                                       ec ? ec.message() : std::string("Not a directory")));
    return {missing.rbegin(), missing.rend()};
  }

  // Shared by every RunFolder of the process: canonical folder -> its lock.
  static std::map<std::string, std::weak_ptr<State>>& registry() {
    static std::map<std::string, std::weak_ptr<State>> held;
    return held;
  }
  static std::mutex& registry_mutex() {
    static std::mutex m;
    return m;
  }

  std::shared_ptr<State> state_;
};

}  // namespace unetsrnn
