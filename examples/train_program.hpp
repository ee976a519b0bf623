#pragma once
// The train program (see --help): options, and the run on device Dev.
#include <cstdio>
#include <limits>
#include <memory>
#include <unetsrnn/train/trainer.hpp>

#include "common.hpp"
#include "device.hpp"

namespace examples {

inline cli::Parser train_parser() {
  cli::Parser p("train", "Train a U-Net / CR-UNet on one or more image+mask folders.");
  p.option("--model", "NAME",
           "unet2d_lw | unet2d_hw | unet2d_res_lw | unet2d_res_hw | crunet_res_lw | crunet_res_hw",
           "crunet_res_lw");
  p.option("--loss", "NAME", "bce | bce_dice_seed (the original's) | bce_dice (image soft Dice)",
           "bce");
  p.option("--epochs", "N", "training epochs", "20");
  p.option("--batch", "N", "images per batch", "2");
  p.option("--lr", "RATE", "Adam learning rate", "1e-3");
  p.option("--decay", "D", "Keras time decay: lr / (1 + D * step)", "0");
  p.option("--seed", "N", "seed of weights, split, batch order and augmentation", "1");
  p.option("--test-fraction", "F", "test part of each dataset", "0.1");
  p.option("--val-fraction", "F", "validation part carved from each training part", "0.1");
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
  o.plateau = !p.has("--no-plateau");
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
  // One writer per run folder, from before the data is read to the end of the run.
  RunFolder folder = RunFolder::open(o.out_dir);
  check_run_folder(o.out_dir, o.resume);

  LoadedData data = load_datasets(dirs, data_options);
  Split split = split_datasets(data.counts, test_fraction, o.seed, val_fraction);
  o.fingerprint = std::move(data.fingerprint);
  o.fingerprint.add("test_fraction", test_fraction).add("val_fraction", val_fraction);
  std::printf("model %s (%zu parameters) on %s, loss %s, %zu train / %zu val / %zu test images\n",
              model->name().c_str(), model->parameter_count(), Dev::name,
              std::string(to_string(o.loss)).c_str(), split.train.size(), split.val.size(),
              split.test.size());
  Trainer trainer(o, *model, data.samples, split);
  const EvalResult r = trainer.run();
  std::printf("test Dice %.4f (threshold 0.5), %.4f (threshold 0.3), IoU %.4f on %zu images\n",
              r.dice, r.dice_at_03, r.iou, r.images);
  std::printf("wrote %s/{log.csv,curve.png,best.weights,last.weights,split.txt,result.json}\n",
              o.out_dir.string().c_str());
  return 0;
}

}  // namespace examples
