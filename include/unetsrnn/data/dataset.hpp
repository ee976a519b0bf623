#pragma once
// Segmentation datasets on disk, train/val/test splits, augmentation and a background batch loader.
//
// Folder layout: DIR/image/* and DIR/mask/*, paired by file stem (the extension may differ, e.g.
// image a.jpg with mask a.png). Hidden files and files without an image extension (png, jpg, jpeg,
// bmp, tga, gif, psd, pnm, ppm, pgm; any case) are ignored. Pairs are sorted by image file name,
// so the sample order (and therefore every seeded split) does not depend on the file system.
//
// Samples are decoded, optionally rotated, resized to H x W and kept in memory as tensors (the
// fingernail datasets are a few hundred images): image (1, 3, H, W) in 0..1, mask (1, 1, H, W) in
// {0, 1}. Images are resized bilinearly (half-pixel centres, see io/image.hpp); masks are resized
// bilinearly and then binarised.
//
// Mask modes:
// - threshold: grey = mean of R, G, B; foreground where the resized grey >= `threshold` (0.5).
//   The mask must be binary-like: at native resolution at most `max_mid_grey_fraction` (5%) of its
//   pixels may have a grey value strictly between 0.25 and 0.75. Lossy JPEG masks (Dataset 2:
//   at most 0.06% of such pixels) pass; a photo or a soft probability map does not, and is reported
//   by name. Checking at native resolution keeps the rule independent of the target size (an
//   upsampled mask has interpolated edges). Masks with no foreground are kept: an image without
//   nails is a legitimate example.
// - painted_white: the mask is the photo with the foreground painted white (Dataset 1). The RGB
// mask
//   is resized bilinearly and a pixel is foreground where mean(R, G, B) >= `painted_white_level`
//   (250/255). Pairs whose mask comes out empty are dropped, as the original did; they are counted
//   and named in dropped_empty().
// - auto: decided once per dataset from its masks. A mask "looks like a photo" when more than 10%
//   of its pixels are coloured (max - min channel > 0.15) or mid-grey (0.25 < grey < 0.75); a clean
//   or JPEG-compressed black/white mask has well under 1%. If more than half of the dataset's masks
//   look like photos the dataset is painted_white, otherwise threshold (with its checks). Dataset 1
//   gives painted_white (every mask is a colour photo), Dataset 2 gives threshold.
//
// rotate_portrait (Dataset 2's protocol): an image with width < height is rotated 90 degrees
// counter-clockwise before resizing, its mask alike.
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <numeric>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "unetsrnn/core/error.hpp"
#include "unetsrnn/core/rng.hpp"
#include "unetsrnn/io/atomic_file.hpp"
#include "unetsrnn/io/image.hpp"
#include "unetsrnn/tensor/tensor.hpp"

