#pragma once
// UNet: the one U-Net template. A model is declared, not written: the block of every level, the
// widths (and so the depth), one skip policy per decoder level and a few options; forward and
// backward follow from the declaration. The original's models are aliases of it (models.hpp); a
// new one is declared like this:
//
//   template <class Dev = Cpu>
//   using Grey4 = UNet<ResBlock, Widths<8, 16, 32, 64>,
//                      Skips<skip::Plain, skip::Plain, skip::Srnn<SrnnRule::Paper, 16>>,
//                      UNetOptions{.name = "grey4", .in_channels = 1}, Dev>;
//
// Level l (1 = full resolution) has Widths' l-th filter count; levels l and l+1 are joined by a 2x2
// max-pool on the way down and a 2x2 transposed convolution on the way up, and decoder level l
// receives the skip of encoder level l through the l-th entry of Skips. Input
// (N, in_channels, H, W) with H and W divisible by 2^(depth - 1); output (N, 1, H, W) logits.
// docs/architecture.md has the how-to.
//
// Parameter names and order (weights files and the optimiser state depend on them): enc1..encD,
// then the skip links that have parameters, from the deepest (skip3, skip2, ...), then
// decD-1..dec1, then out; init() draws them in that order.
#include <array>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

#include "unetsrnn/models/blocks.hpp"

namespace unetsrnn {

// Filters of levels 1, 2, ..., depth.
template <int... W>
struct Widths {
  static constexpr int depth = sizeof...(W);
  static constexpr std::array<int, sizeof...(W)> values{W...};
};
// Widths<F, 2F, 4F, ...> with Depth levels: the filter count doubles at every pooling.
template <int F, int Depth>
struct DoublingWidthsOf {
  template <std::size_t... I>
  static Widths<(F << I)...> make(std::index_sequence<I...>);
  using type = decltype(make(std::make_index_sequence<Depth>{}));
};
template <int F, int Depth>
using DoublingWidths = typename DoublingWidthsOf<F, Depth>::type;

// Skip policies of decoder levels 1, 2, ..., depth - 1 (level 1 first).
template <class... S>
struct Skips {};

namespace skip {
// The level's skip feature: b_l of a ResBlock, the whole output of a DoubleConv.
struct Plain {};
// The level's whole output, cat(t_l, b_l) of a ResBlock: what the original U-Net2D-Res passes at
// level 4.
struct WholeOutput {};
// No skip: the decoder level sees only the upsampled features.
struct None {};
// The skip feature through a Spatial RNN of rule Rule and length L, merged back to its own channel
// count (SRNNSkip: Merge::Concat is the original CR-UNet's concat + conv1x1 + ReLU).
template <SrnnRule Rule, int L, SrnnMerge Merge = SrnnMerge::Concat, SrnnAct A = SrnnAct::Relu>
struct Srnn {};
}  // namespace skip

// Everything else about a model. A structural type: it is a template argument of UNet.
struct UNetOptions {
  char name[48] = "unet";  // name(): weights files, checkpoints and the factory know it by this
  int in_channels = 3;
  Init encoder_init = Init::GlorotUniform;  // the encoder blocks' kernels (biases start at zero)
  Init decoder_init = Init::GlorotUniform;  // the decoder blocks' kernels
};

namespace unet_detail {

template <class T>
inline constexpr bool is_skip_policy = false;
template <>
inline constexpr bool is_skip_policy<skip::Plain> = true;
template <>
inline constexpr bool is_skip_policy<skip::WholeOutput> = true;
template <>
inline constexpr bool is_skip_policy<skip::None> = true;
template <SrnnRule R, int L, SrnnMerge M, SrnnAct A>
inline constexpr bool is_skip_policy<skip::Srnn<R, L, M, A>> = true;

// Calls f(std::integral_constant<std::size_t, i>{}) for i = 0, 1, ..., N - 1, in this order.
template <std::size_t N, class F>
constexpr void static_for(F&& f) {
  [&]<std::size_t... I>(std::index_sequence<I...>) {
    (f(std::integral_constant<std::size_t, I>{}), ...);
  }
  (std::make_index_sequence<N>{});
}

// The encoder blocks: Block<In, W0>, Block<its out_channels, W1>, ...
template <template <int, int, class> class Block, class Dev, int In, int... W>
struct EncoderChain {
  using type = std::tuple<>;
};
template <template <int, int, class> class Block, class Dev, int In, int W0, int... Rest>
struct EncoderChain<Block, Dev, In, W0, Rest...> {
  using First = Block<In, W0, Dev>;
  using type = decltype(std::tuple_cat(
      std::declval<std::tuple<First>>(),
      std::declval<typename EncoderChain<Block, Dev, First::out_channels, Rest...>::type>()));
};

// How a skip policy joins encoder level Enc to its decoder level: the skip it hands over
// (forward; `channels` of them, 0 for none) and where the skip's gradient goes (backward).
template <class Policy, class Enc, class Dev>
struct SkipLink;

template <class Enc, class Dev>
struct SkipLink<skip::Plain, Enc, Dev> {
  static constexpr int channels = Enc::skip_channels;
  CView<Dev> forward(Enc& enc) { return enc.skip(); }
  void backward(CView<Dev> dskip, Enc& enc) { ops::add<Dev>(dskip, enc.skip_grad()); }
  void collect(ParamList<Dev>&, const std::string&) {}
};
template <class Enc, class Dev>
struct SkipLink<skip::WholeOutput, Enc, Dev> {
  static constexpr int channels = Enc::out_channels;
  CView<Dev> forward(Enc& enc) { return enc.output(); }
  void backward(CView<Dev> dskip, Enc& enc) { ops::add<Dev>(dskip, enc.grad()); }
  void collect(ParamList<Dev>&, const std::string&) {}
};
template <class Enc, class Dev>
struct SkipLink<skip::None, Enc, Dev> {
  static constexpr int channels = 0;
  CView<Dev> forward(Enc&) { return {}; }
  void backward(CView<Dev>, Enc&) {}
  void collect(ParamList<Dev>&, const std::string&) {}
};
template <SrnnRule R, int L, SrnnMerge M, SrnnAct A, class Enc, class Dev>
struct SkipLink<skip::Srnn<R, L, M, A>, Enc, Dev> {
  static_assert(L >= 1 || R == SrnnRule::Irnn,
                "skip::Srnn<rule, L, ...>: the sequence length L must be >= 1 (Irnn ignores it)");
  static_assert(!(M == SrnnMerge::Conv && A == SrnnAct::Tanh),
                "skip::Srnn<rule, L, merge, act>: the conv merge supports the Relu and Identity "
                "activations");
  static constexpr int channels = Enc::skip_channels;
  using Skip = SRNNSkip<channels, channels, Dev, M>;
  static_assert(Block<Skip, Dev>, "SRNNSkip must model unetsrnn::Block");
  Skip block{SrnnConfig{R, A, L}};

