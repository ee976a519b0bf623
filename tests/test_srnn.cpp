#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

// Spatial RNN: the fast CPU kernels (ops/cpu/srnn.hpp) against the literal reference
// (ops/reference/srnn.hpp), a hand-computed example, finite differences, the layer, bad arguments.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include <omp.h>

// ops.hpp first: it declares the SrnnCache template that cpu/backend.hpp's srnn.hpp specialises.
#include "unetsrnn/ops/ops.hpp"

#include "cpu_paths.hpp"
#include "gradcheck.hpp"
#include "placed_view.hpp"
#include "unetsrnn/core/rng.hpp"
#include "unetsrnn/layers/srnn.hpp"
#include "unetsrnn/ops/cpu/backend.hpp"
#include "unetsrnn/ops/reference/srnn.hpp"

using namespace unetsrnn;
using testing::copy_into;
using testing::Placed;

namespace {

// Uniform magnitudes in [0.05, 1] with random signs: away from the ReLU kink at 0.
void fill_signed(View<Cpu> v, Rng& rng) { testing::fill_signed(v, rng, 0.05, 1.0); }

// The worst over channels of max |a - b| / max |b| within that channel (all images): each channel
// is judged against its own scale, so a channel whose weight makes its values huge cannot hide the
// errors of another.
double channel_error(CView<Cpu> a, CView<Cpu> b) {
  REQUIRE(a.shape == b.shape);
  double worst = 0.0;
  for (int c = 0; c < a.shape.c; ++c) {
    double diff = 0.0, scale = 1e-30;
    for (int n = 0; n < a.shape.n; ++n)
      for (std::size_t k = 0; k < a.shape.plane(); ++k) {
        const double x = a.channel(n, c)[k], y = b.channel(n, c)[k];
        const double d = std::fabs(x - y);
        diff = std::isnan(d) ? std::numeric_limits<double>::infinity() : std::max(diff, d);
        scale = std::max(scale, std::fabs(y));
      }
    worst = std::max(worst, diff / scale);
  }
  return worst;
}

// A yardstick for each weight-gradient entry dw[d,c] = sum_{n,pixels} dy . dy_out/dw: the
// Cauchy-Schwarz bound ||dy|| ||dy_out/dw|| over the (d, c) output block. Float rounding of the
// individual terms is relative to their magnitudes, so the error of the sum is bounded by a small
// multiple of this, even when the signed terms cancel and the sum itself is tiny. dy_out/dw comes
// from a central difference of the reference (a scale only; its accuracy hardly matters).
Tensor<Cpu> dw_yardstick(CView<Cpu> x, const Tensor<Cpu>& w, CView<Cpu> dy, const SrnnConfig& cfg) {
  const Shape ys = dy.shape;
  const int C = x.shape.c;
  Tensor<Cpu> up = w, down = w, y_up(ys), y_down(ys);
  Tensor<Cpu> h(w.shape());
  for (std::size_t k = 0; k < w.size(); ++k) {
    h[k] = std::max(1e-3f * std::fabs(w[k]), 1e-3f);
    up[k] = w[k] + h[k];
    down[k] = w[k] - h[k];
  }
  ref::srnn_forward(x, up, y_up, cfg);
  ref::srnn_forward(x, down, y_down, cfg);
  Tensor<Cpu> out(w.shape());
  for (int d = 0; d < kDirections; ++d)
    for (int c = 0; c < C; ++c) {
      double g2 = 0.0, s2 = 0.0;
      for (int n = 0; n < ys.n; ++n)
        for (std::size_t k = 0; k < ys.plane(); ++k) {
          const double g = dy.channel(n, d * C + c)[k];
          const double slope = (double(y_up.cview().channel(n, d * C + c)[k]) -
                                y_down.cview().channel(n, d * C + c)[k]) /
                               (2.0 * h.at(d, c, 0, 0));
          g2 += g * g;
          s2 += slope * slope;
        }
      out.at(d, c, 0, 0) = static_cast<float>(std::sqrt(g2 * s2));
    }
  return out;
}

// max over entries of |a - b| / max(|b|, yardstick): see dw_yardstick.
double entry_error(CView<Cpu> a, CView<Cpu> b, CView<Cpu> yardstick) {
  double worst = 0.0;
  for (int d = 0; d < a.shape.n; ++d)
    for (int c = 0; c < a.shape.c; ++c) {
      const double x = a.at(d, c, 0, 0), y = b.at(d, c, 0, 0);
      const double scale = std::max({std::fabs(y), double(yardstick.at(d, c, 0, 0)), 1e-30});
      const double e = std::fabs(x - y) / scale;
      worst = std::isnan(e) ? std::numeric_limits<double>::infinity() : std::max(worst, e);
    }
  return worst;
}

std::string rule_name(SrnnRule r) { return std::string(to_string(r)); }
std::string act_name(SrnnAct a) { return std::string(to_string(a)); }

// Weights (4, 4, 1, 1): every direction sees a positive weight below 1, a negative one, exactly 0
// and one with |w| > 1.
Tensor<Cpu> mixed_weights() {
  const float values[kDirections][4] = {{0.4f, -0.6f, 1.3f, 0.0f},   // right
                                        {0.0f, 0.9f, -1.3f, 1.3f},   // left
                                        {1.3f, 0.0f, 0.7f, -0.4f},   // down
                                        {-1.3f, 1.3f, 0.0f, 0.6f}};  // up
  Tensor<Cpu> w(Shape{kDirections, 4, 1, 1});
  for (int d = 0; d < kDirections; ++d)
    for (int c = 0; c < 4; ++c) w.at(d, c, 0, 0) = values[d][c];
  return w;
}

}  // namespace

