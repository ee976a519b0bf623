#pragma once
// CUDA bodies of the Spatial RNN (contract in ops/ops.hpp, rules in ops/types.hpp). The tests hold
// them against the CPU kernels of ops/cpu/srnn.hpp.
//
// Layout. The sweeps of a direction are the lines of a plane: its rows for right/left, its columns
// for down/up. A thread block takes a tile of whole lines of one (image, channel) plane (a band of
// rows, or a band of columns), copies it into shared memory with coalesced row reads, computes the
// two directions of that orientation (right and left, or down and up) on it, and writes results
// back through shared memory with coalesced row writes. In a tile each thread owns "strips" of
// kStrip consecutive positions of one line; neighbouring threads own the same positions of
// neighbouring lines, so shared-memory accesses are free of bank conflicts (row tiles get an odd
// row stride). Lines too long for shared memory put the block's tiles in global memory instead
// (same code, through generic pointers).
//
// Kernels. All are exact for every sign of x and w and every L >= 1, L beyond the image included:
//  - seed + ReLU with w > 0, and seed + identity: y[t] = x[t] + sum_{k=1..min(L,t)} w^k s(x[t-k])
//    with s = relu or the identity (the closed form of seed-facts.md). Each strip slides a register
//    window along its line: per k, one shared load and kStrip fused multiply-adds; only
//    non-negative terms meet for ReLU, so nothing cancels. Backward: the same windows against the
//    sweep over dy (dx) and with taps k w^(k-1) over s(x) (dw).
//  - seed + ReLU with w <= 0: only h_1 = relu(w S x) can be non-zero.
//  - seed + tanh: h_k[t] = phi^k(x[t-k]), phi(v) = tanh(w v). The forward advances every source's
//    chain one step at a time over the tile; the backward follows each source's chain with its
//    derivatives (no state kept).
//  - paper: the L steps on the tile, double-buffered. The backward recomputes the states from
//    checkpoints every ceil(sqrt(L)) steps (global scratch), then backpropagates step by step.
//  - irnn: one thread per line scans the tile; the forward keeps its outputs in the cache for the
//    backward scan.
// dx: the row-tile kernel writes (or adds) right + left, then the column-tile kernel adds down +
// up, in stream order, so no atomics. dw: every block sums its terms in double in a fixed order and
// stores them; a small kernel then adds them up per (direction, channel). Results are
// deterministic. Everything runs on the default stream; warm calls do not allocate.
//
// Recurrences use __fmul_rn / __fadd_rn (no contraction into FMA) so that they round like the CPU
// kernels, which GCC compiles without contraction in ISO C++ mode.
#include <cuda_runtime.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstddef>
#include <memory>
#include <new>

#include "unetsrnn/ops/cuda/memory.cuh"
#include "unetsrnn/ops/types.hpp"
#include "unetsrnn/tensor/tensor.hpp"

namespace unetsrnn {

template <class Dev>
struct SrnnCache;

namespace cuda::srnn_detail {

// Device bytes that only ever grow, so that warm calls do not allocate.
class DeviceBuffer {
 public:
  template <class T>
  T* get(std::size_t count) {
    const std::size_t bytes = std::max<std::size_t>(count * sizeof(T), 1);
    if (bytes > capacity_) {
      memory_.reset();
      capacity_ = 0;
      void* p = nullptr;
      const cudaError_t status = cudaMalloc(&p, bytes);
      if (status == cudaErrorMemoryAllocation) {
        (void)cudaGetLastError();
        throw std::bad_alloc();
      }
      check(status, "cudaMalloc (srnn scratch)");
      memory_.reset(p);
      capacity_ = bytes;
    }
    return static_cast<T*>(memory_.get());
  }
  const void* data() const { return memory_.get(); }
  std::size_t capacity() const { return capacity_; }

 private:
  struct Free {
    void operator()(void* p) const { (void)cudaFree(p); }  // from destructors: never throw
  };
  std::unique_ptr<void, Free> memory_;
  std::size_t capacity_ = 0;
};

}  // namespace cuda::srnn_detail

template <>
struct SrnnCache<Cuda> {
  Tensor<Cuda> outputs;  // irnn only: the forward's y (N, 4C, H, W), which its backward scan reads
  Shape input{};         // what the forward that filled the cache saw
  SrnnConfig config{};
  bool filled = false;
  // Scratch kept between calls: tiles of blocks whose lines do not fit shared memory, paper-rule
  // states (checkpoints and a segment), per-block dw sums (double).
  cuda::srnn_detail::DeviceBuffer areas, states, partials;
};

}  // namespace unetsrnn

