// Training on the GPU against training on the CPU: Trainer<Cuda> on the library's synthetic data,
// from the same seed with the same batches (no augmentation), follows Trainer<Cpu> step by step;
// weights files move between devices unchanged; a GPU run resumes from its checkpoint to the same
// weights as an uninterrupted one, and a CPU run can resume it too. Exits with 77 (CTest: skipped)
// where no CUDA device is present.
//
// Passing runs print every step's loss on both devices and the weight differences; failures say
// which step, tensor or file differs and by how much, so one run on a GPU machine is enough.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <unetsrnn/cuda.hpp>
#include <unetsrnn/data/synthetic.hpp>
#include <unetsrnn/train/trainer.hpp>
#include <vector>

using namespace unetsrnn;
namespace fs = std::filesystem;

namespace {

constexpr const char* kModel = "crunet_res_lw";
constexpr int kHeight = 32, kWidth = 48;
constexpr int kBatch = 4;  // 10 training images: batches of 4, 4 and 2 (a short last batch)
constexpr double kLr = 1e-3;

// A scratch folder, removed at the end of the test.
struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& tag) {
    path =
        fs::temp_directory_path() / ("unetsrnn-cuda-train-" + tag + "-" + std::to_string(getpid()));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

struct Data {
  std::vector<Sample> samples = generate_synthetic(16, kHeight, kWidth, 7);
  Split split;
  Data() {
    split.train = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    split.val = {10, 11, 12};
    split.test = {13, 14, 15};
  }
  // Images [first, first + count) stacked into one batch.
  Tensor<Cpu> batch(int first, int count) const {
    Tensor<Cpu> t(Shape{count, 3, kHeight, kWidth});
    const std::size_t image = t.shape().image_size();
    for (int i = 0; i < count; ++i)
      std::copy(samples[first + i].image.begin(), samples[first + i].image.end(),
                t.data() + i * image);
    return t;
  }
};

TrainOptions options(const fs::path& out, int epochs, bool resume) {
  TrainOptions o;
  o.model = kModel;
  o.loss = LossKind::BceSoftDice;
  o.epochs = epochs;
  o.batch = kBatch;
  o.adam.lr = kLr;
  o.seed = 5;
  o.shuffle = true;  // the same order on both devices: it only depends on (seed, epoch)
  o.augmentation.enabled = false;
  o.out_dir = out;
  o.resume = resume;
  return o;
}

struct RunRecord {
  std::vector<TrainStep> steps;
  TrainResult result;
  EvalResult test;  // result.test
  std::string log_text() const {
    std::string s = str_cat("first epoch ", result.first_epoch, "\n");
    for (const auto& e : result.epochs)
      s += str_cat("epoch ", e.epoch, ": train loss ", e.train_loss, ", val loss ", e.val_loss,
                   "\n");
    return s;
  }
};

template <class Dev>
RunRecord train_run(AnyModel<Dev>& model, const Data& data, const fs::path& out, int epochs,
                    bool resume = false) {
  RunRecord r;
  Trainer<Dev> trainer(options(out, epochs, resume), model, data.samples, data.split);
  trainer.on_step = [&](const TrainStep& s) { r.steps.push_back(s); };
  r.result = trainer.run();
  r.test = r.result.test;
  if constexpr (!std::is_same_v<Dev, Cpu>)
    cuda::check(cudaDeviceSynchronize(), "training run on the GPU");
  return r;
}

template <class Dev>
std::vector<Tensor<Cpu>> host_values(AnyModel<Dev>& model) {
  std::vector<Tensor<Cpu>> out;
  for (const auto& p : model.parameters()) out.push_back(p.param->value.to_host());
  return out;
}

// How far two sets of weights (same model) are apart.
struct WeightsDiff {
  double global_rel_l2 = 0.0;  // ||a - b|| / ||a|| over all parameters
  double max_abs = 0.0;        // max |a - b| over all elements
  std::string max_abs_where;
  std::size_t differing = 0, total = 0;                 // elements that are not bit-identical
  std::vector<std::pair<double, std::string>> tensors;  // (rel L2, description), worst first

  std::string summary(std::size_t worst = 3) const {
    std::ostringstream o;
    o.precision(4);
    o << "global rel L2 " << global_rel_l2 << ", max abs " << max_abs << " (" << max_abs_where
      << "), " << differing << " of " << total << " elements differ; worst tensors:";
    for (std::size_t i = 0; i < std::min(worst, tensors.size()); ++i)
      o << "\n    " << tensors[i].second;
    return o.str();
  }
};

template <class DevA, class DevB>
WeightsDiff compare_weights(AnyModel<DevA>& a_model, AnyModel<DevB>& b_model) {
  const auto names = a_model.parameters();
  const auto a = host_values(a_model), b = host_values(b_model);
  REQUIRE(a.size() == b.size());
  WeightsDiff d;
  double diff_sq = 0.0, norm_sq = 0.0;
  for (std::size_t t = 0; t < a.size(); ++t) {
    REQUIRE_MESSAGE(a[t].shape() == b[t].shape(), names[t].name);
    double t_diff = 0.0, t_norm = 0.0, t_max = 0.0;
    std::size_t t_max_at = 0;
    for (std::size_t i = 0; i < a[t].size(); ++i) {
      const double x = a[t][i], y = b[t][i], e = std::abs(x - y);
      t_diff += e * e;
      t_norm += x * x;
      d.differing += std::bit_cast<std::uint32_t>(a[t][i]) != std::bit_cast<std::uint32_t>(b[t][i]);
      if (!(e <= t_max)) t_max = e, t_max_at = i;  // NaN wins
    }
    d.total += a[t].size();
    diff_sq += t_diff;
    norm_sq += t_norm;
    if (!(t_max <= d.max_abs)) {
      d.max_abs = t_max;
      std::ostringstream where;
      where << names[t].name << "[" << t_max_at << "]: " << a[t][t_max_at] << " vs "
            << b[t][t_max_at];
      d.max_abs_where = where.str();
    }
    const double rel = std::sqrt(t_diff) / std::max(std::sqrt(t_norm), 1e-12);
    std::ostringstream desc;
    desc.precision(4);
    desc << names[t].name << " " << a[t].shape().str() << ": rel L2 " << rel << ", max abs "
         << t_max << ", norm " << std::sqrt(t_norm);
    d.tensors.emplace_back(std::isnan(rel) ? INFINITY : rel, desc.str());
  }
  d.global_rel_l2 = std::sqrt(diff_sq) / std::max(std::sqrt(norm_sq), 1e-12);
  std::sort(d.tensors.begin(), d.tensors.end(),
            [](const auto& x, const auto& y) { return x.first > y.first; });
  return d;
}

// Logits of `model` for `images`, on the host.
template <class Dev>
Tensor<Cpu> logits_of(AnyModel<Dev>& model, const Tensor<Cpu>& images) {
  HostStaging<Dev> staging;
  return Tensor<Cpu>::from(staging.forward(model, images));
}

// max |a - b| / max |a|, and where.
std::string compare_logits(const Tensor<Cpu>& a, const Tensor<Cpu>& b, double& rel) {
  REQUIRE(a.shape() == b.shape());
  double max_abs = 0.0, scale = 0.0;
  std::size_t at = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    scale = std::max(scale, std::abs(static_cast<double>(a[i])));
    const double e = std::abs(static_cast<double>(a[i]) - b[i]);
    if (!(e <= max_abs)) max_abs = e, at = i;
  }
  rel = max_abs / std::max(scale, 1e-12);
  std::ostringstream o;
  o << "max abs " << max_abs << " at flat index " << at << " (" << a[at] << " vs " << b[at]
    << "), max|logit| " << scale << ", rel " << rel;
  return o.str();
}

