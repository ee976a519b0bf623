#pragma once
// CPU bodies of the Spatial RNN (contract in ops/ops.hpp). PLACEHOLDER: being written.
#include <vector>

#include "unetsrnn/ops/types.hpp"
#include "unetsrnn/tensor/tensor.hpp"

namespace unetsrnn {
template <>
struct SrnnCache<Cpu> {
  std::vector<Tensor<Cpu>> saved;
};
}  // namespace unetsrnn

namespace unetsrnn::cpu {
inline void srnn_forward(CView<Cpu>, CView<Cpu>, View<Cpu>, const SrnnConfig&, SrnnCache<Cpu>&) {
  fail_argument("srnn_forward: not implemented yet");
}
inline void srnn_backward(CView<Cpu>, CView<Cpu>, CView<Cpu>, View<Cpu>, View<Cpu>, bool,
                          const SrnnConfig&, SrnnCache<Cpu>&) {
  fail_argument("srnn_backward: not implemented yet");
}
}  // namespace unetsrnn::cpu