// ------------------------------------------------------------------------ paths
// The Spatial RNN kernels of one instruction-set path, called directly (the ops dispatch to the
// active path). The paths share their code; they differ in the vector width of the loops.
struct SrnnPath {
  const char* name;
  bool runs;  // this CPU runs it
  decltype(&cpu::portable::srnn_forward) forward;
  decltype(&cpu::portable::srnn_backward) backward;
  decltype(&cpu::portable::srnn_detail::tanh_float) tanh;
};
#define UNETSRNN_TEST_PATH(ns, runs)                                                           \
  SrnnPath {                                                                                   \
#ns, runs, cpu::ns::srnn_forward, cpu::ns::srnn_backward, cpu::ns::srnn_detail::tanh_float \
  }
#if UNETSRNN_X86
const SrnnPath kPaths[] = {UNETSRNN_TEST_PATH(portable, true),
                           UNETSRNN_TEST_PATH(avx2, cpu::isa_supported(cpu::Isa::Avx2)),
                           UNETSRNN_TEST_PATH(avx512, cpu::isa_supported(cpu::Isa::Avx512))};
#else
const SrnnPath kPaths[] = {UNETSRNN_TEST_PATH(portable, true),
                           SrnnPath{"avx2", false, nullptr, nullptr, nullptr},
                           SrnnPath{"avx512", false, nullptr, nullptr, nullptr}};
#endif
#define PATH_TEST_CASE(title) UNETSRNN_PATH_TEST_CASE(SrnnPath, kPaths, 3, title)

TEST_CASE("srnn paths: which ran here and which did not") {
  MESSAGE("Spatial RNN paths against the reference here: ", paths_report(kPaths));
  CHECK(kPaths[0].runs);
}

