#pragma once
// CPU bodies of the Spatial RNN (contract in ops/ops.hpp, rules in ops/types.hpp), dispatched to
// the active instruction-set path (ops/cpu/isa.hpp); each path's kernels are compiled from
// srnn_kernels.hpp into namespace cpu::<path>.
//
// Layout. Each direction is a "sweep" over the rows of a plane: T rows of M contiguous floats, the
// recurrence running from row to row, so every inner loop is a contiguous loop over M that
// vectorises. Down and up sweep the plane's own rows (up with a negative row stride); right and
// left sweep the rows of the transposed plane. In sweep coordinates the shift is always (S v)[t] =
// v[t-1] with v[-1] = 0.
//
// Kernels. All are exact for every sign of x and w and every L >= 1, L beyond the image included:
// they compute the definition's function, only summing in another order.
//  - seed + ReLU, w > 0: h_k = w^k S^k relu(x), so y[t] = x[t] + sum_{k=1..min(L,t)} w^k r[t-k]
//    with r = relu(x): a truncated geometric window sum, O(1) per pixel by blocks (van Herk /
//    Gil-Werman) that only ever adds non-negative terms, whatever |w| and L.
//  - seed + ReLU, w <= 0: only h_1 = relu(w S x) can be non-zero (w h_1 <= 0 after it). O(1).
//  - seed + identity: the same window over x itself.
//  - seed + tanh: h_k[t] = phi^k(x[t-k]) with phi(v) = tanh(w v) depends on one source pixel, so
//    each source runs its own chain of min(L, T-1) steps; backward carries the chain's
//    derivatives forward, storing nothing.
//  - paper + ReLU, w >= 0: g_1 >= 0, after which every step is linear, y = (I + wS)^(L-1) g_1: a
//    binomial window of min(L, T) taps. Paper + identity: y = (I + wS)^L x, likewise.
//  - paper otherwise: the L steps fused in place; backward recomputes the states (from
//    checkpoints when they would not fit).
//  - irnn: one fused sweep forward; backward sweeps back over the outputs cached by the forward.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "unetsrnn/ops/cpu/isa.hpp"
#include "unetsrnn/ops/cpu/kernel_linkage.hpp"
#include "unetsrnn/ops/cpu/threads.hpp"
#include "unetsrnn/ops/types.hpp"
#include "unetsrnn/tensor/tensor.hpp"

namespace unetsrnn {

template <class Dev>
struct SrnnCache;

namespace cpu::srnn_detail {
// Per-thread buffers, grown on demand and reused across planes and calls.
struct Workspace {
  std::vector<float> x_t, y_t, dy_t, dx_t, cached_t;  // transposed planes (right/left)
  std::vector<float> plane_a, plane_b;                // kernel scratch planes
  std::vector<float> checkpoints, segment;            // paper-rule backward
  std::vector<float> rows, coef, dcoef;
  std::vector<double> lanes;  // per-column dw sums
};
// Floats of paper-rule states one thread may keep for a backward pass before it switches to
// checkpoints (16 MiB). A variable so that tests can force the checkpointed path on small planes.
inline std::size_t paper_state_budget = std::size_t(1) << 22;
}  // namespace cpu::srnn_detail

template <>
struct SrnnCache<Cpu> {
  Tensor<Cpu> outputs;  // irnn only: the forward's y (N, 4C, H, W), which its backward sweep reads
  Shape input{};        // what the forward that filled the cache saw
  SrnnConfig config{};
  bool filled = false;
  // Scratch kept between calls so that warm forward/backward passes do not allocate.
  std::vector<cpu::srnn_detail::Workspace> workspaces;  // one per OpenMP thread
  std::vector<double> partial_dw;                       // (N * C, 4) per-plane dw sums
};

}  // namespace unetsrnn

namespace unetsrnn::cpu {
UNETSRNN_KERNEL_API void srnn_forward(CView<Cpu> x, CView<Cpu> w, View<Cpu> y,
                                      const SrnnConfig& cfg, SrnnCache<Cpu>& cache);
UNETSRNN_KERNEL_API void srnn_backward(CView<Cpu> x, CView<Cpu> w, CView<Cpu> dy, View<Cpu> dx,
                                       View<Cpu> dw, bool accumulate, const SrnnConfig& cfg,
                                       SrnnCache<Cpu>& cache);
}  // namespace unetsrnn::cpu

// The kernels and the bodies, unless this unit links them from elsewhere (kernel_linkage.hpp).
#if UNETSRNN_KERNEL_BODIES
#define UNETSRNN_KERNELS_HEADER "unetsrnn/ops/cpu/srnn_kernels.hpp"
#include "unetsrnn/ops/cpu/foreach_isa.hpp"

namespace unetsrnn::cpu {

UNETSRNN_KERNEL_API void srnn_forward(CView<Cpu> x, CView<Cpu> w, View<Cpu> y,
                                      const SrnnConfig& cfg, SrnnCache<Cpu>& cache) {
  UNETSRNN_CPU_DISPATCH(srnn_forward(x, w, y, cfg, cache));
}
UNETSRNN_KERNEL_API void srnn_backward(CView<Cpu> x, CView<Cpu> w, CView<Cpu> dy, View<Cpu> dx,
                                       View<Cpu> dw, bool accumulate, const SrnnConfig& cfg,
                                       SrnnCache<Cpu>& cache) {
  UNETSRNN_CPU_DISPATCH(srnn_backward(x, w, dy, dx, dw, accumulate, cfg, cache));
}

}  // namespace unetsrnn::cpu
#endif  // UNETSRNN_KERNEL_BODIES
