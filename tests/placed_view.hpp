#pragma once
// A view that is either a whole tensor or a channel block inside a larger one (as fused
// concatenation produces: consecutive images are not adjacent), the rest of the larger tensor
// holding a sentinel, so that a test sees an op that reads or writes outside its view.
#include <algorithm>
#include <cstring>

#include "unetsrnn/tensor/tensor.hpp"

namespace unetsrnn::testing {

inline constexpr float kSentinel = -777.25f;  // marks memory an op must not touch

struct Placed {
  Tensor<Cpu> whole;
  View<Cpu> view;
  int before = 0;

  Placed(const Placed&) = delete;  // `view` points into `whole`
  Placed& operator=(const Placed&) = delete;
  // strided: the block sits after `before_channels` and before `after_channels` other channels.
  Placed(Shape s, bool strided, int before_channels = 2, int after_channels = 3) {
    before = strided ? before_channels : 0;
    const int after = strided ? after_channels : 0;
    whole = Tensor<Cpu>(Shape{s.n, s.c + before + after, s.h, s.w}, kSentinel);
    view = whole.view().channels(before, s.c);
  }
  // Sets every element of the block (and only those) to v.
  void fill(float v) {
    for (int n = 0; n < view.shape.n; ++n)
      std::fill(view.image(n), view.image(n) + view.shape.image_size(), v);
  }
  // True when every element outside the block still holds the sentinel.
  bool outside_untouched() const {
    const CView<Cpu> all = whole.cview();
    for (int n = 0; n < all.shape.n; ++n)
      for (int c = 0; c < all.shape.c; ++c) {
        if (c >= before && c < before + view.shape.c) continue;
        const float* p = all.channel(n, c);
        for (std::size_t k = 0; k < all.shape.plane(); ++k)
          if (std::memcmp(&p[k], &kSentinel, sizeof(float)) != 0) return false;
      }
    return true;
  }
};

// Whether two views hold the same bits (same shape, every image).
inline bool bitwise_equal(CView<Cpu> a, CView<Cpu> b) {
  if (!(a.shape == b.shape)) return false;
  for (int n = 0; n < a.shape.n; ++n)
    if (std::memcmp(a.image(n), b.image(n), a.shape.image_size() * sizeof(float)) != 0)
      return false;
  return true;
}

// dst = src, image by image (either may be a channel block of a larger tensor).
inline void copy_into(CView<Cpu> src, View<Cpu> dst) {
  for (int n = 0; n < src.shape.n; ++n)
    std::memcpy(dst.image(n), src.image(n), src.shape.image_size() * sizeof(float));
}

}  // namespace unetsrnn::testing
