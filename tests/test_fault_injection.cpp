// Fault injection: a small synthetic training is killed with SIGKILL at random moments (at least
// 10 times) and resumed each time; its final weights must equal, byte for byte, those of an
// uninterrupted run, and no temporary file, stale checkpoint or lock may be left behind.
// UNETSRNN_FAULT_SEED changes the kill times (the seed used is printed).
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "test_support.hpp"

namespace fs = std::filesystem;
using namespace test_support;

TEST_CASE("kill -9 at random points, resume each time: the same final weights, nothing stray") {
  TempDir tmp("faults");
  make_dataset(tmp.path / "d", 10);
  auto args = [&](const fs::path& out, bool resume) {
    std::vector<std::string> a{"--data",   (tmp.path / "d").string(),
                               "--out",    out.string(),
                               "--epochs", "8",
                               "--batch",  "2",
                               "--height", "32",
                               "--width",  "32",
                               "--model",  "unet2d_lw",
                               "--quiet",  "--augment"};
    if (resume) a.push_back("--resume");
    return a;
  };
  const fs::path straight = tmp.path / "straight", killed = tmp.path / "killed";
  const Run reference = run("train", args(straight, false), tmp.path);
  INFO("uninterrupted run: ", reference.err);
  REQUIRE(reference.exit_code == 0);

  const char* seed_text = std::getenv("UNETSRNN_FAULT_SEED");
  const unsigned seed = seed_text ? static_cast<unsigned>(std::stoul(seed_text)) : 20261127u;
  std::mt19937 rng(seed);
  // Kill times spread over a quarter of the uninterrupted run, so that each attempt makes some
  // progress and the kills land in start-up, training, checkpoint writes and the final report.
  std::uniform_real_distribution<double> delay(0.0, reference.seconds / 4);
  int kills = 0, attempts = 0, finished = 0;
  std::string log;
  while (kills < 12 && attempts < 60) {
    ++attempts;
    const bool resume = fs::exists(killed / "checkpoint.txt");
    const pid_t pid = spawn("train", args(killed, resume), tmp.path / "k.out", tmp.path / "k.err");
    const double wait_s = delay(rng);
    std::this_thread::sleep_for(std::chrono::duration<double>(wait_s));
    kill(pid, SIGKILL);
    const Run r = wait_for(pid);
    if (r.exit_code == 128 + SIGKILL) {
      ++kills;
      log += std::to_string(wait_s).substr(0, 5) + (resume ? "r " : "f ");
    } else {
      INFO("attempt ", attempts, " stderr: ", slurp(tmp.path / "k.err"));
      REQUIRE(r.exit_code == 0);  // it finished before the kill
      ++finished;
    }
  }
  MESSAGE("seed ", seed, ": ", kills, " kills in ", attempts, " attempts (", finished,
          " finished first); kill times in s (f fresh, r resumed): ", log);
  CHECK(kills >= 10);

  const Run last = run("train", args(killed, fs::exists(killed / "checkpoint.txt")), tmp.path);
  INFO("final run: ", last.err);
  REQUIRE(last.exit_code == 0);
  for (const char* file : {"last.weights", "best.weights", "checkpoint.txt", "split.txt"})
    CHECK_MESSAGE(slurp(killed / file) == slurp(straight / file), file);
  std::vector<std::string> stray;
  for (const std::string& f : files_in(killed))
    if (f.find(".tmp.") != std::string::npos || f.find("lock") != std::string::npos ||
        (f.rfind("ckpt/", 0) == 0 && f.find("epoch-0008.") == std::string::npos))
      stray.push_back(f);
  CHECK(stray.empty());
  for (const auto& f : stray) MESSAGE("stray: ", f);
}
