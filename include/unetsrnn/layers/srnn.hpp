#pragma once
// Spatial RNN layer: four directional sweeps (right, left, down, up) with one weight per channel
// per direction, merged by concatenation (4C channels) or by a 1x1 convolution without bias
// followed by the activation. Rule, activation and L are run-time settings (SrnnConfig).
#include <string>

#include "unetsrnn/layers/conv.hpp"
#include "unetsrnn/layers/param.hpp"
#include "unetsrnn/ops/ops.hpp"

namespace unetsrnn {

template <int C, SrnnMerge Merge = SrnnMerge::Concat, int MergeOut = 4 * C, class Dev = Cpu>
class SpatialRnn {
  static_assert(C > 0 && MergeOut > 0, "SpatialRnn: positive channel counts");

 public:
  static constexpr int in_channels = C;
  static constexpr int out_channels = Merge == SrnnMerge::Concat ? 4 * C : MergeOut;
  Param<Dev> weight{Shape{kDirections, C, 1, 1}, Init::SrnnUniform};

  explicit SpatialRnn(SrnnConfig cfg = {}) : cfg_(cfg) {
    if (cfg.length < 1 && cfg.rule != SrnnRule::Irnn)
      fail_argument("SpatialRnn: sequence length L must be >= 1, got ", cfg.length);
    if (Merge == SrnnMerge::Conv && cfg.act == SrnnAct::Tanh)
      fail_argument("SpatialRnn: the conv merge supports the relu and identity activations");
    merge_.set_activation(cfg.act == SrnnAct::Relu ? Act::Relu : Act::None);
  }
  const SrnnConfig& config() const { return cfg_; }

  void init(Rng& rng) {
    weight.initialise(rng);
    if constexpr (Merge == SrnnMerge::Conv) merge_.init(rng);
  }
  void collect(ParamList<Dev>& out, const std::string& prefix) {
    out.push_back({join_name(prefix, "weight"), &weight});
    if constexpr (Merge == SrnnMerge::Conv) merge_.collect(out, join_name(prefix, "merge"));
  }
  static Shape output_shape(Shape in) { return Shape{in.n, out_channels, in.h, in.w}; }

  void forward(CView<Dev> x, View<Dev> y) {
    x_ = x;
    if constexpr (Merge == SrnnMerge::Concat) {
      ops::srnn_forward<Dev>(x, weight.value, y, cfg_, cache_);
    } else {
      sweeps_.resize(Shape{x.shape.n, 4 * C, x.shape.h, x.shape.w});
      ops::srnn_forward<Dev>(x, weight.value, sweeps_, cfg_, cache_);
      merge_.forward(sweeps_, y);
    }
  }
  void backward(View<Dev> dy, View<Dev> dx, bool accumulate) {
    if constexpr (Merge == SrnnMerge::Concat) {
      sweep_backward(dy, dx, accumulate);
    } else {
      dsweeps_.resize(sweeps_.shape());
      merge_.backward(dy, dsweeps_, false);
      sweep_backward(dsweeps_, dx, accumulate);
    }
  }

 private:
  void sweep_backward(CView<Dev> dy, View<Dev> dx, bool accumulate) {
    if (dx.data) {
      ops::srnn_backward<Dev>(x_, weight.value, dy, dx, weight.grad, accumulate, cfg_, cache_);
    } else {
      // The input gradient is not wanted, but the op computes it anyway; give it a buffer.
      dx_unused_.resize(x_.shape);
      ops::srnn_backward<Dev>(x_, weight.value, dy, dx_unused_, weight.grad, false, cfg_, cache_);
    }
  }
  SrnnConfig cfg_;
  CView<Dev> x_;
  SrnnCache<Dev> cache_;
  // Merge::Conv only: 1x1 conv without bias, then the SRNN's activation (ReLU or none).
  Conv2d<4 * C, MergeOut, 1, Act::Relu, false, Dev> merge_{Init::GlorotUniform};
  Tensor<Dev> sweeps_, dsweeps_, dx_unused_;
};

}  // namespace unetsrnn
