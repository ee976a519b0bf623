#pragma once
// Convolution layers: 'same' KxK convolution (+ bias, + optional fused ReLU) and the 2x2 stride-2
// transposed convolution. Shapes and parameters live here; the arithmetic is in ops/.
#include <string>

#include "unetsrnn/layers/param.hpp"
#include "unetsrnn/ops/ops.hpp"

namespace unetsrnn {

// Common layer contract (all layers):
//   forward(x, y)            computes y from x and remembers both views for backward;
//   backward(dy, dx, acc)    dx (+)= dL/dx (skipped when dx.data == nullptr), parameter gradients
//   +=;
//                            dy may be overwritten;
//   init(rng), collect(list, prefix).
template <int In, int Out, int K, Act A = Act::Relu, bool Bias = true, class Dev = Cpu>
class Conv2d {
  static_assert(In > 0 && Out > 0 && K % 2 == 1, "Conv2d: positive channels and odd kernel");

 public:
  static constexpr int in_channels = In, out_channels = Out;
  Param<Dev> weight{Shape{Out, In, K, K}, Init::GlorotUniform, In* K* K, Out* K* K};
  Param<Dev> bias{Shape{1, Out, 1, 1}, Init::Zeros};

  explicit Conv2d(Init kernel_init = Init::GlorotUniform) { weight.init = kernel_init; }
  // The fused activation defaults to A; a layer that composes a Conv2d may choose it at run time.
  void set_activation(Act act) { act_ = act; }

  void init(Rng& rng) {
    weight.initialise(rng);
    bias.initialise(rng);
  }
  void collect(ParamList<Dev>& out, const std::string& prefix) {
    out.push_back({join_name(prefix, "weight"), &weight});
    if (Bias) out.push_back({join_name(prefix, "bias"), &bias});
  }
  static Shape output_shape(Shape in) { return Shape{in.n, Out, in.h, in.w}; }

  void forward(CView<Dev> x, View<Dev> y) {
    x_ = x;
    y_ = y;
    ops::conv2d_forward<Dev>(x, weight.value, bias_view(), y, act_, scratch_);
  }
  void backward(View<Dev> dy, View<Dev> dx, bool accumulate) {
    if (act_ == Act::Relu) ops::relu_backward<Dev>(y_, dy, dy, false);
    ops::conv2d_backward_params<Dev>(x_, dy, weight.grad, Bias ? bias.grad.view() : View<Dev>{},
                                     scratch_);
    if (dx.data) ops::conv2d_backward_data<Dev>(dy, weight.value, dx, accumulate, scratch_);
  }

 private:
  CView<Dev> bias_view() const { return Bias ? bias.value.cview() : CView<Dev>{}; }
  Act act_ = A;
  CView<Dev> x_, y_;
  Tensor<Dev> scratch_;
};

template <int In, int Out, class Dev = Cpu>
class ConvTranspose2x2 {
 public:
  static constexpr int in_channels = In, out_channels = Out;
  // Keras' kernel (2, 2, Out, In) gives fan_in = 4 * Out, fan_out = 4 * In.
  Param<Dev> weight{Shape{In, Out, 2, 2}, Init::GlorotUniform, 4 * Out, 4 * In};
  Param<Dev> bias{Shape{1, Out, 1, 1}, Init::Zeros};

  void init(Rng& rng) {
    weight.initialise(rng);
    bias.initialise(rng);
  }
  void collect(ParamList<Dev>& out, const std::string& prefix) {
    out.push_back({join_name(prefix, "weight"), &weight});
    out.push_back({join_name(prefix, "bias"), &bias});
  }
  static Shape output_shape(Shape in) { return Shape{in.n, Out, 2 * in.h, 2 * in.w}; }

  void forward(CView<Dev> x, View<Dev> y) {
    x_ = x;
    ops::conv_transpose2x2_forward<Dev>(x, weight.value, bias.value, y, scratch_);
  }
  void backward(View<Dev> dy, View<Dev> dx, bool accumulate) {
    ops::conv_transpose2x2_backward_params<Dev>(x_, dy, weight.grad, bias.grad, scratch_);
    if (dx.data)
      ops::conv_transpose2x2_backward_data<Dev>(dy, weight.value, dx, accumulate, scratch_);
  }

 private:
  CView<Dev> x_;
  Tensor<Dev> scratch_;
};

}  // namespace unetsrnn
