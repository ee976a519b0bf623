#pragma once
// The training loop: batches from a BatchLoader, loss on logits, backward, optimiser step;
// per-epoch validation, checkpoints that survive kill -9, final test metrics (TrainResult).
//
// Reporting is not the engine's: a Trainer tells its TrainObservers (below) about the run (each
// step, each epoch, each checkpoint, the result) and writes no log, chart or result file itself;
// the example programs' observer (examples/app/run_report.hpp) prints the progress and writes
// log.csv, curve.png and result.json. The trainer owns what a resume depends on: the checkpoint
// (ckpt/, checkpoint.txt), split.txt, best.weights and last.weights.
//
// Devices: Trainer<Dev> and evaluate run the model on Dev (Cpu by default, or Cuda from a .cu
// source that includes <unetsrnn/cuda.hpp>). Data loading, the loss, its gradient and the metrics
// stay on the host: each batch is uploaded, the logits come back, the logit gradient goes up again
// (HostStaging below, with buffers reused from batch to batch). Checkpoints and weights files are
// the same on every device, so a run can be resumed, evaluated or deployed on another one.
//
// Resumability: everything random is derived from (seed, epoch) — batch order, augmentation — and
// the CPU kernels are deterministic for a fixed thread count (the CUDA kernels are deterministic
// too), so a run resumed from the checkpoint of epoch e continues exactly as the uninterrupted run
// would. A checkpoint is the files ckpt/epoch-NNNN.{weights,optim} plus `checkpoint.txt`, which is
// written last (atomically) and names the epoch: a kill at any moment leaves either the previous or
// the new checkpoint complete.
//
// Data parallel (an optional Communicator, train/communicator.hpp): every rank loads the same
// global batches (same order, same augmentation: functions of the seed, no communication), keeps
// its contiguous share of each, and scales its logit gradient by share / batch, so that the sum of
// the ranks' gradients is the one-process batch gradient (every loss is a mean over images). The
// gradients are summed in buckets (GradientReducer), each started as soon as the backward pass has
// finished its parameters, then every rank takes the same Adam step.
// Validation and test metrics are computed on shards (whole batches, round robin) and summed, so
// they equal the one-process numbers. Rank 0 alone writes files; every rank reads a checkpoint.
// Safety: the output folder is locked for the run (RunFolder: a second writer fails at once), the
// checkpoint stores the run's fingerprint (fingerprint.hpp) and a resume with other data or options
// is refused saying what differs; --resume without a checkpoint is an error. A non-finite loss,
// logit, weight or validation loss stops the run (TrainingDiverged) with the last good checkpoint
// kept. A fresh run that fails before its first checkpoint removes what it wrote (and the folders
// it created), so it leaves nothing.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <limits>
#include <optional>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include "unetsrnn/data/loader.hpp"
#include "unetsrnn/data/split.hpp"
#include "unetsrnn/io/atomic_file.hpp"
#include "unetsrnn/io/crc32.hpp"
#include "unetsrnn/io/run_folder.hpp"
#include "unetsrnn/io/weights.hpp"
#include "unetsrnn/models/factory.hpp"
#include "unetsrnn/train/checkpoint.hpp"
#include "unetsrnn/train/communicator.hpp"
#include "unetsrnn/train/fingerprint.hpp"
#include "unetsrnn/train/loss.hpp"
#include "unetsrnn/train/metrics.hpp"
#include "unetsrnn/train/observer.hpp"
#include "unetsrnn/train/optim.hpp"

