// The CUDA Spatial RNN (ops/cuda/srnn.cuh) against the CPU kernels (ops/cpu/srnn.hpp): every rule x
// activation x L (1, 2, 3, 7, 8, 9, beyond the image) x weights of every sign (0 and 1 included) x
// shapes (odd sizes, one-pixel-wide images, several tiles per plane) x whole or channel-block
// views; forward y, backward dx (one direction's dy at a time, overwrite; then all directions,
// accumulate) and dw (always accumulates). Also the global-memory tile path (forced), the
// original's published 3x3 example, model-sized seed + ReLU cases, determinism, no allocation once
// warm, and an informational timing. Exits with 77 (CTest: skipped) where no CUDA device is
// present.
//
// Failures print the rule, activation, L, shape, views, which output, the max abs and relative
// error, where (n, channel, direction, row, column), the weights involved and both values, so one
// run on a GPU machine is enough to diagnose; passing runs print the worst errors too.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <limits>
#include <map>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "random_tensors.hpp"
#include "unetsrnn/ops/ops.hpp"
// The CPU kernels' OpenMP clauses and "#pragma GCC" lines are for the host compiler; nvcc's front
// end reports them (1675) and variables only an OpenMP clause reads (177).
#pragma nv_diagnostic push
#pragma nv_diag_suppress 1675
#pragma nv_diag_suppress 177
#include "unetsrnn/core/rng.hpp"
#include "unetsrnn/ops/cpu/srnn.hpp"
#include "unetsrnn/ops/reference/srnn.hpp"
#pragma nv_diagnostic pop
#include "unetsrnn/ops/cuda/srnn.cuh"

using namespace unetsrnn;

namespace {

// Both sides compute in float32 and sum the same terms in other orders (GPU: sliding windows with
// fused multiply-adds, step-by-step paper rule; CPU: blocked window sums, binomial taps), and their
// tanh differ by an ulp or two: a few float roundings (~6e-8) times the number of terms.
constexpr double kTol = 1e-5;
constexpr int kPrintedFailures = 40;
const char* const kDirectionName[kDirections] = {"right", "left", "down", "up"};

std::string rule_name(SrnnRule r) { return std::string(to_string(r)); }
std::string act_name(SrnnAct a) { return std::string(to_string(a)); }
std::string shape_str(const Shape& s) { return s.str(); }

void sync(const char* what) { cuda::check(cudaDeviceSynchronize(), what); }

// One operand on both devices with identical values: the whole buffer (N, C + extra, H, W), of
// which the op sees channels [c0, c0 + C) when `block` (a strided view, as fused concatenation
// makes). Channels outside the block hold random values that must be neither read nor written.
struct Operand {
  Tensor<Cpu> cpu;
  Tensor<Cuda> gpu;
  int c0 = 0, c = 0;
  bool block = false;
  Operand(Shape s, bool strided, Rng& rng) {
    block = strided;
    c0 = strided ? 2 : 0;
    c = s.c;
    cpu = Tensor<Cpu>(Shape{s.n, s.c + (strided ? 3 : 0), s.h, s.w});
    // Magnitudes in [0.05, 1] (away from the ReLU kink at 0) with random signs.
    testing::fill_signed(cpu, rng, 0.05, 1.0);
    upload();
  }
  void upload() { gpu.copy_from_host(cpu); }
  View<Cpu> host() { return cpu.view().channels(c0, c); }
  View<Cuda> dev() { return gpu.view().channels(c0, c); }
};

// The worst channel of a comparison: max |gpu - cpu| / scale within each channel of the whole
// buffer (all images), the scale being max |cpu| over the channel (or `floor` when larger), so a
// channel whose weight makes it huge cannot hide another's errors.
struct Worst {
  double rel = 0.0, abs = 0.0, scale = 0.0;
  std::size_t index = 0, over = 0, count = 0;
  float expected = 0.0f, got = 0.0f;
};
Worst channel_errors(const Tensor<Cpu>& expected, const Tensor<Cpu>& got, double tol,
                     const std::vector<double>* floor = nullptr) {
  Worst w;
  const Shape s = expected.shape();
  w.count = expected.size();
  std::vector<double> scale(static_cast<std::size_t>(s.c), 1e-30);
  if (floor)
    for (std::size_t ch = 0; ch < scale.size(); ++ch) scale[ch] = std::max(scale[ch], (*floor)[ch]);
  for (std::size_t i = 0; i < expected.size(); ++i) {
    const std::size_t ch = (i / s.plane()) % s.c;
    if (std::isfinite(expected[i])) scale[ch] = std::max(scale[ch], std::fabs(double(expected[i])));
  }
  bool first = true;
  for (std::size_t i = 0; i < expected.size(); ++i) {
    const std::size_t ch = (i / s.plane()) % s.c;
    const double e = expected[i], g = got[i];
    double d = std::fabs(g - e);
    if (!std::isfinite(d)) d = (std::isnan(e) && std::isnan(g)) || e == g ? 0.0 : INFINITY;
    const double rel = d / scale[ch];
    if (rel > tol) ++w.over;
    if (first || rel > w.rel) {
      first = false;
      w.rel = rel;
      w.abs = d;
      w.scale = scale[ch];
      w.index = i;
      w.expected = expected[i];
      w.got = got[i];
    }
  }
  return w;
}
// max |max channel magnitude| per channel of a whole buffer, into floor (elementwise max).
void raise_floor(std::vector<double>& floor, const Tensor<Cpu>& t) {
  const Shape s = t.shape();
  floor.resize(static_cast<std::size_t>(s.c), 0.0);
  for (std::size_t i = 0; i < t.size(); ++i) {
    const std::size_t ch = (i / s.plane()) % s.c;
    if (std::isfinite(t[i])) floor[ch] = std::max(floor[ch], std::fabs(double(t[i])));
  }
}

// One configuration: what every failure line starts with.
struct Case {
  SrnnConfig cfg;
  Shape xs;
  Tensor<Cpu> w;  // (4, C, 1, 1)
  bool x_block = false, y_block = false, dy_block = false, dx_block = false;
  std::string name() const {
    std::ostringstream o;
    o << rule_name(cfg.rule) << " " << act_name(cfg.act) << " L=" << cfg.length << " x"
      << shape_str(xs) << " views x:" << (x_block ? "block" : "whole")
      << " y:" << (y_block ? "block" : "whole") << " dy:" << (dy_block ? "block" : "whole")
      << " dx:" << (dx_block ? "block" : "whole");
    return o.str();
  }
  std::string weights_of_channel(int c) const {
    std::ostringstream o;
    o << "w[c=" << c << "]: right " << w.at(0, c, 0, 0) << ", left " << w.at(1, c, 0, 0)
      << ", down " << w.at(2, c, 0, 0) << ", up " << w.at(3, c, 0, 0);
    return o.str();
  }
};

// The literal reference's result for a comparison (whole buffer, or dw), computed only when the
// GPU and the CPU fast path disagree; null when the case is too large for the slow reference.
using Referee = std::function<Tensor<Cpu>()>;

// Worst error seen per (rule, act, output), printed at the end of each test case.
class Report {
 public:
  explicit Report(std::string title) : title_(std::move(title)) {}
  Report(const Report&) = delete;
  Report& operator=(const Report&) = delete;

