#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <unetsrnn/unetsrnn.hpp>
#include <vector>

#include "model_check.hpp"
#include "random_tensors.hpp"

using namespace unetsrnn;
using testing::forward_backward;
using testing::random_tensor;

TEST_CASE("trainable parameter counts match the original models (3-channel input)") {
  CHECK(UNet2D<Filters::Low>().parameter_count() == 485817);
  CHECK(UNet2DRes<Filters::High>().parameter_count() == 15527681);
  CHECK(CRUNetRes<Filters::High>().parameter_count() == 14448321);
  CHECK(CRUNetRes<Filters::Low>().parameter_count() == 914481);
  // One SRNN weight per channel per direction (the original's Keras count adds the masked taps).
  CHECK(CRUNetRes<Filters::High>().parameter_count() + 2 * 4 * (64 + 128) == 14449857);
  CHECK(CRUNetRes<Filters::Low>().parameter_count() + 2 * 4 * (16 + 32) == 914865);
}

TEST_CASE("the SRNN ablation is CR-UNet-Res without the SRNN skips and their 1x1 convolutions") {
  CRUNetRes<Filters::Low> full;
  CRUNetResPlain<Filters::Low> plain;
  CHECK(plain.name() == "crunet_res_plain_lw");
  // Level 3 (32 channels) and level 2 (16): 4 SRNN weights per channel, a 1x1 conv 4C -> C + bias.
  auto srnn_skip = [](std::size_t c) { return 4 * c + 4 * c * c + c; };
  CHECK(plain.parameter_count() == full.parameter_count() - srnn_skip(32) - srnn_skip(16));
  // Same parameter names as CR-UNet-Res but for the two skips.
  std::set<std::string> full_names, plain_names;
  for (auto& p : full.parameters())
    if (p.name.rfind("skip", 0) != 0) full_names.insert(p.name);
  for (auto& p : plain.parameters()) plain_names.insert(p.name);
  CHECK(full_names == plain_names);
  // Its level-4 skip is b_4 (as CR-UNet-Res), not the original U-Net2D-Res's cat(t_4, b_4).
  CHECK(plain.parameter_count() < UNet2DRes<Filters::Low>().parameter_count());
}

// tests/data/model_parameters.txt was written from the hand-wired models before they became
// aliases of one template: every model keeps its parameter count, names, order and shapes, so
// weights files written before stay loadable.
TEST_CASE("every model keeps the parameter names, order and shapes it was released with") {
  std::ifstream in(UNETSRNN_SOURCE_DIR "/tests/data/model_parameters.txt");
  REQUIRE(in);
  std::vector<std::string> pinned, now;
  for (std::string line; std::getline(in, line);) pinned.push_back(line);
  for (const auto& line : pinned) {
    if (line.rfind("model ", 0) != 0) continue;
    const std::string name = line.substr(6, line.find(' ', 6) - 6);
    auto m = make_model(name);
    now.push_back("model " + name + " " + std::to_string(m->parameter_count()));
    for (auto& p : m->parameters()) {
      const Shape s = p.param->value.shape();
      std::ostringstream row;
      row << p.name << " " << s.n << " " << s.c << " " << s.h << " " << s.w;
      now.push_back(row.str());
    }
  }
  CHECK(pinned.size() > 300);
  for (std::size_t i = 0; i < std::min(pinned.size(), now.size()); ++i) {
    INFO("model_parameters.txt line ", i + 1);
    REQUIRE(now[i] == pinned[i]);
  }
  CHECK(now.size() == pinned.size());
}

