#pragma once
// What several test files share: scratch folders, file bytes, error messages, and running the
// example programs (captured stdout/stderr, exit code and peak memory) on small synthetic
// datasets. UNETSRNN_EXAMPLES_DIR overrides where the programs are (e.g. to run these tests
// against another build of them).
#include <doctest/doctest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <string>
#include <unetsrnn/data/synthetic.hpp>
#include <unetsrnn/io/image.hpp>
#include <vector>

namespace test_support {

namespace fs = std::filesystem;

inline fs::path examples_dir() {
  if (const char* dir = std::getenv("UNETSRNN_EXAMPLES_DIR")) return dir;
  return fs::path(UNETSRNN_BINARY_DIR) / "examples";
}

struct Run {
  int exit_code = -1;
  std::string out, err;
  long max_rss_kb = 0;  // peak resident memory of the program
  double seconds = 0;
};

inline std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

inline void write_bytes(const fs::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  REQUIRE_MESSAGE(out.good(), "cannot write '", p.string(), "'");
}

// A scratch folder, removed at the end of the test.
struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& tag) {
    static int counter = 0;
    path = fs::temp_directory_path() / ("unetsrnn-test-" + tag + "-" + std::to_string(getpid()) +
                                        "-" + std::to_string(counter++));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path, ignored);
  }
};

// The message of the exception fn() throws, or "no error".
template <class Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "no error";
}

inline bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// The id of a process that has ended.
inline pid_t dead_pid() {
  std::fflush(stdout);  // or the child writes the parent's buffered output again
  std::fflush(stderr);
  const pid_t pid = fork();
  if (pid == 0) _exit(0);
  waitpid(pid, nullptr, 0);
  return pid;
}

// Starts `program` with `args`; stdout and stderr go to the files. `in_child` runs in the child
// before exec (e.g. setrlimit).
inline pid_t spawn(const std::string& program, const std::vector<std::string>& args,
                   const fs::path& out, const fs::path& err,
                   const std::function<void()>& in_child = {}) {
  const fs::path exe = examples_dir() / program;
  REQUIRE_MESSAGE(fs::exists(exe), "example program not built: ", exe.string());
  std::fflush(stdout);  // or the child's freopen writes the parent's buffered output again
  std::fflush(stderr);
  const pid_t pid = fork();
  if (pid == 0) {
    std::vector<char*> argv{const_cast<char*>(exe.c_str())};
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    if (!freopen(out.c_str(), "w", stdout) || !freopen(err.c_str(), "w", stderr)) _exit(127);
    setenv("OMP_NUM_THREADS", "2", 1);
    if (in_child) in_child();
    execv(exe.c_str(), argv.data());
    _exit(127);
  }
  return pid;
}

// Waits for `pid`; its exit code (128 + signal when killed) and peak memory.
inline Run wait_for(pid_t pid) {
  int status = 0;
  rusage usage{};
  wait4(pid, &status, 0, &usage);
  Run r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.max_rss_kb = usage.ru_maxrss;
  return r;
}

inline Run run(const std::string& program, const std::vector<std::string>& args,
               const fs::path& scratch, const std::function<void()>& in_child = {}) {
  const fs::path out = scratch / (program + ".stdout"), err = scratch / (program + ".stderr");
  const auto t0 = std::chrono::steady_clock::now();
  Run r = wait_for(spawn(program, args, out, err, in_child));
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.out = slurp(out);
  r.err = slurp(err);
  fs::remove(out);
  fs::remove(err);
  return r;
}

// Files under dir (recursively), for "no partial output" checks.
inline std::vector<std::string> files_in(const fs::path& dir) {
  std::vector<std::string> out;
  if (!fs::exists(dir)) return out;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) out.push_back(fs::relative(e.path(), dir).string());
  return out;
}

// A small valid dataset: n synthetic pairs of h x w written as PNGs.
inline void make_dataset(const fs::path& dir, int n, int h = 32, int w = 32) {
  unetsrnn::write_synthetic(dir, static_cast<std::size_t>(n), h, w, 7);
}

inline void expect_failure(const Run& r, const std::string& needle) {
  INFO("stderr: ", r.err);
  CHECK(r.exit_code != 0);
  CHECK(r.err.find(needle) != std::string::npos);
}

}  // namespace test_support