  // y or dx: whole buffers (views included) compared channel by channel; `directional`: the op's
  // channels are four direction blocks of C (y), else C plain channels (dx).
  void tensor(const std::string& output, const Case& k, const Operand& op, const Tensor<Cpu>& gpu,
              int C, bool directional, const std::string& note,
              const std::vector<double>* floor = nullptr, const Referee& referee = {}) {
    const Worst w = channel_errors(op.cpu, gpu, kTol, floor);
    std::string verdict;
    const bool ok =
        w.rel <= kTol || refereed(
                             k, output, referee,
                             [&](const Tensor<Cpu>& r) {
                               return std::pair{channel_errors(r, op.cpu, kTol, floor).rel,
                                                channel_errors(r, gpu, kTol, floor).rel};
                             },
                             verdict);
    record(k, output, w.rel, w.abs, ok);
    if (ok) {
      CHECK(ok);
      return;
    }
    const Shape s = op.cpu.shape();
    const std::size_t x = w.index % s.w, yy = (w.index / s.w) % s.h,
                      ch = (w.index / s.plane()) % s.c, n = w.index / s.image_size();
    std::ostringstream o;
    o << "MISMATCH " << output << (note.empty() ? "" : " (" + note + ")") << " [" << k.name()
      << "]: rel err " << w.rel << " > " << kTol << " (max abs " << w.abs << ", channel scale "
      << w.scale << "), " << w.over << " of " << w.count << " elements over; worst at n=" << n
      << " ";
    const int vc = static_cast<int>(ch) - op.c0;
    if (vc < 0 || vc >= op.c)
      o << "buffer channel " << ch << " OUTSIDE the op's view (must stay untouched)";
    else if (directional)
      o << "channel " << vc << " = " << kDirectionName[vc / C] << " block, c=" << vc % C << " ("
        << k.weights_of_channel(vc % C) << ")";
    else
      o << "channel c=" << vc << " (" << k.weights_of_channel(vc) << ")";
    o << " row " << yy << " col " << x << ": cpu " << w.expected << " gpu " << w.got << verdict;
    fail(o.str());
  }

