#pragma once
// The predict program (see --help): options, and the run on device Dev.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <unetsrnn/data/dataset.hpp>
#include <unetsrnn/io/image.hpp>
#include <unetsrnn/io/weights.hpp>
#include <unetsrnn/models/factory.hpp>
#include <unetsrnn/ops/cpu/backend.hpp>
#include <unetsrnn/train/trainer.hpp>

#include "cli.hpp"
#include "device.hpp"

namespace examples {

inline cli::Parser predict_parser() {
  cli::Parser p("predict", "Segment an image file or every image in a folder.");
  p.option("--weights", "FILE", "weights written by train (the model is read from the file)", "");
  p.option("--input", "PATH", "an image file or a folder of images", "");
  p.option("--out", "DIR", "where <name>_mask.png and <name>_overlay.png go", "");
  p.option("--height", "H", "size the model sees (multiple of 16)", "160");
  p.option("--width", "W", "size the model sees (multiple of 16)", "192");
  p.option("--threshold", "P", "foreground where the probability >= P", "0.5");
  p.flag("--no-rotate", "do not rotate portrait images for the model (as in training)");
  add_device_option(p);
  return p;
}

template <class Dev>
int predict_body(const cli::Parser& p) {
  namespace fs = std::filesystem;
  using namespace unetsrnn;
  for (const char* required : {"--weights", "--input", "--out"})
    if (p.get(required).empty()) p.usage_error(std::string(required) + " is required");
  const int h = p.get_int("--height"), w = p.get_int("--width");
  check_target_size(h, w);
  const double threshold = p.get_double("--threshold");
  if (!(threshold > 0.0 && threshold < 1.0)) p.usage_error("--threshold must be in (0, 1)");
  const WeightsHeader header = read_weights_header(p.get("--weights"));
  auto model = make_model<Dev>(header.model_name);
  load_weights(*model, p.get("--weights"));

  std::vector<fs::path> inputs;
  const fs::path input = p.get("--input");
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
  const fs::path out = p.get("--out");
  std::error_code ec;
  fs::create_directories(out, ec);
  if (ec) throw std::invalid_argument("cannot create '" + out.string() + "': " + ec.message());

  HostStaging<Dev> staging;  // the image to the device, the logits back
  for (const fs::path& file : inputs) {
    const Image original = load_image(file, 3);
    const bool rotate = !p.has("--no-rotate") && original.width < original.height;
    const Image upright = rotate ? rotate90(original, 1) : original;
    const Tensor<Cpu> x = image_to_tensor(resize_bilinear(upright, h, w));
    CView<Cpu> logits = staging.forward(*model, x);
    Image prob(h, w, 1);
    for (std::size_t i = 0; i < prob.data.size(); ++i) prob.data[i] = cpu::sigmoid(logits.data[i]);
    // Back to the file's geometry: undo the rotation, resize the probabilities, then threshold.
    Image back =
        resize_bilinear(rotate ? rotate90(prob, 3) : prob, original.height, original.width);
    std::size_t fg = 0;
    for (float& v : back.data) {
      v = v >= threshold ? 1.0f : 0.0f;
      fg += v > 0.5f;
    }
    const std::string stem = file.stem().string();
    save_png(out / (stem + "_mask.png"), back);
    save_png(out / (stem + "_overlay.png"), overlay(original, back));
    std::printf("%s: %dx%d, %.1f%% foreground -> %s_mask.png, %s_overlay.png\n",
                file.filename().string().c_str(), original.width, original.height,
                100.0 * static_cast<double>(fg) / static_cast<double>(back.data.size()),
                stem.c_str(), stem.c_str());
  }
  return 0;
}

}  // namespace examples
