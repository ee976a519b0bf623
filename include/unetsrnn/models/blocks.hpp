#pragma once
// Named building blocks of the U-Nets. Each block owns its output and its output gradient:
//   forward(x)        computes and returns a view of its output (valid until the next forward);
//                     grad() then reads as zero, so that every consumer simply accumulates into
//                     it (it is zeroed on first access, so inference never pays for it);
//   grad()            the gradient of the loss w.r.t. the output, filled by the consumers;
//   backward(dx, acc) dx (+)= dL/dx from grad() (dx.data == nullptr: input gradient not wanted),
//                     parameter gradients +=. grad() may be overwritten.
// A block whose output contains its input (ResBlock: cat(t, b)) also offers
//   input_slot(shape) a view where the caller may build the input before forward(slot), which
//                     then skips copying it; the Encoder pools and DecoderLevel concatenates into
//                     it.
#include <string>

#include "unetsrnn/layers/conv.hpp"
#include "unetsrnn/layers/pool.hpp"
#include "unetsrnn/layers/srnn.hpp"

namespace unetsrnn {

// Shared output/gradient buffers of a block with Out channels.
template <int Out, class Dev>
class BlockOutput {
 public:
  View<Dev> grad() {
    if (!grad_zeroed_) {
      ops::fill<Dev>(dout_.view(), 0.0f);
      grad_zeroed_ = true;
    }
    return dout_.view();
  }
  CView<Dev> output() const { return out_.cview(); }

 protected:
  void prepare(Shape in) {
    out_.resize(Shape{in.n, Out, in.h, in.w});
    dout_.resize(out_.shape());
    grad_zeroed_ = false;
  }
  Tensor<Dev> out_, dout_;

 private:
  bool grad_zeroed_ = false;
};

// conv3x3+ReLU twice: the plain U-Net's level.
template <int In, int F, class Dev = Cpu>
class DoubleConv : public BlockOutput<F, Dev> {
 public:
  static constexpr int in_channels = In, out_channels = F;
  explicit DoubleConv(Init init) : conv1_(init), conv2_(init) {}

  void collect(ParamList<Dev>& out, const std::string& prefix) {
    conv1_.collect(out, join_name(prefix, "conv1"));
    conv2_.collect(out, join_name(prefix, "conv2"));
  }
  CView<Dev> forward(CView<Dev> x) {
    this->prepare(x.shape);
    mid_.resize(Shape{x.shape.n, F, x.shape.h, x.shape.w});
    conv1_.forward(x, mid_);
    conv2_.forward(mid_, this->out_);
    return this->out_;
  }
  CView<Dev> skip() const { return this->output(); }
  View<Dev> skip_grad() { return this->grad(); }

  void backward(View<Dev> dx, bool accumulate) {
    dmid_.resize(mid_.shape());
    conv2_.backward(this->grad(), dmid_, false);
    conv1_.backward(dmid_, dx, accumulate);
  }

 private:
  Conv2d<In, F, 3, Act::Relu, true, Dev> conv1_;
  Conv2d<F, F, 3, Act::Relu, true, Dev> conv2_;
  Tensor<Dev> mid_, dmid_;
};

// The original's residual block: a = conv(t); b = conv(cat(t, a)); output cat(t, b).
// b is the level's skip feature.
template <int In, int F, class Dev = Cpu>
class ResBlock : public BlockOutput<In + F, Dev> {
 public:
  static constexpr int in_channels = In, out_channels = In + F, skip_channels = F;
  explicit ResBlock(Init init) : conv_a_(init), conv_b_(init) {}

  void collect(ParamList<Dev>& out, const std::string& prefix) {
    conv_a_.collect(out, join_name(prefix, "conv_a"));
    conv_b_.collect(out, join_name(prefix, "conv_b"));
  }
  // The first In channels of the output cat(t, b), where t belongs.
  View<Dev> input_slot(Shape in) {
    this->prepare(in);
    return this->out_.view().channels(0, In);
  }
  CView<Dev> forward(CView<Dev> t) {
    this->prepare(t.shape);
    const View<Dev> t_in_out = this->out_.view().channels(0, In);
    if (t.data != t_in_out.data || t.nstride != t_in_out.nstride) ops::copy<Dev>(t, t_in_out);
    ta_.resize(Shape{t.shape.n, In + F, t.shape.h, t.shape.w});
    ops::copy<Dev>(t, ta_.view().channels(0, In));
    conv_a_.forward(t, ta_.view().channels(In, F));
    conv_b_.forward(ta_, this->out_.view().channels(In, F));
    return this->out_;
  }
  CView<Dev> skip() const { return this->out_.cview().channels(In, F); }
  View<Dev> skip_grad() { return this->grad().channels(In, F); }