namespace unetsrnn {

struct TrainOptions {
  std::string model = "crunet_res_lw";
  LossKind loss = LossKind::Bce;
  int epochs = 20;
  int batch = 2;
  AdamOptions adam{};      // lr, betas, epsilon, Keras time decay
  std::uint64_t seed = 1;  // weights, batch order, augmentation
  bool shuffle = true;     // the original did not shuffle (--protocol seed)
  Augmentation augmentation{};
  bool plateau = true;  // ReduceLROnPlateau on validation loss
  ReduceLROnPlateauOptions plateau_options{};
  // Cosine annealing of the base rate per epoch, from adam.lr at epoch 1 to cosine_min_lr after the
  // last epoch (replaces the plateau schedule when on; stateless, so resumes need nothing saved).
  bool cosine = false;
  double cosine_min_lr = 1e-5;
  std::filesystem::path out_dir;
  bool resume = false;
  std::string init_weights;  // optional weights file to start from
  // What the caller knows of the run that changes its results (data folders and their files, the
  // split's parameters, ...); the Trainer adds its own options, the model and the split.
  RunFingerprint fingerprint;
};

// Throws std::invalid_argument naming the first option of `o` that no run accepts; the Trainer
// checks this too, programs call it before loading any data.
inline void check_train_options(const TrainOptions& o) {
  if (o.epochs < 1) fail_argument("epochs must be >= 1, got ", o.epochs);
  if (o.batch < 1) fail_argument("batch size must be >= 1, got ", o.batch);
  if (!(o.adam.lr > 0.0) || !std::isfinite(o.adam.lr))
    fail_argument("the learning rate must be a finite number > 0, got ", o.adam.lr);
  if (!(o.adam.decay >= 0.0) || !std::isfinite(o.adam.decay))
    fail_argument("the time decay must be a finite number >= 0, got ", o.adam.decay);
  Adam<Cpu> check(o.adam);  // betas and epsilon
  if (o.plateau) ReduceLROnPlateau check_plateau(o.plateau_options);
  const Augmentation& a = o.augmentation;
  if (!(a.brightness >= 0.0f && a.brightness <= 1.0f) ||
      !(a.contrast >= 0.0f && a.contrast <= 1.0f))
    fail_argument("augmentation brightness and contrast must be in [0, 1], got ", a.brightness,
                  " and ", a.contrast);
  if (o.out_dir.empty()) fail_argument("an output folder is required");
}

// The options of `o` that change a run's results, for its fingerprint (see fingerprint.hpp). An
// option added to TrainOptions that changes results gets its entry here. `epochs` has none: a
// resumed run may be extended (a schedule that depends on it adds it as its own entry).
inline void add_training_entries(RunFingerprint& fp, const TrainOptions& o) {
  fp.add("model", o.model);
  fp.add("loss", to_string(o.loss));
  fp.add("batch", o.batch);
  fp.add("lr", o.adam.lr);
  fp.add("adam.beta1", o.adam.beta1);
  fp.add("adam.beta2", o.adam.beta2);
  fp.add("adam.epsilon", o.adam.epsilon);
  fp.add("adam.decay", o.adam.decay);
  fp.add("seed", o.seed);
  fp.add("shuffle", o.shuffle);
  const Augmentation& a = o.augmentation;
  fp.add("augment", a.enabled ? str_cat("flips ", a.flips, " rotations ", a.rotations,
                                        " brightness ", a.brightness, " contrast ", a.contrast)
                              : std::string("off"));
  const ReduceLROnPlateauOptions& p = o.plateau_options;
  fp.add("plateau", o.plateau ? str_cat("factor ", p.factor, " patience ", p.patience, " min_lr ",
                                        p.min_lr, " min_delta ", p.min_delta, " cooldown ",
                                        p.cooldown, p.maximise ? " max" : " min")
                              : std::string("off"));
  fp.add("cosine", o.cosine ? str_cat("min_lr ", o.cosine_min_lr) : std::string("off"));
  fp.add("init_weights", o.init_weights);
}

// A fresh run needs an output folder without a checkpoint, a resumed one a folder with one; throws
// std::invalid_argument saying which. The Trainer checks it; programs may check it before loading
// data (with the folder locked: see RunFolder).
inline void check_run_folder(const std::filesystem::path& out_dir, bool resume) {
  const bool have_checkpoint = std::filesystem::exists(out_dir / "checkpoint.txt");
  if (resume && !have_checkpoint)
    fail_argument("cannot resume: output folder '", out_dir.string(),
                  "' holds no checkpoint (checkpoint.txt); run without --resume to start");
  if (!resume && have_checkpoint)
    fail_argument("output folder '", out_dir.string(),
                  "' holds a checkpoint of an earlier run; pass --resume to continue it or "
                  "choose another folder");
}

// A training that produced a non-finite loss, logit, weight or validation loss.
struct TrainingDiverged : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Moves a host batch to the model's device and the logits back, for code that works on host tensors
// (loss, metrics, images). On the CPU it copies nothing; on another device it keeps one input, one
// logits and one gradient buffer and only reallocates when a batch is larger than any before.
template <class Dev = Cpu>
class HostStaging {
 public:
  // The model's logits for `images`, readable on the host until the next forward.
  template <class Model>
  CView<Cpu> forward(Model& model, const Tensor<Cpu>& images) {
    if constexpr (std::is_same_v<Dev, Cpu>) {
      return model.forward(images.cview());
    } else {
      input_.copy_from_host(images);
      const CView<Dev> logits = model.forward(input_.cview());
      logits_.resize(logits.shape);
      // Waits for the forward pass. Per image when the logits are a strided view.
      const std::size_t image = logits.shape.image_size();
      if (logits.contiguous())
        DeviceMemory<Dev>::download(logits_.data(), logits.data, logits.shape.size());
      else
        for (int i = 0; i < logits.shape.n; ++i)
          DeviceMemory<Dev>::download(logits_.data() + i * image, logits.image(i), image);
      return logits_.cview();
    }
  }
  // Backward pass from logit gradients held on the host, telling `ready` which gradients are
  // final as it goes (AnyModel::backward).
  void backward(AnyModel<Dev>& model, const Tensor<Cpu>& dlogits, GradientReadyHook& ready) {
    if constexpr (std::is_same_v<Dev, Cpu>) {
      model.backward(dlogits.cview(), ready);
    } else {
      dlogits_.copy_from_host(dlogits);
      model.backward(dlogits_.cview(), ready);
    }
  }

