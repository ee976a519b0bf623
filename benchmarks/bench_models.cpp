// Benchmark of the CPU path: the machine's FMA peak per vector width, the SGEMM rate Eigen reaches
// here, per-layer times at the models' shapes, and per-model training-step time, inference latency
// / throughput, FLOPs, achieved GFLOP/s (also as a share of the FMA peak) and peak memory.
//
//   bench_models [--models a,b,...] [--batch 2] [--height 160] [--width 192] [--steps 5]
//                [--warmup 1] [--infer-batch 8] [--layer-width 32] [--threads N]
//                [--isa avx512|avx2|portable] [--conv-algo auto|direct|winograd|winograd4]
//                [--sections peak,gemm,layers,models] [--json FILE]
//
// The kernels run the CPU path chosen at start-up (ops/cpu/isa.hpp), printed first; --isa (or
// UNETSRNN_CPU_ISA) forces one. The 3x3 convolutions run the algorithm printed next to it
// (ops/cpu/conv_algo.hpp; --conv-algo or UNETSRNN_CONV_ALGO forces one); the layers section times
// the 3x3 forward and backward-data products with each algorithm, its GFLOP/s counting the direct
// products' FLOPs (for Winograd an effective rate). The peak probe runs independent FMA chains on
// every thread, for 256-bit and (where the CPU has AVX-512) 512-bit vectors; "% peak" divides a
// model's rate by the peak of the widest width the machine has. The models section measures the
// peak itself when the peak section is not asked for, so that each model's own process reports its
// share.
//
// Threads: OMP_NUM_THREADS (or --threads, which sets the OpenMP default). Times are medians over
// --steps runs after --warmup runs (at least one; inference at batch --infer-batch: --steps / 2
// runs; GEMM: best of five). Peak RSS is the process's high-water
// mark (getrusage), so run one model per process for a per-model figure (benchmarks/run_all.sh
// does).
#include <omp.h>
#include <sys/resource.h>

#include <unetsrnn/ops/cpu/conv_algo.hpp>
#include <unetsrnn/ops/cpu/isa.hpp>
#if UNETSRNN_X86
#include <immintrin.h>
#endif

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <string>
#include <tuple>
#include <unetsrnn/ops/cpu/eigen.hpp>
#include <unetsrnn/unetsrnn.hpp>
#include <vector>

using namespace unetsrnn;

namespace {

struct Options {
  std::vector<std::string> models = {"unet2d_lw", "unet2d_res_hw", "crunet_res_hw",
                                     "crunet_res_lw"};  // the original's four
  int batch = 2, height = 160, width = 192, steps = 5, warmup = 1, infer_batch = 8;
  int layer_width = 32;  // base filters of the per-layer shapes (32 = the HW models)
  std::vector<std::string> sections = {"peak", "gemm", "layers", "models"};
  std::string json;
};

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, sep);)
    if (!item.empty()) out.push_back(item);
  return out;
}

