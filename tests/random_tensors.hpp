#pragma once
// Seeded random tensors for the test suites (CPU and CUDA ones alike). Values are drawn image by
// image in memory order, so a view and a whole tensor of the same shape get the same values.
#include <cstdint>

#include "unetsrnn/core/rng.hpp"
#include "unetsrnn/tensor/tensor.hpp"

namespace unetsrnn::testing {

// Uniform values in [lo, hi) (v may be a strided channel block).
inline void fill_uniform(View<Cpu> v, Rng& rng, double lo = -1.0, double hi = 1.0) {
  for (int n = 0; n < v.shape.n; ++n)
    for (std::size_t k = 0; k < v.shape.image_size(); ++k)
      v.image(n)[k] = static_cast<float>(rng.uniform(lo, hi));
}
inline Tensor<Cpu> random_tensor(Shape s, Rng& rng, double lo = -1.0, double hi = 1.0) {
  Tensor<Cpu> t(s);
  fill_uniform(t, rng, lo, hi);
  return t;
}
inline Tensor<Cpu> random_tensor(Shape s, std::uint64_t seed, double lo = -1.0, double hi = 1.0) {
  Rng rng(seed);
  return random_tensor(s, rng, lo, hi);
}

// Magnitudes uniform in [lo, hi] with random signs: values of both signs kept away from zero (a
// ReLU's kink; Spatial RNN weights strong enough to carry a signal far).
inline void fill_signed(View<Cpu> v, Rng& rng, double lo, double hi) {
  for (int n = 0; n < v.shape.n; ++n)
    for (std::size_t k = 0; k < v.shape.image_size(); ++k) {
      const double magnitude = rng.uniform(lo, hi);
      v.image(n)[k] = static_cast<float>(rng.uniform01() < 0.5 ? -magnitude : magnitude);
    }
}

// Spatial RNN weights away from zero and of both signs, |w| in [0.4, 1.1]: a chain of L steps then
// carries signal far (the initialiser's +-0.05 would make every step after the first negligible).
inline void set_strong_srnn_weights(Tensor<Cpu>& w, std::uint64_t seed) {
  Rng rng(seed);
  fill_signed(w, rng, 0.4, 1.1);
}

}  // namespace unetsrnn::testing
