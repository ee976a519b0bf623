#pragma once
// Trainable parameters and their initialisers.
#include <cmath>
#include <cstddef>
#include <string>
#include <vector>

#include "unetsrnn/core/rng.hpp"
#include "unetsrnn/ops/ops.hpp"
#include "unetsrnn/tensor/tensor.hpp"

namespace unetsrnn {

// Initialisers of the original work (Keras 2 definitions).
enum class Init {
  Zeros,
  HeNormal,       // truncated normal (+-2 sd, redrawn), sd = sqrt(2 / fan_in) / 0.8796... (Keras)
  GlorotUniform,  // uniform +-sqrt(6 / (fan_in + fan_out))
  SrnnUniform,    // uniform [-0.05, 0.05], the original's Spatial RNN weights
};

template <class Dev = Cpu>
struct Param {
  Tensor<Dev> value, grad;
  Init init = Init::Zeros;
  int fan_in = 1, fan_out = 1;

  Param(Shape s, Init i, int fin = 1, int fout = 1)
      : value(s, 0.0f), grad(s, 0.0f), init(i), fan_in(fin), fan_out(fout) {}

  // Draws the initial values on the host, then copies them to the device.
  void initialise(Rng& rng) {
    Tensor<Cpu> host(value.shape(), 0.0f);
    // Keras divides by the sd of a unit normal truncated at +-2 so the result has the intended sd.
    constexpr double kTruncatedSd = 0.87962566103423978;
    for (float& v : host) {
      switch (init) {
        case Init::Zeros:
          v = 0.0f;
          break;
        case Init::HeNormal:
          v = static_cast<float>(rng.truncated_normal(std::sqrt(2.0 / fan_in) / kTruncatedSd));
          break;
        case Init::GlorotUniform: {
          const double lim = std::sqrt(6.0 / (fan_in + fan_out));
          v = static_cast<float>(rng.uniform(-lim, lim));
          break;
        }
        case Init::SrnnUniform:
          v = static_cast<float>(rng.uniform(-0.05, 0.05));
          break;
      }
    }
    if constexpr (std::is_same_v<Dev, Cpu>)
      value = std::move(host);
    else
      value.copy_from_host(host);
    grad.zero();
  }
};

template <class Dev>
struct NamedParam {
  std::string name;
  Param<Dev>* param;
};
template <class Dev>
using ParamList = std::vector<NamedParam<Dev>>;

template <class Dev>
std::size_t count_parameters(const ParamList<Dev>& list) {
  std::size_t n = 0;
  for (const auto& p : list) n += p.param->value.size();
  return n;
}
// Sets every gradient to zero (before a batch accumulates into them).
template <class Dev>
void zero_grad(ParamList<Dev>& list) {
  for (auto& p : list) ops::fill<Dev>(p.param->grad.view(), 0.0f);  // threaded
}

// Told during a backward pass which parameters hold their final gradients: [first, first + count)
// of the model's parameters() list, reported once each, in the order the pass finishes them (a
// UNet: after each of its parts). Data-parallel training starts summing those over the ranks while
// the rest of the pass runs (GradientReducer, train/communicator.hpp).
class GradientReadyHook {
 public:
  virtual void gradients_ready(std::size_t first, std::size_t count) = 0;

 protected:
  ~GradientReadyHook() = default;
};
// The same as a callable, for a model's templated backward(dlogits, ready).
struct CallGradientReadyHook {
  GradientReadyHook* hook;
  void operator()(std::size_t first, std::size_t count) const {
    hook->gradients_ready(first, count);
  }
};

inline std::string join_name(const std::string& prefix, const char* name) {
  return prefix.empty() ? std::string(name) : prefix + "." + name;
}

}  // namespace unetsrnn
