#pragma once
// The four models of the original work as types (../shared/docs/seed-facts.md, section 2):
//   UNet2D<Filters::Low>, UNet2DRes<Filters::High>, CRUNetRes<Filters::High>,
//   CRUNetRes<Filters::Low>
// (every filter width is available for every model). Input (N, InChannels, H, W) with H, W
// divisible by 16; output (N, 1, H, W) logits (the sigmoid belongs to the loss and to prediction).
#include <cstdint>
#include <string>

#include "unetsrnn/models/blocks.hpp"

namespace unetsrnn {

// Width of the first level; levels 1..5 use f, 2f, 4f, 8f, 16f filters. The original's two widths
// are named; any other positive width works too (`Filters{2}` makes tiny models for tests).
enum class Filters : int { Low = 8, High = 32 };
inline constexpr int base_filters(Filters f) { return static_cast<int>(f); }
inline std::string suffix(Filters f) {
  if (f == Filters::Low) return "lw";
  if (f == Filters::High) return "hw";
  std::string s = "w";  // (not "w" + ...: g++ 12 -O3 reports a false -Wrestrict there)
  s += std::to_string(base_filters(f));
  return s;
}

// What every model shares: naming, parameter listing, seeded initialisation, input checks.
template <class Derived, class Dev, int InChannels>
class ModelBase {
 public:
  static constexpr int in_channels = InChannels;

  ParamList<Dev> parameters() {
    ParamList<Dev> list;
    self().collect(list);
    return list;
  }
  std::size_t parameter_count() {
    std::size_t n = 0;
    for (auto& p : parameters()) n += p.param->value.size();
    return n;
  }
  // Same seed, same weights, bit for bit (parameters are drawn in declaration order).
  void init(std::uint64_t seed) {
    Rng rng(seed);
    for (auto& p : parameters()) p.param->initialise(rng);
  }
  void zero_grad() {
    for (auto& p : parameters()) ops::fill<Dev>(p.param->grad.view(), 0.0f);  // threaded
  }

 protected:
  void check_input(CView<Dev> x) const {
    const std::string name = static_cast<const Derived&>(*this).name();
    if (x.shape.c != InChannels)
      fail_argument(name, ": input has ", x.shape.c, " channels, the model expects ", InChannels,
                    " (input shape ", x.shape.str(), ")");
    if (x.shape.n < 1 || x.shape.h < 16 || x.shape.w < 16 || x.shape.h % 16 || x.shape.w % 16)
      fail_argument(name, ": input height and width must be positive multiples of 16 (four 2x2 ",
                    "poolings), got ", x.shape.str());
  }
  Derived& self() { return static_cast<Derived&>(*this); }
};

// Plain U-Net: two convs per level, Glorot-uniform everywhere.
template <Filters Fs, class Dev = Cpu, int InChannels = 3>
class UNet2D : public ModelBase<UNet2D<Fs, Dev, InChannels>, Dev, InChannels> {
  static constexpr int f = base_filters(Fs);
  using Enc = Encoder<DoubleConv, InChannels, f, Dev>;

 public:
  std::string name() const { return "unet2d_" + suffix(Fs); }

  CView<Dev> forward(CView<Dev> x) {
    this->check_input(x);
    auto h = enc.forward(x);
    h = dec4.forward(h, enc.l4.skip());
    h = dec3.forward(h, enc.l3.skip());
    h = dec2.forward(h, enc.l2.skip());
    h = dec1.forward(h, enc.l1.skip());
    return head.forward(h);
  }
  void backward(CView<Dev> dlogits) {
    head.backward(dlogits, dec1.grad());
    dec1.backward(dec2.grad(), enc.l1.skip_grad(), true);
    dec2.backward(dec3.grad(), enc.l2.skip_grad(), true);
    dec3.backward(dec4.grad(), enc.l3.skip_grad(), true);
    dec4.backward(enc.l5.grad(), enc.l4.skip_grad(), true);
    enc.backward();
  }
  void collect(ParamList<Dev>& l) {
    enc.collect(l, "enc");
    dec4.collect(l, "dec4"), dec3.collect(l, "dec3"), dec2.collect(l, "dec2");
    dec1.collect(l, "dec1"), head.collect(l, "out");
  }

