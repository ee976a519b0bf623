#pragma once
// The train program (see --help): its options, and the run on device Dev.
#include <cstdio>
#include <limits>
#include <memory>
#include <optional>
#include <stdexcept>
#include <unetsrnn/train/trainer.hpp>
#ifdef UNETSRNN_EXAMPLES_MPI
#include <unetsrnn/dist/mpi.hpp>
#endif
#if defined(UNETSRNN_EXAMPLES_NCCL) && defined(__CUDACC__)
#include <unetsrnn/dist/nccl.cuh>
#endif

#include "app/cli.hpp"
#include "app/run_report.hpp"
#include "common.hpp"
#include "device.hpp"

namespace examples {

inline constexpr const char* kTrainSummary =
    "Train a U-Net / CR-UNet on one or more image+mask folders.";

struct TrainArgs {
  std::string model = "crunet_res_lw", loss = "bce";
  // Unset: the default of --protocol (the seed protocol has its own).
  std::optional<int> epochs, batch;
  std::optional<double> lr, decay;
  int seed = 1;
  double test_fraction = 0.1, val_fraction = 0.1;
  int folds = 0, fold = 0;
  std::string schedule = "plateau";
  double min_lr = 1e-5;
  std::string protocol = "default";
  std::string out, init_weights;
  bool resume = false, augment = false, no_shuffle = false, no_plateau = false, quiet = false;
  bool distributed = false;
  DatasetArgs data;
  std::string device = "cpu";
};

inline void add_train_options(app::Command& c, TrainArgs& a) {
  using app::integer_in;
  using app::number_in;
  add_model_option(c, a.model);
  c.option("--loss", a.loss, "NAME",
           "bce | bce_dice_seed (the original's) | bce_dice (image soft Dice)")
      ->check(app::parsed_by(unetsrnn::parse_loss));
  c.option("--epochs", a.epochs, "N", "training epochs", "20 (seed protocol: 220)")
      ->check(integer_in(1));
  c.option("--batch", a.batch, "N", "images per batch", "2")->check(integer_in(1));
  c.option("--lr", a.lr, "RATE", "Adam learning rate", "1e-3 (seed protocol: 1e-5)")
      ->check(number_in(0.0, std::numeric_limits<double>::infinity(), true));
  c.option("--decay", a.decay, "D", "Keras time decay: lr / (1 + D * step)",
           "0 (seed protocol: 1.99e-7)")
      ->check(number_in(0.0));
  c.option("--seed", a.seed, "N", "seed of weights, split, batch order and augmentation")
      ->check(integer_in(0));
  c.option("--test-fraction", a.test_fraction, "F", "test part of each dataset")
      ->check(number_in(0.0, 1.0, false, true));
  c.option("--val-fraction", a.val_fraction, "F", "validation part carved from each training part")
      ->check(number_in(0.0, 1.0, false, true));
  c.option("--folds", a.folds, "K",
           "k-fold cross-validation: K folds of each dataset (seeded), fold --fold is the test "
           "part; 0 = one random split by --test-fraction")
      ->check(app::parsed_by([](const std::string& text) {
        if (!app::integer_in(0)(text).empty() || std::stoi(text) == 1)
          throw std::invalid_argument("must be 0 (off) or >= 2, got '" + text + "'");
      }));
  c.option("--fold", a.fold, "F", "which fold (0 .. K-1) is the test part when --folds K is given")
      ->check(integer_in(0));
  c.option("--schedule", a.schedule, "NAME",
           "plateau (ReduceLROnPlateau 0.8/3 on validation loss) | cosine (per epoch, --lr down "
           "to --min-lr) | none")
      ->check(app::one_of({"plateau", "cosine", "none"}));
  c.option("--min-lr", a.min_lr, "RATE", "final learning rate of the cosine schedule")
      ->check(number_in(0.0));
  c.option("--protocol", a.protocol, "NAME",
           "default | seed (the original: lr 1e-5, decay 1.99e-7, batch 2, 220 epochs, no "
           "shuffling; explicit options still win)")
      ->check(app::one_of({"default", "seed"}));
  c.option("--out", a.out, "DIR",
           "output folder (checkpoints, log.csv, curve.png, result.json); required");
  c.option("--init-weights", a.init_weights, "FILE", "start from these weights");
  c.flag("--resume", a.resume, "continue the run in --out from its last checkpoint");
  c.flag("--augment", a.augment,
         "random flips/rotations/brightness/contrast (off in the seed protocol)");
  c.flag("--no-shuffle", a.no_shuffle, "keep the batch order fixed");
  c.flag("--no-plateau", a.no_plateau, "disable ReduceLROnPlateau (factor 0.8, patience 3)");
  c.flag("--quiet", a.quiet, "no progress bar");
  c.flag("--distributed", a.distributed,
         "data parallel over the ranks of an MPI job (automatic when mpirun starts several): "
         "--batch is the global batch, split over the ranks; rank 0 writes the files");
  add_dataset_options(c, a.data);
  add_device_option(c, a.device);
}

// The training options of a command line (all of them checked, the combinations too: a usage
// error exits 2 before anything is read or written).
inline unetsrnn::TrainOptions train_options(const TrainArgs& a) {
  using namespace unetsrnn;
  const bool seed_protocol = a.protocol == "seed";
  // In the seed protocol the original's settings replace the defaults; explicit options win.
  if (a.out.empty()) app::usage_error("train", "--out DIR is required");
  TrainOptions o;
  o.model = a.model;
  o.loss = parse_loss(a.loss);
  o.epochs = a.epochs.value_or(seed_protocol ? 220 : 20);
  o.batch = a.batch.value_or(2);
  o.adam.lr = a.lr.value_or(seed_protocol ? 1e-5 : 1e-3);
  o.adam.decay = a.decay.value_or(seed_protocol ? 1.99e-7 : 0.0);
  o.seed = static_cast<std::uint64_t>(a.seed);
  o.shuffle = !(a.no_shuffle || seed_protocol);
  o.augmentation.enabled = a.augment;
  o.plateau = a.schedule == "plateau" && !a.no_plateau;
  o.cosine = a.schedule == "cosine";
  o.cosine_min_lr = a.min_lr;
  if (a.folds >= 2 && a.fold >= a.folds)
    app::usage_error("train", "--fold must be in [0, " + std::to_string(a.folds - 1) + "]");
  o.plateau_options.factor = 0.8;
  o.plateau_options.patience = 3;
  o.plateau_options.min_lr = seed_protocol ? 1e-5 : 1e-6;
  o.out_dir = a.out;
  o.resume = a.resume;
  o.init_weights = a.init_weights;
  try {
    check_train_options(o);
  } catch (const std::invalid_argument& e) {
    app::usage_error("train", e.what());
  }
  return o;
}

// --distributed, or a launch by mpirun (several ranks): the data-parallel transport of device Dev
// (MPI on the CPU, NCCL on the GPU); null for one process.
template <class Dev>
std::unique_ptr<unetsrnn::Communicator<Dev>> make_communicator(const TrainArgs& a) {
  if (!a.distributed && !unetsrnn::launched_by_mpi()) return nullptr;
  if constexpr (std::is_same_v<Dev, unetsrnn::Cpu>) {
#ifdef UNETSRNN_EXAMPLES_MPI
    return std::make_unique<unetsrnn::MpiCommunicator>();
#else
    throw std::runtime_error(
        "--distributed (or a start by mpirun): this build has no MPI: install an MPI for C++ "
        "(Debian: libopenmpi-dev) and rebuild");
#endif
  } else {
#if defined(UNETSRNN_EXAMPLES_NCCL) && defined(__CUDACC__)
    return std::make_unique<unetsrnn::NcclCommunicator>();
#else
    throw std::runtime_error(
        "--distributed --device cuda: this build has no NCCL transport (needs MPI, nvcc and "
        "NCCL found at configure time)");
#endif
  }
}

template <class Dev>
int train_body(const TrainArgs& a) {
  using namespace unetsrnn;
  // Every option is checked (usage errors, exit 2) before the output folder is locked and before
  // any data is read.
  TrainOptions o = train_options(a);
  const DatasetOptions data_options = dataset_options(a.data);
  const std::vector<std::string> dirs = dataset_dirs("train", a.data);

  // Before the model: the NCCL transport picks this rank's GPU.
  const std::unique_ptr<Communicator<Dev>> comm = make_communicator<Dev>(a);
  const bool root = !comm || comm->is_root();
  std::unique_ptr<AnyModel<Dev>> model = make_model<Dev>(o.model);
  if (!o.init_weights.empty()) {  // fully checked now, loaded by the trainer
    const WeightsHeader init = read_weights_header(o.init_weights);
    if (init.model_name != model->name())
      throw std::invalid_argument("--init-weights '" + o.init_weights + "' holds model '" +
                                  init.model_name + "', not '" + model->name() + "'");
  }
  // One writer per run folder (rank 0 of a distributed job), from before the data is read to the
  // end of the run.
  std::optional<RunFolder> folder;
  if (root) {
    folder.emplace(RunFolder::open(o.out_dir));
    check_run_folder(o.out_dir, o.resume);
  }

  LoadedData data = load_datasets(dirs, data_options, root);
  Split split = a.folds >= 2
                    ? kfold_splits_datasets(data.counts, a.folds, o.seed,
                                            a.val_fraction)[static_cast<std::size_t>(a.fold)]
                    : split_datasets(data.counts, a.test_fraction, o.seed, a.val_fraction);
  o.fingerprint = std::move(data.fingerprint);
  o.fingerprint.add("test_fraction", a.test_fraction).add("val_fraction", a.val_fraction);
  if (root)
    std::printf("model %s (%zu parameters) on %s, loss %s, %zu train / %zu val / %zu test images\n",
                model->name().c_str(), model->parameter_count(), Dev::name,
                std::string(to_string(o.loss)).c_str(), split.train.size(), split.val.size(),
                split.test.size());
  if (comm && root)
    std::printf("data parallel over %d ranks, global batch %d\n", comm->size(), o.batch);
  Trainer trainer(o, *model, data.samples, split, comm.get());
  app::RunReport report(!a.quiet);  // told on rank 0 only
  trainer.add_observer(report);
  TrainResult r;
  try {
    r = trainer.run();
  } catch (const std::exception& e) {
    if (!comm || comm->size() == 1) throw;
    // The other ranks would wait for this one: end the whole job.
    std::fprintf(stderr, "train: error (rank %d of %d): %s\n", comm->rank(), comm->size(),
                 e.what());
    std::fflush(stderr);
    comm->abort(1);
  }
  if (!root) return 0;
  std::printf("test Dice %.4f (threshold 0.5), %.4f (threshold 0.3), IoU %.4f on %zu images\n",
              r.test.dice, r.test.dice_at_03, r.test.iou, r.test.images);
  std::printf("wrote %s/{log.csv,curve.png,best.weights,last.weights,split.txt,result.json}\n",
              o.out_dir.string().c_str());
  return 0;
}

#ifdef UNETSRNN_EXAMPLES_CUDA
int on_cuda(const TrainArgs& args);  // train_body<Cuda> (cuda_programs.cu)
#endif

}  // namespace examples
