#pragma once
// Op tests that run once per CPU instruction-set path (ops/cpu/isa.hpp). A test file defines a
// table of its kernels per path, `paths[i]` with `.name` and `.runs` (this CPU runs it), in the
// order portable, avx2, avx512 (then, for the convolutions, "avx512 tiles on avx2"), and
//   #define PATH_TEST_CASE(title) UNETSRNN_PATH_TEST_CASE(Path, paths, count, title)
// Each PATH_TEST_CASE body then runs once per path, as TEST_CASE(title " [name]") with `path` in
// scope; a path this CPU lacks is registered as skipped (doctest counts it so), never run.
#include <doctest/doctest.h>

#include <string>

#define UNETSRNN_PATH_TEST_CASE(Path, paths, count, title) \
  UNETSRNN_PATH_TEST_CASE_##count(Path, paths, title, DOCTEST_ANONYMOUS(path_test_))
#define UNETSRNN_PATH_TEST_CASE_3(Path, paths, title, fn)                        \
  void fn(const Path& path);                                                     \
  TEST_CASE(title " [portable]") { fn(paths[0]); }                               \
  TEST_CASE(title " [avx2]" * doctest::skip(!paths[1].runs)) { fn(paths[1]); }   \
  TEST_CASE(title " [avx512]" * doctest::skip(!paths[2].runs)) { fn(paths[2]); } \
  void fn(const Path& path)
#define UNETSRNN_PATH_TEST_CASE_4(Path, paths, title, fn)                                      \
  void fn(const Path& path);                                                                   \
  TEST_CASE(title " [portable]") { fn(paths[0]); }                                             \
  TEST_CASE(title " [avx2]" * doctest::skip(!paths[1].runs)) { fn(paths[1]); }                 \
  TEST_CASE(title " [avx512]" * doctest::skip(!paths[2].runs)) { fn(paths[2]); }               \
  TEST_CASE(title " [avx512 tiles on avx2]" * doctest::skip(!paths[3].runs)) { fn(paths[3]); } \
  void fn(const Path& path)

// "ran: a; b; NOT RUN (this CPU lacks them): c;" for a path table.
template <class Path, int N>
std::string paths_report(const Path (&paths)[N]) {
  std::string ran, not_run;
  for (const Path& p : paths) (p.runs ? ran : not_run) += std::string(" ") + p.name + ";";
  return "ran:" + ran + " NOT RUN (this CPU lacks them):" + (not_run.empty() ? " none" : not_run);
}
