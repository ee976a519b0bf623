// Data-parallel training over MPI against one process. Run under mpirun (tests/CMakeLists.txt):
//   mpirun -np 2 test_mpi_train            the checks below; exit 0 when all pass
//   test_mpi_train --write-data DIR N H W   writes N synthetic pairs (for the CLI tests)
//   test_mpi_train --funneled | --hang-in-gradient-sum   see watchdog_test.sh
// Checks, on the library's synthetic data (32 x 32, unet2d_lw, global batch 4, 20 steps, one
// thread per rank):
//   1. sharded validation metrics equal the one-process ones exactly (counts and loss);
//   2. per-step losses and final weights of the distributed run agree with a one-process run of
//      the same global batch within float tolerance (the sums are grouped differently);
//   3. a second identical distributed run is bit-identical;
//   4. a run whose buckets are smaller than most parameters (many buckets, parameters split across
//      them) gives bit-identical weights too (the packing is exact; MPI sums elementwise);
//   5. the gradient sums overlapped with the backward pass (GradientReducer as the pass's
//      GradientReadyHook) equal the sums after the pass bit for bit, every bucket started during
//      the pass.
//   6. the trainer's observers are told on rank 0 only, and rank 0 writes the run's files.
#include <unistd.h>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <unetsrnn/data/synthetic.hpp>
#include <unetsrnn/dist/mpi.hpp>
#include <unetsrnn/train/trainer.hpp>
#include <vector>

#include "app/run_report.hpp"

using namespace unetsrnn;
namespace fs = std::filesystem;

namespace {

int failures = 0;
int rank_id = 0;

void check(bool ok, const std::string& what) {
  if (!ok) ++failures;
  if (rank_id == 0 || !ok)
    std::printf("[rank %d] %s: %s\n", rank_id, ok ? "ok  " : "FAIL", what.c_str());
  std::fflush(stdout);
}

// Counts what a TrainObserver is told.
struct Counter : TrainObserver {
  int starts = 0, batches = 0, epochs = 0, checkpoints = 0, finishes = 0;
  void on_start(const TrainStart&) override { ++starts; }
  void on_batch(const TrainStep&) override { ++batches; }
  void on_epoch_end(const EpochRecord&) override { ++epochs; }
  void on_checkpoint(int, const CheckpointFiles&) override { ++checkpoints; }
  void on_finish(const TrainResult&) override { ++finishes; }
};

struct RunResult {
  Counter told;
  std::vector<double> step_losses;
  std::vector<std::vector<float>> weights;
  EvalResult test;
  std::size_t buckets = 0;
};

std::vector<std::vector<float>> weights_of(AnyModel<Cpu>& model) {
  std::vector<std::vector<float>> out;
  for (auto& p : model.parameters())
    out.emplace_back(p.param->value.data(), p.param->value.data() + p.param->value.size());
  return out;
}

RunResult train(const std::vector<Sample>& samples, const Split& split, const fs::path& out,
                Communicator<Cpu>* comm, std::size_t bucket_floats) {
  TrainOptions o;
  o.model = "unet2d_lw";
  o.epochs = 4;  // 20 training images / global batch 4 = 5 steps per epoch
  o.batch = 4;
  o.adam.lr = 1e-3;
  o.seed = 5;
  o.augmentation.enabled = true;  // the same augmentation on every rank
  o.out_dir = out;
  auto model = make_model<Cpu>(o.model);
  Trainer<Cpu> trainer(o, *model, samples, split, comm);
  app::RunReport report(false);  // the examples' report: log.csv, curve.png, result.json
  trainer.add_observer(report);
  trainer.gradient_reducer().set_bucket_floats(bucket_floats);
  RunResult r;
  trainer.add_observer(r.told);
  trainer.on_step = [&](const TrainStep& s) { r.step_losses.push_back(s.loss); };
  r.test = trainer.run().test;
  r.weights = weights_of(*model);
  r.buckets = trainer.gradient_reducer().buckets();
  return r;
}

bool bit_identical(const RunResult& a, const RunResult& b) {
  return a.step_losses == b.step_losses && a.weights == b.weights;
}

// MPI initialised by the program with MPI_THREAD_FUNNELED: the communicator, whose communication
// thread needs MPI_THREAD_SERIALIZED, must refuse it saying so. Exit 0 when it does.
int refuses_funneled_mpi() {
  int provided = 0;
  MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
  int status = 1;
  if (provided >= MPI_THREAD_SERIALIZED) {
    std::printf("MPI granted more than MPI_THREAD_FUNNELED: nothing to check\n");
    status = 0;
  } else {
    try {
      MpiCommunicator comm;
      std::printf("FAIL: MpiCommunicator accepted MPI_THREAD_FUNNELED\n");
    } catch (const std::invalid_argument& e) {
      const std::string what = e.what();
      std::printf("refused: %s\n", what.c_str());
      if (what.find("MPI_THREAD_FUNNELED") != std::string::npos &&
          what.find("MPI_THREAD_SERIALIZED") != std::string::npos)
        status = 0;
    }
  }
  MPI_Finalize();
  return status;
}

// Rank 1 stops answering while rank 0 waits for a gradient sum (on the communication thread):
// rank 0 must abort the job at the deadline. Returns only when it does not.
int hang_in_gradient_sum() {
  MpiCommunicator comm;
  if (comm.rank() != 0) {
    ::sleep(120);  // no MPI call: a hung rank
    return 1;
  }
  std::vector<float> g(1000, 1.0f);
  comm.start_sum(g.data(), g.size());
  comm.wait_all();
  std::printf("FAIL: the gradient sum completed without rank 1\n");
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 6 && std::string(argv[1]) == "--write-data") {
    write_synthetic(argv[2], std::stoul(argv[3]), std::stoi(argv[4]), std::stoi(argv[5]), 11);
    return 0;
  }
  if (argc == 2 && std::string(argv[1]) == "--funneled") return refuses_funneled_mpi();
  if (argc == 2 && std::string(argv[1]) == "--hang-in-gradient-sum") return hang_in_gradient_sum();
  MpiCommunicator comm;
  rank_id = comm.rank();
  if (comm.size() < 2) {
    std::printf("test_mpi_train: needs at least 2 ranks (mpirun -np 2), got %d\n", comm.size());
    return 2;
  }
  const std::vector<Sample> samples = generate_synthetic(30, 32, 32, 3);
  Split split;
  for (std::size_t i = 0; i < 20; ++i) split.train.push_back(i);
  for (std::size_t i = 20; i < 25; ++i) split.val.push_back(i);  // 5: a short last batch
  for (std::size_t i = 25; i < 30; ++i) split.test.push_back(i);
  // One scratch folder per job: rank 0 picks it and tells the others.
  double stamp = rank_id == 0 ? static_cast<double>(::getpid()) : 0.0;
  comm.sum_host(&stamp, 1);
  const fs::path dir =
      fs::temp_directory_path() / ("unetsrnn_mpi_test_" + std::to_string(static_cast<long>(stamp)));