  // dw: each entry against max(|cpu|, yardstick).
  void weights(const std::string& output, const Case& k, const Tensor<Cpu>& cpu,
               const Tensor<Cpu>& gpu, const Tensor<Cpu>& yardstick, const Referee& referee = {}) {
    struct Entry {
      double rel = 0.0, abs = 0.0;
      int d = 0, c = 0;
    };
    const auto worst_entry = [&](const Tensor<Cpu>& expected, const Tensor<Cpu>& got) {
      Entry e;
      for (int d = 0; d < kDirections; ++d)
        for (int c = 0; c < expected.shape().c; ++c) {
          const double a = expected.at(d, c, 0, 0), b = got.at(d, c, 0, 0);
          const double scale = std::max({std::fabs(a), double(yardstick.at(d, c, 0, 0)), 1e-30});
          double diff = std::fabs(b - a);
          if (!std::isfinite(diff)) diff = a == b ? 0.0 : INFINITY;
          if (diff / scale > e.rel || (d == 0 && c == 0)) e = {diff / scale, diff, d, c};
        }
      return e;
    };
    const Entry e = worst_entry(cpu, gpu);
    std::string verdict;
    const bool ok =
        e.rel <= kTol || refereed(
                             k, output, referee,
                             [&](const Tensor<Cpu>& r) {
                               return std::pair{worst_entry(r, cpu).rel, worst_entry(r, gpu).rel};
                             },
                             verdict);
    record(k, output, e.rel, e.abs, ok);
    if (ok) {
      CHECK(ok);
      return;
    }
    std::ostringstream o;
    o << "MISMATCH " << output << " [" << k.name() << "]: rel err " << e.rel << " > " << kTol
      << " (abs " << e.abs << ") at dw[" << kDirectionName[e.d] << ", c=" << e.c
      << "] with w = " << k.w.at(e.d, e.c, 0, 0) << ": cpu " << cpu.at(e.d, e.c, 0, 0) << " gpu "
      << gpu.at(e.d, e.c, 0, 0) << ", yardstick sum|dy||dy/dw| " << yardstick.at(e.d, e.c, 0, 0)
      << verdict;
    fail(o.str());
  }

  void threw(const Case& k, const std::string& what, const std::exception& e) {
    ++failures_;
    FAIL_CHECK("[", k.name(), "] ", what, " threw: ", e.what());
  }

  ~Report() {
    std::ostringstream o;
    o << title_ << ": " << comparisons_ << " comparisons, " << failures_ << " failed";
    for (const auto& [key, w] : worst_)
      o << "\n  " << key << ": worst rel err vs cpu " << w.rel << " (abs " << w.abs << ") at ["
        << w.where << "]";
    for (const std::string& n : notes_) o << "\n  " << n;
    MESSAGE(o.str());
  }

 private:
  // Long tanh recurrences (paper rule) amplify an ulp of difference between two tanh
  // implementations beyond kTol: no float implementation is closer to another than that. There
  // the GPU passes when it is within kTol of the literal reference, or no further from it than 3x
  // the CPU fast path's own distance. `errors(reference)` returns {cpu, gpu} distances.
  template <class Errors>
  bool refereed(const Case& k, const std::string& output, const Referee& referee, Errors&& errors,
                std::string& verdict) {
    if (!referee) return false;
    const Tensor<Cpu> reference = referee();
    const auto [cpu_rel, gpu_rel] = errors(reference);
    const bool ok = gpu_rel <= std::max(kTol, 3.0 * cpu_rel);
    std::ostringstream o;
    o << "; against the literal reference: cpu fast path rel " << cpu_rel << ", gpu rel " << gpu_rel
      << (ok ? " (accepted)" : " (rejected: gpu further than max(kTol, 3 x cpu))");
    verdict = o.str();
    if (ok) notes_.push_back("refereed " + output + " [" + k.name() + "]" + verdict);
    return ok;
  }
  struct Entry {
    double rel = -1.0, abs = 0.0;
    std::string where;
  };
  void record(const Case& k, const std::string& output, double rel, double abs, bool ok) {
    ++comparisons_;
    if (!ok) ++failures_;
    const std::string base = output.substr(0, output.find(' '));
    Entry& e = worst_[rule_name(k.cfg.rule) + " " + act_name(k.cfg.act) + " " + base];
    if (rel > e.rel) e = {rel, abs, k.name()};
  }
  void fail(const std::string& msg) {
    if (++printed_ <= kPrintedFailures)
      FAIL_CHECK(msg);
    else
      FAIL_CHECK("further mismatch (details suppressed after ", kPrintedFailures, ")");
  }

