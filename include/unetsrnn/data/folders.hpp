#pragma once
// Segmentation datasets on disk: finding and pairing image/mask files, mask modes, decoding.
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
//   mask is resized bilinearly and a pixel is foreground where mean(R, G, B) >=
//   `painted_white_level` (250/255). Pairs whose mask comes out empty are dropped, as the original
//   did; they are counted and named in dropped_empty().
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
#include <cstddef>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "unetsrnn/core/error.hpp"
#include "unetsrnn/data/sample.hpp"
#include "unetsrnn/io/image.hpp"
#include "unetsrnn/tensor/tensor.hpp"

namespace unetsrnn {

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

}  // namespace unetsrnn