namespace unetsrnn::cuda {
namespace srnn_detail {

inline constexpr int kStrip = 8;         // consecutive positions of a line per thread
inline constexpr int kMaxThreads = 512;  // per block (launch bounds)
inline constexpr int kTargetThreads = 256;

// Shared memory a block may use for its tiles (bytes, capped by the device). Beyond it (very long
// lines) the tiles live in global memory. A variable so that tests can force the global path.
inline std::size_t shared_budget_bytes = 64 * 1024;

// How one orientation's lines are cut into tiles; the same on host and device.
struct Geometry {
  int C = 0, H = 0, W = 0;
  int horizontal = 0;   // 1: lines are rows (right, left); 0: lines are columns (down, up)
  int T = 0;            // line length
  int lines_total = 0;  // lines of a plane
  int lines = 0;        // lines per tile (the last tile may have fewer)
  int tiles = 0;        // tiles per plane
  int ts = 0;           // row stride of a tile buffer
  int ls = 0, us = 0;   // tile offset of (line l, position u) = l * ls + u * us
  int elems = 0;        // floats of one tile buffer
  int chunks = 0;       // strips per line
  int K = 0;            // taps of the seed windows: min(L, T - 1)
  int area = 0;         // floats of a block's working area (tile buffers, then taps)
  int threads = 0;
  long long blocks = 0;
  bool global_area = false;  // the area is in global memory (cache.areas), not shared memory
};

// Everything a kernel may read or write; unused members stay null.
struct Args {
  const float* x = nullptr;
  std::size_t x_ns = 0;
  const float* w = nullptr;
  std::size_t w_ns = 0;
  float* y = nullptr;
  std::size_t y_ns = 0;
  const float* dy = nullptr;
  std::size_t dy_ns = 0;
  float* dx = nullptr;
  std::size_t dx_ns = 0;
  float* cache = nullptr;  // irnn outputs, (N, 4C, H, W) contiguous
  float* states = nullptr;
  double* partials = nullptr;  // [(d C + c) slot_stride + n tiles + tile]
  int slot_stride = 0;
  int L = 1;
  int S = 1, checkpoints = 1;  // paper backward: segment length and checkpoint count
  bool accumulate = false;
};

inline int ceil_div(long long a, long long b) { return static_cast<int>((a + b - 1) / b); }

inline Geometry make_geometry(const Shape& s, bool horizontal, int buffers, int extra, int K,
                              std::size_t budget) {
  Geometry g;
  g.C = s.c;
  g.H = s.h;
  g.W = s.w;
  g.horizontal = horizontal ? 1 : 0;
  g.T = horizontal ? s.w : s.h;
  g.lines_total = horizontal ? s.h : s.w;
  g.chunks = ceil_div(g.T, kStrip);
  g.K = K;
  const auto fits = [&](int lines) {
    g.lines = lines;
    g.ts = horizontal ? (g.W | 1) : lines;  // odd row stride: conflict-free across lines
    g.ls = horizontal ? g.ts : 1;
    g.us = horizontal ? 1 : g.ts;
    g.elems = (horizontal ? lines : g.H) * g.ts;
    g.area = buffers * g.elems + extra;
    return static_cast<std::size_t>(g.area) * sizeof(float) <= budget;
  };
  // About kTargetThreads strips per tile; column tiles at least a warp wide (128-byte rows).
  int lines = std::max(ceil_div(kTargetThreads, g.chunks), horizontal ? 1 : 32);
  lines = std::min(lines, g.lines_total);
  while (!fits(lines) && lines > 1) lines = (lines + 1) / 2;
  g.tiles = ceil_div(g.lines_total, lines);
  g.global_area = !fits(ceil_div(g.lines_total, g.tiles));  // balanced tiles
  g.threads = std::clamp((g.lines * g.chunks + 31) / 32 * 32, 32, kMaxThreads);
  g.blocks = static_cast<long long>(s.n) * s.c * g.tiles;
  return g;
}

// ------------------------------------------------------------------ device helpers
template <SrnnAct A>
__device__ __forceinline__ float activate(float v) {
  if constexpr (A == SrnnAct::Relu)
    return v > 0.0f ? v : 0.0f;
  else if constexpr (A == SrnnAct::Tanh)
    return tanhf(v);
  else
    return v;
}
// The activation's derivative from its output (ReLU: 0 at 0, as TensorFlow and the CPU).
template <SrnnAct A>
__device__ __forceinline__ float slope(float out) {
  if constexpr (A == SrnnAct::Relu)
    return out > 0.0f ? 1.0f : 0.0f;
  else if constexpr (A == SrnnAct::Tanh)
    return __fsub_rn(1.0f, __fmul_rn(out, out));
  else
    return 1.0f;
}
template <bool Rectify>
__device__ __forceinline__ float source(float v) {
  if constexpr (Rectify)
    return v > 0.0f ? v : 0.0f;
  else
    return v;
}

struct Block {
  int n = 0, c = 0, tile = 0, line0 = 0, lines = 0;
};
__device__ __forceinline__ Block this_block(const Geometry& g) {
  Block b;
  const long long id = blockIdx.x;
  b.tile = static_cast<int>(id % g.tiles);
  const long long plane = id / g.tiles;
  b.n = static_cast<int>(plane / g.C);
  b.c = static_cast<int>(plane % g.C);
  b.line0 = b.tile * g.lines;
  b.lines = min(g.lines, g.lines_total - b.line0);
  return b;
}
// The block's working area: dynamic shared memory, or (Global) its slot of global scratch. A
// compile-time choice, so that shared accesses compile to 32-bit shared loads, not generic ones.
template <bool Global>
__device__ __forceinline__ float* block_area(const Geometry& g, float* global_areas) {
  extern __shared__ float shared_area[];
  if constexpr (Global)
    return global_areas + static_cast<std::size_t>(blockIdx.x) * g.area;
  else
    return shared_area;
}
template <class T>
__device__ __forceinline__ T* plane_of(T* base, std::size_t nstride, int n, int channel,
                                       const Geometry& g) {
  return base + static_cast<std::size_t>(n) * nstride +
         static_cast<std::size_t>(channel) * g.H * g.W;
}
__device__ __forceinline__ float weight(const Args& p, int d, int c) {
  return p.w[static_cast<std::size_t>(d) * p.w_ns + c];
}

// Copies the block's tile between a plane and a tile buffer, one tile row per plane row segment.
template <class F>
__device__ __forceinline__ void for_tile(const Geometry& g, const Block& b, F&& f) {
  const int rows = g.horizontal ? b.lines : g.H, cols = g.horizontal ? g.W : b.lines;
  const std::size_t origin = g.horizontal ? static_cast<std::size_t>(b.line0) * g.W : b.line0;
  const int count = rows * cols;
  for (int e = threadIdx.x; e < count; e += blockDim.x) {
    const int r = e / cols, col = e - r * cols;
    f(r * g.ts + col, origin + static_cast<std::size_t>(r) * g.W + col);
  }
}
__device__ __forceinline__ void load_tile(const Geometry& g, const Block& b, const float* plane,
                                          float* tile) {
  for_tile(g, b, [&](int at, std::size_t off) { tile[at] = plane[off]; });
}
__device__ __forceinline__ void store_tile(const Geometry& g, const Block& b, const float* tile,
                                           float* plane) {
  for_tile(g, b, [&](int at, std::size_t off) { plane[off] = tile[at]; });
}
// plane (+)= a + b, elementwise.
__device__ __forceinline__ void store_sum(const Geometry& g, const Block& b, const float* ta,
                                          const float* tb, float* plane, bool accumulate) {
  for_tile(g, b, [&](int at, std::size_t off) {
    const float v = ta[at] + tb[at];
    plane[off] = accumulate ? plane[off] + v : v;
  });
}

// Calls f(line, a) for every strip (line l of the tile, first position a) this thread owns.
template <class F>
__device__ __forceinline__ void for_strips(const Geometry& g, const Block& b, F&& f) {
  const int strips = b.lines * g.chunks;
#pragma unroll 1  // one strip at a time: its windows already hold many registers
  for (int s = threadIdx.x; s < strips; s += blockDim.x) f(s % b.lines, s / b.lines * kStrip);
}

// taps[k] = w^k and (if dtaps) dtaps[k] = k w^(k-1) for k = 0..K, computed in double, rounded once.
__device__ __forceinline__ void powers(float w, int K, float* taps, float* dtaps) {
  for (int k = threadIdx.x; k <= K; k += blockDim.x) {
    taps[k] = static_cast<float>(pow(static_cast<double>(w), static_cast<double>(k)));
    if (dtaps)
      dtaps[k] = k == 0
                     ? 0.0f
                     : static_cast<float>(static_cast<double>(k) *
                                          pow(static_cast<double>(w), static_cast<double>(k - 1)));
  }
}

// out[i] += sum_{k=1..K} taps[k] s(a + i - Dir k) for i < kStrip, with s(m) = source(line[m us])
// inside [0, T) and 0 outside: a window along the line (Dir = 1) or against it (Dir = -1). The
// window's kStrip values slide one position per k, so each k costs one load.
template <int Dir, bool Rectify>
__device__ __forceinline__ void window(const float* line, int us, int T, int a, const float* taps,
                                       int K, float (&out)[kStrip]) {
  float win[kStrip];  // at step k: win[i] = s(a + i - Dir k)
#pragma unroll
  for (int i = 0; i < kStrip; ++i) {
    const int m = a + i - Dir;
    win[i] = m >= 0 && m < T ? source<Rectify>(line[m * us]) : 0.0f;
  }
  const int steps = Dir > 0 ? min(K, a + kStrip - 1) : min(K, T - 1 - a);  // then all zero
  for (int k = 1; k <= steps; ++k) {
    const float p = taps[k];
#pragma unroll
    for (int i = 0; i < kStrip; ++i) out[i] = fmaf(p, win[i], out[i]);
    if constexpr (Dir > 0) {
#pragma unroll
      for (int i = kStrip - 1; i > 0; --i) win[i] = win[i - 1];
      const int m = a - k - 1;
      win[0] = m >= 0 ? source<Rectify>(line[m * us]) : 0.0f;
    } else {
#pragma unroll
      for (int i = 0; i < kStrip - 1; ++i) win[i] = win[i + 1];
      const int m = a + kStrip + k;
      win[kStrip - 1] = m < T ? source<Rectify>(line[m * us]) : 0.0f;
    }
  }
}

// Sums a and b over the block in a fixed order; the totals are valid in thread 0.
__device__ __forceinline__ void block_sum(double& a, double& b) {
  __shared__ double warp_sums[2][kMaxThreads / 32];
  for (int offset = 16; offset > 0; offset /= 2) {
    a += __shfl_down_sync(0xffffffffu, a, offset);
    b += __shfl_down_sync(0xffffffffu, b, offset);
  }
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) {
    warp_sums[0][warp] = a;
    warp_sums[1][warp] = b;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    a = 0.0;
    b = 0.0;
    for (int i = 0; i < static_cast<int>(blockDim.x / 32); ++i) {
      a += warp_sums[0][i];
      b += warp_sums[1][i];
    }
  }
}
// Stores this block's dw sums of both directions (d0 = first direction of the orientation).
__device__ __forceinline__ void store_partials(const Geometry& g, const Block& b, const Args& p,
                                               int d0, double acc0, double acc1) {
  block_sum(acc0, acc1);
  if (threadIdx.x == 0) {
    const std::size_t slot = static_cast<std::size_t>(b.n) * g.tiles + b.tile;
    p.partials[(static_cast<std::size_t>(d0) * g.C + b.c) * p.slot_stride + slot] = acc0;
    p.partials[(static_cast<std::size_t>(d0 + 1) * g.C + b.c) * p.slot_stride + slot] = acc1;
  }
}

// ------------------------------------------------------------------ seed rule
// Seed + ReLU with w <= 0 on one strip: out[i] = relu(w x[u - Dir]) (0 at the line's start).
template <int Dir>
__device__ __forceinline__ void seed_one_step(const float* line, int us, int T, int a, float w,
                                              float (&out)[kStrip]) {
#pragma unroll
  for (int i = 0; i < kStrip; ++i) {
    const int m = a + i - Dir;
    const float h = m >= 0 && m < T ? w * line[m * us] : 0.0f;
    out[i] = h > 0.0f ? h : 0.0f;
  }
}

// ReLU and identity. Area: x, y0, y1 tiles, then the taps of both directions (K + 1 each).
template <SrnnAct A, bool Global>
__global__ void __launch_bounds__(kMaxThreads)
    seed_forward_kernel(Geometry g, Args p, float* areas) {
  constexpr bool relu = A == SrnnAct::Relu;
  const Block b = this_block(g);
  const int d0 = g.horizontal ? 0 : 2;  // along increasing positions; d0 + 1 against them
  const float w0 = weight(p, d0, b.c), w1 = weight(p, d0 + 1, b.c);
  float* const xt = block_area<Global>(g, areas);
  float* const y0 = xt + g.elems;
  float* const y1 = y0 + g.elems;
  float* const taps0 = y1 + g.elems;
  float* const taps1 = taps0 + g.K + 1;
  powers(w0, g.K, taps0, nullptr);
  powers(w1, g.K, taps1, nullptr);
  load_tile(g, b, plane_of(p.x, p.x_ns, b.n, b.c, g), xt);
  __syncthreads();
  for_strips(g, b, [&](int l, int a) {
    const float* line = xt + l * g.ls;
    float z0[kStrip] = {}, z1[kStrip] = {};
    if (relu && w0 <= 0.0f)
      seed_one_step<1>(line, g.us, g.T, a, w0, z0);
    else
      window<1, relu>(line, g.us, g.T, a, taps0, g.K, z0);
    if (relu && w1 <= 0.0f)
      seed_one_step<-1>(line, g.us, g.T, a, w1, z1);
    else
      window<-1, relu>(line, g.us, g.T, a, taps1, g.K, z1);
#pragma unroll
    for (int i = 0; i < kStrip; ++i) {
      if (a + i >= g.T) break;
      const int at = l * g.ls + (a + i) * g.us;
      y0[at] = xt[at] + z0[i];
      y1[at] = xt[at] + z1[i];
    }
  });
  __syncthreads();
  store_tile(g, b, y0, plane_of(p.y, p.y_ns, b.n, d0 * g.C + b.c, g));
  store_tile(g, b, y1, plane_of(p.y, p.y_ns, b.n, (d0 + 1) * g.C + b.c, g));
}

// Tanh: every source's chain phi^k(x[m]) advances one step per k and adds into y[m +- k].
// Area: chain tiles v0, v1 and output tiles y0, y1.
template <bool Global>
__global__ void __launch_bounds__(kMaxThreads)
    seed_tanh_forward_kernel(Geometry g, Args p, float* areas) {
  const Block b = this_block(g);
  const int d0 = g.horizontal ? 0 : 2;
  const float w0 = weight(p, d0, b.c), w1 = weight(p, d0 + 1, b.c);
  float* const v0 = block_area<Global>(g, areas);
  float* const v1 = v0 + g.elems;
  float* const y0 = v1 + g.elems;
  float* const y1 = y0 + g.elems;
  const float* x = plane_of(p.x, p.x_ns, b.n, b.c, g);
  for_tile(g, b, [&](int at, std::size_t off) {
    const float v = x[off];
    v0[at] = v;
    v1[at] = v;
    y0[at] = v;
    y1[at] = v;
  });
  __syncthreads();
  for (int k = 1; k <= g.K; ++k) {  // y = x + h_1 + h_2 + ..., the definition's order
    for_strips(g, b, [&](int l, int a) {
      for (int i = 0; i < kStrip && a + i < g.T; ++i) {
        const int u = a + i, at = l * g.ls + u * g.us;
        if (u + k < g.T) {
          const float v = tanhf(__fmul_rn(w0, v0[at]));
          v0[at] = v;
          y0[at + k * g.us] += v;
        }
        if (u - k >= 0) {
          const float v = tanhf(__fmul_rn(w1, v1[at]));
          v1[at] = v;
          y1[at - k * g.us] += v;
        }
      }
    });
    __syncthreads();
  }
  store_tile(g, b, y0, plane_of(p.y, p.y_ns, b.n, d0 * g.C + b.c, g));
  store_tile(g, b, y1, plane_of(p.y, p.y_ns, b.n, (d0 + 1) * g.C + b.c, g));
}

// One direction's share of dx on a strip (added to dxv) and of dw (added to acc), Dir = 1 for a
// sweep along increasing positions. xl, gl: the line of x and of this direction's dy.
template <SrnnAct A, int Dir>
__device__ __forceinline__ void seed_backward_strip(const float* xl, const float* gl, int us, int T,
                                                    int a, float w, int K, const float* taps,
                                                    const float* dtaps, float (&dxv)[kStrip],
                                                    double& acc) {
  if constexpr (A == SrnnAct::Tanh) {
    // Each source's chain carries dv/dx (a product of slopes times w) and dv/dw
    // (d phi(v)/dw = phi'(w v) (v + w dv/dw)), dotted with dy on the way.
    float v[kStrip], dvdx[kStrip], dvdw[kStrip], gx[kStrip];
#pragma unroll
    for (int i = 0; i < kStrip; ++i) {
      v[i] = a + i < T ? xl[(a + i) * us] : 0.0f;
      dvdx[i] = 1.0f;
      dvdw[i] = 0.0f;
      gx[i] = 0.0f;
    }
    const int steps = Dir > 0 ? min(K, T - 1 - a) : min(K, min(a + kStrip, T) - 1);
    for (int k = 1; k <= steps; ++k) {
#pragma unroll
      for (int i = 0; i < kStrip; ++i) {
        const int t = a + i + Dir * k;
        if (a + i < T && t >= 0 && t < T) {
          const float next = tanhf(__fmul_rn(w, v[i]));
          const float d = slope<A>(next);
          dvdw[i] = __fmul_rn(d, __fadd_rn(v[i], __fmul_rn(w, dvdw[i])));
          dvdx[i] = __fmul_rn(__fmul_rn(d, w), dvdx[i]);
          v[i] = next;
          const float g = gl[t * us];
          gx[i] = __fadd_rn(gx[i], __fmul_rn(g, dvdx[i]));
          acc += static_cast<double>(g) * dvdw[i];
        }
      }
    }
#pragma unroll
    for (int i = 0; i < kStrip; ++i) dxv[i] += gx[i];
  } else {
    constexpr bool relu = A == SrnnAct::Relu;
    if (relu && w <= 0.0f) {
      // y[u] = x[u] + relu(w x[u - Dir]): dx[u] += [w x[u] > 0] w dy[u + Dir],
      // dw += [w x[u - Dir] > 0] x[u - Dir] dy[u].
#pragma unroll
      for (int i = 0; i < kStrip; ++i) {
        const int u = a + i;
        if (u >= T) break;
        const float xu = xl[u * us];
        const int next = u + Dir, prev = u - Dir;
        if (next >= 0 && next < T && w * xu > 0.0f) dxv[i] += w * gl[next * us];
        if (prev >= 0 && prev < T) {
          const float xp = xl[prev * us];
          if (w * xp > 0.0f) acc += static_cast<double>(xp) * gl[u * us];
        }
      }
    } else {
      // dx[u] += [relu'(w x[u])] sum_k w^k dy[u + Dir k]; dw += dy[u] sum_k k w^(k-1) s(x[u - Dir
      // k]). One window at a time keeps few values live (registers decide the occupancy here).
      float back[kStrip] = {};
      window<-Dir, false>(gl, us, T, a, taps, K, back);
#pragma unroll
      for (int i = 0; i < kStrip; ++i)
        if (a + i < T && (!relu || w * xl[(a + i) * us] > 0.0f)) dxv[i] += back[i];
      float dz[kStrip] = {};
      window<Dir, relu>(xl, us, T, a, dtaps, K, dz);
#pragma unroll
      for (int i = 0; i < kStrip; ++i)
        if (a + i < T) acc += static_cast<double>(gl[(a + i) * us]) * dz[i];
    }
  }
}

// Area: x, dy0, dy1 and dx tiles, then (not tanh) taps and derivative taps of both directions.
// The model's case (ReLU, shared tiles) fits 64 registers without spilling: twice the resident
// blocks of the unconstrained 98.
template <SrnnAct A, bool Global>
__global__ void __launch_bounds__(kMaxThreads, A == SrnnAct::Relu && !Global ? 2 : 1)
    seed_backward_kernel(Geometry g, Args p, float* areas) {
  const Block b = this_block(g);
  const int d0 = g.horizontal ? 0 : 2;
  const float w0 = weight(p, d0, b.c), w1 = weight(p, d0 + 1, b.c);
  float* const xt = block_area<Global>(g, areas);
  float* const g0 = xt + g.elems;
  float* const g1 = g0 + g.elems;
  float* const dxt = g1 + g.elems;
  float* const taps0 = dxt + g.elems;
  float* const dtaps0 = taps0 + g.K + 1;
  float* const taps1 = dtaps0 + g.K + 1;
  float* const dtaps1 = taps1 + g.K + 1;
  if constexpr (A != SrnnAct::Tanh) {
    powers(w0, g.K, taps0, dtaps0);
    powers(w1, g.K, taps1, dtaps1);
  }
  load_tile(g, b, plane_of(p.x, p.x_ns, b.n, b.c, g), xt);
  load_tile(g, b, plane_of(p.dy, p.dy_ns, b.n, d0 * g.C + b.c, g), g0);
  load_tile(g, b, plane_of(p.dy, p.dy_ns, b.n, (d0 + 1) * g.C + b.c, g), g1);
  __syncthreads();
  double acc0 = 0.0, acc1 = 0.0;
  for_strips(g, b, [&](int l, int a) {
    const float *xl = xt + l * g.ls, *gl0 = g0 + l * g.ls, *gl1 = g1 + l * g.ls;
    float dxv[kStrip];
#pragma unroll
    for (int i = 0; i < kStrip; ++i)  // y_d contains x: each direction passes dy_d straight on
      dxv[i] = a + i < g.T ? gl0[(a + i) * g.us] + gl1[(a + i) * g.us] : 0.0f;
    seed_backward_strip<A, 1>(xl, gl0, g.us, g.T, a, w0, g.K, taps0, dtaps0, dxv, acc0);
    seed_backward_strip<A, -1>(xl, gl1, g.us, g.T, a, w1, g.K, taps1, dtaps1, dxv, acc1);
#pragma unroll
    for (int i = 0; i < kStrip; ++i)
      if (a + i < g.T) dxt[l * g.ls + (a + i) * g.us] = dxv[i];
  });
  __syncthreads();
  for_tile(g, b, [&, dx = plane_of(p.dx, p.dx_ns, b.n, b.c, g)](int at, std::size_t off) {
    dx[off] = p.accumulate ? dx[off] + dxt[at] : dxt[at];
  });
  store_partials(g, b, p, d0, acc0, acc1);
}

// ------------------------------------------------------------------ paper rule
// One step g'[u] = act(w g[u - Dir] + g[u]) (g[u - Dir] absent at the line's start) over this
// thread's strips.
template <SrnnAct A, int Dir>
__device__ __forceinline__ void paper_step(const Geometry& g, const Block& b, const float* src,
                                           float* dst, float w) {
  for_strips(g, b, [&](int l, int a) {
    const float* sl = src + l * g.ls;
    float* dl = dst + l * g.ls;
#pragma unroll
    for (int i = 0; i < kStrip; ++i) {
      const int u = a + i, m = u - Dir;
      if (u >= g.T) break;
      const float cur = sl[u * g.us];
      dl[u * g.us] = m >= 0 && m < g.T ? activate<A>(__fadd_rn(__fmul_rn(w, sl[m * g.us]), cur))
                                       : activate<A>(cur);
    }
  });
}

// Area: two ping-pong state tiles per direction.
template <SrnnAct A, bool Global>
__global__ void __launch_bounds__(kMaxThreads)
    paper_forward_kernel(Geometry g, Args p, float* areas) {
  const Block b = this_block(g);
  const int d0 = g.horizontal ? 0 : 2;
  const float w0 = weight(p, d0, b.c), w1 = weight(p, d0 + 1, b.c);
  float* cur0 = block_area<Global>(g, areas);
  float* next0 = cur0 + g.elems;
  float* cur1 = next0 + g.elems;
  float* next1 = cur1 + g.elems;
  const float* x = plane_of(p.x, p.x_ns, b.n, b.c, g);
  for_tile(g, b, [&](int at, std::size_t off) {
    const float v = x[off];
    cur0[at] = v;
    cur1[at] = v;
  });
  __syncthreads();
  for (int k = 1; k <= p.L; ++k) {
    paper_step<A, 1>(g, b, cur0, next0, w0);
    paper_step<A, -1>(g, b, cur1, next1, w1);
    __syncthreads();
    float* t = cur0;
    cur0 = next0;
    next0 = t;
    t = cur1;
    cur1 = next1;
    next1 = t;
  }
  store_tile(g, b, cur0, plane_of(p.y, p.y_ns, b.n, d0 * g.C + b.c, g));
  store_tile(g, b, cur1, plane_of(p.y, p.y_ns, b.n, (d0 + 1) * g.C + b.c, g));
}

// Backpropagates direction d through its L steps; leaves d loss / d x in delta, adds dw to acc.
// States g_k are recomputed from x: checkpoints g_0, g_S, g_2S, ... in cp, then one segment of S
// states at a time in seg (both in the block's global scratch).
template <SrnnAct A, int Dir>
__device__ void paper_backward_direction(const Geometry& g, const Block& b, const Args& p, int d,
                                         float w, float* delta, float* pre, float* cp, float* seg,
                                         double& acc) {
  const int S = p.S, checkpoints = p.checkpoints, L = p.L;
  const auto tile = [&](float* base, int i) {
    return base + static_cast<std::size_t>(i) * g.elems;
  };
  load_tile(g, b, plane_of(p.x, p.x_ns, b.n, b.c, g), cp);
  __syncthreads();
  const float* prev = cp;
  for (int k = 1; k <= (checkpoints - 1) * S; ++k) {  // S >= 2 whenever this runs
    float* dst = k % S == 0 ? tile(cp, k / S) : tile(seg, k & 1);
    paper_step<A, Dir>(g, b, prev, dst, w);
    __syncthreads();
    prev = dst;
  }
  load_tile(g, b, plane_of(p.dy, p.dy_ns, b.n, d * g.C + b.c, g), delta);
  __syncthreads();
  for (int i = checkpoints - 1; i >= 0; --i) {
    const int k0 = i * S, k1 = min(k0 + S, L);
    const auto state = [&](int j) { return j == 0 ? tile(cp, i) : tile(seg, j - 1); };
    for (int j = 1; j <= k1 - k0; ++j) {
      paper_step<A, Dir>(g, b, state(j - 1), state(j), w);
      __syncthreads();
    }
    for (int k = k1; k > k0; --k) {
      const float *gk = state(k - k0), *gp = state(k - k0 - 1);
      // pre = d loss / d (pre-activation of step k); dw += sum_u pre[u] g_{k-1}[u - Dir].
      for_strips(g, b, [&](int l, int a) {
        for (int i2 = 0; i2 < kStrip && a + i2 < g.T; ++i2) {
          const int u = a + i2, m = u - Dir, at = l * g.ls + u * g.us;
          const float v = __fmul_rn(delta[at], slope<A>(gk[at]));
          pre[at] = v;
          if (m >= 0 && m < g.T) acc += static_cast<double>(v) * gp[l * g.ls + m * g.us];
        }
      });
      __syncthreads();
      // d loss / d g_{k-1}[u] = pre[u] + w pre[u + Dir] (the skip term and the shifted one).
      for_strips(g, b, [&](int l, int a) {
        for (int i2 = 0; i2 < kStrip && a + i2 < g.T; ++i2) {
          const int u = a + i2, m = u + Dir, at = l * g.ls + u * g.us;
          delta[at] = m >= 0 && m < g.T ? __fadd_rn(pre[at], __fmul_rn(w, pre[l * g.ls + m * g.us]))
                                        : pre[at];
        }
      });
      __syncthreads();
    }
  }
}

// Area: delta tiles of both directions and one pre-activation gradient tile; states in p.states.
template <SrnnAct A, bool Global>
__global__ void __launch_bounds__(kMaxThreads)
    paper_backward_kernel(Geometry g, Args p, float* areas) {
  const Block b = this_block(g);
  const int d0 = g.horizontal ? 0 : 2;
  const float w0 = weight(p, d0, b.c), w1 = weight(p, d0 + 1, b.c);
  float* const delta0 = block_area<Global>(g, areas);
  float* const delta1 = delta0 + g.elems;
  float* const pre = delta1 + g.elems;
  float* const cp = p.states + static_cast<std::size_t>(blockIdx.x) *
                                   static_cast<std::size_t>(p.checkpoints + p.S) * g.elems;
  float* const seg = cp + static_cast<std::size_t>(p.checkpoints) * g.elems;
  double acc0 = 0.0, acc1 = 0.0;
  paper_backward_direction<A, 1>(g, b, p, d0, w0, delta0, pre, cp, seg, acc0);
  paper_backward_direction<A, -1>(g, b, p, d0 + 1, w1, delta1, pre, cp, seg, acc1);
  store_sum(g, b, delta0, delta1, plane_of(p.dx, p.dx_ns, b.n, b.c, g), p.accumulate);
  store_partials(g, b, p, d0, acc0, acc1);
}

// ------------------------------------------------------------------ irnn rule
// One thread per (line, direction) scans the tile. Area: x, y0, y1 tiles.
template <SrnnAct A, bool Global>
__global__ void __launch_bounds__(kMaxThreads)
    irnn_forward_kernel(Geometry g, Args p, float* areas) {
  const Block b = this_block(g);
  const int d0 = g.horizontal ? 0 : 2;
  const float w0 = weight(p, d0, b.c), w1 = weight(p, d0 + 1, b.c);
  float* const xt = block_area<Global>(g, areas);
  float* const y0 = xt + g.elems;
  float* const y1 = y0 + g.elems;
  load_tile(g, b, plane_of(p.x, p.x_ns, b.n, b.c, g), xt);
  __syncthreads();
  for (int job = threadIdx.x; job < 2 * b.lines; job += blockDim.x) {
    const int against = job >= b.lines ? 1 : 0, l = job - against * b.lines;
    const float* xl = xt + l * g.ls;
    float* yl = (against ? y1 : y0) + l * g.ls;
    const float w = against ? w1 : w0;
    float prev = 0.0f;
    for (int s = 0; s < g.T; ++s) {
      const int u = against ? g.T - 1 - s : s;
      const float xv = xl[u * g.us];
      prev = s == 0 ? activate<A>(xv) : activate<A>(__fadd_rn(__fmul_rn(w, prev), xv));
      yl[u * g.us] = prev;
    }
  }
  __syncthreads();
  const std::size_t cache_ns = static_cast<std::size_t>(4) * g.C * g.H * g.W;
  store_tile(g, b, y0, plane_of(p.y, p.y_ns, b.n, d0 * g.C + b.c, g));
  store_tile(g, b, y1, plane_of(p.y, p.y_ns, b.n, (d0 + 1) * g.C + b.c, g));
  store_tile(g, b, y0, plane_of(p.cache, cache_ns, b.n, d0 * g.C + b.c, g));
  store_tile(g, b, y1, plane_of(p.cache, cache_ns, b.n, (d0 + 1) * g.C + b.c, g));
}

// Reverse scans: a[u] = act'(y[u]) (dy[u] + w a[u + Dir]); dx += a; dw += a[u] y[u - Dir].
// Area: cached y and dy tiles of both directions (dy is overwritten by a).
template <SrnnAct A, bool Global>
__global__ void __launch_bounds__(kMaxThreads)
    irnn_backward_kernel(Geometry g, Args p, float* areas) {
  const Block b = this_block(g);
  const int d0 = g.horizontal ? 0 : 2;
  const float w0 = weight(p, d0, b.c), w1 = weight(p, d0 + 1, b.c);
  float* const y0 = block_area<Global>(g, areas);
  float* const y1 = y0 + g.elems;
  float* const g0 = y1 + g.elems;
  float* const g1 = g0 + g.elems;
  const std::size_t cache_ns = static_cast<std::size_t>(4) * g.C * g.H * g.W;
  load_tile(g, b, plane_of<const float>(p.cache, cache_ns, b.n, d0 * g.C + b.c, g), y0);
  load_tile(g, b, plane_of<const float>(p.cache, cache_ns, b.n, (d0 + 1) * g.C + b.c, g), y1);
  load_tile(g, b, plane_of(p.dy, p.dy_ns, b.n, d0 * g.C + b.c, g), g0);
  load_tile(g, b, plane_of(p.dy, p.dy_ns, b.n, (d0 + 1) * g.C + b.c, g), g1);
  __syncthreads();
  double acc0 = 0.0, acc1 = 0.0;
  for (int job = threadIdx.x; job < 2 * b.lines; job += blockDim.x) {
    const int against = job >= b.lines ? 1 : 0, l = job - against * b.lines;
    const float* yl = (against ? y1 : y0) + l * g.ls;
    float* gl = (against ? g1 : g0) + l * g.ls;
    const float w = against ? w1 : w0;
    double& acc = against ? acc1 : acc0;
    float next = 0.0f;
    for (int s = 0; s < g.T; ++s) {
      const int u = against ? s : g.T - 1 - s, m = against ? u + 1 : u - 1;
      next = __fmul_rn(slope<A>(yl[u * g.us]), __fadd_rn(gl[u * g.us], __fmul_rn(w, next)));
      gl[u * g.us] = next;
      if (m >= 0 && m < g.T) acc += static_cast<double>(next) * yl[m * g.us];
    }
  }
  __syncthreads();
  store_sum(g, b, g0, g1, plane_of(p.dx, p.dx_ns, b.n, b.c, g), p.accumulate);
  store_partials(g, b, p, d0, acc0, acc1);
}

// ------------------------------------------------------------------ dw
// dw[d, c] += the sum of its blocks' partial sums, in slot order.
__global__ void dw_reduce_kernel(const double* partials, int C, int slot_stride, int slots_rows,
                                 int slots_columns, float* dw, std::size_t dw_ns) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= kDirections * C) return;
  const int d = i / C, c = i % C;
  const int slots = d < 2 ? slots_rows : slots_columns;
  double s = 0.0;
  for (int k = 0; k < slots; ++k) s += partials[static_cast<std::size_t>(i) * slot_stride + k];
  float& target = dw[static_cast<std::size_t>(d) * dw_ns + c];
  target = static_cast<float>(target + s);
}

