#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

// Finite-difference checks of every non-SRNN layer (input and parameter gradients, accumulate
// semantics), a concatenating residual block, and the initialisers.
// ops.hpp first: it declares the SrnnCache template that cpu/backend.hpp's srnn.hpp specialises.
#include "unetsrnn/ops/ops.hpp"

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "gradcheck.hpp"
#include "unetsrnn/core/rng.hpp"
#include "unetsrnn/layers/conv.hpp"
#include "unetsrnn/layers/pool.hpp"
#include "unetsrnn/ops/cpu/backend.hpp"
#include "unetsrnn/ops/reference/conv.hpp"

using namespace unetsrnn;
using testing::check_gradient;
using testing::fill_uniform;
using testing::GradCheckOptions;
using testing::project;
using testing::random_tensor;

namespace {

const float kNaN = std::numeric_limits<float>::quiet_NaN();

// Options for layers without kinks in the checked neighbourhood: the central difference must agree.
GradCheckOptions strict() {
  GradCheckOptions opt;
  opt.allow_one_sided = false;
  return opt;
}

// max |a - b| <= rel * max |b|.
bool nearly_equal(const Tensor<Cpu>& a, const Tensor<Cpu>& b, double rel = 1e-5) {
  if (!(a.shape() == b.shape())) return false;
  double worst = 0.0, scale = 1e-30;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const double d = std::fabs(double(a[i]) - b[i]);
    if (!(d <= worst)) worst = d;  // NaN sticks
    scale = std::max(scale, std::fabs(double(b[i])));
  }
  return worst <= rel * scale;
}

// Checks a single-input layer with the loss sum(layer(x) * r): the input gradient, every collected
// parameter's gradient, and the accumulate contract (dx += with accumulate, parameter gradients
// always +=).
template <class Layer>
void check_layer(const std::string& name, Layer& layer, Tensor<Cpu> x, Rng& rng,
                 const GradCheckOptions& opt) {
  const Shape out = Layer::output_shape(x.shape());
  const Tensor<Cpu> r = random_tensor(out, rng);
  Tensor<Cpu> y(out);
  ParamList<Cpu> params;
  layer.collect(params, name);
  const auto loss = [&] {
    layer.forward(x, y);
    return project(y, r);
  };

  // Analytic gradients; dx starts as NaN, so "=" must not read it.
  for (auto& p : params) p.param->grad.zero();
  layer.forward(x, y);
  Tensor<Cpu> dy = r, dx(x.shape(), kNaN);
  layer.backward(dy, dx, false);
  std::vector<Tensor<Cpu>> grads;
  for (auto& p : params) grads.push_back(p.param->grad);

  {  // A second backward with accumulate: dx adds to what is there, parameter gradients double.
    const Tensor<Cpu> prefill = random_tensor(x.shape(), rng);
    Tensor<Cpu> dx_acc = prefill, expected = prefill;
    for (std::size_t i = 0; i < expected.size(); ++i) expected[i] += dx[i];
    layer.forward(x, y);
    dy = r;
    layer.backward(dy, dx_acc, true);
    INFO(name, ": backward with accumulate must add to dx");
    CHECK(nearly_equal(dx_acc, expected));
    for (std::size_t k = 0; k < params.size(); ++k) {
      Tensor<Cpu> twice = grads[k];
      for (float& g : twice) g *= 2.0f;
      INFO(params[k].name, ": parameter gradients must accumulate over backward calls");
      CHECK(nearly_equal(params[k].param->grad, twice));
    }
  }

  check_gradient(name + ".input", x, dx, loss, opt);
  for (std::size_t k = 0; k < params.size(); ++k)
    check_gradient(params[k].name, params[k].param->value, grads[k], loss, opt);
}

template <class Layer>
void init_with_random_bias(Layer& layer, Rng& rng) {
  layer.init(rng);
  fill_uniform(layer.bias.value, rng, -0.5, 0.5);  // zero biases would leave db's check weak
}

// Smallest |pre-activation| of conv on x (reference kernel, no activation).
template <class Conv>
double smallest_preactivation(const Conv& conv, CView<Cpu> x, bool with_bias) {
  Tensor<Cpu> z(Conv::output_shape(x.shape));
  ref::conv2d_forward(x, conv.weight.value, with_bias ? conv.bias.value.cview() : CView<Cpu>{}, z,
                      Act::None);
  double smallest = std::numeric_limits<double>::infinity();
  for (float v : z) smallest = std::min(smallest, std::fabs(double(v)));
  return smallest;
}

