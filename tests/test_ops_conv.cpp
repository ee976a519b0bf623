#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

// Fast CPU kernels (im2col + GEMM, pooling, pointwise, optimiser steps) against the literal
// reference loops of ops/reference/conv.hpp and hand-computed values. The convolutions are checked
// on every instruction-set path (ops/cpu/isa.hpp) this CPU runs, each test case once per path
// ("... [avx2]"); a path the CPU lacks is registered as skipped, and the test case "convolution
// paths" lists what ran and what did not. "avx512 tiles on avx2" is the AVX-512 path's tiling and
// layouts run with AVX2 instructions (UNETSRNN_EMULATE_AVX512), so that its logic is checked on
// machines without AVX-512; it does not stand in for the avx512 path's own test.
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

// ops.hpp first: it declares the SrnnCache template that cpu/backend.hpp's srnn.hpp specialises.
#include "unetsrnn/ops/ops.hpp"

#include "cpu_paths.hpp"
#include "placed_view.hpp"
#include "random_tensors.hpp"
#include "unetsrnn/core/rng.hpp"
#include "unetsrnn/ops/cpu/backend.hpp"
#include "unetsrnn/ops/reference/conv.hpp"

using namespace unetsrnn;
using testing::bitwise_equal;
using testing::copy_into;
using testing::fill_uniform;
using testing::Placed;
using testing::random_tensor;

namespace {

const float kNaN = std::numeric_limits<float>::quiet_NaN();

// max |a - b| / max(max |b|, 1e-30): the error relative to the reference's largest magnitude.
double relative_error(CView<Cpu> a, CView<Cpu> b) {
  REQUIRE(a.shape == b.shape);
  double worst = 0.0, scale = 1e-30;
  for (int n = 0; n < a.shape.n; ++n)
    for (std::size_t k = 0; k < a.shape.image_size(); ++k) {
      const double x = a.image(n)[k], y = b.image(n)[k];
      const double d = std::fabs(x - y);
      worst = std::isnan(d) ? std::numeric_limits<double>::infinity() : std::max(worst, d);
      scale = std::max(scale, std::fabs(y));
    }
  return worst / scale;
}

void check_close(CView<Cpu> fast, CView<Cpu> reference, const char* what, double rel = 1e-4) {
  const double err = relative_error(fast, reference);
  INFO(what, ": relative error ", err, " (limit ", rel, ")");
  CHECK(err <= rel);
}

struct Size2 {
  int h, w;
};
struct Channels {
  int in, out;
};
const Size2 kSizes[] = {{1, 1}, {2, 3}, {7, 5}, {16, 16}};
const Channels kChannelPairs[] = {{1, 1}, {3, 5}, {5, 16}, {16, 3}, {16, 16}};

// Calls f(n, channels, size, strided) for every combination of the test grid.
void for_each_case(const std::function<void(int, Channels, Size2, bool)>& f) {
  for (int n : {1, 3})
    for (Channels ch : kChannelPairs)
      for (Size2 sz : kSizes)
        for (bool strided : {false, true}) {
          CAPTURE(n);
          CAPTURE(ch.in);
          CAPTURE(ch.out);
          CAPTURE(sz.h);
          CAPTURE(sz.w);
          CAPTURE(strided);
          f(n, ch, sz, strided);
        }
}

// Runs f and expects std::invalid_argument whose message contains every needle.
void expect_invalid(const std::function<void()>& f, const std::vector<std::string>& needles) {
  std::string message;
  bool threw_invalid = false;
  try {
    f();
  } catch (const std::invalid_argument& e) {
    threw_invalid = true;
    message = e.what();
  } catch (...) {
  }
  INFO("message: ", message);
  REQUIRE(threw_invalid);
  for (const std::string& needle : needles) {
    INFO("expected to find: ", needle);
    CHECK(message.find(needle) != std::string::npos);
  }
}

}  // namespace

// ------------------------------------------------------------------------------- paths
// The six convolution kernels of one instruction-set path, called directly (the ops of ops.hpp
// dispatch to the active path; "dispatch" below checks that they reach these).
struct ConvPath {
  const char* name;
  bool runs;  // this CPU runs it
  decltype(&cpu::portable::conv2d_forward) forward;
  decltype(&cpu::portable::conv2d_backward_data) backward_data;
  decltype(&cpu::portable::conv2d_backward_params) backward_params;
  decltype(&cpu::portable::conv_transpose2x2_forward) t_forward;
  decltype(&cpu::portable::conv_transpose2x2_backward_data) t_backward_data;
  decltype(&cpu::portable::conv_transpose2x2_backward_params) t_backward_params;
};
#define UNETSRNN_TEST_PATH(ns, label, runs)                                                  \
  ConvPath {                                                                                 \
    label, runs, cpu::ns::conv2d_forward, cpu::ns::conv2d_backward_data,                     \
        cpu::ns::conv2d_backward_params, cpu::ns::conv_transpose2x2_forward,                 \
        cpu::ns::conv_transpose2x2_backward_data, cpu::ns::conv_transpose2x2_backward_params \
  }
#if UNETSRNN_X86
const ConvPath kPaths[] = {
    UNETSRNN_TEST_PATH(portable, "portable", true),
    UNETSRNN_TEST_PATH(avx2, "avx2", cpu::isa_supported(cpu::Isa::Avx2)),
    UNETSRNN_TEST_PATH(avx512, "avx512", cpu::isa_supported(cpu::Isa::Avx512)),
    UNETSRNN_TEST_PATH(avx512_emulated, "avx512 tiles on avx2", cpu::isa_supported(cpu::Isa::Avx2)),
};
#else
#define UNETSRNN_ABSENT_PATH(label) \
  ConvPath { label, false, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr }
const ConvPath kPaths[] = {UNETSRNN_TEST_PATH(portable, "portable", true),
                           UNETSRNN_ABSENT_PATH("avx2"), UNETSRNN_ABSENT_PATH("avx512"),
                           UNETSRNN_ABSENT_PATH("avx512 tiles on avx2")};
#endif

#define PATH_TEST_CASE(title) UNETSRNN_PATH_TEST_CASE(ConvPath, kPaths, 4, title)

TEST_CASE("convolution paths: which ran here and which did not") {
  MESSAGE("convolution paths against the reference here: ", paths_report(kPaths),
          " best path: ", std::string(cpu::isa_name(cpu::best_isa())));
  CHECK(kPaths[0].runs);
}

