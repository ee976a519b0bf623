#pragma once
// Run-time model selection for programs that take the model as an argument ("crunet_res_hw").
// One table, known_models(), lists every model the programs know by name: model_names(),
// make_model() and the programs' --model help (model_help()) all read it, so a model declared
// and added there is known everywhere. AnyModel is the type-erased face of every model type; code
// that knows its model at compile time uses the model type directly and pays no virtual call.
#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <vector>

#include "unetsrnn/models/models.hpp"

namespace unetsrnn {

template <class Dev = Cpu>
class AnyModel {
 public:
  virtual ~AnyModel() = default;
  virtual std::string name() const = 0;
  virtual ParamList<Dev> parameters() = 0;
  virtual void init(std::uint64_t seed) = 0;
  virtual CView<Dev> forward(CView<Dev> x) = 0;   // logits (N, 1, H, W)
  virtual void backward(CView<Dev> dlogits) = 0;  // parameter gradients +=
  // The same, telling `ready` which parameters' gradients are final as the pass goes (see
  // GradientReadyHook). A model that cannot tell reports nothing: its gradients are all final
  // when this returns.
  virtual void backward(CView<Dev> dlogits, GradientReadyHook& ready) {
    (void)ready;
    backward(dlogits);
  }
  std::size_t parameter_count() { return count_parameters(parameters()); }
  void zero_grad() {
    ParamList<Dev> list = parameters();
    unetsrnn::zero_grad(list);
  }
};

template <class Model, class Dev = Cpu>
class ModelAdapter final : public AnyModel<Dev> {
 public:
  std::string name() const override { return model.name(); }
  ParamList<Dev> parameters() override { return model.parameters(); }
  void init(std::uint64_t seed) override { model.init(seed); }
  CView<Dev> forward(CView<Dev> x) override { return model.forward(x); }
  void backward(CView<Dev> dlogits) override { model.backward(dlogits); }
  void backward(CView<Dev> dlogits, GradientReadyHook& ready) override {
    if constexpr (requires(CallGradientReadyHook call) { model.backward(dlogits, call); })
      model.backward(dlogits, CallGradientReadyHook{&ready});
    else
      model.backward(dlogits);
  }
  Model model;
};

// A row of the table: the model type (its name is its own, Model::options.name) and what --help
// says of it.
template <class Model>
struct Known {
  using type = Model;
  const char* about;
};

// Every model known by name: the four models of the original (unet2d_lw, unet2d_res_hw,
// crunet_res_hw, crunet_res_lw), every family at both widths, and the SRNN ablation.
template <class Dev>
constexpr auto known_models() {
  return std::tuple{
      Known<UNet2D<Filters::Low, Dev>>{"U-Net2D, 8 filters (the original's LW)"},
      Known<UNet2D<Filters::High, Dev>>{"U-Net2D, 32 filters"},
      Known<UNet2DRes<Filters::Low, Dev>>{"U-Net2D-Res, 8 filters"},
      Known<UNet2DRes<Filters::High, Dev>>{"U-Net2D-Res, 32 filters (the original's HW)"},
      Known<CRUNetRes<Filters::Low, Dev>>{"CR-UNet-Res LW, SRNN skips on levels 3 and 2"},
      Known<CRUNetRes<Filters::High, Dev>>{"CR-UNet-Res HW"},
      Known<CRUNetResPlain<Filters::Low, Dev>>{"CR-UNet-Res LW without its SRNN (ablation)"},
      Known<CRUNetResPlain<Filters::High, Dev>>{"CR-UNet-Res HW without its SRNN (ablation)"},
  };
}

// Calls f(row) for every row of known_models<Dev>(), in table order.
template <class Dev = Cpu, class F>
void for_each_known_model(F&& f) {
  std::apply([&](const auto&... row) { (f(row), ...); }, known_models<Dev>());
}

inline std::vector<std::string> model_names() {
  std::vector<std::string> names;
  for_each_known_model([&](const auto& row) {
    names.emplace_back(std::remove_cvref_t<decltype(row)>::type::options.name);
  });
  return names;
}

// The programs' --model help: `intro`, then one line per model (a help formatter indents them).
inline std::string model_help(const std::string& intro) {
  std::string help = intro + ", one of:";
  for_each_known_model([&](const auto& row) {
    std::string name = std::remove_cvref_t<decltype(row)>::type::options.name;
    name.resize(std::max<std::size_t>(name.size() + 2, 22), ' ');
    help += "\n  " + name + row.about;
  });
  return help;
}

// Throws std::invalid_argument listing the valid names unless `name` is a model's.
inline void check_model_name(std::string_view name) {
  std::string valid;
  for (const auto& n : model_names()) {
    if (n == name) return;
    valid += (valid.empty() ? "" : ", ") + n;
  }
  fail_argument("unknown model '", name, "'; valid models: ", valid);
}

// The model called `name` on device Dev. Unknown name: std::invalid_argument listing the valid
// ones.
template <class Dev = Cpu>
std::unique_ptr<AnyModel<Dev>> make_model(std::string_view name) {
  std::unique_ptr<AnyModel<Dev>> model;
  for_each_known_model<Dev>([&](const auto& row) {
    using Model = typename std::remove_cvref_t<decltype(row)>::type;
    if (!model && name == Model::options.name) model = std::make_unique<ModelAdapter<Model, Dev>>();
  });
  if (!model) check_model_name(name);
  return model;
}

}  // namespace unetsrnn
