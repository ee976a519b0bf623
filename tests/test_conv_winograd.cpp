#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

// Winograd F(2x2, 3x3) and F(4x4, 3x3) (ops/cpu/conv_winograd.hpp) against the literal reference
// loops of ops/reference/conv.hpp, on every instruction-set path this CPU runs ("avx512 tiles on
// avx2" is the AVX-512 path's tiling run with AVX2 instructions; the test case "winograd paths"
// lists what ran and what did not), plus the algorithm choice (ops/cpu/conv_algo.hpp) and a
// whole-model check.
//
// Tolerance. Each output value's error is held to tolerance(M) * S, S the sum of the absolute
// values of its terms (sum |w| |x| over its 9 Cin taps, plus |b|; for backward data sum |w| |dy|,
// plus |dx| when accumulating), computed by the same reference loops on |w|, |x|. The direct
// products' float sums of 9 Cin terms are within ~9 Cin u S (u = 2^-24) worst case. Winograd sums
// Cin products per transformed position too, but each carries the transforms' mixing, and to
// first order its error is at most ~(Cin + 8) u S_W, S_W = sum over channels and positions xi of
// |A^T|(y, xi) (|G| |g| |G|^T)_xi (|B^T| |d| |B|)_xi. With all |g|, |d| equal, S_W / S is
// alpha = 64/9 = 7.1 for F(2x2) and up to 256 for F(4x4) (its corner output; these are the
// products of the 1-D ratios 8/3 and 16), so the worst-case bounds are ~7.1 (Cin + 8) u S and
// ~256 (Cin + 8) u S: 1.3e-4 S and 4.7e-3 S at Cin = 300. (S_W / S is larger still where S is
// small against the cross terms the transforms cancel, e.g. a 1x1 image.) Random signs cancel
// far below those bounds; the limits used, tolerance(2) = 2e-5 and tolerance(4) = 5e-5, sit between
// the bounds and the largest errors measured (reported per path by the tests; for the record, on
// this project's AVX2 machine: F(2x2) 3.9e-6 S forward (a 1x1 one-channel image; 6e-7 S
// elsewhere), F(4x4) 3.2e-6 S; direct 3.3e-7 S). A wrong coefficient or index gives errors of
// order S.
#define UNETSRNN_EMULATE_AVX512 1
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "unetsrnn/ops/ops.hpp"

#include "cpu_paths.hpp"
#include "model_check.hpp"
#include "placed_view.hpp"
#include "random_tensors.hpp"
#include "unetsrnn/core/rng.hpp"
#include "unetsrnn/ops/cpu/backend.hpp"
#include "unetsrnn/ops/reference/conv.hpp"
#include "unetsrnn/unetsrnn.hpp"

using namespace unetsrnn;
using testing::bitwise_equal;
using testing::copy_into;
using testing::fill_uniform;
using testing::Placed;
using testing::random_tensor;