// ------------------------------------------------------------------------------- convolution
PATH_TEST_CASE(
    "conv2d_forward matches the reference (k, bias, act, channels, sizes, strided views)") {
  Rng rng(1);
  Tensor<Cpu> scratch;
  for (int k : {1, 3})
    for (bool bias : {false, true})
      for (Act act : {Act::None, Act::Relu}) {
        CAPTURE(k);
        CAPTURE(bias);
        CAPTURE(static_cast<int>(act));
        for_each_case([&](int n, Channels ch, Size2 sz, bool strided) {
          Placed x(Shape{n, ch.in, sz.h, sz.w}, strided, 3, 1);
          fill_uniform(x.view, rng);
          const Tensor<Cpu> w = random_tensor(Shape{ch.out, ch.in, k, k}, rng);
          const Tensor<Cpu> b = random_tensor(Shape{1, ch.out, 1, 1}, rng);
          const CView<Cpu> bv = bias ? b.cview() : CView<Cpu>{};
          Placed fast(Shape{n, ch.out, sz.h, sz.w}, strided);
          Placed expect(Shape{n, ch.out, sz.h, sz.w}, strided);
          path.forward(x.view, w, bv, fast.view, act, scratch);
          ref::conv2d_forward(x.view, w, bv, expect.view, act);
          check_close(fast.view, expect.view, "conv2d_forward");
          CHECK(fast.outside_untouched());
          CHECK(x.outside_untouched());
        });
      }
}

PATH_TEST_CASE("conv2d_forward with ReLU clamps exactly the negative pre-activations") {
  Rng rng(2);
  Tensor<Cpu> scratch;
  const Tensor<Cpu> x = random_tensor(Shape{2, 4, 6, 7}, rng);
  const Tensor<Cpu> w = random_tensor(Shape{5, 4, 3, 3}, rng);
  const Tensor<Cpu> b = random_tensor(Shape{1, 5, 1, 1}, rng);
  Tensor<Cpu> linear(Shape{2, 5, 6, 7}), relu(Shape{2, 5, 6, 7});
  path.forward(x, w, b, linear, Act::None, scratch);
  path.forward(x, w, b, relu, Act::Relu, scratch);
  int negatives = 0;
  for (std::size_t i = 0; i < linear.size(); ++i) {
    negatives += linear[i] < 0.0f;
    CHECK(relu[i] == (linear[i] > 0.0f ? linear[i] : 0.0f));
  }
  CHECK(negatives > 0);  // the case is not vacuous
}

PATH_TEST_CASE("conv2d_forward on a hand-computed 3x3 example") {
  // One 3x3 input channel 1..9, kernel with a single 1 at the top-left tap (u = v = 0), which reads
  // x[i-1, j-1]: the output is the input shifted down-right with zero fill, plus bias 0.5.
  Tensor<Cpu> scratch;
  Tensor<Cpu> x(Shape{1, 1, 3, 3});
  for (int i = 0; i < 9; ++i) x[i] = float(i + 1);
  Tensor<Cpu> w(Shape{1, 1, 3, 3}, 0.0f);
  w[0] = 1.0f;
  const Tensor<Cpu> b(Shape{1, 1, 1, 1}, 0.5f);
  Tensor<Cpu> y(Shape{1, 1, 3, 3});
  path.forward(x, w, b, y, Act::None, scratch);
  const float expected[9] = {0.5f, 0.5f, 0.5f, 0.5f, 1.5f, 2.5f, 0.5f, 4.5f, 5.5f};
  for (int i = 0; i < 9; ++i) CHECK(y[i] == expected[i]);
}

PATH_TEST_CASE("conv2d_backward_data matches the reference; accumulate adds to pre-filled values") {
  Rng rng(3);
  Tensor<Cpu> scratch;
  for (int k : {1, 3})
    for (bool accumulate : {false, true}) {
      CAPTURE(k);
      CAPTURE(accumulate);
      for_each_case([&](int n, Channels ch, Size2 sz, bool strided) {
        Placed dy(Shape{n, ch.out, sz.h, sz.w}, strided, 1, 2);
        fill_uniform(dy.view, rng);
        const Tensor<Cpu> w = random_tensor(Shape{ch.out, ch.in, k, k}, rng);
        Placed fast(Shape{n, ch.in, sz.h, sz.w}, strided);
        Placed expect(Shape{n, ch.in, sz.h, sz.w}, strided);
        Placed fresh(Shape{n, ch.in, sz.h, sz.w}, false);
        // Pre-filled values: to be added to, or (NaN) to be overwritten without being read.
        if (accumulate)
          fill_uniform(fast.view, rng, -2.0, 2.0);
        else
          ops::fill<Cpu>(fast.view, kNaN);
        copy_into(fast.view, expect.view);
        const Tensor<Cpu> prefill = Tensor<Cpu>::from(fast.view);

        path.backward_data(dy.view, w, fast.view, accumulate, scratch);
        ref::conv2d_backward_data(dy.view, w, expect.view, accumulate);
        check_close(fast.view, expect.view, "conv2d_backward_data");
        CHECK(fast.outside_untouched());
        if (accumulate) {  // result - prefill must be the plain gradient
          ref::conv2d_backward_data(dy.view, w, fresh.view, false);
          Tensor<Cpu> added = Tensor<Cpu>::from(fast.view);
          for (std::size_t i = 0; i < added.size(); ++i) added[i] -= prefill[i];
          check_close(added, fresh.view, "accumulated minus prefill", 1e-3);
        }
      });
    }
}

PATH_TEST_CASE("conv2d_backward_params accumulates into pre-filled dw and db") {
  Rng rng(4);
  Tensor<Cpu> scratch;
  for (int k : {1, 3})
    for (bool bias : {false, true}) {
      CAPTURE(k);
      CAPTURE(bias);
      for_each_case([&](int n, Channels ch, Size2 sz, bool strided) {
        Placed x(Shape{n, ch.in, sz.h, sz.w}, strided, 2, 2);
        Placed dy(Shape{n, ch.out, sz.h, sz.w}, strided, 1, 3);
        fill_uniform(x.view, rng);
        fill_uniform(dy.view, rng);
        Tensor<Cpu> dw = random_tensor(Shape{ch.out, ch.in, k, k}, rng);
        Tensor<Cpu> db = random_tensor(Shape{1, ch.out, 1, 1}, rng);
        Tensor<Cpu> dw_ref = dw, db_ref = db;
        path.backward_params(x.view, dy.view, dw, bias ? db.view() : View<Cpu>{}, scratch);
        ref::conv2d_backward_params(x.view, dy.view, dw_ref, bias ? db_ref.view() : View<Cpu>{});
        check_close(dw, dw_ref, "conv2d_backward_params dw");
        check_close(db, db_ref, "conv2d_backward_params db");
        if (!bias) {
          CHECK(bitwise_equal(db, db_ref));  // untouched when there is no bias
        }
      });
    }
}