  void backward(View<Dev> dt, bool accumulate) {
    dta_.resize(ta_.shape());
    conv_b_.backward(this->grad().channels(In, F), dta_, false);
    conv_a_.backward(dta_.view().channels(In, F), dt, accumulate);
    if (!dt.data) return;
    ops::add<Dev>(dta_.view().channels(0, In), dt);
    ops::add<Dev>(this->grad().channels(0, In), dt);
  }

 private:
  Conv2d<In, F, 3, Act::Relu, true, Dev> conv_a_;
  Conv2d<In + F, F, 3, Act::Relu, true, Dev> conv_b_;
  Tensor<Dev> ta_, dta_;  // cat(t, a) and its gradient
};

// CR-UNet skip link: seed Spatial RNN (concat, 4C channels), then conv1x1 + bias + ReLU to Out.
template <int C, int Out, class Dev = Cpu>
class SRNNSkip : public BlockOutput<Out, Dev> {
 public:
  static constexpr int in_channels = C, out_channels = Out;
  explicit SRNNSkip(int length)
      : srnn_(SrnnConfig{SrnnRule::Seed, SrnnAct::Relu, length}), conv_(Init::HeNormal) {}

  void collect(ParamList<Dev>& out, const std::string& prefix) {
    srnn_.collect(out, join_name(prefix, "srnn"));
    conv_.collect(out, join_name(prefix, "conv"));
  }
  CView<Dev> forward(CView<Dev> x) {
    this->prepare(x.shape);
    sweeps_.resize(Shape{x.shape.n, 4 * C, x.shape.h, x.shape.w});
    srnn_.forward(x, sweeps_);
    conv_.forward(sweeps_, this->out_);
    return this->out_;
  }
  void backward(View<Dev> dx, bool accumulate) {
    dsweeps_.resize(sweeps_.shape());
    conv_.backward(this->grad(), dsweeps_, false);
    srnn_.backward(dsweeps_, dx, accumulate);
  }

 private:
  SpatialRnn<C, SrnnMerge::Concat, 4 * C, Dev> srnn_;
  Conv2d<4 * C, Out, 1, Act::Relu, true, Dev> conv_;
  Tensor<Dev> sweeps_, dsweeps_;
};

// Decoder level: u = up(h) with F filters; c = cat(u, skip); output = Body(c).
template <int InH, int Skip, int F, template <int, int, class> class Body, class Dev = Cpu>
class DecoderLevel {
 public:
  using BodyBlock = Body<F + Skip, F, Dev>;
  static constexpr int in_channels = InH, skip_channels = Skip;
  static constexpr int out_channels = BodyBlock::out_channels;

  DecoderLevel() : body_(Init::GlorotUniform) {}

  void collect(ParamList<Dev>& out, const std::string& prefix) {
    up_.collect(out, join_name(prefix, "up"));
    body_.collect(out, join_name(prefix, "body"));
  }
  CView<Dev> forward(CView<Dev> h, CView<Dev> skip) {
    const Shape s = ConvTranspose2x2<InH, F, Dev>::output_shape(h.shape);
    if (skip.shape.h != s.h || skip.shape.w != s.w)
      fail_argument("DecoderLevel: skip ", skip.shape.str(), " does not match upsampled ", s.str());
    c_shape_ = Shape{s.n, F + Skip, s.h, s.w};
    View<Dev> c;  // cat(u, skip): built in the body's input slot when it has one
    if constexpr (requires { body_.input_slot(c_shape_); }) {
      c = body_.input_slot(c_shape_);
    } else {
      c_.resize(c_shape_);
      c = c_;
    }
    up_.forward(h, c.channels(0, F));
    ops::copy<Dev>(skip, c.channels(F, Skip));
    return body_.forward(c);
  }
  View<Dev> grad() { return body_.grad(); }
  // dh (+)= dL/dh; the skip's share is added to dskip.
  void backward(View<Dev> dh, View<Dev> dskip, bool accumulate) {
    dc_.resize(c_shape_);
    body_.backward(dc_, false);
    ops::add<Dev>(dc_.view().channels(F, Skip), dskip);
    up_.backward(dc_.view().channels(0, F), dh, accumulate);
  }

