#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "unetsrnn/core/rng.hpp"
#include "unetsrnn/io/crc32.hpp"
#include "unetsrnn/layers/param.hpp"
#include "unetsrnn/train/loss.hpp"
#include "unetsrnn/train/metrics.hpp"
#include "unetsrnn/train/optim.hpp"

using namespace unetsrnn;

namespace {

// Relative tolerance only (doctest's Approx otherwise adds an absolute 1 * epsilon), for small
// values.
doctest::Approx relative(double value, double tolerance) {
  return doctest::Approx(value).epsilon(tolerance).scale(0.0);
}

// Random logits uniform in [-range, range] and 0/1 targets (about 40% positive).
void random_batch(Rng& rng, Shape s, double range, Tensor<Cpu>& logits, Tensor<Cpu>& targets) {
  logits = Tensor<Cpu>(s);
  targets = Tensor<Cpu>(s);
  for (float& z : logits) z = static_cast<float>(rng.uniform(-range, range));
  for (float& y : targets) y = rng.uniform01() < 0.4 ? 1.0f : 0.0f;
}

// ---- literal double-precision evaluations of each formula, written independently
double literal_sigmoid(double z) { return 1.0 / (1.0 + std::exp(-z)); }
double literal_bce(double z, double y) {
  const double p = literal_sigmoid(z);
  return -(y * std::log(p) + (1.0 - y) * std::log(1.0 - p));
}
double literal_seed_pixel(double z, double y) {
  const double p = literal_sigmoid(z);
  const double lo = 1e-7, hi = static_cast<double>(1.0f - 1e-7f);  // Keras' float32 bounds
  const double pc = p < lo ? lo : (p > hi ? hi : p);
  const double bce = -(y * std::log(pc) + (1.0 - y) * std::log(1.0 - pc));
  return bce - std::log(2.0 * y * p / (y + p + 1e-7) + 1e-7);
}
double literal_mean(const Tensor<Cpu>& logits, const Tensor<Cpu>& targets,
                    double (*pixel)(double, double)) {
  double sum = 0.0;
  for (std::size_t k = 0; k < logits.size(); ++k) sum += pixel(logits[k], targets[k]);
  return sum / static_cast<double>(logits.size());
}
double literal_bce_soft_dice(const Tensor<Cpu>& logits, const Tensor<Cpu>& targets) {
  const Shape s = logits.shape();
  double dice_term = 0.0;
  for (int i = 0; i < s.n; ++i) {
    double yp = 0.0, y = 0.0, p = 0.0;
    for (std::size_t k = 0; k < s.image_size(); ++k) {
      const std::size_t at = i * s.image_size() + k;
      const double pk = literal_sigmoid(logits[at]);
      yp += targets[at] * pk;
      y += targets[at];
      p += pk;
    }
    dice_term += 1.0 - (2.0 * yp + 1.0) / (y + p + 1.0);
  }
  return literal_mean(logits, targets, literal_bce) + dice_term / s.n;
}

// Central differences of the loss in each logit against the analytic dlogits.
void check_loss_gradient(LossKind kind, Tensor<Cpu> logits, const Tensor<Cpu>& targets) {
  Tensor<Cpu> analytic(logits.shape());
  compute_loss(kind, logits, targets, analytic);
  double largest = 0.0;
  for (float g : analytic) largest = std::max(largest, std::abs(static_cast<double>(g)));
  REQUIRE(largest > 0.0);
  double worst = 0.0;
  for (std::size_t k = 0; k < logits.size(); ++k) {
    const float z = logits[k];
    const float up = z + 1e-3f, down = z - 1e-3f;
    logits[k] = up;
    const double loss_up = compute_loss(kind, logits, targets);
    logits[k] = down;
    const double loss_down = compute_loss(kind, logits, targets);
    logits[k] = z;
    const double numeric = (loss_up - loss_down) / (static_cast<double>(up) - down);
    const double error = std::abs(numeric - analytic[k]);
    INFO("loss ", to_string(kind), " pixel ", k, " z ", z, " y ", targets[k], " analytic ",
         analytic[k], " numeric ", numeric);
    CHECK(error <= 1e-4 * std::abs(numeric) + 1e-6 * largest);
    worst = std::max(worst, error / largest);
  }
  MESSAGE("gradient check ", to_string(kind), ": worst |analytic - numeric| / max|grad| = ", worst);
}

ParamList<Cpu> as_list(std::vector<Param<Cpu>>& params) {
  ParamList<Cpu> list;
  for (std::size_t i = 0; i < params.size(); ++i)
    list.push_back({"p" + std::to_string(i), &params[i]});
  return list;
}

std::vector<Param<Cpu>> make_params(const std::vector<Shape>& shapes, Rng& rng) {
  std::vector<Param<Cpu>> params;
  for (const Shape& s : shapes) {
    params.emplace_back(s, Init::Zeros);
    for (float& v : params.back().value) v = static_cast<float>(rng.uniform(-1, 1));
  }
  return params;
}

void random_grads(std::vector<Param<Cpu>>& params, Rng& rng) {
  for (auto& p : params)
    for (float& g : p.grad) g = static_cast<float>(rng.uniform(-1, 1));
}

bool same_bits(const Tensor<Cpu>& a, const Tensor<Cpu>& b) {
  return a.shape() == b.shape() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

Tensor<Cpu> from_values(Shape s, const std::vector<float>& values) {
  Tensor<Cpu> t(s);
  REQUIRE(values.size() == t.size());
  std::copy(values.begin(), values.end(), t.begin());
  return t;
}

}  // namespace

// ===================================================================================== losses

TEST_CASE("loss names parse and print; unknown names list the valid ones") {
  for (LossKind kind : {LossKind::Bce, LossKind::SeedBceDice, LossKind::BceSoftDice})
    CHECK(parse_loss(to_string(kind)) == kind);
  CHECK(parse_loss("bce") == Loss::Bce);
  CHECK(parse_loss("bce_dice_seed") == Loss::SeedBceDice);
  CHECK(parse_loss("bce_dice") == Loss::BceSoftDice);
  try {
    parse_loss("dice");
    FAIL("parse_loss accepted 'dice'");
  } catch (const std::invalid_argument& e) {
    const std::string message = e.what();
    CHECK(message.find("'dice'") != std::string::npos);
    CHECK(message.find("bce, bce_dice_seed, bce_dice") != std::string::npos);
  }
}

TEST_CASE("each loss equals a literal double evaluation of its formula") {
  Rng rng(7);
  Tensor<Cpu> logits, targets;
  random_batch(rng, {3, 1, 6, 5}, 8.0, logits, targets);
  const double bce = compute_loss(Loss::Bce, logits, targets);
  const double seed = compute_loss(Loss::SeedBceDice, logits, targets);
  const double soft = compute_loss(Loss::BceSoftDice, logits, targets);
  CHECK(bce == doctest::Approx(literal_mean(logits, targets, literal_bce)).epsilon(1e-12));
  CHECK(seed == doctest::Approx(literal_mean(logits, targets, literal_seed_pixel)).epsilon(1e-12));
  CHECK(soft == doctest::Approx(literal_bce_soft_dice(logits, targets)).epsilon(1e-12));

  // The seed loss with logits beyond Keras' clip on both sides.
  for (float& z : logits) z *= 3.0f;  // up to |z| = 24
  // (The literal's 1 - p loses digits near p = 1, hence the looser tolerance.)
  CHECK(compute_loss(Loss::SeedBceDice, logits, targets) ==
        doctest::Approx(literal_mean(logits, targets, literal_seed_pixel)).epsilon(1e-9));

  // The gradient of BCE is (sigmoid(z) - y) / count.
  Tensor<Cpu> grad(logits.shape());
  bce_with_logits(logits, targets, grad);
  for (std::size_t k = 0; k < logits.size(); ++k)
    CHECK(grad[k] == relative((literal_sigmoid(logits[k]) - targets[k]) / logits.size(), 1e-6));
}

TEST_CASE("BCE on logits matches Keras' clipped BCE on probabilities for moderate logits") {
  Rng rng(11);
  Tensor<Cpu> logits, targets;
  random_batch(rng, {2, 1, 16, 16}, 6.0, logits, targets);
  Tensor<Cpu> probabilities(logits.shape());
  ops::sigmoid_forward<Cpu>(logits, probabilities);  // what the original's sigmoid layer outputs
  // Agreement is limited only by float32 rounding of the probabilities.
  CHECK(bce_with_logits(logits, targets) ==
        doctest::Approx(keras_bce_on_probabilities(probabilities, targets)).epsilon(1e-5));

  // Extreme logits: Keras saturates at -log(1 - (1 - 2^-23)) (float32's 1 - 1e-7) or -log(1e-7);
  // the logits form keeps growing like |z|.
  const Tensor<Cpu> z = from_values({1, 1, 1, 2}, {30.0f, -30.0f});
  const Tensor<Cpu> y = from_values({1, 1, 1, 2}, {0.0f, 1.0f});
  Tensor<Cpu> p(z.shape());
  ops::sigmoid_forward<Cpu>(z, p);
  CHECK(keras_bce_on_probabilities(p, y) ==
        doctest::Approx(0.5 * (23.0 * std::log(2.0) - std::log(1e-7))).epsilon(1e-6));
  CHECK(bce_with_logits(z, y) == doctest::Approx(30.0).epsilon(1e-9));
}

TEST_CASE("seed BCE-Dice: background is a constant, the clip stops the BCE gradient") {
  // Moderate logits, y = 0: loss = BCE - log(1e-7), and the gradient is BCE's.
  const Tensor<Cpu> z = from_values({1, 1, 1, 3}, {-2.0f, 0.5f, 3.0f});
  const Tensor<Cpu> y(z.shape(), 0.0f);
  Tensor<Cpu> g_seed(z.shape()), g_bce(z.shape());
  CHECK(seed_bce_dice(z, y, g_seed) ==
        doctest::Approx(bce_with_logits(z, y, g_bce) - std::log(1e-7)).epsilon(1e-12));
  for (std::size_t k = 0; k < z.size(); ++k) CHECK(g_seed[k] == g_bce[k]);

  // A confidently wrong background pixel beyond the clip: Keras' loss is stuck, gradient exactly 0.
  const Tensor<Cpu> far = from_values({1, 1, 1, 1}, {20.0f});
  const Tensor<Cpu> background(far.shape(), 0.0f);
  Tensor<Cpu> g(far.shape());
  const double stuck = seed_bce_dice(far, background, g);
  CHECK(stuck == doctest::Approx(-std::log(std::ldexp(1.0, -23)) - std::log(1e-7)).epsilon(1e-6));
  CHECK(g[0] == 0.0f);
  Tensor<Cpu> g_sound(far.shape());
  bce_with_logits(far, background, g_sound);
  CHECK(g_sound[0] > 0.99f);  // the sound BCE still pushes it back
}

TEST_CASE("loss gradients agree with finite differences") {
  Rng rng(3);
  Tensor<Cpu> logits, targets;
  random_batch(rng, {2, 1, 4, 5}, 5.0, logits, targets);
  // Pixels far beyond the clip on both sides, for both targets.
  logits[0] = 20.0f, targets[0] = 0.0f;
  logits[1] = 20.0f, targets[1] = 1.0f;
  logits[2] = -20.0f, targets[2] = 0.0f;
  logits[3] = -20.0f, targets[3] = 1.0f;
  for (LossKind kind : {LossKind::Bce, LossKind::SeedBceDice, LossKind::BceSoftDice}) {
    check_loss_gradient(kind, logits, targets);
  }
  // An image without foreground exercises the soft Dice's smoothing.
  Tensor<Cpu> empty(targets.shape(), 0.0f);
  check_loss_gradient(LossKind::BceSoftDice, logits, empty);
}

TEST_CASE("losses check shapes and accept strided batch views") {
  Rng rng(5);
  Tensor<Cpu> logits, targets;
  random_batch(rng, {4, 1, 3, 3}, 4.0, logits, targets);
  Tensor<Cpu> wrong({4, 1, 3, 2}, 0.0f);
  CHECK_THROWS_AS(compute_loss(Loss::Bce, logits, wrong), std::invalid_argument);
  Tensor<Cpu> grad_wrong({4, 1, 3, 2});
  CHECK_THROWS_AS(compute_loss(Loss::Bce, logits, targets, grad_wrong), std::invalid_argument);

  // Images 1..2 through views equal the same images copied out.
  const CView<Cpu> part_logits = logits.cview().batch(1, 2);
  const CView<Cpu> part_targets = targets.cview().batch(1, 2);
  const Tensor<Cpu> copy_logits = Tensor<Cpu>::from(part_logits);
  const Tensor<Cpu> copy_targets = Tensor<Cpu>::from(part_targets);
  for (LossKind kind : {LossKind::Bce, LossKind::SeedBceDice, LossKind::BceSoftDice})
    CHECK(compute_loss(kind, part_logits, part_targets) ==
          compute_loss(kind, copy_logits, copy_targets));
}

// ===================================================================================== metrics

TEST_CASE("confusion counts and scores on a hand-made example; threshold 0.3 vs 0.5") {
  const Shape s{1, 1, 2, 4};
  const Tensor<Cpu> probabilities =
      from_values(s, {0.2f, 0.4f, 0.6f, 0.9f, 0.35f, 0.1f, 0.5f, 0.7f});
  const Tensor<Cpu> targets = from_values(s, {0, 1, 1, 1, 0, 0, 1, 0});

  // At 0.5 (strictly greater): predicted {0.6, 0.9, 0.7}.
  const ConfusionCounts at05 = confusion(probabilities, targets, Scores::Probabilities, 0.5);
  CHECK(at05 == ConfusionCounts{2, 1, 2, 3});
  CHECK(at05.dice() == doctest::Approx(4.0 / 7.0));
  CHECK(at05.dice_smoothed() == doctest::Approx(4.0 / (7.0 + 1e-7)));
  CHECK(at05.iou() == doctest::Approx(2.0 / 5.0));
  CHECK(at05.precision() == doctest::Approx(2.0 / 3.0));
  CHECK(at05.recall() == doctest::Approx(2.0 / 4.0));
  CHECK(at05.accuracy() == doctest::Approx(5.0 / 8.0));

  // At 0.3 (the original's evaluation): 0.4, 0.35 and 0.5 join.
  const ConfusionCounts at03 = confusion(probabilities, targets, Scores::Probabilities, 0.3);
  CHECK(at03 == ConfusionCounts{4, 2, 0, 2});
  CHECK(at03.dice() == doctest::Approx(8.0 / 10.0));
  CHECK(at03.dice() != doctest::Approx(at05.dice()));

  // Logits give the same counts as the probabilities the model's sigmoid makes of them.
  Tensor<Cpu> logits(s);
  for (std::size_t k = 0; k < s.size(); ++k)
    logits[k] = static_cast<float>(std::log(probabilities[k] / (1.0 - probabilities[k])));
  Tensor<Cpu> recomputed(s);
  ops::sigmoid_forward<Cpu>(logits, recomputed);
  for (double t : {0.3, 0.5})
    CHECK(confusion(logits, targets, Scores::Logits, t) ==
          confusion(recomputed, targets, Scores::Probabilities, t));

  CHECK_THROWS_AS(confusion(probabilities, targets, Scores::Probabilities, 1.5),
                  std::invalid_argument);
}

TEST_CASE("global Dice accumulates counts; per-image Dice defines empty/empty as 1") {
  const Shape s{3, 1, 1, 4};
  // Image 0: perfect; image 1: empty target, empty prediction; image 2: half found.
  const Tensor<Cpu> probabilities =
      from_values(s, {0.9f, 0.9f, 0.1f, 0.1f, 0.1f, 0.2f, 0.0f, 0.4f, 0.9f, 0.1f, 0.1f, 0.1f});
  const Tensor<Cpu> targets = from_values(s, {1, 1, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0});
  SegmentationMetrics metrics(kSeedTrainingThreshold);
  metrics.add_probabilities(probabilities.cview().batch(0, 2), targets.cview().batch(0, 2));
  metrics.add_probabilities(probabilities.cview().batch(2, 1), targets.cview().batch(2, 1));
  REQUIRE(metrics.images() == 3);
  CHECK(metrics.global() == ConfusionCounts{3, 0, 1, 8});
  CHECK(metrics.global_dice() == doctest::Approx(6.0 / 7.0));
  CHECK(metrics.seed_global_dice() == doctest::Approx(6.0 / (7.0 + 1e-7)));
  const std::vector<double> dice = metrics.per_image_dice();
  REQUIRE(dice.size() == 3);
  CHECK(dice[0] == 1.0);
  CHECK(dice[1] == 1.0);  // empty target and prediction
  CHECK(dice[2] == doctest::Approx(2.0 / 3.0));
  CHECK(metrics.mean_image_dice() == doctest::Approx((1.0 + 1.0 + 2.0 / 3.0) / 3.0));
  // The original's smoothed form scores the empty image 0, not 1.
  CHECK(metrics.per_image()[1].dice_smoothed() == 0.0);
  metrics.reset();
  CHECK(metrics.images() == 0);
  CHECK(std::isnan(metrics.mean_image_dice()));
}

// ===================================================================================== optimisers

TEST_CASE("Adam: two steps equal Keras' formula, with and without time decay") {
  // Expected values from the Keras 2 Adam formula evaluated in double (Python), with the betas
  // and grads rounded to float32 as Keras' variables hold them (b1 = 0.8999999761581421,
  // b2 = 0.9990000128746033): lr_now = lr / (1 + decay * it); lr_t = lr_now * sqrt(1 - b2^t) /
  // (1 - b1^t); m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2; p -= lr_t m / (sqrt(v) + eps).
  struct Case {
    double decay;
    double after1[2], after2[2];
  };
  const Case cases[] = {
      {0.0, {0.9900000158114648, -0.49000000790573867}, {0.98733664931344, -0.4891067586472978}},
      {0.5, {0.9900000158114648, -0.49000000790573867}, {0.9882244381461149, -0.4894045084001114}},
  };
  const double m_after2 = 0.008000001549720671, v_after2 = 4.995935878870294e-05;
  for (const Case& c : cases) {
    CAPTURE(c.decay);
    std::vector<Param<Cpu>> params;
    params.emplace_back(Shape{1, 2, 1, 1}, Init::Zeros);
    params[0].value[0] = 1.0f, params[0].value[1] = -0.5f;
    ParamList<Cpu> list = as_list(params);
    Adam<Cpu> adam({0.01, 0.9, 0.999, 1e-8, c.decay});
    params[0].grad[0] = 0.2f, params[0].grad[1] = -0.4f;
    adam.step(list);
    CHECK(adam.iterations() == 1);
    CHECK(params[0].value[0] == doctest::Approx(c.after1[0]).epsilon(1e-7));
    CHECK(params[0].value[1] == doctest::Approx(c.after1[1]).epsilon(1e-7));
    CHECK(params[0].grad[0] == 0.2f);  // grads are left alone
    CHECK(adam.decayed_lr() == relative(0.01 / (1.0 + c.decay), 1e-15));
    params[0].grad[0] = -0.1f, params[0].grad[1] = 0.3f;
    adam.step(list);
    CHECK(params[0].value[0] == doctest::Approx(c.after2[0]).epsilon(1e-7));
    CHECK(params[0].value[1] == doctest::Approx(c.after2[1]).epsilon(1e-7));
    CHECK(adam.state_tensor(0, 0)[0] == relative(m_after2, 1e-6));
    CHECK(adam.state_tensor(0, 1)[0] == relative(v_after2, 1e-6));
    adam.zero_grad(list);
    CHECK(params[0].grad[0] == 0.0f);
    CHECK(params[0].grad[1] == 0.0f);
  }
  CHECK(AdamOptions::seed_protocol().lr == 1e-5);
  CHECK(AdamOptions::seed_protocol().epsilon == 1e-8);
  CHECK(AdamOptions::seed_protocol().decay == 1.99e-7);
  CHECK_THROWS_AS(Adam<Cpu>({0.01, 1.0}), std::invalid_argument);
}

TEST_CASE("SGD with momentum and time decay") {
  std::vector<Param<Cpu>> params;
  params.emplace_back(Shape{1, 1, 1, 1}, Init::Zeros);
  params[0].value[0] = 1.0f;
  ParamList<Cpu> list = as_list(params);
  Sgd<Cpu> sgd({0.1, 0.9, 0.0});
  // vel = 0.9 vel - 0.1 g; p += vel.
  const float grads[] = {0.5f, 0.5f, -1.0f};
  const double expected[] = {0.95, 0.855, 0.8695};
  for (int i = 0; i < 3; ++i) {
    params[0].grad[0] = grads[i];
    sgd.step(list);
    CHECK(params[0].value[0] == doctest::Approx(expected[i]).epsilon(1e-6));
  }
  CHECK(sgd.iterations() == 3);

  // With decay 1: rates 0.1, 0.05, 0.1/3; momentum 0 is plain SGD.
  params[0].value[0] = 0.0f;
  Sgd<Cpu> decayed({0.1, 0.0, 1.0});
  params[0].grad[0] = 1.0f;
  for (int i = 0; i < 3; ++i) decayed.step(list);
  CHECK(params[0].value[0] == doctest::Approx(-(0.1 + 0.05 + 0.1 / 3)).epsilon(1e-6));
}

TEST_CASE("ReduceLROnPlateau follows Keras: patience, factor, min_delta, min_lr floor, cooldown") {
  ReduceLROnPlateau plateau({0.5, 2, 0.1, 1e-4, 0, false});
  double lr = 1.0;
  struct Epoch {
    double loss, lr_after;
    int wait_after;
  };
  const Epoch epochs[] = {
      {1.0, 1.0, 0},   {0.99995, 1.0, 1},  // not better by min_delta
      {0.9, 1.0, 0},   {0.95, 1.0, 1},    {0.95, 0.5, 0},   {0.95, 0.5, 1}, {0.95, 0.25, 0},
      {0.95, 0.25, 1}, {0.95, 0.125, 0},  {0.95, 0.125, 1}, {0.95, 0.1, 0},  // floor at min_lr
      {0.95, 0.1, 1},  {0.95, 0.1, 2},    {0.95, 0.1, 3},  // at min_lr: nothing, wait grows
      {0.5, 0.1, 0},
  };
  int index = 0;
  for (const Epoch& e : epochs) {
    CAPTURE(index++);
    lr = plateau.on_epoch_end(e.loss, lr);
    CHECK(lr == e.lr_after);  // products of 0.5 and the floor: exact
    CHECK(plateau.wait() == e.wait_after);
  }
  CHECK(plateau.best() == 0.5);

  // Cooldown 2: the epoch that ends the cooldown (counter 1 -> 0) already counts, as in Keras.
  ReduceLROnPlateau cooled({0.5, 1, 0.0, 0.0, 2, false});
  std::vector<double> lrs;
  lr = 1.0;
  for (double loss : {1.0, 2.0, 2.0, 2.0, 2.0, 2.0})
    lrs.push_back(lr = cooled.on_epoch_end(loss, lr));
  CHECK(lrs == std::vector<double>{1.0, 0.5, 0.5, 0.25, 0.25, 0.125});

  // The original's callback is inert: min_lr equals the starting rate.
  Adam<Cpu> adam(AdamOptions::seed_protocol());
  ReduceLROnPlateau seed(ReduceLROnPlateauOptions::seed_protocol());
  for (int epoch = 0; epoch < 20; ++epoch) CHECK_FALSE(seed.on_epoch_end(1.0 + epoch, adam));
  CHECK(adam.lr() == 1e-5);
  CHECK_THROWS_AS(ReduceLROnPlateau({1.0}), std::invalid_argument);
}

TEST_CASE("cosine schedule endpoints") {
  const CosineSchedule cosine(1e-3, 1e-5, 100);
  CHECK(cosine.lr(0) == relative(1e-3, 1e-14));
  CHECK(cosine.lr(100) == relative(1e-5, 1e-14));
  CHECK(cosine.lr(50) == relative(0.5 * (1e-3 + 1e-5), 1e-14));
  CHECK(cosine.lr(-3) == cosine.lr(0));
  CHECK(cosine.lr(250) == cosine.lr(100));
  CHECK(cosine.lr(25) > cosine.lr(26));
  CHECK_THROWS_AS(CosineSchedule(1e-3, 1e-5, 0), std::invalid_argument);
  CHECK_THROWS_AS(CosineSchedule(1e-5, 1e-3, 10), std::invalid_argument);
}

TEST_CASE_TEMPLATE("optimiser state round trip continues bit for bit", Optim, Adam<Cpu>, Sgd<Cpu>) {
  const std::vector<Shape> shapes{{2, 3, 1, 1}, {1, 4, 2, 2}, {1, 1, 1, 1}};
  Rng init(1);
  std::vector<Param<Cpu>> params_a = make_params(shapes, init);
  ParamList<Cpu> list_a = as_list(params_a);
  Optim original = [] {
    if constexpr (std::is_same_v<Optim, Adam<Cpu>>)
      return Optim({0.01, 0.8, 0.99, 1e-7, 1e-3});
    else
      return Optim({0.05, 0.9, 1e-3});
  }();
  Rng grads_a(2);
  for (int i = 0; i < 3; ++i) {
    random_grads(params_a, grads_a);
    original.step(list_a);
  }
  original.set_lr(original.lr() * 0.5);  // as a schedule would
  std::stringstream stream;
  original.save_state(stream);
  const std::string saved = stream.str();

  // A fresh optimiser with other settings, restored, over a copy of the parameters.
  std::vector<Param<Cpu>> params_b = params_a;
  ParamList<Cpu> list_b = as_list(params_b);
  Optim restored;
  restored.load_state(stream, list_b);
  CHECK(restored.iterations() == 3);
  CHECK(restored.lr() == original.lr());
  CHECK(restored.decay() == original.decay());
  std::stringstream again;
  restored.save_state(again);
  CHECK(again.str() == saved);

  Rng grads_b = grads_a;
  for (int i = 0; i < 2; ++i) {
    random_grads(params_a, grads_a);
    random_grads(params_b, grads_b);
    original.step(list_a);
    restored.step(list_b);
  }
  for (std::size_t i = 0; i < params_a.size(); ++i) {
    CHECK(same_bits(params_a[i].value, params_b[i].value));
    CHECK(same_bits(original.state_tensor(i, 0), restored.state_tensor(i, 0)));
  }
  CHECK(restored.iterations() == 5);
}

TEST_CASE("load_state rejects mismatched, foreign, truncated and corrupt state") {
  Rng rng(9);
  std::vector<Param<Cpu>> params = make_params({{1, 3, 1, 1}, {2, 2, 1, 1}}, rng);
  ParamList<Cpu> list = as_list(params);
  Adam<Cpu> adam;
  random_grads(params, rng);
  adam.step(list);
  std::stringstream stream;
  adam.save_state(stream);
  const std::string saved = stream.str();

  auto load_message = [&](auto& optimiser, const std::string& bytes, auto&&... params_arg) {
    std::istringstream in(bytes);
    try {
      optimiser.load_state(in, params_arg...);
    } catch (const FormatError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };

  SUBCASE("wrong shape against a parameter list") {
    std::vector<Param<Cpu>> other = make_params({{1, 3, 1, 1}, {2, 3, 1, 1}}, rng);
    ParamList<Cpu> other_list = as_list(other);
    Adam<Cpu> fresh;
    const std::string message = load_message(fresh, saved, other_list);
    INFO(message);
    CHECK(message.find("parameter 1") != std::string::npos);
    CHECK(message.find("(2, 2, 1, 1)") != std::string::npos);
    CHECK(message.find("(2, 3, 1, 1)") != std::string::npos);
    CHECK_FALSE(fresh.has_state());  // unchanged
  }
  SUBCASE("wrong parameter count") {
    std::vector<Param<Cpu>> fewer = make_params({{1, 3, 1, 1}}, rng);
    ParamList<Cpu> fewer_list = as_list(fewer);
    Adam<Cpu> fresh;
    CHECK(load_message(fresh, saved, fewer_list).find("more than 1 parameters") !=
          std::string::npos);
    std::vector<Param<Cpu>> more = make_params({{1, 3, 1, 1}, {2, 2, 1, 1}, {1, 1, 1, 1}}, rng);
    ParamList<Cpu> more_list = as_list(more);
    CHECK(load_message(fresh, saved, more_list).find("state for 2 parameters, but 3") !=
          std::string::npos);
  }
  SUBCASE("against the state an optimiser already holds, and at the next step") {
    std::vector<Param<Cpu>> other = make_params({{1, 3, 1, 1}, {1, 1, 1, 1}}, rng);
    ParamList<Cpu> other_list = as_list(other);
    Adam<Cpu> used;
    used.step(other_list);
    CHECK(load_message(used, saved).find("parameter 1") != std::string::npos);
    CHECK(used.iterations() == 1);

    Adam<Cpu> fresh;
    std::istringstream in(saved);
    fresh.load_state(in);  // nothing to check against yet
    CHECK_THROWS_AS(fresh.step(other_list), FormatError);
  }
  SUBCASE("state of another optimiser kind") {
    Sgd<Cpu> sgd;
    CHECK(load_message(sgd, saved, list).find("'adam' state, not 'sgd'") != std::string::npos);
  }
  SUBCASE("truncated and corrupt streams") {
    Adam<Cpu> fresh;
    for (std::size_t cut : {std::size_t{0}, std::size_t{5}, saved.size() / 2, saved.size() - 1})
      CHECK(load_message(fresh, saved.substr(0, cut), list).find("truncated") != std::string::npos);
    std::string corrupt = saved;
    corrupt[corrupt.size() - 8] ^= 0x10;  // a state value
    CHECK(load_message(fresh, corrupt, list).find("checksum") != std::string::npos);
    std::string bad_magic = saved;
    bad_magic[0] = 'X';
    CHECK(load_message(fresh, bad_magic, list).find("magic") != std::string::npos);
    CHECK_FALSE(fresh.has_state());
    CHECK(fresh.iterations() == 0);
  }
  SUBCASE("a step with other parameters than before is a usage error") {
    std::vector<Param<Cpu>> other = make_params({{1, 3, 1, 1}}, rng);
    ParamList<Cpu> other_list = as_list(other);
    CHECK_THROWS_AS(adam.step(other_list), std::invalid_argument);
  }
}

TEST_CASE("schedule state round trips") {
  ReduceLROnPlateau a({0.5, 2, 1e-3, 1e-4, 1, false});
  double lr_a = 0.1;
  for (double loss : {1.0, 0.7, 0.8, 0.9, 0.75}) lr_a = a.on_epoch_end(loss, lr_a);
  std::stringstream stream;
  a.save_state(stream);
  ReduceLROnPlateau b;
  b.load_state(stream);
  CHECK(b.best() == a.best());
  CHECK(b.wait() == a.wait());
  CHECK(b.cooldown_counter() == a.cooldown_counter());
  double lr_b = lr_a;
  for (double loss : {0.8, 0.8, 0.8, 0.8, 0.6, 0.7, 0.7, 0.7}) {
    lr_a = a.on_epoch_end(loss, lr_a);
    lr_b = b.on_epoch_end(loss, lr_b);
    CHECK(lr_a == lr_b);
  }
  // A fresh callback (best = +inf) survives the text form too.
  std::stringstream fresh_stream;
  ReduceLROnPlateau().save_state(fresh_stream);
  ReduceLROnPlateau fresh_copy({0.9, 1});
  fresh_copy.load_state(fresh_stream);
  CHECK(std::isinf(fresh_copy.best()));
  CHECK(fresh_copy.options().factor == 0.1);

  const CosineSchedule cosine(3e-4, 1e-6, 37);
  std::stringstream cosine_stream;
  cosine.save_state(cosine_stream);
  CosineSchedule cosine_copy(1.0, 0.0, 1);
  cosine_copy.load_state(cosine_stream);
  for (int epoch : {0, 5, 36, 37}) CHECK(cosine_copy.lr(epoch) == cosine.lr(epoch));

  std::istringstream wrong("CosineSchedule v1 1 0\n");
  CHECK_THROWS_AS(cosine_copy.load_state(wrong), FormatError);
  std::istringstream other("ReduceLROnPlateau v1 0.5 2 0 0 0 0 inf 0 0\n");
  CHECK_THROWS_AS(cosine_copy.load_state(other), FormatError);
}

TEST_CASE("optimiser state: zero dimensions and non-finite values are refused, files named") {
  namespace fs = std::filesystem;
  Rng rng(11);
  std::vector<Param<Cpu>> params = make_params({{1, 3, 1, 1}, {2, 2, 1, 1}}, rng);
  ParamList<Cpu> list = as_list(params);
  Adam<Cpu> adam;
  random_grads(params, rng);
  adam.step(list);
  std::stringstream stream;
  adam.save_state(stream);
  const std::string saved = stream.str();
  // Layout: magic 8, version 4, kind 4+4, 4 hyperparameters 4+32, lr 8, iterations 8, count 4,
  // slots 4, then the first parameter's name 4+K and dims.
  const std::size_t name_at = 8 + 4 + 8 + 36 + 8 + 8 + 4 + 4;
  const std::uint32_t name_length = static_cast<unsigned char>(saved[name_at]);
  const std::size_t dims_at = name_at + 4 + name_length, values_at = dims_at + 16;
  auto u32_le = [](std::uint32_t v) {
    return std::string{static_cast<char>(v), static_cast<char>(v >> 8), static_cast<char>(v >> 16),
                       static_cast<char>(v >> 24)};
  };
  auto fixed_crc = [&](std::string s) {
    s.resize(s.size() - 4);
    return s + u32_le(crc32(s));
  };
  auto load_message = [&](const std::string& bytes) {
    Adam<Cpu> fresh;
    std::istringstream in(bytes);
    try {
      fresh.load_state(in, list);
    } catch (const FormatError& e) {
      CHECK_FALSE(fresh.has_state());
      return std::string(e.what());
    }
    return std::string("no error");
  };

  std::string zero = saved;
  zero.replace(dims_at + 4, 4, u32_le(0));
  CHECK(load_message(fixed_crc(zero)).find("has dimension 0") != std::string::npos);
  std::string nan = saved;
  nan.replace(values_at + 4 * 4, 4, u32_le(0x7FC00000u));  // v of parameter 0 (m has 3 values)
  const std::string message = load_message(fixed_crc(nan));
  INFO(message);
  CHECK(message.find("state tensor 1 of parameter '") != std::string::npos);
  CHECK(message.find("holds NaN at index 1") != std::string::npos);
  // Without a valid checksum the same edit is reported as corruption.
  CHECK(load_message(nan).find("checksum mismatch") != std::string::npos);

  // Through files: every error names the file.
  const fs::path dir = fs::temp_directory_path() / ("unetsrnn_optim_" + std::to_string(getpid()));
  fs::create_directories(dir);
  const fs::path file = dir / "epoch-0001.optim";
  adam.save_state(file);
  Adam<Cpu> from_file;
  from_file.load_state(file, list);
  CHECK(from_file.iterations() == 1);
  std::ofstream(file, std::ios::binary | std::ios::trunc) << nan;
  std::string error;
  try {
    Adam<Cpu>().load_state(file, list);
  } catch (const FormatError& e) {
    error = e.what();
  }
  CHECK(error.find("'" + file.string() + "': optimiser state: checksum mismatch") !=
        std::string::npos);
  try {
    Adam<Cpu>().load_state(dir / "missing.optim", list);
  } catch (const FormatError& e) {
    error = e.what();
  }
  CHECK(error.find("cannot open optimiser state '" + (dir / "missing.optim").string() +
                   "': No such file or directory") != std::string::npos);

  // A full disk (a file size limit here) names the file and the OS reason.
  std::vector<Param<Cpu>> large = make_params({{64, 64, 16, 1}}, rng);
  ParamList<Cpu> large_list = as_list(large);
  Adam<Cpu> big;
  big.step(large_list);  // 2 x 256 KiB of state
  rlimit old{};
  getrlimit(RLIMIT_FSIZE, &old);
  const auto old_handler = signal(SIGXFSZ, SIG_IGN);
  rlimit small = old;
  small.rlim_cur = 100'000;
  REQUIRE(setrlimit(RLIMIT_FSIZE, &small) == 0);
  error.clear();
  try {
    big.save_state(dir / "full.optim");
  } catch (const std::runtime_error& e) {
    error = e.what();
  }
  setrlimit(RLIMIT_FSIZE, &old);
  signal(SIGXFSZ, old_handler);
  CHECK(error == "cannot write '" + (dir / "full.optim").string() + "': File too large");
  CHECK(!fs::exists(dir / "full.optim"));
  std::size_t temporaries = 0;
  for (const auto& e : fs::directory_iterator(dir))
    temporaries += e.path().filename().string().find(".tmp.") != std::string::npos;
  CHECK(temporaries == 0);
  fs::remove_all(dir);
}