  std::string title_;
  std::map<std::string, Entry> worst_;
  std::vector<std::string> notes_;
  int comparisons_ = 0, failures_ = 0, printed_ = 0;
};

// Weights (4, C, 1, 1). C == 4: every direction sees a positive weight below 1, a negative one,
// exactly 0, exactly 1 and |w| > 1. Other C: uniform in [-range, range], with 0 and 1 planted.
Tensor<Cpu> make_weights(int C, Rng& rng, double range = 1.3) {
  Tensor<Cpu> w(Shape{kDirections, C, 1, 1});
  if (C == 4) {
    const float values[kDirections][4] = {{0.4f, -0.6f, 1.3f, 0.0f},   // right
                                          {0.0f, 1.0f, -1.3f, 0.9f},   // left
                                          {1.0f, 0.0f, 0.7f, -0.4f},   // down
                                          {-1.3f, 1.3f, 0.0f, 1.0f}};  // up
    for (int d = 0; d < kDirections; ++d)
      for (int c = 0; c < 4; ++c) w.at(d, c, 0, 0) = values[d][c];
    return w;
  }
  testing::fill_uniform(w, rng, -range, range);
  for (int d = 0; d < kDirections && C > 2; ++d) {
    w.at(d, (d + 1) % C, 0, 0) = 0.0f;
    w.at(d, (d + 2) % C, 0, 0) = 1.0f;
  }
  return w;
}

// For each dw[d, c] = sum_{n, pixels} dy . dy_out/dw: sum |dy| |dy_out/dw| over its output block,
// the scale that bounds the float rounding of that sum even when its signed terms cancel.
// dy_out/dw is a central difference of the CPU forward (only a scale).
Tensor<Cpu> dw_yardstick(CView<Cpu> x, const Tensor<Cpu>& w, CView<Cpu> dy, const SrnnConfig& cfg) {
  const Shape ys = dy.shape;
  const int C = x.shape.c;
  Tensor<Cpu> up = w, down = w, y_up(ys), y_down(ys), h(w.shape());
  for (std::size_t k = 0; k < w.size(); ++k) {
    h[k] = std::max(1e-3f * std::fabs(w[k]), 1e-3f);
    up[k] = w[k] + h[k];
    down[k] = w[k] - h[k];
  }
  SrnnCache<Cpu> cache;
  cpu::srnn_forward(x, up, y_up, cfg, cache);
  cpu::srnn_forward(x, down, y_down, cfg, cache);
  Tensor<Cpu> out(w.shape());
  for (int d = 0; d < kDirections; ++d)
    for (int c = 0; c < C; ++c) {
      double sum = 0.0;
      for (int n = 0; n < ys.n; ++n)
        for (std::size_t k = 0; k < ys.plane(); ++k) {
          const double g = dy.channel(n, d * C + c)[k];
          const double slope = (double(y_up.cview().channel(n, d * C + c)[k]) -
                                y_down.cview().channel(n, d * C + c)[k]) /
                               (2.0 * h.at(d, c, 0, 0));
          sum += std::fabs(g) * std::fabs(slope);
        }
      out.at(d, c, 0, 0) = static_cast<float>(sum);
    }
  return out;
}

// Literal-reference backward results, computed once on first use.
struct ReferenceBackward {
  Tensor<Cpu> dx, dw;
  bool done = false;
};

// Runs one configuration on both devices and compares everything. `gpu_cache` is shared by all
// calls, so it is reused across shapes and rules as a layer's would be.
void run_case(Report& report, const Case& k, SrnnCache<Cuda>& gpu_cache, Rng& rng) {
  const Shape xs = k.xs, ys{xs.n, 4 * xs.c, xs.h, xs.w};
  const int C = xs.c;
  const bool refereeable = xs.size() <= 100000;  // the literal reference is slow
  Operand x(xs, k.x_block, rng);
  Tensor<Cuda> w_gpu;
  w_gpu.copy_from_host(k.w);

  // ---- forward
  Operand y(ys, k.y_block, rng);
  const Tensor<Cpu> y_before = y.cpu;
  SrnnCache<Cpu> cpu_cache;
  try {
    cpu::srnn_forward(x.host(), k.w, y.host(), k.cfg, cpu_cache);
    cuda::srnn_forward(x.dev(), w_gpu, y.dev(), k.cfg, gpu_cache);
    sync("srnn_forward");
  } catch (const std::exception& e) {
    report.threw(k, "forward", e);
    return;
  }
  const Referee y_referee = [&] {
    Tensor<Cpu> r = y_before;
    ref::srnn_forward(x.host(), k.w, r.view().channels(y.c0, 4 * C), k.cfg);
    return r;
  };
  report.tensor("y", k, y, y.gpu.to_host(), C, true, {}, nullptr,
                refereeable ? y_referee : Referee{});

  // ---- backward, one direction's dy at a time (each direction's dx judged on its own scale)
  Operand dy(ys, k.dy_block, rng);
  const Tensor<Cpu> yardstick = dw_yardstick(x.host(), k.w, dy.host(), k.cfg);
  std::vector<double> dx_floor;  // magnitudes of the terms the accumulating run sums
  for (int d = 0; d < kDirections; ++d) {
    Operand dy_d(ys, k.dy_block, rng);
    for (int n = 0; n < xs.n; ++n)
      for (int ch = 0; ch < 4 * C; ++ch) {
        float* dst = dy_d.host().channel(n, ch);
        const float* src = dy.host().channel(n, ch);
        for (std::size_t q = 0; q < xs.plane(); ++q) dst[q] = ch / C == d ? src[q] : 0.0f;
      }
    dy_d.upload();
    Operand dx(xs, k.dx_block, rng);
    const Tensor<Cpu> dx_before = dx.cpu;
    Tensor<Cpu> dw_cpu(k.w.shape(), 0.0f);
    Tensor<Cuda> dw_gpu(k.w.shape(), 0.0f);
    const std::string note =
        std::string("dy only in the ") + kDirectionName[d] + " block, overwrite";
    try {
      cpu::srnn_backward(x.host(), k.w, dy_d.host(), dx.host(), dw_cpu, false, k.cfg, cpu_cache);
      cuda::srnn_backward(x.dev(), w_gpu, dy_d.dev(), dx.dev(), dw_gpu, false, k.cfg, gpu_cache);
      sync("srnn_backward");
    } catch (const std::exception& e) {
      report.threw(k, "backward (" + note + ")", e);
      continue;
    }
    raise_floor(dx_floor, dx.cpu);
    ReferenceBackward reference;
    const auto run_reference = [&] {
      if (reference.done) return;
      reference.dx = dx_before;
      reference.dw = Tensor<Cpu>(k.w.shape(), 0.0f);
      ref::srnn_backward(x.host(), k.w, dy_d.host(), reference.dx.view().channels(dx.c0, C),
                         reference.dw, false, k.cfg);
      reference.done = true;
    };
    const Referee dx_referee = [&] {
      run_reference();
      return reference.dx;
    };
    const Referee dw_referee = [&] {
      run_reference();
      return reference.dw;
    };
    report.tensor(std::string("dx ") + kDirectionName[d], k, dx, dx.gpu.to_host(), C, false, note,
                  nullptr, refereeable ? dx_referee : Referee{});
    report.weights(std::string("dw ") + kDirectionName[d] + " (" + note + ")", k, dw_cpu,
                   dw_gpu.to_host(), yardstick, refereeable ? dw_referee : Referee{});
  }

  // ---- backward, all directions, accumulating into random dx and dw = 0.25
  Operand dx(xs, k.dx_block, rng);
  raise_floor(dx_floor, dx.cpu);
  const Tensor<Cpu> dx_before = dx.cpu;
  Tensor<Cpu> dw_cpu(k.w.shape(), 0.25f);
  Tensor<Cuda> dw_gpu(k.w.shape(), 0.25f);
  try {
    cpu::srnn_backward(x.host(), k.w, dy.host(), dx.host(), dw_cpu, true, k.cfg, cpu_cache);
    cuda::srnn_backward(x.dev(), w_gpu, dy.dev(), dx.dev(), dw_gpu, true, k.cfg, gpu_cache);
    sync("srnn_backward (accumulate)");
  } catch (const std::exception& e) {
    report.threw(k, "backward (all directions, accumulate)", e);
    return;
  }
  ReferenceBackward reference;
  const auto run_reference = [&] {
    if (reference.done) return;
    reference.dx = dx_before;
    reference.dw = Tensor<Cpu>(k.w.shape(), 0.25f);
    ref::srnn_backward(x.host(), k.w, dy.host(), reference.dx.view().channels(dx.c0, C),
                       reference.dw, true, k.cfg);
    reference.done = true;
  };
  const Referee dx_referee = [&] {
    run_reference();
    return reference.dx;
  };
  const Referee dw_referee = [&] {
    run_reference();
    return reference.dw;
  };
  // The sum's scale is that of its terms (the initial dx and each direction's share), not of the
  // result, which may cancel.
  report.tensor("dx all", k, dx, dx.gpu.to_host(), C, false, "all directions, accumulate",
                &dx_floor, refereeable ? dx_referee : Referee{});
  // dw started at 0.25 on both sides: the yardstick still bounds the added sum's rounding.
  report.weights("dw all (accumulate onto 0.25)", k, dw_cpu, dw_gpu.to_host(), yardstick,
                 refereeable ? dw_referee : Referee{});
}

std::vector<int> lengths_for(const Shape& s, bool beyond_image) {
  std::vector<int> lengths = {1, 2, 3, 7, 8, 9};
  if (beyond_image)
    lengths.push_back(std::max(s.h, s.w) + 5);
  else
    lengths.push_back(20);
  std::sort(lengths.begin(), lengths.end());
  lengths.erase(std::unique(lengths.begin(), lengths.end()), lengths.end());
  return lengths;
}

void sweep(Report& report, const std::vector<Shape>& shapes, bool beyond_image,
           const std::vector<int>& only_lengths, std::uint64_t seed) {
  Rng rng(seed);
  SrnnCache<Cuda> gpu_cache;
  int count = 0;
  for (const Shape& s : shapes) {
    const std::vector<int> lengths =
        only_lengths.empty() ? lengths_for(s, beyond_image) : only_lengths;
    for (SrnnRule rule : {SrnnRule::Seed, SrnnRule::Paper, SrnnRule::Irnn})
      for (SrnnAct act : {SrnnAct::Relu, SrnnAct::Identity, SrnnAct::Tanh})
        for (int L : lengths) {
          if (rule == SrnnRule::Irnn && L != lengths.front()) continue;  // irnn ignores L
          Case k;
          k.cfg = SrnnConfig{rule, act, L};
          k.xs = s;
          k.w = make_weights(s.c, rng);
          k.x_block = count % 2 == 1;
          k.y_block = count % 3 != 2;
          k.dy_block = count % 4 < 2;
          k.dx_block = count % 5 != 4;
          ++count;
          run_case(report, k, gpu_cache, rng);
        }
  }
}

// Restores the shared-memory budget when it goes out of scope.
struct SharedBudget {
  std::size_t saved = cuda::srnn_detail::shared_budget_bytes;
  explicit SharedBudget(std::size_t bytes) { cuda::srnn_detail::shared_budget_bytes = bytes; }
  ~SharedBudget() { cuda::srnn_detail::shared_budget_bytes = saved; }
};

std::string geometry_str(const cuda::srnn_detail::Plan& plan) {
  const auto& g = plan.geometry;
  std::ostringstream o;
  o << (g.horizontal ? "rows" : "cols") << ": " << g.tiles << " tiles/plane of " << g.lines
    << " lines, " << g.blocks << " blocks x " << g.threads << " threads, "
    << (g.global_area ? "global" : "shared") << " area " << g.area * 4 << " B";
  return o.str();
}

}  // namespace

