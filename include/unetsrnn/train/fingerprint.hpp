#pragma once
// A run's fingerprint: what decides its results, as ordered `key=value` entries: the model, every
// data file with its size, the split, and each option that changes the numbers. A checkpoint
// stores the fingerprint of its run, and resuming compares it with the fingerprint of the run
// being resumed: a difference is refused with a message listing what differs, e.g.
//   lr: 0.001 in the checkpoint, 0.01 now; data.1.image/a.png: 1204 bytes in the checkpoint, absent
//   now
//
// Entries are generic on purpose: an option that changes results is one more add() where the run
// is described (add_training_entries in trainer.hpp for TrainOptions, the program for its data).
// Options that only extend or observe a run (epochs, output folder, progress, device) stay out.
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "unetsrnn/core/error.hpp"
#include "unetsrnn/data/folders.hpp"
#include "unetsrnn/data/split.hpp"
#include "unetsrnn/io/crc32.hpp"

namespace unetsrnn {

class RunFingerprint {
 public:
  using Entry = std::pair<std::string, std::string>;

  // Adds `key` with `value` (numbers exactly: the shortest text that reads back the same double).
  // Keys are unique.
  template <class T>
  RunFingerprint& add(std::string key, const T& value) {
    if (key.empty()) fail_argument("RunFingerprint: empty key");
    for (const Entry& e : entries_)
      if (e.first == key) fail_argument("RunFingerprint: key '", key, "' added twice");
    entries_.emplace_back(std::move(key), format(value));
    return *this;
  }
  // Appends every entry of `other` (keys must not repeat).
  RunFingerprint& add_all(const RunFingerprint& other) {
    for (const Entry& e : other.entries_) add(e.first, e.second);
    return *this;
  }

  const std::vector<Entry>& entries() const { return entries_; }
  bool empty() const { return entries_.empty(); }
  friend bool operator==(const RunFingerprint&, const RunFingerprint&) = default;

  // What differs from `now`, as "key: A in the checkpoint, B now" items joined by "; " (at most
  // `limit` items, then a count); empty when the fingerprints are equal.
  std::string differences(const RunFingerprint& now, std::size_t limit = 8) const {
    std::vector<std::string> items;
    auto value_of = [](const RunFingerprint& fp, const std::string& key) -> const std::string* {
      for (const Entry& e : fp.entries_)
        if (e.first == key) return &e.second;
      return nullptr;
    };
    auto shown = [](const std::string* v) { return v ? "'" + *v + "'" : std::string("absent"); };
    for (const Entry& e : entries_) {
      const std::string* other = value_of(now, e.first);
      if (!other || *other != e.second)
        items.push_back(e.first + ": " + shown(&e.second) + " in the checkpoint, " + shown(other) +
                        " now");
    }
    for (const Entry& e : now.entries_)
      if (!value_of(*this, e.first))
        items.push_back(e.first + ": absent in the checkpoint, " + shown(&e.second) + " now");
    std::string out;
    for (std::size_t i = 0; i < items.size() && i < limit; ++i) out += (i ? "; " : "") + items[i];
    if (items.size() > limit) out += str_cat("; and ", items.size() - limit, " more");
    return out;
  }

  // One "key=value" line per entry; '\', newlines, carriage returns and the '=' of keys escaped.
  std::string serialise() const {
    std::string out;
    for (const Entry& e : entries_)
      out += escape(e.first, true) + "=" + escape(e.second, false) + "\n";
    return out;
  }
  // Adds the entry of one line that serialise wrote (without its newline); `name` for errors.
  void add_line(std::string_view line, const std::string& name) {
    std::string key, value;
    bool in_key = true;
    for (std::size_t i = 0; i < line.size(); ++i) {
      char c = line[i];
      if (c == '\\') {
        if (++i == line.size()) fail_format(name, ": fingerprint line ends in '\\'");
        switch (line[i]) {
          case 'n':
            c = '\n';
            break;
          case 'r':
            c = '\r';
            break;
          case '\\':
            c = '\\';
            break;
          case '=':
            c = '=';
            break;
          default:
            fail_format(name, ": unknown escape '\\", line[i], "' in a fingerprint line");
        }
      } else if (c == '=' && in_key) {
        in_key = false;
        continue;
      }
      (in_key ? key : value) += c;
    }
    if (in_key) fail_format(name, ": fingerprint line '", line, "' has no '='");
    try {
      add(std::move(key), value);
    } catch (const std::invalid_argument& e) {
      fail_format(name, ": ", e.what());
    }
  }

 private:
  template <class T>
  static std::string format(const T& value) {
    if constexpr (std::is_same_v<T, bool>) {
      return value ? "true" : "false";
    } else if constexpr (std::is_floating_point_v<T>) {
      char buffer[64];
      const auto result = std::to_chars(buffer, buffer + sizeof buffer, static_cast<double>(value));
      return std::string(buffer, result.ptr);
    } else {
      return str_cat(value);
    }
  }
  static std::string escape(const std::string& s, bool key) {
    std::string out;
    for (char c : s) {
      if (c == '\\')
        out += "\\\\";
      else if (c == '\n')
        out += "\\n";
      else if (c == '\r')
        out += "\\r";
      else if (c == '=' && key)
        out += "\\=";
      else
        out += c;
    }
    return out;
  }

  std::vector<Entry> entries_;
};

// The entries of data folder number `index` (from 1): its canonical path, the dataset options that
// change the samples, and every file with its size.
inline void add_dataset_entries(RunFingerprint& fp, int index, const std::filesystem::path& folder,
                                const FolderDataset& dataset, const DatasetOptions& options) {
  const std::string prefix = str_cat("data.", index, ".");
  std::error_code ec;
  const std::filesystem::path canonical = std::filesystem::weakly_canonical(folder, ec);
  fp.add(prefix + "folder", (ec ? folder : canonical).string());
  fp.add(prefix + "name", dataset.name());
  fp.add(prefix + "size", str_cat(options.height, "x", options.width));
  fp.add(prefix + "mask_mode", to_string(dataset.mask_mode()));
  fp.add(prefix + "mask_threshold", options.threshold);
  fp.add(prefix + "painted_white_level", options.painted_white_level);
  fp.add(prefix + "rotate_portrait", options.rotate_portrait);
  fp.add(prefix + "exif_orientation", options.decode.exif_orientation);
  fp.add(prefix + "files", dataset.files().size());
  for (const auto& file : dataset.files()) fp.add(prefix + file.path, file.size);
}

// The split's parts as counts and a checksum of their (dataset, name) lists.
inline void add_split_entries(RunFingerprint& fp, const Split& split,
                              const std::vector<Sample>& samples) {
  auto part = [&](const char* role, const std::vector<std::size_t>& indices) {
    std::uint32_t crc = 0;
    for (std::size_t i : indices) {
      const Sample& s = samples.at(i);
      const std::string line = s.dataset + '\t' + s.name + '\n';
      crc = crc32_update(crc, line.data(), line.size());
    }
    char hex[16];
    std::snprintf(hex, sizeof hex, "%08x", crc);
    fp.add(str_cat("split.", role), str_cat(indices.size(), " images, crc32 ", hex));
  };
  part("train", split.train);
  part("val", split.val);
  part("test", split.test);
}

}  // namespace unetsrnn