// A ReLU's kink makes a central difference wrong whenever a pre-activation z crosses 0 inside the
// step. Moving one weight, bias or input by eps moves any z by at most eps * max(|x|, 1, |w|) =
// eps here (inputs in [-1, 1], Glorot weights below 1), so redrawing the input (and bias) until
// every |z| >= 1.5 eps makes the check strict: no coordinate may fall back to one-sided slopes.
template <class Conv>
Tensor<Cpu> input_away_from_kinks(Conv& conv, Shape in, Rng& rng, bool with_bias, double margin) {
  for (int attempt = 0; attempt < 10000; ++attempt) {
    Tensor<Cpu> x = random_tensor(in, rng);
    if (with_bias) fill_uniform(conv.bias.value, rng, -0.5, 0.5);
    if (smallest_preactivation(conv, x, with_bias) >= margin) return x;
  }
  FAIL("no input found whose pre-activations all avoid the ReLU kink by ", margin);
  return {};
}

constexpr int kN = 2, kH = 6, kW = 8;

// ReLU layers: strict, with half the default step. The margin 1.5 eps then excludes fewer draws
// (with eps = 1e-2 a 4-channel 3x3 layer needed thousands), and the errors seen at eps = 1e-2 were
// ~1/100 of the tolerance, so the doubled rounding noise is harmless.
GradCheckOptions relu_options() {
  GradCheckOptions opt = strict();
  opt.eps = 5e-3;
  return opt;
}
const double kMargin = 1.5 * relu_options().eps;

}  // namespace

TEST_CASE("Conv2d 3x3 without activation: finite differences") {
  Rng rng(11);
  Conv2d<3, 4, 3, Act::None> conv;
  init_with_random_bias(conv, rng);
  check_layer("conv3x3", conv, random_tensor(Shape{kN, 3, kH, kW}, rng), rng, strict());
}

TEST_CASE("Conv2d 3x3 with fused ReLU: finite differences") {
  Rng rng(12);
  Conv2d<3, 4, 3, Act::Relu> conv;
  conv.init(rng);
  const Tensor<Cpu> x = input_away_from_kinks(conv, Shape{kN, 3, kH, kW}, rng, true, kMargin);
  check_layer("conv3x3_relu", conv, x, rng, relu_options());
}

TEST_CASE("Conv2d whose ReLU is chosen at run time: finite differences") {
  Rng rng(13);
  Conv2d<2, 3, 3, Act::None> conv;
  conv.set_activation(Act::Relu);
  conv.init(rng);
  const Tensor<Cpu> x = input_away_from_kinks(conv, Shape{kN, 2, kH, kW}, rng, true, kMargin);
  check_layer("conv3x3_runtime_relu", conv, x, rng, relu_options());
}

TEST_CASE("Conv2d 1x1 (with and without ReLU): finite differences") {
  Rng rng(14);
  Conv2d<4, 3, 1, Act::None> linear;
  init_with_random_bias(linear, rng);
  check_layer("conv1x1", linear, random_tensor(Shape{kN, 4, kH, kW}, rng), rng, strict());
  Conv2d<4, 2, 1, Act::Relu> relu;
  relu.init(rng);
  const Tensor<Cpu> x = input_away_from_kinks(relu, Shape{kN, 4, kH, kW}, rng, true, kMargin);
  check_layer("conv1x1_relu", relu, x, rng, relu_options());
}

TEST_CASE("Conv2d without bias: finite differences, and no bias parameter") {
  Rng rng(15);
  Conv2d<3, 2, 3, Act::Relu, false> conv;
  conv.init(rng);
  ParamList<Cpu> params;
  conv.collect(params, "conv");
  REQUIRE(params.size() == 1);
  CHECK(params[0].name == "conv.weight");
  const Tensor<Cpu> x = input_away_from_kinks(conv, Shape{kN, 3, kH, kW}, rng, false, kMargin);
  check_layer("conv_nobias", conv, x, rng, relu_options());
  for (float b : conv.bias.value) CHECK(b == 0.0f);  // the unused bias never enters the output
}

TEST_CASE("ConvTranspose2x2: finite differences") {
  Rng rng(16);
  ConvTranspose2x2<3, 2> up;
  init_with_random_bias(up, rng);
  check_layer("up", up, random_tensor(Shape{kN, 3, kH / 2, kW / 2}, rng), rng, strict());
}