  CView<Dev> forward(Enc& enc) { return block.forward(enc.skip()); }
  void backward(CView<Dev> dskip, Enc& enc) {
    ops::add<Dev>(dskip, block.grad());
    block.backward(enc.skip_grad(), true);
  }
  void collect(ParamList<Dev>& list, const std::string& prefix) { block.collect(list, prefix); }
};

// Decoder level L + 1 (0-based L): its input is the output of decoder level L + 2, or of the
// bottom encoder block below the deepest decoder level.
template <std::size_t L, template <int, int, class> class Block, class Dev, class Encoders,
          class Links, class LevelWidths>
struct DecoderAt {
  static constexpr std::size_t depth = std::tuple_size_v<Encoders>;
  using Below =
      typename std::conditional_t<L + 2 == depth,
                                  std::type_identity<std::tuple_element_t<depth - 1, Encoders>>,
                                  DecoderAt<L + 1, Block, Dev, Encoders, Links, LevelWidths>>::type;
  using type = DecoderLevel<Below::out_channels, std::tuple_element_t<L, Links>::channels,
                            LevelWidths::values[L], Block, Dev>;
};

// The skip links and decoder levels 1, ..., depth - 1 of a UNet, as tuples (level 1 first).
template <template <int, int, class> class Block, class Dev, class Encoders, class Policies,
          class LevelWidths, class Seq = std::make_index_sequence<std::tuple_size_v<Policies>>>
struct DecoderSide;
template <template <int, int, class> class Block, class Dev, class Encoders, class Policies,
          class LevelWidths, std::size_t... L>
struct DecoderSide<Block, Dev, Encoders, Policies, LevelWidths, std::index_sequence<L...>> {
  using links = std::tuple<
      SkipLink<std::tuple_element_t<L, Policies>, std::tuple_element_t<L, Encoders>, Dev>...>;
  using decoders =
      std::tuple<typename DecoderAt<L, Block, Dev, Encoders, links, LevelWidths>::type...>;
};

template <class Tuple, class Dev>
inline constexpr bool all_encoder_blocks = false;
template <class... B, class Dev>
inline constexpr bool all_encoder_blocks<std::tuple<B...>, Dev> = (EncoderBlock<B, Dev> && ...);
template <class Tuple, class Dev>
inline constexpr bool all_blocks = false;
template <class... B, class Dev>
inline constexpr bool all_blocks<std::tuple<B...>, Dev> = (Block<B, Dev> && ...);

}  // namespace unet_detail

template <template <int, int, class> class LevelBlock, class LevelWidths, class LevelSkips,
          UNetOptions Options = UNetOptions{}, class Dev = Cpu>
class UNet {
  static_assert(sizeof(LevelWidths) == 0,
                "UNet<LevelBlock, LevelWidths, LevelSkips, Options, Dev>: LevelWidths must be "
                "Widths<w1, w2, ...> and LevelSkips must be Skips<policy1, policy2, ...>");
};

template <template <int, int, class> class LevelBlock, int... W, class... S, UNetOptions Options,
          class Dev>
class UNet<LevelBlock, Widths<W...>, Skips<S...>, Options, Dev> {
 public:
  static constexpr int depth = sizeof...(W);
  static constexpr int in_channels = Options.in_channels;
  static constexpr UNetOptions options = Options;
  static constexpr std::array<int, depth> widths{W...};

