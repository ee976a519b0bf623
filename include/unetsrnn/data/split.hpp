#pragma once
// Train/validation/test splits of a sample list (seeded random parts, per-dataset parts, k folds)
// and split files (split.txt: which sample went where, readable and checked on reading).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <numeric>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "unetsrnn/core/error.hpp"
#include "unetsrnn/core/rng.hpp"
#include "unetsrnn/data/sample.hpp"
#include "unetsrnn/io/atomic_file.hpp"

namespace unetsrnn {

// Splits. Indices refer to a sample list; every part is sorted ascending.

struct Split {
  std::vector<std::size_t> train, val, test;
};

namespace detail {

inline std::vector<std::size_t> shuffled_indices(std::size_t count, std::uint64_t seed) {
  std::vector<std::size_t> order(count);
  std::iota(order.begin(), order.end(), std::size_t{0});
  Rng rng(seed);
  for (std::size_t i = count; i > 1; --i) std::swap(order[i - 1], order[rng.below(i)]);
  return order;
}

// ceil(fraction * count), robust to 0.2 * 10 = 2.0000000000000004.
inline std::size_t part_size(double fraction, std::size_t count) {
  return static_cast<std::size_t>(std::ceil(fraction * static_cast<double>(count) - 1e-9));
}

inline void check_fraction(const char* what, double fraction) {
  if (!(fraction >= 0.0 && fraction < 1.0))
    fail_argument(what, " must be in [0, 1), got ", fraction);
}

// Fills split.val / split.train from `rest` (shuffled order) and sorts every part.
inline void carve_validation(Split& split, const std::vector<std::size_t>& rest,
                             double val_fraction, std::size_t count) {
  const std::size_t n_val = part_size(val_fraction, rest.size());
  split.val.assign(rest.begin(), rest.begin() + static_cast<std::ptrdiff_t>(n_val));
  split.train.assign(rest.begin() + static_cast<std::ptrdiff_t>(n_val), rest.end());
  if (count > 0 && split.train.empty())
    fail_argument("split of ", count, " samples leaves no training samples (test ",
                  split.test.size(), ", validation ", split.val.size(), ")");
  std::sort(split.train.begin(), split.train.end());
  std::sort(split.val.begin(), split.val.end());
  std::sort(split.test.begin(), split.test.end());
}

}  // namespace detail

// Seeded random split: test = ceil(test_fraction * count) samples, then validation =
// ceil(val_fraction * rest) carved from the rest; the remainder trains. Same seed, same split.
inline Split split_indices(std::size_t count, double test_fraction, std::uint64_t seed,
                           double val_fraction = 0.0) {
  detail::check_fraction("test_fraction", test_fraction);
  detail::check_fraction("val_fraction", val_fraction);
  const std::vector<std::size_t> order = detail::shuffled_indices(count, seed);
  const std::size_t n_test = detail::part_size(test_fraction, count);
  Split split;
  split.test.assign(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(n_test));
  const std::vector<std::size_t> rest(order.begin() + static_cast<std::ptrdiff_t>(n_test),
                                      order.end());
  detail::carve_validation(split, rest, val_fraction, count);
  return split;
}

// Concatenates per-dataset splits: dataset k's indices are offset by the sizes of datasets 0..k-1,
// matching a sample list that concatenates the datasets in the same order.
inline Split concat_splits(const std::vector<Split>& parts,
                           const std::vector<std::size_t>& counts) {
  if (parts.size() != counts.size())
    fail_argument("concat_splits: ", parts.size(), " splits but ", counts.size(), " counts");
  Split out;
  std::size_t offset = 0;
  for (std::size_t k = 0; k < parts.size(); ++k) {
    auto append = [&](std::vector<std::size_t>& dst, const std::vector<std::size_t>& src) {
      for (std::size_t i : src) {
        if (i >= counts[k])
          fail_argument("concat_splits: index ", i, " outside dataset ", k, " of ", counts[k]);
        dst.push_back(i + offset);
      }
    };
    append(out.train, parts[k].train);
    append(out.val, parts[k].val);
    append(out.test, parts[k].test);
    offset += counts[k];
  }
  return out;
}

// The original's D1+D2 protocol: each dataset is split on its own (exactly as split_indices would
// split it alone, same seed), then the train, validation and test parts are concatenated.
inline Split split_datasets(const std::vector<std::size_t>& counts, double test_fraction,
                            std::uint64_t seed, double val_fraction = 0.0) {
  std::vector<Split> parts;
  for (std::size_t count : counts)
    parts.push_back(split_indices(count, test_fraction, seed, val_fraction));
  return concat_splits(parts, counts);
}

// k-fold cross-validation: one seeded shuffle cut into `folds` nearly equal folds (the first
// count % folds are one larger); fold f is the test part of split f, so every index is tested
// exactly once. Validation is carved from each training part as in split_indices.
inline std::vector<Split> kfold_splits(std::size_t count, int folds, std::uint64_t seed,
                                       double val_fraction = 0.0) {
  detail::check_fraction("val_fraction", val_fraction);
  if (folds < 2 || static_cast<std::size_t>(folds) > count)
    fail_argument("kfold_splits: folds must be in [2, ", count, "] for ", count, " samples, got ",
                  folds);
  const std::vector<std::size_t> order = detail::shuffled_indices(count, seed);
  const std::size_t k = static_cast<std::size_t>(folds);
  std::vector<Split> splits(k);
  std::size_t begin = 0;
  for (std::size_t f = 0; f < k; ++f) {
    const std::size_t size = count / k + (f < count % k ? 1 : 0);
    Split& split = splits[f];
    split.test.assign(order.begin() + static_cast<std::ptrdiff_t>(begin),
                      order.begin() + static_cast<std::ptrdiff_t>(begin + size));
    std::vector<std::size_t> rest(order.begin(),
                                  order.begin() + static_cast<std::ptrdiff_t>(begin));
    rest.insert(rest.end(), order.begin() + static_cast<std::ptrdiff_t>(begin + size), order.end());
    detail::carve_validation(split, rest, val_fraction, count);
    begin += size;
  }
  return splits;
}

// k-fold over several datasets: fold f of each dataset, concatenated (as split_datasets).
inline std::vector<Split> kfold_splits_datasets(const std::vector<std::size_t>& counts, int folds,
                                                std::uint64_t seed, double val_fraction = 0.0) {
  std::vector<std::vector<Split>> per_dataset;
  for (std::size_t count : counts)
    per_dataset.push_back(kfold_splits(count, folds, seed, val_fraction));
  std::vector<Split> out;
  for (int f = 0; f < folds; ++f) {
    std::vector<Split> parts;
    for (const auto& d : per_dataset) parts.push_back(d[static_cast<std::size_t>(f)]);
    out.push_back(concat_splits(parts, counts));
  }
  return out;
}

// Split files: a readable text file, one sample per line, "role<TAB>dataset<TAB>file name", roles
// train / val / test; lines starting with '#' are comments. Tabs separate the fields because file
// names may contain spaces.

struct SplitEntry {
  std::string role, dataset, name;
  friend bool operator==(const SplitEntry&, const SplitEntry&) = default;
};

// Throws std::invalid_argument when a split cannot be written: an index outside `samples`, or a
// sample whose name holds a tab or a newline (the file's separators).
inline void check_split_names(const Split& split, const std::vector<Sample>& samples) {
  for (const auto* part : {&split.train, &split.val, &split.test})
    for (std::size_t i : *part) {
      if (i >= samples.size())
        fail_argument("split: index ", i, " outside ", samples.size(), " samples");
      const Sample& s = samples[i];
      if (s.name.find_first_of("\t\n") != std::string::npos ||
          s.dataset.find_first_of("\t\n") != std::string::npos)
        fail_argument("sample '", s.dataset, "/", s.name,
                      "' has a tab or newline in its name, which a split file cannot hold; "
                      "rename the file");
    }
}

inline void write_split(const std::filesystem::path& path, const Split& split,
                        const std::vector<Sample>& samples, std::string_view comment = {}) {
  check_split_names(split, samples);
  std::ostringstream text;
  text << "# unetsrnn split v1: role<TAB>dataset<TAB>file\n";
  if (!comment.empty()) {
    std::istringstream lines{std::string(comment)};
    for (std::string line; std::getline(lines, line);) text << "# " << line << "\n";
  }
  text << "# train " << split.train.size() << ", val " << split.val.size() << ", test "
       << split.test.size() << "\n";
  auto emit = [&](const char* role, const std::vector<std::size_t>& indices) {
    for (std::size_t i : indices) {
      const Sample& s = samples[i];
      text << role << '\t' << s.dataset << '\t' << s.name << '\n';
    }
  };
  emit("train", split.train);
  emit("val", split.val);
  emit("test", split.test);
  write_file_atomic(path, text.str());
}

inline std::vector<SplitEntry> read_split(const std::filesystem::path& path) {
  errno = 0;
  std::ifstream in(path);
  if (!in)
    fail_format("cannot open split file '", path.string(), "': ", detail::last_os_error(errno));
  std::vector<SplitEntry> entries;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    const std::size_t a = line.find('\t');
    const std::size_t b = a == std::string::npos ? a : line.find('\t', a + 1);
    if (b == std::string::npos || line.find('\t', b + 1) != std::string::npos)
      fail_format("split file '", path.string(), "' line ", number,
                  ": expected role<TAB>dataset<TAB>file, got '", line, "'");
    SplitEntry e{line.substr(0, a), line.substr(a + 1, b - a - 1), line.substr(b + 1)};
    if (e.role != "train" && e.role != "val" && e.role != "test")
      fail_format("split file '", path.string(), "' line ", number, ": unknown role '", e.role,
                  "' (expected train, val or test)");
    if (e.name.empty())
      fail_format("split file '", path.string(), "' line ", number, ": empty file name");
    entries.push_back(std::move(e));
  }
  return entries;
}

// Maps split entries back to indices into `samples` by (dataset, name). Every entry must name a
// sample, and no sample may appear twice.
inline Split resolve_split(const std::vector<SplitEntry>& entries,
                           const std::vector<Sample>& samples) {
  std::map<std::pair<std::string, std::string>, std::size_t> index;
  for (std::size_t i = 0; i < samples.size(); ++i)
    index.emplace(std::make_pair(samples[i].dataset, samples[i].name), i);
  Split split;
  std::set<std::size_t> seen;
  for (const SplitEntry& e : entries) {
    const auto it = index.find({e.dataset, e.name});
    if (it == index.end())
      fail_format("split names sample '", e.name, "' of dataset '", e.dataset,
                  "', which is not among the loaded samples");
    if (!seen.insert(it->second).second)
      fail_format("split lists sample '", e.name, "' of dataset '", e.dataset, "' twice");
    (e.role == "train" ? split.train
     : e.role == "val" ? split.val
                       : split.test)
        .push_back(it->second);
  }
  for (auto* part : {&split.train, &split.val, &split.test}) std::sort(part->begin(), part->end());
  return split;
}

}  // namespace unetsrnn
