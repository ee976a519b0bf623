#pragma once
// The demo program (see --help): options, and the run on device Dev.
#include <algorithm>
#include <cstdio>
#include <limits>
#include <memory>
#include <unetsrnn/data/synthetic.hpp>
#include <unetsrnn/io/image.hpp>
#include <unetsrnn/train/trainer.hpp>

#include "cli.hpp"
#include "common.hpp"
#include "device.hpp"

namespace examples {

inline cli::Parser demo_parser() {
  cli::Parser p("demo",
                "Train CR-UNet-LW on generated synthetic nail images and report test Dice.");
  p.option("--out", "DIR", "output folder", "runs/demo");
  p.option("--images", "N", "synthetic image/mask pairs to generate", "480");
  p.option("--height", "H", "image height (multiple of 16)", "96");
  p.option("--width", "W", "image width (multiple of 16)", "128");
  p.option("--epochs", "N", "training epochs", "20");
  p.option("--batch", "N", "images per batch", "4");
  p.option("--lr", "RATE", "Adam learning rate", "2e-3");
  p.option("--model", "NAME", unetsrnn::model_help("model to train"), "crunet_res_lw");
  p.option("--loss", "NAME", "bce | bce_dice_seed | bce_dice (soft Dice copes with small nails)",
           "bce_dice");
  p.option("--seed", "N", "seed of data, weights and batch order", "1");
  p.flag("--resume", "continue an interrupted demo in --out");
  p.flag("--quiet", "no progress bar");
  add_device_option(p);
  return p;
}

template <class Dev>
int demo_body(const cli::Parser& p) {
  using namespace unetsrnn;
  // Options first (usage errors, exit 2), then the output folder, then the work.
  int h = 0, w = 0;
  target_size(p, h, w);
  const int count = p.get_int_in("--images", 10);
  const auto seed = static_cast<std::uint64_t>(p.get_int_in("--seed", 0));
  TrainOptions o;
  o.model = p.get("--model");
  try {
    o.loss = parse_loss(p.get("--loss"));
  } catch (const std::invalid_argument& e) {
    p.usage_error(std::string("--loss: ") + e.what());
  }
  o.epochs = p.get_int_in("--epochs", 1);
  o.batch = p.get_int_in("--batch", 1);
  o.adam.lr = p.get_double_in("--lr", 0.0, std::numeric_limits<double>::infinity(), true);
  o.seed = seed;
  o.out_dir = p.get("--out");
  if (o.out_dir.empty()) p.usage_error("--out DIR must not be empty");
  o.resume = p.has("--resume");
  o.progress = !p.has("--quiet");
  o.augmentation.enabled = true;  // flips and 180-degree turns: the data is small
  o.plateau_options.factor = 0.5;
  o.plateau_options.patience = 3;
  try {
    check_train_options(o);
  } catch (const std::invalid_argument& e) {
    p.usage_error(e.what());
  }
  std::unique_ptr<AnyModel<Dev>> model;
  try {
    model = make_model<Dev>(o.model);
  } catch (const std::invalid_argument& e) {
    p.usage_error(std::string("--model: ") + e.what());
  }
  // One writer per run folder, for the training and the overlays after it.
  RunFolder folder = RunFolder::open(o.out_dir);
  check_run_folder(o.out_dir, o.resume);

  const std::vector<Sample> samples =
      generate_synthetic(static_cast<std::size_t>(count), h, w, seed);
  const Split split = split_indices(samples.size(), 0.15, seed, 0.1);
  std::printf("synthetic data: %zu images %dx%d -> %zu train / %zu val / %zu test\n",
              samples.size(), h, w, split.train.size(), split.val.size(), split.test.size());
  o.fingerprint.add("data", "synthetic")
      .add("data.images", count)
      .add("data.size", str_cat(h, "x", w));
  std::printf("model %s on %s, %zu parameters, %d epochs, batch %d, lr %g\n", model->name().c_str(),
              Dev::name, model->parameter_count(), o.epochs, o.batch, o.adam.lr);
  Trainer trainer(o, *model, samples, split);
  const EvalResult r = trainer.run();

  // Overlays of the first few test images, predicted by the final weights.
  const std::filesystem::path overlays = folder.subfolder("overlays");
  HostStaging<Dev> staging;
  for (std::size_t k = 0; k < std::min<std::size_t>(6, split.test.size()); ++k) {
    const Sample& s = samples[split.test[k]];
    CView<Cpu> logits = staging.forward(*model, s.image);
    Image mask(h, w, 1);
    for (std::size_t i = 0; i < mask.data.size(); ++i)
      mask.data[i] = logits.data[i] >= 0.0f ? 1.0f : 0.0f;
    save_png(overlays / (std::filesystem::path(s.name).stem().string() + "_overlay.png"),
             overlay(image_from_tensor(s.image), mask));
  }
  std::printf("overlays of test images in %s\n", overlays.string().c_str());
  std::printf("test Dice: %.4f (threshold 0.5) on %zu synthetic test images\n", r.dice, r.images);
  return 0;
}

}  // namespace examples