TEST_CASE("MaxPool2: finite differences with distinct inputs") {
  Rng rng(17);
  // Values 0.05 apart, shuffled: every window's maximum leads by more than the 2 * eps = 0.02 a
  // central difference spans, so the argmax never moves inside the step.
  const Shape s{kN, 3, kH, kW};
  Tensor<Cpu> x(s);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = 0.05f * (float(i) - float(x.size()) / 2);
  for (std::size_t i = x.size() - 1; i > 0; --i) std::swap(x[i], x[rng.below(i + 1)]);
  MaxPool2<Cpu> pool;
  check_layer("pool", pool, x, rng, strict());
}

TEST_CASE("residual block with fused concatenation: finite differences through channel blocks") {
  // The original's block: a = conv(t); b = conv(cat(t, a)); output cat(t, b). Concatenation is
  // fused: t is copied into its channel block, the convolutions write straight into theirs, and
  // backward reads dy / writes dx through the same strided blocks.
  constexpr int Ct = 2, F = 3;
  Rng rng(18);
  Conv2d<Ct, F, 3> conv_a;
  Conv2d<Ct + F, F, 3> conv_b;
  conv_a.init(rng);
  conv_b.init(rng);
  Tensor<Cpu> t, cat(Shape{kN, Ct + F, kH, kW}), out(Shape{kN, Ct + F, kH, kW});

  // Both ReLUs must stay away from their kinks (see input_away_from_kinks). Moving one coordinate
  // by eps moves z_a by at most eps, and z_b by at most ~3.2 eps: through one direct tap plus up to
  // 27 changed values of a, each by <= 0.37 eps, all weighted by |w_b| <= 0.29 (Glorot limits). A
  // smaller step than the default makes such margins likely enough to find by redrawing.
  GradCheckOptions opt = strict();
  opt.eps = 2e-3;
  for (int attempt = 0;; ++attempt) {
    REQUIRE(attempt < 10000);
    t = random_tensor(Shape{kN, Ct, kH, kW}, rng);
    fill_uniform(conv_a.bias.value, rng, -0.5, 0.5);
    fill_uniform(conv_b.bias.value, rng, -0.5, 0.5);
    if (smallest_preactivation(conv_a, t, true) < 1.5 * opt.eps) continue;
    ops::copy<Cpu>(t, cat.view().channels(0, Ct));
    conv_a.forward(t, cat.view().channels(Ct, F));
    if (smallest_preactivation(conv_b, cat, true) >= 4 * opt.eps) break;
  }
  const Tensor<Cpu> r = random_tensor(out.shape(), rng);

  const auto forward = [&] {
    ops::copy<Cpu>(t, cat.view().channels(0, Ct));
    conv_a.forward(t, cat.view().channels(Ct, F));
    ops::copy<Cpu>(t, out.view().channels(0, Ct));
    conv_b.forward(cat, out.view().channels(Ct, F));
  };
  const auto loss = [&] {
    forward();
    return project(out, r);
  };

  ParamList<Cpu> params;
  conv_a.collect(params, "block.conv_a");
  conv_b.collect(params, "block.conv_b");
  for (auto& p : params) p.param->grad.zero();
  forward();
  Tensor<Cpu> dout = r, dcat(cat.shape(), kNaN), dt(t.shape(), kNaN);
  ops::copy<Cpu>(dout.view().channels(0, Ct), dt);  // identity path t -> out
  conv_b.backward(dout.view().channels(Ct, F), dcat, false);
  ops::add<Cpu>(dcat.view().channels(0, Ct), dt);          // t -> cat -> conv_b
  conv_a.backward(dcat.view().channels(Ct, F), dt, true);  // t -> a -> cat -> conv_b

  check_gradient("block.input", t, dt, loss, opt);
  for (auto& p : params) {
    const Tensor<Cpu> analytic = p.param->grad;
    check_gradient(p.name, p.param->value, analytic, loss, opt);
  }
}