// ------------------------------------------------------------------------ fast == reference
PATH_TEST_CASE("srnn fast path matches the literal reference: rules x activations x L x shapes") {
  // Limit 1e-5 of each channel's scale: both sides compute in float32, and the fast path sums the
  // same terms in another order (window sums, binomial taps, forward-mode chains) and has its own
  // tanh (within 1.4 ulp), which moves results by a few units of the float rounding (~6e-8
  // relative) times the number of terms; the worst seen is below 3e-6.
  constexpr double kLimit = 1e-5;
  Rng rng(7);
  const Tensor<Cpu> w = mixed_weights();
  const int C = 4;
  double worst_y = 0, worst_dx = 0, worst_dw = 0;
  int cases = 0;
  struct Size2 {
    int h, w;
  };
  for (Size2 sz : {Size2{5, 9}, Size2{9, 5}, Size2{1, 7}, Size2{7, 1}}) {
    std::vector<int> lengths = {1,        2,   3,        7,    sz.w - 1, sz.w,
                                sz.w + 5, 100, sz.h - 1, sz.h, sz.h + 1};
    std::sort(lengths.begin(), lengths.end());
    lengths.erase(std::unique(lengths.begin(), lengths.end()), lengths.end());
    lengths.erase(std::remove_if(lengths.begin(), lengths.end(), [](int l) { return l < 1; }),
                  lengths.end());
    for (SrnnRule rule : {SrnnRule::Seed, SrnnRule::Paper, SrnnRule::Irnn})
      for (SrnnAct act : {SrnnAct::Relu, SrnnAct::Identity, SrnnAct::Tanh})
        for (int L : lengths) {
          if (rule == SrnnRule::Irnn && L != lengths.front()) continue;  // irnn ignores L
          const bool strided = (cases % 3) != 2;
          ++cases;
          CAPTURE(sz.h);
          CAPTURE(sz.w);
          const std::string rule_str = rule_name(rule), act_str = act_name(act);
          CAPTURE(rule_str);
          CAPTURE(act_str);
          CAPTURE(L);
          CAPTURE(strided);
          const SrnnConfig cfg{rule, act, L};
          const Shape xs{2, C, sz.h, sz.w}, ys{2, 4 * C, sz.h, sz.w};
          Placed x(xs, strided);
          fill_signed(x.view, rng);

          SrnnCache<Cpu> cache;
          Placed y_fast(ys, strided), y_ref(ys, strided);
          path.forward(x.view, w, y_fast.view, cfg, cache);
          ref::srnn_forward(x.view, w, y_ref.view, cfg);
          const double ey = channel_error(y_fast.view, y_ref.view);
          worst_y = std::max(worst_y, ey);
          CHECK(ey <= kLimit);
          CHECK(y_fast.outside_untouched());

          Placed dy(ys, strided);
          fill_signed(dy.view, rng);
          const Tensor<Cpu> yardstick = dw_yardstick(x.view, w, dy.view, cfg);
          // One direction's dy at a time, so that each direction's dx is judged on its own scale.
          for (int d = 0; d < kDirections; ++d) {
            CAPTURE(d);
            Placed dy_d(ys, strided);
            dy_d.fill(0.0f);
            for (int n = 0; n < 2; ++n)
              for (int c = 0; c < C; ++c)
                std::memcpy(dy_d.view.channel(n, d * C + c), dy.view.channel(n, d * C + c),
                            xs.plane() * sizeof(float));
            Placed dx_fast(xs, strided), dx_ref(xs, strided);
            Tensor<Cpu> dw_fast(w.shape(), 0.0f), dw_ref(w.shape(), 0.0f);
            path.backward(x.view, w, dy_d.view, dx_fast.view, dw_fast, false, cfg, cache);
            ref::srnn_backward(x.view, w, dy_d.view, dx_ref.view, dw_ref, false, cfg);
            const double ex = channel_error(dx_fast.view, dx_ref.view);
            const double ew = entry_error(dw_fast, dw_ref, yardstick);
            worst_dx = std::max(worst_dx, ex);
            worst_dw = std::max(worst_dw, ew);
            CHECK(ex <= kLimit);
            CHECK(ew <= kLimit);
            CHECK(dx_fast.outside_untouched());
          }
          // All directions at once, accumulating into pre-filled dx and dw.
          Placed dx_fast(xs, strided), dx_ref(xs, strided);
          fill_signed(dx_fast.view, rng);
          copy_into(dx_fast.view, dx_ref.view);
          Tensor<Cpu> dw_fast(w.shape(), 0.25f), dw_ref(w.shape(), 0.25f);
          path.backward(x.view, w, dy.view, dx_fast.view, dw_fast, true, cfg, cache);
          ref::srnn_backward(x.view, w, dy.view, dx_ref.view, dw_ref, true, cfg);
          CHECK(channel_error(dx_fast.view, dx_ref.view) <= kLimit);
          CHECK(entry_error(dw_fast, dw_ref, yardstick) <= kLimit);
          CHECK(dx_fast.outside_untouched());
        }
  }
  MESSAGE(path.name, ": cases ", cases, ", worst relative error: y ", worst_y, ", dx ", worst_dx,
          ", dw ", worst_dw);
}

