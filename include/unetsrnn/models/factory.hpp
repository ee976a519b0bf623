#pragma once
// Run-time model selection for programs that take the model as an argument ("crunet_res_hw").
// AnyModel is the type-erased face of every model type; code that knows its model at compile time
// uses the model type directly and pays no virtual call.
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
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
  std::size_t parameter_count() {
    std::size_t n = 0;
    for (auto& p : parameters()) n += p.param->value.size();
    return n;
  }
  void zero_grad() {
    for (auto& p : parameters()) ops::fill<Dev>(p.param->grad.view(), 0.0f);  // threaded
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
  Model model;
};

inline std::vector<std::string> model_names() {
  return {"unet2d_lw",     "unet2d_hw",     "unet2d_res_lw",
          "unet2d_res_hw", "crunet_res_lw", "crunet_res_hw",
          "crunet_res_plain_lw", "crunet_res_plain_hw"};
}

// The four models of the original: unet2d_lw, unet2d_res_hw, crunet_res_hw, crunet_res_lw (every
// family is offered at both widths), and crunet_res_plain_{lw,hw}, CR-UNet-Res without its Spatial
// RNN (the ablation). Unknown name: std::invalid_argument listing the valid ones.
template <class Dev = Cpu>
std::unique_ptr<AnyModel<Dev>> make_model(std::string_view name) {
  if (name == "unet2d_lw") return std::make_unique<ModelAdapter<UNet2D<Filters::Low, Dev>, Dev>>();
  if (name == "unet2d_hw") return std::make_unique<ModelAdapter<UNet2D<Filters::High, Dev>, Dev>>();
  if (name == "unet2d_res_lw")
    return std::make_unique<ModelAdapter<UNet2DRes<Filters::Low, Dev>, Dev>>();
  if (name == "unet2d_res_hw")
    return std::make_unique<ModelAdapter<UNet2DRes<Filters::High, Dev>, Dev>>();
  if (name == "crunet_res_lw")
    return std::make_unique<ModelAdapter<CRUNetRes<Filters::Low, Dev>, Dev>>();
  if (name == "crunet_res_hw")
    return std::make_unique<ModelAdapter<CRUNetRes<Filters::High, Dev>, Dev>>();
  if (name == "crunet_res_plain_lw")
    return std::make_unique<ModelAdapter<CRUNetResPlain<Filters::Low, Dev>, Dev>>();
  if (name == "crunet_res_plain_hw")
    return std::make_unique<ModelAdapter<CRUNetResPlain<Filters::High, Dev>, Dev>>();
  std::string valid;
  for (const auto& n : model_names()) valid += (valid.empty() ? "" : ", ") + n;
  fail_argument("unknown model '", name, "'; valid models: ", valid);
}

}  // namespace unetsrnn