TEST_CASE("sigmoid output: finite differences of a smooth nonlinearity") {
  // The models' output activation; dL/dx = r * y * (1 - y). Curvature makes the central difference
  // inexact by eps^2 * f'''(x) / 6, which the default tolerance absorbs without one-sided help.
  Rng rng(19);
  Tensor<Cpu> x = random_tensor(Shape{kN, 1, kH, kW}, rng, -4.0, 4.0);
  const Tensor<Cpu> r = random_tensor(x.shape(), rng);
  Tensor<Cpu> y(x.shape()), dx(x.shape());
  const auto loss = [&] {
    ops::sigmoid_forward<Cpu>(x, y);
    return project(y, r);
  };
  ops::sigmoid_forward<Cpu>(x, y);
  for (std::size_t i = 0; i < x.size(); ++i) dx[i] = r[i] * y[i] * (1.0f - y[i]);
  check_gradient("sigmoid.input", x, dx, loss, strict());
}

// --------------------------------------------------------------------------------- initialisers
TEST_CASE("the same seed gives bit-identical weights, a different seed different ones") {
  const auto draw = [](std::uint64_t seed) {
    Rng rng(seed);
    Conv2d<8, 16, 3> glorot;
    Conv2d<8, 16, 3> he(Init::HeNormal);
    ConvTranspose2x2<16, 8> up;
    glorot.init(rng);
    he.init(rng);
    up.init(rng);
    std::vector<float> all;
    for (const Tensor<Cpu>* t : {&glorot.weight.value, &he.weight.value, &up.weight.value})
      all.insert(all.end(), t->begin(), t->end());
    return all;
  };
  const std::vector<float> a = draw(42), b = draw(42), c = draw(43);
  REQUIRE(a.size() == b.size());
  CHECK(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
  std::size_t differing = 0;
  for (std::size_t i = 0; i < a.size(); ++i) differing += a[i] != c[i];
  CHECK(differing > a.size() * 99 / 100);
}

namespace {
struct Moments {
  double mean = 0, sd = 0, max_abs = 0;
};
Moments moments(const Tensor<Cpu>& t) {
  Moments m;
  for (float v : t) m.mean += v;
  m.mean /= double(t.size());
  for (float v : t) {
    m.sd += (v - m.mean) * (v - m.mean);
    m.max_abs = std::max(m.max_abs, std::fabs(double(v)));
  }
  m.sd = std::sqrt(m.sd / double(t.size()));
  return m;
}
}  // namespace

TEST_CASE("He-normal: sd sqrt(2 / fan_in), truncated at two of its normal's sd, zero biases") {
  // 64 * 64 * 9 = 36864 draws: the sample sd is within ~0.5% of the truth, so 5% is a safe bound
  // that still rejects a truncated normal without Keras' 0.8796 correction (12% too small).
  Rng rng(21);
  Conv2d<64, 64, 3> conv(Init::HeNormal);
  conv.init(rng);
  const double target = std::sqrt(2.0 / (64 * 9));
  const double cutoff = 2.0 * target / 0.87962566103423978;  // 2 sd of the untruncated normal
  const Moments m = moments(conv.weight.value);
  CHECK(m.sd == doctest::Approx(target).epsilon(0.05));
  CHECK(std::fabs(m.mean) < 0.05 * target);
  CHECK(m.max_abs <= cutoff * (1 + 1e-6));
  CHECK(m.max_abs > 0.97 * cutoff);  // the tails do reach the cutoff: truncated, not shrunk
  for (float b : conv.bias.value) CHECK(b == 0.0f);
}

TEST_CASE("Glorot-uniform: within +-sqrt(6 / (fan_in + fan_out)) and filling it") {
  Rng rng(22);
  Conv2d<64, 64, 3> conv;  // fan_in = fan_out = 576
  conv.init(rng);
  ConvTranspose2x2<64, 32> up;  // Keras kernel (2, 2, 32, 64): fan_in = 128, fan_out = 256
  up.init(rng);
  const double limits[2] = {std::sqrt(6.0 / (576 + 576)), std::sqrt(6.0 / (128 + 256))};
  const Tensor<Cpu>* weights[2] = {&conv.weight.value, &up.weight.value};
  for (int k = 0; k < 2; ++k) {
    CAPTURE(k);
    const Moments m = moments(*weights[k]);
    CHECK(m.max_abs <= limits[k] * (1 + 1e-6));
    CHECK(m.max_abs > 0.99 * limits[k]);
    CHECK(m.sd == doctest::Approx(limits[k] / std::sqrt(3.0)).epsilon(0.05));
    CHECK(std::fabs(m.mean) < 0.05 * limits[k]);
  }
  for (float b : up.bias.value) CHECK(b == 0.0f);
}