 private:
  ConvTranspose2x2<InH, F, Dev> up_;
  BodyBlock body_;
  Shape c_shape_{};
  Tensor<Dev> c_, dc_;
};

// Five-level encoder with 2x2 max-pools between levels; level l has (2^(l-1)) * F filters.
template <template <int, int, class> class Block, int In, int F, class Dev = Cpu>
class Encoder {
 public:
  using L1 = Block<In, F, Dev>;
  using L2 = Block<L1::out_channels, 2 * F, Dev>;
  using L3 = Block<L2::out_channels, 4 * F, Dev>;
  using L4 = Block<L3::out_channels, 8 * F, Dev>;
  using L5 = Block<L4::out_channels, 16 * F, Dev>;
  static constexpr int out_channels = L5::out_channels;

  explicit Encoder(Init init) : l1(init), l2(init), l3(init), l4(init), l5(init) {}

  void collect(ParamList<Dev>& out, const std::string& prefix) {
    l1.collect(out, prefix + "1"), l2.collect(out, prefix + "2"), l3.collect(out, prefix + "3");
    l4.collect(out, prefix + "4"), l5.collect(out, prefix + "5");
  }
  CView<Dev> forward(CView<Dev> x) {
    l1.forward(x);
    l2.forward(pool(0, l1.output(), l2));
    l3.forward(pool(1, l2.output(), l3));
    l4.forward(pool(2, l3.output(), l4));
    return l5.forward(pool(3, l4.output(), l5));
  }
  // Call after the decoder has accumulated into every level's grad().
  void backward() {
    l5.backward(pooled_grad(3), false);
    unpool(3, l4.grad());
    l4.backward(pooled_grad(2), false);
    unpool(2, l3.grad());
    l3.backward(pooled_grad(1), false);
    unpool(1, l2.grad());
    l2.backward(pooled_grad(0), false);
    unpool(0, l1.grad());
    l1.backward(View<Dev>{}, false);  // the image needs no gradient
  }

  L1 l1;
  L2 l2;
  L3 l3;
  L4 l4;
  L5 l5;

 private:
  // Pools into the next block's input slot when it has one, else into pooled_.
  template <class Next>
  CView<Dev> pool(int level, CView<Dev> x, Next& next) {
    const Shape s = MaxPool2<Dev>::output_shape(x.shape);
    pooled_shape_[level] = s;
    View<Dev> y;
    if constexpr (requires { next.input_slot(s); }) {
      y = next.input_slot(s);
    } else {
      pooled_[level].resize(s);
      y = pooled_[level];
    }
    pools_[level].forward(x, y);
    return y;
  }
  View<Dev> pooled_grad(int level) {
    dpooled_[level].resize(pooled_shape_[level]);
    return dpooled_[level];
  }
  void unpool(int level, View<Dev> dx) { pools_[level].backward(dpooled_[level], dx, true); }

  MaxPool2<Dev> pools_[4];
  Shape pooled_shape_[4]{};
  Tensor<Dev> pooled_[4], dpooled_[4];
};

// Output layer: 1x1 conv to one channel of logits (Glorot-uniform, Keras' default).
template <int In, class Dev = Cpu>
class LogitHead {
 public:
  void collect(ParamList<Dev>& out, const std::string& prefix) { conv_.collect(out, prefix); }
  CView<Dev> forward(CView<Dev> h) {
    logits_.resize(Shape{h.shape.n, 1, h.shape.h, h.shape.w});
    conv_.forward(h, logits_);
    return logits_;
  }
  // dh += dL/dh given dL/dlogits.
  void backward(CView<Dev> dlogits, View<Dev> dh) {
    dlogits_.resize(logits_.shape());
    ops::copy<Dev>(dlogits, dlogits_);  // the conv's backward may overwrite its gradient input
    conv_.backward(dlogits_, dh, true);
  }

 private:
  Conv2d<In, 1, 1, Act::None, true, Dev> conv_{Init::GlorotUniform};
  Tensor<Dev> logits_, dlogits_;
};

}  // namespace unetsrnn
