#pragma once
// The batch loader: a background thread assembles batch k + 1 (copy, augmentation, optional hook)
// while the caller trains on batch k.
#include <algorithm>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "unetsrnn/core/error.hpp"
#include "unetsrnn/data/augment.hpp"
#include "unetsrnn/data/sample.hpp"
#include "unetsrnn/tensor/tensor.hpp"

namespace unetsrnn {

struct Batch {
  Tensor<Cpu> images;                // (N, 3, H, W)
  Tensor<Cpu> masks;                 // (N, 1, H, W)
  std::vector<std::size_t> indices;  // sample indices, in batch order
  std::size_t number = 0;            // 0-based batch number
};

struct LoaderOptions {
  int batch_size = 8;
  bool drop_last = false;  // drop a final batch smaller than batch_size
  Augmentation augmentation;
  std::uint64_t seed = 0;  // augmentation stream; the same seed gives the same batches
  // Runs on the loader thread after a batch is assembled (extra preprocessing). Its exceptions,
  // like the loader's own, are rethrown by next().
  std::function<void(Batch&)> prepare;
};

class BatchLoader {
 public:
  // `samples` must outlive the loader and must not change while it runs. `order` lists the sample
  // indices to serve (e.g. a shuffled training part); batches follow it.
  BatchLoader(const std::vector<Sample>& samples, std::vector<std::size_t> order,
              LoaderOptions options = {})
      : samples_(samples), order_(std::move(order)), options_(std::move(options)) {
    if (options_.batch_size < 1)
      fail_argument("BatchLoader: batch_size must be >= 1, got ", options_.batch_size);
    for (std::size_t i : order_)
      if (i >= samples_.size())
        fail_argument("BatchLoader: index ", i, " outside ", samples_.size(), " samples");
    const std::size_t bs = static_cast<std::size_t>(options_.batch_size);
    batch_count_ = options_.drop_last ? order_.size() / bs : (order_.size() + bs - 1) / bs;
    worker_ = std::thread([this] { run(); });
  }
  BatchLoader(const BatchLoader&) = delete;
  BatchLoader& operator=(const BatchLoader&) = delete;

  ~BatchLoader() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    changed_.notify_all();
    worker_.join();
  }

  std::size_t batch_count() const { return batch_count_; }

  // Moves the next batch into `batch`; false after the last one. Rethrows a loader-side exception
  // (after the batches prepared before it), then reports the end.
  bool next(Batch& batch) {
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [this] { return ready_.has_value() || finished_; });
    if (ready_) {
      batch = std::move(*ready_);
      ready_.reset();
      lock.unlock();
      changed_.notify_all();
      return true;
    }
    if (error_) {
      std::exception_ptr error = std::move(error_);
      error_ = nullptr;
      std::rethrow_exception(error);
    }
    return false;
  }

 private:
  void run() {
    try {
      Rng rng(options_.seed);
      const std::size_t bs = static_cast<std::size_t>(options_.batch_size);
      for (std::size_t b = 0; b < batch_count_; ++b) {
        Batch batch = assemble(b, bs, rng);
        if (options_.prepare) options_.prepare(batch);
        std::unique_lock<std::mutex> lock(mutex_);
        changed_.wait(lock, [this] { return !ready_.has_value() || stop_; });
        if (stop_) break;
        ready_ = std::move(batch);
        lock.unlock();
        changed_.notify_all();
      }
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex_);
      error_ = std::current_exception();
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      finished_ = true;
    }
    changed_.notify_all();
  }

  Batch assemble(std::size_t b, std::size_t bs, Rng& rng) const {
    const std::size_t begin = b * bs, end = std::min(begin + bs, order_.size());
    Batch batch;
    batch.number = b;
    batch.indices.assign(order_.begin() + static_cast<std::ptrdiff_t>(begin),
                         order_.begin() + static_cast<std::ptrdiff_t>(end));
    const int n = static_cast<int>(end - begin);
    const Sample& first = samples_[batch.indices[0]];
    const Shape is = first.image.shape(), ms = first.mask.shape();
    batch.images.resize(Shape{n, is.c, is.h, is.w});
    batch.masks.resize(Shape{n, ms.c, ms.h, ms.w});
    for (int i = 0; i < n; ++i) {
      const Sample& s = samples_[batch.indices[static_cast<std::size_t>(i)]];
      if (!(s.image.shape() == is) || !(s.mask.shape() == ms))
        fail_argument("BatchLoader: sample '", s.dataset, "/", s.name, "' has image ",
                      s.image.shape().str(), " and mask ", s.mask.shape().str(),
                      ", but the batch holds ", is.str(), " and ", ms.str());
      std::copy(s.image.begin(), s.image.end(), batch.images.view().image(i));
      std::copy(s.mask.begin(), s.mask.end(), batch.masks.view().image(i));
      augment(batch.images.view(), batch.masks.view(), i, options_.augmentation, rng);
    }
    return batch;
  }

  const std::vector<Sample>& samples_;
  std::vector<std::size_t> order_;
  LoaderOptions options_;
  std::size_t batch_count_ = 0;

  std::mutex mutex_;
  std::condition_variable changed_;
  std::optional<Batch> ready_;
  bool stop_ = false, finished_ = false;
  std::exception_ptr error_;
  std::thread worker_;  // last: started after every other member is initialised
};

}  // namespace unetsrnn
