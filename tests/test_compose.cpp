// Composition: two models the original work does not have (tests/composed_models.hpp), each
// declared in a few lines of the UNet template with no forward or backward written for them,
// trained for a few epochs on the library's synthetic nails and checked against finite
// differences like the original models (test_models.cpp).
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <unetsrnn/data/synthetic.hpp>
#include <unetsrnn/train/loss.hpp>
#include <unetsrnn/train/metrics.hpp>
#include <unetsrnn/train/optim.hpp>
#include <unetsrnn/unetsrnn.hpp>
#include <vector>

#include "composed_models.hpp"
#include "model_check.hpp"

using namespace unetsrnn;

using testing::GreyRes4;
using testing::SrnnEveryLevel;

namespace {

// The synthetic samples as (N, C, H, W) batches; C = 1 averages the colour channels.
struct Batches {
  std::vector<Tensor<Cpu>> images, masks;
};
Batches make_batches(const std::vector<Sample>& samples, int channels, int batch) {
  Batches out;
  const Shape s = samples.front().image.shape();
  const std::size_t plane = static_cast<std::size_t>(s.h) * s.w;
  for (std::size_t first = 0; first + batch <= samples.size(); first += batch) {
    Tensor<Cpu> x(Shape{batch, channels, s.h, s.w}), y(Shape{batch, 1, s.h, s.w});
    for (int i = 0; i < batch; ++i) {
      const Sample& sample = samples[first + i];
      const float* rgb = sample.image.data();
      float* dst = x.data() + i * channels * plane;
      if (channels == 3) {
        std::copy(rgb, rgb + 3 * plane, dst);
      } else {
        for (std::size_t k = 0; k < plane; ++k)
          dst[k] = (rgb[k] + rgb[plane + k] + rgb[2 * plane + k]) / 3.0f;
      }
      std::copy(sample.mask.begin(), sample.mask.end(), y.data() + i * plane);
    }
    out.images.push_back(std::move(x));
    out.masks.push_back(std::move(y));
  }
  return out;
}

struct EpochResult {
  double loss = 0.0, dice = 0.0;
};

// One epoch over `data` (training when `train`), mean loss and the global Dice at 0.5.
template <class M>
EpochResult run_epoch(M& model, Adam<Cpu>& adam, const Batches& data, bool train) {
  ParamList<Cpu> params = model.parameters();
  EpochResult r;
  ConfusionCounts counts;
  for (std::size_t b = 0; b < data.images.size(); ++b) {
    const CView<Cpu> logits = model.forward(data.images[b]);
    Tensor<Cpu> dlogits(logits.shape);
    r.loss += bce_soft_dice(logits, data.masks[b], dlogits);
    counts += confusion(logits, data.masks[b], Scores::Logits);
    if (train) {
      zero_grad(params);
      model.backward(dlogits);
      adam.step(params);
    }
  }
  r.loss /= static_cast<double>(data.images.size());
  r.dice = counts.dice();
  return r;
}

// Trains a few epochs on synthetic nails and reports what it learnt on images it did not see.
template <class M>
void train_on_synthetic(int channels) {
  constexpr int kSize = 48, kBatch = 4, kEpochs = 8, kTrain = 32, kTest = 16;
  const Batches train = make_batches(generate_synthetic(kTrain, kSize, kSize, 1), channels, kBatch);
  const Batches test = make_batches(generate_synthetic(kTest, kSize, kSize, 2), channels, kBatch);
  M model;
  model.init(1);
  AdamOptions options;
  options.lr = 5e-3;
  Adam<Cpu> adam(options);
  const EpochResult before = run_epoch(model, adam, test, false);
  EpochResult first, last;
  for (int epoch = 0; epoch < kEpochs; ++epoch) {
    last = run_epoch(model, adam, train, true);
    if (epoch == 0) first = last;
  }
  const EpochResult after = run_epoch(model, adam, test, false);
  std::printf(
      "%s (%zu parameters): training loss %.4f -> %.4f; unseen images: loss %.4f -> %.4f, "
      "Dice %.3f -> %.3f\n",
      model.name().c_str(), model.parameter_count(), first.loss, last.loss, before.loss, after.loss,
      before.dice, after.dice);
  CHECK(last.loss < 0.9 * first.loss);
  CHECK(after.loss < before.loss);
  CHECK(after.dice > before.dice);
}

}  // namespace

TEST_CASE("the declared models have the shapes and names they declare") {
  SrnnEveryLevel<> srnn;
  GreyRes4<> grey;
  CHECK(srnn.name() == "srnn_every_level");
  CHECK(SrnnEveryLevel<>::depth == 5);
  CHECK(GreyRes4<>::depth == 4);
  CHECK(GreyRes4<>::in_channels == 1);
  // One SRNN skip per decoder level, deepest first, each before the decoder levels.
  std::vector<std::string> skips;
  for (auto& p : srnn.parameters())
    if (testing::is_srnn_weight(p.name)) skips.push_back(p.name);
  CHECK(skips == std::vector<std::string>{"skip4.srnn.weight", "skip3.srnn.weight",
                                          "skip2.srnn.weight", "skip1.srnn.weight"});
  srnn.init(1);
  grey.init(1);
  CHECK(srnn.forward(Tensor<Cpu>(Shape{1, 3, 32, 48}, 0.5f)).shape == Shape{1, 1, 32, 48});
  CHECK(grey.forward(Tensor<Cpu>(Shape{2, 1, 24, 40}, 0.5f)).shape == Shape{2, 1, 24, 40});
  CHECK_THROWS_WITH_AS(grey.forward(Tensor<Cpu>(Shape{1, 1, 20, 40})),
                       doctest::Contains("multiples of 8 (3 2x2 poolings)"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(grey.forward(Tensor<Cpu>(Shape{1, 3, 32, 32})),
                       doctest::Contains("grey_res4: input has 3 channels, the model expects 1"),
                       std::invalid_argument);
}

TEST_CASE("an SRNN skip on every level (paper rule, L = 16): gradients match finite differences") {
  SrnnEveryLevel<2> model;
  // The paper rule compounds (1 + w) over L = 16 steps: weaker weights keep the polynomial tame.
  testing::check_model_gradients(model, Shape{2, 3, 32, 32}, 0.02, 0.1);
}

TEST_CASE("a depth-4 residual U-Net for one channel: gradients match finite differences") {
  GreyRes4<2> model;
  testing::check_model_gradients(model, Shape{2, 1, 32, 24});
}

TEST_CASE("both declared models learn the synthetic nails in a few epochs") {
  SUBCASE("SRNN skip on every level") { train_on_synthetic<SrnnEveryLevel<>>(3); }
  SUBCASE("depth-4 residual U-Net, grey input") { train_on_synthetic<GreyRes4<>>(1); }
}
