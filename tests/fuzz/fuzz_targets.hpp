#pragma once
// The fuzz targets: each feeds arbitrary bytes to one of the library's readers. A reader may
// refuse its input only with unetsrnn::FormatError (a clear message naming the input); any other
// exception, crash, leak, hang or sanitizer report is a finding. Shared by the libFuzzer
// harnesses (fuzz_main.cpp) and test_fuzz_corpus.cpp, which replays the committed inputs
// with the project's own compiler.
#include <cstddef>
#include <cstdint>
#include <sstream>
#include <string>
#include <string_view>

#include "app/training_log.hpp"
#include "unetsrnn/io/image.hpp"
#include "unetsrnn/io/weights.hpp"
#include "unetsrnn/train/checkpoint.hpp"
#include "unetsrnn/train/optim.hpp"

namespace unetsrnn_fuzz {

using namespace unetsrnn;

// A model with two small tensors: what weights files and optimiser states are checked against.
struct FuzzModel {
  Param<Cpu> weight{Shape{2, 1, 3, 3}, Init::Zeros};
  Param<Cpu> bias{Shape{1, 2, 1, 1}, Init::Zeros};
  std::string name() const { return "fuzz_net"; }
  ParamList<Cpu> parameters() { return {{"conv.weight", &weight}, {"conv.bias", &bias}}; }
};

// Images: the header check, the decoders (stb), EXIF, the views and the resampler.
inline int fuzz_image(const std::uint8_t* data, std::size_t size) {
  (void)jpeg_exif_orientation(data, size);
  DecodeOptions options;
  options.max_pixels = 1u << 18;  // keeps every input fast; the limit itself is exercised too
  static constexpr int kChannels[4] = {3, 0, 1, 4};
  try {
    const DecodedImage image = decode_pixels(data, size, "fuzz", kChannels[size % 4], options);
    const Image small = resize_bilinear(image.rotated90(), 16, 16);
    if (small.data.size() != 16u * 16u * static_cast<std::size_t>(image.channels()))
      __builtin_trap();
    if (image.pixels() <= 4096) (void)image.oriented(7).to_image();
  } catch (const FormatError&) {
  }
  return 0;
}

// Weights files: the parser, then loading into a model.
inline int fuzz_weights(const std::uint8_t* data, std::size_t size) {
  try {
    const detail::ParsedWeights parsed = detail::parse_weights(
        std::string(reinterpret_cast<const char*>(data), size), "fuzz.weights");
    FuzzModel model;
    detail::load_parsed_weights(model, parsed, "fuzz.weights");
  } catch (const FormatError&) {
  }
  return 0;
}

// Optimiser states: Adam against the model's parameters, then a step; SGD unchecked.
inline int fuzz_optimiser_state(const std::uint8_t* data, std::size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  FuzzModel model;
  ParamList<Cpu> params = model.parameters();
  try {
    std::istringstream in(bytes);
    Adam<Cpu> adam;
    adam.load_state(in, params);
    adam.step(params);
  } catch (const FormatError&) {
  }
  try {
    std::istringstream in(bytes);
    Sgd<Cpu> sgd;
    sgd.load_state(in);
    if (sgd.has_state()) sgd.step(params);
  } catch (const FormatError&) {
  }
  return 0;
}

// checkpoint.txt (with its fingerprint and schedule line) and log.csv (the examples' run report).
inline int fuzz_checkpoint(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    const CheckpointState state = parse_checkpoint(text, "checkpoint.txt");
    std::istringstream plateau(state.plateau + "\n");
    ReduceLROnPlateau schedule;
    schedule.load_state(plateau);
    if (state.fingerprint) (void)state.fingerprint->differences(RunFingerprint{});
  } catch (const FormatError&) {
  }
  try {
    std::istringstream line{std::string(text)};
    CosineSchedule cosine(1e-3, 0.0, 10);
    cosine.load_state(line);
  } catch (const FormatError&) {
  }
  try {
    (void)app::parse_log_csv(text, "log.csv", 2);
  } catch (const FormatError&) {
  }
  return 0;
}

}  // namespace unetsrnn_fuzz
