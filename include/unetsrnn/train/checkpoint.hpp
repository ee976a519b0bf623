#pragma once
// The commit record of a training checkpoint, `checkpoint.txt`: the epoch, the best so far, the
// plateau schedule's state and the run's fingerprint. Its reader checks every field and names the
// file and line in its errors (the text helpers below serve other readers of run files too).
//
// checkpoint.txt, version 2 (version 1 is read too: it has no fingerprint):
//   unetsrnn checkpoint v2
//   model <name>
//   epoch <n >= 1>
//   best_dice <double>
//   best_epoch <n >= 0>
//   <ReduceLROnPlateau state line>
//   fingerprint <count>
//   <count lines key=value, see fingerprint.hpp>
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "unetsrnn/core/error.hpp"
#include "unetsrnn/train/fingerprint.hpp"

namespace unetsrnn {

struct CheckpointState {
  std::string model;
  int epoch = 0;  // the last epoch completed
  double best_dice = -1.0;
  int best_epoch = 0;
  std::string plateau;                        // ReduceLROnPlateau::save_state's line, no newline
  std::optional<RunFingerprint> fingerprint;  // absent in version 1
};

namespace train_detail {

// Splits into lines ('\n'; a final line without one counts).
inline std::vector<std::string_view> split_lines(std::string_view text) {
  std::vector<std::string_view> lines;
  while (!text.empty()) {
    const std::size_t end = text.find('\n');
    lines.push_back(text.substr(0, end));
    if (end == std::string_view::npos) break;
    text.remove_prefix(end + 1);
  }
  return lines;
}

// A whole decimal integer in [lo, hi], or nothing.
inline std::optional<long long> parse_integer(std::string_view s, long long lo, long long hi) {
  if (s.empty() || s.size() > 19) return std::nullopt;
  const std::string text(s);
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(text.c_str(), &end, 10);
  if (errno != 0 || end != text.c_str() + text.size() || v < lo || v > hi) return std::nullopt;
  return v;
}

// A whole number as written by %.17g (or "nan", "inf"), or nothing.
inline std::optional<double> parse_number(std::string_view s) {
  if (s.empty() || s.size() > 64 || s.front() == ' ') return std::nullopt;
  const std::string text(s);
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (end != text.c_str() + text.size()) return std::nullopt;
  return v;
}

inline std::string format_double(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

}  // namespace train_detail

inline std::string format_checkpoint(const CheckpointState& state) {
  std::string out = "unetsrnn checkpoint v2\n";
  out += "model " + state.model + "\n";
  out += str_cat("epoch ", state.epoch, "\n");
  out += "best_dice " + train_detail::format_double(state.best_dice) + "\n";
  out += str_cat("best_epoch ", state.best_epoch, "\n");
  out += state.plateau + "\n";
  const RunFingerprint fp = state.fingerprint.value_or(RunFingerprint{});
  out += str_cat("fingerprint ", fp.entries().size(), "\n");
  out += fp.serialise();
  return out;
}

// Reads a checkpoint.txt held in `text`; `name` (the file) starts every error.
inline CheckpointState parse_checkpoint(std::string_view text, const std::string& name) {
  using namespace train_detail;
  const std::vector<std::string_view> lines = split_lines(text);
  auto damaged = [&](std::size_t line, const std::string& what) {
    fail_format("'", name, "' line ", line + 1, ": ", what, " (the checkpoint is damaged)");
  };
  auto field = [&](std::size_t line, std::string_view key) -> std::string_view {
    if (line >= lines.size()) damaged(line, str_cat("missing, expected '", key, " ...'"));
    const std::string_view l = lines[line];
    if (l.substr(0, key.size() + 1) != std::string(key) + " ")
      damaged(line, str_cat("expected '", key, " ...', got '", l.substr(0, 80), "'"));
    return l.substr(key.size() + 1);
  };
  if (lines.empty() ||
      (lines[0] != "unetsrnn checkpoint v1" && lines[0] != "unetsrnn checkpoint v2"))
    fail_format(
        "'", name,
        "' is not a unetsrnn checkpoint (its first line is not 'unetsrnn checkpoint v1' or 'v2')");
  const bool v2 = lines[0] == "unetsrnn checkpoint v2";
  CheckpointState state;
  state.model = std::string(field(1, "model"));
  if (state.model.empty()) damaged(1, "empty model name");
  const auto epoch = parse_integer(field(2, "epoch"), 1, std::numeric_limits<int>::max());
  if (!epoch) damaged(2, "the epoch must be a whole number >= 1");
  state.epoch = static_cast<int>(*epoch);
  const auto best = parse_number(field(3, "best_dice"));
  if (!best) damaged(3, "best_dice is not a number");
  state.best_dice = *best;
  const auto best_epoch = parse_integer(field(4, "best_epoch"), 0, state.epoch);
  if (!best_epoch) damaged(4, str_cat("best_epoch must be a whole number in 0..", state.epoch));
  state.best_epoch = static_cast<int>(*best_epoch);
  if (lines.size() < 6) damaged(5, "the schedule state line is missing");
  state.plateau = std::string(lines[5]);
  if (!v2) {
    if (lines.size() > 6) damaged(6, "unexpected text after the schedule state");
    return state;
  }
  const auto count = parse_integer(field(6, "fingerprint"), 0, 10'000'000);
  if (!count) damaged(6, "the fingerprint entry count must be a whole number");
  if (lines.size() != 7 + static_cast<std::size_t>(*count))
    damaged(std::min<std::size_t>(lines.size(), 7 + static_cast<std::size_t>(*count)),
            str_cat("the fingerprint should have ", *count, " lines, the file has ",
                    lines.size() >= 7 ? lines.size() - 7 : 0));
  RunFingerprint fp;
  for (std::size_t i = 7; i < lines.size(); ++i)
    fp.add_line(lines[i], str_cat("'", name, "' line ", i + 1));
  state.fingerprint = std::move(fp);
  return state;
}

}  // namespace unetsrnn