namespace unetsrnn {

// One decoded, resized pair. The same representation is used by the synthetic generator.
struct Sample {
  std::string dataset;                      // dataset name (folder name unless given)
  std::string name;                         // image file name, e.g. "170517_10_R_1.png"
  Tensor<Cpu> image;                        // (1, 3, H, W), values 0..1
  Tensor<Cpu> mask;                         // (1, 1, H, W), values 0 or 1
  int source_height = 0, source_width = 0;  // size of the file's image, before any rotation
  bool rotated = false;                     // rotated 90 degrees counter-clockwise (portrait)
};

enum class MaskMode { Threshold, PaintedWhite, Auto };

inline const char* to_string(MaskMode mode) {
  switch (mode) {
    case MaskMode::Threshold:
      return "threshold";
    case MaskMode::PaintedWhite:
      return "painted_white";
    case MaskMode::Auto:
      return "auto";
  }
  return "?";
}

inline MaskMode parse_mask_mode(std::string_view text) {
  if (text == "threshold") return MaskMode::Threshold;
  if (text == "painted_white") return MaskMode::PaintedWhite;
  if (text == "auto") return MaskMode::Auto;
  fail_argument("unknown mask mode '", text, "' (expected threshold, painted_white or auto)");
}

struct DatasetOptions {
  int height = 160, width = 192;  // target size; both must be multiples of 16
  MaskMode mask_mode = MaskMode::Auto;
  float threshold = 0.5f;                    // threshold mode: foreground where grey >= this
  float painted_white_level = 250.0f / 255;  // painted_white mode: mean RGB >= this
  float max_mid_grey_fraction = 0.05f;       // threshold mode: binary-likeness limit
  bool rotate_portrait = false;              // rotate width < height pairs by 90 degrees
  std::string name;                          // dataset name; empty: the folder's name
  DecodeOptions decode{};                    // pixel limit, EXIF orientation
};

// Checks a target size for the U-Net (four 2x poolings need multiples of 16).
inline void check_target_size(int height, int width) {
  if (height <= 0 || width <= 0 || height % 16 != 0 || width % 16 != 0)
    fail_argument("target size ", height, "x", width,
                  " (HxW) is invalid: both must be positive multiples of 16 (the U-Net pools four "
                  "times), e.g. 160x192");
}

namespace detail {

inline constexpr int min_image_side = 16;
inline constexpr float photo_pixel_fraction = 0.10f;  // auto: above this a mask looks like a photo
inline constexpr float chroma_limit = 0.15f;          // max - min channel of a "coloured" pixel
inline constexpr float mid_grey_low = 0.25f, mid_grey_high = 0.75f;

inline bool is_image_file(const std::filesystem::path& path) {
  std::string ext = path.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
  static const std::set<std::string> known = {".png", ".jpg", ".jpeg", ".bmp", ".tga",
                                              ".gif", ".psd", ".pnm",  ".ppm", ".pgm"};
  return known.count(ext) > 0;
}

// File stem -> file name of the image files in `folder`.
inline std::map<std::string, std::string> list_image_files(const std::string& dataset,
                                                           const std::filesystem::path& folder) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(folder, ec))
    fail_format("dataset '", dataset, "': folder '", folder.string(), "' does not exist");
  std::map<std::string, std::string> files;
  for (const fs::directory_entry& entry : fs::directory_iterator(folder)) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || name[0] == '.' || !entry.is_regular_file() || !is_image_file(name))
      continue;
    const std::string stem = entry.path().stem().string();
    auto [it, inserted] = files.emplace(stem, name);
    if (!inserted)
      fail_format("dataset '", dataset, "': files '", std::min(it->second, name), "' and '",
                  std::max(it->second, name), "' in '", folder.string(), "' share the stem '", stem,
                  "', so their pairing is ambiguous");
  }
  return files;
}

inline std::string name_list(const std::vector<std::string>& names, std::size_t limit = 10) {
  std::string out;
  for (std::size_t i = 0; i < names.size() && i < limit; ++i)
    out += (i ? ", '" : "'") + names[i] + "'";
  if (names.size() > limit) out += str_cat(" and ", names.size() - limit, " more");
  return out;
}

struct MaskStats {
  float mid_grey_fraction = 0;  // pixels with 0.25 < grey < 0.75
  float photo_fraction = 0;     // pixels that are mid-grey or coloured
};

// Over the mask's native pixels (RGB).
inline MaskStats analyse_mask(const DecodedImage& rgb) {
  std::size_t mid = 0, photo = 0;
  for (int y = 0; y < rgb.height(); ++y)
    for (int x = 0; x < rgb.width(); ++x) {
      const float px[3] = {rgb.at(y, x, 0), rgb.at(y, x, 1), rgb.at(y, x, 2)};
      const float grey = (px[0] + px[1] + px[2]) / 3;
      const float chroma = std::max({px[0], px[1], px[2]}) - std::min({px[0], px[1], px[2]});
      const bool is_mid = grey > mid_grey_low && grey < mid_grey_high;
      mid += is_mid;
      photo += is_mid || chroma > chroma_limit;
    }
  const float n = static_cast<float>(std::max<std::size_t>(rgb.pixels(), 1));
  return {static_cast<float>(mid) / n, static_cast<float>(photo) / n};
}

