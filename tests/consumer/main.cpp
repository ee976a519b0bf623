// Consumer of the installed package: one Conv2d forward and a weights round trip, checked against
// values worked out by hand, and the CPU path its kernels run: built with no flags at all (no
// -march), it must still get the best path this CPU has (run-time dispatch, ops/cpu/isa.hpp).
// Exit status 0 means the install is usable.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <unetsrnn/io/weights.hpp>
#include <unetsrnn/unetsrnn.hpp>

namespace {

struct OneConv {
  unetsrnn::Conv2d<1, 2, 3> conv;
  std::string name() const { return "consumer_one_conv"; }
  unetsrnn::ParamList<unetsrnn::Cpu> parameters() {
    unetsrnn::ParamList<unetsrnn::Cpu> list;
    conv.collect(list, "conv");
    return list;
  }
};

bool near(float a, float b) { return std::fabs(a - b) < 1e-5f; }

}  // namespace

int main() {
  using namespace unetsrnn;
  std::printf("consumer: CPU path %s (the best this CPU runs: %s)\n", cpu::active_isa_name(),
              cpu::isa_name(cpu::best_isa()));
  if (cpu::active_isa() != cpu::best_isa()) {
    std::fprintf(stderr, "consumer: the kernels run the %s path, not the CPU's best\n",
                 cpu::active_isa_name());
    return 1;
  }
  OneConv model;
  Rng rng(1);
  model.conv.init(rng);
  model.conv.weight.value.fill(1.0f);  // every 3x3 tap is 1 ...
  model.conv.bias.value.fill(0.5f);    // ... so an output is (taps inside the image) + 0.5

  Tensor<Cpu> x(Shape{1, 1, 4, 4}, 1.0f);
  Tensor<Cpu> y(decltype(model.conv)::output_shape(x.shape()));
  model.conv.forward(x, y);
  std::printf("conv output shape %s, corner %.2f, edge %.2f, centre %.2f\n",
              y.shape().str().c_str(), y.at(0, 1, 0, 0), y.at(0, 1, 0, 1), y.at(0, 1, 1, 1));
  if (!(y.shape() == Shape{1, 2, 4, 4}) || !near(y.at(0, 1, 0, 0), 4.5f) ||
      !near(y.at(0, 1, 0, 1), 6.5f) || !near(y.at(0, 1, 1, 1), 9.5f)) {
    std::fprintf(stderr, "consumer: wrong Conv2d output\n");
    return 1;
  }

  const std::filesystem::path file = std::filesystem::temp_directory_path() / "consumer.weights";
  save_weights(model, file);
  OneConv reloaded;
  load_weights(reloaded, file);
  std::filesystem::remove(file);
  if (!near(reloaded.conv.bias.value[1], 0.5f) || !near(reloaded.conv.weight.value[8], 1.0f)) {
    std::fprintf(stderr, "consumer: weights round trip failed\n");
    return 1;
  }
  std::printf("consumer: ok\n");
  return 0;
}
