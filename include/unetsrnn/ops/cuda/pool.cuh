#pragma once
// CUDA bodies of the 2x2 max-pool (contracts in ops/ops.hpp): one thread per output pixel, with
// the same comparisons as the CPU so ties and NaNs resolve identically.
#include <cstddef>

#include "unetsrnn/ops/cuda/memory.cuh"
#include "unetsrnn/tensor/tensor.hpp"

namespace unetsrnn::cuda {

namespace pool_detail {

// Geometry of one pooling: x (N, C, H, W) -> y (N, C, H/2, W/2). Batch strides are passed
// separately, since dy and dx share y's and x's shapes but may have their own.
struct Geometry {
  int C, W, H2, W2;
  std::size_t pooled;  // N * C * H2 * W2 output pixels
  // Output pixel t: its image n, its offset in a y image and the offset of its window's top-left
  // element in an x image.
  __device__ void locate(std::size_t t, std::size_t& n, std::size_t& y_at,
                         std::size_t& x_at) const {
    const int j = static_cast<int>(t % W2);
    const std::size_t r = t / W2;
    const int i = static_cast<int>(r % H2);
    const std::size_t plane_index = r / H2;  // n * C + c
    const int c = static_cast<int>(plane_index % C);
    n = plane_index / C;
    y_at = (static_cast<std::size_t>(c) * H2 + i) * W2 + j;
    x_at = (static_cast<std::size_t>(c) * 2 * H2 + 2 * i) * W + 2 * j;
  }
};

inline Geometry geometry(const BasicView<Cuda, const float>& x,
                         const BasicView<Cuda, const float>& y) {
  return {x.shape.c, x.shape.w, y.shape.h, y.shape.w, y.shape.size()};
}

template <class T>
__global__ void maxpool_forward_kernel(const T* x, std::size_t x_nstride, T* y,
                                       std::size_t y_nstride, Geometry g) {
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  for (std::size_t t = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
       t < g.pooled; t += stride) {
    std::size_t n, y_at, x_at;
    g.locate(t, n, y_at, x_at);
    const std::size_t xo = n * x_nstride + x_at, yo = n * y_nstride + y_at;
    const T a = x[xo], b = x[xo + 1], e = x[xo + g.W], f = x[xo + g.W + 1];
    const T m = a > b ? a : b, m2 = e > f ? e : f;
    y[yo] = m > m2 ? m : m2;
  }
}

template <bool Accumulate>
__global__ void maxpool_backward_kernel(const float* x, std::size_t x_nstride, const float* y,
                                        std::size_t y_nstride, const float* dy,
                                        std::size_t dy_nstride, float* dx, std::size_t dx_nstride,
                                        Geometry g) {
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  for (std::size_t t = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
       t < g.pooled; t += stride) {
    std::size_t n, y_at, x_at;
    g.locate(t, n, y_at, x_at);
    const float* s0 = x + n * x_nstride + x_at;
    const float* s1 = s0 + g.W;
    float* d0 = dx + n * dx_nstride + x_at;
    float* d1 = d0 + g.W;
    const float mx = y[n * y_nstride + y_at], gv = dy[n * dy_nstride + y_at];
    // Route to the first match in (0,0), (0,1), (1,0), (1,1) order.
    const bool t0 = s0[0] == mx;
    const bool t1 = !t0 && s0[1] == mx;
    const bool t2 = !t0 && !t1 && s1[0] == mx;
    const bool t3 = !t0 && !t1 && !t2 && s1[1] == mx;
    const float v0 = t0 ? gv : 0.0f, v1 = t1 ? gv : 0.0f, v2 = t2 ? gv : 0.0f, v3 = t3 ? gv : 0.0f;
    if constexpr (Accumulate) {
      d0[0] += v0, d0[1] += v1, d1[0] += v2, d1[1] += v3;
    } else {
      d0[0] = v0, d0[1] = v1, d1[0] = v2, d1[1] = v3;
    }
  }
}

}  // namespace pool_detail

inline void maxpool2x2_forward(CView<Cuda> x, View<Cuda> y) {
  const pool_detail::Geometry g = pool_detail::geometry(x, y);
  if (g.pooled == 0) return;
  pool_detail::maxpool_forward_kernel<float>
      <<<grid_for(g.pooled), kBlock>>>(x.data, x.nstride, y.data, y.nstride, g);
  check_launch("cuda::maxpool2x2_forward");
}

// The first window element equal to the pooled maximum (row-major) receives the gradient.
inline void maxpool2x2_backward(CView<Cuda> x, CView<Cuda> y, CView<Cuda> dy, View<Cuda> dx,
                                bool accumulate) {
  const pool_detail::Geometry g = pool_detail::geometry(x, y);
  if (g.pooled == 0) return;
  if (accumulate)
    pool_detail::maxpool_backward_kernel<true><<<grid_for(g.pooled), kBlock>>>(
        x.data, x.nstride, y.data, y.nstride, dy.data, dy.nstride, dx.data, dx.nstride, g);
  else
    pool_detail::maxpool_backward_kernel<false><<<grid_for(g.pooled), kBlock>>>(
        x.data, x.nstride, y.data, y.nstride, dy.data, dy.nstride, dx.data, dx.nstride, g);
  check_launch("cuda::maxpool2x2_backward");
}

}  // namespace unetsrnn::cuda
