#pragma once
// Small enums shared by ops, layers and models.
#include <string_view>
#include <type_traits>

#include "unetsrnn/core/error.hpp"

namespace unetsrnn {

// Activation fused into an op's output.
enum class Act { None, Relu };

// Spatial RNN rule (see ../shared/docs/seed-facts.md, section 1).
//   Seed : h_0 = x, h_k = act(w * S h_{k-1}), y = x + sum_{k=1..L} h_k   (the original layer)
//   Paper: g_0 = x, g_k = act(w * S g_{k-1} + g_{k-1}), y = g_L          (the CR-Unet paper)
//   Irnn : y[t] = act(w * y[t-1] + x[t]) along the sweep, y[-1] = 0       (Inside-Outside Net)
enum class SrnnRule { Seed, Paper, Irnn };
// Activation inside the recurrence.
enum class SrnnAct { Relu, Identity, Tanh };
// How the four directions are merged: concat gives 4C channels [right, left, down, up]; conv
// applies a 1x1 convolution without bias from 4C channels, then the activation.
enum class SrnnMerge { Concat, Conv };

// Direction order of the output channel blocks. Fixed by the original layer.
enum class Direction { Right = 0, Left = 1, Down = 2, Up = 3 };
inline constexpr int kDirections = 4;

struct SrnnConfig {
  SrnnRule rule = SrnnRule::Seed;
  SrnnAct act = SrnnAct::Relu;
  int length = 1;  // L, number of recurrence steps (Seed, Paper); ignored by Irnn
};

inline std::string_view to_string(SrnnRule r) {
  switch (r) {
    case SrnnRule::Seed:
      return "seed";
    case SrnnRule::Paper:
      return "paper";
    case SrnnRule::Irnn:
      return "irnn";
  }
  return "?";
}
inline std::string_view to_string(SrnnAct a) {
  switch (a) {
    case SrnnAct::Relu:
      return "relu";
    case SrnnAct::Identity:
      return "identity";
    case SrnnAct::Tanh:
      return "tanh";
  }
  return "?";
}

// Calls f(std::integral_constant<SrnnAct, act>{}): turns the run-time activation into a
// compile-time one, so each kernel (CPU or CUDA) is instantiated once per activation.
template <class F>
void with_act(SrnnAct act, F&& f) {
  switch (act) {
    case SrnnAct::Relu:
      f(std::integral_constant<SrnnAct, SrnnAct::Relu>{});
      return;
    case SrnnAct::Identity:
      f(std::integral_constant<SrnnAct, SrnnAct::Identity>{});
      return;
    case SrnnAct::Tanh:
      f(std::integral_constant<SrnnAct, SrnnAct::Tanh>{});
      return;
  }
}

}  // namespace unetsrnn
