#pragma once
// Backend<Cpu>: the one place where every op of ops/ops.hpp is bound to its CPU body.
#include "unetsrnn/ops/cpu/conv.hpp"
#include "unetsrnn/ops/cpu/pointwise.hpp"
#include "unetsrnn/ops/cpu/pool.hpp"
#include "unetsrnn/ops/cpu/srnn.hpp"
#include "unetsrnn/ops/ops.hpp"

namespace unetsrnn {

template <>
struct Backend<Cpu> {
  static constexpr auto fill = cpu::fill;
  static constexpr auto copy = cpu::copy;
  static constexpr auto add = cpu::add;
  static constexpr auto relu_forward = cpu::relu_forward;
  static constexpr auto relu_backward = cpu::relu_backward;
  static constexpr auto sigmoid_forward = cpu::sigmoid_forward;
  static constexpr auto conv2d_forward = cpu::conv2d_forward;
  static constexpr auto conv2d_backward_data = cpu::conv2d_backward_data;
  static constexpr auto conv2d_backward_params = cpu::conv2d_backward_params;
  static constexpr auto conv_transpose2x2_forward = cpu::conv_transpose2x2_forward;
  static constexpr auto conv_transpose2x2_backward_data = cpu::conv_transpose2x2_backward_data;
  static constexpr auto conv_transpose2x2_backward_params = cpu::conv_transpose2x2_backward_params;
  static constexpr auto maxpool2x2_forward = cpu::maxpool2x2_forward;
  static constexpr auto maxpool2x2_backward = cpu::maxpool2x2_backward;
  static constexpr auto srnn_forward = cpu::srnn_forward;
  static constexpr auto srnn_backward = cpu::srnn_backward;
  static constexpr auto adam_update = cpu::adam_update;
  static constexpr auto sgd_update = cpu::sgd_update;
};

}  // namespace unetsrnn