  static_assert(depth >= 2, "UNet: Widths<...> needs at least two levels (one pooling)");
  static_assert(((W > 0) && ...), "UNet: every filter count in Widths<...> must be positive");
  static_assert(sizeof...(S) + 1 == depth,
                "UNet: Skips<...> needs one policy per decoder level, one fewer than the levels "
                "in Widths<...>");
  static_assert((unet_detail::is_skip_policy<S> && ...),
                "UNet: every entry of Skips<...> must be skip::Plain, skip::WholeOutput, "
                "skip::None or skip::Srnn<rule, L, merge, act>");
  static_assert(Options.in_channels > 0, "UNet: UNetOptions::in_channels must be positive");
  static_assert(Options.name[0] != '\0', "UNet: UNetOptions::name must not be empty");
  static_assert(EncoderBlock<LevelBlock<Options.in_channels, widths[0], Dev>, Dev>,
                "UNet: LevelBlock<In, F, Dev> must model unetsrnn::EncoderBlock "
                "(models/blocks.hpp): DoubleConv, ResBlock or a block of that contract");

 private:
  using Encoders = typename unet_detail::EncoderChain<LevelBlock, Dev, in_channels, W...>::type;
  using DecoderSide =
      unet_detail::DecoderSide<LevelBlock, Dev, Encoders, std::tuple<S...>, Widths<W...>>;
  using Links = typename DecoderSide::links;
  using Decoders = typename DecoderSide::decoders;  // element l: decoder level l + 1
  using Head = LogitHead<std::tuple_element_t<0, Decoders>::out_channels, Dev>;
  static_assert(unet_detail::all_encoder_blocks<Encoders, Dev>,
                "UNet: every encoder level LevelBlock<In, F, Dev> must model "
                "unetsrnn::EncoderBlock");
  static_assert(unet_detail::all_blocks<Decoders, Dev>,
                "UNet: every DecoderLevel must model unetsrnn::Block");
  static_assert(Block<Head, Dev>, "UNet: LogitHead must model unetsrnn::Block");

 public:
  UNet() : UNet(std::make_index_sequence<depth>{}, std::make_index_sequence<depth - 1>{}) {}

  std::string name() const { return Options.name; }

  ParamList<Dev> parameters() {
    ParamList<Dev> list;
    collect(list);
    return list;
  }
  std::size_t parameter_count() { return count_parameters(parameters()); }
  // Same seed, same weights, bit for bit (parameters are drawn in declaration order).
  void init(std::uint64_t seed) {
    Rng rng(seed);
    for (auto& p : parameters()) p.param->initialise(rng);
  }
  void zero_grad() {
    ParamList<Dev> list = parameters();
    unetsrnn::zero_grad(list);
  }

  CView<Dev> forward(CView<Dev> x) {
    check_input(x);
    std::get<0>(enc_).forward(x);
    unet_detail::static_for<depth - 1>([&](auto l) {  // down: level l + 1 -> l + 2
      auto& next = std::get<l + 1>(enc_);
      next.forward(pool(l, std::get<l>(enc_).output(), next));
    });
    CView<Dev> h = std::get<depth - 1>(enc_).output();
    unet_detail::static_for<depth - 1>([&](auto k) {  // up: from the deepest decoder level
      constexpr std::size_t l = depth - 2 - k;
      auto& dec = std::get<l>(dec_);
      if constexpr (std::tuple_element_t<l, Links>::channels > 0) {
        const CView<Dev> skip = std::get<l>(links_).forward(std::get<l>(enc_));
        ops::copy<Dev>(skip, dec.skip_slot(skip.shape));
      }
      h = dec.forward(h);
    });
    return head_.forward(h);
  }

