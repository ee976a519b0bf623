#pragma once
// The models of the original work (../shared/docs/seed-facts.md, section 2) as declarations of the
// one UNet template (models/unet.hpp):
//   UNet2D<Filters::Low>, UNet2DRes<Filters::High>, CRUNetRes<Filters::High>,
//   CRUNetRes<Filters::Low>
// and the SRNN ablation CRUNetResPlain (every filter width is available for every model). Input
// (N, InChannels, H, W) with H, W divisible by 16; output (N, 1, H, W) logits (the sigmoid belongs
// to the loss and to prediction).
#include <cstddef>

#include "unetsrnn/models/unet.hpp"

namespace unetsrnn {

// Width of the first level; levels 1..5 use f, 2f, 4f, 8f, 16f filters. The original's two widths
// are named; any other positive width works too (`Filters{2}` makes tiny models for tests).
enum class Filters : int { Low = 8, High = 32 };
inline constexpr int base_filters(Filters f) { return static_cast<int>(f); }

// Options of an original model: named "<family>_lw", "<family>_hw" or "<family>_w<f>".
constexpr UNetOptions original_options(const char* family, Filters f, int in_channels,
                                       Init encoder_init) {
  UNetOptions o{};
  for (char& c : o.name) c = '\0';
  std::size_t n = 0;
  for (const char* p = family; *p; ++p) o.name[n++] = *p;
  o.name[n++] = '_';
  if (f == Filters::Low || f == Filters::High) {
    o.name[n++] = f == Filters::Low ? 'l' : 'h';
    o.name[n++] = 'w';
  } else {
    char digits[12]{};
    int count = 0;
    for (int w = base_filters(f); w > 0; w /= 10) digits[count++] = static_cast<char>('0' + w % 10);
    o.name[n++] = 'w';
    while (count > 0) o.name[n++] = digits[--count];
  }
  o.in_channels = in_channels;
  o.encoder_init = encoder_init;
  o.decoder_init = Init::GlorotUniform;
  return o;
}

template <Filters Fs>
using OriginalWidths = DoublingWidths<base_filters(Fs), 5>;

// Plain U-Net: two convs per level, Glorot-uniform everywhere.
template <Filters Fs, class Dev = Cpu, int InChannels = 3>
using UNet2D =
    UNet<DoubleConv, OriginalWidths<Fs>, Skips<skip::Plain, skip::Plain, skip::Plain, skip::Plain>,
         original_options("unet2d", Fs, InChannels, Init::GlorotUniform), Dev>;

// U-Net2D-Res: residual blocks (He-normal encoder); the level-4 skip is the whole level-4 block
// output cat(t4, b4), as in the original code (levels 1-3 pass b_l).
template <Filters Fs, class Dev = Cpu, int InChannels = 3>
using UNet2DRes = UNet<ResBlock, OriginalWidths<Fs>,
                       Skips<skip::Plain, skip::Plain, skip::Plain, skip::WholeOutput>,
                       original_options("unet2d_res", Fs, InChannels, Init::HeNormal), Dev>;

// CR-UNet-Res (U-Net2D-Res-SRNN): the level-3 and level-2 skips pass through a seed Spatial RNN
// (L = 32 and 64) and a 1x1 conv; level 4 and level 1 pass b_l.
template <Filters Fs, class Dev = Cpu, int InChannels = 3>
using CRUNetRes = UNet<
    ResBlock, OriginalWidths<Fs>,
    Skips<skip::Plain, skip::Srnn<SrnnRule::Seed, 64>, skip::Srnn<SrnnRule::Seed, 32>, skip::Plain>,
    original_options("crunet_res", Fs, InChannels, Init::HeNormal), Dev>;

// The ablation of CR-UNet-Res: the same graph with plain skips b_3, b_2 in place of the two SRNN
// skips (and so without their 1x1 convolutions); every other layer and initialiser is the same.
template <Filters Fs, class Dev = Cpu, int InChannels = 3>
using CRUNetResPlain =
    UNet<ResBlock, OriginalWidths<Fs>, Skips<skip::Plain, skip::Plain, skip::Plain, skip::Plain>,
         original_options("crunet_res_plain", Fs, InChannels, Init::HeNormal), Dev>;

}  // namespace unetsrnn