// ------------------------------------------------------------------ host side
// Bytes of dynamic shared memory a block may have: the budget, capped by the device's opt-in limit
// less room for the static reduction buffers.
inline std::size_t shared_budget() {
  int device = 0, optin = 48 * 1024;
  check(cudaGetDevice(&device), "srnn: cudaGetDevice");
  check(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device),
        "srnn: cudaDeviceGetAttribute (shared memory per block)");
  const std::size_t usable = optin > 1024 ? static_cast<std::size_t>(optin) - 1024 : 0;
  return std::min(shared_budget_bytes, usable);
}

// What one kernel needs: its geometry and kernel, chosen per orientation.
using Kernel = void (*)(Geometry, Args, float*);
struct Plan {
  Geometry geometry;
  Kernel kernel = nullptr;
};

inline void require_grid(const Geometry& g, const char* who) {
  if (g.blocks > INT_MAX)
    fail_argument(who, ": ", g.blocks, " thread blocks exceed the CUDA grid limit");
}

inline void launch(const Plan& plan, const Args& p, float* global_areas, const char* what) {
  const Geometry& g = plan.geometry;
  if (g.blocks == 0) return;
  const std::size_t smem = g.global_area ? 0 : static_cast<std::size_t>(g.area) * sizeof(float);
  if (smem > 48 * 1024)
    check(cudaFuncSetAttribute(plan.kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                               static_cast<int>(smem)),
          what);
  plan.kernel<<<static_cast<unsigned>(g.blocks), g.threads, smem>>>(
      g, p, g.global_area ? global_areas : nullptr);
  check_launch(what);
}