  Enc enc{Init::GlorotUniform};
  DecoderLevel<Enc::out_channels, 8 * f, 8 * f, DoubleConv, Dev> dec4;
  DecoderLevel<8 * f, 4 * f, 4 * f, DoubleConv, Dev> dec3;
  DecoderLevel<4 * f, 2 * f, 2 * f, DoubleConv, Dev> dec2;
  DecoderLevel<2 * f, f, f, DoubleConv, Dev> dec1;
  LogitHead<f, Dev> head;
};

// U-Net2D-Res: residual blocks; the level-4 skip is the whole level-4 block output cat(t4, b4),
// as in the original code (levels 1-3 pass b_l).
// With OriginalLevel4Skip = false the level-4 skip is b_4 like the others: that is CR-UNet-Res with
// its two SRNN skips replaced by plain ones (the exact ablation of the Spatial RNN,
// "crunet_res_plain_lw"); see CRUNetResPlain below.
template <Filters Fs, class Dev = Cpu, int InChannels = 3, bool OriginalLevel4Skip = true>
class UNet2DRes
    : public ModelBase<UNet2DRes<Fs, Dev, InChannels, OriginalLevel4Skip>, Dev, InChannels> {
  static constexpr int f = base_filters(Fs);
  using Enc = Encoder<ResBlock, InChannels, f, Dev>;
  static constexpr int skip4_channels = OriginalLevel4Skip ? Enc::L4::out_channels : 8 * f;

 public:
  std::string name() const {
    return (OriginalLevel4Skip ? "unet2d_res_" : "crunet_res_plain_") + suffix(Fs);
  }

  CView<Dev> forward(CView<Dev> x) {
    this->check_input(x);
    auto h = enc.forward(x);
    if constexpr (OriginalLevel4Skip)
      h = dec4.forward(h, enc.l4.output());
    else
      h = dec4.forward(h, enc.l4.skip());
    h = dec3.forward(h, enc.l3.skip());
    h = dec2.forward(h, enc.l2.skip());
    h = dec1.forward(h, enc.l1.skip());
    return head.forward(h);
  }
  void backward(CView<Dev> dlogits) {
    head.backward(dlogits, dec1.grad());
    dec1.backward(dec2.grad(), enc.l1.skip_grad(), true);
    dec2.backward(dec3.grad(), enc.l2.skip_grad(), true);
    dec3.backward(dec4.grad(), enc.l3.skip_grad(), true);
    if constexpr (OriginalLevel4Skip)
      dec4.backward(enc.l5.grad(), enc.l4.grad(), true);
    else
      dec4.backward(enc.l5.grad(), enc.l4.skip_grad(), true);
    enc.backward();
  }
  void collect(ParamList<Dev>& l) {
    enc.collect(l, "enc");
    dec4.collect(l, "dec4"), dec3.collect(l, "dec3"), dec2.collect(l, "dec2");
    dec1.collect(l, "dec1"), head.collect(l, "out");
  }

  Enc enc{Init::HeNormal};
  DecoderLevel<Enc::out_channels, skip4_channels, 8 * f, ResBlock, Dev> dec4;
  DecoderLevel<decltype(dec4)::out_channels, 4 * f, 4 * f, ResBlock, Dev> dec3;
  DecoderLevel<decltype(dec3)::out_channels, 2 * f, 2 * f, ResBlock, Dev> dec2;
  DecoderLevel<decltype(dec2)::out_channels, f, f, ResBlock, Dev> dec1;
  LogitHead<decltype(dec1)::out_channels, Dev> head;
};

// CR-UNet-Res (U-Net2D-Res-SRNN): the level-3 and level-2 skips pass through a seed Spatial RNN
// (L = 32 and 64) and a 1x1 conv; level 4 and level 1 pass b_l.
template <Filters Fs, class Dev = Cpu, int InChannels = 3>
class CRUNetRes : public ModelBase<CRUNetRes<Fs, Dev, InChannels>, Dev, InChannels> {
  static constexpr int f = base_filters(Fs);
  using Enc = Encoder<ResBlock, InChannels, f, Dev>;

 public:
  std::string name() const { return "crunet_res_" + suffix(Fs); }

  CView<Dev> forward(CView<Dev> x) {
    this->check_input(x);
    auto h = enc.forward(x);
    h = dec4.forward(h, enc.l4.skip());
    h = dec3.forward(h, skip3.forward(enc.l3.skip()));
    h = dec2.forward(h, skip2.forward(enc.l2.skip()));
    h = dec1.forward(h, enc.l1.skip());
    return head.forward(h);
  }
  void backward(CView<Dev> dlogits) {
    head.backward(dlogits, dec1.grad());
    dec1.backward(dec2.grad(), enc.l1.skip_grad(), true);
    dec2.backward(dec3.grad(), skip2.grad(), true);
    skip2.backward(enc.l2.skip_grad(), true);
    dec3.backward(dec4.grad(), skip3.grad(), true);
    skip3.backward(enc.l3.skip_grad(), true);
    dec4.backward(enc.l5.grad(), enc.l4.skip_grad(), true);
    enc.backward();
  }
  void collect(ParamList<Dev>& l) {
    enc.collect(l, "enc");
    skip3.collect(l, "skip3"), skip2.collect(l, "skip2");
    dec4.collect(l, "dec4"), dec3.collect(l, "dec3"), dec2.collect(l, "dec2");
    dec1.collect(l, "dec1"), head.collect(l, "out");
  }

  Enc enc{Init::HeNormal};
  SRNNSkip<4 * f, 4 * f, Dev> skip3{32};
  SRNNSkip<2 * f, 2 * f, Dev> skip2{64};
  DecoderLevel<Enc::out_channels, 8 * f, 8 * f, ResBlock, Dev> dec4;
  DecoderLevel<decltype(dec4)::out_channels, 4 * f, 4 * f, ResBlock, Dev> dec3;
  DecoderLevel<decltype(dec3)::out_channels, 2 * f, 2 * f, ResBlock, Dev> dec2;
  DecoderLevel<decltype(dec2)::out_channels, f, f, ResBlock, Dev> dec1;
  LogitHead<decltype(dec1)::out_channels, Dev> head;
};

// The ablation of CR-UNet-Res: the same graph with plain skips b_3, b_2 in place of the two SRNN
// skips (and so without their 1x1 convolutions); every other layer and initialiser is the same.
template <Filters Fs, class Dev = Cpu, int InChannels = 3>
using CRUNetResPlain = UNet2DRes<Fs, Dev, InChannels, false>;

}  // namespace unetsrnn