PATH_TEST_CASE("srnn fast path matches the reference on a larger case that runs in parallel") {
  // Big enough for the OpenMP path; L shorter than the sweeps, so the window spans several blocks.
  Rng rng(11);
  const int C = 8;
  const Shape xs{2, C, 33, 41}, ys{2, 4 * C, 33, 41};  // ragged for the 8x8 transpose tiles
  Tensor<Cpu> x(xs), w(Shape{kDirections, C, 1, 1}), dy(ys);
  fill_signed(x.view(), rng);
  fill_signed(dy.view(), rng);
  testing::fill_uniform(w, rng, -1.2, 1.2);
  for (SrnnRule rule : {SrnnRule::Seed, SrnnRule::Paper, SrnnRule::Irnn})
    for (int L : {5, 16}) {
      const std::string rule_str = rule_name(rule);
      CAPTURE(rule_str);
      CAPTURE(L);
      const SrnnConfig cfg{rule, SrnnAct::Relu, L};
      SrnnCache<Cpu> cache;
      Tensor<Cpu> y_fast(ys), y_ref(ys), dx_fast(xs), dx_ref(xs);
      Tensor<Cpu> dw_fast(w.shape(), 0.0f), dw_ref(w.shape(), 0.0f);
      path.forward(x, w, y_fast, cfg, cache);
      path.backward(x, w, dy, dx_fast, dw_fast, false, cfg, cache);
      ref::srnn_forward(x, w, y_ref, cfg);
      ref::srnn_backward(x, w, dy, dx_ref, dw_ref, false, cfg);
      CHECK(channel_error(y_fast, y_ref) <= 1e-5);
      CHECK(channel_error(dx_fast, dx_ref) <= 1e-5);
      CHECK(entry_error(dw_fast, dw_ref, dw_yardstick(x, w, dy, cfg)) <= 1e-5);
    }
}

PATH_TEST_CASE("paper-rule backward from sqrt(L) checkpoints matches the reference") {
  // Small planes normally keep every state; a zero budget forces the checkpointed recomputation.
  const std::size_t saved_budget = cpu::srnn_detail::paper_state_budget;
  cpu::srnn_detail::paper_state_budget = 0;
  Rng rng(13);
  const Tensor<Cpu> w = mixed_weights();
  const Shape xs{2, 4, 6, 7}, ys{2, 16, 6, 7};
  Tensor<Cpu> x(xs), dy(ys);
  fill_signed(x.view(), rng);
  fill_signed(dy.view(), rng);
  for (SrnnAct act : {SrnnAct::Relu, SrnnAct::Tanh})
    for (int L : {1, 2, 5, 9, 16, 37}) {
      const std::string act_str = act_name(act);
      CAPTURE(act_str);
      CAPTURE(L);
      const SrnnConfig cfg{SrnnRule::Paper, act, L};
      SrnnCache<Cpu> cache;
      Tensor<Cpu> y(ys), dx_fast(xs), dx_ref(xs);
      Tensor<Cpu> dw_fast(w.shape(), 0.0f), dw_ref(w.shape(), 0.0f);
      path.forward(x, w, y, cfg, cache);
      path.backward(x, w, dy, dx_fast, dw_fast, false, cfg, cache);
      ref::srnn_backward(x, w, dy, dx_ref, dw_ref, false, cfg);
      CHECK(channel_error(dx_fast, dx_ref) <= 1e-5);
      CHECK(entry_error(dw_fast, dw_ref, dw_yardstick(x, w, dy, cfg)) <= 1e-5);
    }
  cpu::srnn_detail::paper_state_budget = saved_budget;
}

PATH_TEST_CASE("srnn results do not depend on the number of threads") {
  Rng rng(12);
  const int C = 6;
  const Shape xs{2, C, 24, 40}, ys{2, 4 * C, 24, 40};
  Tensor<Cpu> x(xs), w(Shape{kDirections, C, 1, 1}, 0.3f), dy(ys);
  fill_signed(x.view(), rng);
  fill_signed(dy.view(), rng);
  const SrnnConfig cfg{SrnnRule::Seed, SrnnAct::Relu, 8};
  Tensor<Cpu> y[2], dx[2], dw[2];
  const int max_threads = omp_get_max_threads();
  for (int run = 0; run < 2; ++run) {
    omp_set_num_threads(run == 0 ? 1 : std::max(2, max_threads));
    SrnnCache<Cpu> cache;
    y[run] = Tensor<Cpu>(ys);
    dx[run] = Tensor<Cpu>(xs);
    dw[run] = Tensor<Cpu>(w.shape(), 0.0f);
    path.forward(x, w, y[run], cfg, cache);
    path.backward(x, w, dy, dx[run], dw[run], false, cfg, cache);
  }
  omp_set_num_threads(max_threads);
  CHECK(std::memcmp(y[0].data(), y[1].data(), y[0].size() * sizeof(float)) == 0);
  CHECK(std::memcmp(dx[0].data(), dx[1].data(), dx[0].size() * sizeof(float)) == 0);
  CHECK(std::memcmp(dw[0].data(), dw[1].data(), dw[0].size() * sizeof(float)) == 0);
}

