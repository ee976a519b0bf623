#pragma once
// Training-time augmentation of an image/mask pair: flips, rotations, brightness and contrast.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "unetsrnn/core/rng.hpp"
#include "unetsrnn/tensor/tensor.hpp"

namespace unetsrnn {

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

}  // namespace unetsrnn