namespace {

// Per output tile size M: F(2x2, 3x3) and F(4x4, 3x3).
constexpr double tolerance(int m) { return m == 2 ? 2e-5 : 5e-5; }

using Forward = decltype(&cpu::portable::conv2d_forward);
using BackwardData = decltype(&cpu::portable::conv2d_backward_data);
struct WinogradPath {
  const char* name;
  bool runs;
  Forward forward2, forward4, direct_forward;  // F(2x2, 3x3), F(4x4, 3x3), direct
  BackwardData backward_data2, backward_data4, direct_backward_data;
  Forward forward(int m) const { return m == 2 ? forward2 : forward4; }
  BackwardData backward_data(int m) const { return m == 2 ? backward_data2 : backward_data4; }
};
#define UNETSRNN_TEST_PATH(ns, label, runs)                                           \
  WinogradPath {                                                                      \
    label, runs, cpu::ns::conv2d_forward_winograd, cpu::ns::conv2d_forward_winograd4, \
        cpu::ns::conv2d_forward, cpu::ns::conv2d_backward_data_winograd,              \
        cpu::ns::conv2d_backward_data_winograd4, cpu::ns::conv2d_backward_data        \
  }
#if UNETSRNN_X86
const WinogradPath kPaths[] = {
    UNETSRNN_TEST_PATH(portable, "portable", true),
    UNETSRNN_TEST_PATH(avx2, "avx2", cpu::isa_supported(cpu::Isa::Avx2)),
    UNETSRNN_TEST_PATH(avx512, "avx512", cpu::isa_supported(cpu::Isa::Avx512)),
    UNETSRNN_TEST_PATH(avx512_emulated, "avx512 tiles on avx2", cpu::isa_supported(cpu::Isa::Avx2)),
};
#else
#define UNETSRNN_ABSENT_PATH(label) \
  WinogradPath { label, false, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr }
const WinogradPath kPaths[] = {UNETSRNN_TEST_PATH(portable, "portable", true),
                               UNETSRNN_ABSENT_PATH("avx2"), UNETSRNN_ABSENT_PATH("avx512"),
                               UNETSRNN_ABSENT_PATH("avx512 tiles on avx2")};
#endif
#define PATH_TEST_CASE(title) UNETSRNN_PATH_TEST_CASE(WinogradPath, kPaths, 4, title)

Tensor<Cpu> absolute(CView<Cpu> t) {
  Tensor<Cpu> a(t.shape);
  for (int n = 0; n < t.shape.n; ++n)
    for (std::size_t k = 0; k < t.shape.image_size(); ++k)
      a.view().image(n)[k] = std::fabs(t.image(n)[k]);
  return a;
}

// max over elements of |fast - reference| / S (S >= 1e-30 per element, see the top).
double scaled_error(CView<Cpu> fast, CView<Cpu> reference, CView<Cpu> scale) {
  double worst = 0.0;
  for (int n = 0; n < fast.shape.n; ++n)
    for (std::size_t k = 0; k < fast.shape.image_size(); ++k) {
      const double d = std::fabs(double(fast.image(n)[k]) - reference.image(n)[k]);
      const double e = std::isnan(d) ? std::numeric_limits<double>::infinity()
                                     : d / (double(scale.image(n)[k]) + 1e-30);
      worst = std::max(worst, e);
    }
  return worst;
}

struct Case {
  int n, in, out, h, w;
};
// Odd and even sizes, 1 x 1 and 2 x 3 images, widths that are no multiple of 16, 1 to 70
// channels; then shapes that reach the plan's branches: several blocks per image, an image that is
// one block with its output channels in ranges, more than one reduction block (depth > 256).
const Case kCases[] = {
    {1, 1, 1, 1, 1},      {2, 3, 5, 1, 1},    {3, 5, 16, 2, 3},  {1, 16, 3, 3, 2},
    {2, 16, 16, 7, 5},    {1, 17, 70, 6, 6},  {3, 70, 13, 5, 7}, {2, 8, 24, 9, 20},
    {1, 24, 8, 16, 16},   {2, 13, 9, 15, 33}, {1, 6, 6, 1, 37},  {2, 9, 11, 21, 1},
    {2, 24, 40, 40, 48},   // 480 tiles per image: several blocks, partial last strips
    {1, 80, 150, 10, 12},  // 30 tiles: one block, three ranges of output channels
    {1, 300, 20, 4, 6},    // depth 300: two reduction blocks
};

// The largest error / S seen per algorithm; check() holds one result to its limit.
struct ErrorLog {
  double winograd[2] = {0.0, 0.0}, direct = 0.0;  // F(2x2), F(4x4)
  void check(int m, CView<Cpu> fast, CView<Cpu> direct_result, CView<Cpu> expect,
             CView<Cpu> scale) {
    const double err = scaled_error(fast, expect, scale);
    winograd[m / 4] = std::max(winograd[m / 4], err);
    direct = std::max(direct, scaled_error(direct_result, expect, scale));
    INFO("error / S ", err, " (limit ", tolerance(m), ")");
    CHECK(err <= tolerance(m));
  }
  void report(const char* path, const char* op) const {
    MESSAGE(std::string(path), ": ", std::string(op), ", largest |error| / S: F(2x2) ", winograd[0],
            " (limit ", tolerance(2), "), F(4x4) ", winograd[1], " (limit ", tolerance(4),
            "), direct ", direct);
  }
};

void for_each_case(const std::function<void(const Case&, bool)>& f) {
  for (const Case& c : kCases)
    for (bool strided : {false, true}) {
      CAPTURE(c.n);
      CAPTURE(c.in);
      CAPTURE(c.out);
      CAPTURE(c.h);
      CAPTURE(c.w);
      CAPTURE(strided);
      f(c, strided);
    }
}

}  // namespace