PATH_TEST_CASE("conv2d backward ops are the adjoint of forward: <conv(x), g> == <x, conv^T(g)>") {
  Rng rng(5);
  Tensor<Cpu> scratch;
  const Tensor<Cpu> x = random_tensor(Shape{2, 3, 5, 6}, rng);
  const Tensor<Cpu> w = random_tensor(Shape{4, 3, 3, 3}, rng);
  const Tensor<Cpu> g = random_tensor(Shape{2, 4, 5, 6}, rng);
  Tensor<Cpu> y(Shape{2, 4, 5, 6}), dx(Shape{2, 3, 5, 6});
  Tensor<Cpu> dw(Shape{4, 3, 3, 3}, 0.0f);
  path.forward(x, w, CView<Cpu>{}, y, Act::None, scratch);
  path.backward_data(g, w, dx, false, scratch);
  path.backward_params(x, g, dw, View<Cpu>{}, scratch);
  double yg = 0, xdx = 0, wdw = 0;
  for (std::size_t i = 0; i < y.size(); ++i) yg += double(y[i]) * g[i];
  for (std::size_t i = 0; i < x.size(); ++i) xdx += double(x[i]) * dx[i];
  for (std::size_t i = 0; i < w.size(); ++i) wdw += double(w[i]) * dw[i];
  CHECK(xdx == doctest::Approx(yg).epsilon(1e-5));
  CHECK(wdw == doctest::Approx(yg).epsilon(1e-5));
}

// ------------------------------------------------------------------------ transposed convolution
PATH_TEST_CASE("conv_transpose2x2 forward / backward_data / backward_params match the reference") {
  Rng rng(6);
  Tensor<Cpu> scratch;
  for (bool bias : {false, true}) {
    CAPTURE(bias);
    for_each_case([&](int n, Channels ch, Size2 sz, bool strided) {
      const Shape in{n, ch.in, sz.h, sz.w}, out{n, ch.out, 2 * sz.h, 2 * sz.w};
      Placed x(in, strided, 1, 1);
      fill_uniform(x.view, rng);
      const Tensor<Cpu> w = random_tensor(Shape{ch.in, ch.out, 2, 2}, rng);
      const Tensor<Cpu> b = random_tensor(Shape{1, ch.out, 1, 1}, rng);
      const CView<Cpu> bv = bias ? b.cview() : CView<Cpu>{};

      Placed y_fast(out, strided), y_ref(out, strided);
      path.t_forward(x.view, w, bv, y_fast.view, scratch);
      ref::conv_transpose2x2_forward(x.view, w, bv, y_ref.view);
      check_close(y_fast.view, y_ref.view, "conv_transpose2x2_forward");
      CHECK(y_fast.outside_untouched());

      Placed dy(out, strided, 2, 1);
      fill_uniform(dy.view, rng);
      for (bool accumulate : {false, true}) {
        CAPTURE(accumulate);
        Placed dx_fast(in, strided), dx_ref(in, strided);
        if (accumulate)
          fill_uniform(dx_fast.view, rng, -2.0, 2.0);
        else
          ops::fill<Cpu>(dx_fast.view, kNaN);
        copy_into(dx_fast.view, dx_ref.view);
        path.t_backward_data(dy.view, w, dx_fast.view, accumulate, scratch);
        ref::conv_transpose2x2_backward_data(dy.view, w, dx_ref.view, accumulate);
        check_close(dx_fast.view, dx_ref.view, "conv_transpose2x2_backward_data");
        CHECK(dx_fast.outside_untouched());
      }

      Tensor<Cpu> dw = random_tensor(w.shape(), rng), db = random_tensor(b.shape(), rng);
      Tensor<Cpu> dw_ref = dw, db_ref = db;
      path.t_backward_params(x.view, dy.view, dw, bias ? db.view() : View<Cpu>{}, scratch);
      ref::conv_transpose2x2_backward_params(x.view, dy.view, dw_ref,
                                             bias ? db_ref.view() : View<Cpu>{});
      check_close(dw, dw_ref, "conv_transpose2x2_backward_params dw");
      check_close(db, db_ref, "conv_transpose2x2_backward_params db");
    });
  }
}

PATH_TEST_CASE("conv_transpose2x2 on a hand-computed example") {
  // One input pixel per channel; each output 2x2 block is b + sum_c x[c] * w[c, o, :, :].
  Tensor<Cpu> scratch;
  Tensor<Cpu> x(Shape{1, 2, 1, 1});
  x[0] = 2.0f;
  x[1] = -1.0f;
  Tensor<Cpu> w(Shape{2, 1, 2, 2});
  const float wv[8] = {1, 2, 3, 4, 10, 20, 30, 40};
  for (int i = 0; i < 8; ++i) w[i] = wv[i];
  const Tensor<Cpu> b(Shape{1, 1, 1, 1}, 0.25f);
  Tensor<Cpu> y(Shape{1, 1, 2, 2});
  path.t_forward(x, w, b, y, scratch);
  const float expected[4] = {2 - 10 + 0.25f, 4 - 20 + 0.25f, 6 - 30 + 0.25f, 8 - 40 + 0.25f};
  for (int i = 0; i < 4; ++i) CHECK(y[i] == expected[i]);
}