[[noreturn]] void usage(const std::string& error) {
  std::cerr << "bench_models: " << error
            << "\nusage: bench_models [--models a,b,...] [--batch N] [--height H] [--width W] "
               "[--steps S] [--warmup K] [--infer-batch N] [--layer-width F] [--threads N] "
               "[--isa avx512|avx2|portable] [--conv-algo auto|direct|winograd|winograd4] "
               "[--sections peak,gemm,layers,models] [--json FILE]\n";
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") usage("help");
    if (i + 1 >= argc) usage("missing value after " + arg);
    const std::string value = argv[++i];
    auto number = [&](int min) {
      int v = 0;
      try {
        v = std::stoi(value);
      } catch (const std::exception&) {
        usage(arg + " needs a number, got '" + value + "'");
      }
      if (v < min) usage(arg + " must be >= " + std::to_string(min));
      return v;
    };
    if (arg == "--models")
      o.models = split(value, ',');
    else if (arg == "--batch")
      o.batch = number(1);
    else if (arg == "--height")
      o.height = number(16);
    else if (arg == "--width")
      o.width = number(16);
    else if (arg == "--steps")
      o.steps = number(1);
    else if (arg == "--warmup")
      o.warmup = number(0);
    else if (arg == "--infer-batch")
      o.infer_batch = number(1);
    else if (arg == "--layer-width")
      o.layer_width = number(1);
    else if (arg == "--threads")
      omp_set_num_threads(number(1));
    else if (arg == "--isa") {
      try {
        cpu::set_isa(cpu::parse_isa(value, "--isa"));
      } catch (const std::invalid_argument& e) {
        usage(e.what());
      }
    } else if (arg == "--conv-algo") {
      try {
        cpu::set_conv_algorithm(cpu::parse_conv_algo(value, "--conv-algo"));
      } catch (const std::invalid_argument& e) {
        usage(e.what());
      }
    } else if (arg == "--sections") {
      o.sections = split(value, ',');
      for (const std::string& s : o.sections)
        if (s != "peak" && s != "gemm" && s != "layers" && s != "models")
          usage("--sections: unknown section '" + s + "': expected peak, gemm, layers or models");
    } else if (arg == "--json")
      o.json = value;
    else
      usage("unknown option " + arg);
  }
  return o;
}

bool wants(const Options& o, const std::string& section) {
  return std::find(o.sections.begin(), o.sections.end(), section) != o.sections.end();
}

double now_ms() {
  using namespace std::chrono;
  return duration<double, std::milli>(steady_clock::now().time_since_epoch()).count();
}

struct Timing {
  double ms = 0;      // median of the timed runs
  double min_ms = 0;  // fastest run: the least disturbed by other load on a shared machine
  double flops = 0;   // convolution FLOPs of one run, as the op table counts them
};

// Times `runs` calls after `warmup` untimed ones (at least one: buffers are allocated then).
Timing measure(const std::function<void()>& fn, int runs, int warmup) {
  for (int i = 0; i < std::max(1, warmup); ++i) fn();
  ops::reset_flop_counter();
  std::vector<double> times;
  for (int i = 0; i < runs; ++i) {
    const double start = now_ms();
    fn();
    times.push_back(now_ms() - start);
  }
  Timing t;
  t.flops = static_cast<double>(ops::flops_counted()) / runs;
  std::sort(times.begin(), times.end());
  t.min_ms = times.front();
  t.ms = runs % 2 ? times[runs / 2] : 0.5 * (times[runs / 2 - 1] + times[runs / 2]);
  return t;
}

double peak_rss_mib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss / 1024.0;  // KiB on Linux
}

void fill_uniform(Tensor<>& t, std::uint64_t seed, double lo, double hi) {
  Rng rng(seed);
  for (float& v : t) v = static_cast<float>(rng.uniform(lo, hi));
}
Tensor<> uniform(Shape s, std::uint64_t seed, double lo = -1.0, double hi = 1.0) {
  Tensor<> t(s);
  fill_uniform(t, seed, lo, hi);
  return t;
}

// The --json output (nlohmann-json, keys in the order written); NaN and infinity become null.
using Json = nlohmann::ordered_json;