TEST_CASE("factory builds every model by name and rejects unknown names") {
  const std::vector<std::string> names = model_names();
  CHECK(names.size() == 8);
  CHECK(std::set<std::string>(names.begin(), names.end()).size() == names.size());
  const std::string help = model_help("model to train");
  for (const auto& name : names) {
    CHECK(help.find("\n  " + name + " ") != std::string::npos);
    CHECK_NOTHROW(check_model_name(name));
    auto m = make_model(name);
    CHECK(m->name() == name);
    CHECK(m->parameter_count() > 0);
  }
  CHECK(make_model("unet2d_lw")->parameter_count() == 485817);
  CHECK(make_model("crunet_res_hw")->parameter_count() == 14448321);
  CHECK_THROWS_WITH_AS(make_model("crunet"), doctest::Contains("valid models"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(check_model_name("crunet"), doctest::Contains("unknown model 'crunet'"),
                       std::invalid_argument);
}

TEST_CASE("parameter names are unique and shapes are as declared") {
  CRUNetRes<Filters::Low> m;
  auto params = m.parameters();
  std::set<std::string> names;
  for (auto& p : params) CHECK(names.insert(p.name).second);
  CHECK(params.front().name == "enc1.conv_a.weight");
  CHECK(params.front().param->value.shape() == Shape{8, 3, 3, 3});
  CHECK(params.back().name == "out.bias");
}

TEST_CASE("same seed gives bit-identical weights, another seed different ones") {
  CRUNetRes<Filters::Low> a, b, c;
  a.init(42);
  b.init(42);
  c.init(43);
  auto pa = a.parameters(), pb = b.parameters(), pc = c.parameters();
  bool all_equal = true, any_differs = false;
  for (std::size_t i = 0; i < pa.size(); ++i) {
    const auto& va = pa[i].param->value;
    all_equal = all_equal && std::memcmp(va.data(), pb[i].param->value.data(), va.size() * 4) == 0;
    any_differs = any_differs || std::memcmp(va.data(), pc[i].param->value.data(), va.size() * 4);
  }
  CHECK(all_equal);
  CHECK(any_differs);
}

TEST_CASE("bad input shapes give clear errors") {
  UNet2D<Filters::Low> m;
  m.init(1);
  CHECK_THROWS_WITH_AS(m.forward(Tensor<>(Shape{1, 3, 40, 40})),
                       doctest::Contains("multiples of 16"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(m.forward(Tensor<>(Shape{1, 1, 32, 32})), doctest::Contains("expects 3"),
                       std::invalid_argument);
  UNet2D<Filters::Low, Cpu, 1> grey;  // input channels are a template parameter
  grey.init(1);
  CHECK(grey.forward(Tensor<>(Shape{1, 1, 32, 48}, 0.5f)).shape == Shape{1, 1, 32, 48});
}

TEST_CASE_TEMPLATE("forward + backward of the seed models at 1x3x160x192", M, UNet2D<Filters::Low>,
                   UNet2DRes<Filters::High>, CRUNetRes<Filters::High>, CRUNetRes<Filters::Low>) {
  M model;
  model.init(7);
  const Tensor<> x = random_tensor(Shape{1, 3, 160, 192}, 1, 0.0, 1.0);
  const Tensor<> r = random_tensor(Shape{1, 1, 160, 192}, 2);
  const double loss = forward_backward(model, x, r);
  CHECK(std::isfinite(loss));
  double grad_norm = 0.0;
  for (auto& p : model.parameters())
    for (float g : p.param->grad) grad_norm += static_cast<double>(g) * g;
  CHECK(std::isfinite(grad_norm));
  CHECK(grad_norm > 0.0);
  // Every parameter tensor receives some gradient (no block is disconnected).
  for (auto& p : model.parameters()) {
    double s = 0.0;
    for (float g : p.param->grad) s += std::fabs(g);
    INFO(p.name);
    CHECK(s > 0.0);
  }
}

TEST_CASE_TEMPLATE("model gradients match finite differences (tiny widths, 2x3x32x32)", M,
                   UNet2D<Filters{2}>, UNet2DRes<Filters{2}>, CRUNetRes<Filters{2}>) {
  M model;
  testing::check_model_gradients(model, Shape{2, 3, 32, 32});
}