PATH_TEST_CASE("the fast path's vectorisable tanh is within 1.5 ulp of the exact value") {
  // Every 241st float from 0 to beyond the clamp at 20 (~4.6 million values), against the double
  // tanh rounded; plus signs, zeros, infinities and NaN.
  double worst_ulp = 0.0;
  float worst_at = 0.0f;
  int asymmetric = 0;
  for (std::uint32_t bits = 0; bits < 0x41C00000u; bits += 241) {
    const float x = std::bit_cast<float>(bits);
    const double exact = std::tanh(double(x));
    const float rounded = static_cast<float>(exact);
    const double ulp =
        exact == 0.0 ? 1e-45 : double(std::nextafter(rounded, 2.0f)) - double(rounded);
    const double err = std::fabs(path.tanh(x) - exact) / ulp;
    if (err > worst_ulp) worst_ulp = err, worst_at = x;
    asymmetric += path.tanh(-x) != -path.tanh(x);
  }
  CHECK(asymmetric == 0);
  INFO("worst ", worst_ulp, " ulp at ", worst_at);
  CHECK(worst_ulp <= 1.5);
  CHECK(path.tanh(100.0f) == 1.0f);
  CHECK(path.tanh(-std::numeric_limits<float>::infinity()) == -1.0f);
  CHECK(std::signbit(path.tanh(-0.0f)));
  CHECK(std::isnan(path.tanh(std::numeric_limits<float>::quiet_NaN())));
}

// ------------------------------------------------------------------------ hand-computed example
PATH_TEST_CASE("the original layer's 3x3 example: L = 2, all weights 1, concat, seed + ReLU") {
  // x = [1 2 3; 4 5 6; 7 8 9], w = 1, all inputs positive, so relu is the identity and
  // h_k = S^k x: y_d = x + S_d x + S_d^2 x with zero fill. For the right direction,
  // y[i, j] = x[i, j] + x[i, j-1] + x[i, j-2]; first row: [1, 2 + 1, 3 + 2 + 1] = [1, 3, 6].
  // Left: x[i,j] + x[i,j+1] + x[i,j+2]; down: x[i,j] + x[i-1,j] + x[i-2,j]; up: x[i+1,j], x[i+2,j].
  const float expected[kDirections][9] = {{1, 3, 6, 4, 9, 15, 7, 15, 24},      // right
                                          {6, 5, 3, 15, 11, 6, 24, 17, 9},     // left
                                          {1, 2, 3, 5, 7, 9, 12, 15, 18},      // down
                                          {12, 15, 18, 11, 13, 15, 7, 8, 9}};  // up
  Tensor<Cpu> x(Shape{1, 1, 3, 3});
  for (int k = 0; k < 9; ++k) x[k] = float(k + 1);
  const Tensor<Cpu> w(Shape{kDirections, 1, 1, 1}, 1.0f);
  const SrnnConfig cfg{SrnnRule::Seed, SrnnAct::Relu, 2};
  Tensor<Cpu> y_fast(Shape{1, 4, 3, 3}), y_ref(Shape{1, 4, 3, 3});
  SrnnCache<Cpu> cache;
  path.forward(x, w, y_fast, cfg, cache);
  ref::srnn_forward(x, w, y_ref, cfg);
  for (int d = 0; d < kDirections; ++d)
    for (int k = 0; k < 9; ++k) {
      CAPTURE(d);
      CAPTURE(k);
      CHECK(y_fast[d * 9 + k] == expected[d][k]);
      CHECK(y_ref[d * 9 + k] == expected[d][k]);
    }

  // The same through the layer (concat merge, weights set to 1).
  SpatialRnn<1> layer(cfg);
  layer.weight.value.fill(1.0f);
  Tensor<Cpu> y_layer(SpatialRnn<1>::output_shape(x.shape()));
  layer.forward(x, y_layer);
  for (int d = 0; d < kDirections; ++d)
    for (int k = 0; k < 9; ++k) CHECK(y_layer[d * 9 + k] == expected[d][k]);
}