// ------------------------------------------------------------------------------------- FMA peak
// kChains independent FMA chains (acc = acc * m + a) per thread: enough to cover the FMA latency
// on every port; the loop keeps them in registers and does nothing else.
#if UNETSRNN_X86
__attribute__((target("avx2,fma"))) float fma_chains_256(long iterations) {
  constexpr int kChains = 12;
  __m256 acc[kChains];
  const __m256 m = _mm256_set1_ps(0.999999f), a = _mm256_set1_ps(1e-6f);
  for (int j = 0; j < kChains; ++j) acc[j] = _mm256_set1_ps(1.0f + 0.01f * j);
  for (long i = 0; i < iterations; ++i)
#pragma GCC unroll 12
    for (int j = 0; j < kChains; ++j) acc[j] = _mm256_fmadd_ps(acc[j], m, a);
  __m256 sum = acc[0];
  for (int j = 1; j < kChains; ++j) sum = _mm256_add_ps(sum, acc[j]);
  return _mm256_cvtss_f32(sum);
}
// Loads and stores only: g++ 12's _mm512_set1_ps and reductions trip -Wuninitialized on their own
// "undefined" vectors (GCC bug 105593).
__attribute__((target("avx512f"))) float fma_chains_512(long iterations) {
  constexpr int kChains = 24;
  float lanes[16];
  __m512 acc[kChains];
  for (int j = 0; j < kChains; ++j) {
    std::fill(lanes, lanes + 16, 1.0f + 0.01f * j);
    acc[j] = _mm512_loadu_ps(lanes);
  }
  std::fill(lanes, lanes + 16, 0.999999f);
  const __m512 m = _mm512_loadu_ps(lanes);
  std::fill(lanes, lanes + 16, 1e-6f);
  const __m512 a = _mm512_loadu_ps(lanes);
  for (long i = 0; i < iterations; ++i)
#pragma GCC unroll 24
    for (int j = 0; j < kChains; ++j) acc[j] = _mm512_fmadd_ps(acc[j], m, a);
  float total = 0.0f;
  for (int j = 0; j < kChains; ++j) {
    _mm512_storeu_ps(lanes, acc[j]);
    total += lanes[0];
  }
  return total;
}
#endif

// GFLOP/s of `chains` (flops_per_iteration each call) on every OpenMP thread at once, best of three
// runs of about 0.2 s; 0 where the CPU lacks the instructions.
double fma_peak(float (*chains)(long), double flops_per_iteration) {
  if (!chains) return 0.0;
  long iterations = 1 << 16;
  for (;;) {  // calibrate on one thread: about 0.2 s per run
    const double start = now_ms();
    volatile float sink = chains(iterations);
    (void)sink;
    const double ms = now_ms() - start;
    if (ms > 20.0 || iterations > (1L << 40)) {
      iterations = static_cast<long>(iterations * 200.0 / std::max(ms, 1e-3));
      break;
    }
    iterations *= 4;
  }
  double best = 0.0;
  for (int run = 0; run < 3; ++run) {
    int threads = 1;
    const double start = now_ms();
#pragma omp parallel
    {
      volatile float sink = chains(iterations);
      (void)sink;
#pragma omp single
      threads = omp_get_num_threads();
    }
    const double ms = now_ms() - start;
    best = std::max(best, threads * flops_per_iteration * iterations / (ms * 1e6));
  }
  return best;
}

struct Peak {
  double gflops_256 = 0, gflops_512 = 0;
  double widest() const { return std::max(gflops_256, gflops_512); }
};
Peak measure_peak() {
  Peak p;
#if UNETSRNN_X86
  if (cpu::isa_supported(cpu::Isa::Avx2)) p.gflops_256 = fma_peak(fma_chains_256, 12 * 8 * 2);
  if (cpu::isa_supported(cpu::Isa::Avx512)) p.gflops_512 = fma_peak(fma_chains_512, 24 * 16 * 2);
#endif
  return p;
}

// ------------------------------------------------------------------------------------- GEMM rate
using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// Best GFLOP/s of C = A * B (M x K times K x N), row-major as the convolutions use it.
double gemm_gflops(int m, int k, int n, int repeats) {
  RowMat a = RowMat::Random(m, k), b = RowMat::Random(k, n), c(m, n);
  c.noalias() = a * b;  // warm-up
  double best = 1e30;
  for (int r = 0; r < repeats; ++r) {
    const double start = now_ms();
    c.noalias() = a * b;
    best = std::min(best, now_ms() - start);
  }
  volatile float sink = c(0, 0);
  (void)sink;
  return 2.0 * m * k * n / (best * 1e6);
}

