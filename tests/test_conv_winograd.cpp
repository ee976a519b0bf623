#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

// Winograd F(2x2, 3x3) (ops/cpu/conv_winograd.hpp) against the literal reference loops of
// ops/reference/conv.hpp, on every instruction-set path this CPU runs ("avx512 tiles on avx2" is
// the AVX-512 path's tiling run with AVX2 instructions; the test case "winograd paths" lists what
// ran and what did not), plus the algorithm choice (ops/cpu/conv_algo.hpp) and a whole-model check.
//
// Tolerance. Each output value's error is held to kTolerance * S + 1e-30, S the sum of the
// absolute values of its terms (sum |w| |x| over the 9 Cin taps, plus |b|; for backward data
// sum |w| |dy|, plus |dx| when accumulating), computed by the same reference loops on |w|, |x|.
// The direct products' float sums of n = 9 Cin terms are within about n u S (u = 2^-24) in the
// worst case and sqrt(n) u S typically. Winograd sums Cin products per transformed position, but
// each of them carries the transforms' mixing: up to 4 x 4 input values in V, 9 weights in U and
// 9 transformed products in the output transform, whose absolute values add up to at most about
// 9 times those of S's terms (3 per dimension of the 2x2 output from a 4x4 patch). So the bound
// is ~ 9 (Cin + 6) u S worst case; with Cin <= 300 in these tests, 9 * 306 * 2^-24 = 1.6e-4 (a
// worst case never approached: random signs cancel). The tests use kTolerance = 2e-5, an eighth
// of that, and report the largest error / S seen per path; the direct path's is reported too.
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
using testing::fill_uniform;
using testing::Placed;
using testing::random_tensor;

namespace {

constexpr double kTolerance = 2e-5;

struct WinogradPath {
  const char* name;
  bool runs;
  decltype(&cpu::portable::conv2d_forward_winograd) forward;
  decltype(&cpu::portable::conv2d_backward_data_winograd) backward_data;
  decltype(&cpu::portable::conv2d_forward) direct_forward;
  decltype(&cpu::portable::conv2d_backward_data) direct_backward_data;
};
#define UNETSRNN_TEST_PATH(ns, label, runs)                                                \
  WinogradPath {                                                                           \
    label, runs, cpu::ns::conv2d_forward_winograd, cpu::ns::conv2d_backward_data_winograd, \
        cpu::ns::conv2d_forward, cpu::ns::conv2d_backward_data                             \
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
  WinogradPath { label, false, nullptr, nullptr, nullptr, nullptr }
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

void copy_into(CView<Cpu> src, View<Cpu> dst) {
  for (int n = 0; n < src.shape.n; ++n)
    std::memcpy(dst.image(n), src.image(n), src.shape.image_size() * sizeof(float));
}

bool bitwise_equal(CView<Cpu> a, CView<Cpu> b) {
  if (!(a.shape == b.shape)) return false;
  for (int n = 0; n < a.shape.n; ++n)
    if (std::memcmp(a.image(n), b.image(n), a.shape.image_size() * sizeof(float)) != 0)
      return false;
  return true;
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
  double worst = 0.0, worst_direct = 0.0;
  for (bool bias : {false, true})
    for (Act act : {Act::None, Act::Relu}) {
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
        path.forward(x.view, w, bv, fast.view, act, scratch);
        path.direct_forward(x.view, w, bv, direct.view, act, scratch);
        ref::conv2d_forward(x.view, w, bv, expect.view, act);
        const Tensor<Cpu> ax = absolute(x.view), aw = absolute(w), ab = absolute(b);
        ref::conv2d_forward(ax, aw, bias ? ab.cview() : CView<Cpu>{}, scale.view, Act::None);
        const double err = scaled_error(fast.view, expect.view, scale.view);
        worst = std::max(worst, err);
        worst_direct = std::max(worst_direct, scaled_error(direct.view, expect.view, scale.view));
        INFO("error / S ", err, " (limit ", kTolerance, ")");
        CHECK(err <= kTolerance);
        CHECK(fast.outside_untouched());
        CHECK(x.outside_untouched());
      });
    }
  MESSAGE(std::string(path.name), ": winograd forward, largest |error| / S = ", worst, " (limit ",
          kTolerance, "); direct: ", worst_direct);
}