// Foreground where the channel mean of the resized mask is >= level (small slack for rounding).
// grey: resize the mean of the colour channels (as to_grey) rather than the channels.
inline Tensor<Cpu> binarise_resized(const DecodedImage& mask, bool grey, int height, int width,
                                    float level) {
  Tensor<Cpu> out(Shape{1, 1, height, width});
  auto binarise = [&](int y, const float* row, int channels) {
    for (int x = 0; x < width; ++x) {
      float sum = 0;
      for (int k = 0; k < channels; ++k) sum += row[x * channels + k];
      out[static_cast<std::size_t>(y) * width + x] = sum / channels >= level - 1e-5f ? 1.0f : 0.0f;
    }
  };
  if (grey) {
    const int colours =
        mask.channels() == 2 || mask.channels() == 4 ? mask.channels() - 1 : mask.channels();
    auto grey_at = [&](int y, int x, int) {
      float sum = 0.0f;
      for (int k = 0; k < colours; ++k) sum += mask.at(y, x, k);
      return sum / colours;
    };
    resize_bilinear_rows(mask.height(), mask.width(), 1, grey_at, height, width,
                         [&](int y, const float* row) { binarise(y, row, 1); });
  } else {
    resize_bilinear_rows(
        mask.height(), mask.width(), mask.channels(),
        [&](int y, int x, int k) { return mask.at(y, x, k); }, height, width,
        [&](int y, const float* row) { binarise(y, row, mask.channels()); });
  }
  return out;
}

inline bool any_foreground(const Tensor<Cpu>& mask) {
  return std::any_of(mask.begin(), mask.end(), [](float v) { return v > 0.5f; });
}

}  // namespace detail

class FolderDataset {
 public:
  explicit FolderDataset(const std::filesystem::path& dir, DatasetOptions options = {})
      : options_(std::move(options)) {
    check_target_size(options_.height, options_.width);
    if (!(options_.threshold > 0 && options_.threshold <= 1))
      fail_argument("dataset threshold must be in (0, 1], got ", options_.threshold);
    if (!(options_.painted_white_level > 0 && options_.painted_white_level <= 1))
      fail_argument("painted_white_level must be in (0, 1], got ", options_.painted_white_level);
    name_ = options_.name.empty() ? dir.lexically_normal().filename().string() : options_.name;
    if (name_.empty()) name_ = dir.lexically_normal().parent_path().filename().string();
    load(dir);
  }

  const std::string& name() const { return name_; }
  std::size_t size() const { return samples_.size(); }
  bool empty() const { return samples_.empty(); }
  const Sample& operator[](std::size_t i) const { return samples_.at(i); }
  const std::vector<Sample>& samples() const { return samples_; }
  // Moves the samples out (e.g. to concatenate datasets without copying).
  std::vector<Sample> take_samples() { return std::move(samples_); }

  // The mode actually used (auto resolved), and how auto decided.
  MaskMode mask_mode() const { return mode_; }
  std::size_t pairs_found() const { return pairs_found_; }
  std::size_t photo_like_masks() const { return photo_like_masks_; }
  const std::vector<std::string>& dropped_empty() const { return dropped_empty_; }
  // Every file of every pair found, as "image/<name>" or "mask/<name>" with its size in bytes, in
  // pair order: what a run's fingerprint records of its data.
  struct SourceFile {
    std::string path;
    std::uintmax_t size = 0;
  };
  const std::vector<SourceFile>& files() const { return files_; }

  // One line for logs, e.g. "dataset 'dataset1': 173 of 174 pairs, mask mode painted_white (auto:
  // 174 of 174 masks look like photos), 1 empty mask dropped: 'x.png'".
  std::string summary() const {
    std::string line =
        str_cat("dataset '", name_, "': ", samples_.size(), " of ", pairs_found_, " pairs, ",
                options_.height, "x", options_.width, ", mask mode ", to_string(mode_));
    if (options_.mask_mode == MaskMode::Auto)
      line +=
          str_cat(" (auto: ", photo_like_masks_, " of ", pairs_found_, " masks look like photos)");
    if (!dropped_empty_.empty())
      line +=
          str_cat(", ", dropped_empty_.size(), " empty mask", dropped_empty_.size() == 1 ? "" : "s",
                  " dropped: ", detail::name_list(dropped_empty_));
    return line;
  }