PATH_TEST_CASE("seed + ReLU closed forms: negative weights keep one step, zero weights none") {
  // x = [-1 2 -3 4] in one row, L = 5. Right, w = -0.5: only h_1 = relu(-0.5 * x[j-1]) survives,
  // [0, 0.5, 0, 1.5] -> y = [-1, 2.5, -3, 5.5]. Left, w = 0: y = x. Down/up (one row): y = x.
  Tensor<Cpu> x(Shape{1, 1, 1, 4});
  const float xv[4] = {-1, 2, -3, 4};
  std::copy(xv, xv + 4, x.begin());
  Tensor<Cpu> w(Shape{kDirections, 1, 1, 1}, 0.7f);
  w[0] = -0.5f;
  w[1] = 0.0f;
  const SrnnConfig cfg{SrnnRule::Seed, SrnnAct::Relu, 5};
  Tensor<Cpu> y(Shape{1, 4, 1, 4});
  SrnnCache<Cpu> cache;
  path.forward(x, w, y, cfg, cache);
  const float right[4] = {-1, 2.5f, -3, 5.5f};
  for (int j = 0; j < 4; ++j) {
    CHECK(y[j] == right[j]);
    CHECK(y[4 + j] == xv[j]);
    CHECK(y[8 + j] == xv[j]);
    CHECK(y[12 + j] == xv[j]);
  }
}

// ------------------------------------------------------------------------ finite differences
TEST_CASE("srnn backward (reference and fast) agrees with finite differences for every rule") {
  // Loss = sum(y * r) for a fixed random r, so dL/dy = r. Inputs have |x| in [0.05, 1] (away from
  // the ReLU kink; an intermediate pre-activation that still lands near 0 is covered by the
  // checker's one-sided fallback). eps = 1e-3: a perturbed input changes only the ~30 outputs
  // on its row and column, whose float rounding (~6e-8 relative, values O(1)) puts at most about
  // 30 * 6e-8 / 2e-3 ~ 1e-3 of noise into the central difference, while truncation error is
  // eps^2 f''' ~ 1e-6 (zero where piecewise linear). The checker's limits, rtol 1e-2 plus 2e-3 of
  // the gradient's largest component, sit above that noise and far below any real error (a missed
  // term or wrong factor is tens of percent).
  testing::GradCheckOptions opt;
  opt.eps = 1e-3;
  opt.scale_tol = 2e-3;
  const int C = 2;
  const Shape xs{2, C, 3, 4}, ys{2, 4 * C, 3, 4};
  double worst_ratio = 0.0;
  std::size_t at_kinks = 0, checked = 0;
  for (SrnnRule rule : {SrnnRule::Seed, SrnnRule::Paper, SrnnRule::Irnn})
    for (SrnnAct act : {SrnnAct::Relu, SrnnAct::Identity, SrnnAct::Tanh})
      for (bool fast : {false, true}) {
        const std::string rule_str = rule_name(rule), act_str = act_name(act);
        CAPTURE(rule_str);
        CAPTURE(act_str);
        CAPTURE(fast);
        Rng rng(21);
        const SrnnConfig cfg{rule, act, 3};
        Tensor<Cpu> x(xs), r(ys), w(Shape{kDirections, C, 1, 1});
        fill_signed(x.view(), rng);
        fill_signed(r.view(), rng);
        const float wv[8] = {0.6f, -0.7f, 1.2f, -0.4f, 0.3f, -1.1f, 0.8f, -0.5f};
        std::copy(wv, wv + 8, w.begin());
        SrnnCache<Cpu> cache;
        Tensor<Cpu> y(ys), dx(xs), dw(w.shape(), 0.0f);
        const auto forward = [&] {
          if (fast)
            ops::srnn_forward<Cpu>(x, w, y, cfg, cache);
          else
            ref::srnn_forward(x, w, y, cfg);
        };
        forward();
        if (fast)
          ops::srnn_backward<Cpu>(x, w, r, dx, dw, false, cfg, cache);
        else
          ref::srnn_backward(x, w, r, dx, dw, false, cfg);
        const auto loss = [&] {
          forward();
          return testing::project(y, r);
        };
        for (const auto& res : {testing::check_gradient("dx", x, dx, loss, opt),
                                testing::check_gradient("dw", w, dw, loss, opt)}) {
          worst_ratio = std::max(worst_ratio, res.worst_ratio);
          at_kinks += res.at_kinks;
          checked += res.checked;
        }
      }
  MESSAGE("finite differences: ", checked, " coordinates, worst |error| / tolerance ", worst_ratio,
          ", ", at_kinks, " accepted one-sided");
}