// ------------------------------------------------------------------- large shapes (fast paths)
// The grid above stops at 16x16 and 16 channels. These shapes reach the other paths of
// ops/cpu/conv.hpp: several pixel blocks or bands per image, several reduction (depth) blocks,
// several L2 groups of row tiles (> 126 output rows), every row-tile split, 8-column tiles, the
// parallel kernel flip and transposed add, both weight-gradient arrangements (Cout < 128 and
// >= 128) with several reduction blocks and column ranges, the thin 1x1 products, and packed
// strips (widths that are not multiples of 16). Each reference op runs once per shape; the
// variants (bias, ReLU, accumulate, strided views) are derived from it, because the reference is
// slow. Errors are relative to the largest reference magnitude (sums of up to ~2300 products).
namespace {

struct Conv {
  int n, in, out, h, w, k;
};

// y = act(pre + b) from the reference pre-activation, in float like the reference's own rounding.
Tensor<Cpu> with_bias_act(const Tensor<Cpu>& pre, const Tensor<Cpu>* b, Act act) {
  Tensor<Cpu> y = pre;
  const Shape s = y.shape();
  for (int n = 0; n < s.n; ++n)
    for (int c = 0; c < s.c; ++c) {
      float* p = y.view().channel(n, c);
      for (std::size_t q = 0; q < s.plane(); ++q) {
        const float v = b ? p[q] + (*b)[c] : p[q];
        p[q] = act == Act::Relu && v < 0.0f ? 0.0f : v;
      }
    }
  return y;
}

Tensor<Cpu> plus(const Tensor<Cpu>& a, CView<Cpu> b) {
  Tensor<Cpu> r = a;
  const Tensor<Cpu> bc = Tensor<Cpu>::from(b);
  for (std::size_t i = 0; i < r.size(); ++i) r[i] += bc[i];
  return r;
}

void check_conv_shape(const ConvPath& path, const Conv& cs, Rng& rng, Tensor<Cpu>& scratch) {
  CAPTURE(cs.n);
  CAPTURE(cs.in);
  CAPTURE(cs.out);
  CAPTURE(cs.h);
  CAPTURE(cs.w);
  CAPTURE(cs.k);
  const Shape xs{cs.n, cs.in, cs.h, cs.w}, ys{cs.n, cs.out, cs.h, cs.w};
  const Shape ws{cs.out, cs.in, cs.k, cs.k};
  const Tensor<Cpu> x = random_tensor(xs, rng), dy = random_tensor(ys, rng);
  const Tensor<Cpu> w = random_tensor(ws, rng), b = random_tensor(Shape{1, cs.out, 1, 1}, rng);

  // Forward: every bias x activation, alternating contiguous and strided views.
  Tensor<Cpu> pre(ys);
  ref::conv2d_forward(x, w, CView<Cpu>{}, pre, Act::None);
  int variant = 0;
  for (bool bias : {false, true})
    for (Act act : {Act::None, Act::Relu}) {
      const bool strided = variant++ % 2 == 1;
      CAPTURE(bias);
      CAPTURE(static_cast<int>(act));
      CAPTURE(strided);
      Placed xp(xs, strided, 3, 1), y(ys, strided);
      copy_into(x, xp.view);
      path.forward(xp.view, w, bias ? b.cview() : CView<Cpu>{}, y.view, act, scratch);
      check_close(y.view, with_bias_act(pre, bias ? &b : nullptr, act), "conv2d_forward");
      CHECK(y.outside_untouched());
    }

  // Backward data: overwrite (NaN prefill) and accumulate.
  Tensor<Cpu> dx_ref(xs);
  ref::conv2d_backward_data(dy, w, dx_ref, false);
  for (bool accumulate : {false, true}) {
    CAPTURE(accumulate);
    Placed dyp(ys, accumulate, 1, 2), dx(xs, !accumulate);
    copy_into(dy, dyp.view);
    const Tensor<Cpu> prefill = random_tensor(xs, rng, -2.0, 2.0);
    if (accumulate)
      copy_into(prefill, dx.view);
    else
      ops::fill<Cpu>(dx.view, kNaN);
    path.backward_data(dyp.view, w, dx.view, accumulate, scratch);
    check_close(dx.view, accumulate ? plus(dx_ref, prefill) : dx_ref, "conv2d_backward_data");
    CHECK(dx.outside_untouched());
  }

  // Backward params: dw and db accumulate into random values; without bias db is untouched.
  Tensor<Cpu> dw_ref(ws, 0.0f), db_ref(Shape{1, cs.out, 1, 1}, 0.0f);
  ref::conv2d_backward_params(x, dy, dw_ref, db_ref);
  for (bool bias : {false, true}) {
    CAPTURE(bias);
    Placed xp(xs, bias, 2, 2), dyp(ys, bias, 1, 3);
    copy_into(x, xp.view);
    copy_into(dy, dyp.view);
    const Tensor<Cpu> dw0 = random_tensor(ws, rng), db0 = random_tensor(db_ref.shape(), rng);
    Tensor<Cpu> dw = dw0, db = db0;
    path.backward_params(xp.view, dyp.view, dw, bias ? db.view() : View<Cpu>{}, scratch);
    check_close(dw, plus(dw0, dw_ref), "conv2d_backward_params dw");
    if (bias)
      check_close(db, plus(db0, db_ref), "conv2d_backward_params db");
    else
      CHECK(bitwise_equal(db, db0));
  }
}

void check_transpose_shape(const ConvPath& path, const Conv& cs, Rng& rng, Tensor<Cpu>& scratch) {
  CAPTURE(cs.n);
  CAPTURE(cs.in);
  CAPTURE(cs.out);
  CAPTURE(cs.h);
  CAPTURE(cs.w);
  const Shape xs{cs.n, cs.in, cs.h, cs.w}, ys{cs.n, cs.out, 2 * cs.h, 2 * cs.w};
  const Shape ws{cs.in, cs.out, 2, 2};
  const Tensor<Cpu> x = random_tensor(xs, rng), dy = random_tensor(ys, rng);
  const Tensor<Cpu> w = random_tensor(ws, rng), b = random_tensor(Shape{1, cs.out, 1, 1}, rng);

  Tensor<Cpu> pre(ys);
  ref::conv_transpose2x2_forward(x, w, CView<Cpu>{}, pre);
  for (bool bias : {false, true}) {
    CAPTURE(bias);
    Placed xp(xs, bias, 1, 1), y(ys, bias);
    copy_into(x, xp.view);
    path.t_forward(xp.view, w, bias ? b.cview() : CView<Cpu>{}, y.view, scratch);
    check_close(y.view, with_bias_act(pre, bias ? &b : nullptr, Act::None),
                "conv_transpose2x2_forward");
    CHECK(y.outside_untouched());
  }

  Tensor<Cpu> dx_ref(xs);
  ref::conv_transpose2x2_backward_data(dy, w, dx_ref, false);
  for (bool accumulate : {false, true}) {
    CAPTURE(accumulate);
    Placed dyp(ys, !accumulate, 2, 1), dx(xs, accumulate);
    copy_into(dy, dyp.view);
    const Tensor<Cpu> prefill = random_tensor(xs, rng, -2.0, 2.0);
    if (accumulate)
      copy_into(prefill, dx.view);
    else
      ops::fill<Cpu>(dx.view, kNaN);
    path.t_backward_data(dyp.view, w, dx.view, accumulate, scratch);
    check_close(dx.view, accumulate ? plus(dx_ref, prefill) : dx_ref,
                "conv_transpose2x2_backward_data");
    CHECK(dx.outside_untouched());
  }

  Tensor<Cpu> dw_ref(ws, 0.0f), db_ref(Shape{1, cs.out, 1, 1}, 0.0f);
  ref::conv_transpose2x2_backward_params(x, dy, dw_ref, db_ref);
  for (bool bias : {false, true}) {
    CAPTURE(bias);
    Placed xp(xs, bias, 2, 1), dyp(ys, bias, 1, 2);
    copy_into(x, xp.view);
    copy_into(dy, dyp.view);
    const Tensor<Cpu> dw0 = random_tensor(ws, rng), db0 = random_tensor(db_ref.shape(), rng);
    Tensor<Cpu> dw = dw0, db = db0;
    path.t_backward_params(xp.view, dyp.view, dw, bias ? db.view() : View<Cpu>{}, scratch);
    check_close(dw, plus(dw0, dw_ref), "conv_transpose2x2_backward_params dw");
    if (bias)
      check_close(db, plus(db0, db_ref), "conv_transpose2x2_backward_params db");
    else
      CHECK(bitwise_equal(db, db0));
  }
}

}  // namespace

