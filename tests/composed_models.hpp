#pragma once
// Two models the original work does not have, each declared in a few lines of the UNet template
// with no forward or backward written for them. test_compose.cpp trains and gradient-checks them
// on the CPU; test_cuda_ops.cu compares them between the CPU and the GPU.
#include "unetsrnn/models/unet.hpp"

namespace unetsrnn::testing {

// An SRNN skip on every level, with the CR-UNet paper's rule and L = 16.
using Paper16 = skip::Srnn<SrnnRule::Paper, 16>;
template <int F = 8, class Dev = Cpu>
using SrnnEveryLevel =
    UNet<ResBlock, DoublingWidths<F, 5>, Skips<Paper16, Paper16, Paper16, Paper16>,
         UNetOptions{.name = "srnn_every_level", .encoder_init = Init::HeNormal}, Dev>;

// A depth-4 residual U-Net for one-channel (grey) images.
template <int F = 8, class Dev = Cpu>
using GreyRes4 =
    UNet<ResBlock, DoublingWidths<F, 4>, Skips<skip::Plain, skip::Plain, skip::Plain>,
         UNetOptions{.name = "grey_res4", .in_channels = 1, .encoder_init = Init::HeNormal}, Dev>;

}  // namespace unetsrnn::testing
