#pragma once
// Segmentation data, by concern (include the one you need, or this header for all of them):
//   data/sample.hpp   one decoded image/mask pair (Sample), the input size rule
//   data/folders.hpp  datasets on disk: image/mask pairing, mask modes (FolderDataset)
//   data/split.hpp    train/val/test splits, k folds, split files
//   data/augment.hpp  flips, rotations, brightness, contrast
//   data/loader.hpp   batches assembled on a background thread (BatchLoader)
#include "unetsrnn/data/augment.hpp"
#include "unetsrnn/data/folders.hpp"
#include "unetsrnn/data/loader.hpp"
#include "unetsrnn/data/sample.hpp"
#include "unetsrnn/data/split.hpp"