// ------------------------------------------------------------------------------------- layers
struct LayerResult {
  std::string name, shape;
  double ms = 0, flops = 0;  // flops < 0: not counted (Spatial RNN)
  std::string error;
};

// Times one op (or a group) and its FLOPs as counted by the op table.
LayerResult time_layer(const std::string& name, const std::string& shape,
                       const std::function<void()>& fn, int runs) {
  LayerResult r;
  r.name = name, r.shape = shape;
  try {
    const Timing t = measure(fn, runs, 1);
    r.ms = t.ms, r.flops = t.flops;
  } catch (const std::exception& e) {
    r.error = e.what();
  }
  return r;
}

// SRNN skip link of CR-UNet-Res (seed SRNN, concat, 1x1 conv) forward + backward at one level.
template <int C>
LayerResult time_srnn_skip(int level, int length, Shape x_shape, int runs) {
  SRNNSkip<C, C> skip(length);
  const Tensor<> x = uniform(x_shape, 5, 0.0, 1.0);
  Tensor<> dx(x_shape);
  const Tensor<> dy = uniform(x_shape, 6);
  LayerResult r = time_layer(
      "srnn skip l" + std::to_string(level) + " L=" + std::to_string(length) + " fwd+bwd",
      x_shape.str(),
      [&] {
        skip.forward(x);
        ops::copy<Cpu>(dy, skip.grad());
        skip.backward(dx, false);
      },
      runs);
  return r;
}

std::vector<LayerResult> bench_layers(const Options& o) {
  std::vector<LayerResult> results;
  const int f = o.layer_width, runs = std::max(3, o.steps);
  for (int level = 1; level <= 5; ++level) {
    const int c = f << (level - 1), h = o.height >> (level - 1), w = o.width >> (level - 1);
    const Shape xs{o.batch, c, h, w};
    const Tensor<> x = uniform(xs, 1), wt = uniform(Shape{c, c, 3, 3}, 2, -0.1, 0.1),
                   b = uniform(Shape{1, c, 1, 1}, 3);
    Tensor<> y(xs), dy = uniform(xs, 4), dx(xs), dw(wt.shape()), db(b.shape()), scratch;
    const std::string tag = "conv3x3 l" + std::to_string(level) + " ";
    const cpu::ConvAlgo chosen = cpu::conv_algorithm();
    for (cpu::ConvAlgo algo :
         {cpu::ConvAlgo::Direct, cpu::ConvAlgo::Winograd, cpu::ConvAlgo::Winograd4}) {
      cpu::set_conv_algorithm(algo);
      const std::string name = std::string(" ") + cpu::conv_algo_name(algo);
      results.push_back(time_layer(
          tag + "fwd" + name, xs.str(),
          [&] { ops::conv2d_forward<Cpu>(x, wt, b, y, Act::Relu, scratch); }, runs));
      results.push_back(time_layer(
          tag + "bwd data" + name, xs.str(),
          [&] { ops::conv2d_backward_data<Cpu>(dy, wt, dx, false, scratch); }, runs));
    }
    cpu::set_conv_algorithm(chosen);
    results.push_back(time_layer(
        tag + "bwd params", xs.str(),
        [&] { ops::conv2d_backward_params<Cpu>(x, dy, dw, db, scratch); }, runs));
    if (level == 5) continue;
    // Decoder up-sampling into this level: 2c channels at half resolution to c channels.
    const Shape us{o.batch, 2 * c, h / 2, w / 2};
    const Tensor<> ux = uniform(us, 7), uw = uniform(Shape{2 * c, c, 2, 2}, 8, -0.1, 0.1);
    Tensor<> uy(xs), udx(us), udw(uw.shape()), udb(b.shape());
    results.push_back(time_layer(
        "convT2x2 ->l" + std::to_string(level) + " fwd+bwd", us.str() + "->" + xs.str(),
        [&] {
          ops::conv_transpose2x2_forward<Cpu>(ux, uw, b, uy, scratch);
          ops::conv_transpose2x2_backward_params<Cpu>(ux, dy, udw, udb, scratch);
          ops::conv_transpose2x2_backward_data<Cpu>(dy, uw, udx, false, scratch);
        },
        runs));
  }
  const auto level_shape = [&](int level) {
    return Shape{o.batch, o.layer_width << (level - 1), o.height >> (level - 1),
                 o.width >> (level - 1)};
  };
  // The skip's channel count is a template argument: the HW and LW widths are instantiated.
  if (o.layer_width == 32) {
    results.push_back(time_srnn_skip<128>(3, 32, level_shape(3), runs));
    results.push_back(time_srnn_skip<64>(2, 64, level_shape(2), runs));
  } else if (o.layer_width == 8) {
    results.push_back(time_srnn_skip<32>(3, 32, level_shape(3), runs));
    results.push_back(time_srnn_skip<16>(2, 64, level_shape(2), runs));
  }
  return results;
}

