#pragma once
// What a Trainer (trainer.hpp) reports and to whom: the numbers of a step, an epoch and a whole
// run, and TrainObserver, the interface through which an application follows a run (its progress
// bar, logs, charts and result files; examples/app/run_report.hpp is the example programs').
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "unetsrnn/data/sample.hpp"
#include "unetsrnn/data/split.hpp"

namespace unetsrnn {

struct TrainOptions;  // trainer.hpp

// Test/validation metrics of one model on a set of samples.
struct EvalResult {
  std::size_t images = 0;
  double loss = 0.0;
  double dice = 0.0, dice_at_03 = 0.0;  // global Dice at thresholds 0.5 and 0.3 (the original's)
  double iou = 0.0, precision = 0.0, recall = 0.0, mean_image_dice = 0.0;  // at 0.5
  std::vector<double> per_image_dice;                                      // at 0.5
};

// An optimiser step just taken, as Trainer::on_step and TrainObserver::on_batch see it.
struct TrainStep {
  int epoch = 0;
  std::size_t batch = 0;   // within the epoch, from 0
  std::uint64_t step = 0;  // optimiser steps taken in this run so far (a resumed run counts on)
  int images = 0;
  double loss = 0.0;  // mean loss of the batch, before the step
  // The epoch so far: images trained of all, their mean loss, the global Dice of this rank's share
  // of them at threshold 0.5, and the seconds since the epoch began.
  std::size_t epoch_images_done = 0, epoch_images = 0;
  double epoch_loss = 0.0, epoch_dice = 0.0, epoch_seconds = 0.0;
};

// One epoch's numbers (a row of the examples' log.csv). Without a validation part val_loss and
// val_dice are NaN.
struct EpochRecord {
  int epoch = 0;
  double train_loss = 0, train_dice = 0, val_loss = 0, val_dice = 0;
  double lr = 0;       // the rate of the epoch's first step (after Keras' time decay)
  double seconds = 0;  // training and validation
};

// What a run returns.
struct TrainResult {
  std::string model;
  int first_epoch = 1;              // > 1: resumed from the checkpoint of epoch first_epoch - 1
  std::vector<EpochRecord> epochs;  // the epochs this run trained, from first_epoch on
  int best_epoch = 0;               // of the whole run (a checkpoint carries it over a resume)
  double best_dice = -1.0;          // its validation Dice (training Dice without a validation part)
  EvalResult test;                  // the final weights on split.test (per image in test order)
  std::optional<EvalResult> test_best;  // best.weights on split.test, when both exist
};

// What TrainObserver::on_start sees: the run as the trainer runs it.
struct TrainStart {
  const TrainOptions& options;  // options.model is the model's name
  const std::vector<Sample>& samples;
  const Split& split;
  int first_epoch = 1;  // > 1: resumed from the checkpoint of epoch first_epoch - 1
};

// Where an observer writes its own files of a checkpoint (TrainObserver::on_checkpoint): into the
// run folder, before the checkpoint is committed, so that they describe the same epochs. Until a
// fresh run's first commit each file is remembered, and removed again if the run fails.
class CheckpointFiles {
 public:
  using Writer = std::function<void(const std::filesystem::path&)>;
  CheckpointFiles(std::filesystem::path folder,
                  std::function<void(const std::filesystem::path&, const Writer&)> write)
      : folder_(std::move(folder)), write_(std::move(write)) {}
  const std::filesystem::path& folder() const { return folder_; }
  // Calls write(folder / name); `write` should replace the file atomically (write_file_atomic).
  void write(const std::filesystem::path& name, const Writer& write) const {
    write_(folder_ / name, write);
  }

 private:
  std::filesystem::path folder_;
  std::function<void(const std::filesystem::path&, const Writer&)> write_;
};

// How a Trainer reports a run: progress, logs, charts and result files are the application's
// (examples/app/run_report.hpp is the example programs' observer). Every method does nothing by
// default. Observers are told on the rank that writes the run folder only (rank 0 of a
// distributed job), in this order: on_start; per epoch on_batch after every step, on_epoch_end,
// on_checkpoint; on_finish. An exception thrown by an observer stops the run like any error of the
// trainer's own (a fresh run then leaves nothing behind).
class TrainObserver {
 public:
  virtual ~TrainObserver() = default;
  // Before the first epoch; after a resume has restored its checkpoint (an observer of a resumed
  // run reads back what it wrote with that checkpoint here).
  virtual void on_start(const TrainStart&) {}
  virtual void on_batch(const TrainStep&) {}
  // After the epoch's validation and its choice of best weights, before its checkpoint.
  virtual void on_epoch_end(const EpochRecord&) {}
  // While the checkpoint of `epoch` is written: the observer's files of it go through `files`.
  virtual void on_checkpoint(int /*epoch*/, const CheckpointFiles& /*files*/) {}
  // After the final test evaluation; `result` is what run() returns.
  virtual void on_finish(const TrainResult& /*result*/) {}
  // Something the user should know that does not stop the run, at any time (a resume that
  // cannot be checked is told while the checkpoint is restored, before on_start).
  virtual void on_warning(const std::string& /*message*/) {}
};

}  // namespace unetsrnn