// Allowed gap of the final weights after `steps` Adam steps: far below one step's size overall,
// and no element further apart than the two runs could move in opposite directions (a gradient
// element near 0 whose sign differs between devices moves by +-lr per step).
constexpr double kWeightsGlobalRel = 1e-4;
double max_abs_bound(std::size_t steps) { return 2.0 * kLr * static_cast<double>(steps) + 1e-6; }

TEST_CASE("GPU training follows CPU training step by step (losses, metrics, final weights)") {
  const Data data;
  TempDir tmp("steps");
  auto cpu_model = make_model<Cpu>(kModel);
  auto gpu_model = make_model<Cuda>(kModel);
  const RunRecord cpu = train_run(*cpu_model, data, tmp.path / "cpu", 2);
  const RunRecord gpu = train_run(*gpu_model, data, tmp.path / "gpu", 2);
  INFO("CPU log:\n", cpu.log_text(), "GPU log:\n", gpu.log_text());

  REQUIRE(cpu.steps.size() == 6);
  REQUIRE(gpu.steps.size() == cpu.steps.size());
  double worst = 0.0;
  std::ostringstream table;
  table.precision(9);
  table << "per-step training loss (" << kModel << ", " << kHeight << "x" << kWidth << ", batch "
        << kBatch << ", lr " << kLr << "):";
  for (std::size_t i = 0; i < cpu.steps.size(); ++i) {
    const TrainStep &c = cpu.steps[i], &g = gpu.steps[i];
    CHECK(g.epoch == c.epoch);
    CHECK(g.batch == c.batch);
    CHECK(g.images == c.images);
    CHECK(g.step == c.step);
    const double rel = std::abs(g.loss - c.loss) / std::max(std::abs(c.loss), 1e-12);
    worst = std::max(worst, std::isnan(rel) ? INFINITY : rel);
    table << "\n  step " << c.step << " (epoch " << c.epoch << ", batch " << c.batch << ", "
          << c.images << " images): cpu " << c.loss << "  gpu " << g.loss << "  rel diff " << rel;
    CHECK_MESSAGE(rel <= 1e-4, "step ", c.step, " (epoch ", c.epoch, ", batch ", c.batch,
                  "): CPU loss ", c.loss, ", GPU loss ", g.loss, ", rel diff ", rel, " > 1e-4");
  }
  MESSAGE(table.str(), "\n  worst rel diff ", worst);

  // Test metrics of the final weights (evaluate on each device).
  const double test_loss_rel =
      std::abs(gpu.test.loss - cpu.test.loss) / std::max(std::abs(cpu.test.loss), 1e-12);
  MESSAGE("test loss cpu ", cpu.test.loss, " gpu ", gpu.test.loss, " (rel ", test_loss_rel,
          "); test Dice cpu ", cpu.test.dice, " gpu ", gpu.test.dice);
  CHECK(gpu.test.images == cpu.test.images);
  CHECK(test_loss_rel <= 1e-3);
  CHECK(std::abs(gpu.test.dice - cpu.test.dice) <= 1e-3);

  const WeightsDiff d = compare_weights(*cpu_model, *gpu_model);
  MESSAGE("final weights CPU vs GPU after ", cpu.steps.size(), " steps: ", d.summary());
  CHECK_MESSAGE(d.global_rel_l2 <= kWeightsGlobalRel, d.summary());
  CHECK_MESSAGE(d.max_abs <= max_abs_bound(cpu.steps.size()), d.summary());

  // The weights files hold the models' weights exactly, whatever the device.
  auto cpu_file = make_model<Cpu>(kModel), gpu_file = make_model<Cpu>(kModel);
  load_weights(*cpu_file, tmp.path / "cpu" / "last.weights");
  load_weights(*gpu_file, tmp.path / "gpu" / "last.weights");
  const WeightsDiff cpu_saved = compare_weights(*cpu_model, *cpu_file);
  const WeightsDiff gpu_saved = compare_weights(*gpu_model, *gpu_file);
  CHECK_MESSAGE(cpu_saved.differing == 0, "CPU last.weights vs CPU model: ", cpu_saved.summary());
  CHECK_MESSAGE(gpu_saved.differing == 0, "GPU last.weights vs GPU model: ", gpu_saved.summary());
}