TEST_CASE("winograd paths: which ran here and which did not") {
  MESSAGE("winograd paths against the reference here: ", paths_report(kPaths));
  CHECK(kPaths[0].runs);
}

PATH_TEST_CASE("winograd conv2d_forward matches the reference (bias, ReLU, odd sizes, strided)") {
  Rng rng(31);
  Tensor<Cpu> scratch;
  ErrorLog log;
  for (int m : {2, 4})
    for (bool bias : {false, true})
      for (Act act : {Act::None, Act::Relu}) {
        CAPTURE(m);
        CAPTURE(bias);
        CAPTURE(static_cast<int>(act));
        for_each_case([&](const Case& c, bool strided) {
          Placed x(Shape{c.n, c.in, c.h, c.w}, strided, 3, 1);
          fill_uniform(x.view, rng);
          const Tensor<Cpu> w = random_tensor(Shape{c.out, c.in, 3, 3}, rng);
          const Tensor<Cpu> b = random_tensor(Shape{1, c.out, 1, 1}, rng);
          const CView<Cpu> bv = bias ? b.cview() : CView<Cpu>{};
          const Shape ys{c.n, c.out, c.h, c.w};
          Placed fast(ys, strided), direct(ys, strided), expect(ys, strided), scale(ys, false);
          path.forward(m)(x.view, w, bv, fast.view, act, scratch);
          path.direct_forward(x.view, w, bv, direct.view, act, scratch);
          ref::conv2d_forward(x.view, w, bv, expect.view, act);
          const Tensor<Cpu> ax = absolute(x.view), aw = absolute(w), ab = absolute(b);
          ref::conv2d_forward(ax, aw, bias ? ab.cview() : CView<Cpu>{}, scale.view, Act::None);
          log.check(m, fast.view, direct.view, expect.view, scale.view);
          CHECK(fast.outside_untouched());
          CHECK(x.outside_untouched());
        });
      }
  log.report(path.name, "forward");
}

PATH_TEST_CASE("winograd conv2d_backward_data matches the reference; accumulate adds") {
  Rng rng(32);
  Tensor<Cpu> scratch;
  ErrorLog log;
  for (int m : {2, 4})
    for (bool accumulate : {false, true}) {
      CAPTURE(m);
      CAPTURE(accumulate);
      for_each_case([&](const Case& c, bool strided) {
        // The op's convolution runs from dy (c.in channels) to dx (c.out channels).
        const Tensor<Cpu> w = random_tensor(Shape{c.in, c.out, 3, 3}, rng);
        const Tensor<Cpu> dy = random_tensor(Shape{c.n, c.in, c.h, c.w}, rng);
        const Shape xs{c.n, c.out, c.h, c.w};
        Placed fast(xs, strided), direct(xs, strided), expect(xs, strided), scale(xs, false);
        if (accumulate) {
          fill_uniform(fast.view, rng);
          copy_into(fast.view, expect.view);
          copy_into(fast.view, direct.view);
        }
        const Tensor<Cpu> prior = absolute(fast.view);
        path.backward_data(m)(dy, w, fast.view, accumulate, scratch);
        path.direct_backward_data(dy, w, direct.view, accumulate, scratch);
        ref::conv2d_backward_data(dy, w, expect.view, accumulate);
        if (accumulate) copy_into(prior, scale.view);
        ref::conv2d_backward_data(absolute(dy), absolute(w), scale.view, accumulate);
        log.check(m, fast.view, direct.view, expect.view, scale.view);
        CHECK(fast.outside_untouched());
      });
    }
  log.report(path.name, "backward data");
}

