#pragma once
// CPU bodies of the convolutions (contracts in ops/ops.hpp), dispatched to the active
// instruction-set path (ops/cpu/isa.hpp): the kernels of each path are compiled from
// conv_kernels.hpp (SIMD paths) and conv_portable.hpp (Eigen) into namespaces cpu::<path>.
//
// Every convolution is a matrix product per image over (channels x pixels), P = H * W pixels:
//   conv forward          Y  (Cout x P)         = W  (Cout x Cin k k) * im2col(X) (Cin k k x P)
//   conv backward data    dX (Cin x P)        (+)= W~ (Cin x Cout k k) * im2col(dY), W~ the
//                                                  flipped kernel: a 'same' convolution of dY
//   conv backward params  dW (Cout x Cin k k)  += dY (Cout x P) * im2col(X)^T
//   transposed 2x2 conv   T  (4 Cout x P)       = W^T * X, scattered to the four output phases;
//                         its backward gathers the phases of dY (PhaseRows) into the same products.
// On the SIMD paths one register-blocked kernel does the arithmetic (conv_kernels.hpp: tiles of
// 6 x 16 on AVX2, 12 x 32 on AVX-512), A read in place through strides. B, the im2col of the
// forward products, is never materialised: a k x k kernel on rows of 16-multiple width reads
// shifted runs of a zero-bordered band of input rows (implicit im2col), anything else (1x1 kernels
// included: their planes in place alias in the caches) is packed into 16-column strips. The weight
// gradients reduce over pixels, so one operand is packed transposed (pack_transposed) and the other
// read in place (dY's planes, or im2col(X) from a band); with at most 8 columns (Cout <= 8) they
// use a 12 x 8 tile instead, which computes no padding columns. Products too thin for tiles (the
// 1x1 logit head) run as axpys, and their weight gradient as dot products. Threads: each op splits
// into independent units (pixel blocks of the images, or row/column ranges of the weight gradient)
// run by one OpenMP loop, scheduled dynamically because the cores may be shared (small loops:
// threads.hpp's static parallel_for). Each unit owns its outputs and sums in a fixed order, so
// results do not depend on the thread count. Each thread works in its own slice of the layer's
// scratch, and a loop without a team never enters a parallel region (libgomp would allocate one): a
// warm call allocates nothing, on every path. The blocking constants (kMaxDepth, kBlockPixels,
// kBandPixels, kL2Floats) assume 32 KiB of L1 and >= 512 KiB of L2 per core.
//
// Two algorithms for the 3x3 forward and backward-data products (ops/cpu/conv_algo.hpp chooses;
// UNETSRNN_CONV_ALGO or set_conv_algorithm force one): the direct products above, or Winograd
// F(2x2, 3x3) or F(4x4, 3x3) (conv_winograd.hpp), per block of output tiles an input transform
// straight into packed strips, 16 (36) products U[xi] (Cout x Cin) x V[xi] (Cin x tiles) on the
// same register tiles (portable: Eigen's GEMM), and an output transform into Y with the bias and
// ReLU, the filters transformed once per call into the scratch. The weight gradient always runs
// direct.
#include <algorithm>
#include <cstddef>

#include "unetsrnn/ops/cpu/conv_algo.hpp"
#include "unetsrnn/ops/cpu/isa.hpp"
#include "unetsrnn/ops/cpu/kernel_linkage.hpp"
#include "unetsrnn/ops/cpu/threads.hpp"
#include "unetsrnn/ops/types.hpp"
#include "unetsrnn/tensor/tensor.hpp"

namespace unetsrnn::cpu {
inline float* scratch_for(Tensor<Cpu>& scratch, std::size_t count) {
  if (scratch.size() < count) scratch.resize(Shape{1, 1, 1, static_cast<int>(count)});
  return scratch.data();
}
}  // namespace unetsrnn::cpu

namespace unetsrnn::cpu {
UNETSRNN_KERNEL_API void conv2d_forward(CView<Cpu> x, CView<Cpu> w, CView<Cpu> b, View<Cpu> y,
                                        Act act, Tensor<Cpu>& scratch);
UNETSRNN_KERNEL_API void conv2d_backward_data(CView<Cpu> dy, CView<Cpu> w, View<Cpu> dx,
                                              bool accumulate, Tensor<Cpu>& scratch);
UNETSRNN_KERNEL_API void conv2d_backward_params(CView<Cpu> x, CView<Cpu> dy, View<Cpu> dw,
                                                View<Cpu> db, Tensor<Cpu>& scratch);
UNETSRNN_KERNEL_API void conv_transpose2x2_forward(CView<Cpu> x, CView<Cpu> w, CView<Cpu> b,
                                                   View<Cpu> y, Tensor<Cpu>& scratch);
UNETSRNN_KERNEL_API void conv_transpose2x2_backward_data(CView<Cpu> dy, CView<Cpu> w, View<Cpu> dx,
                                                         bool accumulate, Tensor<Cpu>& scratch);
UNETSRNN_KERNEL_API void conv_transpose2x2_backward_params(CView<Cpu> x, CView<Cpu> dy,
                                                           View<Cpu> dw, View<Cpu> db,
                                                           Tensor<Cpu>& scratch);
}  // namespace unetsrnn::cpu

