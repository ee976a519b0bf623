#pragma once
// CPU bodies of the pointwise, data-movement and optimiser ops (contracts in ops/ops.hpp).
// Memory-bound loops: large tensors are cut into chunks that the threads share; small ones run on
// the calling thread, where starting a parallel region would cost more than the loop.
#include <algorithm>
#include <cmath>
#include <cstddef>

#include "unetsrnn/ops/cpu/threads.hpp"
#include "unetsrnn/tensor/tensor.hpp"

namespace unetsrnn::cpu {

namespace pointwise_detail {
constexpr std::size_t kChunk = 16384;         // elements per task: 64 KiB of floats
constexpr std::size_t kParallelFrom = 65536;  // fewer elements than this stay on one thread
}  // namespace pointwise_detail

// Calls f(i, begin, end) over elements [begin, end) of image i, for every image of a view with
// `image_size` elements per image, in chunks spread over the threads when the view is large.
template <class F>
void for_each_chunk(int images, std::size_t image_size, F&& f) {
  using namespace pointwise_detail;
  const std::size_t chunks = (image_size + kChunk - 1) / kChunk;
  const long long tasks = static_cast<long long>(images) * static_cast<long long>(chunks);
  const bool parallel = static_cast<std::size_t>(images) * image_size >= kParallelFrom;
  parallel_for(tasks, parallel, [&](long long t) {
    const int i = static_cast<int>(t / static_cast<long long>(chunks));
    const std::size_t begin = static_cast<std::size_t>(t % static_cast<long long>(chunks)) * kChunk;
    f(i, begin, std::min(image_size, begin + kChunk));
  });
}

inline void fill(View<Cpu> y, float value) {
  for_each_chunk(y.shape.n, y.shape.image_size(), [&](int i, std::size_t b, std::size_t e) {
    float* p = y.image(i);
    for (std::size_t k = b; k < e; ++k) p[k] = value;
  });
}
inline void copy(CView<Cpu> x, View<Cpu> y) {
  for_each_chunk(x.shape.n, x.shape.image_size(), [&](int i, std::size_t b, std::size_t e) {
    const float* s = x.image(i);
    float* d = y.image(i);
    for (std::size_t k = b; k < e; ++k) d[k] = s[k];
  });
}
inline void add(CView<Cpu> x, View<Cpu> y) {
  for_each_chunk(x.shape.n, x.shape.image_size(), [&](int i, std::size_t b, std::size_t e) {
    const float* s = x.image(i);
    float* d = y.image(i);
    for (std::size_t k = b; k < e; ++k) d[k] += s[k];
  });
}
inline void relu_forward(CView<Cpu> x, View<Cpu> y) {
  for_each_chunk(x.shape.n, x.shape.image_size(), [&](int i, std::size_t b, std::size_t e) {
    const float* s = x.image(i);
    float* d = y.image(i);
    for (std::size_t k = b; k < e; ++k) d[k] = s[k] > 0.0f ? s[k] : 0.0f;
  });
}
inline void relu_backward(CView<Cpu> y, CView<Cpu> dy, View<Cpu> dx, bool accumulate) {
  for_each_chunk(y.shape.n, y.shape.image_size(), [&](int i, std::size_t b, std::size_t e) {
    const float* yy = y.image(i);
    const float* g = dy.image(i);
    float* d = dx.image(i);
    if (accumulate) {
      for (std::size_t k = b; k < e; ++k) d[k] += yy[k] > 0.0f ? g[k] : 0.0f;
    } else {
      for (std::size_t k = b; k < e; ++k) d[k] = yy[k] > 0.0f ? g[k] : 0.0f;
    }
  });
}
inline float sigmoid(float x) {
  // exp of a non-positive argument only, so it never overflows.
  if (x >= 0.0f) return 1.0f / (1.0f + std::exp(-x));
  const float e = std::exp(x);
  return e / (1.0f + e);
}
inline void sigmoid_forward(CView<Cpu> x, View<Cpu> y) {
  for_each_chunk(x.shape.n, x.shape.image_size(), [&](int i, std::size_t b, std::size_t e) {
    const float* s = x.image(i);
    float* d = y.image(i);
    for (std::size_t k = b; k < e; ++k) d[k] = sigmoid(s[k]);
  });
}

inline void adam_update(View<Cpu> p, CView<Cpu> g, View<Cpu> m, View<Cpu> v, float lr_t, float b1,
                        float b2, float eps) {
  float* pp = p.data;
  const float* gg = g.data;
  float* mm = m.data;
  float* vv = v.data;
  for_each_chunk(1, p.shape.size(), [&](int, std::size_t b, std::size_t e) {
#pragma omp simd
    for (std::size_t k = b; k < e; ++k) {
      mm[k] = b1 * mm[k] + (1.0f - b1) * gg[k];
      vv[k] = b2 * vv[k] + (1.0f - b2) * gg[k] * gg[k];
      pp[k] -= lr_t * mm[k] / (std::sqrt(vv[k]) + eps);
    }
  });
}
inline void sgd_update(View<Cpu> p, CView<Cpu> g, View<Cpu> vel, float lr, float momentum) {
  for_each_chunk(1, p.shape.size(), [&](int, std::size_t b, std::size_t e) {
#pragma omp simd
    for (std::size_t k = b; k < e; ++k) {
      vel.data[k] = momentum * vel.data[k] - lr * g.data[k];
      p.data[k] += vel.data[k];
    }
  });
}

}  // namespace unetsrnn::cpu