// Block areas in global memory for the plans that need them (one buffer, the larger need).
inline float* global_areas(const Plan (&plans)[2], SrnnCache<Cuda>& cache) {
  std::size_t floats = 0;
  for (const Plan& plan : plans)
    if (plan.geometry.global_area)
      floats = std::max(floats, static_cast<std::size_t>(plan.geometry.blocks) *
                                    static_cast<std::size_t>(plan.geometry.area));
  return floats ? cache.areas.get<float>(floats) : nullptr;
}

inline int seed_taps(const SrnnConfig& cfg, int T) {
  return std::max(0, std::min(cfg.length, T - 1));
}

inline Plan forward_plan(const SrnnConfig& cfg, const Shape& s, bool horizontal,
                         std::size_t budget) {
  const int T = horizontal ? s.w : s.h;
  Plan plan;
  with_act(cfg.act, [&](auto tag) {
    constexpr SrnnAct A = decltype(tag)::value;
    switch (cfg.rule) {
      case SrnnRule::Seed:
        if constexpr (A == SrnnAct::Tanh) {
          plan.geometry = make_geometry(s, horizontal, 4, 0, seed_taps(cfg, T), budget);
          plan.kernel = plan.geometry.global_area ? seed_tanh_forward_kernel<true>
                                                  : seed_tanh_forward_kernel<false>;
        } else {
          const int K = seed_taps(cfg, T);
          plan.geometry = make_geometry(s, horizontal, 3, 2 * (K + 1), K, budget);
          plan.kernel = plan.geometry.global_area ? seed_forward_kernel<A, true>
                                                  : seed_forward_kernel<A, false>;
        }
        return;
      case SrnnRule::Paper:
        plan.geometry = make_geometry(s, horizontal, 4, 0, 0, budget);
        plan.kernel = plan.geometry.global_area ? paper_forward_kernel<A, true>
                                                : paper_forward_kernel<A, false>;
        return;
      case SrnnRule::Irnn:
        plan.geometry = make_geometry(s, horizontal, 3, 0, 0, budget);
        plan.kernel = plan.geometry.global_area ? irnn_forward_kernel<A, true>
                                                : irnn_forward_kernel<A, false>;
        return;
    }
  });
  return plan;
}

