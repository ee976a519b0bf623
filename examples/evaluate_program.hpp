#pragma once
// The evaluate program (see --help): its options, and the run on device Dev.
#include <cstdio>
#include <unetsrnn/train/trainer.hpp>

#include "app/cli.hpp"
#include "app/json.hpp"
#include "common.hpp"
#include "device.hpp"

namespace examples {

inline constexpr const char* kEvaluateSummary =
    "Evaluate weights on image+mask folders (all pairs, or one part of a split).";

struct EvaluateArgs {
  std::string weights, split, part = "test", loss = "bce", out;
  DatasetArgs data;
  std::string device = "cpu";
};

inline void add_evaluate_options(app::Command& c, EvaluateArgs& a) {
  c.option("--weights", a.weights, "FILE",
           "weights written by train (the model is read from the file); required");
  c.option("--split", a.split, "FILE", "split.txt of a training run: evaluate only its --part");
  c.option("--part", a.part, "NAME", "train | val | test (with --split)")
      ->check(app::one_of({"train", "val", "test"}));
  c.option("--loss", a.loss, "NAME", "loss to report: bce | bce_dice_seed | bce_dice")
      ->check(app::parsed_by(unetsrnn::parse_loss));
  c.option("--out", a.out, "FILE", "also write the JSON here");
  add_dataset_options(c, a.data);
  add_device_option(c, a.device);
}

template <class Dev>
int evaluate_body(const EvaluateArgs& a) {
  using namespace unetsrnn;
  if (a.weights.empty()) app::usage_error("evaluate", "--weights FILE is required");
  const LossKind loss = parse_loss(a.loss);
  const DatasetOptions data_options = dataset_options(a.data);
  const std::vector<std::string> dirs = dataset_dirs("evaluate", a.data);
  const WeightsHeader header = read_weights_header(a.weights);
  auto model = make_model<Dev>(header.model_name);
  load_weights(*model, a.weights);
  const LoadedData data = load_datasets(dirs, data_options);
  std::vector<std::size_t> indices;
  if (a.split.empty()) {
    for (std::size_t i = 0; i < data.samples.size(); ++i) indices.push_back(i);
  } else {
    const Split split = resolve_split(read_split(a.split), data.samples);
    indices = a.part == "train" ? split.train : a.part == "val" ? split.val : split.test;
  }
  if (indices.empty()) throw std::invalid_argument("nothing to evaluate: the chosen part is empty");
  const EvalResult r = evaluate(*model, data.samples, indices, loss);
  app::Json json;
  json["model"] = model->name();
  json.update(app::metrics_json(r, data.samples, indices, false));
  const std::string text = app::json_text(json);
  std::fputs(text.c_str(), stdout);
  if (!a.out.empty()) write_file_atomic(a.out, text);
  return 0;
}

#ifdef UNETSRNN_EXAMPLES_CUDA
int on_cuda(const EvaluateArgs& args);  // evaluate_body<Cuda> (cuda_programs.cu)
#endif

}  // namespace examples