// ------------------------------------------------------------------------ exhaustive small cases
TEST_CASE("cuda srnn matches the CPU: rules x activations x L x shapes x views") {
  Report report("srnn small shapes (shared-memory tiles)");
  // Odd sizes, one-pixel-wide images both ways, a single pixel, and planes cut into several tiles
  // per orientation with partial strips.
  sweep(report,
        {{2, 4, 5, 9}, {2, 4, 9, 5}, {1, 4, 1, 7}, {2, 4, 7, 1}, {1, 4, 1, 1}, {2, 4, 11, 17}},
        true, {}, 7);
  sweep(report, {{2, 4, 13, 37}, {1, 5, 70, 45}}, false, {}, 8);
}

TEST_CASE("cuda srnn with its tiles in global memory (the path of lines too long for shared)") {
  Report report("srnn global-memory tiles");
  const SharedBudget force(0);
  sweep(report, {{2, 4, 5, 9}, {1, 4, 7, 1}, {1, 5, 70, 45}}, false, {1, 3, 9}, 9);
}

TEST_CASE("cuda srnn: the original layer's 3x3 example, L = 2, all weights 1") {
  // y_d = x + S_d x + S_d^2 x (all inputs positive, w = 1): exact small integers.
  const float expected[kDirections][9] = {{1, 3, 6, 4, 9, 15, 7, 15, 24},      // right
                                          {6, 5, 3, 15, 11, 6, 24, 17, 9},     // left
                                          {1, 2, 3, 5, 7, 9, 12, 15, 18},      // down
                                          {12, 15, 18, 11, 13, 15, 7, 8, 9}};  // up
  Tensor<Cpu> x(Shape{1, 1, 3, 3});
  for (int k = 0; k < 9; ++k) x[k] = float(k + 1);
  Tensor<Cuda> x_gpu, w_gpu(Shape{kDirections, 1, 1, 1}, 1.0f), y_gpu(Shape{1, 4, 3, 3});
  x_gpu.copy_from_host(x);
  SrnnCache<Cuda> cache;
  cuda::srnn_forward(x_gpu, w_gpu, y_gpu, SrnnConfig{SrnnRule::Seed, SrnnAct::Relu, 2}, cache);
  const Tensor<Cpu> y = y_gpu.to_host();
  for (int d = 0; d < kDirections; ++d)
    for (int k = 0; k < 9; ++k) {
      INFO(kDirectionName[d], " element ", k);
      CHECK(y[d * 9 + k] == expected[d][k]);
    }
}