// The kernels and the bodies, unless this unit links them from elsewhere (kernel_linkage.hpp).
#if UNETSRNN_KERNEL_BODIES
#define UNETSRNN_KERNELS_HEADER "unetsrnn/ops/cpu/conv_kernels.hpp"
#define UNETSRNN_KERNELS_EMULATE 1  // the tiles differ by path: tests check AVX-512's on AVX2
#include "unetsrnn/ops/cpu/foreach_isa.hpp"
// After the kernels: the portable ops use the portable path's shared helpers.
#include "unetsrnn/ops/cpu/conv_portable.hpp"
// Winograd F(2x2, 3x3), on every path: after both, it uses their products.
#define UNETSRNN_KERNELS_HEADER "unetsrnn/ops/cpu/conv_winograd.hpp"
#define UNETSRNN_KERNELS_EMULATE 1
#include "unetsrnn/ops/cpu/foreach_isa.hpp"

namespace unetsrnn::cpu {

UNETSRNN_KERNEL_API void conv2d_forward(CView<Cpu> x, CView<Cpu> w, CView<Cpu> b, View<Cpu> y,
                                        Act act, Tensor<Cpu>& scratch) {
  switch (conv_algo_for(w.shape, x.shape)) {
    case ConvAlgo::Winograd:
      UNETSRNN_CPU_DISPATCH(conv2d_forward_winograd(x, w, b, y, act, scratch));
    case ConvAlgo::Winograd4:
      UNETSRNN_CPU_DISPATCH(conv2d_forward_winograd4(x, w, b, y, act, scratch));
    default:
      break;
  }
  UNETSRNN_CPU_DISPATCH(conv2d_forward(x, w, b, y, act, scratch));
}
UNETSRNN_KERNEL_API void conv2d_backward_data(CView<Cpu> dy, CView<Cpu> w, View<Cpu> dx,
                                              bool accumulate, Tensor<Cpu>& scratch) {
  switch (conv_algo_for(w.shape, dy.shape)) {
    case ConvAlgo::Winograd:
      UNETSRNN_CPU_DISPATCH(conv2d_backward_data_winograd(dy, w, dx, accumulate, scratch));
    case ConvAlgo::Winograd4:
      UNETSRNN_CPU_DISPATCH(conv2d_backward_data_winograd4(dy, w, dx, accumulate, scratch));
    default:
      break;
  }
  UNETSRNN_CPU_DISPATCH(conv2d_backward_data(dy, w, dx, accumulate, scratch));
}
UNETSRNN_KERNEL_API void conv2d_backward_params(CView<Cpu> x, CView<Cpu> dy, View<Cpu> dw,
                                                View<Cpu> db, Tensor<Cpu>& scratch) {
  UNETSRNN_CPU_DISPATCH(conv2d_backward_params(x, dy, dw, db, scratch));
}
UNETSRNN_KERNEL_API void conv_transpose2x2_forward(CView<Cpu> x, CView<Cpu> w, CView<Cpu> b,
                                                   View<Cpu> y, Tensor<Cpu>& scratch) {
  UNETSRNN_CPU_DISPATCH(conv_transpose2x2_forward(x, w, b, y, scratch));
}
UNETSRNN_KERNEL_API void conv_transpose2x2_backward_data(CView<Cpu> dy, CView<Cpu> w, View<Cpu> dx,
                                                         bool accumulate, Tensor<Cpu>& scratch) {
  UNETSRNN_CPU_DISPATCH(conv_transpose2x2_backward_data(dy, w, dx, accumulate, scratch));
}
UNETSRNN_KERNEL_API void conv_transpose2x2_backward_params(CView<Cpu> x, CView<Cpu> dy,
                                                           View<Cpu> dw, View<Cpu> db,
                                                           Tensor<Cpu>& scratch) {
  UNETSRNN_CPU_DISPATCH(conv_transpose2x2_backward_params(x, dy, dw, db, scratch));
}

}  // namespace unetsrnn::cpu
#endif  // UNETSRNN_KERNEL_BODIES
