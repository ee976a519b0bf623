#pragma once
// Named building blocks of the U-Nets, and the contract they share (the `Block` concept below,
// which the UNet template checks for every block it is given). Each block owns its output and its
// output gradient:
//   forward(x)        computes and returns a view of its output (valid until the next forward);
//                     grad() then reads as zero, so that every consumer simply accumulates into
//                     it (it is zeroed on first access, so inference never pays for it);
//   output()          the last forward's output;
//   grad()            the gradient of the loss w.r.t. the output, filled by the consumers;
//   backward(dx, acc) dx (+)= dL/dx from grad() (dx.data == nullptr: input gradient not wanted),
//                     parameter gradients +=. grad() may be overwritten;
//   collect(list, prefix), and in_channels, out_channels, output_shape(input shape).
// A block whose output contains its input (ResBlock: cat(t, b)) also offers
//   input_slot(shape) a view where the caller may build the input before forward(slot), which
//                     then skips copying it; the UNet pools and DecoderLevel concatenates into it.
#include <concepts>
#include <string>
#include <type_traits>

#include "unetsrnn/layers/conv.hpp"
#include "unetsrnn/layers/pool.hpp"
#include "unetsrnn/layers/srnn.hpp"

namespace unetsrnn {

// The contract above, checked by the compiler.
template <class B, class Dev>
concept Block = requires(B& b, CView<Dev> x, View<Dev> dx, bool accumulate, ParamList<Dev>& list,
                         const std::string& prefix, Shape in) {
  { B::in_channels } -> std::convertible_to<int>;
  { B::out_channels } -> std::convertible_to<int>;
  { B::output_shape(in) } -> std::same_as<Shape>;
  { b.forward(x) } -> std::same_as<CView<Dev>>;
  { b.output() } -> std::same_as<CView<Dev>>;
  { b.grad() } -> std::same_as<View<Dev>>;
  b.backward(dx, accumulate);
  b.collect(list, prefix);
};

// An encoder level is a block that also hands a skip feature, a channel block of its output, to
// its decoder level: skip() (skip_channels channels) and skip_grad(), the matching part of grad().
template <class B, class Dev>
concept EncoderBlock = Block<B, Dev> && std::constructible_from<B, Init> && requires(B& b) {
  { B::skip_channels } -> std::convertible_to<int>;
  { b.skip() } -> std::same_as<CView<Dev>>;
  { b.skip_grad() } -> std::same_as<View<Dev>>;
};

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
  // grad() for a single producer that overwrites all of it: skips the zeroing.
  View<Dev> grad_to_overwrite() {
    grad_zeroed_ = true;
    return dout_.view();
  }
  CView<Dev> output() const { return out_.cview(); }
  static Shape output_shape(Shape in) { return Shape{in.n, Out, in.h, in.w}; }

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
  static constexpr int in_channels = In, out_channels = F, skip_channels = F;
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

// CR-UNet skip link: a Spatial RNN on C channels, then to Out channels. Merge::Concat (the
// original): the four sweeps concatenated (4C channels), then conv1x1 + bias + ReLU (He-normal);
// Merge::Conv: the Spatial RNN's own merge, a 1x1 convolution without bias, then its activation.
template <int C, int Out, class Dev = Cpu, SrnnMerge Merge = SrnnMerge::Concat>
class SRNNSkip : public BlockOutput<Out, Dev> {
  static constexpr bool concat = Merge == SrnnMerge::Concat;

 public:
  static constexpr int in_channels = C, out_channels = Out;
  explicit SRNNSkip(SrnnConfig config) : srnn_(config) {}
  explicit SRNNSkip(int length) : SRNNSkip(SrnnConfig{SrnnRule::Seed, SrnnAct::Relu, length}) {}

  void collect(ParamList<Dev>& out, const std::string& prefix) {
    srnn_.collect(out, join_name(prefix, "srnn"));
    if constexpr (concat) conv_.collect(out, join_name(prefix, "conv"));
  }
  CView<Dev> forward(CView<Dev> x) {
    this->prepare(x.shape);
    if constexpr (concat) {
      sweeps_.resize(Shape{x.shape.n, 4 * C, x.shape.h, x.shape.w});
      srnn_.forward(x, sweeps_);
      conv_.forward(sweeps_, this->out_);
    } else {
      srnn_.forward(x, this->out_);
    }
    return this->out_;
  }
  void backward(View<Dev> dx, bool accumulate) {
    if constexpr (concat) {
      dsweeps_.resize(sweeps_.shape());
      conv_.backward(this->grad(), dsweeps_, false);
      srnn_.backward(dsweeps_, dx, accumulate);
    } else {
      srnn_.backward(this->grad(), dx, accumulate);
    }
  }

