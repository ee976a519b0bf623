// GPU timings of the original's four models on the library's CUDA backend.
//
//   bench_cuda [--models a,b,...] [--batch 2] [--height 160] [--width 192] [--steps 10]
//              [--warmup 3] [--infer-batch 8] [--json FILE]
//
// Train step = forward + BCE-with-logits loss and its gradient + backward + Adam, as the trainer
// runs it: the loss is computed on the host, so the logits come down and their gradient goes up
// every step (both included in the time). Inference: forward only, batch 1 latency and batch
// --infer-batch throughput. Times are medians over --steps runs after --warmup runs, each ended by
// cudaDeviceSynchronize. GPU memory: the device's used memory after the runs minus before the model
// was built (cudaMemGetInfo), i.e. parameters, optimiser state, activations and workspaces.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <unetsrnn/cuda.hpp>
#include <unetsrnn/train/loss.hpp>
#include <unetsrnn/train/optim.hpp>
#include <vector>

using namespace unetsrnn;

namespace {

struct Options {
  std::vector<std::string> models{"unet2d_lw", "unet2d_res_hw", "crunet_res_hw", "crunet_res_lw"};
  int batch = 2, height = 160, width = 192, steps = 10, warmup = 3, infer_batch = 8;
  std::string json;
};

[[noreturn]] void usage(const std::string& why) {
  std::fprintf(stderr,
               "bench_cuda: %s\nusage: bench_cuda [--models a,b,...] [--batch N] [--height H] "
               "[--width W] [--steps S] [--warmup K] [--infer-batch N] [--json FILE]\n",
               why.c_str());
  std::exit(why == "help" ? 0 : 2);
}

int positive(const std::string& flag, const std::string& value) {
  try {
    std::size_t used = 0;
    const int v = std::stoi(value, &used);
    if (used == value.size() && v > 0) return v;
  } catch (const std::exception&) {
  }
  usage(flag + " needs a positive integer, got '" + value + "'");
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") usage("help");
    if (i + 1 >= argc) usage(arg + " needs a value");
    const std::string value = argv[++i];
    if (arg == "--models") {
      o.models.clear();
      std::stringstream list(value);
      for (std::string m; std::getline(list, m, ',');) o.models.push_back(m);
    } else if (arg == "--batch") {
      o.batch = positive(arg, value);
    } else if (arg == "--height") {
      o.height = positive(arg, value);
    } else if (arg == "--width") {
      o.width = positive(arg, value);
    } else if (arg == "--steps") {
      o.steps = positive(arg, value);
    } else if (arg == "--warmup") {
      o.warmup = positive(arg, value);
    } else if (arg == "--infer-batch") {
      o.infer_batch = positive(arg, value);
    } else if (arg == "--json") {
      o.json = value;
    } else {
      usage("unknown option " + arg);
    }
  }
  return o;
}

// Median and fastest of `steps` timed runs of f after `warmup` runs, each ended by a device sync.
template <class F>
std::pair<double, double> time_ms(F&& f, int steps, int warmup) {
  for (int i = 0; i < warmup; ++i) f();
  cuda::check(cudaDeviceSynchronize(), "bench_cuda: warm-up");
  std::vector<double> ms;
  for (int i = 0; i < steps; ++i) {
    const auto start = std::chrono::steady_clock::now();
    f();
    cuda::check(cudaDeviceSynchronize(), "bench_cuda: timed run");
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
                     .count());
  }
  std::sort(ms.begin(), ms.end());
  return {ms[ms.size() / 2], ms.front()};
}

double used_mib() {
  std::size_t free_bytes = 0, total_bytes = 0;
  cuda::check(cudaMemGetInfo(&free_bytes, &total_bytes), "bench_cuda: cudaMemGetInfo");
  return static_cast<double>(total_bytes - free_bytes) / (1024.0 * 1024.0);
}

Tensor<Cpu> random_host(Shape s, Rng& rng, double lo, double hi) {
  Tensor<Cpu> t(s);
  for (float& v : t) v = static_cast<float>(rng.uniform(lo, hi));
  return t;
}

struct Result {
  std::string model;
  std::size_t params = 0;
  double step_ms = 0, step_min_ms = 0, infer_ms = 0, infer_min_ms = 0, batch_img_per_s = 0;
  double gflop_step = 0, gpu_mib = 0;
};