 private:
  struct Pending {
    Sample sample;
    std::string mask_path;
    detail::MaskStats stats;
    Tensor<Cpu> threshold_mask, painted_mask;  // candidates; auto keeps both until it decides
  };

  void load(const std::filesystem::path& dir) {
    const auto images = detail::list_image_files(name_, dir / "image");
    const auto masks = detail::list_image_files(name_, dir / "mask");
    check_pairing(dir, images, masks);
    if (images.empty())
      fail_format("dataset '", name_, "': no image files in '", (dir / "image").string(), "'");

    std::vector<std::pair<std::string, std::string>> pairs;  // image name, mask name
    for (const auto& [stem, image_name] : images) pairs.emplace_back(image_name, masks.at(stem));
    std::sort(pairs.begin(), pairs.end());
    pairs_found_ = pairs.size();
    for (const auto& [image_name, mask_name] : pairs)
      for (const std::string& file : {"image/" + image_name, "mask/" + mask_name}) {
        std::error_code ec;
        const std::uintmax_t size = std::filesystem::file_size(dir / file, ec);
        if (ec)
          fail_format("dataset '", name_, "': cannot read '", (dir / file).string(),
                      "': ", ec.message());
        files_.push_back({file, size});
      }

    std::vector<Pending> pending;
    pending.reserve(pairs.size());
    for (const auto& [image_name, mask_name] : pairs)
      pending.push_back(load_pair(dir / "image" / image_name, dir / "mask" / mask_name));

    for (const Pending& p : pending)
      photo_like_masks_ += p.stats.photo_fraction > detail::photo_pixel_fraction;
    mode_ = options_.mask_mode;
    if (mode_ == MaskMode::Auto)
      mode_ = 2 * photo_like_masks_ > pending.size() ? MaskMode::PaintedWhite : MaskMode::Threshold;

    for (Pending& p : pending) {
      if (mode_ == MaskMode::Threshold) {
        if (p.stats.mid_grey_fraction > options_.max_mid_grey_fraction)
          fail_format("dataset '", name_, "': mask '", p.mask_path,
                      "' is not binary: ", 100 * p.stats.mid_grey_fraction,
                      "% of its pixels are mid-grey (between 0.25 and 0.75), at most ",
                      100 * options_.max_mid_grey_fraction,
                      "% are allowed in threshold mode; if the masks are photos with the "
                      "foreground painted white, use mask mode painted_white");
        p.sample.mask = std::move(p.threshold_mask);
      } else {
        if (!detail::any_foreground(p.painted_mask)) {
          dropped_empty_.push_back(p.sample.name);
          continue;
        }
        p.sample.mask = std::move(p.painted_mask);
      }
      samples_.push_back(std::move(p.sample));
    }
    if (samples_.empty())
      fail_format("dataset '", name_, "': no usable pairs: all ", pairs_found_,
                  " masks are empty (painted_white mode drops pairs whose mask has no pixel with "
                  "mean RGB >= ",
                  options_.painted_white_level * 255, "/255)");
  }

