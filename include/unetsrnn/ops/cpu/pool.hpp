#pragma once
// CPU bodies of the 2x2 max-pool (contracts in ops/ops.hpp).
#include "unetsrnn/tensor/tensor.hpp"

namespace unetsrnn::cpu {

inline void maxpool2x2_forward(CView<Cpu> x, View<Cpu> y) {
  const int C = x.shape.c, H2 = y.shape.h, W2 = y.shape.w, W = x.shape.w;
  for (int n = 0; n < x.shape.n; ++n)
    for (int c = 0; c < C; ++c) {
      const float* s = x.channel(n, c);
      float* d = y.channel(n, c);
      for (int i = 0; i < H2; ++i) {
        const float* r0 = s + (2 * i) * W;
        const float* r1 = r0 + W;
        for (int j = 0; j < W2; ++j) {
          float a = r0[2 * j], b = r0[2 * j + 1], e = r1[2 * j], f = r1[2 * j + 1];
          float m = a > b ? a : b;
          float m2 = e > f ? e : f;
          d[i * W2 + j] = m > m2 ? m : m2;
        }
      }
    }
}

// The first window element equal to the pooled maximum (row-major) receives the gradient.
inline void maxpool2x2_backward(CView<Cpu> x, CView<Cpu> y, CView<Cpu> dy, View<Cpu> dx,
                                bool accumulate) {
  const int C = x.shape.c, H2 = y.shape.h, W2 = y.shape.w, W = x.shape.w;
  for (int n = 0; n < x.shape.n; ++n)
    for (int c = 0; c < C; ++c) {
      const float* s = x.channel(n, c);
      const float* m = y.channel(n, c);
      const float* g = dy.channel(n, c);
      float* d = dx.channel(n, c);
      for (int i = 0; i < H2; ++i)
        for (int j = 0; j < W2; ++j) {
          const int base = 2 * i * W + 2 * j;
          const int idx[4] = {base, base + 1, base + W, base + W + 1};
          const float mx = m[i * W2 + j], gv = g[i * W2 + j];
          bool routed = false;
          for (int t : idx) {
            const float v = (!routed && s[t] == mx) ? gv : 0.0f;
            routed = routed || s[t] == mx;
            if (accumulate) d[t] += v;
            else d[t] = v;
          }
        }
    }
}

}  // namespace unetsrnn::cpu