PATH_TEST_CASE("winograd results do not depend on the number of threads") {
  Rng rng(33);
  Tensor<Cpu> scratch;
  const Case shapes[] = {{2, 24, 40, 40, 48}, {1, 80, 150, 10, 12}, {3, 17, 9, 7, 33}};
  for (int m : {2, 4})
    for (const Case& c : shapes) {
      CAPTURE(m);
      CAPTURE(c.in);
      const Tensor<Cpu> x = random_tensor(Shape{c.n, c.in, c.h, c.w}, rng);
      const Tensor<Cpu> w = random_tensor(Shape{c.out, c.in, 3, 3}, rng);
      const Tensor<Cpu> b = random_tensor(Shape{1, c.out, 1, 1}, rng);
      const Tensor<Cpu> dy = random_tensor(Shape{c.n, c.out, c.h, c.w}, rng);
      const auto run = [&] {
        std::vector<Tensor<Cpu>> out;
        out.emplace_back(Shape{c.n, c.out, c.h, c.w});
        out.emplace_back(x.shape(), 0.5f);
        path.forward(m)(x, w, b, out[0], Act::Relu, scratch);
        path.backward_data(m)(dy, w, out[1], true, scratch);
        return out;
      };
      const int max_threads = omp_get_max_threads();
      omp_set_num_threads(1);
      const std::vector<Tensor<Cpu>> one = run();
      omp_set_num_threads(std::max(2, max_threads));
      const std::vector<Tensor<Cpu>> two = run(), again = run();
      omp_set_num_threads(max_threads);
      for (std::size_t i = 0; i < one.size(); ++i) {
        CAPTURE(i);
        CHECK(bitwise_equal(one[i], two[i]));
        CHECK(bitwise_equal(two[i], again[i]));
      }
    }
}

// ------------------------------------------------------------------------------ the choice
namespace {
// Which algorithm ops::conv2d_forward and ops::conv2d_backward_data ran on these shapes: the one
// of the active path's direct, F(2x2) and F(4x4) functions whose result theirs equals bitwise
// (the three round differently), or Auto when none.
struct Ran {
  cpu::ConvAlgo forward, backward;
};
Ran what_ran(int n, int in, int out, int h, int w, int k) {
  Rng rng(34);
  Tensor<Cpu> scratch;
  const Tensor<Cpu> x = random_tensor(Shape{n, in, h, w}, rng);
  const Tensor<Cpu> wt = random_tensor(Shape{out, in, k, k}, rng);
  const Tensor<Cpu> dy = random_tensor(Shape{n, out, h, w}, rng);
  const WinogradPath& path = kPaths[static_cast<int>(cpu::active_isa())];
  Tensor<Cpu> y_ops(Shape{n, out, h, w}), dx_ops(x.shape());
  ops::conv2d_forward<Cpu>(x, wt, CView<Cpu>{}, y_ops, Act::None, scratch);
  ops::conv2d_backward_data<Cpu>(dy, wt, dx_ops, false, scratch);
  Ran ran{cpu::ConvAlgo::Auto, cpu::ConvAlgo::Auto};
  const cpu::ConvAlgo algos[] = {cpu::ConvAlgo::Direct, cpu::ConvAlgo::Winograd,
                                 cpu::ConvAlgo::Winograd4};
  const Forward forwards[] = {path.direct_forward, path.forward2, path.forward4};
  const BackwardData backwards[] = {path.direct_backward_data, path.backward_data2,
                                    path.backward_data4};
  for (int i = 0; i < 3; ++i) {
    if (k != 3 && i > 0) break;  // Winograd's functions compute 3x3 kernels only
    Tensor<Cpu> y(y_ops.shape()), dx(x.shape());
    forwards[i](x, wt, CView<Cpu>{}, y, Act::None, scratch);
    backwards[i](dy, wt, dx, false, scratch);
    if (ran.forward == cpu::ConvAlgo::Auto && bitwise_equal(y, y_ops)) ran.forward = algos[i];
    if (ran.backward == cpu::ConvAlgo::Auto && bitwise_equal(dx, dx_ops)) ran.backward = algos[i];
  }
  return ran;
}
void expect_ran(Ran ran, cpu::ConvAlgo algo) {
  CHECK(ran.forward == algo);
  CHECK(ran.backward == algo);
}
}  // namespace

