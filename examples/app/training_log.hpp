#pragma once
// log.csv of a training run: one row per epoch, written with each checkpoint (RunReport) and read
// back when the run resumes, so that the log, the curve and result.json cover the whole run;
// experiments/run.py reads it too.
//   epoch,train_loss,train_dice,val_loss,val_dice,lr,seconds
// Numbers as %.8g (seconds %.5g); "null" where there is no value (no validation part).
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <string>
#include <string_view>
#include <unetsrnn/core/error.hpp>
#include <unetsrnn/io/weights.hpp>
#include <unetsrnn/train/checkpoint.hpp>
#include <unetsrnn/train/observer.hpp>
#include <vector>

namespace app {

// v with `digits` significant digits; "null" when it is not finite.
inline std::string format_number(double v, int digits = 6) {
  if (!std::isfinite(v)) return "null";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*g", digits, v);
  return buf;
}

inline constexpr const char* kLogHeader =
    "epoch,train_loss,train_dice,val_loss,val_dice,lr,seconds";

inline std::string log_csv(const std::vector<unetsrnn::EpochRecord>& rows) {
  std::string out = std::string(kLogHeader) + "\n";
  for (const unetsrnn::EpochRecord& r : rows)
    out += unetsrnn::str_cat(r.epoch, ",", format_number(r.train_loss, 8), ",",
                             format_number(r.train_dice, 8), ",", format_number(r.val_loss, 8), ",",
                             format_number(r.val_dice, 8), ",", format_number(r.lr, 8), ",",
                             format_number(r.seconds, 5), "\n");
  return out;
}

// The rows of epochs 1..up_to_epoch of a log.csv held in `text` (a kill may have left rows of a
// later epoch whose checkpoint was not committed); `name` starts every error (FormatError).
inline std::vector<unetsrnn::EpochRecord> parse_log_csv(std::string_view text,
                                                        const std::string& name, int up_to_epoch) {
  using unetsrnn::fail_format;
  using unetsrnn::str_cat;
  namespace td = unetsrnn::train_detail;
  const std::vector<std::string_view> lines = td::split_lines(text);
  if (lines.empty() || lines[0] != kLogHeader)
    fail_format("'", name, "' is not a training log (expected the header '", kLogHeader, "')");
  std::vector<unetsrnn::EpochRecord> rows;
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
    const auto epoch = td::parse_integer(cells[0], 1, std::numeric_limits<int>::max());
    if (!epoch) bad("the epoch is not a whole number >= 1");
    unetsrnn::EpochRecord r;
    r.epoch = static_cast<int>(*epoch);
    double* values[] = {&r.train_loss, &r.train_dice, &r.val_loss, &r.val_dice, &r.lr, &r.seconds};
    for (std::size_t k = 0; k < 6; ++k) {
      if (cells[k + 1] == "null") {
        *values[k] = std::numeric_limits<double>::quiet_NaN();
        continue;
      }
      const auto v = td::parse_number(cells[k + 1]);
      if (!v) bad(str_cat("'", cells[k + 1], "' is not a number"));
      *values[k] = *v;
    }
    if (r.epoch <= up_to_epoch) rows.push_back(r);
  }
  std::size_t expected = 1;
  for (const unetsrnn::EpochRecord& r : rows)
    if (static_cast<std::size_t>(r.epoch) != expected++)
      fail_format("'", name, "': epochs are not 1, 2, 3, ... in order (found epoch ", r.epoch, ")");
  if (rows.size() != static_cast<std::size_t>(up_to_epoch))
    fail_format("'", name, "' has ", rows.size(), " epochs, the checkpoint needs ", up_to_epoch);
  return rows;
}

inline std::vector<unetsrnn::EpochRecord> read_log_csv(const std::filesystem::path& path,
                                                       int up_to_epoch) {
  return parse_log_csv(unetsrnn::detail::read_whole_file(path), path.string(), up_to_epoch);
}

}  // namespace app
