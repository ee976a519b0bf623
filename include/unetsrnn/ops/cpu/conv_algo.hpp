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
//             times);
//   auto      per convolution, from its shape and the CPU path (auto_conv_algo below): with the
//             register tiles F(4x4) on the high-resolution levels, F(2x2) on the 128-channel
//             middle level, direct elsewhere; with Eigen's GEMM (portable) Winograd from 32
//             channels on, down to the deepest levels. The default.
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

#include "unetsrnn/ops/cpu/isa.hpp"
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

// auto's rule: a shape rule (never a timing at run time), one per kind of product, set from
// per-layer measurements (`bench_models --sections layers [--isa portable]`, forward and backward
// data at the HW and LW models' shapes, batch 1 and 2, 2 threads, AMD EPYC Zen 3, 2026-12-01).
// Winograd saves multiply-adds per tile and channel pair but pays transforms per tile and channel,
// and streams its transformed filters (16 or 36 floats per channel pair) once per block of tiles.
// Channels: the smaller of the input and output counts; tiles: 2x2 output tiles per image.
//
// The register tiles (avx2; avx512 has not been measured and follows avx2):
//   - F(4x4) won at 32 channels on 160 x 192 (5.0-6.3 ms against direct's 7.5-8.9, batch 2) and
//     at 64 channels on 80 x 96 (1920 tiles; three runs each at batch 1 and 2, F(4x4) / F(2x2):
//     2.5-3.7 / 3.0-4.2 ms at batch 1, 4.7-7.2 / 7.2-8.1 at batch 2, one tie); it lost from 128
//     channels on 40 x 48 (480 tiles: 2.9 / 2.3 at batch 1; few tiles per filter read);
//   - F(2x2) won from 64 channels with >= 480 tiles per image (128 on 40 x 48: 5.0-6.0 against
//     direct's 6.9-8.7, batch 2), tied at 32 channels on 40 x 48 and lost at 256 channels on
//     20 x 24 (120 tiles) and 512 on 10 x 12, and with 8-16 channels;
// so F(4x4) for >= 32 channels and >= 1024 tiles (64 x 64 pixels), F(2x2) for >= 64 channels
// and >= 256 tiles, direct elsewhere (the LW models' convolutions all run direct).
constexpr int kWinograd4MinChannels = 32;
constexpr long long kWinograd4MinTiles = 1024;
constexpr int kWinogradMinChannels = 64;
constexpr long long kWinogradMinTiles = 256;
// Eigen's GEMM (portable), whose direct products run at 20-55 GFLOP/s here against the tiles'
// 90-160, so that Winograd's savings weigh more and reach deeper (batch-1 forward ms, F(4x4) /
// F(2x2) / direct):
//   - F(4x4) won from 32 channels with enough tiles per filter: 128 on 40 x 48 (5.6 / 7.7 / 10.2),
//     256 on 20 x 24 (7.5 / 8.4 / 13.2), 64 on 80 x 96 (8.9 / 9.9 / 13.7), 32 on 40 x 48 (0.82 /
//     0.91 / 0.95), 32 on 160 x 192 at batch 2 (21 / 36 / 30); it lost at 64 on 20 x 24 (1.08 /
//     0.89 / 0.80) and at 512 on 10 x 12;
//   - F(2x2) won on the deepest levels: 512 on 10 x 12 (27.8 / 14.5 / 27.5), 128 on 10 x 12
//     (1.35 / 0.89 / 1.84);
//   - direct won with 8 and 16 channels (8 on 160 x 192: 1.92 / 2.65 / 1.35);
// so F(4x4) for >= 32 channels, >= 120 tiles and >= 15360 channel-tiles (channels x tiles), F(2x2)
// for >= 128 channels, direct elsewhere.
constexpr int kEigenWinograd4MinChannels = 32;
constexpr long long kEigenWinograd4MinTiles = 120;
constexpr long long kEigenWinograd4MinWork = 15360;  // channels x tiles
constexpr int kEigenWinogradMinChannels = 128;
// x: the convolution's input (forward: X; backward data: dY), w its kernel; `isa` the path whose
// products run it.
inline ConvAlgo auto_conv_algo(const Shape& w, const Shape& x, Isa isa) {
  const long long tiles = static_cast<long long>((x.h + 1) / 2) * ((x.w + 1) / 2);  // per image
  const int channels = std::min(w.n, w.c);
  if (isa == Isa::Portable) {
    if (channels >= kEigenWinograd4MinChannels && tiles >= kEigenWinograd4MinTiles &&
        channels * tiles >= kEigenWinograd4MinWork)
      return ConvAlgo::Winograd4;
    if (channels >= kEigenWinogradMinChannels) return ConvAlgo::Winograd;
    return ConvAlgo::Direct;
  }
  if (channels >= kWinograd4MinChannels && tiles >= kWinograd4MinTiles) return ConvAlgo::Winograd4;
  if (channels >= kWinogradMinChannels && tiles >= kWinogradMinTiles) return ConvAlgo::Winograd;
  return ConvAlgo::Direct;
}

// The algorithm the current choice runs this convolution with: Direct, Winograd or Winograd4.
inline ConvAlgo conv_algo_for(const Shape& w, const Shape& x) {
  const ConvAlgo chosen = conv_algorithm();
  if (chosen == ConvAlgo::Direct || !winograd_applies(w)) return ConvAlgo::Direct;
  if (chosen != ConvAlgo::Auto) return chosen;
  return auto_conv_algo(w, x, active_isa());
}

}  // namespace unetsrnn::cpu
