#pragma once
// CPU bodies of the 2x2 max-pool (contracts in ops/ops.hpp). Planes (image, channel) are
// independent, so large tensors spread them over the threads.
#include <cstddef>

#include "unetsrnn/ops/cpu/threads.hpp"
#include "unetsrnn/tensor/tensor.hpp"

namespace unetsrnn::cpu {

namespace pool_detail {
constexpr std::size_t kParallelFrom = 65536;  // elements of x below which one thread does it all

// Calls f(image, channel) for every plane of an (N, C, ...) view of `elements` floats.
template <class F>
void for_each_plane(int N, int C, std::size_t elements, F&& f) {
  parallel_for(static_cast<long long>(N) * C, elements >= kParallelFrom,
               [&](long long p) { f(static_cast<int>(p / C), static_cast<int>(p % C)); });
}
}  // namespace pool_detail

inline void maxpool2x2_forward(CView<Cpu> x, View<Cpu> y) {
  const int H2 = y.shape.h, W2 = y.shape.w, W = x.shape.w;
  pool_detail::for_each_plane(x.shape.n, x.shape.c, x.shape.size(), [&](int n, int c) {
    const float* s = x.channel(n, c);
    float* d = y.channel(n, c);
    for (int i = 0; i < H2; ++i) {
      const float* r0 = s + static_cast<std::size_t>(2 * i) * W;
      const float* r1 = r0 + W;
      float* out = d + static_cast<std::size_t>(i) * W2;
      for (int j = 0; j < W2; ++j) {
        const float a = r0[2 * j], b = r0[2 * j + 1], e = r1[2 * j], f = r1[2 * j + 1];
        const float m = a > b ? a : b, m2 = e > f ? e : f;
        out[j] = m > m2 ? m : m2;
      }
    }
  });
}

// The first window element equal to the pooled maximum (row-major) receives the gradient.
inline void maxpool2x2_backward(CView<Cpu> x, CView<Cpu> y, CView<Cpu> dy, View<Cpu> dx,
                                bool accumulate) {
  const int H2 = y.shape.h, W2 = y.shape.w, W = x.shape.w;
  pool_detail::for_each_plane(x.shape.n, x.shape.c, x.shape.size(), [&](int n, int c) {
    const float* s = x.channel(n, c);
    const float* m = y.channel(n, c);
    const float* g = dy.channel(n, c);
    float* d = dx.channel(n, c);
    for (int i = 0; i < H2; ++i) {
      const float* s0 = s + static_cast<std::size_t>(2 * i) * W;
      const float* s1 = s0 + W;
      float* d0 = d + static_cast<std::size_t>(2 * i) * W;
      float* d1 = d0 + W;
      for (int j = 0; j < W2; ++j) {
        const float mx = m[static_cast<std::size_t>(i) * W2 + j];
        const float gv = g[static_cast<std::size_t>(i) * W2 + j];
        // Route to the first match in (0,0), (0,1), (1,0), (1,1) order.
        const bool t0 = s0[2 * j] == mx;
        const bool t1 = !t0 && s0[2 * j + 1] == mx;
        const bool t2 = !t0 && !t1 && s1[2 * j] == mx;
        const bool t3 = !t0 && !t1 && !t2 && s1[2 * j + 1] == mx;
        const float v0 = t0 ? gv : 0.0f, v1 = t1 ? gv : 0.0f, v2 = t2 ? gv : 0.0f,
                    v3 = t3 ? gv : 0.0f;
        if (accumulate) {
          d0[2 * j] += v0, d0[2 * j + 1] += v1, d1[2 * j] += v2, d1[2 * j + 1] += v3;
        } else {
          d0[2 * j] = v0, d0[2 * j + 1] = v1, d1[2 * j] = v2, d1[2 * j + 1] = v3;
        }
      }
    }
  });
}

}  // namespace unetsrnn::cpu
