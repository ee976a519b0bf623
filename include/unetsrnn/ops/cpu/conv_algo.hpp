#pragma once
// Which algorithm the CPU runs the 3x3 convolutions' forward and backward-data products with
// (ops/cpu/conv.hpp):
//   direct    the im2col products (conv_kernels.hpp, conv_portable.hpp): 9 Cin multiply-adds per
//             output value;
//   winograd  Winograd minimal filtering F(2x2, 3x3) (conv_winograd.hpp): 16 multiply-adds per
//             2x2 output tile and channel pair instead of 36, at the price of three transforms
//             and a rounding error a few times larger (see conv_winograd.hpp);
//   winograd4 F(4x4, 3x3): 36 multiply-adds per 4x4 tile and channel pair (a quarter of direct's)
//             with a larger rounding error (worst-case bound ~36 times F(2x2)'s, measured ~5
//             times); never chosen by auto;
//   auto      F(2x2) Winograd where it pays (winograd_pays below), direct elsewhere. The default.
// The environment variable UNETSRNN_CONV_ALGO=auto|direct|winograd|winograd4, read once at the
// first convolution, or set_conv_algorithm chooses. Winograd only computes 3x3 kernels (the ops'
// convolutions are all 'same', stride 1): forced on any other kernel (the 1x1 head), it runs
// direct. The weight gradient (conv2d_backward_params) always runs direct.
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <string_view>

#include "unetsrnn/tensor/tensor.hpp"

namespace unetsrnn::cpu {

enum class ConvAlgo { Auto, Direct, Winograd, Winograd4 };
inline constexpr ConvAlgo kConvAlgos[] = {ConvAlgo::Auto, ConvAlgo::Direct, ConvAlgo::Winograd,
                                          ConvAlgo::Winograd4};

constexpr const char* conv_algo_name(ConvAlgo algo) {
  switch (algo) {
    case ConvAlgo::Direct:
      return "direct";
    case ConvAlgo::Winograd:
      return "winograd";
    case ConvAlgo::Winograd4:
      return "winograd4";
    case ConvAlgo::Auto:
      break;
  }
  return "auto";
}

// "auto", "direct", "winograd" or "winograd4"; `what` names the source in errors.
inline ConvAlgo parse_conv_algo(std::string_view name, const char* what) {
  for (ConvAlgo algo : kConvAlgos)
    if (name == conv_algo_name(algo)) return algo;
  throw std::invalid_argument(std::string(what) + ": unknown convolution algorithm '" +
                              std::string(name) +
                              "': expected auto, direct, winograd or winograd4");
}

namespace detail {
inline ConvAlgo initial_conv_algo() {
  const char* env = std::getenv("UNETSRNN_CONV_ALGO");
  if (!env || !*env) return ConvAlgo::Auto;
  return parse_conv_algo(env, "UNETSRNN_CONV_ALGO");
}
// Chosen on first use; a bad UNETSRNN_CONV_ALGO throws from there (and again on the next use).
inline std::atomic<int>& conv_algo_slot() {
  static std::atomic<int> slot{static_cast<int>(initial_conv_algo())};
  return slot;
}
}  // namespace detail

inline ConvAlgo conv_algorithm() {
  return static_cast<ConvAlgo>(detail::conv_algo_slot().load(std::memory_order_relaxed));
}
inline const char* conv_algorithm_name() { return conv_algo_name(conv_algorithm()); }

// Forces an algorithm (tests, benchmarks). Not to be called while ops run on other threads.
inline void set_conv_algorithm(ConvAlgo algo) {
  detail::conv_algo_slot().store(static_cast<int>(algo), std::memory_order_relaxed);
}

// Whether Winograd F(2x2, 3x3) computes a convolution with kernel shape w (Cout, Cin, k, k).
inline bool winograd_applies(const Shape& w) { return w.h == 3 && w.w == 3; }

// auto's rule, from operation counts (not timings). Per 2x2 output tile and (input, output)
// channel pair Winograd saves 20 of 36 multiply-adds, and pays per tile and channel an input
// transform (~64 vector-lane operations, Cin times) and an output transform (~50, Cout times),
// a scattered pass far below the FMA rate: with Cin = Cout = C the saving (20 C^2) exceeds ~8
// times the transform work (~114 C) from C ~ 45 on, and with kWinogradMinChannels = 16 it
// already covers ~3 times it (the 3-channel input convolution stays direct). Per call it also
// writes the transformed filters, 16 floats per channel pair, which its products read back once
// per block of tiles: with fewer than kWinogradMinTiles tiles in the call (a batch-1 512-channel
// 10 x 12 layer has 30) the 20 saved multiply-adds per pair and tile no longer cover that memory
// traffic, and the direct products, which read the 9 floats per pair in place, run instead.
constexpr int kWinogradMinChannels = 16;
constexpr long long kWinogradMinTiles = 32;
// x: the convolution's input (forward: X; backward data: dY), w its kernel.
inline bool winograd_pays(const Shape& w, const Shape& x) {
  const long long tiles = static_cast<long long>(x.n) * ((x.h + 1) / 2) * ((x.w + 1) / 2);
  return std::min(w.n, w.c) >= kWinogradMinChannels && tiles >= kWinogradMinTiles;
}

// The algorithm the current choice runs this convolution with: Direct, Winograd or Winograd4.
inline ConvAlgo conv_algo_for(const Shape& w, const Shape& x) {
  const ConvAlgo chosen = conv_algorithm();
  if (chosen == ConvAlgo::Direct || !winograd_applies(w)) return ConvAlgo::Direct;
  if (chosen != ConvAlgo::Auto) return chosen;
  return winograd_pays(w, x) ? ConvAlgo::Winograd : ConvAlgo::Direct;
}

}  // namespace unetsrnn::cpu