  void check_pairing(const std::filesystem::path& dir,
                     const std::map<std::string, std::string>& images,
                     const std::map<std::string, std::string>& masks) const {
    std::vector<std::string> lone_images, lone_masks;
    for (const auto& [stem, name] : images)
      if (!masks.count(stem)) lone_images.push_back(name);
    for (const auto& [stem, name] : masks)
      if (!images.count(stem)) lone_masks.push_back(name);
    if (lone_images.empty() && lone_masks.empty()) return;
    std::sort(lone_images.begin(), lone_images.end());
    std::sort(lone_masks.begin(), lone_masks.end());
    std::string message =
        str_cat("dataset '", name_, "': unpaired files (pairs share the file stem)");
    if (!lone_images.empty())
      message +=
          str_cat("; ", lone_images.size(), lone_images.size() == 1 ? " image has" : " images have",
                  " no mask in '", (dir / "mask").string(), "': ", detail::name_list(lone_images));
    if (!lone_masks.empty())
      message +=
          str_cat("; ", lone_masks.size(), lone_masks.size() == 1 ? " mask has" : " masks have",
                  " no image in '", (dir / "image").string(), "': ", detail::name_list(lone_masks));
    throw FormatError(message);
  }

  Pending load_pair(const std::filesystem::path& image_path,
                    const std::filesystem::path& mask_path) const {
    // Decoded samples (3 bytes per pixel each) and views: no full-size float copy is made.
    DecodedImage image = load_pixels(image_path, 3, options_.decode);
    if (image.width() < detail::min_image_side || image.height() < detail::min_image_side)
      fail_format("dataset '", name_, "': image '", image_path.string(), "' is ", image.width(),
                  "x", image.height(), " pixels (WxH); at least ", detail::min_image_side, "x",
                  detail::min_image_side, " is required");
    DecodedImage mask = load_pixels(mask_path, 3, options_.decode);
    if (mask.width() != image.width() || mask.height() != image.height())
      fail_format("dataset '", name_, "': mask '", mask_path.string(), "' is ", mask.width(), "x",
                  mask.height(), " (WxH) but its image '", image_path.string(), "' is ",
                  image.width(), "x", image.height());

    Pending p;
    p.sample.dataset = name_;
    p.sample.name = image_path.filename().string();
    p.sample.source_height = image.height();
    p.sample.source_width = image.width();
    p.mask_path = mask_path.string();
    if (options_.rotate_portrait && image.width() < image.height()) {
      image = image.rotated90();
      mask = mask.rotated90();
      p.sample.rotated = true;
    }
    const int h = options_.height, w = options_.width;
    p.sample.image = image_to_tensor(resize_bilinear(image, h, w));
    p.stats = detail::analyse_mask(mask);
    if (options_.mask_mode != MaskMode::PaintedWhite)
      p.threshold_mask = detail::binarise_resized(mask, true, h, w, options_.threshold);
    if (options_.mask_mode != MaskMode::Threshold)
      p.painted_mask = detail::binarise_resized(mask, false, h, w, options_.painted_white_level);
    return p;
  }

  DatasetOptions options_;
  std::string name_;
  MaskMode mode_ = MaskMode::Auto;
  std::size_t pairs_found_ = 0, photo_like_masks_ = 0;
  std::vector<std::string> dropped_empty_;
  std::vector<SourceFile> files_;
  std::vector<Sample> samples_;
};

// ---------------------------------------------------------------------------------------------
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

// ---------------------------------------------------------------------------------------------
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

// ---------------------------------------------------------------------------------------------
// Augmentation (off by default), applied by the batch loader to each sample it copies.

struct Augmentation {
  bool enabled = false;
  bool flips = true;        // horizontal and vertical, each with probability 1/2
  bool rotations = true;    // multiples of 90 degrees when H == W, otherwise 0 or 180 degrees
  float brightness = 0.1f;  // adds uniform(-brightness, brightness) to every image value
  float contrast = 0.1f;    // scales the deviation from the image mean by uniform(1 -/+ contrast)
};