// ------------------------------------------------------------------------ model-sized cases
TEST_CASE("cuda srnn on model-sized planes (CR-UNet-Res HW levels 2 and 3, seed + ReLU)") {
  Report report("srnn model-sized");
  Rng rng(21);
  SrnnCache<Cuda> gpu_cache;
  struct Level {
    Shape s;
    int L;
  };
  for (const Level& level : {Level{{2, 64, 80, 96}, 64}, Level{{2, 128, 40, 48}, 32}}) {
    // Weights up to 1.1 in magnitude (1.1^64 ~ 445): the long windows matter.
    Case k;
    k.cfg = SrnnConfig{SrnnRule::Seed, SrnnAct::Relu, level.L};
    k.xs = level.s;
    k.w = make_weights(level.s.c, rng, 1.1);
    k.x_block = false;
    k.y_block = true;  // concat into a larger buffer, as in the model
    k.dy_block = true;
    k.dx_block = true;
    run_case(report, k, gpu_cache, rng);
  }
  // The other rules on one large plane (several tiles both ways, long lines).
  for (SrnnRule rule : {SrnnRule::Paper, SrnnRule::Irnn})
    for (SrnnAct act : {SrnnAct::Relu, SrnnAct::Tanh}) {
      Case k;
      k.cfg = SrnnConfig{rule, act, 16};
      k.xs = Shape{1, 6, 80, 96};
      k.w = make_weights(6, rng, 1.1);
      k.y_block = true;
      run_case(report, k, gpu_cache, rng);
    }
}