  // Parameter gradients += those of loss(forward(x)) given dlogits = d loss / d logits.
  void backward(CView<Dev> dlogits) {
    backward(dlogits, [](std::size_t, std::size_t) {});
  }
  // The same, calling ready(first, count) as soon as parameters [first, first + count) of
  // parameters() hold their final gradients: after out, after each decoder level and its skip
  // link (from the top), after each encoder level (from the bottom). The gradients are the same
  // bits; data-parallel training sums the finished ones while the rest of the pass runs.
  template <class Ready>
  requires std::invocable<Ready&, std::size_t, std::size_t>
  void backward(CView<Dev> dlogits, Ready&& ready) {
    auto finished = [&](const Range& r) {
      if (r.count) ready(r.first, r.count);
    };
    ops::copy<Dev>(dlogits, head_.grad_to_overwrite());
    head_.backward(std::get<0>(dec_).grad(), true);
    finished(head_params_);
    unet_detail::static_for<depth - 1>([&](auto l) {  // decoder levels, from the top
      auto& dec = std::get<l>(dec_);
      if constexpr (l + 2 < depth)
        dec.backward(std::get<l + 1>(dec_).grad(), true);
      else
        dec.backward(std::get<depth - 1>(enc_).grad(), true);
      finished(dec_params_[l]);
      std::get<l>(links_).backward(dec.skip_slot_grad(), std::get<l>(enc_));
      finished(link_params_[l]);
    });
    unet_detail::static_for<depth - 1>([&](auto k) {  // encoder levels, from the bottom
      constexpr std::size_t l = depth - 1 - k;
      dpooled_[l - 1].resize(pooled_shape_[l - 1]);
      std::get<l>(enc_).backward(dpooled_[l - 1], false);
      finished(enc_params_[l]);
      pools_[l - 1].backward(dpooled_[l - 1], std::get<l - 1>(enc_).grad(), true);
    });
    std::get<0>(enc_).backward(View<Dev>{}, false);  // the image needs no gradient
    finished(enc_params_[0]);
  }

  void collect(ParamList<Dev>& list) {
    for_each_part([&](auto& part, const std::string& name, Range&) { part.collect(list, name); });
  }

 private:
  // Where a part's parameters lie in parameters().
  struct Range {
    std::size_t first = 0, count = 0;
  };

  template <std::size_t... E, std::size_t... L>
  UNet(std::index_sequence<E...>, std::index_sequence<L...>)
      : enc_(((void)E, Options.encoder_init)...), dec_(((void)L, Options.decoder_init)...) {
    ParamList<Dev> list;
    for_each_part([&](auto& part, const std::string& name, Range& range) {
      range.first = list.size();
      part.collect(list, name);
      range.count = list.size() - range.first;
    });
  }

  // Calls f(part, name, its Range) in parameter order: enc1..encD, the skip links from the
  // deepest, decD-1..dec1, out.
  template <class F>
  void for_each_part(F&& f) {
    unet_detail::static_for<depth>(
        [&](auto l) { f(std::get<l>(enc_), "enc" + std::to_string(l + 1), enc_params_[l]); });
    unet_detail::static_for<depth - 1>([&](auto k) {
      constexpr std::size_t l = depth - 2 - k;
      f(std::get<l>(links_), "skip" + std::to_string(l + 1), link_params_[l]);
    });
    unet_detail::static_for<depth - 1>([&](auto k) {
      constexpr std::size_t l = depth - 2 - k;
      f(std::get<l>(dec_), "dec" + std::to_string(l + 1), dec_params_[l]);
    });
    f(head_, std::string("out"), head_params_);
  }

  void check_input(CView<Dev> x) const {
    constexpr int multiple = 1 << (depth - 1);
    if (x.shape.c != in_channels)
      fail_argument(name(), ": input has ", x.shape.c, " channels, the model expects ", in_channels,
                    " (input shape ", x.shape.str(), ")");
    if (x.shape.n < 1 || x.shape.h < multiple || x.shape.w < multiple || x.shape.h % multiple ||
        x.shape.w % multiple)
      fail_argument(name(), ": input height and width must be positive multiples of ", multiple,
                    " (", depth - 1, " 2x2 poolings), got ", x.shape.str());
  }

  // Pools level `level`'s output into the next block's input slot when it has one, else into
  // pooled_.
  template <class Next>
  CView<Dev> pool(std::size_t level, CView<Dev> x, Next& next) {
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

  Encoders enc_;
  Links links_;
  Decoders dec_;
  Head head_;
  std::array<MaxPool2<Dev>, depth - 1> pools_;
  std::array<Shape, depth - 1> pooled_shape_{};
  std::array<Tensor<Dev>, depth - 1> pooled_, dpooled_;
  std::array<Range, depth> enc_params_{};
  std::array<Range, depth - 1> link_params_{}, dec_params_{};
  Range head_params_{};
};

}  // namespace unetsrnn