Result bench_model(const std::string& name, const Options& o) {
  const double before = used_mib();
  auto model = make_model<Cuda>(name);
  Result r;
  r.model = name;
  r.params = model->parameter_count();
  model->init(1);
  ParamList<Cuda> params = model->parameters();
  Adam<Cuda> adam;
  Rng rng(2);
  Tensor<Cuda> x, xb, x1, dlogits;
  x.copy_from_host(random_host(Shape{o.batch, 3, o.height, o.width}, rng, 0.0, 1.0));
  x1.copy_from_host(random_host(Shape{1, 3, o.height, o.width}, rng, 0.0, 1.0));
  xb.copy_from_host(random_host(Shape{o.infer_batch, 3, o.height, o.width}, rng, 0.0, 1.0));
  Tensor<Cpu> masks(Shape{o.batch, 1, o.height, o.width});
  for (float& v : masks) v = rng.uniform(0.0, 1.0) > 0.5 ? 1.0f : 0.0f;
  Tensor<Cpu> logits_host, dlogits_host(masks.shape());

  auto step = [&] {
    adam.zero_grad(params);
    CView<Cuda> logits = model->forward(x);
    logits_host.resize(logits.shape);  // the logits are a whole tensor: copy them down as is
    DeviceMemory<Cuda>::download(logits_host.data(), logits.data, logits.shape.size());
    compute_loss(LossKind::Bce, logits_host, masks, dlogits_host);
    dlogits.copy_from_host(dlogits_host);
    model->backward(dlogits);
    adam.step(params);
  };
  step();
  ops::reset_flop_counter();
  step();
  r.gflop_step = static_cast<double>(ops::flops_counted()) / 1e9;
  std::tie(r.step_ms, r.step_min_ms) = time_ms(step, o.steps, o.warmup);
  std::tie(r.infer_ms, r.infer_min_ms) = time_ms([&] { model->forward(x1); }, o.steps, o.warmup);
  const double batch_ms = time_ms([&] { model->forward(xb); }, std::max(1, o.steps / 2), 1).first;
  r.batch_img_per_s = 1e3 * o.infer_batch / batch_ms;
  r.gpu_mib = used_mib() - before;
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  if (!cuda::device_available()) {
    std::fprintf(stderr, "bench_cuda: no CUDA device\n");
    return 1;
  }
  cudaDeviceProp prop{};
  cuda::check(cudaGetDeviceProperties(&prop, 0), "bench_cuda: cudaGetDeviceProperties");
  std::printf("bench_cuda: %s, batch %d, %dx%d, median of %d steps after %d warm-up\n", prop.name,
              o.batch, o.height, o.width, o.steps, o.warmup);
  std::printf("%-15s %10s %9s %9s %9s %9s %10s %9s\n", "model", "params", "step ms", "GFLOP",
              "GFLOP/s", "infer ms", "img/s b", "GPU MiB");
  std::ostringstream json;
  json << "{\"device\": \"" << prop.name << "\", \"batch\": " << o.batch
       << ", \"height\": " << o.height << ", \"width\": " << o.width
       << ", \"infer_batch\": " << o.infer_batch << ", \"models\": [";
  for (std::size_t i = 0; i < o.models.size(); ++i) {
    try {
      const Result r = bench_model(o.models[i], o);
      std::printf("%-15s %10zu %9.2f %9.2f %9.0f %9.2f %10.1f %9.0f\n", r.model.c_str(), r.params,
                  r.step_ms, r.gflop_step, r.gflop_step / r.step_ms * 1e3, r.infer_ms,
                  r.batch_img_per_s, r.gpu_mib);
      std::fflush(stdout);
      json << (i ? ", " : "") << "{\"model\": \"" << r.model << "\", \"params\": " << r.params
           << ", \"train_step_ms\": " << r.step_ms << ", \"train_step_ms_min\": " << r.step_min_ms
           << ", \"gflop_step\": " << r.gflop_step << ", \"infer_b1_ms\": " << r.infer_ms
           << ", \"infer_b1_ms_min\": " << r.infer_min_ms
           << ", \"infer_batch_img_per_s\": " << r.batch_img_per_s << ", \"gpu_mib\": " << r.gpu_mib
           << "}";
    } catch (const std::exception& e) {
      std::fprintf(stderr, "bench_cuda: %s: %s\n", o.models[i].c_str(), e.what());
      return 1;
    }
  }
  json << "]}\n";
  if (!o.json.empty()) {
    std::ofstream out(o.json);
    out << json.str();
    if (!out) {
      std::fprintf(stderr, "bench_cuda: cannot write %s\n", o.json.c_str());
      return 1;
    }
  }
  return 0;
}