TEST_CASE("weights files move between devices: same bytes, same logits") {
  const Data data;
  TempDir tmp("files");
  const Tensor<Cpu> images = data.batch(0, 3);

  SUBCASE("GPU-trained weights in a CPU model") {
    auto gpu_model = make_model<Cuda>(kModel);
    train_run(*gpu_model, data, tmp.path / "gpu", 1);  // non-trivial weights
    const fs::path file = tmp.path / "gpu.weights";
    save_weights(*gpu_model, file);
    CHECK(slurp(file) == slurp(tmp.path / "gpu" / "last.weights"));
    auto cpu_model = make_model<Cpu>(kModel);
    load_weights(*cpu_model, file);
    const WeightsDiff d = compare_weights(*gpu_model, *cpu_model);
    CHECK_MESSAGE(d.differing == 0, "GPU model vs its file loaded on the CPU: ", d.summary());
    // Saved again from the CPU: the same bytes.
    save_weights(*cpu_model, tmp.path / "again.weights");
    CHECK(slurp(tmp.path / "again.weights") == slurp(file));

    double rel = 0.0;
    const std::string where =
        compare_logits(logits_of(*gpu_model, images), logits_of(*cpu_model, images), rel);
    MESSAGE("logits, GPU model vs CPU model from the GPU's weights file: ", where);
    CHECK_MESSAGE(rel <= 1e-4, where);
  }
  SUBCASE("CPU weights in a GPU model") {
    auto cpu_model = make_model<Cpu>(kModel);
    cpu_model->init(42);
    const fs::path file = tmp.path / "cpu.weights";
    save_weights(*cpu_model, file);
    auto gpu_model = make_model<Cuda>(kModel);
    load_weights(*gpu_model, file);
    const WeightsDiff d = compare_weights(*cpu_model, *gpu_model);
    CHECK_MESSAGE(d.differing == 0, "CPU model vs its file loaded on the GPU: ", d.summary());
    save_weights(*gpu_model, tmp.path / "again.weights");
    CHECK(slurp(tmp.path / "again.weights") == slurp(file));

    double rel = 0.0;
    const std::string where =
        compare_logits(logits_of(*cpu_model, images), logits_of(*gpu_model, images), rel);
    MESSAGE("logits, CPU model vs GPU model from the CPU's weights file: ", where);
    CHECK_MESSAGE(rel <= 1e-4, where);
  }
}