 private:
  Tensor<Dev> input_, dlogits_;  // device copies (unused on the CPU)
  Tensor<Cpu> logits_;           // host copy of the logits (unused on the CPU)
};

// Runs the model over samples[indices] in batches; loss is the batch-size-weighted mean.
template <class Dev = Cpu>
EvalResult evaluate(AnyModel<Dev>& model, const std::vector<Sample>& samples,
                    const std::vector<std::size_t>& indices, LossKind loss_kind, int batch = 4) {
  EvalResult r;
  if (indices.empty()) return r;
  SegmentationMetrics at05(0.5), at03(0.3);
  LoaderOptions lo;
  lo.batch_size = batch;
  BatchLoader loader(samples, indices, lo);
  Batch b;
  HostStaging<Dev> staging;
  double loss_sum = 0.0;
  while (loader.next(b)) {
    CView<Cpu> logits = staging.forward(model, b.images);
    loss_sum += compute_loss(loss_kind, logits, b.masks, View<Cpu>{}) * b.images.shape().n;
    at05.add_logits(logits, b.masks);
    at03.add_logits(logits, b.masks);
  }
  r.images = at05.images();
  r.loss = loss_sum / static_cast<double>(r.images);
  r.dice = at05.global_dice();
  r.dice_at_03 = at03.global_dice();
  const ConfusionCounts& c = at05.global();
  r.iou = c.iou();
  r.precision = c.precision();
  r.recall = c.recall();
  r.mean_image_dice = at05.mean_image_dice();
  r.per_image_dice = at05.per_image_dice();
  return r;
}

// evaluate() on shards: batch k of the one-process evaluation goes to rank k % size, and the
// per-batch loss sums and per-image confusion counts are summed over the ranks into their global
// slots, then reduced in the one-process order, so every rank gets the one-process result exactly.
template <class Dev = Cpu>
EvalResult evaluate(AnyModel<Dev>& model, const std::vector<Sample>& samples,
                    const std::vector<std::size_t>& indices, LossKind loss_kind, int batch,
                    Communicator<Dev>& comm) {
  if (comm.size() == 1) return evaluate(model, samples, indices, loss_kind, batch);
  EvalResult r;
  if (indices.empty()) return r;
  if (batch < 1) fail_argument("evaluate: batch must be >= 1, got ", batch);
  const std::size_t bs = static_cast<std::size_t>(batch), m = indices.size();
  const std::size_t batches = (m + bs - 1) / bs;
  const std::size_t ranks = static_cast<std::size_t>(comm.size());
  const std::size_t rank = static_cast<std::size_t>(comm.rank());
  // Only the last batch can be short, and it stays last in every rank's list, so this rank's
  // loader cuts exactly the one-process batches.
  std::vector<std::size_t> mine, first_image;
  for (std::size_t k = rank; k < batches; k += ranks) {
    first_image.push_back(k * bs);
    for (std::size_t i = k * bs; i < std::min(m, (k + 1) * bs); ++i) mine.push_back(indices[i]);
  }
  // [batches loss sums][4 counts per image at 0.5][4 per image at 0.3], doubles (exact < 2^53).
  std::vector<double> slots(batches + 8 * m, 0.0);
  double* loss_slot = slots.data();
  double* counts05 = loss_slot + batches;
  double* counts03 = counts05 + 4 * m;
  auto put = [](double* at, const ConfusionCounts& c) {
    at[0] = static_cast<double>(c.tp), at[1] = static_cast<double>(c.fp);
    at[2] = static_cast<double>(c.fn), at[3] = static_cast<double>(c.tn);
  };
  if (!mine.empty()) {
    LoaderOptions lo;
    lo.batch_size = batch;
    BatchLoader loader(samples, mine, lo);
    Batch b;
    HostStaging<Dev> staging;
    std::size_t local = 0;
    while (loader.next(b)) {
      const std::size_t k = first_image[local++] / bs, first = k * bs;
      CView<Cpu> logits = staging.forward(model, b.images);
      loss_slot[k] = compute_loss(loss_kind, logits, b.masks, View<Cpu>{}) * b.images.shape().n;
      const auto c05 = confusion_per_image(logits, b.masks, Scores::Logits, 0.5);
      const auto c03 = confusion_per_image(logits, b.masks, Scores::Logits, 0.3);
      for (std::size_t i = 0; i < c05.size(); ++i) {
        put(counts05 + 4 * (first + i), c05[i]);
        put(counts03 + 4 * (first + i), c03[i]);
      }
    }
  }
  comm.sum_host(slots);
  auto get = [](const double* at) {
    return ConfusionCounts{static_cast<std::uint64_t>(at[0]), static_cast<std::uint64_t>(at[1]),
                           static_cast<std::uint64_t>(at[2]), static_cast<std::uint64_t>(at[3])};
  };
  double loss_sum = 0.0;
  for (std::size_t k = 0; k < batches; ++k) loss_sum += loss_slot[k];
  ConfusionCounts g05, g03;
  double dice_sum = 0.0;
  for (std::size_t i = 0; i < m; ++i) {
    const ConfusionCounts c = get(counts05 + 4 * i);
    g05 += c;
    g03 += get(counts03 + 4 * i);
    r.per_image_dice.push_back(c.dice());
    dice_sum += c.dice();
  }
  r.images = m;
  r.loss = loss_sum / static_cast<double>(m);
  r.dice = g05.dice();
  r.dice_at_03 = g03.dice();
  r.iou = g05.iou();
  r.precision = g05.precision();
  r.recall = g05.recall();
  r.mean_image_dice = dice_sum / static_cast<double>(m);
  return r;
}

namespace train_detail {

inline std::uint64_t epoch_seed(std::uint64_t seed, int epoch) {
  return seed * 0x9E3779B97F4A7C15ull + static_cast<std::uint64_t>(epoch) * 0xBF58476D1CE4E5B9ull +
         1;
}

}  // namespace train_detail

// Trains `model` on samples[split.train], validates on split.val, tests on split.test at the end.
template <class Dev = Cpu>
class Trainer {
 public:
  // `comm` (optional, outlives the trainer): data-parallel training over its ranks.
  Trainer(TrainOptions options, AnyModel<Dev>& model, const std::vector<Sample>& samples,
          Split split, Communicator<Dev>* comm = nullptr)
      : comm_(comm ? comm : &local_),
        o_(std::move(options)),
        model_(model),
        samples_(samples),
        split_(std::move(split)),
        optimizer_(o_.adam),
        plateau_(o_.plateau_options) {
    check_train_options(o_);
    if (split_.train.empty()) fail_argument("the training split is empty");
    if (o_.cosine) cosine_.emplace(o_.adam.lr, o_.cosine_min_lr, o_.epochs);
    o_.model = model_.name();  // the model given is the one trained
    // What would fail later, checked before the output folder is touched.
    check_split_names(split_, samples_);
    const Shape is = samples_.at(split_.train.front()).image.shape();
    check_target_size(is.h, is.w);
    fingerprint_ = o_.fingerprint;
    add_training_entries(fingerprint_, o_);
    add_split_entries(fingerprint_, split_, samples_);
  }

