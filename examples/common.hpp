#pragma once
// Pieces shared by the example programs: dataset options from the command line (checked before
// any data is read), loading several dataset folders into one sample list, and the default data
// location.
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <unetsrnn/data/dataset.hpp>
#include <unetsrnn/train/fingerprint.hpp>

#include "cli.hpp"

namespace examples {

// ../shared/data/fingernails when it exists (relative to the working folder), else empty.
inline std::string default_fingernail_dir() {
  for (const char* candidate : {"../shared/data/fingernails", "../../shared/data/fingernails"})
    if (std::filesystem::is_directory(candidate)) return candidate;
  return {};
}

inline void add_max_megapixels_option(cli::Parser& p) {
  p.option("--max-megapixels", "MP",
           "refuse images larger than this, from their header, before decoding them",
           std::to_string(unetsrnn::kDefaultMaxImagePixels / 1'000'000));
}

inline void add_dataset_options(cli::Parser& p) {
  p.repeated("--data", "DIR",
             "dataset folder with image/ and mask/ (repeatable; default: dataset1 under "
             "../shared/data/fingernails when present)");
  p.option("--height", "H", "image height the model sees (multiple of 16)", "160");
  p.option("--width", "W", "image width the model sees (multiple of 16)", "192");
  p.option("--mask-mode", "MODE", "threshold | painted_white | auto", "auto");
  p.option("--mask-threshold", "T", "foreground where mask grey >= T (threshold mode)", "0.5");
  p.flag("--no-rotate", "do not rotate portrait images to landscape");
  add_max_megapixels_option(p);
}

// The model's input size from --height / --width; a usage error unless both are positive
// multiples of 16.
inline void target_size(const cli::Parser& p, int& height, int& width) {
  height = p.get_int("--height");
  width = p.get_int("--width");
  try {
    unetsrnn::check_target_size(height, width);
  } catch (const std::invalid_argument& e) {
    p.usage_error(std::string("--height/--width: ") + e.what());
  }
}

inline unetsrnn::DecodeOptions decode_options(const cli::Parser& p) {
  unetsrnn::DecodeOptions d;
  const double mp = p.get_double_in("--max-megapixels", 0.0, 1e6, true);
  d.max_pixels = static_cast<std::uint64_t>(mp * 1e6);
  return d;
}

// Every dataset option, checked: usage errors (exit 2) before any data is read.
inline unetsrnn::DatasetOptions dataset_options(const cli::Parser& p) {
  unetsrnn::DatasetOptions opt;
  target_size(p, opt.height, opt.width);
  try {
    opt.mask_mode = unetsrnn::parse_mask_mode(p.get("--mask-mode"));
  } catch (const std::invalid_argument& e) {
    p.usage_error(std::string("--mask-mode: ") + e.what());
  }
  opt.threshold = static_cast<float>(p.get_double_in("--mask-threshold", 0.0, 1.0, true));
  opt.rotate_portrait = !p.has("--no-rotate");
  opt.decode = decode_options(p);
  return opt;
}

// The --data folders; the same folder twice (however spelled) is a usage error.
inline std::vector<std::string> dataset_dirs(const cli::Parser& p) {
  std::vector<std::string> dirs = p.all("--data");
  if (dirs.empty()) {
    const std::string root = default_fingernail_dir();
    if (root.empty()) p.usage_error("no --data given and ../shared/data/fingernails was not found");
    dirs.push_back(root + "/dataset1");
  }
  std::vector<std::filesystem::path> seen;
  for (const std::string& dir : dirs) {
    std::error_code ec;
    const std::filesystem::path canonical = std::filesystem::weakly_canonical(dir, ec);
    for (std::size_t i = 0; i < seen.size(); ++i)
      if (!ec && seen[i] == canonical)
        p.usage_error("--data '" + dir + "' names the same folder as --data '" + dirs[i] +
                      "'; each dataset may be given once");
    seen.push_back(ec ? std::filesystem::path(dir) : canonical);
  }
  return dirs;
}

struct LoadedData {
  std::vector<unetsrnn::Sample> samples;
  std::vector<std::size_t> counts;       // samples per dataset, in order
  unetsrnn::RunFingerprint fingerprint;  // the folders, their files and the dataset options
};

// `verbose`: print each folder's summary (one rank of a distributed job does).
inline LoadedData load_datasets(const std::vector<std::string>& dirs,
                                const unetsrnn::DatasetOptions& opt, bool verbose = true) {
  LoadedData out;
  int index = 1;
  for (const std::string& dir : dirs) {
    unetsrnn::FolderDataset ds(dir, opt);
    if (verbose) std::printf("%s\n", ds.summary().c_str());
    if (ds.empty()) throw std::invalid_argument("dataset '" + dir + "' has no usable pairs");
    unetsrnn::add_dataset_entries(out.fingerprint, index++, dir, ds, opt);
    out.counts.push_back(ds.size());
    for (auto& s : ds.take_samples()) out.samples.push_back(std::move(s));
  }
  return out;
}

}  // namespace examples
