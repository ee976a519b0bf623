#pragma once
// Whole-model checks shared by the model suites (test_models.cpp, test_compose.cpp).
#include <doctest/doctest.h>

#include <cmath>
#include <string>

#include "random_tensors.hpp"
#include "unetsrnn/core/rng.hpp"
#include "unetsrnn/tensor/tensor.hpp"

namespace unetsrnn::testing {

// Forward + backward of a model on x with loss = sum(logits * r); returns the loss.
template <class M>
double forward_backward(M& model, const Tensor<Cpu>& x, const Tensor<Cpu>& r) {
  model.zero_grad();
  CView<Cpu> y = model.forward(x);
  double loss = 0.0;
  for (std::size_t i = 0; i < r.size(); ++i) loss += static_cast<double>(y.data[i]) * r[i];
  model.backward(r);
  return loss;
}

// Whole-model gradient check. Float32 rounding of a deep net's loss (~1e-6 relative, summed over
// thousands of outputs) swamps per-coordinate central differences of the small deep gradients, and
// at the default initialisation countless ReLUs and max-pools sit within any usable step of a kink.
// So the models are put in a regime where every ReLU is active: positive inputs, positive weights
// scaled to ~1/fan_in, positive biases, Spatial RNN weights in [srnn_lo, srnn_hi]. There the loss
// is exactly linear in every conv tensor, so a large step along the analytic gradient g of one
// tensor (0.2 x its norm) has no truncation error and little relative rounding: the numeric slope
// must equal |g| to 3% (measured worst 1.5%, on a bias whose gradient is 1e-3). The SRNN weights
// enter as polynomials (w^k, k <= L), so they get a small step and their own exhaustive checks in
// test_srnn.cpp. The ReLU masks themselves are checked per layer in test_layers_gradcheck.cpp, and
// every gradient is compared with PyTorch's autograd in test_torch_parity.cpp.
inline bool is_srnn_weight(const std::string& name) { return name.ends_with("srnn.weight"); }

template <class M>
void set_all_active(M& model, double srnn_lo = 0.1, double srnn_hi = 0.5) {
  Rng rng(5);
  for (auto& p : model.parameters()) {
    const Shape s = p.param->value.shape();
    const bool transposed = p.name.find(".up.") != std::string::npos;
    const double fan_in = transposed ? s.n : double(s.c) * s.h * s.w;
    for (float& v : p.param->value) {
      if (p.name.ends_with("bias"))
        v = static_cast<float>(rng.uniform(0.05, 0.2));
      else if (is_srnn_weight(p.name))
        v = static_cast<float>(rng.uniform(srnn_lo, srnn_hi));
      else
        v = static_cast<float>(rng.uniform(0.5, 1.5) / fan_in);
    }
  }
}

// Sets `model` all-active (above), then checks the gradient of every parameter tensor along itself.
template <class M>
void check_model_gradients(M& model, Shape input, double srnn_lo = 0.1, double srnn_hi = 0.5) {
  set_all_active(model, srnn_lo, srnn_hi);
  const Tensor<Cpu> x = random_tensor(input, 11, 0.0, 1.0);
  const Tensor<Cpu> r = random_tensor(Shape{input.n, 1, input.h, input.w}, 12);
  forward_backward(model, x, r);
  auto loss = [&] {
    CView<Cpu> y = model.forward(x);
    double l = 0.0;
    for (std::size_t i = 0; i < r.size(); ++i) l += static_cast<double>(y.data[i]) * r[i];
    return l;
  };
  for (auto& p : model.parameters()) {
    Tensor<Cpu>& v = p.param->value;
    const Tensor<Cpu>& g = p.param->grad;
    double gnorm = 0.0, vnorm = 0.0;
    for (std::size_t i = 0; i < v.size(); ++i) {
      gnorm += static_cast<double>(g[i]) * g[i];
      vnorm += static_cast<double>(v[i]) * v[i];
    }
    gnorm = std::sqrt(gnorm);
    vnorm = std::sqrt(vnorm);
    INFO(p.name);
    REQUIRE(gnorm > 0.0);
    const double step = (is_srnn_weight(p.name) ? 0.01 : 0.2) * vnorm;
    const Tensor<Cpu> saved = v;
    for (std::size_t i = 0; i < v.size(); ++i)
      v[i] = saved[i] + static_cast<float>(step * g[i] / gnorm);
    const double up = loss();
    for (std::size_t i = 0; i < v.size(); ++i)
      v[i] = saved[i] - static_cast<float>(step * g[i] / gnorm);
    const double down = loss();
    v = saved;
    const double slope = (up - down) / (2.0 * step);
    INFO(p.name, ": |g| = ", gnorm, ", numeric slope along g = ", slope);
    CHECK(std::fabs(slope - gnorm) <= 0.03 * gnorm);
  }
}

}  // namespace unetsrnn::testing
