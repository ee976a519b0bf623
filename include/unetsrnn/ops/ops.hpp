#pragma once
// The op table. Every op the layers use is declared here exactly once, with its contract; the
// shape checks live here too, so every backend gets them. The body is chosen in one place,
// `Backend<Dev>`: ops/cpu/backend.hpp for the CPU, ops/cuda/backend.cuh for CUDA. Layers and models
// only ever call `ops::...`, so adding a device never touches them.
//
// Conventions: NCHW float32. Output views may be strided channel blocks of a larger tensor (fused
// concatenation). `accumulate == true` means dx += ..., otherwise dx = .... Parameter gradients
// always accumulate (the trainer zeroes them once per batch).
#include <atomic>
#include <concepts>
#include <cstdint>
#include <type_traits>

#include "unetsrnn/ops/types.hpp"
#include "unetsrnn/tensor/tensor.hpp"

namespace unetsrnn {

template <class Dev>
struct Backend;  // specialised per device

template <class Dev>
struct SrnnCache;  // per-backend scratch a Spatial RNN keeps between forward and backward

namespace ops {
// Floating-point operations of the convolutions (plain and transposed, forward and backward) issued
// through the op table since the last reset; a multiply-add counts as two. Pointwise ops, pooling
// and the Spatial RNN (a few operations per element) are not counted. Benchmarks use it to report
// each model's FLOPs as the library actually issues them.
inline std::uint64_t flops_counted();
inline void reset_flop_counter();

// What Backend<Dev> must bind: every op of this table, with its exact signature.
template <class B, class Dev>
concept ProvidesEveryOp = requires {
  { B::fill } -> std::convertible_to<void (*)(View<Dev>, float)>;
  { B::copy } -> std::convertible_to<void (*)(CView<Dev>, View<Dev>)>;
  { B::add } -> std::convertible_to<void (*)(CView<Dev>, View<Dev>)>;
  { B::relu_forward } -> std::convertible_to<void (*)(CView<Dev>, View<Dev>)>;
  { B::relu_backward } -> std::convertible_to<void (*)(CView<Dev>, CView<Dev>, View<Dev>, bool)>;
  { B::sigmoid_forward } -> std::convertible_to<void (*)(CView<Dev>, View<Dev>)>;
  {
    B::conv2d_forward
    } -> std::convertible_to<void (*)(CView<Dev>, CView<Dev>, CView<Dev>, View<Dev>, Act,
                                      Tensor<Dev>&)>;
  {
    B::conv2d_backward_data
    } -> std::convertible_to<void (*)(CView<Dev>, CView<Dev>, View<Dev>, bool, Tensor<Dev>&)>;
  {
    B::conv2d_backward_params
    } -> std::convertible_to<void (*)(CView<Dev>, CView<Dev>, View<Dev>, View<Dev>, Tensor<Dev>&)>;
  {
    B::conv_transpose2x2_forward
    } -> std::convertible_to<void (*)(CView<Dev>, CView<Dev>, CView<Dev>, View<Dev>, Tensor<Dev>&)>;
  {
    B::conv_transpose2x2_backward_data
    } -> std::convertible_to<void (*)(CView<Dev>, CView<Dev>, View<Dev>, bool, Tensor<Dev>&)>;
  {
    B::conv_transpose2x2_backward_params
    } -> std::convertible_to<void (*)(CView<Dev>, CView<Dev>, View<Dev>, View<Dev>, Tensor<Dev>&)>;
  { B::maxpool2x2_forward } -> std::convertible_to<void (*)(CView<Dev>, View<Dev>)>;
  {
    B::maxpool2x2_backward
    } -> std::convertible_to<void (*)(CView<Dev>, CView<Dev>, CView<Dev>, View<Dev>, bool)>;
  {
    B::srnn_forward
    } -> std::convertible_to<void (*)(CView<Dev>, CView<Dev>, View<Dev>, const SrnnConfig&,
                                      SrnnCache<Dev>&)>;
  {
    B::srnn_backward
    } -> std::convertible_to<void (*)(CView<Dev>, CView<Dev>, CView<Dev>, View<Dev>, View<Dev>,
                                      bool, const SrnnConfig&, SrnnCache<Dev>&)>;
  {
    B::adam_update
    } -> std::convertible_to<void (*)(View<Dev>, CView<Dev>, View<Dev>, View<Dev>, float, float,
                                      float, float)>;
  {
    B::sgd_update
    } -> std::convertible_to<void (*)(View<Dev>, CView<Dev>, View<Dev>, float, float)>;
};

namespace detail {
template <class Dev>
constexpr bool backend_complete = requires {
  sizeof(Backend<Dev>);
};

// The ops below reach their bodies through this, so the first op used on a device checks that
// device's whole backend.
template <class Dev>
struct CheckedBackend {
  static_assert(backend_complete<Dev>,
                "no backend for this device: include <unetsrnn/cuda.hpp> and compile with nvcc "
                "to use the Cuda device");
  static_assert(ProvidesEveryOp<Backend<Dev>, Dev>,
                "Backend<Dev> must bind every op of ops/ops.hpp with its exact signature (the "
                "unsatisfied requirement named below is the missing or mismatched op)");
  using type = Backend<Dev>;
};
template <class Dev>
using backend = typename CheckedBackend<Dev>::type;

// Multiply-adds count as two floating-point operations.
inline std::atomic<std::uint64_t> flop_count{0};
inline void count_flops(double flops) {
  flop_count.fetch_add(static_cast<std::uint64_t>(flops), std::memory_order_relaxed);
}
inline double conv_flops(const Shape& out, const Shape& w) {  // w: (Cout, Cin, k, k) or transposed
  return 2.0 * static_cast<double>(out.size()) * w.c * w.h * w.w;
}

inline void same_hw(const char* who, const Shape& a, const Shape& b) {
  if (a.n != b.n || a.h != b.h || a.w != b.w)
    fail_argument(who, ": batch/spatial sizes differ, ", a.str(), " vs ", b.str());
}
inline void channels_are(const char* who, const char* what, const Shape& s, int c) {
  if (s.c != c)
    fail_argument(who, ": ", what, " has ", s.c, " channels, expected ", c, " in ", s.str());
}
}  // namespace detail

inline std::uint64_t flops_counted() { return detail::flop_count.load(); }
inline void reset_flop_counter() { detail::flop_count.store(0); }

// ---------------------------------------------------------------- pointwise and data movement
// y = value everywhere.
template <class Dev>
void fill(View<Dev> y, float value) {
  detail::backend<Dev>::fill(y, value);
}
// y = x (shapes equal; either may be strided).
template <class Dev>
void copy(CView<Dev> x, View<Dev> y) {
  check_shape("ops::copy", x.shape, y.shape);
  detail::backend<Dev>::copy(x, y);
}
// y += x.
template <class Dev>
void add(CView<Dev> x, View<Dev> y) {
  check_shape("ops::add", x.shape, y.shape);
  detail::backend<Dev>::add(x, y);
}
// y = max(x, 0); x and y may alias.
template <class Dev>
void relu_forward(CView<Dev> x, View<Dev> y) {
  check_shape("ops::relu_forward", x.shape, y.shape);
  detail::backend<Dev>::relu_forward(x, y);
}
// dx (+)= dy * [y > 0], with y the ReLU's output; dy and dx may alias when !accumulate.
template <class Dev>
void relu_backward(CView<Dev> y, CView<Dev> dy, View<Dev> dx, bool accumulate) {
  check_shape("ops::relu_backward", y.shape, dy.shape);
  check_shape("ops::relu_backward", y.shape, dx.shape);
  detail::backend<Dev>::relu_backward(y, dy, dx, accumulate);
}
// y = 1 / (1 + exp(-x)), computed without overflow for any x.
template <class Dev>
void sigmoid_forward(CView<Dev> x, View<Dev> y) {
  check_shape("ops::sigmoid_forward", x.shape, y.shape);
  detail::backend<Dev>::sigmoid_forward(x, y);
}

// ---------------------------------------------------------------- convolution
// 'Same' convolution, stride 1, odd square kernel k (1 or 3 in the models):
//   y[n,o,i,j] = act(b[o] + sum_{c,u,v} w[o,c,u,v] * x[n,c,i+u-k/2,j+v-k/2]), zero padding.
// w: (Cout, Cin, k, k) (PyTorch's layout); b: (1, Cout, 1, 1) or empty (data == nullptr) for no
// bias. scratch: reusable workspace, grown as needed (no allocation once warm).
template <class Dev>
void conv2d_forward(CView<Dev> x, CView<Dev> w, CView<Dev> b, View<Dev> y, Act act,
                    Tensor<Dev>& scratch) {
  const char* who = "ops::conv2d_forward";
  if (w.shape.h != w.shape.w || w.shape.h % 2 == 0)
    fail_argument(who, ": kernel must be odd and square, got ", w.shape.str());
  detail::channels_are(who, "input", x.shape, w.shape.c);
  detail::channels_are(who, "output", y.shape, w.shape.n);
  detail::same_hw(who, x.shape, y.shape);
  if (b.data) check_shape(who, Shape{1, w.shape.n, 1, 1}, b.shape);
  detail::count_flops(detail::conv_flops(y.shape, w.shape));
  detail::backend<Dev>::conv2d_forward(x, w, b, y, act, scratch);
}
// dx (+)= gradient of the convolution's pre-activation output dy with respect to its input.
// (A fused ReLU is undone by the caller with relu_backward first.)
template <class Dev>
void conv2d_backward_data(CView<Dev> dy, CView<Dev> w, View<Dev> dx, bool accumulate,
                          Tensor<Dev>& scratch) {
  const char* who = "ops::conv2d_backward_data";
  detail::channels_are(who, "dy", dy.shape, w.shape.n);
  detail::channels_are(who, "dx", dx.shape, w.shape.c);
  detail::same_hw(who, dy.shape, dx.shape);
  detail::count_flops(detail::conv_flops(dy.shape, w.shape));
  detail::backend<Dev>::conv2d_backward_data(dy, w, dx, accumulate, scratch);
}
// dw += sum over batch and pixels of dy x im2col(x); db += sum of dy (db may be empty).
template <class Dev>
void conv2d_backward_params(CView<Dev> x, CView<Dev> dy, View<Dev> dw, View<Dev> db,
                            Tensor<Dev>& scratch) {
  const char* who = "ops::conv2d_backward_params";
  detail::channels_are(who, "x", x.shape, dw.shape.c);
  detail::channels_are(who, "dy", dy.shape, dw.shape.n);
  detail::same_hw(who, x.shape, dy.shape);
  if (db.data) check_shape(who, Shape{1, dw.shape.n, 1, 1}, db.shape);
  detail::count_flops(detail::conv_flops(dy.shape, dw.shape));
  detail::backend<Dev>::conv2d_backward_params(x, dy, dw, db, scratch);
}

// Transposed convolution, kernel 2, stride 2 (every output pixel has exactly one source):
//   y[n,o,2i+u,2j+v] = b[o] + sum_c x[n,c,i,j] * w[c,o,u,v];  w: (Cin, Cout, 2, 2) as in PyTorch.
template <class Dev>
void conv_transpose2x2_forward(CView<Dev> x, CView<Dev> w, CView<Dev> b, View<Dev> y,
                               Tensor<Dev>& scratch) {
  const char* who = "ops::conv_transpose2x2_forward";
  if (w.shape.h != 2 || w.shape.w != 2)
    fail_argument(who, ": kernel must be 2x2, got ", w.shape.str());
  detail::channels_are(who, "input", x.shape, w.shape.n);
  check_shape(who, Shape{x.shape.n, w.shape.c, 2 * x.shape.h, 2 * x.shape.w}, y.shape);
  if (b.data) check_shape(who, Shape{1, w.shape.c, 1, 1}, b.shape);
  detail::count_flops(2.0 * x.shape.size() * w.shape.c * 4);
  detail::backend<Dev>::conv_transpose2x2_forward(x, w, b, y, scratch);
}
template <class Dev>
void conv_transpose2x2_backward_data(CView<Dev> dy, CView<Dev> w, View<Dev> dx, bool accumulate,
                                     Tensor<Dev>& scratch) {
  const char* who = "ops::conv_transpose2x2_backward_data";
  check_shape(who, Shape{dx.shape.n, w.shape.c, 2 * dx.shape.h, 2 * dx.shape.w}, dy.shape);
  detail::channels_are(who, "dx", dx.shape, w.shape.n);
  detail::count_flops(2.0 * dx.shape.size() * w.shape.c * 4);
  detail::backend<Dev>::conv_transpose2x2_backward_data(dy, w, dx, accumulate, scratch);
}
template <class Dev>
void conv_transpose2x2_backward_params(CView<Dev> x, CView<Dev> dy, View<Dev> dw, View<Dev> db,
                                       Tensor<Dev>& scratch) {
  const char* who = "ops::conv_transpose2x2_backward_params";
  check_shape(who, Shape{x.shape.n, dw.shape.c, 2 * x.shape.h, 2 * x.shape.w}, dy.shape);
  detail::channels_are(who, "x", x.shape, dw.shape.n);
  if (db.data) check_shape(who, Shape{1, dw.shape.c, 1, 1}, db.shape);
  detail::count_flops(2.0 * x.shape.size() * dw.shape.c * 4);
  detail::backend<Dev>::conv_transpose2x2_backward_params(x, dy, dw, db, scratch);
}

// ---------------------------------------------------------------- pooling
// 2x2 max-pool, stride 2 (H and W even): y[n,c,i,j] = max of x[n,c,2i..2i+1,2j..2j+1].
template <class Dev>
void maxpool2x2_forward(CView<Dev> x, View<Dev> y) {
  const char* who = "ops::maxpool2x2_forward";
  if (x.shape.h % 2 || x.shape.w % 2)
    fail_argument(who, ": H and W must be even, got ", x.shape.str());
  check_shape(who, Shape{x.shape.n, x.shape.c, x.shape.h / 2, x.shape.w / 2}, y.shape);
  detail::backend<Dev>::maxpool2x2_forward(x, y);
}
// dx (+)= dy routed to the first maximum of each window in row-major order (ties go to one place).
template <class Dev>
void maxpool2x2_backward(CView<Dev> x, CView<Dev> y, CView<Dev> dy, View<Dev> dx, bool accumulate) {
  const char* who = "ops::maxpool2x2_backward";
  check_shape(who, y.shape, dy.shape);
  check_shape(who, x.shape, dx.shape);
  check_shape(who, Shape{x.shape.n, x.shape.c, x.shape.h / 2, x.shape.w / 2}, y.shape);
  detail::backend<Dev>::maxpool2x2_backward(x, y, dy, dx, accumulate);
}

// ---------------------------------------------------------------- Spatial RNN
// Four directional sweeps of x (N, C, H, W) with per-channel weights w (4, C, 1, 1) in direction
// order right, left, down, up; y (N, 4C, H, W) holds the four results as channel blocks in that
// order. Exact for every rule, any sign of x and w, any L >= 1 (L beyond the image edge included).
// `cache` keeps what backward needs; backward must follow the forward that filled it.
template <class Dev>
void srnn_forward(CView<Dev> x, CView<Dev> w, View<Dev> y, const SrnnConfig& cfg,
                  SrnnCache<Dev>& cache) {
  const char* who = "ops::srnn_forward";
  check_shape(who, Shape{kDirections, x.shape.c, 1, 1}, w.shape);
  check_shape(who, Shape{x.shape.n, kDirections * x.shape.c, x.shape.h, x.shape.w}, y.shape);
  if (cfg.length < 1 && cfg.rule != SrnnRule::Irnn)
    fail_argument(who, ": sequence length L must be >= 1, got ", cfg.length);
  detail::backend<Dev>::srnn_forward(x, w, y, cfg, cache);
}
// dx (+)= d loss / d x, dw += d loss / d w, given dy = d loss / d y.
template <class Dev>
void srnn_backward(CView<Dev> x, CView<Dev> w, CView<Dev> dy, View<Dev> dx, View<Dev> dw,
                   bool accumulate, const SrnnConfig& cfg, SrnnCache<Dev>& cache) {
  const char* who = "ops::srnn_backward";
  check_shape(who, Shape{x.shape.n, kDirections * x.shape.c, x.shape.h, x.shape.w}, dy.shape);
  check_shape(who, x.shape, dx.shape);
  check_shape(who, w.shape, dw.shape);
  detail::backend<Dev>::srnn_backward(x, w, dy, dx, dw, accumulate, cfg, cache);
}

// ---------------------------------------------------------------- optimiser updates
// Adam as in Keras 2 (legacy): lr_t = lr * sqrt(1 - b2^t) / (1 - b1^t);
// m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2; p -= lr_t * m / (sqrt(v) + eps). All views
// contiguous.
template <class Dev>
void adam_update(View<Dev> p, CView<Dev> g, View<Dev> m, View<Dev> v, float lr_t, float beta1,
                 float beta2, float eps) {
  const char* who = "ops::adam_update";
  check_shape(who, p.shape, g.shape);
  check_shape(who, p.shape, m.shape);
  check_shape(who, p.shape, v.shape);
  detail::backend<Dev>::adam_update(p, g, m, v, lr_t, beta1, beta2, eps);
}
// SGD with momentum (Keras): vel = mu * vel - lr * g; p += vel.
template <class Dev>
void sgd_update(View<Dev> p, CView<Dev> g, View<Dev> vel, float lr, float momentum) {
  const char* who = "ops::sgd_update";
  check_shape(who, p.shape, g.shape);
  check_shape(who, p.shape, vel.shape);
  detail::backend<Dev>::sgd_update(p, g, vel, lr, momentum);
}

}  // namespace ops
}  // namespace unetsrnn