TEST_CASE("cuda srnn is deterministic and does not allocate once warm") {
  Rng rng(31);
  const Shape xs{2, 16, 40, 48}, ys{2, 64, 40, 48};
  for (SrnnRule rule : {SrnnRule::Seed, SrnnRule::Paper, SrnnRule::Irnn}) {
    const std::string rule_str = rule_name(rule);
    CAPTURE(rule_str);
    const SrnnConfig cfg{rule, SrnnAct::Relu, 12};
    Operand x(xs, false, rng), dy(ys, false, rng);
    Tensor<Cuda> w;
    w.copy_from_host(make_weights(xs.c, rng));
    Tensor<Cuda> y(ys), dx(xs), dw(Shape{kDirections, xs.c, 1, 1}, 0.0f);
    SrnnCache<Cuda> cache;
    std::vector<Tensor<Cpu>> results;
    const void *areas = nullptr, *states = nullptr, *partials = nullptr, *outputs = nullptr;
    for (int run = 0; run < 3; ++run) {
      dw.zero();
      cuda::srnn_forward(x.dev(), w, y, cfg, cache);
      cuda::srnn_backward(x.dev(), w, dy.dev(), dx, dw, false, cfg, cache);
      sync("determinism run");
      if (run == 1) {
        areas = cache.areas.data();
        states = cache.states.data();
        partials = cache.partials.data();
        outputs = cache.outputs.data();
      }
      if (run == 2) {  // the third run reuses the second's buffers
        CHECK(cache.areas.data() == areas);
        CHECK(cache.states.data() == states);
        CHECK(cache.partials.data() == partials);
        CHECK(cache.outputs.data() == outputs);
      }
      results.push_back(y.to_host());
      results.push_back(dx.to_host());
      results.push_back(dw.to_host());
    }
    for (std::size_t i = 3; i < results.size(); ++i) {
      INFO("run ", i / 3, " output ", i % 3, " (0 y, 1 dx, 2 dw) differs from run 0");
      CHECK(std::equal(results[i].begin(), results[i].end(), results[i % 3].begin()));
    }
  }
}

