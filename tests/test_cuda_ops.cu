// The CUDA backend against the CPU backend: every op of ops/ops.hpp (the Spatial RNN has its own
// test, test_cuda_srnn.cu) on random inputs over a grid of shapes, channel-block views, accumulate
// on/off, kernel 1/3, bias/no bias, ReLU/identity; then the four models (forward logits, every
// parameter gradient) and Adam steps. Exits with 77 (CTest: skipped) where no CUDA device is
// present.
//
// Failures print the op, its full configuration, the max abs and relative error and where it is
// (n, c, y, x), so one run on a GPU machine is enough to diagnose; passing runs print each op's
// worst error too.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <unetsrnn/cuda.hpp>
#include <unetsrnn/train/optim.hpp>
#include <vector>

#include "composed_models.hpp"
#include "random_tensors.hpp"

using namespace unetsrnn;
using testing::random_tensor;
using testing::set_strong_srnn_weights;

namespace {

// Small integers in [lo, hi]: ties everywhere (max-pool routing).
Tensor<Cpu> random_levels(Shape s, std::uint64_t seed, int lo, int hi) {
  Tensor<Cpu> t(s);
  Rng rng(seed);
  for (float& v : t) v = static_cast<float>(lo + static_cast<int>(rng.below(hi - lo + 1)));
  return t;
}
Tensor<Cuda> to_device(const Tensor<Cpu>& host) {
  Tensor<Cuda> t;
  t.copy_from_host(host);
  return t;
}
// Waits for the device, so an error of an asynchronous kernel is reported by the op that caused it.
void sync(const std::string& what) { cuda::check(cudaDeviceSynchronize(), what.c_str()); }

std::string shape_index(const Shape& s, std::size_t i) {
  const std::size_t x = i % s.w, y = (i / s.w) % s.h, c = (i / s.plane()) % s.c,
                    n = i / s.image_size();
  std::ostringstream o;
  o << "(n " << n << ", c " << c << ", y " << y << ", x " << x << ")";
  return o.str();
}

// Worst error of one comparison.
struct Mismatch {
  double max_abs = 0.0;  // max |got - expected| (infinite for NaN/inf where expected is finite)
  double scale = 0.0;    // max |expected|
  std::size_t index = 0, over = 0;
  float expected = 0.0f, got = 0.0f;
  double relative(double floor) const { return max_abs / std::max(scale, floor); }
};
Mismatch measure(const Tensor<Cpu>& expected, const Tensor<Cpu>& got, double tol, double floor) {
  Mismatch m;
  for (std::size_t i = 0; i < expected.size(); ++i)
    m.scale = std::max(m.scale, std::abs(static_cast<double>(expected[i])));
  const double bound = tol * std::max(m.scale, floor);
  bool first = true;
  for (std::size_t i = 0; i < expected.size(); ++i) {
    const double e = expected[i], g = got[i];
    double d = std::abs(g - e);
    if (std::isnan(d) || std::isinf(d))
      d = (std::isnan(e) && std::isnan(g)) || e == g ? 0.0 : INFINITY;
    if (d > bound) ++m.over;
    if (first || d > m.max_abs) {
      m.max_abs = d;
      m.index = i;
      m.expected = expected[i];
      m.got = got[i];
      first = false;
    }
  }
  return m;
}

// Worst relative error per op over a test case, printed at its end; failures print in full.
class Report {
 public:
  // Compares a GPU result with the CPU's. Passes when max|gpu - cpu| <= tol * max(max|cpu|,
  // floor); tol == 0 demands identical bits (up to NaN == NaN).
  bool compare(const std::string& op, const std::string& config, const Tensor<Cpu>& expected,
               const Tensor<Cuda>& got_device, double tol, double floor = 1e-30,
               const std::string& note = {}) {
    const Tensor<Cpu> got = got_device.to_host();
    if (!(got.shape() == expected.shape())) {
      FAIL_CHECK(op, " [", config, "]: GPU result has shape ", got.shape().str(), ", CPU ",
                 expected.shape().str());
      return false;
    }
    const Mismatch m = measure(expected, got, tol, floor);
    const double rel = m.relative(floor);
    Worst& w = worst_[op];
    ++w.comparisons;
    if (rel > w.relative || w.comparisons == 1) {
      w.relative = rel;
      w.abs = m.max_abs;
      w.config = config;
    }
    const bool ok = tol == 0.0 ? m.max_abs == 0.0 : rel <= tol;
    if (!ok) {
      ++w.failures;
      if (w.failures <= kPrintedFailures) {
        std::ostringstream msg;
        msg << "MISMATCH " << op << " [" << config << "] shape " << expected.shape().str()
            << ": max abs err " << m.max_abs << ", max|cpu| " << m.scale << ", rel err " << rel
            << " (tolerance " << tol << (tol == 0.0 ? ", bit-exact" : "") << "), worst at flat "
            << m.index << " " << shape_index(expected.shape(), m.index) << " cpu " << m.expected
            << " gpu " << m.got << "; " << m.over << " of " << expected.size()
            << " elements over the bound" << (note.empty() ? "" : "; ") << note;
        FAIL_CHECK(msg.str());
      }
    } else {
      CHECK(ok);
    }
    return ok;
  }
  // Runs one configuration; an exception (CUDA error, shape check) fails it with the
  // configuration named and lets the next one run.
  void run(const std::string& op, const std::string& config, const std::function<void()>& body) {
    try {
      body();
      sync(op + " [" + config + "]");
    } catch (const std::exception& e) {
      ++worst_[op].failures;
      FAIL_CHECK(op, " [", config, "] threw: ", e.what());
    }
  }
  ~Report() {
    for (const auto& [op, w] : worst_) {
      std::ostringstream msg;
      msg << op << ": " << w.comparisons << " comparisons, " << w.failures
          << " failed; worst rel err " << w.relative << " (abs " << w.abs << ") at [" << w.config
          << "]";
      MESSAGE(msg.str());
    }
  }