PATH_TEST_CASE("conv2d fast paths match the reference on large shapes") {
  Rng rng(11);
  Tensor<Cpu> scratch;
  const Conv shapes[] = {
      // 3x3, widths that are multiples of 16 (bands of input rows), several bands per image
      {2, 8, 8, 32, 48, 3},     // Cout 8: 4 + 4 row tiles; 12 x 8 gradient tiles
      {1, 3, 8, 32, 48, 3},     // one image, bands split among threads; gradient tiles 12+12+4
      {2, 8, 64, 32, 48, 3},    // weight gradient over two row blocks; parallel bias sums
      {2, 16, 20, 48, 16, 3},   // 20 = 6 + 6 + 4 + 4 rows
      {2, 57, 20, 8, 16, 3},    // depth 513: three reduction blocks, ReLU after the last
      {2, 28, 136, 4, 16, 3},   // 136 rows: two L2 groups; Cout >= 128 weight gradient
      {2, 96, 96, 4, 16, 3},    // parallel kernel flip and transposed add; depth 864
      {1, 32, 130, 32, 32, 3},  // Cout >= 128 gradient: column ranges x two pixel blocks
      // 3x3, other widths (packed strips), several pixel blocks, partial strips
      {2, 11, 8, 20, 24, 3},
      {2, 24, 16, 10, 12, 3},
      {1, 5, 12, 7, 40, 3},
      // 1x1
      {2, 16, 24, 32, 48, 1},    // packed 1x1 strips, several pixel blocks
      {2, 260, 20, 4, 8, 1},     // depth 260: two reduction blocks
      {2, 256, 136, 4, 8, 1},    // two L2 groups forward and backward; Cout >= 128 gradient
      {1, 200, 128, 32, 48, 1},  // Cout >= 128 gradient: column ranges x two pixel blocks
      {2, 6, 128, 4, 8, 1},      // Cout >= 128 gradient with 6 columns: 12 x 8 tiles
      {2, 16, 24, 10, 12, 1},    // packed 1x1 (120 pixels)
      {2, 24, 1, 32, 48, 1},     // thin: the logit head (parallel pixel chunks, dot products)
      {2, 3, 24, 10, 12, 1},     // thin: three input channels
      {2, 8, 4, 20, 24, 1},      // thin: four output channels
  };
  for (const Conv& cs : shapes) check_conv_shape(path, cs, rng, scratch);
}

PATH_TEST_CASE("conv_transpose2x2 fast paths match the reference on large shapes") {
  Rng rng(12);
  Tensor<Cpu> scratch;
  const Conv shapes[] = {
      {2, 48, 8, 20, 24, 2},  // packed strips, several pixel blocks
      {2, 16, 8, 10, 12, 2},  // packed (120 pixels)
      {1, 260, 8, 4, 4, 2},   // depth 260: two reduction blocks
      {1, 256, 34, 4, 8, 2},  // 136 rows: two L2 groups
      {2, 8, 72, 4, 8, 2},    // backward data depth 288: two reduction blocks
      {1, 8, 64, 32, 48, 2},  // weight gradient over two pixel blocks
      {2, 5, 3, 7, 13, 2},    // odd widths: partial vectors in the phase scatter and gather
  };
  for (const Conv& cs : shapes) check_transpose_shape(path, cs, rng, scratch);
}

// ------------------------------------------------------------------------------------- dispatch
PATH_TEST_CASE("conv results do not depend on the number of threads") {
  Rng rng(21);
  Tensor<Cpu> scratch;
  const Shape xs{2, 24, 16, 48}, ys{2, 130, 16, 48}, ts{2, 24, 32, 96};
  const Tensor<Cpu> x = random_tensor(xs, rng), dy = random_tensor(ys, rng);
  const Tensor<Cpu> dyt = random_tensor(ts, rng);
  const Tensor<Cpu> w3 = random_tensor(Shape{130, 24, 3, 3}, rng);
  const Tensor<Cpu> w1 = random_tensor(Shape{130, 24, 1, 1}, rng);
  const Tensor<Cpu> wt = random_tensor(Shape{24, 24, 2, 2}, rng);
  const Tensor<Cpu> b = random_tensor(Shape{1, 130, 1, 1}, rng);
  // Every kernel once, its outputs concatenated.
  const auto run = [&] {
    std::vector<Tensor<Cpu>> out;
    out.emplace_back(ys), out.emplace_back(ys), out.emplace_back(xs), out.emplace_back(xs);
    out.emplace_back(w3.shape(), 0.0f), out.emplace_back(w1.shape(), 0.0f);
    out.emplace_back(b.shape(), 0.0f), out.emplace_back(ts), out.emplace_back(xs);
    out.emplace_back(wt.shape(), 0.0f);
    path.forward(x, w3, b, out[0], Act::Relu, scratch);
    path.forward(x, w1, b, out[1], Act::None, scratch);
    path.backward_data(dy, w3, out[2], false, scratch);
    path.backward_data(dy, w1, out[3], false, scratch);
    path.backward_params(x, dy, out[4], out[6], scratch);
    path.backward_params(x, dy, out[5], View<Cpu>{}, scratch);
    path.t_forward(x, wt, CView<Cpu>{}, out[7], scratch);
    path.t_backward_data(dyt, wt, out[8], false, scratch);
    path.t_backward_params(x, dyt, out[9], View<Cpu>{}, scratch);
    return out;
  };
  const int max_threads = omp_get_max_threads();
  omp_set_num_threads(1);
  const std::vector<Tensor<Cpu>> one = run();
  omp_set_num_threads(std::max(2, max_threads));
  const std::vector<Tensor<Cpu>> many = run(), again = run();
  omp_set_num_threads(max_threads);
  for (std::size_t i = 0; i < one.size(); ++i) {
    CAPTURE(i);
    CHECK(bitwise_equal(one[i], many[i]));
    CHECK(bitwise_equal(many[i], again[i]));
  }
}

TEST_CASE("the ops run the active path; set_isa refuses a path the CPU lacks") {
  Rng rng(22);
  Tensor<Cpu> scratch;
  const Tensor<Cpu> x = random_tensor(Shape{2, 24, 16, 32}, rng);
  const Tensor<Cpu> w = random_tensor(Shape{40, 24, 3, 3}, rng);
  const Tensor<Cpu> b = random_tensor(Shape{1, 40, 1, 1}, rng);
  const cpu::Isa saved = cpu::active_isa();
  // The direct algorithm (ops/cpu/conv_algo.hpp), so that kPaths[i].forward is what the op runs.
  const cpu::ConvAlgo saved_algo = cpu::conv_algorithm();
  cpu::set_conv_algorithm(cpu::ConvAlgo::Direct);
  std::vector<Tensor<Cpu>> results;
  for (int i = 0; i < 3; ++i) {
    const cpu::Isa isa = cpu::kIsas[i];
    const std::string name = cpu::isa_name(isa);
    CAPTURE(name);
    REQUIRE(std::string(kPaths[i].name) == cpu::isa_name(isa));
    if (!cpu::isa_supported(isa)) {
      expect_invalid([&] { cpu::set_isa(isa); }, {"set_isa", cpu::isa_name(isa), "cannot run"});
      continue;
    }
    cpu::set_isa(isa);
    CHECK(cpu::active_isa() == isa);
    CHECK(std::string(cpu::active_isa_name()) == cpu::isa_name(isa));
    Tensor<Cpu> via_ops(Shape{2, 40, 16, 32}), direct(Shape{2, 40, 16, 32});
    ops::conv2d_forward<Cpu>(x, w, b, via_ops, Act::None, scratch);
    kPaths[i].forward(x, w, b, direct, Act::None, scratch);
    CHECK(bitwise_equal(via_ops, direct));
    results.push_back(std::move(direct));
  }
  cpu::set_isa(saved);
  cpu::set_conv_algorithm(saved_algo);
  // The paths sum in different orders: different bits, so the comparisons above name the path.
  if (results.size() >= 2) CHECK_FALSE(bitwise_equal(results[0], results[1]));
  CHECK(cpu::parse_isa("auto", "test") == cpu::best_isa());
  CHECK(cpu::parse_isa("portable", "test") == cpu::Isa::Portable);
  expect_invalid([] { cpu::parse_isa("avx3", "--isa"); }, {"--isa", "'avx3'", "avx512, avx2"});
}