// ------------------------------------------------------------------------ the layer
TEST_CASE("SpatialRnn with concat merge: shapes, and the op's results with the layer's weights") {
  Rng rng(31);
  SpatialRnn<3> layer(SrnnConfig{SrnnRule::Seed, SrnnAct::Relu, 4});
  layer.init(rng);
  CHECK(SpatialRnn<3>::out_channels == 12);
  const Shape xs{2, 3, 6, 7};
  CHECK(SpatialRnn<3>::output_shape(xs) == Shape{2, 12, 6, 7});
  for (float v : layer.weight.value) CHECK(std::fabs(v) <= 0.05f);  // the original's initialiser

  // Input and output are channel blocks of larger tensors, as in a model.
  Placed x(xs, true), y(SpatialRnn<3>::output_shape(xs), true);
  fill_signed(x.view, rng);
  layer.forward(x.view, y.view);
  Tensor<Cpu> y_ref(SpatialRnn<3>::output_shape(xs));
  ref::srnn_forward(x.view, layer.weight.value, y_ref, layer.config());
  CHECK(channel_error(y.view, y_ref) <= 1e-5);
  CHECK(y.outside_untouched());

  Tensor<Cpu> dy(y_ref.shape()), dx(xs), dx_ref(xs), dw_ref(layer.weight.value.shape(), 0.0f);
  fill_signed(dy.view(), rng);
  ref::srnn_backward(x.view, layer.weight.value, dy, dx_ref, dw_ref, false, layer.config());
  Tensor<Cpu> dy_copy = dy;
  layer.backward(dy_copy, dx, false);
  CHECK(channel_error(dx, dx_ref) <= 1e-5);
  CHECK(entry_error(layer.weight.grad, dw_ref,
                    dw_yardstick(x.view, layer.weight.value, dy, layer.config())) <= 1e-5);

  // Without an input gradient the weight gradient still accumulates (now twice the first).
  const Tensor<Cpu> first = layer.weight.grad;
  dy_copy = dy;
  layer.backward(dy_copy, View<Cpu>{}, false);
  for (std::size_t k = 0; k < first.size(); ++k)
    CHECK(layer.weight.grad[k] == doctest::Approx(2.0 * first[k]).epsilon(1e-6));

  ParamList<Cpu> params;
  layer.collect(params, "skip");
  REQUIRE(params.size() == 1);
  CHECK(params[0].name == "skip.weight");
}

TEST_CASE("SpatialRnn with conv merge: shapes and finite-difference gradients") {
  Rng rng(41);
  using Layer = SpatialRnn<2, SrnnMerge::Conv, 3>;
  CHECK(Layer::out_channels == 3);
  for (SrnnAct act : {SrnnAct::Relu, SrnnAct::Identity}) {
    const std::string act_str = act_name(act);
    CAPTURE(act_str);
    Layer layer(SrnnConfig{SrnnRule::Seed, act, 3});
    layer.init(rng);
    // Larger SRNN weights than the initialiser's, so the sweeps matter to the gradient.
    const float wv[8] = {0.6f, -0.7f, 1.2f, -0.4f, 0.3f, -1.1f, 0.8f, 0.5f};
    std::copy(wv, wv + 8, layer.weight.value.begin());
    ParamList<Cpu> params;
    layer.collect(params, "skip");
    REQUIRE(params.size() == 2);
    CHECK(params[0].name == "skip.weight");
    CHECK(params[1].name == "skip.merge.weight");
    CHECK(params[1].param->value.shape() == Shape{3, 8, 1, 1});

    const Shape xs{2, 2, 3, 4};
    CHECK(Layer::output_shape(xs) == Shape{2, 3, 3, 4});
    Tensor<Cpu> x(xs), r(Layer::output_shape(xs)), y(Layer::output_shape(xs)), dx(xs);
    fill_signed(x.view(), rng);
    fill_signed(r.view(), rng);
    layer.forward(x, y);
    for (auto& p : params) p.param->grad.zero();
    Tensor<Cpu> dy = r;
    layer.backward(dy, dx, false);
    const auto loss = [&] {
      layer.forward(x, y);
      return testing::project(y, r);
    };
    testing::GradCheckOptions opt;
    opt.eps = 1e-3;
    opt.scale_tol = 2e-3;
    double worst_ratio = testing::check_gradient("dx", x, dx, loss, opt).worst_ratio;
    for (auto& p : params) {
      const Tensor<Cpu> analytic = p.param->grad;
      worst_ratio = std::max(
          worst_ratio,
          testing::check_gradient(p.name, p.param->value, analytic, loss, opt).worst_ratio);
    }
    MESSAGE("conv merge (", act_str, "): worst |error| / tolerance ", worst_ratio);
  }
}

