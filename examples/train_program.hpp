#pragma once
// The train program (see --help): options, and the run on device Dev.
#include <cstdio>
#include <unetsrnn/train/trainer.hpp>

#include "common.hpp"
#include "device.hpp"

namespace examples {

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
  p.option("--folds", "K",
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
  add_dataset_options(p);
  add_device_option(p);
  return p;
}

template <class Dev>
int train_body(const cli::Parser& p) {
  using namespace unetsrnn;
  if (p.get("--out").empty()) p.usage_error("--out DIR is required");
  const std::string protocol = p.get("--protocol");
  if (protocol != "default" && protocol != "seed")
    p.usage_error("--protocol must be default or seed, got '" + protocol + "'");
  const bool seed_protocol = protocol == "seed";
  // In the seed protocol the original's settings replace the defaults; explicit options still
  // win.
  auto int_opt = [&](const char* name, int seed_value) {
    return p.has(name) || !seed_protocol ? p.get_int(name) : seed_value;
  };
  auto num_opt = [&](const char* name, double seed_value) {
    return p.has(name) || !seed_protocol ? p.get_double(name) : seed_value;
  };

  TrainOptions o;
  o.model = p.get("--model");
  o.loss = parse_loss(p.get("--loss"));
  o.epochs = int_opt("--epochs", 220);
  o.batch = int_opt("--batch", 2);
  o.adam.lr = num_opt("--lr", 1e-5);
  o.adam.decay = num_opt("--decay", 1.99e-7);
  o.seed = static_cast<std::uint64_t>(p.get_int("--seed"));
  o.shuffle = !(p.has("--no-shuffle") || seed_protocol);
  o.augmentation.enabled = p.has("--augment");
  const std::string schedule = p.get("--schedule");
  if (schedule != "plateau" && schedule != "cosine" && schedule != "none")
    p.usage_error("--schedule must be plateau, cosine or none, got '" + schedule + "'");
  o.plateau = schedule == "plateau" && !p.has("--no-plateau");
  o.cosine = schedule == "cosine";
  o.cosine_min_lr = p.get_double("--min-lr");
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

  auto model = make_model<Dev>(o.model);  // validates the name before any data is read
  const LoadedData data = load_datasets(p);
  Split split =
      folds >= 2
          ? kfold_splits_datasets(data.counts, folds, o.seed,
                                  p.get_double("--val-fraction"))[static_cast<std::size_t>(fold)]
          : split_datasets(data.counts, p.get_double("--test-fraction"), o.seed,
                           p.get_double("--val-fraction"));
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