 private:
  struct None {
    explicit None(Init) {}
  };
  SpatialRnn<C, Merge, concat ? 4 * C : Out, Dev> srnn_;
  [[no_unique_address]] std::conditional_t<concat, Conv2d<4 * C, Out, 1, Act::Relu, true, Dev>,
                                           None>
      conv_{Init::HeNormal};
  Tensor<Dev> sweeps_, dsweeps_;
};

// Decoder level: u = up(h) with F filters; c = cat(u, skip); output = Body(c). Its input is h;
// the skip (Skip channels, none when Skip == 0) is written by the caller into skip_slot() before
// each forward(h), and its gradient is read from skip_slot_grad() after backward.
template <int InH, int Skip, int F, template <int, int, class> class Body, class Dev = Cpu>
class DecoderLevel {
  static_assert(Skip >= 0, "DecoderLevel: Skip (the skip's channels) must be >= 0");
  using Up = ConvTranspose2x2<InH, F, Dev>;

 public:
  using BodyBlock = Body<F + Skip, F, Dev>;
  static_assert(Block<BodyBlock, Dev>, "DecoderLevel: Body<In, F, Dev> must model unetsrnn::Block");
  static constexpr int in_channels = InH, skip_channels = Skip;
  static constexpr int out_channels = BodyBlock::out_channels;
  static Shape output_shape(Shape h) { return BodyBlock::output_shape(Up::output_shape(h)); }

  explicit DecoderLevel(Init body_init = Init::GlorotUniform) : body_(body_init) {}

  void collect(ParamList<Dev>& out, const std::string& prefix) {
    up_.collect(out, join_name(prefix, "up"));
    body_.collect(out, join_name(prefix, "body"));
  }
  // Where the skip (N, Skip, H, W) belongs: the last Skip channels of c.
  View<Dev> skip_slot(Shape skip) {
    static_assert(Skip > 0, "DecoderLevel: a level without skip has no skip slot");
    if (skip.c != Skip)
      fail_argument("DecoderLevel: skip ", skip.str(), " has ", skip.c, " channels, expected ",
                    Skip);
    prepare_input(Shape{skip.n, F + Skip, skip.h, skip.w});
    return c_.channels(F, Skip);
  }
  CView<Dev> forward(CView<Dev> h) {
    const Shape u = Up::output_shape(h.shape);
    if constexpr (Skip == 0) {
      prepare_input(Shape{u.n, F, u.h, u.w});
    } else if (c_shape_.n != u.n || c_shape_.h != u.h || c_shape_.w != u.w) {
      fail_argument("DecoderLevel: skip ", c_.channels(F, Skip).shape.str(),
                    " does not match upsampled ", u.str());
    }
    up_.forward(h, c_.channels(0, F));
    return body_.forward(c_);
  }
  CView<Dev> output() const { return body_.output(); }
  View<Dev> grad() { return body_.grad(); }
  // dh (+)= dL/dh; dL/dskip is left in skip_slot_grad().
  void backward(View<Dev> dh, bool accumulate) {
    dc_.resize(c_shape_);
    body_.backward(dc_, false);
    up_.backward(dc_.view().channels(0, F), dh, accumulate);
  }
  CView<Dev> skip_slot_grad() const { return dc_.cview().channels(F, Skip); }

 private:
  // c = cat(u, skip) is built in the body's input slot when it has one, else in c_buffer_.
  void prepare_input(Shape c) {
    c_shape_ = c;
    if constexpr (requires { body_.input_slot(c); }) {
      c_ = body_.input_slot(c);
    } else {
      c_buffer_.resize(c);
      c_ = c_buffer_;
    }
  }
  Up up_;
  BodyBlock body_;
  Shape c_shape_{};
  View<Dev> c_;
  Tensor<Dev> c_buffer_, dc_;
};

// Output layer: 1x1 conv to one channel of logits (Glorot-uniform, Keras' default).
template <int In, class Dev = Cpu>
class LogitHead : public BlockOutput<1, Dev> {
 public:
  static constexpr int in_channels = In, out_channels = 1;
  void collect(ParamList<Dev>& out, const std::string& prefix) { conv_.collect(out, prefix); }
  CView<Dev> forward(CView<Dev> h) {
    this->prepare(h.shape);
    conv_.forward(h, this->out_);
    return this->out_;
  }
  // dh (+)= dL/dh given dL/dlogits in grad() (which the conv's backward overwrites).
  void backward(View<Dev> dh, bool accumulate) { conv_.backward(this->grad(), dh, accumulate); }

 private:
  Conv2d<In, 1, 1, Act::None, true, Dev> conv_{Init::GlorotUniform};
};

}  // namespace unetsrnn