// Run by CTest with UNETSRNN_CPU_ISA set (tests/CMakeLists.txt), as the only test case of its
// process, so that the variable is read by the first op.
TEST_CASE("UNETSRNN_CPU_ISA chooses the path at the first op, or is refused") {
  const char* env = std::getenv("UNETSRNN_CPU_ISA");
  if (!env) {
    CHECK(cpu::active_isa() == cpu::best_isa());
    return;
  }
  const std::string name = env;
  CAPTURE(name);
  bool known = false;
  for (cpu::Isa isa : cpu::kIsas) known = known || name == cpu::isa_name(isa);
  if (!known) {
    expect_invalid([] { cpu::active_isa(); }, {"UNETSRNN_CPU_ISA", "'" + name + "'"});
    return;
  }
  const cpu::Isa isa = cpu::parse_isa(name, "test");
  if (!cpu::isa_supported(isa)) {
    expect_invalid([] { cpu::active_isa(); }, {"UNETSRNN_CPU_ISA", name, "cannot run"});
    MESSAGE("UNETSRNN_CPU_ISA=", name, ": refused (this CPU lacks it); the path was NOT RUN");
    return;
  }
  CHECK(cpu::active_isa() == isa);
  Rng rng(23);
  Tensor<Cpu> scratch;
  const Tensor<Cpu> x = random_tensor(Shape{1, 16, 16, 16}, rng);
  const Tensor<Cpu> w = random_tensor(Shape{24, 16, 3, 3}, rng);
  Tensor<Cpu> via_ops(Shape{1, 24, 16, 16}), direct(Shape{1, 24, 16, 16});
  cpu::set_conv_algorithm(cpu::ConvAlgo::Direct);  // kPaths' forward is the direct one
  ops::conv2d_forward<Cpu>(x, w, CView<Cpu>{}, via_ops, Act::None, scratch);
  kPaths[static_cast<int>(isa)].forward(x, w, CView<Cpu>{}, direct, Act::None, scratch);
  CHECK(bitwise_equal(via_ops, direct));
}

// ------------------------------------------------------------------------------------- pooling
TEST_CASE("maxpool2x2 forward/backward match the reference, ties included") {
  Rng rng(7);
  const Size2 sizes[] = {{2, 2}, {4, 6}, {14, 10}, {16, 16}};
  for (bool ties : {false, true})
    for (int n : {1, 3})
      for (int c : {1, 3, 5})
        for (Size2 sz : sizes)
          for (bool strided : {false, true}) {
            CAPTURE(ties);
            CAPTURE(n);
            CAPTURE(c);
            CAPTURE(sz.h);
            CAPTURE(sz.w);
            CAPTURE(strided);
            const Shape in{n, c, sz.h, sz.w}, out{n, c, sz.h / 2, sz.w / 2};
            Placed x(in, strided, 1, 2);
            fill_uniform(x.view, rng);
            if (ties)  // a handful of distinct values: most windows hold repeated maxima
              for (int i = 0; i < n; ++i)
                for (std::size_t k = 0; k < in.image_size(); ++k)
                  x.view.image(i)[k] = std::floor(2.0f * x.view.image(i)[k]);
            Placed y_fast(out, strided), y_ref(out, strided);
            ops::maxpool2x2_forward<Cpu>(x.view, y_fast.view);
            ref::maxpool2x2_forward(x.view, y_ref.view);
            CHECK(bitwise_equal(y_fast.view, y_ref.view));
            CHECK(y_fast.outside_untouched());

            Placed dy(out, strided, 2, 1);
            fill_uniform(dy.view, rng);
            for (bool accumulate : {false, true}) {
              CAPTURE(accumulate);
              Placed dx_fast(in, strided), dx_ref(in, strided);
              if (accumulate)
                fill_uniform(dx_fast.view, rng, -2.0, 2.0);
              else
                ops::fill<Cpu>(dx_fast.view, kNaN);
              copy_into(dx_fast.view, dx_ref.view);
              ops::maxpool2x2_backward<Cpu>(x.view, y_fast.view, dy.view, dx_fast.view, accumulate);
              ref::maxpool2x2_backward(x.view, y_ref.view, dy.view, dx_ref.view, accumulate);
              CHECK(bitwise_equal(dx_fast.view, dx_ref.view));
              CHECK(dx_fast.outside_untouched());
            }
          }
}

TEST_CASE("maxpool2x2 routes a tied maximum to the first window element in row-major order") {
  // Windows (row-major a b / c d): all equal; tie between b and d; tie between c and d; unique max
  // a.
  Tensor<Cpu> x(Shape{1, 1, 2, 8});
  const float top[8] = {1, 1, 0, 5, 0, 0, 9, 2};
  const float bottom[8] = {1, 1, 0, 5, 5, 5, 3, 4};
  for (int j = 0; j < 8; ++j) {
    x.at(0, 0, 0, j) = top[j];
    x.at(0, 0, 1, j) = bottom[j];
  }
  Tensor<Cpu> y(Shape{1, 1, 1, 4}), dy(Shape{1, 1, 1, 4}), dx(Shape{1, 1, 2, 8}, kNaN);
  ops::maxpool2x2_forward<Cpu>(x, y);
  const float pooled[4] = {1, 5, 5, 9};
  for (int j = 0; j < 4; ++j) {
    CHECK(y[j] == pooled[j]);
    dy[j] = float(10 * (j + 1));
  }
  ops::maxpool2x2_backward<Cpu>(x, y, dy, dx, false);
  const float dtop[8] = {10, 0, 0, 20, 0, 0, 40, 0};
  const float dbottom[8] = {0, 0, 0, 0, 30, 0, 0, 0};
  for (int j = 0; j < 8; ++j) {
    CAPTURE(j);
    CHECK(dx.at(0, 0, 0, j) == dtop[j]);
    CHECK(dx.at(0, 0, 1, j) == dbottom[j]);
  }
}

