#pragma once
// The evaluate program (see --help): options, and the run on device Dev.
#include <cstdio>
#include <unetsrnn/train/trainer.hpp>

#include "common.hpp"
#include "device.hpp"

namespace examples {

inline cli::Parser evaluate_parser() {
  cli::Parser p("evaluate",
                "Evaluate weights on image+mask folders (all pairs, or one part of a split).");
  p.option("--weights", "FILE", "weights written by train (the model is read from the file)", "");
  p.option("--split", "FILE", "split.txt of a training run: evaluate only its --part", "");
  p.option("--part", "NAME", "train | val | test (with --split)", "test");
  p.option("--loss", "NAME", "loss to report: bce | bce_dice_seed | bce_dice", "bce");
  p.option("--out", "FILE", "also write the JSON here", "");
  add_dataset_options(p);
  add_device_option(p);
  return p;
}

template <class Dev>
int evaluate_body(const cli::Parser& p) {
  using namespace unetsrnn;
  if (p.get("--weights").empty()) p.usage_error("--weights FILE is required");
  const std::string part = p.get("--part");
  if (part != "train" && part != "val" && part != "test")
    p.usage_error("--part must be train, val or test, got '" + part + "'");
  LossKind loss = LossKind::Bce;
  try {
    loss = parse_loss(p.get("--loss"));
  } catch (const std::invalid_argument& e) {
    p.usage_error(std::string("--loss: ") + e.what());
  }
  const DatasetOptions data_options = dataset_options(p);
  const std::vector<std::string> dirs = dataset_dirs(p);
  const WeightsHeader header = read_weights_header(p.get("--weights"));
  auto model = make_model<Dev>(header.model_name);
  load_weights(*model, p.get("--weights"));
  const LoadedData data = load_datasets(dirs, data_options);
  std::vector<std::size_t> indices;
  if (p.get("--split").empty()) {
    for (std::size_t i = 0; i < data.samples.size(); ++i) indices.push_back(i);
  } else {
    const Split split = resolve_split(read_split(p.get("--split")), data.samples);
    indices = part == "train" ? split.train : part == "val" ? split.val : split.test;
  }
  if (indices.empty()) throw std::invalid_argument("nothing to evaluate: the chosen part is empty");
  const EvalResult r = evaluate(*model, data.samples, indices, loss);
  using train_detail::fmt;
  std::string json =
      str_cat("{\"model\": \"", model->name(), "\", \"images\": ", r.images,
              ", \"loss\": ", fmt(r.loss), ", \"dice\": ", fmt(r.dice),
              ", \"dice_at_0.3\": ", fmt(r.dice_at_03), ", \"iou\": ", fmt(r.iou),
              ", \"precision\": ", fmt(r.precision), ", \"recall\": ", fmt(r.recall),
              ", \"mean_image_dice\": ", fmt(r.mean_image_dice), ", \"per_image\": [");
  for (std::size_t i = 0; i < indices.size(); ++i)
    json += str_cat(i ? ", " : "",
                    "{\"name\": ", train_detail::json_string(data.samples[indices[i]].name),
                    ", \"dice\": ", fmt(r.per_image_dice[i]), "}");
  json += "]}\n";
  std::fputs(json.c_str(), stdout);
  if (!p.get("--out").empty()) write_file_atomic(p.get("--out"), json);
  return 0;
}

}  // namespace examples
