#pragma once
// Pieces shared by the example programs: the dataset options (checked when the command line is
// read, before any data), loading several dataset folders into one sample list, and the default
// data location.
#include <cstdint>
#include <filesystem>
#include <string>
#include <unetsrnn/data/folders.hpp>
#include <unetsrnn/models/factory.hpp>
#include <unetsrnn/train/fingerprint.hpp>
#include <vector>

#include "app/cli.hpp"

namespace examples {

// ../shared/data/fingernails when it exists (relative to the working folder), else empty.
inline std::string default_fingernail_dir() {
  for (const char* candidate : {"../shared/data/fingernails", "../../shared/data/fingernails"})
    if (std::filesystem::is_directory(candidate)) return candidate;
  return {};
}

// --height / --width: a positive multiple of 16 (the U-Net pools four times).
inline CLI::Validator model_side() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        if (app::integer_in(1)(text).empty() && std::stoi(text) % 16 == 0) return {};
        return "must be a positive multiple of 16 (the U-Net pools four times), got '" + text + "'";
      },
      "");
}

// --height and --width of the images the model sees (`resized`: the program resizes its images).
inline void add_size_options(app::Command& c, int& height, int& width, bool resized = true) {
  const std::string sees = resized ? " the model sees" : "";
  c.option("--height", height, "H", "image height" + sees + " (multiple of 16)")
      ->check(model_side());
  c.option("--width", width, "W", "image width" + sees + " (multiple of 16)")->check(model_side());
}

// --model: a name of the model table (its help lists them).
inline void add_model_option(app::Command& c, std::string& model) {
  c.option("--model", model, "NAME",
           unetsrnn::model_help("model to train (default: " + model + ")"), "")
      ->check(app::parsed_by(unetsrnn::check_model_name));
}

// Megapixels as the programs take them; DecodeOptions::max_pixels from them.
inline double default_max_megapixels() {
  return static_cast<double>(unetsrnn::kDefaultMaxImagePixels / 1'000'000);
}
inline void add_max_megapixels_option(app::Command& c, double& megapixels) {
  c.option("--max-megapixels", megapixels, "MP",
           "refuse images larger than this, from their header, before decoding them")
      ->check(app::number_in(0.0, 1e6, true));
}
inline unetsrnn::DecodeOptions decode_options(double megapixels) {
  unetsrnn::DecodeOptions d;
  d.max_pixels = static_cast<std::uint64_t>(megapixels * 1e6);
  return d;
}

struct DatasetArgs {
  std::vector<std::string> data;
  int height = 160, width = 192;
  std::string mask_mode = "auto";
  double mask_threshold = 0.5;
  bool no_rotate = false;
  double max_megapixels = default_max_megapixels();
};

inline void add_dataset_options(app::Command& c, DatasetArgs& a) {
  c.repeated("--data", a.data, "DIR",
             "dataset folder with image/ and mask/ (default: dataset1 under "
             "../shared/data/fingernails when present)");
  add_size_options(c, a.height, a.width);
  c.option("--mask-mode", a.mask_mode, "MODE", "threshold | painted_white | auto")
      ->check(app::parsed_by(unetsrnn::parse_mask_mode));
  c.option("--mask-threshold", a.mask_threshold, "T",
           "foreground where mask grey >= T (threshold mode)")
      ->check(app::number_in(0.0, 1.0, true));
  c.flag("--no-rotate", a.no_rotate, "do not rotate portrait images to landscape");
  add_max_megapixels_option(c, a.max_megapixels);
}

// Every dataset option (all checked when the command line was read).
inline unetsrnn::DatasetOptions dataset_options(const DatasetArgs& a) {
  unetsrnn::DatasetOptions opt;
  opt.height = a.height;
  opt.width = a.width;
  opt.mask_mode = unetsrnn::parse_mask_mode(a.mask_mode);
  opt.threshold = static_cast<float>(a.mask_threshold);
  opt.rotate_portrait = !a.no_rotate;
  opt.decode = decode_options(a.max_megapixels);
  return opt;
}

// The --data folders; the same folder twice (however spelled) is a usage error of `program`.
inline std::vector<std::string> dataset_dirs(const std::string& program, const DatasetArgs& a) {
  std::vector<std::string> dirs = a.data;
  if (dirs.empty()) {
    const std::string root = default_fingernail_dir();
    if (root.empty())
      app::usage_error(program, "no --data given and ../shared/data/fingernails was not found");
    dirs.push_back(root + "/dataset1");
  }
  std::vector<std::filesystem::path> seen;
  for (const std::string& dir : dirs) {
    std::error_code ec;
    const std::filesystem::path canonical = std::filesystem::weakly_canonical(dir, ec);
    for (std::size_t i = 0; i < seen.size(); ++i)
      if (!ec && seen[i] == canonical)
        app::usage_error(program, "--data '" + dir + "' names the same folder as --data '" +
                                      dirs[i] + "'; each dataset may be given once");
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