 private:
  static constexpr int kPrintedFailures = 6;
  struct Worst {
    double relative = 0.0, abs = 0.0;
    std::string config;
    int comparisons = 0, failures = 0;
  };
  std::map<std::string, Worst> worst_;
};

// One operand on both devices, identical values: the whole (N, C + extra, H, W) buffer, of which
// the op sees channels [c0, c0 + C) when `block` (a strided view, as in fused concatenation). The
// channels outside the block hold random values that must be neither read nor written.
struct Operand {
  Tensor<Cpu> cpu;
  Tensor<Cuda> gpu;
  int c0 = 0, c = 0;
  Operand(Shape s, bool block, std::uint64_t seed, double lo = -1.0, double hi = 1.0) {
    const int extra = block && s.n > 0 ? 3 : 0;
    c0 = block ? 2 : 0;
    c = s.c;
    cpu = random_tensor(Shape{s.n, s.c + extra, s.h, s.w}, seed, lo, hi);
    gpu = to_device(cpu);
  }
  View<Cpu> host() { return cpu.view().channels(c0, c); }
  View<Cuda> dev() { return gpu.view().channels(c0, c); }
};

std::string view_name(bool block) { return block ? "block" : "whole"; }
std::string shape_name(const Shape& s) {
  std::ostringstream o;
  o << "N" << s.n << " C" << s.c << " " << s.h << "x" << s.w;
  return o.str();
}

// ------------------------------------------------------------------------ pointwise and pooling
const std::vector<Shape> kPointwiseShapes = {
    {1, 1, 1, 1}, {2, 3, 5, 7}, {3, 16, 33, 65}, {2, 5, 64, 64}, {4, 2, 1, 300}};

TEST_CASE("cuda pointwise ops match the CPU bit for bit (sigmoid to float rounding)") {
  Report report;
  std::uint64_t seed = 1000;
  for (const Shape& s : kPointwiseShapes)
    for (bool bx : {false, true})
      for (bool by : {false, true}) {
        const std::string cfg = shape_name(s) + " x " + view_name(bx) + " y " + view_name(by);
        {
          Operand y(s, by, ++seed);
          report.run("fill", cfg, [&] {
            ops::fill<Cpu>(y.host(), 0.375f);
            ops::fill<Cuda>(y.dev(), 0.375f);
          });
          report.compare("fill", cfg, y.cpu, y.gpu, 0.0);
        }
        {
          Operand x(s, bx, ++seed), y(s, by, ++seed);
          report.run("copy", cfg, [&] {
            ops::copy<Cpu>(x.host(), y.host());
            ops::copy<Cuda>(x.dev(), y.dev());
          });
          report.compare("copy", cfg, y.cpu, y.gpu, 0.0);
        }
        {
          Operand x(s, bx, ++seed), y(s, by, ++seed);
          report.run("add", cfg, [&] {
            ops::add<Cpu>(x.host(), y.host());
            ops::add<Cuda>(x.dev(), y.dev());
          });
          report.compare("add", cfg, y.cpu, y.gpu, 0.0);
        }
        {
          Operand x(s, bx, ++seed), y(s, by, ++seed);
          report.run("relu_forward", cfg, [&] {
            ops::relu_forward<Cpu>(x.host(), y.host());
            ops::relu_forward<Cuda>(x.dev(), y.dev());
          });
          report.compare("relu_forward", cfg, y.cpu, y.gpu, 0.0);
          // In place (x and y alias).
          report.run("relu_forward in place", cfg, [&] {
            ops::relu_forward<Cpu>(x.host(), x.host());
            ops::relu_forward<Cuda>(x.dev(), x.dev());
          });
          report.compare("relu_forward in place", cfg, x.cpu, x.gpu, 0.0);
        }
        for (bool acc : {false, true}) {
          const std::string c2 = cfg + (acc ? " accumulate" : " overwrite");
          Operand y(s, bx, ++seed), dy(s, by, ++seed), dx(s, by, ++seed);
          report.run("relu_backward", c2, [&] {
            ops::relu_backward<Cpu>(y.host(), dy.host(), dx.host(), acc);
            ops::relu_backward<Cuda>(y.dev(), dy.dev(), dx.dev(), acc);
          });
          report.compare("relu_backward", c2, dx.cpu, dx.gpu, 0.0);
        }
        {
          Operand x(s, bx, ++seed, -40.0, 40.0), y(s, by, ++seed);
          report.run("sigmoid_forward", cfg, [&] {
            ops::sigmoid_forward<Cpu>(x.host(), y.host());
            ops::sigmoid_forward<Cuda>(x.dev(), y.dev());
          });
          // expf differs from the host's exp by an ulp or two.
          report.compare("sigmoid_forward", cfg, y.cpu, y.gpu, 1e-6);
        }
      }
  {  // Tensor<Cuda>::fill and zero, host transfers.
    Tensor<Cuda> t(Shape{2, 3, 4, 5}, 2.5f);
    Tensor<Cpu> expected(Shape{2, 3, 4, 5}, 2.5f);
    report.compare("Tensor::fill", "2x3x4x5", expected, t, 0.0);
    t.zero();
    expected.zero();
    report.compare("Tensor::zero", "2x3x4x5", expected, t, 0.0);
    const Tensor<Cpu> r = random_tensor(Shape{3, 1, 7, 11}, 5);
    report.compare("copy_from_host/to_host round trip", "3x1x7x11", r, to_device(r), 0.0);
    Tensor<Cuda> copied = to_device(r);  // device-to-device copy constructor
    Tensor<Cuda> assigned;
    assigned = copied;
    report.compare("Tensor<Cuda> copy", "3x1x7x11", r, Tensor<Cuda>(copied), 0.0);
    report.compare("Tensor<Cuda> assignment", "3x1x7x11", r, assigned, 0.0);
  }
}

TEST_CASE("cuda max-pool matches the CPU bit for bit, ties routed to the first maximum") {
  Report report;
  std::uint64_t seed = 2000;
  const std::vector<Shape> shapes = {{1, 1, 2, 2}, {2, 3, 6, 10}, {2, 16, 32, 48}, {3, 5, 64, 2}};
  for (const Shape& s : shapes)
    for (bool ties : {false, true})
      for (bool bin : {false, true})
        for (bool bout : {false, true}) {
          const Shape pooled{s.n, s.c, s.h / 2, s.w / 2};
          const std::string cfg = shape_name(s) +
                                  (ties ? " values in {-2..2} (ties)" : " uniform") + " x/dx " +
                                  view_name(bin) + " y/dy " + view_name(bout);
          Operand x(s, bin, ++seed);
          if (ties) {
            x.cpu = random_levels(x.cpu.shape(), ++seed, -2, 2);
            x.gpu = to_device(x.cpu);
          }
          Operand y(pooled, bout, ++seed);
          report.run("maxpool2x2_forward", cfg, [&] {
            ops::maxpool2x2_forward<Cpu>(x.host(), y.host());
            ops::maxpool2x2_forward<Cuda>(x.dev(), y.dev());
          });
          report.compare("maxpool2x2_forward", cfg, y.cpu, y.gpu, 0.0);
          // Backward from the CPU's y on both sides, so the inputs are identical.
          y.gpu = to_device(y.cpu);
          for (bool acc : {false, true}) {
            const std::string c2 = cfg + (acc ? " accumulate" : " overwrite");
            Operand dy(pooled, bout, ++seed), dx(s, bin, ++seed);
            report.run("maxpool2x2_backward", c2, [&] {
              ops::maxpool2x2_backward<Cpu>(x.host(), y.host(), dy.host(), dx.host(), acc);
              ops::maxpool2x2_backward<Cuda>(x.dev(), y.dev(), dy.dev(), dx.dev(), acc);
            });
            report.compare("maxpool2x2_backward", c2, dx.cpu, dx.gpu, 0.0);
          }
        }
}

// ------------------------------------------------------------------------------ convolutions
struct ConvCase {
  int n, cin, cout, h, w;
};
const std::vector<ConvCase> kConvCases = {
    {1, 1, 1, 1, 1},   {2, 3, 8, 9, 12},   {2, 8, 5, 16, 16},
    {1, 16, 32, 7, 5}, {3, 35, 8, 32, 48}, {2, 16, 1, 32, 48},  // the logit head's shape
    {2, 64, 48, 4, 6},
};

// The convolution ops compare to this bound, relative to the CPU result's largest magnitude.
constexpr double kConvTol = 1e-4;

void conv2d_grid(Report& report, const std::vector<ConvCase>& cases, const std::string& tag) {
  std::uint64_t seed = 3000;
  Tensor<Cpu> scratch_cpu;
  Tensor<Cuda> scratch_gpu;  // one scratch for all: reuse across shapes is part of the test
  for (const ConvCase& c : cases)
    for (int k : {1, 3})
      for (bool bx : {false, true})
        for (bool by : {false, true}) {
          const Shape xs{c.n, c.cin, c.h, c.w}, ys{c.n, c.cout, c.h, c.w};
          std::ostringstream base;
          base << tag << "N" << c.n << " Cin" << c.cin << " Cout" << c.cout << " " << c.h << "x"
               << c.w << " k" << k << " in " << view_name(bx) << " out " << view_name(by);
          Operand w(Shape{c.cout, c.cin, k, k}, false, ++seed);
          Operand b(Shape{1, c.cout, 1, 1}, false, ++seed);
          for (bool bias : {false, true})
            for (Act act : {Act::None, Act::Relu}) {
              const std::string cfg = base.str() + (bias ? " bias" : " no-bias") +
                                      (act == Act::Relu ? " relu" : " identity");
              Operand x(xs, bx, ++seed), y(ys, by, ++seed);
              report.run("conv2d_forward", cfg, [&] {
                ops::conv2d_forward<Cpu>(x.host(), w.host(),
                                         bias ? CView<Cpu>(b.host()) : CView<Cpu>{}, y.host(), act,
                                         scratch_cpu);
                ops::conv2d_forward<Cuda>(x.dev(), w.dev(),
                                          bias ? CView<Cuda>(b.dev()) : CView<Cuda>{}, y.dev(), act,
                                          scratch_gpu);
              });
              report.compare("conv2d_forward", cfg, y.cpu, y.gpu, kConvTol);
            }
          for (bool acc : {false, true}) {
            const std::string cfg = base.str() + (acc ? " accumulate" : " overwrite");
            Operand dy(ys, by, ++seed), dx(xs, bx, ++seed);
            report.run("conv2d_backward_data", cfg, [&] {
              ops::conv2d_backward_data<Cpu>(dy.host(), w.host(), dx.host(), acc, scratch_cpu);
              ops::conv2d_backward_data<Cuda>(dy.dev(), w.dev(), dx.dev(), acc, scratch_gpu);
            });
            report.compare("conv2d_backward_data", cfg, dx.cpu, dx.gpu, kConvTol);
          }
          for (bool bias : {false, true}) {
            const std::string cfg = base.str() + (bias ? " db" : " no-db");
            Operand x(xs, bx, ++seed), dy(ys, by, ++seed);
            Operand dw(w.cpu.shape(), false, ++seed), db(b.cpu.shape(), false, ++seed);
            report.run("conv2d_backward_params", cfg, [&] {
              ops::conv2d_backward_params<Cpu>(x.host(), dy.host(), dw.host(),
                                               bias ? db.host() : View<Cpu>{}, scratch_cpu);
              ops::conv2d_backward_params<Cuda>(x.dev(), dy.dev(), dw.dev(),
                                                bias ? db.dev() : View<Cuda>{}, scratch_gpu);
            });
            report.compare("conv2d_backward_params dw", cfg, dw.cpu, dw.gpu, kConvTol);
            // Also checks that no db is touched when none is given.
            report.compare("conv2d_backward_params db", cfg, db.cpu, db.gpu, kConvTol);
          }
        }
}

void conv_transpose_grid(Report& report, const std::vector<ConvCase>& cases,
                         const std::string& tag) {
  std::uint64_t seed = 4000;
  Tensor<Cpu> scratch_cpu;
  Tensor<Cuda> scratch_gpu;
  for (const ConvCase& c : cases)
    for (bool bx : {false, true})
      for (bool by : {false, true}) {
        const Shape xs{c.n, c.cin, c.h, c.w}, ys{c.n, c.cout, 2 * c.h, 2 * c.w};
        std::ostringstream base;
        base << tag << "N" << c.n << " Cin" << c.cin << " Cout" << c.cout << " " << c.h << "x"
             << c.w << " -> " << 2 * c.h << "x" << 2 * c.w << " in " << view_name(bx) << " out "
             << view_name(by);
        Operand w(Shape{c.cin, c.cout, 2, 2}, false, ++seed);
        Operand b(Shape{1, c.cout, 1, 1}, false, ++seed);
        for (bool bias : {false, true}) {
          const std::string cfg = base.str() + (bias ? " bias" : " no-bias");
          Operand x(xs, bx, ++seed), y(ys, by, ++seed);
          report.run("conv_transpose2x2_forward", cfg, [&] {
            ops::conv_transpose2x2_forward<Cpu>(x.host(), w.host(),
                                                bias ? CView<Cpu>(b.host()) : CView<Cpu>{},
                                                y.host(), scratch_cpu);
            ops::conv_transpose2x2_forward<Cuda>(x.dev(), w.dev(),
                                                 bias ? CView<Cuda>(b.dev()) : CView<Cuda>{},
                                                 y.dev(), scratch_gpu);
          });
          report.compare("conv_transpose2x2_forward", cfg, y.cpu, y.gpu, kConvTol);
        }
        for (bool acc : {false, true}) {
          const std::string cfg = base.str() + (acc ? " accumulate" : " overwrite");
          Operand dy(ys, by, ++seed), dx(xs, bx, ++seed);
          report.run("conv_transpose2x2_backward_data", cfg, [&] {
            ops::conv_transpose2x2_backward_data<Cpu>(dy.host(), w.host(), dx.host(), acc,
                                                      scratch_cpu);
            ops::conv_transpose2x2_backward_data<Cuda>(dy.dev(), w.dev(), dx.dev(), acc,
                                                       scratch_gpu);
          });
          report.compare("conv_transpose2x2_backward_data", cfg, dx.cpu, dx.gpu, kConvTol);
        }
        for (bool bias : {false, true}) {
          const std::string cfg = base.str() + (bias ? " db" : " no-db");
          Operand x(xs, bx, ++seed), dy(ys, by, ++seed);
          Operand dw(w.cpu.shape(), false, ++seed), db(b.cpu.shape(), false, ++seed);
          report.run("conv_transpose2x2_backward_params", cfg, [&] {
            ops::conv_transpose2x2_backward_params<Cpu>(
                x.host(), dy.host(), dw.host(), bias ? db.host() : View<Cpu>{}, scratch_cpu);
            ops::conv_transpose2x2_backward_params<Cuda>(
                x.dev(), dy.dev(), dw.dev(), bias ? db.dev() : View<Cuda>{}, scratch_gpu);
          });
          report.compare("conv_transpose2x2_backward_params dw", cfg, dw.cpu, dw.gpu, kConvTol);
          report.compare("conv_transpose2x2_backward_params db", cfg, db.cpu, db.gpu, kConvTol);
        }
      }
}

// Restores the chunk size when a test that lowered it ends, even by an exception.
struct ChunkLimit {
  std::size_t saved = cuda::conv_chunk_floats;
  explicit ChunkLimit(std::size_t floats) { cuda::conv_chunk_floats = floats; }
  ~ChunkLimit() { cuda::conv_chunk_floats = saved; }
};

TEST_CASE("cuda conv2d forward / backward data / backward params match the CPU") {
  Report report;
  conv2d_grid(report, kConvCases, "");
}

TEST_CASE("cuda conv2d with im2col split into one-image chunks matches the CPU") {
  Report report;
  ChunkLimit small(1);  // every chunk is a single image
  conv2d_grid(report, {{3, 5, 7, 6, 10}, {4, 2, 3, 8, 4}}, "chunked ");
  conv_transpose_grid(report, {{3, 5, 7, 3, 5}}, "chunked ");
}

TEST_CASE("cuda transposed 2x2 conv forward / backward data / backward params match the CPU") {
  Report report;
  conv_transpose_grid(report,
                      {{1, 1, 1, 1, 1},
                       {2, 4, 3, 5, 7},
                       {2, 16, 8, 8, 12},
                       {3, 32, 16, 16, 24},
                       {2, 64, 128, 2, 3}},
                      "");
}

// ------------------------------------------------------------------------------ optimisers
TEST_CASE("cuda adam_update and sgd_update match the CPU") {
  Report report;
  std::uint64_t seed = 5000;
  for (int size : {1, 1000, 100003}) {
    const Shape s{1, 1, 1, size};
    const std::string cfg = "size " + std::to_string(size);
    {
      Operand p(s, false, ++seed), g(s, false, ++seed), m(s, false, ++seed, -0.1, 0.1);
      Operand v(s, false, ++seed, 0.0, 0.01);
      report.run("adam_update", cfg, [&] {
        ops::adam_update<Cpu>(p.host(), g.host(), m.host(), v.host(), 1e-3f, 0.9f, 0.999f, 1e-7f);
        ops::adam_update<Cuda>(p.dev(), g.dev(), m.dev(), v.dev(), 1e-3f, 0.9f, 0.999f, 1e-7f);
      });
      report.compare("adam_update p", cfg, p.cpu, p.gpu, 1e-6);
      report.compare("adam_update m", cfg, m.cpu, m.gpu, 1e-6);
      report.compare("adam_update v", cfg, v.cpu, v.gpu, 1e-6);
    }
    {
      Operand p(s, false, ++seed), g(s, false, ++seed), vel(s, false, ++seed, -0.1, 0.1);
      report.run("sgd_update", cfg, [&] {
        ops::sgd_update<Cpu>(p.host(), g.host(), vel.host(), 0.01f, 0.9f);
        ops::sgd_update<Cuda>(p.dev(), g.dev(), vel.dev(), 0.01f, 0.9f);
      });
      report.compare("sgd_update p", cfg, p.cpu, p.gpu, 1e-6);
      report.compare("sgd_update vel", cfg, vel.cpu, vel.gpu, 1e-6);
    }
  }
}

// ------------------------------------------------------------------------------ models
// Model tensors compare to 1e-4 of their largest magnitude (the bound of test_torch_parity).
constexpr double kModelTol = 1e-4;

template <class CpuModel, class GpuModel>
void compare_models(const Shape& input) {
  Report report;
  CpuModel cpu_model;
  GpuModel gpu_model;
  const std::string name = cpu_model.name() + " " + shape_name(input);
  CAPTURE(name);
  cpu_model.init(7);
  gpu_model.init(7);
  ParamList<Cpu> pc = cpu_model.parameters();
  ParamList<Cuda> pg = gpu_model.parameters();
  REQUIRE(pc.size() == pg.size());
  // The same seed gives the same weights on both devices, bit for bit.
  for (std::size_t i = 0; i < pc.size(); ++i) {
    REQUIRE(pc[i].name == pg[i].name);
    report.compare("init (bit-exact)", name + " " + pc[i].name, pc[i].param->value,
                   pg[i].param->value, 0.0);
    if (pc[i].name.find(".srnn.") != std::string::npos) {
      set_strong_srnn_weights(pc[i].param->value, 100 + i);
      pg[i].param->value.copy_from_host(pc[i].param->value);
    }
  }
  const Tensor<Cpu> x = random_tensor(input, 11, 0.0, 1.0);
  const Tensor<Cpu> dlogits = random_tensor(Shape{input.n, 1, input.h, input.w}, 12);
  const Tensor<Cuda> x_gpu = to_device(x), dlogits_gpu = to_device(dlogits);

  cpu_model.zero_grad();
  gpu_model.zero_grad();
  Tensor<Cpu> logits_cpu;
  Tensor<Cuda> logits_gpu;
  report.run("model forward", name, [&] {
    logits_cpu = Tensor<Cpu>::from(cpu_model.forward(x));
    logits_gpu = Tensor<Cuda>::from(gpu_model.forward(x_gpu));
  });
  report.compare("model logits", name, logits_cpu, logits_gpu, kModelTol, 1e-3);
  report.run("model backward", name, [&] {
    cpu_model.backward(dlogits);
    gpu_model.backward(dlogits_gpu);
  });
  for (std::size_t i = 0; i < pc.size(); ++i)
    report.compare("model gradient", name + " " + pc[i].name, pc[i].param->grad, pg[i].param->grad,
                   kModelTol, 1e-3);

  // Two Adam steps (bias correction at t = 1 and 2) from the same gradients: the GPU model gets
  // the CPU's gradients, so only the update itself is compared.
  for (std::size_t i = 0; i < pc.size(); ++i) pg[i].param->grad.copy_from_host(pc[i].param->grad);
  Adam<Cpu> adam_cpu;
  Adam<Cuda> adam_gpu;
  report.run("Adam step", name, [&] {
    for (int step = 0; step < 2; ++step) {
      adam_cpu.step(pc);
      adam_gpu.step(pg);
    }
  });
  for (std::size_t i = 0; i < pc.size(); ++i) {
    report.compare("Adam parameter after 2 steps", name + " " + pc[i].name, pc[i].param->value,
                   pg[i].param->value, 1e-5, 1e-3);
    for (int slot = 0; slot < 2; ++slot)
      report.compare(slot == 0 ? "Adam m" : "Adam v", name + " " + pc[i].name,
                     adam_cpu.state_tensor(i, slot), adam_gpu.state_tensor(i, slot), 1e-5);
  }
}

const Shape kModelInput{2, 3, 32, 48};

TEST_CASE("cuda unet2d (Low) logits, gradients and Adam step match the CPU") {
  compare_models<UNet2D<Filters::Low, Cpu>, UNet2D<Filters::Low, Cuda>>(kModelInput);
}
TEST_CASE("cuda unet2d_res (width 4) logits, gradients and Adam step match the CPU") {
  compare_models<UNet2DRes<Filters{4}, Cpu>, UNet2DRes<Filters{4}, Cuda>>(kModelInput);
}
TEST_CASE("cuda crunet_res (width 4) logits, gradients and Adam step match the CPU") {
  compare_models<CRUNetRes<Filters{4}, Cpu>, CRUNetRes<Filters{4}, Cuda>>(kModelInput);
}
TEST_CASE("cuda crunet_res (Low) logits, gradients and Adam step match the CPU") {
  compare_models<CRUNetRes<Filters::Low, Cpu>, CRUNetRes<Filters::Low, Cuda>>(kModelInput);
}
// Two declared models (tests/composed_models.hpp): paper-rule SRNN skips on every level; depth 4
// with one input channel.
TEST_CASE("cuda srnn_every_level (width 4) logits, gradients and Adam step match the CPU") {
  compare_models<testing::SrnnEveryLevel<4, Cpu>, testing::SrnnEveryLevel<4, Cuda>>(kModelInput);
}
TEST_CASE("cuda grey_res4 logits, gradients and Adam step match the CPU") {
  compare_models<testing::GreyRes4<8, Cpu>, testing::GreyRes4<8, Cuda>>(Shape{2, 1, 32, 48});
}

}  // namespace

#include "cuda_test_main.hpp"

int main(int argc, char** argv) { return run_cuda_tests("test_cuda_ops", argc, argv); }
