#pragma once
// Losses on logits for one-channel segmentation (models output logits z; p = sigmoid(z)).
//
// Every loss returns the batch mean as a double (per-pixel terms are evaluated and summed in
// double) and, when `dlogits` is given (non-null data), writes dL/dz of that mean into it
// (overwriting). Computing from logits is what keeps the losses finite and accurate everywhere: BCE
// is evaluated as softplus(z) - y z with softplus(z) = max(z, 0) + log1p(exp(-|z|)), never as
// log(sigmoid(z)).
//
// The three losses (names as parse_loss accepts them):
//   "bce"            LossKind::Bce: mean binary cross-entropy. For |z| < ~15 it equals Keras'
//                    binary_crossentropy on probabilities (see keras_bce_on_probabilities) up to
//                    the float32 rounding of p. Beyond, the two part: Keras clips p to
//                    [1e-7, 1 - 1e-7], so its per-pixel loss saturates at -log(1e-7) = 16.1
//                    (-log(2^-23) = 15.9 on the upper side, where float32 rounds 1 - 1e-7 to
//                    1 - 2^-23) and its gradient there is 0, while ours keeps growing like |z| with
//                    gradient p - y: a confidently wrong pixel still gets pushed back.
//   "bce_dice_seed"  LossKind::SeedBceDice: the original's BCE-Dice exactly as it was coded. Its
//                    Dice is reduced over the channel axis of size 1, hence per pixel:
//                      loss_pixel = bce_keras(p) - log(2 y p / (y + p + 1e-7) + 1e-7),
//                    mean over pixels and batch. bce_keras is the clipped BCE above, with the
//                    clip's zero gradient outside [1e-7, 1 - 2^-23]; the Dice term sees p
//                    unclipped, as in the original (it is a separate function of y_pred).
//                    Background pixels (y = 0) contribute the constant -log(1e-7) and no Dice
//                    gradient.
//   "bce_dice"       LossKind::BceSoftDice: the sound variant, mean BCE + mean over images of
//                    (1 - soft Dice), soft Dice = (2 sum(y p) + s) / (sum(y) + sum(p) + s), s = 1,
//                    sums over all pixels (and channels) of one image.
//
// Keras versions differ in how binary_crossentropy treats probabilities; the original's facts say
// "clipped to [1e-7, 1 - 1e-7]" and that is what bce_keras replicates. (Standalone Keras 2 clips
// and takes log(p / (1 - p)) as logits, the same value; newer tf.keras adds 1e-7 inside the logs,
// and in graph mode with a Sigmoid output op it skips the clip and uses the logits.)
//
// Targets are expected in {0, 1}; every formula is also defined (and differentiated) for soft
// targets in [0, 1]. Views may be strided batch slices. Host (Cpu) tensors only: a device trainer
// copies the (N, 1, H, W) logits to the host, which is small next to the network.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <string>
#include <string_view>
#include <utility>

#include "unetsrnn/core/error.hpp"
#include "unetsrnn/tensor/tensor.hpp"

