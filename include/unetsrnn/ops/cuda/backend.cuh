#pragma once
// Backend<Cuda>: the one place where every op of ops/ops.hpp is bound to its CUDA body.
// Compiled by nvcc only (include <unetsrnn/cuda.hpp>).
#include "unetsrnn/ops/cuda/conv.cuh"
#include "unetsrnn/ops/cuda/memory.cuh"
#include "unetsrnn/ops/cuda/pointwise.cuh"
#include "unetsrnn/ops/cuda/pool.cuh"
#include "unetsrnn/ops/cuda/srnn.cuh"
#include "unetsrnn/ops/ops.hpp"

namespace unetsrnn {

template <>
struct Backend<Cuda> {
  static constexpr auto fill = cuda::fill;
  static constexpr auto copy = cuda::copy;
  static constexpr auto add = cuda::add;
  static constexpr auto relu_forward = cuda::relu_forward;
  static constexpr auto relu_backward = cuda::relu_backward;
  static constexpr auto sigmoid_forward = cuda::sigmoid_forward;
  static constexpr auto conv2d_forward = cuda::conv2d_forward;
  static constexpr auto conv2d_backward_data = cuda::conv2d_backward_data;
  static constexpr auto conv2d_backward_params = cuda::conv2d_backward_params;
  static constexpr auto conv_transpose2x2_forward = cuda::conv_transpose2x2_forward;
  static constexpr auto conv_transpose2x2_backward_data = cuda::conv_transpose2x2_backward_data;
  static constexpr auto conv_transpose2x2_backward_params = cuda::conv_transpose2x2_backward_params;
  static constexpr auto maxpool2x2_forward = cuda::maxpool2x2_forward;
  static constexpr auto maxpool2x2_backward = cuda::maxpool2x2_backward;
  static constexpr auto srnn_forward = cuda::srnn_forward;
  static constexpr auto srnn_backward = cuda::srnn_backward;
  static constexpr auto adam_update = cuda::adam_update;
  static constexpr auto sgd_update = cuda::sgd_update;
};

}  // namespace unetsrnn