// ---------------------------------------------------------------------- pointwise and movement
TEST_CASE("fill, copy and add respect strided channel blocks") {
  Rng rng(8);
  const Shape s{3, 2, 4, 5};
  Placed block(s, true);
  ops::fill<Cpu>(block.view, 1.5f);
  CHECK(block.outside_untouched());
  for (int n = 0; n < 3; ++n)
    for (std::size_t k = 0; k < s.image_size(); ++k) CHECK(block.view.image(n)[k] == 1.5f);

  const Tensor<Cpu> src = random_tensor(s, rng);
  ops::copy<Cpu>(src, block.view);
  CHECK(bitwise_equal(block.view, src));
  CHECK(block.outside_untouched());

  Tensor<Cpu> back(s, kNaN);  // strided source into a contiguous destination
  ops::copy<Cpu>(block.view, back);
  CHECK(bitwise_equal(back, src));

  const Tensor<Cpu> other = random_tensor(s, rng);
  ops::add<Cpu>(other, block.view);
  CHECK(block.outside_untouched());
  for (int n = 0; n < 3; ++n)
    for (int c = 0; c < 2; ++c)
      for (int i = 0; i < 4; ++i)
        for (int j = 0; j < 5; ++j)
          CHECK(block.view.at(n, c, i, j) == src.at(n, c, i, j) + other.at(n, c, i, j));
}

TEST_CASE("relu forward/backward, in place and accumulating") {
  Rng rng(9);
  const Shape s{2, 3, 4, 5};
  const Tensor<Cpu> x = random_tensor(s, rng);
  Placed y(s, true);
  ops::relu_forward<Cpu>(x, y.view);
  CHECK(y.outside_untouched());
  for (int n = 0; n < 2; ++n)
    for (int c = 0; c < 3; ++c)
      for (int i = 0; i < 4; ++i)
        for (int j = 0; j < 5; ++j)
          CHECK(y.view.at(n, c, i, j) == std::max(x.at(n, c, i, j), 0.0f));

  Tensor<Cpu> inplace = x;  // x and y may alias
  ops::relu_forward<Cpu>(inplace, inplace);
  CHECK(bitwise_equal(inplace, y.view));

  const Tensor<Cpu> dy = random_tensor(s, rng);
  const Tensor<Cpu> prefill = random_tensor(s, rng);
  Tensor<Cpu> dx(s, kNaN), dx_acc = prefill, dy_alias = dy;
  ops::relu_backward<Cpu>(y.view, dy, dx, false);
  ops::relu_backward<Cpu>(y.view, dy, dx_acc, true);
  ops::relu_backward<Cpu>(y.view, dy_alias, dy_alias, false);  // dy and dx may alias
  for (std::size_t i = 0; i < dx.size(); ++i) {
    const float pass = x[i] > 0.0f ? dy[i] : 0.0f;
    CHECK(dx[i] == pass);
    CHECK(dx_acc[i] == prefill[i] + pass);
    CHECK(dy_alias[i] == pass);
  }
}

TEST_CASE("sigmoid is accurate and never overflows") {
  Tensor<Cpu> x(Shape{1, 1, 1, 13});
  const float xs[13] = {-1e30f, -1e4f, -100.0f, -20.0f, -1.0f, -1e-3f, 0.0f,
                        1e-3f,  1.0f,  20.0f,   100.0f, 1e4f,  1e30f};
  for (int i = 0; i < 13; ++i) x[i] = xs[i];
  Tensor<Cpu> y(x.shape());
  ops::sigmoid_forward<Cpu>(x, y);
  for (int i = 0; i < 13; ++i) {
    CAPTURE(xs[i]);
    const double expected = 1.0 / (1.0 + std::exp(-double(xs[i])));
    CHECK(std::isfinite(y[i]));
    CHECK(y[i] >= 0.0f);
    CHECK(y[i] <= 1.0f);
    CHECK(std::fabs(y[i] - expected) <= 1e-6 * expected + 1e-30);
  }
  CHECK(y[6] == 0.5f);
  CHECK(y[0] == 0.0f);
  CHECK(y[12] == 1.0f);
}

// ---------------------------------------------------------------------------------- optimisers
TEST_CASE("adam_update takes the hand-computed step") {
  // p = 1, g = 0.5, m = v = 0, lr_t = 0.01: m = 0.05, v = 0.00025,
  // p = 1 - 0.01 * 0.05 / (sqrt(0.00025) + 1e-8) = 0.96837722...
  // The expectations use the float-rounded betas the op receives: 1 - 0.999f is 1.3e-5 off 1e-3.
  const double b1 = 0.9f, b2 = 0.999f;
  Tensor<Cpu> p(Shape{1, 1, 1, 1}, 1.0f), g(Shape{1, 1, 1, 1}, 0.5f);
  Tensor<Cpu> m(Shape{1, 1, 1, 1}, 0.0f), v(Shape{1, 1, 1, 1}, 0.0f);
  ops::adam_update<Cpu>(p, g, m, v, 0.01f, 0.9f, 0.999f, 1e-8f);
  const double m1 = (1 - b1) * 0.5, v1 = (1 - b2) * 0.25;
  CHECK(m[0] == doctest::Approx(m1).epsilon(1e-6));
  CHECK(v[0] == doctest::Approx(v1).epsilon(1e-6));
  CHECK(p[0] == doctest::Approx(1.0 - 0.01 * m1 / (std::sqrt(v1) + 1e-8)).epsilon(1e-6));
  CHECK(p[0] == doctest::Approx(0.96837722).epsilon(1e-5));
}

TEST_CASE("adam_update matches a double-precision loop over several steps (serial and OpenMP)") {
  Rng rng(10);
  for (int count : {37, 70001}) {  // the larger one takes the OpenMP path
    CAPTURE(count);
    const Shape s{1, 1, 1, count};
    Tensor<Cpu> p = random_tensor(s, rng), m(s, 0.0f), v(s, 0.0f);
    std::vector<double> pd(p.begin(), p.end()), md(count, 0.0), vd(count, 0.0);
    const double b1 = 0.9, b2 = 0.999, eps = 1e-7;
    for (int step = 1; step <= 3; ++step) {
      const Tensor<Cpu> g = random_tensor(s, rng);
      const double lr_t = 1e-3 * std::sqrt(1.0 - std::pow(b2, step)) / (1.0 - std::pow(b1, step));
      ops::adam_update<Cpu>(p, g, m, v, float(lr_t), float(b1), float(b2), float(eps));
      for (int k = 0; k < count; ++k) {
        md[k] = b1 * md[k] + (1 - b1) * g[k];
        vd[k] = b2 * vd[k] + (1 - b2) * double(g[k]) * g[k];
        pd[k] -= lr_t * md[k] / (std::sqrt(vd[k]) + eps);
      }
    }
    double worst = 0.0;
    for (int k = 0; k < count; ++k) worst = std::max(worst, std::fabs(p[k] - pd[k]));
    CHECK(worst <= 1e-6);  // steps are ~1e-3; float rounding of p ~6e-8
  }
}