// ------------------------------------------------------------------------------------- models
struct ModelResult {
  std::string name, error;
  std::size_t params = 0;
  double train_ms = 0, train_min_ms = 0, train_flops = 0, infer_ms = 0, infer_min_ms = 0;
  double infer_flops = 0, batch_ms = 0, rss_mib = 0;
};

// Mean binary cross-entropy on logits: returns the loss, writes dL/dlogits = (sigmoid(z) - y) / n.
double bce_with_logits(CView<> z, const Tensor<>& target, Tensor<>& dz) {
  const std::size_t n = target.size();
  dz.resize(target.shape());
  double loss = 0.0;
  for (std::size_t i = 0; i < n; ++i) {
    const float x = z.data[i], y = target[i];
    loss += std::max(x, 0.0f) - x * y + std::log1p(std::exp(-std::abs(x)));
    dz[i] = (cpu::sigmoid(x) - y) / static_cast<float>(n);
  }
  return loss / static_cast<double>(n);
}

ModelResult bench_model(const std::string& name, const Options& o) {
  ModelResult r;
  r.name = name;
  try {
    auto model = make_model(name);
    model->init(1);
    auto params = model->parameters();
    r.params = model->parameter_count();
    std::vector<Tensor<>> m, v;
    for (auto& p : params) {
      m.emplace_back(p.param->value.shape(), 0.0f);
      v.emplace_back(p.param->value.shape(), 0.0f);
    }
    const Shape xs{o.batch, 3, o.height, o.width};
    const Tensor<> x = uniform(xs, 11, 0.0, 1.0);
    Tensor<> target(Shape{o.batch, 1, o.height, o.width}), dlogits;
    fill_uniform(target, 12, 0.0, 1.0);
    for (float& t : target) t = t > 0.5f ? 1.0f : 0.0f;

    int step = 0;
    const float lr = 1e-5f, beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f;
    auto train_step = [&] {
      model->zero_grad();
      bce_with_logits(model->forward(x), target, dlogits);
      model->backward(dlogits);
      ++step;
      const float lr_t = lr * std::sqrt(1.0f - std::pow(beta2, static_cast<float>(step))) /
                         (1.0f - std::pow(beta1, static_cast<float>(step)));
      for (std::size_t i = 0; i < params.size(); ++i)
        ops::adam_update<Cpu>(params[i].param->value, params[i].param->grad, m[i], v[i], lr_t,
                              beta1, beta2, eps);
    };
    const Timing train = measure(train_step, o.steps, o.warmup);
    r.train_ms = train.ms, r.train_min_ms = train.min_ms, r.train_flops = train.flops;
    r.rss_mib = peak_rss_mib();

    const Tensor<> x1 = uniform(Shape{1, 3, o.height, o.width}, 13, 0.0, 1.0);
    const Timing infer = measure([&] { model->forward(x1); }, o.steps, o.warmup);
    r.infer_ms = infer.ms, r.infer_min_ms = infer.min_ms, r.infer_flops = infer.flops;
    const Tensor<> xb = uniform(Shape{o.infer_batch, 3, o.height, o.width}, 14, 0.0, 1.0);
    r.batch_ms = measure([&] { model->forward(xb); }, std::max(1, o.steps / 2), 1).ms;
    r.rss_mib = std::max(r.rss_mib, peak_rss_mib());
  } catch (const std::exception& e) {
    r.error = e.what();
  }
  return r;
}