namespace detail {

// In-place geometric transform of every channel of one (C, H, W) item.
inline void flip_item(float* item, int channels, int h, int w, bool horizontal) {
  for (int c = 0; c < channels; ++c) {
    float* plane = item + static_cast<std::size_t>(c) * h * w;
    if (horizontal) {
      for (int y = 0; y < h; ++y) std::reverse(plane + y * w, plane + (y + 1) * w);
    } else {
      for (int y = 0; y < h / 2; ++y)
        std::swap_ranges(plane + y * w, plane + (y + 1) * w, plane + (h - 1 - y) * w);
    }
  }
}

// Rotates a square (C, S, S) item 90 degrees counter-clockwise (as rotate90).
inline void rotate_square_item(float* item, int channels, int s, std::vector<float>& scratch) {
  const std::size_t plane = static_cast<std::size_t>(s) * s;
  scratch.resize(plane);
  for (int c = 0; c < channels; ++c) {
    float* p = item + static_cast<std::size_t>(c) * plane;
    std::copy(p, p + plane, scratch.begin());
    for (int y = 0; y < s; ++y)
      for (int x = 0; x < s; ++x) p[(s - 1 - x) * s + y] = scratch[y * s + x];
  }
}

}  // namespace detail

// Augments item `index` of an image batch (N, C, H, W) and the matching mask batch (N, 1, H, W)
// in place: geometric transforms to both, photometric ones to the image only.
inline void augment(View<Cpu> images, View<Cpu> masks, int index, const Augmentation& aug,
                    Rng& rng) {
  if (!aug.enabled) return;
  const int h = images.shape.h, w = images.shape.w, c = images.shape.c;
  float* image = images.image(index);
  float* mask = masks.image(index);
  if (aug.flips) {
    for (bool horizontal : {true, false})
      if (rng.uniform01() < 0.5) {
        detail::flip_item(image, c, h, w, horizontal);
        detail::flip_item(mask, masks.shape.c, h, w, horizontal);
      }
  }
  if (aug.rotations) {
    if (h == w) {
      std::vector<float> scratch;
      const int turns = static_cast<int>(rng.below(4));
      for (int t = 0; t < turns; ++t) {
        detail::rotate_square_item(image, c, h, scratch);
        detail::rotate_square_item(mask, masks.shape.c, h, scratch);
      }
    } else if (rng.uniform01() < 0.5) {  // 180 degrees = both flips
      for (bool horizontal : {true, false}) {
        detail::flip_item(image, c, h, w, horizontal);
        detail::flip_item(mask, masks.shape.c, h, w, horizontal);
      }
    }
  }
  if (aug.brightness > 0 || aug.contrast > 0) {
    const std::size_t n = images.shape.image_size();
    const float shift = static_cast<float>(rng.uniform(-aug.brightness, aug.brightness));
    const float gain = static_cast<float>(rng.uniform(1.0 - aug.contrast, 1.0 + aug.contrast));
    double sum = 0;
    for (std::size_t i = 0; i < n; ++i) sum += image[i];
    const float mean = static_cast<float>(sum / static_cast<double>(std::max<std::size_t>(n, 1)));
    for (std::size_t i = 0; i < n; ++i)
      image[i] = std::clamp((image[i] - mean) * gain + mean + shift, 0.0f, 1.0f);
  }
}

// ---------------------------------------------------------------------------------------------
// Batch loader: a background thread assembles batch k + 1 (copy, augmentation, optional hook)
// while the caller trains on batch k.

struct Batch {
  Tensor<Cpu> images;                // (N, 3, H, W)
  Tensor<Cpu> masks;                 // (N, 1, H, W)
  std::vector<std::size_t> indices;  // sample indices, in batch order
  std::size_t number = 0;            // 0-based batch number
};

struct LoaderOptions {
  int batch_size = 8;
  bool drop_last = false;  // drop a final batch smaller than batch_size
  Augmentation augmentation;
  std::uint64_t seed = 0;  // augmentation stream; the same seed gives the same batches
  // Runs on the loader thread after a batch is assembled (extra preprocessing). Its exceptions,
  // like the loader's own, are rethrown by next().
  std::function<void(Batch&)> prepare;
};

