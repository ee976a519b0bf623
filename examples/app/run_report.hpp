#pragma once
// How the example programs report a training run: RunReport, a unetsrnn::TrainObserver that
// prints the progress bar and a line per epoch, and writes into the run folder
//   log.csv     one row per epoch (training_log.hpp), with each checkpoint
//   curve.png   loss and Dice per epoch (plot.hpp), with each checkpoint
//   result.json the run and its test metrics, at the end (experiments/run.py reads it)
// A resumed run reads its log.csv back first, so all three cover the whole run. The trainer tells
// its observers on the rank that writes the run folder only, and a file written with a checkpoint
// goes through the trainer (CheckpointFiles): it is part of that checkpoint, and a fresh run that
// fails before its first one removes it again.
#include <cstdio>
#include <filesystem>
#include <string>
#include <unetsrnn/io/atomic_file.hpp>
#include <unetsrnn/train/trainer.hpp>
#include <vector>

#include "app/json.hpp"
#include "app/plot.hpp"
#include "app/progress.hpp"
#include "app/training_log.hpp"

namespace app {

class RunReport final : public unetsrnn::TrainObserver {
 public:
  // progress: the progress bar on stderr (where stderr is a terminal).
  explicit RunReport(bool progress = true) : progress_(progress) {}

  void on_start(const unetsrnn::TrainStart& start) override {
    options_ = start.options;
    samples_ = &start.samples;
    split_ = &start.split;
    history_.clear();
    if (start.first_epoch > 1) {
      history_ = read_log_csv(options_.out_dir / "log.csv", start.first_epoch - 1);
      say(unetsrnn::str_cat("resumed from epoch ", start.first_epoch - 1, " of ", options_.epochs));
    }
  }

  void on_batch(const unetsrnn::TrainStep& step) override {
    progress_.update(step, options_.epochs);
  }

  void on_epoch_end(const unetsrnn::EpochRecord& r) override {
    progress_.end_line();
    history_.push_back(r);
    say(unetsrnn::str_cat("epoch ", r.epoch, "/", options_.epochs, "  train loss ",
                          format_number(r.train_loss, 4), " dice ", format_number(r.train_dice, 4),
                          "  val loss ", format_number(r.val_loss, 4), " dice ",
                          format_number(r.val_dice, 4), "  lr ", format_number(r.lr, 3), "  ",
                          format_number(r.seconds, 3), " s"));
  }

  void on_checkpoint(int, const unetsrnn::CheckpointFiles& files) override {
    files.write("log.csv", [&](const std::filesystem::path& path) {
      unetsrnn::write_file_atomic(path, log_csv(history_));
    });
    files.write("curve.png", [&](const std::filesystem::path& path) { draw_curve(path); });
  }

  void on_finish(const unetsrnn::TrainResult& r) override {
    write_json_file(options_.out_dir / "result.json", result_json(r));
  }

  void on_warning(const std::string& message) override { say("warning: " + message); }

  // Every epoch of the run so far (those before a resume included).
  const std::vector<unetsrnn::EpochRecord>& history() const { return history_; }

  // result.json: the run's settings and sizes, its best epoch, and the test metrics of the final
  // weights ("test") and of best.weights ("test_best_weights", null without them).
  Json result_json(const unetsrnn::TrainResult& r) const {
    double seconds = 0.0;
    for (const auto& e : history_) seconds += e.seconds;
    Json j;
    j["model"] = r.model;
    j["loss"] = std::string(unetsrnn::to_string(options_.loss));
    j["epochs"] = options_.epochs;
    j["batch"] = options_.batch;
    j["lr"] = json_number(options_.adam.lr);
    j["seed"] = options_.seed;
    j["train_images"] = split_->train.size();
    j["val_images"] = split_->val.size();
    j["test_images"] = split_->test.size();
    j["train_seconds"] = json_number(seconds);
    j["best_epoch"] = r.best_epoch;
    j["best_val_dice"] = json_number(r.best_dice);
    j["test_threshold"] = 0.5;
    j["test"] = metrics_json(r.test, *samples_, split_->test, true);
    j["test_best_weights"] =
        r.test_best ? metrics_json(*r.test_best, *samples_, split_->test, true) : Json(nullptr);
    return j;
  }

 private:
  static void say(const std::string& line) {
    std::printf("%s\n", line.c_str());
    std::fflush(stdout);
  }

  void draw_curve(const std::filesystem::path& path) const {
    std::vector<double> train_loss, val_loss, val_dice, train_dice;
    for (const auto& r : history_) {
      train_loss.push_back(r.train_loss);
      val_loss.push_back(r.val_loss);
      train_dice.push_back(r.train_dice);
      val_dice.push_back(r.val_dice);
    }
    PlotOptions chart;
    chart.title = options_.model + " - loss and Dice per epoch";
    save_line_chart(path,
                    {{"train loss", train_loss, {}, {}},
                     {"val loss", val_loss, {}, {}},
                     {"train dice", train_dice, {}, {}},
                     {"val dice", val_dice, {}, {}}},
                    chart);
  }

  ProgressBar progress_;
  unetsrnn::TrainOptions options_;
  const std::vector<unetsrnn::Sample>* samples_ = nullptr;
  const unetsrnn::Split* split_ = nullptr;
  std::vector<unetsrnn::EpochRecord> history_;
};

}  // namespace app