TEST_CASE("set_conv_algorithm chooses direct or Winograd; auto follows its documented rule") {
  using cpu::ConvAlgo;
  const ConvAlgo saved = cpu::conv_algorithm();
  cpu::set_conv_algorithm(ConvAlgo::Winograd);
  CHECK(std::string(cpu::conv_algorithm_name()) == "winograd");
  expect_ran(what_ran(2, 32, 32, 16, 24, 3), ConvAlgo::Winograd);
  expect_ran(what_ran(1, 3, 16, 9, 7, 3), ConvAlgo::Winograd);   // forced: the input conv too
  expect_ran(what_ran(2, 32, 32, 16, 24, 1), ConvAlgo::Direct);  // 1x1: Winograd cannot
  cpu::set_conv_algorithm(ConvAlgo::Winograd4);
  CHECK(std::string(cpu::conv_algorithm_name()) == "winograd4");
  expect_ran(what_ran(2, 32, 32, 16, 24, 3), ConvAlgo::Winograd4);
  expect_ran(what_ran(1, 3, 16, 9, 7, 3), ConvAlgo::Winograd4);
  expect_ran(what_ran(2, 32, 32, 16, 24, 1), ConvAlgo::Direct);
  cpu::set_conv_algorithm(ConvAlgo::Direct);
  expect_ran(what_ran(2, 32, 32, 16, 24, 3), ConvAlgo::Direct);
  cpu::set_conv_algorithm(ConvAlgo::Auto);
  const cpu::Isa saved_isa = cpu::active_isa();
  // The register tiles' rule (avx2 and avx512 share it) on the widest such path this CPU runs:
  // F(4x4) from 32 channels and 32 x 32 2x2 tiles per image, F(2x2) from 64 channels and 256
  // tiles per image, direct elsewhere, on both sides of each threshold.
  const cpu::Isa tiles_isa = cpu::best_isa();
  if (tiles_isa == cpu::Isa::Portable) {
    MESSAGE("auto's register-tile rule: not run (this CPU has neither avx2 nor avx512)");
  } else {
    cpu::set_isa(tiles_isa);
    CAPTURE(cpu::active_isa_name());
    expect_ran(what_ran(1, 32, 40, 64, 64, 3), ConvAlgo::Winograd4);  // 1024 tiles
    expect_ran(what_ran(1, 40, 32, 64, 62, 3), ConvAlgo::Direct);     // 992 tiles, 32 channels
    expect_ran(what_ran(1, 64, 64, 64, 62, 3), ConvAlgo::Winograd);   // 992 tiles, 64 channels
    expect_ran(what_ran(1, 31, 32, 64, 64, 3), ConvAlgo::Direct);     // 31 input channels
    expect_ran(what_ran(2, 64, 72, 32, 32, 3), ConvAlgo::Winograd);   // 256 tiles per image
    expect_ran(what_ran(2, 64, 64, 32, 30, 3), ConvAlgo::Direct);     // 240 tiles per image
    expect_ran(what_ran(2, 64, 48, 32, 32, 3), ConvAlgo::Direct);     // 48 output channels
    expect_ran(what_ran(2, 3, 32, 128, 128, 3), ConvAlgo::Direct);    // the 3-channel input conv
    expect_ran(what_ran(2, 512, 512, 10, 12, 3), ConvAlgo::Direct);   // the deepest HW level
    expect_ran(what_ran(2, 32, 32, 16, 24, 1), ConvAlgo::Direct);     // 1x1
  }
  // Eigen's GEMM's rule (portable, which every CPU runs): F(4x4) from 32 channels, 120 tiles and
  // 15360 channel-tiles per image, F(2x2) from 128 channels, direct elsewhere.
  cpu::set_isa(cpu::Isa::Portable);
  expect_ran(what_ran(1, 32, 40, 40, 48, 3), ConvAlgo::Winograd4);    // 32 x 480 channel-tiles
  expect_ran(what_ran(1, 40, 32, 40, 46, 3), ConvAlgo::Direct);       // 32 x 460
  expect_ran(what_ran(1, 31, 32, 40, 48, 3), ConvAlgo::Direct);       // 31 input channels
  expect_ran(what_ran(1, 128, 128, 20, 24, 3), ConvAlgo::Winograd4);  // 120 tiles
  expect_ran(what_ran(1, 128, 128, 20, 22, 3), ConvAlgo::Winograd);   // 110 tiles, 128 channels
  expect_ran(what_ran(1, 128, 127, 20, 22, 3), ConvAlgo::Direct);     // 127 output channels
  expect_ran(what_ran(2, 64, 64, 20, 24, 3), ConvAlgo::Direct);       // 64 x 120 channel-tiles
  expect_ran(what_ran(2, 3, 32, 128, 128, 3), ConvAlgo::Direct);      // the 3-channel input conv
  expect_ran(what_ran(2, 32, 32, 16, 24, 1), ConvAlgo::Direct);       // 1x1
  cpu::set_isa(saved_isa);
  // The rules themselves, for every path whether or not this CPU runs it.
  const Shape deep_w{512, 512, 3, 3}, deep_x{2, 512, 10, 12};
  CHECK(cpu::auto_conv_algo(deep_w, deep_x, cpu::Isa::Avx512) == ConvAlgo::Direct);
  CHECK(cpu::auto_conv_algo(deep_w, deep_x, cpu::Isa::Avx2) == ConvAlgo::Direct);
  CHECK(cpu::auto_conv_algo(deep_w, deep_x, cpu::Isa::Portable) == ConvAlgo::Winograd);
  cpu::set_conv_algorithm(saved);
  CHECK(cpu::parse_conv_algo("winograd4", "test") == ConvAlgo::Winograd4);
  std::string message;
  try {
    cpu::parse_conv_algo("fft", "--conv-algo");
  } catch (const std::invalid_argument& e) {
    message = e.what();
  }
  CHECK(message.find("--conv-algo") != std::string::npos);
  CHECK(message.find("'fft'") != std::string::npos);
  CHECK(message.find("auto, direct, winograd or winograd4") != std::string::npos);
}