  // Reports the run to `observer` (which outlives the run), after those added before; only on
  // the rank that writes the run folder (see TrainObserver).
  void add_observer(TrainObserver& observer) { observers_.push_back(&observer); }
  // Called after every optimiser step on every rank when set (tests compare devices and ranks
  // step by step with it).
  std::function<void(const TrainStep&)> on_step;
  // The gradient all-reduce of data-parallel training (its bucket size can be set before run()).
  GradientReducer<Dev>& gradient_reducer() { return reducer_; }

  // The fingerprint this run stores with its checkpoints and checks on resume.
  const RunFingerprint& fingerprint() const { return fingerprint_; }

  // Runs (or resumes) training; returns its epochs and the test metrics.
  TrainResult run() {
    std::optional<RunFolder> folder;  // rank 0 alone writes, so it alone locks the folder
    if (comm_->is_root()) {
      folder.emplace(RunFolder::open(o_.out_dir));
      folder->subfolder("ckpt");
    }
    try {
      return run_locked();
    } catch (...) {
      discard_partial_outputs();
      throw;
    }
  }

 private:
  TrainResult run_locked() {
    namespace fs = std::filesystem;
    if (comm_->is_root()) check_run_folder(o_.out_dir, o_.resume);
    comm_->barrier();  // the folder is checked (or rank 0 failed and the job ends)
    params_ = model_.parameters();
    int start_epoch = 1;
    if (o_.resume) {
      start_epoch = restore_checkpoint() + 1;
      committed_ = true;
    } else {
      model_.init(o_.seed);
      if (!o_.init_weights.empty()) load_weights(model_, o_.init_weights);
      if (comm_->is_root())
        write_output(o_.out_dir / "split.txt", [&](const fs::path& path) {
          write_split(path, split_, samples_, str_cat("model ", model_.name(), ", seed ", o_.seed));
        });
    }
    if (comm_->is_root()) remove_epoch_files_except(start_epoch - 1);
    result_ = TrainResult{};
    result_.model = model_.name();
    result_.first_epoch = start_epoch;
    notify([&](TrainObserver& o) { o.on_start(TrainStart{o_, samples_, split_, start_epoch}); });

    for (int epoch = start_epoch; epoch <= o_.epochs; ++epoch) {
      const auto t0 = std::chrono::steady_clock::now();
      if (cosine_) optimizer_.set_lr(cosine_->lr(epoch - 1));
      EpochRecord row = train_epoch(epoch);
      // The last step's loss was computed before it: only the weights can tell.
      if (const std::string bad = first_non_finite_parameter(); !bad.empty())
        diverged(epoch, "parameter '" + bad + "' holds a non-finite value after the last step");
      if (!split_.val.empty()) {
        const EvalResult v = evaluate(model_, samples_, split_.val, o_.loss, o_.batch, *comm_);
        if (!std::isfinite(v.loss)) diverged(epoch, str_cat("the validation loss is ", v.loss));
        row.val_loss = v.loss;
        row.val_dice = v.dice;
      } else {
        row.val_loss = row.val_dice = std::numeric_limits<double>::quiet_NaN();
      }
      row.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      result_.epochs.push_back(row);
      const double monitored = split_.val.empty() ? row.train_loss : row.val_loss;
      if (o_.plateau && !cosine_) plateau_.on_epoch_end(monitored, optimizer_);
      const double selection = split_.val.empty() ? row.train_dice : row.val_dice;
      if (selection > best_dice_) {
        best_dice_ = selection;
        best_epoch_ = epoch;
        if (comm_->is_root())
          write_output(o_.out_dir / "best.weights",
                       [&](const fs::path& path) { save_weights(model_, path); });
      }
      notify([&](TrainObserver& o) { o.on_epoch_end(row); });
      save_checkpoint(epoch);
    }
    return finish();
  }