// ------------------------------------------------------------------------ bad arguments
TEST_CASE("srnn ops and layer reject bad arguments with std::invalid_argument") {
  const Shape xs{1, 3, 4, 5};
  Tensor<Cpu> x(xs, 0.5f), y(Shape{1, 12, 4, 5}), dx(xs), dy(Shape{1, 12, 4, 5}, 1.0f);
  Tensor<Cpu> w(Shape{kDirections, 3, 1, 1}, 0.1f), dw(Shape{kDirections, 3, 1, 1}, 0.0f);
  SrnnCache<Cpu> cache;
  const SrnnConfig ok{SrnnRule::Seed, SrnnAct::Relu, 2};

  const Tensor<Cpu> w_channels(Shape{kDirections, 4, 1, 1}, 0.1f);
  const Tensor<Cpu> w_directions(Shape{3, 3, 1, 1}, 0.1f);
  const Tensor<Cpu> w_taps(Shape{kDirections, 3, 1, 3}, 0.1f);  // the original's 3 stored taps
  CHECK_THROWS_AS(ops::srnn_forward<Cpu>(x, w_channels, y, ok, cache), std::invalid_argument);
  CHECK_THROWS_AS(ops::srnn_forward<Cpu>(x, w_directions, y, ok, cache), std::invalid_argument);
  CHECK_THROWS_AS(ops::srnn_forward<Cpu>(x, w_taps, y, ok, cache), std::invalid_argument);
  Tensor<Cpu> y_small(Shape{1, 3, 4, 5});
  CHECK_THROWS_AS(ops::srnn_forward<Cpu>(x, w, y_small, ok, cache), std::invalid_argument);

  for (SrnnRule rule : {SrnnRule::Seed, SrnnRule::Paper})
    for (int L : {0, -3}) {
      const SrnnConfig bad{rule, SrnnAct::Relu, L};
      CHECK_THROWS_AS(ops::srnn_forward<Cpu>(x, w, y, bad, cache), std::invalid_argument);
      CHECK_THROWS_AS(SpatialRnn<3>{bad}, std::invalid_argument);
    }
  // irnn has no length: L = 0 is accepted.
  CHECK_NOTHROW(
      ops::srnn_forward<Cpu>(x, w, y, SrnnConfig{SrnnRule::Irnn, SrnnAct::Relu, 0}, cache));
  // tanh has no fused counterpart in the conv merge.
  CHECK_THROWS_AS((SpatialRnn<3, SrnnMerge::Conv, 4>{SrnnConfig{SrnnRule::Seed, SrnnAct::Tanh, 2}}),
                  std::invalid_argument);

  ops::srnn_forward<Cpu>(x, w, y, ok, cache);
  Tensor<Cpu> dw_wrong(Shape{kDirections, 4, 1, 1}, 0.0f);
  CHECK_THROWS_AS(ops::srnn_backward<Cpu>(x, w, dy, dx, dw_wrong, false, ok, cache),
                  std::invalid_argument);
  Tensor<Cpu> dy_small(Shape{1, 4, 4, 5});
  CHECK_THROWS_AS(ops::srnn_backward<Cpu>(x, w, dy_small, dx, dw, false, ok, cache),
                  std::invalid_argument);
  Tensor<Cpu> dx_wrong(Shape{1, 3, 5, 4});
  CHECK_THROWS_AS(ops::srnn_backward<Cpu>(x, w, dy, dx_wrong, dw, false, ok, cache),
                  std::invalid_argument);
  // irnn's backward reads the outputs its forward cached: without that forward it refuses.
  SrnnCache<Cpu> fresh;
  CHECK_THROWS_AS(ops::srnn_backward<Cpu>(x, w, dy, dx, dw, false,
                                          SrnnConfig{SrnnRule::Irnn, SrnnAct::Relu, 1}, fresh),
                  std::invalid_argument);
}
