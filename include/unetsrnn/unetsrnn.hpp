#pragma once
// unetsrnn: U-Net segmentation models with Spatial RNN skip links, header-only.
// This header brings the CPU path: tensors, the op table, layers and models.
#include "unetsrnn/core/device.hpp"
#include "unetsrnn/core/error.hpp"
#include "unetsrnn/core/rng.hpp"
#include "unetsrnn/layers/conv.hpp"
#include "unetsrnn/layers/param.hpp"
#include "unetsrnn/layers/pool.hpp"
#include "unetsrnn/layers/srnn.hpp"
#include "unetsrnn/models/blocks.hpp"
#include "unetsrnn/models/factory.hpp"
#include "unetsrnn/models/models.hpp"
#include "unetsrnn/ops/cpu/backend.hpp"
#include "unetsrnn/ops/ops.hpp"
#include "unetsrnn/tensor/tensor.hpp"