TEST_CASE("a GPU run resumes from its checkpoint, on the GPU and on the CPU") {
  const Data data;
  TempDir tmp("resume");
  const fs::path straight = tmp.path / "straight", stopped = tmp.path / "stopped",
                 on_cpu = tmp.path / "on_cpu";

  auto straight_model = make_model<Cuda>(kModel);
  const RunRecord full = train_run(*straight_model, data, straight, 3);
  REQUIRE(full.steps.size() == 9);

  // Two epochs, then a fresh process-like start (new model, new trainer) that resumes to three.
  {
    auto model = make_model<Cuda>(kModel);
    const RunRecord first = train_run(*model, data, stopped, 2);
    REQUIRE(first.steps.size() == 6);
  }
  fs::copy(stopped, on_cpu, fs::copy_options::recursive);

  auto resumed_model = make_model<Cuda>(kModel);
  const RunRecord resumed = train_run(*resumed_model, data, stopped, 3, true);
  INFO("resumed GPU run log:\n", resumed.log_text());
  CHECK(resumed.result.first_epoch == 3);  // resumed from the checkpoint of epoch 2
  REQUIRE(resumed.steps.size() == 3);
  for (std::size_t i = 0; i < 3; ++i) {
    const TrainStep &r = resumed.steps[i], &f = full.steps[6 + i];
    CHECK(r.step == f.step);  // the optimiser's iteration count was restored
    CHECK_MESSAGE(r.loss == f.loss, "step ", f.step, ": resumed loss ", r.loss, ", uninterrupted ",
                  f.loss);
  }
  const WeightsDiff gpu_gap = compare_weights(*straight_model, *resumed_model);
  MESSAGE("GPU resumed vs uninterrupted: ", gpu_gap.summary(1));
  // The CUDA kernels are deterministic, so the resumed run ends bit for bit where the
  // uninterrupted one does; the tolerance check separates "not bit-identical" from "broken".
  CHECK_MESSAGE(
      slurp(stopped / "last.weights") == slurp(straight / "last.weights"),
      "resumed GPU run's last.weights differs from the uninterrupted run's: ", gpu_gap.summary());
  CHECK_MESSAGE(gpu_gap.global_rel_l2 <= kWeightsGlobalRel, gpu_gap.summary());

  // The GPU checkpoint (weights + Adam state) resumed by a CPU trainer.
  auto cpu_model = make_model<Cpu>(kModel);
  const RunRecord cpu_resumed = train_run(*cpu_model, data, on_cpu, 3, true);
  INFO("CPU run resumed from the GPU checkpoint, log:\n", cpu_resumed.log_text());
  CHECK(cpu_resumed.result.first_epoch == 3);  // resumed from the checkpoint of epoch 2
  REQUIRE(cpu_resumed.steps.size() == 3);
  std::ostringstream table;
  table.precision(9);
  table << "epoch 3 resumed from the GPU checkpoint on the CPU vs the GPU's uninterrupted run:";
  for (std::size_t i = 0; i < 3; ++i) {
    const TrainStep &c = cpu_resumed.steps[i], &f = full.steps[6 + i];
    CHECK(c.step == f.step);
    const double rel = std::abs(c.loss - f.loss) / std::max(std::abs(f.loss), 1e-12);
    table << "\n  step " << c.step << ": cpu " << c.loss << "  gpu " << f.loss << "  rel diff "
          << rel;
    CHECK_MESSAGE(rel <= 1e-4, "step ", f.step, ": CPU (resumed) loss ", c.loss, ", GPU loss ",
                  f.loss, ", rel diff ", rel);
  }
  MESSAGE(table.str());
  const WeightsDiff cross = compare_weights(*straight_model, *cpu_model);
  MESSAGE("CPU resumed from GPU checkpoint vs GPU uninterrupted: ", cross.summary());
  CHECK_MESSAGE(cross.global_rel_l2 <= kWeightsGlobalRel, cross.summary());
  CHECK_MESSAGE(cross.max_abs <= max_abs_bound(full.steps.size()), cross.summary());
}

}  // namespace

#include "cuda_test_main.hpp"

int main(int argc, char** argv) { return run_cuda_tests("test_cuda_train", argc, argv); }
