#pragma once
// CPU bodies of the pointwise, data-movement and optimiser ops (contracts in ops/ops.hpp).
#include <cmath>
#include <cstddef>

#include "unetsrnn/tensor/tensor.hpp"

namespace unetsrnn::cpu {

// Applies f(i, a, b) to each image i of a pair of same-shape views, as contiguous spans.
template <class A, class B, class F>
void for_each_image(const A& a, const B& b, F&& f) {
  for (int i = 0; i < a.shape.n; ++i) f(a.image(i), b.image(i), a.shape.image_size());
}

inline void fill(View<Cpu> y, float value) {
  for (int i = 0; i < y.shape.n; ++i) {
    float* p = y.image(i);
    for (std::size_t k = 0, n = y.shape.image_size(); k < n; ++k) p[k] = value;
  }
}
inline void copy(CView<Cpu> x, View<Cpu> y) {
  for_each_image(x, y, [](const float* s, float* d, std::size_t n) {
    for (std::size_t k = 0; k < n; ++k) d[k] = s[k];
  });
}
inline void add(CView<Cpu> x, View<Cpu> y) {
  for_each_image(x, y, [](const float* s, float* d, std::size_t n) {
    for (std::size_t k = 0; k < n; ++k) d[k] += s[k];
  });
}
inline void relu_forward(CView<Cpu> x, View<Cpu> y) {
  for_each_image(x, y, [](const float* s, float* d, std::size_t n) {
    for (std::size_t k = 0; k < n; ++k) d[k] = s[k] > 0.0f ? s[k] : 0.0f;
  });
}
inline void relu_backward(CView<Cpu> y, CView<Cpu> dy, View<Cpu> dx, bool accumulate) {
  for (int i = 0; i < y.shape.n; ++i) {
    const float* yy = y.image(i);
    const float* g = dy.image(i);
    float* d = dx.image(i);
    const std::size_t n = y.shape.image_size();
    if (accumulate) {
      for (std::size_t k = 0; k < n; ++k) d[k] += yy[k] > 0.0f ? g[k] : 0.0f;
    } else {
      for (std::size_t k = 0; k < n; ++k) d[k] = yy[k] > 0.0f ? g[k] : 0.0f;
    }
  }
}
inline float sigmoid(float x) {
  // exp of a non-positive argument only, so it never overflows.
  if (x >= 0.0f) return 1.0f / (1.0f + std::exp(-x));
  const float e = std::exp(x);
  return e / (1.0f + e);
}
inline void sigmoid_forward(CView<Cpu> x, View<Cpu> y) {
  for_each_image(x, y, [](const float* s, float* d, std::size_t n) {
    for (std::size_t k = 0; k < n; ++k) d[k] = sigmoid(s[k]);
  });
}

inline void adam_update(View<Cpu> p, CView<Cpu> g, View<Cpu> m, View<Cpu> v, float lr_t, float b1,
                        float b2, float eps) {
  float* pp = p.data;
  const float* gg = g.data;
  float* mm = m.data;
  float* vv = v.data;
  const std::size_t n = p.shape.size();
#pragma omp parallel for simd schedule(static) if (n > 65536)
  for (std::size_t k = 0; k < n; ++k) {
    mm[k] = b1 * mm[k] + (1.0f - b1) * gg[k];
    vv[k] = b2 * vv[k] + (1.0f - b2) * gg[k] * gg[k];
    pp[k] -= lr_t * mm[k] / (std::sqrt(vv[k]) + eps);
  }
}
inline void sgd_update(View<Cpu> p, CView<Cpu> g, View<Cpu> vel, float lr, float momentum) {
  const std::size_t n = p.shape.size();
  for (std::size_t k = 0; k < n; ++k) {
    vel.data[k] = momentum * vel.data[k] - lr * g.data[k];
    p.data[k] += vel.data[k];
  }
}

}  // namespace unetsrnn::cpu