std::string fmt(const char* format, double v) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, format, v);
  return buffer;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  const int threads = omp_get_max_threads();
  std::printf(
      "bench_models: %d OpenMP threads (Eigen %d), batch %d, %dx%d, %d steps after %d "
      "warm-up\nCPU path: %s (the best this CPU runs: %s), 3x3 convolutions: %s\n",
      threads, Eigen::nbThreads(), o.batch, o.height, o.width, o.steps, o.warmup,
      cpu::active_isa_name(), cpu::isa_name(cpu::best_isa()), cpu::conv_algorithm_name());
  Json root;
  root["threads"] = threads;
  root["eigen_threads"] = Eigen::nbThreads();
  root["cpu_path"] = cpu::active_isa_name();
  root["best_cpu_path"] = cpu::isa_name(cpu::best_isa());
  root["conv_algo"] = cpu::conv_algorithm_name();

  Peak peak;
  if (wants(o, "peak") || wants(o, "models")) {
    peak = measure_peak();
    const auto show = [](double g) { return g > 0 ? fmt("%.1f GFLOP/s", g) : std::string("n/a"); };
    std::printf("\nFMA peak (%d threads, independent chains): 256-bit %s, 512-bit %s\n", threads,
                show(peak.gflops_256).c_str(),
                peak.gflops_512 > 0 ? show(peak.gflops_512).c_str() : "n/a (no AVX-512)");
    root["peak_256_gflops"] = peak.gflops_256;
    root["peak_512_gflops"] = peak.gflops_512;
    root["peak_gflops"] = peak.widest();
  }
  for (const auto& [key, value] :
       {std::pair{"batch", o.batch}, std::pair{"height", o.height}, std::pair{"width", o.width},
        std::pair{"steps", o.steps}, std::pair{"warmup", o.warmup},
        std::pair{"infer_batch", o.infer_batch}})
    root[key] = value;

  double gemm_rate = 0.0;
  if (wants(o, "gemm")) {
    std::printf("\nEigen SGEMM (row-major, best of 5)\n%-22s %10s\n", "M x K x N", "GFLOP/s");
    Json gemms = Json::array();
    for (auto [m, k, n] : {std::tuple{1024, 1024, 1024}, std::tuple{64, 576, 15360},
                           std::tuple{32, 288, 30720}, std::tuple{256, 2304, 960}}) {
      const double rate = gemm_gflops(m, k, n, 5);
      if (m == 1024) gemm_rate = rate;
      std::printf(
          "%-22s %10.1f\n",
          (std::to_string(m) + " x " + std::to_string(k) + " x " + std::to_string(n)).c_str(),
          rate);
      gemms.push_back(Json{{"m", m}, {"k", k}, {"n", n}, {"gflops", rate}});
    }
    root["gemm"] = std::move(gemms);
    root["gemm_rate_gflops"] = gemm_rate;
  }

  if (wants(o, "layers")) {
    std::printf("\nLayers (base width %d, batch %d, FLOPs as counted by the op table)\n",
                o.layer_width, o.batch);
    std::printf("%-30s %-36s %10s %10s\n", "layer", "input shape", "ms", "GFLOP/s");
    Json layers = Json::array();
    for (const LayerResult& l : bench_layers(o)) {
      Json j{{"name", l.name}, {"shape", l.shape}};
      if (!l.error.empty()) {
        std::printf("%-30s %-36s %s\n", l.name.c_str(), l.shape.c_str(),
                    ("n/a: " + l.error).c_str());
        j["error"] = l.error;
        layers.push_back(std::move(j));
        continue;
      }
      const double gflops = l.flops > 0 ? l.flops / (l.ms * 1e6) : NAN;
      std::printf("%-30s %-36s %10.2f %10s\n", l.name.c_str(), l.shape.c_str(), l.ms,
                  l.flops > 0 ? fmt("%.1f", gflops).c_str() : "-");
      j["ms"] = l.ms;
      j["flops"] = l.flops;
      j["gflops"] = gflops;
      layers.push_back(std::move(j));
    }
    root["layers"] = std::move(layers);
  }

  if (wants(o, "models")) {
    std::printf(
        "\nModels: train step = forward + BCE-with-logits grad + backward + Adam "
        "(batch %d); inference batch 1 and %d\n",
        o.batch, o.infer_batch);
    std::printf("%-14s %10s %10s %9s %8s %7s %7s %10s %9s %10s %9s\n", "model", "params", "step ms",
                "GFLOP", "GFLOP/s", "%GEMM", "%peak", "infer ms", "img/s b", "infer GF", "RSS MiB");
    Json models = Json::array();
    for (const auto& name : o.models) {
      const ModelResult r = bench_model(name, o);
      Json j{{"model", name}};
      if (!r.error.empty()) {
        std::printf("%-14s n/a: %s\n", name.c_str(), r.error.c_str());
        j["error"] = r.error;
        models.push_back(std::move(j));
        continue;
      }
      const double gflops = r.train_flops / (r.train_ms * 1e6);
      const double pct = gemm_rate > 0 ? 100.0 * gflops / gemm_rate : NAN;
      const double img_s = 1e3 * o.infer_batch / r.batch_ms;
      const double pct_peak = peak.widest() > 0 ? 100.0 * gflops / peak.widest() : NAN;
      std::printf("%-14s %10zu %10.1f %9.2f %8.1f %7s %7s %10.1f %9.2f %10.2f %9.0f\n",
                  name.c_str(), r.params, r.train_ms, r.train_flops / 1e9, gflops,
                  gemm_rate > 0 ? fmt("%.0f%%", pct).c_str() : "-",
                  peak.widest() > 0 ? fmt("%.0f%%", pct_peak).c_str() : "-", r.infer_ms, img_s,
                  r.infer_flops / 1e9, r.rss_mib);
      j["params"] = r.params;
      for (const auto& [key, value] :
           {std::pair{"train_step_ms", r.train_ms}, std::pair{"train_step_ms_min", r.train_min_ms},
            std::pair{"train_flops", r.train_flops}, std::pair{"train_gflops", gflops},
            std::pair{"pct_of_gemm", pct}, std::pair{"pct_of_peak", pct_peak},
            std::pair{"infer_b1_ms", r.infer_ms}, std::pair{"infer_b1_ms_min", r.infer_min_ms},
            std::pair{"infer_flops", r.infer_flops}, std::pair{"infer_batch_ms", r.batch_ms},
            std::pair{"infer_batch_img_per_s", img_s}, std::pair{"peak_rss_mib", r.rss_mib}})
        j[key] = value;
      models.push_back(std::move(j));
    }
    root["models"] = std::move(models);
  }
  root["peak_rss_mib"] = peak_rss_mib();

  if (!o.json.empty()) {
    std::ofstream out(o.json);
    out << root.dump() << "\n";  // one line (make_results.py reads the last line)
    if (!out.good()) {
      std::fprintf(stderr, "bench_models: cannot write %s\n", o.json.c_str());
      return 1;
    }
  }
  return 0;
}