class BatchLoader {
 public:
  // `samples` must outlive the loader and must not change while it runs. `order` lists the sample
  // indices to serve (e.g. a shuffled training part); batches follow it.
  BatchLoader(const std::vector<Sample>& samples, std::vector<std::size_t> order,
              LoaderOptions options = {})
      : samples_(samples), order_(std::move(order)), options_(std::move(options)) {
    if (options_.batch_size < 1)
      fail_argument("BatchLoader: batch_size must be >= 1, got ", options_.batch_size);
    for (std::size_t i : order_)
      if (i >= samples_.size())
        fail_argument("BatchLoader: index ", i, " outside ", samples_.size(), " samples");
    const std::size_t bs = static_cast<std::size_t>(options_.batch_size);
    batch_count_ = options_.drop_last ? order_.size() / bs : (order_.size() + bs - 1) / bs;
    worker_ = std::thread([this] { run(); });
  }
  BatchLoader(const BatchLoader&) = delete;
  BatchLoader& operator=(const BatchLoader&) = delete;

  ~BatchLoader() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    changed_.notify_all();
    worker_.join();
  }

  std::size_t batch_count() const { return batch_count_; }

  // Moves the next batch into `batch`; false after the last one. Rethrows a loader-side exception
  // (after the batches prepared before it), then reports the end.
  bool next(Batch& batch) {
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [this] { return ready_.has_value() || finished_; });
    if (ready_) {
      batch = std::move(*ready_);
      ready_.reset();
      lock.unlock();
      changed_.notify_all();
      return true;
    }
    if (error_) {
      std::exception_ptr error = std::move(error_);
      error_ = nullptr;
      std::rethrow_exception(error);
    }
    return false;
  }

 private:
  void run() {
    try {
      Rng rng(options_.seed);
      const std::size_t bs = static_cast<std::size_t>(options_.batch_size);
      for (std::size_t b = 0; b < batch_count_; ++b) {
        Batch batch = assemble(b, bs, rng);
        if (options_.prepare) options_.prepare(batch);
        std::unique_lock<std::mutex> lock(mutex_);
        changed_.wait(lock, [this] { return !ready_.has_value() || stop_; });
        if (stop_) break;
        ready_ = std::move(batch);
        lock.unlock();
        changed_.notify_all();
      }
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex_);
      error_ = std::current_exception();
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      finished_ = true;
    }
    changed_.notify_all();
  }

  Batch assemble(std::size_t b, std::size_t bs, Rng& rng) const {
    const std::size_t begin = b * bs, end = std::min(begin + bs, order_.size());
    Batch batch;
    batch.number = b;
    batch.indices.assign(order_.begin() + static_cast<std::ptrdiff_t>(begin),
                         order_.begin() + static_cast<std::ptrdiff_t>(end));
    const int n = static_cast<int>(end - begin);
    const Sample& first = samples_[batch.indices[0]];
    const Shape is = first.image.shape(), ms = first.mask.shape();
    batch.images.resize(Shape{n, is.c, is.h, is.w});
    batch.masks.resize(Shape{n, ms.c, ms.h, ms.w});
    for (int i = 0; i < n; ++i) {
      const Sample& s = samples_[batch.indices[static_cast<std::size_t>(i)]];
      if (!(s.image.shape() == is) || !(s.mask.shape() == ms))
        fail_argument("BatchLoader: sample '", s.dataset, "/", s.name, "' has image ",
                      s.image.shape().str(), " and mask ", s.mask.shape().str(),
                      ", but the batch holds ", is.str(), " and ", ms.str());
      std::copy(s.image.begin(), s.image.end(), batch.images.view().image(i));
      std::copy(s.mask.begin(), s.mask.end(), batch.masks.view().image(i));
      augment(batch.images.view(), batch.masks.view(), i, options_.augmentation, rng);
    }
    return batch;
  }

  const std::vector<Sample>& samples_;
  std::vector<std::size_t> order_;
  LoaderOptions options_;
  std::size_t batch_count_ = 0;

  std::mutex mutex_;
  std::condition_variable changed_;
  std::optional<Batch> ready_;
  bool stop_ = false, finished_ = false;
  std::exception_ptr error_;
  std::thread worker_;  // last: started after every other member is initialised
};

}  // namespace unetsrnn