  [[noreturn]] void diverged(int epoch, const std::string& what) const {
    const std::string kept = committed_epoch_ > 0
                                 ? str_cat("the run in '", o_.out_dir.string(),
                                           "' keeps its last good checkpoint (epoch ",
                                           committed_epoch_, ", also in last.weights)")
                                 : std::string("no checkpoint was written");
    throw TrainingDiverged(str_cat("training diverged in epoch ", epoch, ": ", what,
                                   "; try a lower learning rate; ", kept));
  }

  // The name of the first parameter holding NaN or infinity; empty when all are finite.
  std::string first_non_finite_parameter() {
    Tensor<Cpu> host;
    for (const auto& named : params_) {
      const Tensor<Cpu>* values = nullptr;
      if constexpr (std::is_same_v<Dev, Cpu>) {
        values = &named.param->value;
      } else {
        named.param->value.copy_to_host(host);
        values = &host;
      }
      if (detail::first_non_finite(values->data(), values->size()) != values->size())
        return named.name;
    }
    return {};
  }

  EpochRecord train_epoch(int epoch) {
    std::vector<std::size_t> order = split_.train;
    if (o_.shuffle) {
      Rng rng(train_detail::epoch_seed(o_.seed, epoch));
      for (std::size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[rng.below(i)]);
    }
    LoaderOptions lo;
    lo.batch_size = o_.batch;
    lo.augmentation = o_.augmentation;
    lo.seed = train_detail::epoch_seed(o_.seed, epoch) ^ 0xA5A5A5A5ull;
    BatchLoader loader(samples_, order, lo);
    SegmentationMetrics dice(0.5);
    Batch b;
    double loss_sum = 0.0;
    std::size_t seen = 0;
    const auto t0 = std::chrono::steady_clock::now();
    EpochRecord row;
    row.epoch = epoch;
    row.lr = optimizer_.decayed_lr();
    while (loader.next(b)) {
      const int n = b.images.shape().n;    // images of the (global) batch
      const double share = take_share(b);  // b becomes this rank's share (1: one process)
      optimizer_.zero_grad(params_);
      CView<Cpu> logits = staging_.forward(model_, b.images);
      dlogits_.resize(logits.shape);
      const double loss = combine_share(compute_loss(o_.loss, logits, b.masks, dlogits_), share);
      // A loss can stay finite with NaN logits (a clipped probability), so both are checked.
      bool logits_finite = true;
      const std::size_t image_size = logits.shape.image_size();
      for (int i = 0; i < logits.shape.n; ++i)
        logits_finite &= detail::first_non_finite(logits.image(i), image_size) == image_size;
      if (!std::isfinite(loss) || !logits_finite)
        diverged(epoch, str_cat("batch ", b.number + 1, " gives ",
                                !logits_finite ? "non-finite logits" : "a non-finite loss",
                                " (loss ", loss, ")"));
      if (share > 0.0) dice.add_logits(logits, b.masks);
      // The gradient sums start during the backward pass, as it finishes each bucket's
      // parameters, and are complete before the step.
      reducer_.begin(*comm_, params_);
      staging_.backward(model_, dlogits_, reducer_);
      reducer_.finish();
      optimizer_.step(params_);
      loss_sum += loss * n;
      seen += static_cast<std::size_t>(n);
      const TrainStep step{
          .epoch = epoch,
          .batch = b.number,
          .step = optimizer_.iterations(),
          .images = n,
          .loss = loss,
          .epoch_images_done = seen,
          .epoch_images = order.size(),
          .epoch_loss = loss_sum / static_cast<double>(seen),
          .epoch_dice = dice.global_dice(),
          .epoch_seconds =
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()};
      if (on_step) on_step(step);
      notify([&](TrainObserver& o) { o.on_batch(step); });
    }
    row.train_loss = loss_sum / static_cast<double>(seen);
    row.train_dice = summed_dice(dice);
    return row;
  }