namespace unetsrnn {

enum class LossKind { Bce, SeedBceDice, BceSoftDice };

inline constexpr std::array<std::pair<LossKind, std::string_view>, 3> kLossNames{{
    {LossKind::Bce, "bce"},
    {LossKind::SeedBceDice, "bce_dice_seed"},
    {LossKind::BceSoftDice, "bce_dice"},
}};

inline std::string_view to_string(LossKind kind) {
  for (const auto& [k, name] : kLossNames)
    if (k == kind) return name;
  fail_argument("to_string(LossKind): unknown value ", static_cast<int>(kind));
}

// Throws std::invalid_argument naming the valid choices.
inline LossKind parse_loss(std::string_view name) {
  for (const auto& [kind, known] : kLossNames)
    if (known == name) return kind;
  std::string valid;
  for (const auto& [kind, known] : kLossNames)
    valid += (valid.empty() ? "" : ", ") + std::string(known);
  fail_argument("unknown loss '", name, "'; valid names are: ", valid);
}

// Keras' epsilon and its clip bounds as float32 evaluates them (1 - 1e-7 rounds to 1 - 2^-23).
inline constexpr double kKerasEpsilon = 1e-7;
inline constexpr double kKerasClipLow = static_cast<double>(1e-7f);
inline constexpr double kKerasClipHigh = static_cast<double>(1.0f - 1e-7f);
// Smoothing of the sound variant's per-image soft Dice.
inline constexpr double kSoftDiceSmoothing = 1.0;

namespace loss_math {

// sigmoid(z) in double without overflow.
inline double sigmoid(double z) {
  if (z >= 0.0) return 1.0 / (1.0 + std::exp(-z));
  const double e = std::exp(z);
  return e / (1.0 + e);
}
// log(1 + exp(z)) without overflow or cancellation.
inline double softplus(double z) { return std::max(z, 0.0) + std::log1p(std::exp(-std::abs(z))); }
// -y log(sigmoid z) - (1 - y) log(1 - sigmoid z) = softplus(z) - y z.
inline double bce_logits(double z, double y) { return softplus(z) - y * z; }

// Keras' BCE of one probability, clipped.
inline double keras_bce_probability(double p, double y) {
  const double pc = std::clamp(p, kKerasClipLow, kKerasClipHigh);
  return -(y * std::log(pc) + (1.0 - y) * std::log1p(-pc));
}

struct ValueAndSlope {
  double value, slope;  // per-pixel loss and its derivative with respect to the logit
};

// One pixel of the original's BCE-Dice (see the header comment), exactly differentiated.
inline ValueAndSlope seed_bce_dice_pixel(double z, double y) {
  const double p = sigmoid(z);
  const double q = sigmoid(-z);  // 1 - p without cancellation
  const double dp_dz = p * q;
  ValueAndSlope out{};
  if (p < kKerasClipLow || p > kKerasClipHigh) {
    out.value = keras_bce_probability(p, y);  // clipped: constant in z, gradient 0
    out.slope = 0.0;
  } else {
    out.value = bce_logits(z, y);  // equals the unclipped probability form, computed stably
    out.slope = p - y;
  }
  // Dice term -log(D + e), D = 2 y p / (y + p + e); dD/dp = 2 y (y + e) / (y + p + e)^2.
  const double e = kKerasEpsilon;
  const double denominator = y + p + e;
  const double dice = 2.0 * y * p / denominator;
  const double ddice_dp = 2.0 * y * (y + e) / (denominator * denominator);
  out.value -= std::log(dice + e);
  out.slope -= ddice_dp / (dice + e) * dp_dz;
  return out;
}

inline void check_loss_views(const char* who, CView<Cpu> logits, CView<Cpu> targets,
                             View<Cpu> dlogits) {
  check_shape(who, logits.shape, targets.shape);
  if (dlogits.data) check_shape(who, logits.shape, dlogits.shape);
  if (logits.shape.size() == 0) fail_argument(who, ": empty batch ", logits.shape.str());
}

// Mean over every element of `pixel(z, y)`'s value; dlogits (if any) = slope / count.
template <class PixelFn>
double mean_pixel_loss(const char* who, CView<Cpu> logits, CView<Cpu> targets, View<Cpu> dlogits,
                       PixelFn&& pixel) {
  check_loss_views(who, logits, targets, dlogits);
  const std::size_t per_image = logits.shape.image_size();
  const double scale = 1.0 / static_cast<double>(logits.shape.size());
  double sum = 0.0;
  for (int i = 0; i < logits.shape.n; ++i) {
    const float* z = logits.image(i);
    const float* y = targets.image(i);
    float* dz = dlogits.data ? dlogits.image(i) : nullptr;
    for (std::size_t k = 0; k < per_image; ++k) {
      const ValueAndSlope r = pixel(static_cast<double>(z[k]), static_cast<double>(y[k]));
      sum += r.value;
      if (dz) dz[k] = static_cast<float>(r.slope * scale);
    }
  }
  return sum * scale;
}

}  // namespace loss_math

// Mean BCE on logits; dlogits = (sigmoid(z) - y) / count.
inline double bce_with_logits(CView<Cpu> logits, CView<Cpu> targets, View<Cpu> dlogits = {}) {
  return loss_math::mean_pixel_loss(
      "bce_with_logits", logits, targets, dlogits, [](double z, double y) {
        return loss_math::ValueAndSlope{loss_math::bce_logits(z, y), loss_math::sigmoid(z) - y};
      });
}

// Reference: Keras' mean binary cross-entropy on probabilities (clipped to [1e-7, 1 - 2^-23]).
inline double keras_bce_on_probabilities(CView<Cpu> probabilities, CView<Cpu> targets) {
  return loss_math::mean_pixel_loss(
      "keras_bce_on_probabilities", probabilities, targets, View<Cpu>{}, [](double p, double y) {
        return loss_math::ValueAndSlope{loss_math::keras_bce_probability(p, y), 0.0};
      });
}

// The original's per-pixel BCE-Dice (see the header comment).
inline double seed_bce_dice(CView<Cpu> logits, CView<Cpu> targets, View<Cpu> dlogits = {}) {
  return loss_math::mean_pixel_loss("seed_bce_dice", logits, targets, dlogits,
                                    loss_math::seed_bce_dice_pixel);
}

// Mean BCE + mean over images of (1 - soft Dice) with smoothing `smooth`.
inline double bce_soft_dice(CView<Cpu> logits, CView<Cpu> targets, View<Cpu> dlogits = {},
                            double smooth = kSoftDiceSmoothing) {
  loss_math::check_loss_views("bce_soft_dice", logits, targets, dlogits);
  const std::size_t per_image = logits.shape.image_size();
  const double images = static_cast<double>(logits.shape.n);
  const double bce_scale = 1.0 / static_cast<double>(logits.shape.size());
  double bce_sum = 0.0, dice_loss_sum = 0.0;
  for (int i = 0; i < logits.shape.n; ++i) {
    const float* z = logits.image(i);
    const float* y = targets.image(i);
    double intersection = 0.0, sum_y = 0.0, sum_p = 0.0;
    for (std::size_t k = 0; k < per_image; ++k) {
      const double p = loss_math::sigmoid(z[k]);
      intersection += y[k] * p;
      sum_y += y[k];
      sum_p += p;
      bce_sum += loss_math::bce_logits(z[k], y[k]);
    }
    const double numerator = 2.0 * intersection + smooth;
    const double denominator = sum_y + sum_p + smooth;
    dice_loss_sum += 1.0 - numerator / denominator;
    if (!dlogits.data) continue;
    // d(1 - D)/dp_k = -(2 y_k denominator - numerator) / denominator^2, averaged over the images.
    float* dz = dlogits.image(i);
    const double dice_scale = -1.0 / (images * denominator * denominator);
    for (std::size_t k = 0; k < per_image; ++k) {
      const double p = loss_math::sigmoid(z[k]);
      const double dp_dz = p * loss_math::sigmoid(-static_cast<double>(z[k]));
      const double dice_slope = dice_scale * (2.0 * y[k] * denominator - numerator) * dp_dz;
      dz[k] = static_cast<float>((p - y[k]) * bce_scale + dice_slope);
    }
  }
  return bce_sum * bce_scale + dice_loss_sum / images;
}

// Dispatches on the kind.
inline double compute_loss(LossKind kind, CView<Cpu> logits, CView<Cpu> targets,
                           View<Cpu> dlogits = {}) {
  switch (kind) {
    case LossKind::Bce:
      return bce_with_logits(logits, targets, dlogits);
    case LossKind::SeedBceDice:
      return seed_bce_dice(logits, targets, dlogits);
    case LossKind::BceSoftDice:
      return bce_soft_dice(logits, targets, dlogits);
  }
  fail_argument("compute_loss: unknown loss kind ", static_cast<int>(kind));
}

// A loss as a value: `Loss loss{Loss::SeedBceDice}; double l = loss(logits, targets, dlogits);`
struct Loss {
  using enum LossKind;
  LossKind kind = LossKind::Bce;

  double operator()(CView<Cpu> logits, CView<Cpu> targets, View<Cpu> dlogits = {}) const {
    return compute_loss(kind, logits, targets, dlogits);
  }
  std::string_view name() const { return to_string(kind); }
};

}  // namespace unetsrnn