TEST_CASE("cuda srnn: irnn backward without its forward is refused") {
  const Shape xs{1, 2, 3, 4};
  Tensor<Cuda> x(xs, 0.5f), w(Shape{kDirections, 2, 1, 1}, 0.5f), dy(Shape{1, 8, 3, 4}, 1.0f),
      dx(xs), dw(Shape{kDirections, 2, 1, 1}, 0.0f);
  SrnnCache<Cuda> fresh;
  CHECK_THROWS_AS(cuda::srnn_backward(x, w, dy, dx, dw, false,
                                      SrnnConfig{SrnnRule::Irnn, SrnnAct::Relu, 1}, fresh),
                  std::invalid_argument);
}

// ------------------------------------------------------------------------ informational timing
TEST_CASE("cuda srnn timing, seed + ReLU at the model's sizes (informational, not asserted)") {
  Rng rng(41);
  struct Level {
    Shape s;
    int L;
  };
  for (const Level& level : {Level{{2, 64, 80, 96}, 64}, Level{{2, 128, 40, 48}, 32}}) {
    const Shape xs = level.s, ys{xs.n, 4 * xs.c, xs.h, xs.w};
    const SrnnConfig cfg{SrnnRule::Seed, SrnnAct::Relu, level.L};
    Operand x(xs, false, rng), dy(ys, false, rng);
    Tensor<Cuda> w, y(ys), dx(xs), dw(Shape{kDirections, xs.c, 1, 1}, 0.0f);
    w.copy_from_host(make_weights(xs.c, rng, 1.1));
    SrnnCache<Cuda> cache;
    for (int i = 0; i < 3; ++i) {  // warm up
      cuda::srnn_forward(x.dev(), w, y, cfg, cache);
      cuda::srnn_backward(x.dev(), w, dy.dev(), dx, dw, false, cfg, cache);
    }
    sync("timing warm-up");
    cudaEvent_t start, mid, stop;
    cuda::check(cudaEventCreate(&start), "cudaEventCreate");
    cuda::check(cudaEventCreate(&mid), "cudaEventCreate");
    cuda::check(cudaEventCreate(&stop), "cudaEventCreate");
    constexpr int reps = 20;
    cuda::check(cudaEventRecord(start), "cudaEventRecord");
    for (int i = 0; i < reps; ++i) cuda::srnn_forward(x.dev(), w, y, cfg, cache);
    cuda::check(cudaEventRecord(mid), "cudaEventRecord");
    for (int i = 0; i < reps; ++i)
      cuda::srnn_backward(x.dev(), w, dy.dev(), dx, dw, false, cfg, cache);
    cuda::check(cudaEventRecord(stop), "cudaEventRecord");
    cuda::check(cudaEventSynchronize(stop), "cudaEventSynchronize");
    float fwd_ms = 0.0f, bwd_ms = 0.0f;
    cuda::check(cudaEventElapsedTime(&fwd_ms, start, mid), "cudaEventElapsedTime");
    cuda::check(cudaEventElapsedTime(&bwd_ms, mid, stop), "cudaEventElapsedTime");
    (void)cudaEventDestroy(start);
    (void)cudaEventDestroy(mid);
    (void)cudaEventDestroy(stop);
    const std::size_t budget = cuda::srnn_detail::shared_budget();
    std::ostringstream o;
    o << "INFORMATIONAL timing x" << xs.str() << " L=" << level.L << " seed relu: forward "
      << 1000.0 * fwd_ms / reps << " us, backward " << 1000.0 * bwd_ms / reps
      << " us per call (mean of " << reps << ")\n  forward  "
      << geometry_str(cuda::srnn_detail::forward_plan(cfg, xs, true, budget)) << "; "
      << geometry_str(cuda::srnn_detail::forward_plan(cfg, xs, false, budget)) << "\n  backward "
      << geometry_str(cuda::srnn_detail::backward_plan(cfg, xs, true, budget)) << "; "
      << geometry_str(cuda::srnn_detail::backward_plan(cfg, xs, false, budget));
    MESSAGE(o.str());
  }
}

#include "cuda_test_main.hpp"

int main(int argc, char** argv) { return run_cuda_tests("test_cuda_srnn", argc, argv); }