TEST_CASE("sgd_update takes the hand-computed momentum step") {
  Tensor<Cpu> p(Shape{1, 1, 1, 2}), g(Shape{1, 1, 1, 2}), vel(Shape{1, 1, 1, 2});
  p[0] = 1.0f, p[1] = -2.0f;
  g[0] = 0.5f, g[1] = -4.0f;
  vel[0] = 0.25f, vel[1] = 1.0f;
  ops::sgd_update<Cpu>(p, g, vel, 0.125f, 0.5f);
  // vel = 0.5 * vel - 0.125 * g; p += vel (all exact in binary floating point)
  CHECK(vel[0] == 0.0625f);
  CHECK(vel[1] == 1.0f);
  CHECK(p[0] == 1.0625f);
  CHECK(p[1] == -1.0f);
}

// ------------------------------------------------------------------------------ shape checks
TEST_CASE("shape mismatches throw std::invalid_argument naming the op and both shapes") {
  Tensor<Cpu> scratch;
  const Tensor<Cpu> a(Shape{1, 2, 3, 4}, 0.0f);
  Tensor<Cpu> b(Shape{1, 2, 3, 5}, 0.0f);
  const std::string sa = "(1, 2, 3, 4)", sb = "(1, 2, 3, 5)";
  expect_invalid([&] { ops::copy<Cpu>(a, b); }, {"ops::copy", sa, sb});
  expect_invalid([&] { ops::add<Cpu>(a, b); }, {"ops::add", sa, sb});
  expect_invalid([&] { ops::relu_forward<Cpu>(a, b); }, {"ops::relu_forward", sa, sb});
  expect_invalid([&] { ops::relu_backward<Cpu>(a, a, b, false); }, {"ops::relu_backward", sa, sb});
  expect_invalid([&] { ops::sigmoid_forward<Cpu>(a, b); }, {"ops::sigmoid_forward", sa, sb});

  const Tensor<Cpu> w3(Shape{4, 2, 3, 3}, 0.0f), bias4(Shape{1, 4, 1, 1}, 0.0f);
  const Tensor<Cpu> bias3(Shape{1, 3, 1, 1}, 0.0f);
  Tensor<Cpu> y_wrong_hw(Shape{1, 4, 3, 5}), y_ok(Shape{1, 4, 3, 4});
  expect_invalid([&] { ops::conv2d_forward<Cpu>(a, w3, bias4, y_wrong_hw, Act::None, scratch); },
                 {"ops::conv2d_forward", sa, "(1, 4, 3, 5)"});
  expect_invalid([&] { ops::conv2d_forward<Cpu>(a, w3, bias3, y_ok, Act::None, scratch); },
                 {"ops::conv2d_forward", "(1, 4, 1, 1)", "(1, 3, 1, 1)"});
  const Tensor<Cpu> w_even(Shape{4, 2, 2, 2}, 0.0f);
  expect_invalid([&] { ops::conv2d_forward<Cpu>(a, w_even, bias4, y_ok, Act::None, scratch); },
                 {"ops::conv2d_forward", "(4, 2, 2, 2)"});
  // A channel mismatch names the offending shape and the channel count the weights expect.
  const Tensor<Cpu> w_in3(Shape{4, 3, 3, 3}, 0.0f);
  expect_invalid([&] { ops::conv2d_forward<Cpu>(a, w_in3, bias4, y_ok, Act::None, scratch); },
                 {"ops::conv2d_forward", sa, "expected 3"});
  Tensor<Cpu> dx(Shape{1, 2, 3, 4});
  expect_invalid([&] { ops::conv2d_backward_data<Cpu>(y_wrong_hw, w3, dx, false, scratch); },
                 {"ops::conv2d_backward_data", "(1, 4, 3, 5)", sa});
  Tensor<Cpu> dw(Shape{4, 2, 3, 3}), db(Shape{1, 4, 1, 1});
  expect_invalid([&] { ops::conv2d_backward_params<Cpu>(a, y_wrong_hw, dw, db, scratch); },
                 {"ops::conv2d_backward_params", sa, "(1, 4, 3, 5)"});

  const Tensor<Cpu> wt(Shape{2, 4, 2, 2}, 0.0f);
  Tensor<Cpu> up_wrong(Shape{1, 4, 6, 9});
  expect_invalid([&] { ops::conv_transpose2x2_forward<Cpu>(a, wt, bias4, up_wrong, scratch); },
                 {"ops::conv_transpose2x2_forward", "(1, 4, 6, 8)", "(1, 4, 6, 9)"});
  expect_invalid(
      [&] { ops::conv_transpose2x2_backward_data<Cpu>(up_wrong, wt, dx, false, scratch); },
      {"ops::conv_transpose2x2_backward_data", "(1, 4, 6, 8)", "(1, 4, 6, 9)"});
  Tensor<Cpu> dwt(Shape{2, 4, 2, 2});
  expect_invalid(
      [&] { ops::conv_transpose2x2_backward_params<Cpu>(a, up_wrong, dwt, db, scratch); },
      {"ops::conv_transpose2x2_backward_params", "(1, 4, 6, 8)", "(1, 4, 6, 9)"});

  Tensor<Cpu> pooled_wrong(Shape{1, 2, 1, 3});
  const Tensor<Cpu> even(Shape{1, 2, 4, 4}, 0.0f);
  expect_invalid([&] { ops::maxpool2x2_forward<Cpu>(even, pooled_wrong); },
                 {"ops::maxpool2x2_forward", "(1, 2, 2, 2)", "(1, 2, 1, 3)"});
  expect_invalid([&] { ops::maxpool2x2_forward<Cpu>(b, pooled_wrong); },
                 {"ops::maxpool2x2_forward", sb});
  const Tensor<Cpu> pooled(Shape{1, 2, 2, 2}, 0.0f);
  expect_invalid([&] { ops::maxpool2x2_backward<Cpu>(a, pooled, pooled, b, false); },
                 {"ops::maxpool2x2_backward", sa, sb});

  Tensor<Cpu> p(Shape{1, 2, 3, 4}, 0.0f), m(Shape{1, 2, 3, 4}, 0.0f), v(Shape{1, 2, 3, 4}, 0.0f);
  expect_invalid([&] { ops::adam_update<Cpu>(p, b, m, v, 0.1f, 0.9f, 0.999f, 1e-7f); },
                 {"ops::adam_update", sa, sb});
  expect_invalid([&] { ops::sgd_update<Cpu>(p, a, b, 0.1f, 0.9f); }, {"ops::sgd_update", sa, sb});
}