PATH_TEST_CASE("winograd conv2d_backward_data matches the reference; accumulate adds") {
  Rng rng(32);
  Tensor<Cpu> scratch;
  double worst = 0.0, worst_direct = 0.0;
  for (bool accumulate : {false, true}) {
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
      path.backward_data(dy, w, fast.view, accumulate, scratch);
      path.direct_backward_data(dy, w, direct.view, accumulate, scratch);
      ref::conv2d_backward_data(dy, w, expect.view, accumulate);
      if (accumulate) copy_into(prior, scale.view);
      ref::conv2d_backward_data(absolute(dy), absolute(w), scale.view, accumulate);
      const double err = scaled_error(fast.view, expect.view, scale.view);
      worst = std::max(worst, err);
      worst_direct = std::max(worst_direct, scaled_error(direct.view, expect.view, scale.view));
      INFO("error / S ", err, " (limit ", kTolerance, ")");
      CHECK(err <= kTolerance);
      CHECK(fast.outside_untouched());
    });
  }
  MESSAGE(std::string(path.name), ": winograd backward data, largest |error| / S = ", worst,
          " (limit ", kTolerance, "); direct: ", worst_direct);
}

PATH_TEST_CASE("winograd results do not depend on the number of threads") {
  Rng rng(33);
  Tensor<Cpu> scratch;
  const Case shapes[] = {{2, 24, 40, 40, 48}, {1, 80, 150, 10, 12}, {3, 17, 9, 7, 33}};
  for (const Case& c : shapes) {
    CAPTURE(c.in);
    const Tensor<Cpu> x = random_tensor(Shape{c.n, c.in, c.h, c.w}, rng);
    const Tensor<Cpu> w = random_tensor(Shape{c.out, c.in, 3, 3}, rng);
    const Tensor<Cpu> b = random_tensor(Shape{1, c.out, 1, 1}, rng);
    const Tensor<Cpu> dy = random_tensor(Shape{c.n, c.out, c.h, c.w}, rng);
    const auto run = [&] {
      std::vector<Tensor<Cpu>> out;
      out.emplace_back(Shape{c.n, c.out, c.h, c.w});
      out.emplace_back(x.shape(), 0.5f);
      path.forward(x, w, b, out[0], Act::Relu, scratch);
      path.backward_data(dy, w, out[1], true, scratch);
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
// Whether ops::conv2d_forward and ops::conv2d_backward_data ran Winograd on these shapes: their
// results equal (bitwise) the active path's Winograd functions or its direct ones, which differ.
struct Ran {
  bool forward_winograd, backward_winograd;
};
Ran what_ran(int n, int in, int out, int h, int w, int k) {
  Rng rng(34);
  Tensor<Cpu> scratch;
  const Tensor<Cpu> x = random_tensor(Shape{n, in, h, w}, rng);
  const Tensor<Cpu> wt = random_tensor(Shape{out, in, k, k}, rng);
  const Tensor<Cpu> dy = random_tensor(Shape{n, out, h, w}, rng);
  const WinogradPath& path = kPaths[static_cast<int>(cpu::active_isa())];
  Tensor<Cpu> via_ops(Shape{n, out, h, w}), direct(Shape{n, out, h, w});
  ops::conv2d_forward<Cpu>(x, wt, CView<Cpu>{}, via_ops, Act::None, scratch);
  path.direct_forward(x, wt, CView<Cpu>{}, direct, Act::None, scratch);
  Tensor<Cpu> dx_ops(x.shape()), dx_direct(x.shape());
  ops::conv2d_backward_data<Cpu>(dy, wt, dx_ops, false, scratch);
  path.direct_backward_data(dy, wt, dx_direct, false, scratch);
  const Ran ran{!bitwise_equal(via_ops, direct), !bitwise_equal(dx_ops, dx_direct)};
  if (ran.forward_winograd) {
    Tensor<Cpu> win(Shape{n, out, h, w});
    path.forward(x, wt, CView<Cpu>{}, win, Act::None, scratch);
    CHECK(bitwise_equal(via_ops, win));
  }
  if (ran.backward_winograd) {
    Tensor<Cpu> win(x.shape());
    path.backward_data(dy, wt, win, false, scratch);
    CHECK(bitwise_equal(dx_ops, win));
  }
  return ran;
}
void expect_ran(Ran ran, bool winograd) {
  CHECK(ran.forward_winograd == winograd);
  CHECK(ran.backward_winograd == winograd);
}
}  // namespace

TEST_CASE("set_conv_algorithm chooses direct or Winograd; auto follows its documented rule") {
  const cpu::ConvAlgo saved = cpu::conv_algorithm();
  cpu::set_conv_algorithm(cpu::ConvAlgo::Winograd);
  CHECK(std::string(cpu::conv_algorithm_name()) == "winograd");
  expect_ran(what_ran(2, 32, 32, 16, 24, 3), true);
  expect_ran(what_ran(1, 3, 16, 9, 7, 3), true);      // forced: any 3x3, the input conv included
  expect_ran(what_ran(2, 32, 32, 16, 24, 1), false);  // 1x1: Winograd cannot, direct runs
  cpu::set_conv_algorithm(cpu::ConvAlgo::Direct);
  expect_ran(what_ran(2, 32, 32, 16, 24, 3), false);
  cpu::set_conv_algorithm(cpu::ConvAlgo::Auto);
  expect_ran(what_ran(2, 32, 32, 16, 24, 3), true);
  expect_ran(what_ran(2, 3, 32, 16, 24, 3), false);   // the 3-channel input conv
  expect_ran(what_ran(2, 32, 8, 16, 24, 3), false);   // fewer than 16 output channels
  expect_ran(what_ran(1, 64, 64, 10, 12, 3), false);  // 30 tiles < kWinogradMinTiles
  expect_ran(what_ran(2, 64, 64, 10, 12, 3), true);   // 60 tiles
  expect_ran(what_ran(2, 32, 32, 16, 24, 1), false);  // 1x1
  cpu::set_conv_algorithm(saved);
  CHECK(cpu::parse_conv_algo("winograd", "test") == cpu::ConvAlgo::Winograd);
  std::string message;
  try {
    cpu::parse_conv_algo("fft", "--conv-algo");
  } catch (const std::invalid_argument& e) {
    message = e.what();
  }
  CHECK(message.find("--conv-algo") != std::string::npos);
  CHECK(message.find("'fft'") != std::string::npos);
  CHECK(message.find("auto, direct or winograd") != std::string::npos);
}

// Run by CTest with UNETSRNN_CONV_ALGO set (tests/CMakeLists.txt), as the only test case of its
// process, so that the variable is read by the first convolution.
TEST_CASE("UNETSRNN_CONV_ALGO chooses the algorithm at the first convolution, or is refused") {
  const char* env = std::getenv("UNETSRNN_CONV_ALGO");
  if (!env) {
    CHECK(cpu::conv_algorithm() == cpu::ConvAlgo::Auto);
    return;
  }
  const std::string name = env;
  CAPTURE(name);
  if (name != "auto" && name != "direct" && name != "winograd") {
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
  expect_ran(what_ran(2, 32, 32, 16, 24, 3), name != "direct");
  expect_ran(what_ran(2, 3, 32, 16, 24, 3), name == "winograd");
  CHECK(std::string(cpu::conv_algorithm_name()) == name);
}

// ------------------------------------------------------------------------------ a whole model
// One U-Net2D training step's loss and gradients with Winograd everywhere it applies vs direct
// everywhere: they differ by rounding only. The loss (a sum of logits x r) to 1e-4 relative; every
// parameter tensor's gradient to 1e-3 of its norm (the 3x3 layers' rounding, ~kTolerance per
// layer, compounds over the 18 convolutions of forward and backward; measured far below).
TEST_CASE("a U-Net2D training step with Winograd matches the direct one") {
  const cpu::ConvAlgo saved = cpu::conv_algorithm();
  const Tensor<> x = random_tensor(Shape{2, 3, 32, 48}, 41, 0.0, 1.0);
  const Tensor<> r = random_tensor(Shape{2, 1, 32, 48}, 42);
  UNet2D<Filters{16}> direct_model, winograd_model;
  direct_model.init(7), winograd_model.init(7);
  cpu::set_conv_algorithm(cpu::ConvAlgo::Direct);
  const double loss_direct = testing::forward_backward(direct_model, x, r);
  cpu::set_conv_algorithm(cpu::ConvAlgo::Winograd);
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
  MESSAGE("U-Net2D (w16) step, Winograd vs direct: loss ", loss_winograd, " vs ", loss_direct,
          ", worst gradient relative difference ", worst);
}
