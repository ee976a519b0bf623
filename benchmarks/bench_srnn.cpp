// Spatial RNN forward + backward: the literal reference (L masked depthwise convolutions per
// direction, as the original layer) against the fast CPU path. First the models' case, seed rule +
// ReLU at the skip-link sizes of CR-UNet-Res HW, then every other rule and activation on fewer
// channels. Prints milliseconds, the speed-up and, as a sanity check, the largest relative
// difference between the two results.
//
// Usage: bench_srnn [repeats]
// OMP_NUM_THREADS sets the fast path's threads; the reference is serial and runs once.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

// ops.hpp first: it declares the SrnnCache template that cpu/backend.hpp's srnn.hpp specialises.
#include "unetsrnn/ops/ops.hpp"

#include "unetsrnn/core/rng.hpp"
#include "unetsrnn/ops/cpu/backend.hpp"
#include "unetsrnn/ops/reference/srnn.hpp"

using namespace unetsrnn;

namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

void fill(Tensor<Cpu>& t, Rng& rng, double lo, double hi) {
  for (float& v : t) v = static_cast<float>(rng.uniform(lo, hi));
}

// max |a - b| / max |b|.
double relative_difference(const Tensor<Cpu>& a, const Tensor<Cpu>& b) {
  double diff = 0.0, scale = 1e-30;
  for (std::size_t k = 0; k < a.size(); ++k) {
    diff = std::max(diff, double(std::fabs(a[k] - b[k])));
    scale = std::max(scale, double(std::fabs(b[k])));
  }
  return diff / scale;
}

struct Case {
  int n, c, h, w, length;
  const char* weights;  // "init": the original's uniform [-0.05, 0.05]; "positive": all w > 0
  SrnnRule rule = SrnnRule::Seed;
  SrnnAct act = SrnnAct::Relu;
};

void run(const Case& k, int repeats) {
  Rng rng(2024);
  const Shape xs{k.n, k.c, k.h, k.w}, ys{k.n, 4 * k.c, k.h, k.w};
  Tensor<Cpu> x(xs), dy(ys), w(Shape{kDirections, k.c, 1, 1});
  fill(x, rng, -1.0, 1.0);
  fill(dy, rng, -1.0, 1.0);
  const bool positive = std::string_view(k.weights) == "positive";
  fill(w, rng, positive ? 0.005 : -0.05, 0.05);
  const SrnnConfig cfg{k.rule, k.act, k.length};

  Tensor<Cpu> y(ys), dx(xs), dw(w.shape(), 0.0f);
  SrnnCache<Cpu> cache;
  ops::srnn_forward<Cpu>(x, w, y, cfg, cache);  // warm-up: workspaces, page faults
  ops::srnn_backward<Cpu>(x, w, dy, dx, dw, false, cfg, cache);
  double fast_fwd = 1e300, fast_bwd = 1e300;
  for (int r = 0; r < repeats; ++r) {
    auto t0 = Clock::now();
    ops::srnn_forward<Cpu>(x, w, y, cfg, cache);
    fast_fwd = std::min(fast_fwd, ms_since(t0));
    t0 = Clock::now();
    ops::srnn_backward<Cpu>(x, w, dy, dx, dw, false, cfg, cache);
    fast_bwd = std::min(fast_bwd, ms_since(t0));
  }

  Tensor<Cpu> y_ref(ys), dx_ref(xs), dw_ref(w.shape(), 0.0f);
  auto t0 = Clock::now();
  ref::srnn_forward(x, w, y_ref, cfg);
  const double ref_fwd = ms_since(t0);
  t0 = Clock::now();
  ref::srnn_backward(x, w, dy, dx_ref, dw_ref, false, cfg);
  const double ref_bwd = ms_since(t0);

  dw.zero();
  ops::srnn_backward<Cpu>(x, w, dy, dx, dw, false, cfg, cache);
  std::printf(
      "%-5s %-8s N=%d C=%3d %dx%d L=%d weights=%-8s | reference %9.1f ms (fwd %8.1f, bwd %8.1f) | "
      "fast %7.2f ms (fwd %6.2f, bwd %6.2f) | speed-up %6.0fx | "
      "rel. diff y %.1e dx %.1e dw %.1e\n",
      std::string(to_string(k.rule)).c_str(), std::string(to_string(k.act)).c_str(), k.n, k.c, k.h,
      k.w, k.length, k.weights, ref_fwd + ref_bwd, ref_fwd, ref_bwd, fast_fwd + fast_bwd, fast_fwd,
      fast_bwd, (ref_fwd + ref_bwd) / (fast_fwd + fast_bwd), relative_difference(y, y_ref),
      relative_difference(dx, dx_ref), relative_difference(dw, dw_ref));
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  const int repeats = argc > 1 ? std::max(1, std::atoi(argv[1])) : 10;
  std::printf(
      "Spatial RNN forward + backward; fast path on %d OpenMP thread(s), best of %d, CPU path %s; "
      "reference serial, one run\n",
      omp_get_max_threads(), repeats, cpu::active_isa_name());
  // The models' case: seed + ReLU at the two SRNN skip links of CR-UNet-Res HW.
  const Case cases[] = {{2, 64, 80, 96, 64, "init"},
                        {2, 64, 80, 96, 64, "positive"},
                        {2, 128, 40, 48, 32, "init"},
                        {2, 128, 40, 48, 32, "positive"}};
  for (const Case& k : cases) run(k, repeats);
  // The other rules and activations, on fewer channels to keep the reference's time short.
  std::printf("other rules (C = 16):\n");
  for (SrnnRule rule : {SrnnRule::Seed, SrnnRule::Paper, SrnnRule::Irnn})
    for (SrnnAct act : {SrnnAct::Relu, SrnnAct::Identity, SrnnAct::Tanh}) {
      if (rule == SrnnRule::Seed && act == SrnnAct::Relu) continue;
      run(Case{2, 16, 80, 96, 64, "init", rule, act}, repeats);
    }
  return 0;
}