inline Plan backward_plan(const SrnnConfig& cfg, const Shape& s, bool horizontal,
                          std::size_t budget) {
  const int T = horizontal ? s.w : s.h;
  Plan plan;
  with_act(cfg.act, [&](auto tag) {
    constexpr SrnnAct A = decltype(tag)::value;
    switch (cfg.rule) {
      case SrnnRule::Seed: {
        const int K = seed_taps(cfg, T);
        const int extra = A == SrnnAct::Tanh ? 0 : 4 * (K + 1);
        plan.geometry = make_geometry(s, horizontal, 4, extra, K, budget);
        plan.kernel = plan.geometry.global_area ? seed_backward_kernel<A, true>
                                                : seed_backward_kernel<A, false>;
        return;
      }
      case SrnnRule::Paper:
        plan.geometry = make_geometry(s, horizontal, 3, 0, 0, budget);
        plan.kernel = plan.geometry.global_area ? paper_backward_kernel<A, true>
                                                : paper_backward_kernel<A, false>;
        return;
      case SrnnRule::Irnn:
        plan.geometry = make_geometry(s, horizontal, 4, 0, 0, budget);
        plan.kernel = plan.geometry.global_area ? irnn_backward_kernel<A, true>
                                                : irnn_backward_kernel<A, false>;
        return;
    }
  });
  return plan;
}

}  // namespace srnn_detail

