#pragma once
// The demo program (see --help): its options, and the run on device Dev.
#include <algorithm>
#include <cstdio>
#include <limits>
#include <memory>
#include <unetsrnn/data/synthetic.hpp>
#include <unetsrnn/io/image.hpp>
#include <unetsrnn/train/trainer.hpp>

#include "app/cli.hpp"
#include "app/run_report.hpp"
#include "common.hpp"
#include "device.hpp"

namespace examples {

inline constexpr const char* kDemoSummary =
    "Train CR-UNet-LW on generated synthetic nail images and report test Dice.";

struct DemoArgs {
  std::string out = "runs/demo";
  int images = 480, height = 96, width = 128, epochs = 20, batch = 4;
  double lr = 2e-3;
  std::string model = "crunet_res_lw", loss = "bce_dice";
  int seed = 1;
  bool resume = false, quiet = false;
  std::string device = "cpu";
};

inline void add_demo_options(app::Command& c, DemoArgs& a) {
  using app::integer_in;
  c.option("--out", a.out, "DIR", "output folder");
  c.option("--images", a.images, "N", "synthetic image/mask pairs to generate")
      ->check(integer_in(10));
  add_size_options(c, a.height, a.width, false);
  c.option("--epochs", a.epochs, "N", "training epochs")->check(integer_in(1));
  c.option("--batch", a.batch, "N", "images per batch")->check(integer_in(1));
  c.option("--lr", a.lr, "RATE", "Adam learning rate")
      ->check(app::number_in(0.0, std::numeric_limits<double>::infinity(), true));
  add_model_option(c, a.model);
  c.option("--loss", a.loss, "NAME",
           "bce | bce_dice_seed | bce_dice (soft Dice copes with small nails)")
      ->check(app::parsed_by(unetsrnn::parse_loss));
  c.option("--seed", a.seed, "N", "seed of data, weights and batch order")->check(integer_in(0));
  c.flag("--resume", a.resume, "continue an interrupted demo in --out");
  c.flag("--quiet", a.quiet, "no progress bar");
  add_device_option(c, a.device);
}

template <class Dev>
int demo_body(const DemoArgs& a) {
  using namespace unetsrnn;
  // Options first (usage errors, exit 2), then the output folder, then the work.
  const int h = a.height, w = a.width, count = a.images;
  const auto seed = static_cast<std::uint64_t>(a.seed);
  TrainOptions o;
  o.model = a.model;
  o.loss = parse_loss(a.loss);
  o.epochs = a.epochs;
  o.batch = a.batch;
  o.adam.lr = a.lr;
  o.seed = seed;
  o.out_dir = a.out;
  if (o.out_dir.empty()) app::usage_error("demo", "--out DIR must not be empty");
  o.resume = a.resume;
  o.augmentation.enabled = true;  // flips and 180-degree turns: the data is small
  o.plateau_options.factor = 0.5;
  o.plateau_options.patience = 3;
  try {
    check_train_options(o);
  } catch (const std::invalid_argument& e) {
    app::usage_error("demo", e.what());
  }
  std::unique_ptr<AnyModel<Dev>> model = make_model<Dev>(o.model);
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
  app::RunReport report(!a.quiet);
  trainer.add_observer(report);
  const EvalResult r = trainer.run().test;

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

#ifdef UNETSRNN_EXAMPLES_CUDA
int on_cuda(const DemoArgs& args);  // demo_body<Cuda> (cuda_programs.cu)
#endif

}  // namespace examples