  // Writes one output through write(path); until the run's first checkpoint, remembers it so that
  // a failure can take it back (discard_partial_outputs).
  template <class Write>
  void write_output(const std::filesystem::path& path, Write&& write) {
    if (!committed_) written_.push_back(path);
    write(path);
  }
  // A fresh run that fails before its first checkpoint leaves nothing behind.
  void discard_partial_outputs() {
    if (committed_) return;
    for (const auto& path : written_) {
      std::error_code ignored;
      std::filesystem::remove(path, ignored);
    }
    written_.clear();
  }

  std::filesystem::path epoch_file(int epoch, const char* ext) const {
    char name[32];
    std::snprintf(name, sizeof name, "epoch-%04d.%s", epoch, ext);
    return o_.out_dir / "ckpt" / name;
  }

  // ckpt/ keeps the files of the committed epoch only (a kill can leave an older or newer pair).
  void remove_epoch_files_except(int epoch) {
    namespace fs = std::filesystem;
    const std::string keep_weights = epoch_file(epoch, "weights").filename().string();
    const std::string keep_optim = epoch_file(epoch, "optim").filename().string();
    std::error_code ec;
    std::vector<fs::path> stale;
    for (fs::directory_iterator it(o_.out_dir / "ckpt", ec), end; !ec && it != end;
         it.increment(ec)) {
      const std::string name = it->path().filename().string();
      if (name.rfind("epoch-", 0) == 0 && name != keep_weights && name != keep_optim)
        stale.push_back(it->path());
    }
    for (const auto& path : stale) fs::remove(path, ec);
  }

