#pragma once
// The predict program (see --help): its options, and the run on device Dev.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <unetsrnn/data/dataset.hpp>
#include <unetsrnn/io/image.hpp>
#include <unetsrnn/io/run_folder.hpp>
#include <unetsrnn/io/weights.hpp>
#include <unetsrnn/models/factory.hpp>
#include <unetsrnn/ops/cpu/backend.hpp>
#include <unetsrnn/train/trainer.hpp>

#include "app/cli.hpp"
#include "common.hpp"
#include "device.hpp"
#include "shipped_model.hpp"

namespace examples {

inline constexpr const char* kPredictSummary =
    "Segment an image file or every image in a folder. JPEGs are read in their EXIF orientation; "
    "every image of a folder is tried and the failures listed at the end.";

struct PredictArgs {
  std::string weights, input, out;
  int height = 160, width = 192;
  double threshold = 0.5;
  bool no_rotate = false;
  double max_megapixels = default_max_megapixels();
  std::string device = "cpu";
};

inline void add_predict_options(app::Command& c, PredictArgs& a) {
  c.option("--weights", a.weights, "FILE",
           "weights written by train (the model is read from the file); default: the shipped "
           "fingernail model models/crunet_res_lw-fingernails.weights (see models/README.md)");
  c.option("--input", a.input, "PATH", "an image file or a folder of images; required");
  c.option("--out", a.out, "DIR",
           "where <file name>_mask.png and <file name>_overlay.png go; required");
  add_size_options(c, a.height, a.width);
  c.option("--threshold", a.threshold, "P", "foreground where the probability >= P")
      ->check(app::number_in(0.0, 1.0, true, true));
  c.flag("--no-rotate", a.no_rotate,
         "do not rotate portrait images for the model (as in training)");
  add_max_megapixels_option(c, a.max_megapixels);
  add_device_option(c, a.device);
}

// Segments one image and writes <file name>_mask.png and _overlay.png at its displayed size: both
// or, on any error, neither. Memory stays near 13 bytes per pixel of the image (see README).
template <class Dev>
void predict_one(unetsrnn::AnyModel<Dev>& model, unetsrnn::HostStaging<Dev>& staging,
                 const std::filesystem::path& file, const std::filesystem::path& out,
                 const PredictArgs& a, const unetsrnn::DecodeOptions& decode) {
  namespace fs = std::filesystem;
  using namespace unetsrnn;
  DecodedImage original = load_pixels(file, 3, decode);
  const int height = original.height(), width = original.width();
  const int h = a.height, w = a.width;
  const bool rotate = !a.no_rotate && width < height;
  const Tensor<Cpu> x =
      image_to_tensor(resize_bilinear(rotate ? original.rotated90() : original, h, w));
  CView<Cpu> logits = staging.forward(model, x);
  Image prob(h, w, 1);
  for (std::size_t i = 0; i < prob.data.size(); ++i) prob.data[i] = cpu::sigmoid(logits.data[i]);
  // Back to the image's geometry: undo the rotation, resize the probabilities, then threshold,
  // one row at a time.
  if (rotate) prob = rotate90(prob, 3);
  ByteImage mask(height, width, 1);
  std::size_t fg = 0;
  resize_bilinear_rows(
      prob.height, prob.width, 1, [&](int y, int x_, int) { return prob.at(y, x_, 0); }, height,
      width,
      [&](int y, const float* row) {
        unsigned char* m = &mask.data[static_cast<std::size_t>(y) * width];
        for (int i = 0; i < width; ++i) {
          m[i] = row[i] >= a.threshold ? 255 : 0;
          fg += m[i] != 0;
        }
      });
  const std::string name = file.filename().string();  // with its extension: x.jpg, x.png differ
  const fs::path mask_path = out / (name + "_mask.png"),
                 overlay_path = out / (name + "_overlay.png");
  const std::string mask_png = detail::encode_png(mask, mask_path.string());
  std::string overlay_png;
  {
    const ByteImage tinted = overlay(original, mask);
    original = DecodedImage();  // the decoded image is not needed for encoding
    overlay_png = detail::encode_png(tinted, overlay_path.string());
  }
  write_file_atomic(mask_path, mask_png, Durability::Flushed);
  try {
    write_file_atomic(overlay_path, overlay_png, Durability::Flushed);
  } catch (...) {
    std::error_code ignored;
    fs::remove(mask_path, ignored);  // never a mask without its overlay
    throw;
  }
  std::printf("%s: %dx%d, %.1f%% foreground -> %s, %s\n", name.c_str(), width, height,
              100.0 * static_cast<double>(fg) / static_cast<double>(mask.data.size()),
              mask_path.filename().string().c_str(), overlay_path.filename().string().c_str());
  std::fflush(stdout);
}

template <class Dev>
int predict_body(const PredictArgs& a) {
  namespace fs = std::filesystem;
  using namespace unetsrnn;
  if (a.input.empty()) app::usage_error("predict", "--input is required");
  if (a.out.empty()) app::usage_error("predict", "--out is required");
  std::string weights = a.weights;
  if (weights.empty()) {
    std::string tried;
    weights = find_shipped_weights(tried).string();
    if (weights.empty())
      app::usage_error("predict", std::string("--weights is not given and the shipped model ") +
                                      kShippedWeights + " is not in any of: " + tried +
                                      " (set UNETSRNN_MODELS to its folder)");
    std::fprintf(stderr, "predict: no --weights given: using the shipped model %s\n",
                 weights.c_str());
  }
  const DecodeOptions decode = decode_options(a.max_megapixels);
  // Weights and inputs are checked before the output folder is made.
  const WeightsHeader header = read_weights_header(weights);
  auto model = make_model<Dev>(header.model_name);
  load_weights(*model, weights);

  std::vector<fs::path> inputs;
  const fs::path input = a.input;
  if (fs::is_directory(input)) {
    for (const auto& e : fs::directory_iterator(input))
      if (e.is_regular_file() && detail::is_image_file(e.path())) inputs.push_back(e.path());
    std::sort(inputs.begin(), inputs.end());
    if (inputs.empty()) throw std::invalid_argument("no image files in '" + input.string() + "'");
  } else if (fs::exists(input)) {
    inputs.push_back(input);
  } else {
    throw std::invalid_argument("input '" + input.string() + "' does not exist");
  }
  RunFolder out = RunFolder::open(a.out);

  HostStaging<Dev> staging;  // the image to the device, the logits back
  std::vector<std::string> failures;
  for (const fs::path& file : inputs) {
    try {
      predict_one(*model, staging, file, out.path(), a, decode);
    } catch (const std::exception& e) {
      failures.push_back(file.filename().string() + ": " + e.what());
      std::fprintf(stderr, "predict: %s: %s\n", file.string().c_str(), e.what());
    }
  }
  if (failures.empty()) return 0;
  std::fprintf(stderr, "predict: %zu of %zu images failed:\n", failures.size(), inputs.size());
  for (const std::string& f : failures) std::fprintf(stderr, "  %s\n", f.c_str());
  return 1;
}

#ifdef UNETSRNN_EXAMPLES_CUDA
int on_cuda(const PredictArgs& args);  // predict_body<Cuda> (cuda_programs.cu)
#endif

}  // namespace examples
