#pragma once
// Pieces shared by the example programs: dataset options from the command line, loading several
// dataset folders into one sample list, and the default data location.
#include <filesystem>
#include <string>
#include <vector>

#include <unetsrnn/data/dataset.hpp>

#include "cli.hpp"

namespace examples {

// ../shared/data/fingernails when it exists (relative to the working folder), else empty.
inline std::string default_fingernail_dir() {
  for (const char* candidate : {"../shared/data/fingernails", "../../shared/data/fingernails"})
    if (std::filesystem::is_directory(candidate)) return candidate;
  return {};
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
}

inline std::vector<std::string> dataset_dirs(const cli::Parser& p) {
  std::vector<std::string> dirs = p.all("--data");
  if (dirs.empty()) {
    const std::string root = default_fingernail_dir();
    if (root.empty()) p.usage_error("no --data given and ../shared/data/fingernails was not found");
    dirs.push_back(root + "/dataset1");
  }
  return dirs;
}

struct LoadedData {
  std::vector<unetsrnn::Sample> samples;
  std::vector<std::size_t> counts;  // samples per dataset, in order
};

// `verbose`: print each folder's summary (one rank of a distributed job does).
inline LoadedData load_datasets(const cli::Parser& p, bool verbose = true) {
  unetsrnn::DatasetOptions opt;
  opt.height = p.get_int("--height");
  opt.width = p.get_int("--width");
  opt.mask_mode = unetsrnn::parse_mask_mode(p.get("--mask-mode"));
  opt.threshold = static_cast<float>(p.get_double("--mask-threshold"));
  opt.rotate_portrait = !p.has("--no-rotate");
  LoadedData out;
  for (const std::string& dir : dataset_dirs(p)) {
    unetsrnn::FolderDataset ds(dir, opt);
    if (verbose) std::printf("%s\n", ds.summary().c_str());
    if (ds.empty()) throw std::invalid_argument("dataset '" + dir + "' has no usable pairs");
    out.counts.push_back(ds.size());
    for (auto& s : ds.take_samples()) out.samples.push_back(std::move(s));
  }
  return out;
}

}  // namespace examples
