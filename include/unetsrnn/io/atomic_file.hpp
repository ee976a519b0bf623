#pragma once
// Atomic file output: write everything to `<path>.tmp.<pid>` in the destination folder, flush and
// check the stream, then rename over `path`. A reader (or a crash) therefore sees either the old
// file or the complete new one, never a half-written file. Used for weights, PNG, CSV and JSON.
//
// On any failure the temporary file is removed and std::runtime_error is thrown naming the path
// and the reason, e.g. "cannot write 'out/x.weights': No space left on device". An exception thrown
// by the caller's writer callback is propagated unchanged (after the temporary file is removed),
// unless the stream had failed by then: that is a write error, reported as such.
//
// A process killed while writing leaves its `<path>.tmp.<pid>`; remove_stale_temp_files clears
// those of processes that no longer run (a run folder does so when it is opened).
//
// The temporary name is per process, so two threads of one process must not write the same path
// at the same time (they would share the temporary file).
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <ostream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "unetsrnn/core/error.hpp"

#if defined(_WIN32)
#include <process.h>
#else
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>
#endif

namespace unetsrnn {

namespace detail {

inline long current_process_id() {
#if defined(_WIN32)
  return static_cast<long>(_getpid());
#else
  return static_cast<long>(::getpid());
#endif
}

// Whether a process with this id exists (signal 0 probes without signalling; EPERM means it
// exists but belongs to someone else).
inline bool process_running(long pid) {
#if defined(_WIN32)
  (void)pid;
  return true;  // cannot tell cheaply: keep its files
#else
  if (pid <= 0) return false;
  return ::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM;
#endif
}

// The reason for the last failed stream operation; streams do not report one themselves, but the
// underlying C library leaves it in errno.
inline std::string last_os_error(int saved_errno) {
  return saved_errno != 0 ? std::string(std::strerror(saved_errno)) : std::string("I/O error");
}

// fsync through a fresh descriptor, as std::ofstream does not expose its own. Best effort: a
// failure here is not reported.
inline void sync_file_to_disk([[maybe_unused]] const std::filesystem::path& path) {
#if !defined(_WIN32)
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd >= 0) {
    (void)::fsync(fd);
    ::close(fd);
  }
#endif
}

}  // namespace detail

// OnDisk also asks the OS to put the data on disk (fsync) before the rename: a crash cannot then
// leave an empty file under the final name. It costs milliseconds per file, so writers of many
// small, re-creatable outputs (prediction PNGs) may choose Flushed.
enum class Durability { Flushed, OnDisk };

// The temporary file name used for `path` by this process.
inline std::filesystem::path atomic_temp_path(const std::filesystem::path& path) {
  std::filesystem::path temp = path;
  temp += str_cat(".tmp.", detail::current_process_id());
  return temp;
}

// Calls `write(stream)` on a binary stream opened on the temporary file, then renames it to `path`.
inline void write_file_atomic(const std::filesystem::path& path,
                              const std::function<void(std::ostream&)>& write,
                              Durability durability = Durability::OnDisk) {
  const std::filesystem::path temp = atomic_temp_path(path);
  auto fail = [&](const std::string& reason) {
    std::error_code ignored;
    std::filesystem::remove(temp, ignored);
    throw std::runtime_error(str_cat("cannot write '", path.string(), "': ", reason));
  };

  errno = 0;
  std::ofstream out(temp, std::ios::binary | std::ios::trunc);
  if (!out) fail(detail::last_os_error(errno));
  try {
    errno = 0;
    write(out);
  } catch (...) {
    const int saved_errno = errno;
    const bool stream_failed = !out;
    out.close();
    if (stream_failed) fail(detail::last_os_error(saved_errno));
    std::error_code ignored;
    std::filesystem::remove(temp, ignored);
    throw;
  }
  if (!out) fail(detail::last_os_error(errno));
  errno = 0;
  out.flush();
  if (!out) fail(detail::last_os_error(errno));
  errno = 0;
  out.close();
  if (!out) fail(detail::last_os_error(errno));

  if (durability == Durability::OnDisk) detail::sync_file_to_disk(temp);
  std::error_code ec;
  std::filesystem::rename(temp, path, ec);
  if (ec) fail(ec.message());
}

// Writes `bytes` to `path` atomically.
inline void write_file_atomic(const std::filesystem::path& path, std::string_view bytes,
                              Durability durability = Durability::OnDisk) {
  write_file_atomic(
      path,
      [bytes](std::ostream& out) {
        out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
      },
      durability);
}

// Removes the `*.tmp.<pid>` files in `dir` (not its subfolders) left by processes that no longer
// run, and returns their names. Files of running processes, this one included, are kept.
inline std::vector<std::string> remove_stale_temp_files(const std::filesystem::path& dir) {
  std::vector<std::string> removed;
  std::error_code ec;
  for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    const std::size_t mark = name.rfind(".tmp.");
    if (mark == std::string::npos || mark + 5 == name.size()) continue;
    const std::string digits = name.substr(mark + 5);
    if (digits.size() > 9 ||
        !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }))
      continue;
    const long pid = std::stol(digits);
    if (pid == detail::current_process_id() || detail::process_running(pid)) continue;
    std::error_code ignored;
    if (std::filesystem::remove(it->path(), ignored)) removed.push_back(name);
  }
  std::sort(removed.begin(), removed.end());
  return removed;
}

}  // namespace unetsrnn
