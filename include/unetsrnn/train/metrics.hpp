#pragma once
// Segmentation metrics from thresholded predictions.
//
// A pixel is predicted positive when its probability is strictly greater than the threshold
// (the original: K.greater(p, t)); scores given as logits go through the library's float32 sigmoid
// first, the same one the models' sigmoid op uses, so counting from logits or from the model's
// probabilities gives identical counts. A target pixel is positive when it is > 0.5.
//
// The original's numbers: training metric at threshold 0.5, reported evaluation at 0.3 (the code;
// the text says 0.5), both a *global* Dice 2 tp / (2 tp + fp + fn + 1e-7) with the counts summed
// over the whole batch or test split (`ConfusionCounts::dice_smoothed`, counts added with +=).
// `dice()` is the exact ratio with 0/0 (empty target, empty prediction) defined as 1: nothing to
// find and nothing claimed is a perfect answer. The smoothed form gives 0 there instead, which is
// why per-image Dice uses the exact one. IoU, precision and recall define 0/0 as 1 likewise.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

#include "unetsrnn/core/error.hpp"
#include "unetsrnn/ops/cpu/pointwise.hpp"
#include "unetsrnn/tensor/tensor.hpp"

namespace unetsrnn {

inline constexpr double kSeedDiceSmoothing = 1e-7;
inline constexpr double kSeedTrainingThreshold = 0.5;
inline constexpr double kSeedEvaluationThreshold = 0.3;

struct ConfusionCounts {
  std::uint64_t tp = 0, fp = 0, fn = 0, tn = 0;

  ConfusionCounts& operator+=(const ConfusionCounts& o) {
    tp += o.tp;
    fp += o.fp;
    fn += o.fn;
    tn += o.tn;
    return *this;
  }
  friend ConfusionCounts operator+(ConfusionCounts a, const ConfusionCounts& b) { return a += b; }
  friend bool operator==(const ConfusionCounts&, const ConfusionCounts&) = default;

  std::uint64_t total() const { return tp + fp + fn + tn; }
  std::uint64_t target_positives() const { return tp + fn; }
  std::uint64_t predicted_positives() const { return tp + fp; }

  // 2 tp / (2 tp + fp + fn); 1 when target and prediction are both empty.
  double dice() const { return ratio(2.0 * tp, 2.0 * tp + fp + fn); }
  // The original's form: 2 tp / (2 tp + fp + fn + smooth); 0 when both are empty.
  double dice_smoothed(double smooth = kSeedDiceSmoothing) const {
    return 2.0 * tp / (2.0 * tp + fp + fn + smooth);
  }
  double iou() const { return ratio(tp, static_cast<double>(tp) + fp + fn); }
  double precision() const { return ratio(tp, static_cast<double>(tp) + fp); }
  double recall() const { return ratio(tp, static_cast<double>(tp) + fn); }
  double accuracy() const {
    return ratio(static_cast<double>(tp) + tn, static_cast<double>(total()));
  }

 private:
  static double ratio(double numerator, double denominator) {
    return denominator == 0.0 ? 1.0 : numerator / denominator;
  }
};

enum class Scores { Probabilities, Logits };

namespace metrics_detail {
inline void check_threshold(const char* who, double threshold) {
  if (!(threshold >= 0.0 && threshold <= 1.0))
    fail_argument(who, ": threshold must be in [0, 1], got ", threshold);
}
}  // namespace metrics_detail

// Confusion counts of each batch item (all channels and pixels of one image together).
inline std::vector<ConfusionCounts> confusion_per_image(CView<Cpu> scores, CView<Cpu> targets,
                                                        Scores kind, double threshold = 0.5) {
  const char* who = "confusion_per_image";
  check_shape(who, scores.shape, targets.shape);
  metrics_detail::check_threshold(who, threshold);
  const float t = static_cast<float>(threshold);
  const std::size_t per_image = scores.shape.image_size();
  std::vector<ConfusionCounts> out(static_cast<std::size_t>(scores.shape.n));
  for (int i = 0; i < scores.shape.n; ++i) {
    const float* s = scores.image(i);
    const float* y = targets.image(i);
    ConfusionCounts& c = out[static_cast<std::size_t>(i)];
    for (std::size_t k = 0; k < per_image; ++k) {
      const float p = kind == Scores::Logits ? cpu::sigmoid(s[k]) : s[k];
      const bool predicted = p > t;
      const bool actual = y[k] > 0.5f;
      c.tp += predicted && actual;
      c.fp += predicted && !actual;
      c.fn += !predicted && actual;
      c.tn += !predicted && !actual;
    }
  }
  return out;
}

// Counts summed over the batch.
inline ConfusionCounts confusion(CView<Cpu> scores, CView<Cpu> targets, Scores kind,
                                 double threshold = 0.5) {
  ConfusionCounts total;
  for (const ConfusionCounts& c : confusion_per_image(scores, targets, kind, threshold)) total += c;
  return total;
}

// Accumulates over batches: global counts (the original's global Dice) and per-image counts.
class SegmentationMetrics {
 public:
  explicit SegmentationMetrics(double threshold = 0.5) : threshold_(threshold) {
    metrics_detail::check_threshold("SegmentationMetrics", threshold);
  }

  void add(CView<Cpu> scores, CView<Cpu> targets, Scores kind) {
    for (const ConfusionCounts& c : confusion_per_image(scores, targets, kind, threshold_)) {
      global_ += c;
      per_image_.push_back(c);
    }
  }
  void add_probabilities(CView<Cpu> probabilities, CView<Cpu> targets) {
    add(probabilities, targets, Scores::Probabilities);
  }
  void add_logits(CView<Cpu> logits, CView<Cpu> targets) { add(logits, targets, Scores::Logits); }
  void reset() {
    global_ = {};
    per_image_.clear();
  }

  double threshold() const { return threshold_; }
  std::size_t images() const { return per_image_.size(); }
  const ConfusionCounts& global() const { return global_; }
  const std::vector<ConfusionCounts>& per_image() const { return per_image_; }

  // Dice of the counts summed over every image (exact form; see the header comment).
  double global_dice() const { return global_.dice(); }
  // The original's reported number: global Dice with 1e-7 in the denominator.
  double seed_global_dice() const { return global_.dice_smoothed(); }
  std::vector<double> per_image_dice() const {
    std::vector<double> out;
    out.reserve(per_image_.size());
    for (const ConfusionCounts& c : per_image_) out.push_back(c.dice());
    return out;
  }
  // Mean of per_image_dice(); NaN before any image was added.
  double mean_image_dice() const {
    if (per_image_.empty()) return std::numeric_limits<double>::quiet_NaN();
    double sum = 0.0;
    for (const ConfusionCounts& c : per_image_) sum += c.dice();
    return sum / static_cast<double>(per_image_.size());
  }

 private:
  double threshold_;
  ConfusionCounts global_;
  std::vector<ConfusionCounts> per_image_;
};

}  // namespace unetsrnn
