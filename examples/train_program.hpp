#pragma once
// The train program (see --help): options, and the run on device Dev.
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

#include "common.hpp"
#include "device.hpp"

namespace examples {

// --distributed, or a launch by mpirun (several ranks): the data-parallel transport of device Dev
// (MPI on the CPU, NCCL on the GPU); null for one process.
template <class Dev>
std::unique_ptr<unetsrnn::Communicator<Dev>> make_communicator(const cli::Parser& p) {
  if (!p.has("--distributed") && !unetsrnn::launched_by_mpi()) return nullptr;
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

inline cli::Parser train_parser() {
  cli::Parser p("train", "Train a U-Net / CR-UNet on one or more image+mask folders.");
  p.option("--model", "NAME", unetsrnn::model_help("model to train"), "crunet_res_lw");
  p.option("--loss", "NAME", "bce | bce_dice_seed (the original's) | bce_dice (image soft Dice)",
           "bce");
  p.option("--epochs", "N", "training epochs", "20");
  p.option("--batch", "N", "images per batch", "2");
  p.option("--lr", "RATE", "Adam learning rate", "1e-3");
  p.option("--decay", "D", "Keras time decay: lr / (1 + D * step)", "0");
  p.option("--seed", "N", "seed of weights, split, batch order and augmentation", "1");
  p.option("--test-fraction", "F", "test part of each dataset", "0.1");
  p.option("--val-fraction", "F", "validation part carved from each training part", "0.1");
  p.option(
      "--folds", "K",
      "k-fold cross-validation: K folds of each dataset (seeded), fold --fold is the test part; "
      "0 = one random split by --test-fraction",
      "0");
  p.option("--fold", "F", "which fold (0 .. K-1) is the test part when --folds K is given", "0");
  p.option("--schedule", "NAME",
           "plateau (ReduceLROnPlateau 0.8/3 on validation loss) | cosine (per epoch, --lr down "
           "to --min-lr) | none",
           "plateau");
  p.option("--min-lr", "RATE", "final learning rate of the cosine schedule", "1e-5");
  p.option("--protocol", "NAME",
           "default | seed (the original: lr 1e-5, decay 1.99e-7, batch 2, 220 epochs, no "
           "shuffling; explicit options still win)",
           "default");
  p.option("--out", "DIR", "output folder (checkpoints, log.csv, curve.png, result.json)", "");
  p.option("--init-weights", "FILE", "start from these weights", "");
  p.flag("--resume", "continue the run in --out from its last checkpoint");
  p.flag("--augment", "random flips/rotations/brightness/contrast (off in the seed protocol)");
  p.flag("--no-shuffle", "keep the batch order fixed");
  p.flag("--no-plateau", "disable ReduceLROnPlateau (factor 0.8, patience 3)");
  p.flag("--quiet", "no progress bar");
  p.flag("--distributed",
         "data parallel over the ranks of an MPI job (automatic when mpirun starts several): "
         "--batch is the global batch, split over the ranks; rank 0 writes the files");
  add_dataset_options(p);
  add_device_option(p);
  return p;
}

template <class Dev>
int train_body(const cli::Parser& p) {
  using namespace unetsrnn;
  // Every option is checked (usage errors, exit 2) before the output folder is locked and before
  // any data is read.
  if (p.get("--out").empty()) p.usage_error("--out DIR is required");
  const std::string protocol = p.get("--protocol");
  if (protocol != "default" && protocol != "seed")
    p.usage_error("--protocol must be default or seed, got '" + protocol + "'");
  const bool seed_protocol = protocol == "seed";
  // In the seed protocol the original's settings replace the defaults; explicit options still
  // win.
  auto int_opt = [&](const char* name, int seed_value) {
    return p.has(name) || !seed_protocol ? p.get_int_in(name, 1) : seed_value;
  };
  auto num_opt = [&](const char* name, double seed_value, bool zero_allowed) {
    return p.has(name) || !seed_protocol
               ? p.get_double_in(name, 0.0, std::numeric_limits<double>::infinity(), !zero_allowed)
               : seed_value;
  };

  TrainOptions o;
  o.model = p.get("--model");
  try {
    o.loss = parse_loss(p.get("--loss"));
  } catch (const std::invalid_argument& e) {
    p.usage_error(std::string("--loss: ") + e.what());
  }
  o.epochs = int_opt("--epochs", 220);
  o.batch = int_opt("--batch", 2);
  o.adam.lr = num_opt("--lr", 1e-5, false);
  o.adam.decay = num_opt("--decay", 1.99e-7, true);
  o.seed = static_cast<std::uint64_t>(p.get_int_in("--seed", 0));
  o.shuffle = !(p.has("--no-shuffle") || seed_protocol);
  o.augmentation.enabled = p.has("--augment");
  const std::string schedule = p.get("--schedule");
  if (schedule != "plateau" && schedule != "cosine" && schedule != "none")
    p.usage_error("--schedule must be plateau, cosine or none, got '" + schedule + "'");
  o.plateau = schedule == "plateau" && !p.has("--no-plateau");
  o.cosine = schedule == "cosine";
  o.cosine_min_lr = p.get_double_in("--min-lr", 0.0, std::numeric_limits<double>::infinity());
  const int folds = p.get_int("--folds"), fold = p.get_int("--fold");
  if (folds == 1 || folds < 0) p.usage_error("--folds must be 0 (off) or >= 2");
  if (folds >= 2 && (fold < 0 || fold >= folds))
    p.usage_error("--fold must be in [0, " + std::to_string(folds - 1) + "]");
  o.plateau_options.factor = 0.8;
  o.plateau_options.patience = 3;
  o.plateau_options.min_lr = seed_protocol ? 1e-5 : 1e-6;
  o.out_dir = p.get("--out");
  o.resume = p.has("--resume");
  o.progress = !p.has("--quiet");
  o.init_weights = p.get("--init-weights");
  const double test_fraction = p.get_double_in("--test-fraction", 0.0, 1.0, false, true);
  const double val_fraction = p.get_double_in("--val-fraction", 0.0, 1.0, false, true);
  try {
    check_train_options(o);
  } catch (const std::invalid_argument& e) {
    p.usage_error(e.what());
  }
  const DatasetOptions data_options = dataset_options(p);
  const std::vector<std::string> dirs = dataset_dirs(p);

  // Before the model: the NCCL transport picks this rank's GPU.
  const std::unique_ptr<Communicator<Dev>> comm = make_communicator<Dev>(p);
  const bool root = !comm || comm->is_root();
  std::unique_ptr<AnyModel<Dev>> model;
  try {
    model = make_model<Dev>(o.model);
  } catch (const std::invalid_argument& e) {
    p.usage_error(std::string("--model: ") + e.what());
  }
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
  Split split = folds >= 2 ? kfold_splits_datasets(data.counts, folds, o.seed,
                                                   val_fraction)[static_cast<std::size_t>(fold)]
                           : split_datasets(data.counts, test_fraction, o.seed, val_fraction);
  o.fingerprint = std::move(data.fingerprint);
  o.fingerprint.add("test_fraction", test_fraction).add("val_fraction", val_fraction);
  if (root)
    std::printf("model %s (%zu parameters) on %s, loss %s, %zu train / %zu val / %zu test images\n",
                model->name().c_str(), model->parameter_count(), Dev::name,
                std::string(to_string(o.loss)).c_str(), split.train.size(), split.val.size(),
                split.test.size());
  if (comm && root)
    std::printf("data parallel over %d ranks, global batch %d\n", comm->size(), o.batch);
  Trainer trainer(o, *model, data.samples, split, comm.get());
  EvalResult r;
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
              r.dice, r.dice_at_03, r.iou, r.images);
  std::printf("wrote %s/{log.csv,curve.png,best.weights,last.weights,split.txt,result.json}\n",
              o.out_dir.string().c_str());
  return 0;
}

}  // namespace examples