  void save_checkpoint(int epoch) {
    namespace fs = std::filesystem;
    check_ranks_agree(epoch);
    if (!comm_->is_root()) {  // rank 0 writes; the others only follow the commit
      committed_ = true;
      committed_epoch_ = epoch;
      return;
    }
    write_output(epoch_file(epoch, "weights"),
                 [&](const fs::path& path) { save_weights(model_, path); });
    write_output(epoch_file(epoch, "optim"),
                 [&](const fs::path& path) { optimizer_.save_state(path); });
    // The observers' files of this checkpoint (the examples' log.csv and curve.png).
    const CheckpointFiles files(o_.out_dir,
                                [&](const fs::path& path, const CheckpointFiles::Writer& write) {
                                  write_output(path, write);
                                });
    notify([&](TrainObserver& o) { o.on_checkpoint(epoch, files); });
    // The commit point: from here on a resume uses this epoch.
    CheckpointState state;
    state.model = model_.name();
    state.epoch = epoch;
    state.best_dice = best_dice_;
    state.best_epoch = best_epoch_;
    std::ostringstream plateau;
    plateau_.save_state(plateau);
    state.plateau = plateau.str();
    if (!state.plateau.empty() && state.plateau.back() == '\n') state.plateau.pop_back();
    state.fingerprint = fingerprint_;
    write_file_atomic(o_.out_dir / "checkpoint.txt", format_checkpoint(state));
    committed_ = true;
    committed_epoch_ = epoch;
    written_.clear();
    save_weights(model_, o_.out_dir / "last.weights");
    if (epoch > 1) {
      std::error_code ec;
      fs::remove(epoch_file(epoch - 1, "weights"), ec);
      fs::remove(epoch_file(epoch - 1, "optim"), ec);
    }
  }

  // Returns the epoch restored. Refuses a checkpoint of another model or another run.
  int restore_checkpoint() {
    const auto path = o_.out_dir / "checkpoint.txt";
    const CheckpointState state = parse_checkpoint(detail::read_whole_file(path), path.string());
    if (state.model != model_.name())
      fail_format("'", path.string(), "' is a checkpoint of model '", state.model, "', not '",
                  model_.name(), "'");
    if (!state.fingerprint) {
      const std::string warning =
          str_cat("'", path.string(),
                  "' (checkpoint v1) has no fingerprint: resuming without checking that the data "
                  "and options are the same");
      notify([&](TrainObserver& o) { o.on_warning(warning); });
    } else if (const std::string diff = state.fingerprint->differences(fingerprint_);
               !diff.empty()) {
      fail_argument("cannot resume the run in '", o_.out_dir.string(),
                    "': it was started with other data or options: ", diff);
    }
    best_dice_ = state.best_dice;
    best_epoch_ = state.best_epoch;
    std::istringstream plateau(state.plateau + "\n");
    try {
      plateau_.load_state(plateau);
    } catch (const FormatError& e) {
      fail_format("'", path.string(), "': ", e.what());
    }
    load_weights(model_, epoch_file(state.epoch, "weights"));
    optimizer_.load_state(epoch_file(state.epoch, "optim"), params_);
    committed_epoch_ = state.epoch;
    return state.epoch;
  }

  TrainResult finish() {
    // Again: a kill between the last checkpoint and its last.weights leaves that one stale.
    if (comm_->is_root()) save_weights(model_, o_.out_dir / "last.weights");
    comm_->barrier();  // rank 0 has written best.weights and last.weights
    result_.best_epoch = best_epoch_;
    result_.best_dice = best_dice_;
    result_.test = evaluate(model_, samples_, split_.test, o_.loss, o_.batch, *comm_);
    if (std::filesystem::exists(o_.out_dir / "best.weights") && !split_.test.empty()) {
      auto best = make_model<Dev>(model_.name());
      load_weights(*best, o_.out_dir / "best.weights");
      result_.test_best = evaluate(*best, samples_, split_.test, o_.loss, o_.batch, *comm_);
    }
    notify([&](TrainObserver& o) { o.on_finish(result_); });
    return std::move(result_);
  }

  // Tells the observers (on the rank that writes the run folder).
  template <class Call>
  void notify(Call&& call) {
    if (!comm_->is_root()) return;
    for (TrainObserver* o : observers_) call(*o);
  }

  // --- data parallel (no-ops for one process) ---