// y[:, d*C:(d+1)*C] = the rule's output for direction d; see ops::srnn_forward.
inline void srnn_forward(CView<Cuda> x, CView<Cuda> w, View<Cuda> y, const SrnnConfig& cfg,
                         SrnnCache<Cuda>& cache) {
  using namespace srnn_detail;
  const bool irnn = cfg.rule == SrnnRule::Irnn;
  if (irnn) cache.outputs.resize(y.shape);
  cache.input = x.shape;
  cache.config = cfg;
  cache.filled = true;
  if (x.shape.size() == 0) return;
  const std::size_t budget = shared_budget();
  const Plan plans[2] = {forward_plan(cfg, x.shape, true, budget),
                         forward_plan(cfg, x.shape, false, budget)};
  for (const Plan& plan : plans) require_grid(plan.geometry, "cuda::srnn_forward");
  Args p;
  p.x = x.data;
  p.x_ns = x.nstride;
  p.w = w.data;
  p.w_ns = w.nstride;
  p.y = y.data;
  p.y_ns = y.nstride;
  p.cache = irnn ? cache.outputs.data() : nullptr;
  p.L = cfg.length;
  float* const areas = global_areas(plans, cache);
  launch(plans[0], p, areas, "cuda::srnn_forward (right/left)");
  launch(plans[1], p, areas, "cuda::srnn_forward (down/up)");
}