// Run by CTest with UNETSRNN_CONV_ALGO set (tests/CMakeLists.txt), as the only test case of its
// process, so that the variable is read by the first convolution.
TEST_CASE("UNETSRNN_CONV_ALGO chooses the algorithm at the first convolution, or is refused") {
  using cpu::ConvAlgo;
  const char* env = std::getenv("UNETSRNN_CONV_ALGO");
  if (!env) {
    CHECK(cpu::conv_algorithm() == ConvAlgo::Auto);
    return;
  }
  const std::string name = env;
  CAPTURE(name);
  bool known = false;
  for (ConvAlgo algo : cpu::kConvAlgos) known = known || name == cpu::conv_algo_name(algo);
  if (!known) {
    std::string message;
    try {
      what_ran(2, 32, 32, 16, 24, 3);
    } catch (const std::invalid_argument& e) {
      message = e.what();
    }
    INFO("message: ", message);
    CHECK(message.find("UNETSRNN_CONV_ALGO") != std::string::npos);
    CHECK(message.find("'" + name + "'") != std::string::npos);
    return;
  }
  const ConvAlgo algo = cpu::parse_conv_algo(name, "test");
  CHECK(cpu::conv_algorithm() == algo);
  // A 64-channel 32 x 32 layer: auto takes F(2x2); the 3-channel input conv: only when forced.
  expect_ran(what_ran(2, 64, 64, 32, 32, 3), algo == ConvAlgo::Auto ? ConvAlgo::Winograd : algo);
  expect_ran(what_ran(2, 3, 32, 16, 24, 3), algo == ConvAlgo::Auto ? ConvAlgo::Direct : algo);
}

