#pragma once
// One decoded, resized image/mask pair as every dataset holds it (data/folders.hpp reads them from
// folders, data/synthetic.hpp generates them), and the size rule of the U-Net's input.
#include <string>

#include "unetsrnn/core/error.hpp"
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

// Checks a target size for the U-Net (four 2x poolings need multiples of 16).
inline void check_target_size(int height, int width) {
  if (height <= 0 || width <= 0 || height % 16 != 0 || width % 16 != 0)
    fail_argument("target size ", height, "x", width,
                  " (HxW) is invalid: both must be positive multiples of 16 (the U-Net pools four "
                  "times), e.g. 160x192");
}

}  // namespace unetsrnn