  // Replaces the global batch b by this rank's contiguous share and returns share / batch. A rank
  // whose share is empty (a short last batch) keeps the first image as a stand-in with weight 0, so
  // that it runs the same forward/backward and contributes zeros to the sums.
  double take_share(Batch& b) {
    if (comm_->size() == 1) return 1.0;
    const int n = b.images.shape().n;
    const Share s = share_of(static_cast<std::size_t>(n), comm_->rank(), comm_->size());
    const double weight = static_cast<double>(s.size()) / n;
    const std::size_t begin = s.size() ? s.begin : 0, count = s.size() ? s.size() : 1;
    auto slice = [&](const Tensor<Cpu>& all) {
      const Shape a = all.shape();
      Tensor<Cpu> part(Shape{static_cast<int>(count), a.c, a.h, a.w});
      std::copy(all.data() + begin * a.image_size(), all.data() + (begin + count) * a.image_size(),
                part.data());
      return part;
    };
    share_.images = slice(b.images);
    share_.masks = slice(b.masks);
    share_.indices.assign(b.indices.begin() + static_cast<std::ptrdiff_t>(begin),
                          b.indices.begin() + static_cast<std::ptrdiff_t>(begin + count));
    share_.number = b.number;
    std::swap(b, share_);
    return weight;
  }
  // The batch loss from this rank's share loss: scales the share's logit gradient by its weight
  // (the ranks' gradients then sum to the batch gradient) and sums weight * loss over the ranks.
  double combine_share(double share_loss, double weight) {
    if (comm_->size() == 1) return share_loss;
    const float w = static_cast<float>(weight);
    for (float& g : dlogits_) g *= w;
    double loss = weight > 0.0 ? share_loss * weight : 0.0;
    comm_->sum_host(&loss, 1);
    return loss;
  }
  // Global Dice of counts summed over the ranks.
  double summed_dice(const SegmentationMetrics& m) {
    if (comm_->size() == 1) return m.global_dice();
    const ConfusionCounts& c = m.global();
    double v[4] = {static_cast<double>(c.tp), static_cast<double>(c.fp), static_cast<double>(c.fn),
                   static_cast<double>(c.tn)};
    comm_->sum_host(v, 4);
    return ConfusionCounts{static_cast<std::uint64_t>(v[0]), static_cast<std::uint64_t>(v[1]),
                           static_cast<std::uint64_t>(v[2]), static_cast<std::uint64_t>(v[3])}
        .dice();
  }
  // Every rank must hold the same weights (same sums, same Adam step): compares a CRC-32 of them
  // across the ranks (sums of its 16-bit halves and their squares agree only if all are equal).
  void check_ranks_agree(int epoch) {
    if (comm_->size() == 1) return;
    std::uint32_t crc = 0;
    for (auto& p : params_) {
      const Tensor<Cpu> host = p.param->value.to_host();
      crc = crc32_update(crc, host.data(), host.size() * sizeof(float));
    }
    const double hi = crc >> 16, lo = crc & 0xffffu, n = comm_->size();
    double v[4] = {hi, lo, hi * hi, lo * lo};
    comm_->sum_host(v, 4);
    if (v[0] != n * hi || v[1] != n * lo || v[2] != n * hi * hi || v[3] != n * lo * lo)
      fail_argument("data-parallel training: the ranks' weights differ after epoch ", epoch,
                    " (the transport's sums are not the same on every rank)");
  }

  LocalCommunicator<Dev> local_;  // the one-process default
  Communicator<Dev>* comm_;
  GradientReducer<Dev> reducer_;
  Batch share_;  // this rank's share of the current batch (data parallel)
  TrainOptions o_;
  AnyModel<Dev>& model_;
  const std::vector<Sample>& samples_;
  Split split_;
  Adam<Dev> optimizer_;
  ReduceLROnPlateau plateau_;
  std::optional<CosineSchedule> cosine_;
  ParamList<Dev> params_;
  HostStaging<Dev> staging_;  // batch transfers, reused across steps and epochs
  Tensor<Cpu> dlogits_;       // host logit gradients, reused across steps and epochs
  std::vector<TrainObserver*> observers_;
  TrainResult result_;  // of the run in progress
  double best_dice_ = -1.0;
  int best_epoch_ = 0;
  RunFingerprint fingerprint_;
  bool committed_ = false;   // a checkpoint of this run exists (written now or resumed from)
  int committed_epoch_ = 0;  // its epoch
  std::vector<std::filesystem::path> written_;  // outputs of a fresh run before its first commit
};

}  // namespace unetsrnn