  // 1. Sharded evaluation (batch 2 over 5 images: 3 batches, round robin) against one process.
  {
    auto model = make_model<Cpu>("unet2d_lw");
    model->init(9);
    const EvalResult one = evaluate(*model, samples, split.val, LossKind::BceSoftDice, 2);
    const EvalResult sharded = evaluate(*model, samples, split.val, LossKind::BceSoftDice, 2, comm);
    check(one.images == sharded.images && one.loss == sharded.loss && one.dice == sharded.dice &&
              one.dice_at_03 == sharded.dice_at_03 && one.iou == sharded.iou &&
              one.precision == sharded.precision && one.recall == sharded.recall &&
              one.per_image_dice == sharded.per_image_dice &&
              one.mean_image_dice == sharded.mean_image_dice,
          "sharded validation metrics equal the one-process ones exactly (loss " +
              std::to_string(sharded.loss) + ", dice " + std::to_string(sharded.dice) + ")");
  }

  // 2. Distributed against one process (rank 0 runs the one-process training; the others wait).
  const RunResult dist = train(samples, split, dir / "dist", &comm, std::size_t{1} << 20);
  check(dist.step_losses.size() == 20,
        "20 optimiser steps (got " + std::to_string(dist.step_losses.size()) + ")");
  const Counter& told = dist.told;
  check(rank_id == 0
            ? told.starts == 1 && told.batches == 20 && told.epochs == 4 && told.checkpoints == 4 &&
                  told.finishes == 1
            : told.starts + told.batches + told.epochs + told.checkpoints + told.finishes == 0,
        "observers are told on rank 0 only (this rank: " + std::to_string(told.batches) +
            " steps, " + std::to_string(told.epochs) + " epochs)");
  if (rank_id == 0) {
    const RunResult one = train(samples, split, dir / "one", nullptr, std::size_t{1} << 20);
    // Tolerances: the gradient of a batch is summed in another grouping (2 + 2 images instead of
    // 4), float32 rounding of ~1e-7 relative per step, grown by 20 Adam steps.
    double loss_diff = 0.0;
    for (std::size_t i = 0; i < one.step_losses.size() && i < dist.step_losses.size(); ++i)
      loss_diff = std::max(loss_diff, std::abs(one.step_losses[i] - dist.step_losses[i]) /
                                          std::abs(one.step_losses[i]));
    double w_diff = 0.0, w_max = 0.0;
    for (std::size_t t = 0; t < one.weights.size(); ++t)
      for (std::size_t i = 0; i < one.weights[t].size(); ++i) {
        w_diff =
            std::max(w_diff, static_cast<double>(std::abs(one.weights[t][i] - dist.weights[t][i])));
        w_max = std::max(w_max, static_cast<double>(std::abs(one.weights[t][i])));
      }
    std::printf(
        "one process vs 2 ranks over 20 steps: max relative loss difference %.3g, max "
        "weight difference %.3g (max |weight| %.3g)\n",
        loss_diff, w_diff, w_max);
    check(one.step_losses.size() == dist.step_losses.size() && loss_diff < 1e-5,
          "per-step losses agree with one process (relative tolerance 1e-5)");
    check(w_diff < 1e-5 * std::max(w_max, 1.0),
          "final weights agree with one process (tolerance 1e-5 x max |weight|)");
    check(std::abs(one.test.dice - dist.test.dice) < 1e-3,
          "test Dice agrees with one process (1e-3)");
  }
  comm.barrier();