// ------------------------------------------------------------------------------ a whole model
// One U-Net2D training step's loss and gradients with Winograd (F(2x2), then F(4x4)) everywhere it
// applies vs direct everywhere: they differ by rounding only. The loss (a sum of logits x r) to
// 1e-4 relative; every parameter tensor's gradient to 1e-3 of its norm (each 3x3 layer's rounding,
// at most tolerance(m) S, compounds over the 18 convolutions of forward and backward; the
// differences measured are reported).
TEST_CASE("a U-Net2D training step with Winograd matches the direct one") {
  const cpu::ConvAlgo saved = cpu::conv_algorithm();
  const Tensor<> x = random_tensor(Shape{2, 3, 32, 48}, 41, 0.0, 1.0);
  const Tensor<> r = random_tensor(Shape{2, 1, 32, 48}, 42);
  UNet2D<Filters{16}> direct_model;
  direct_model.init(7);
  cpu::set_conv_algorithm(cpu::ConvAlgo::Direct);
  const double loss_direct = testing::forward_backward(direct_model, x, r);
  for (cpu::ConvAlgo algo : {cpu::ConvAlgo::Winograd, cpu::ConvAlgo::Winograd4}) {
    const std::string name = cpu::conv_algo_name(algo);
    CAPTURE(name);
    UNet2D<Filters{16}> winograd_model;
    winograd_model.init(7);
    cpu::set_conv_algorithm(algo);
    const double loss_winograd = testing::forward_backward(winograd_model, x, r);
    cpu::set_conv_algorithm(saved);
    CAPTURE(loss_direct);
    CAPTURE(loss_winograd);
    CHECK(std::fabs(loss_winograd - loss_direct) <= 1e-4 * std::fabs(loss_direct));
    auto pd = direct_model.parameters(), pw = winograd_model.parameters();
    REQUIRE(pd.size() == pw.size());
    double worst = 0.0;
    bool any_differs = false;
    for (std::size_t i = 0; i < pd.size(); ++i) {
      CAPTURE(pd[i].name);
      const auto& gd = pd[i].param->grad;
      const auto& gw = pw[i].param->grad;
      double diff = 0.0, norm = 0.0;
      for (std::size_t k = 0; k < gd.size(); ++k) {
        diff += (double(gw[k]) - gd[k]) * (double(gw[k]) - gd[k]);
        norm += double(gd[k]) * gd[k];
      }
      const double rel = std::sqrt(diff) / std::max(std::sqrt(norm), 1e-30);
      worst = std::max(worst, rel);
      any_differs = any_differs || diff > 0.0;
      CHECK(rel <= 1e-3);
    }
    CHECK(any_differs);  // Winograd ran: its rounding differs
    MESSAGE("U-Net2D (w16) step, ", name, " vs direct: loss ", loss_winograd, " vs ", loss_direct,
            ", worst gradient relative difference ", worst);
  }
}