// dx (+)= d loss / d x, dw += d loss / d w; see ops::srnn_backward.
inline void srnn_backward(CView<Cuda> x, CView<Cuda> w, CView<Cuda> dy, View<Cuda> dx,
                          View<Cuda> dw, bool accumulate, const SrnnConfig& cfg,
                          SrnnCache<Cuda>& cache) {
  using namespace srnn_detail;
  const bool irnn = cfg.rule == SrnnRule::Irnn;
  if (irnn && !(cache.filled && cache.input == x.shape && cache.config.rule == cfg.rule &&
                cache.config.act == cfg.act))
    fail_argument(
        "srnn_backward: the irnn rule needs the cache of a forward pass on the same input "
        "shape and configuration");
  if (x.shape.size() == 0) return;
  const int N = x.shape.n, C = x.shape.c;
  const std::size_t budget = shared_budget();
  const Plan plans[2] = {backward_plan(cfg, x.shape, true, budget),
                         backward_plan(cfg, x.shape, false, budget)};
  for (const Plan& plan : plans) require_grid(plan.geometry, "cuda::srnn_backward");
  const int slots_rows = N * plans[0].geometry.tiles, slots_columns = N * plans[1].geometry.tiles;
  Args p;
  p.x = x.data;
  p.x_ns = x.nstride;
  p.w = w.data;
  p.w_ns = w.nstride;
  p.dy = dy.data;
  p.dy_ns = dy.nstride;
  p.dx = dx.data;
  p.dx_ns = dx.nstride;
  p.cache = irnn ? cache.outputs.data() : nullptr;
  p.L = cfg.length;
  p.slot_stride = std::max(slots_rows, slots_columns);
  p.partials = cache.partials.get<double>(static_cast<std::size_t>(kDirections) * C *
                                          static_cast<std::size_t>(p.slot_stride));
  if (cfg.rule == SrnnRule::Paper) {
    // Checkpoints every S = ceil(sqrt(L)) steps and one segment of S states per block: about
    // 2 sqrt(L) tiles instead of L + 1.
    p.S = std::max(1, static_cast<int>(std::ceil(std::sqrt(static_cast<double>(cfg.length)))));
    p.checkpoints = (cfg.length + p.S - 1) / p.S;
    std::size_t floats = 0;
    for (const Plan& plan : plans)
      floats = std::max(floats, static_cast<std::size_t>(plan.geometry.blocks) *
                                    static_cast<std::size_t>(p.checkpoints + p.S) *
                                    static_cast<std::size_t>(plan.geometry.elems));
    p.states = cache.states.get<float>(floats);
  }
  float* const areas = global_areas(plans, cache);
  p.accumulate = accumulate;
  launch(plans[0], p, areas, "cuda::srnn_backward (right/left)");
  p.accumulate = true;  // down/up add to what right/left left in dx
  launch(plans[1], p, areas, "cuda::srnn_backward (down/up)");
  const int threads = 256;
  dw_reduce_kernel<<<ceil_div(kDirections * C, threads), threads>>>(
      p.partials, C, p.slot_stride, slots_rows, slots_columns, dw.data, dw.nstride);
  check_launch("cuda::srnn_backward (dw)");
}

}  // namespace unetsrnn::cuda