  // 3. The same distributed run again: bit-identical.
  const RunResult again = train(samples, split, dir / "again", &comm, std::size_t{1} << 20);
  check(bit_identical(dist, again), "two identical distributed runs are bit-identical");

  // 4. Small buckets (4096 floats: many buckets, large parameters split): the same bits.
  const RunResult small = train(samples, split, dir / "small", &comm, 4096);
  check(small.buckets > 10,
        "small buckets: " + std::to_string(small.buckets) + " buckets per step");
  check(bit_identical(dist, small), "bucket size does not change the result");

  // 5. The overlapped reduction (buckets started from the backward pass's reports, summed by the
  //    communication thread while the pass goes on) against the one after the pass: same bits.
  {
    auto model = make_model<Cpu>("crunet_res_lw");
    model->init(2);
    ParamList<Cpu> params = model->parameters();
    Tensor<Cpu> x(Shape{1, 3, 32, 32}), dlogits(Shape{1, 1, 32, 32});
    Rng rng(40 + static_cast<std::uint64_t>(rank_id));  // another gradient on every rank
    for (float& v : x) v = static_cast<float>(rng.uniform(-1.0, 1.0));
    for (float& v : dlogits) v = static_cast<float>(rng.uniform(-1e-2, 1e-2));
    auto gradients = [&](bool overlap) {
      GradientReducer<Cpu> reducer(4096);
      model->zero_grad();
      model->forward(x.cview());
      if (overlap) {
        reducer.begin(comm, params);
        model->backward(dlogits.cview(), reducer);
        reducer.finish();
        check(reducer.buckets_started_early() == reducer.buckets() && reducer.buckets() > 10,
              "overlap: " + std::to_string(reducer.buckets_started_early()) + " of " +
                  std::to_string(reducer.buckets()) + " buckets started during the backward pass");
      } else {
        model->backward(dlogits.cview());
        reducer.reduce(comm, params);
      }
      std::vector<std::vector<float>> g;
      for (auto& p : params) g.emplace_back(p.param->grad.begin(), p.param->grad.end());
      return g;
    };
    const auto after = gradients(false);
    const auto overlapped = gradients(true);
    check(after == overlapped,
          "overlapped and after-the-pass reductions give the same bits (MPI thread level " +
              std::string(comm.thread_level() == MPI_THREAD_MULTIPLE ? "MULTIPLE" : "SERIALIZED") +
              ")");
  }

  // 6. Rank 0 alone wrote files: its observers are told, the others' are not.
  check(rank_id != 0 || fs::exists(dir / "dist" / "result.json"), "rank 0 wrote result.json");
  comm.barrier();
  if (rank_id == 0) fs::remove_all(dir);
  double failed = failures;
  comm.sum_host(&failed, 1);
  if (rank_id == 0) std::printf("test_mpi_train: %s\n", failed == 0 ? "all passed" : "FAILED");
  return failed == 0 ? 0 : 1;
}
