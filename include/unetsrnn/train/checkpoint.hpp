#pragma once
// The text files of a training checkpoint: `checkpoint.txt` (the commit record naming the epoch,
// the best so far, the plateau schedule's state and the run's fingerprint) and `log.csv` (one row
// per epoch). Both readers check every field and name the file and line in their errors.
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

namespace train_detail {

struct LogRow {
  int epoch = 0;
  double train_loss = 0, train_dice = 0, val_loss = 0, val_dice = 0, lr = 0, seconds = 0;
};

inline std::string fmt(double v, int digits = 6) {
  if (!std::isfinite(v)) return "null";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*g", digits, v);
  return buf;
}

inline constexpr const char* kLogHeader =
    "epoch,train_loss,train_dice,val_loss,val_dice,lr,seconds";

inline std::string log_csv(const std::vector<LogRow>& rows) {
  std::string out = std::string(kLogHeader) + "\n";
  for (const LogRow& r : rows)
    out += str_cat(r.epoch, ",", fmt(r.train_loss, 8), ",", fmt(r.train_dice, 8), ",",
                   fmt(r.val_loss, 8), ",", fmt(r.val_dice, 8), ",", fmt(r.lr, 8), ",",
                   fmt(r.seconds, 5), "\n");
  return out;
}

// The rows of epochs 1..up_to_epoch of a log.csv held in `text`; `name` starts every error.
inline std::vector<LogRow> parse_log_csv(std::string_view text, const std::string& name,
                                         int up_to_epoch) {
  const std::vector<std::string_view> lines = split_lines(text);
  if (lines.empty() || lines[0] != kLogHeader)
    fail_format("'", name, "' is not a training log (expected the header '", kLogHeader, "')");
  std::vector<LogRow> rows;
  for (std::size_t i = 1; i < lines.size(); ++i) {
    std::vector<std::string_view> cells;
    std::string_view rest = lines[i];
    for (std::size_t comma; (comma = rest.find(',')) != std::string_view::npos;) {
      cells.push_back(rest.substr(0, comma));
      rest.remove_prefix(comma + 1);
    }
    cells.push_back(rest);
    auto bad = [&](const std::string& what) {
      fail_format("'", name, "' line ", i + 1, ": ", what);
    };
    if (cells.size() != 7) bad(str_cat("expected 7 comma-separated values, got ", cells.size()));
    const auto epoch = parse_integer(cells[0], 1, std::numeric_limits<int>::max());
    if (!epoch) bad("the epoch is not a whole number >= 1");
    LogRow r;
    r.epoch = static_cast<int>(*epoch);
    double* values[] = {&r.train_loss, &r.train_dice, &r.val_loss, &r.val_dice, &r.lr, &r.seconds};
    for (std::size_t k = 0; k < 6; ++k) {
      if (cells[k + 1] == "null") {
        *values[k] = std::numeric_limits<double>::quiet_NaN();
        continue;
      }
      const auto v = parse_number(cells[k + 1]);
      if (!v) bad(str_cat("'", cells[k + 1], "' is not a number"));
      *values[k] = *v;
    }
    if (r.epoch <= up_to_epoch) rows.push_back(r);
  }
  std::size_t expected = 1;
  for (const LogRow& r : rows)
    if (static_cast<std::size_t>(r.epoch) != expected++)
      fail_format("'", name, "': epochs are not 1, 2, 3, ... in order (found epoch ", r.epoch, ")");
  if (rows.size() != static_cast<std::size_t>(up_to_epoch))
    fail_format("'", name, "' has ", rows.size(), " epochs, the checkpoint needs ", up_to_epoch);
  return rows;
}

}  // namespace train_detail

}  // namespace unetsrnn
