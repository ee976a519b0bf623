#pragma once
// Data-parallel training without a transport: the interface the Trainer talks to, the
// single-process default, and the two pieces built on it (the bucketed gradient all-reduce and the
// per-rank share of a batch / an evaluation set).
//
// A Communicator<Dev> joins `size()` processes (ranks). It sums float buffers of Dev memory in
// place (gradients: started per bucket during the backward pass, completed together before the
// optimiser step), sums double buffers of host memory in place (losses, metric counts), and has a
// barrier. Transports live outside the header library: dist/mpi.hpp (target unetsrnn::mpi) and
// dist/nccl.cuh (GPU). Including this header pulls in no MPI or NCCL.
//
// Determinism: a transport must give every rank the same, run-to-run reproducible sums (a fixed
// reduction order for a fixed rank count and buffer layout). Then every rank applies the same Adam
// step to the same weights and two identical runs are bit-identical.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "unetsrnn/core/error.hpp"
#include "unetsrnn/layers/param.hpp"
#include "unetsrnn/tensor/tensor.hpp"

namespace unetsrnn {

template <class Dev = Cpu>
class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // Starts an in-place sum over ranks of `count` floats at `data` (Dev memory) and returns at
  // once: the sum progresses on its own (MPI: a communication thread; NCCL: a side stream) while
  // the caller goes on with its backward pass. On Dev's stream, the sum follows the work queued
  // before the call. The buffer must stay untouched until wait_all() returns. Every rank starts
  // the same sums in the same order.
  virtual void start_sum(float* data, std::size_t count) = 0;
  // Completes every sum started since the last wait_all().
  virtual void wait_all() = 0;
  // In-place sum over ranks of host doubles (blocking).
  virtual void sum_host(double* data, std::size_t count) = 0;
  virtual void barrier() = 0;
  // Ends every rank of the job with exit status `code` (after an error on this one: the others
  // would otherwise wait for it).
  [[noreturn]] virtual void abort(int code) = 0;

  bool is_root() const { return rank() == 0; }
  void sum_host(std::vector<double>& v) { sum_host(v.data(), v.size()); }
};

// One process: every sum is the identity.
template <class Dev = Cpu>
class LocalCommunicator final : public Communicator<Dev> {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  void start_sum(float*, std::size_t) override {}
  void wait_all() override {}
  void sum_host(double*, std::size_t) override {}
  void barrier() override {}
  [[noreturn]] void abort(int code) override { std::exit(code); }
};

// True when this process was started by an MPI launcher (Open MPI's mpirun, or PMI/PMIx-based
// ones such as srun and MPICH's hydra) as one of several ranks. Reads the environment only.
inline bool launched_by_mpi() {
  for (const char* var : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"}) {
    const char* s = std::getenv(var);
    if (s && std::atoi(s) > 1) return true;
  }
  return false;
}

// [begin, end) of rank r's share when `count` items are split over `ranks` in contiguous, nearly
// equal parts (the first count % ranks ranks get one more).
struct Share {
  std::size_t begin = 0, end = 0;
  std::size_t size() const { return end - begin; }
};
inline Share share_of(std::size_t count, int rank, int ranks) {
  if (ranks < 1 || rank < 0 || rank >= ranks)
    fail_argument("share_of: rank ", rank, " outside [0, ", ranks, ")");
  const std::size_t r = static_cast<std::size_t>(rank), n = static_cast<std::size_t>(ranks);
  const std::size_t base = count / n, extra = count % n;
  const std::size_t begin = r * base + std::min(r, extra);
  return {begin, begin + base + (r < extra ? 1 : 0)};
}

// Sums the gradients of a parameter list over the ranks through one flat Dev buffer, in buckets of
// a fixed size. The parameters are packed last first (about the order in which a backward pass
// finishes them), so the layout, and with it the reduction, depends only on the parameter shapes
// and the bucket size: it is the same on every rank and in every run.
//
// Overlap with the backward pass: begin() before it, pass the reducer as the model's
// GradientReadyHook, finish() after it. Each parameter reported ready is packed at once, and each
// bucket whose parameters are all packed is started, buckets strictly in layout order (bucket
// k + 1 waits for bucket k even when it is complete first), so every rank starts the same sums in
// the same order whatever the timing. finish() packs what was not reported, starts the rest and
// waits for every bucket before the gradients are unpacked for the optimiser step. reduce() is
// begin() + finish(): the same sums, none during the backward pass. Warm steps allocate nothing.
template <class Dev = Cpu>
class GradientReducer final : public GradientReadyHook {
 public:
  static constexpr std::size_t kDefaultBucketFloats = std::size_t{1} << 20;  // 4 MiB of fp32

  explicit GradientReducer(std::size_t bucket_floats = kDefaultBucketFloats)
      : bucket_floats_(std::max<std::size_t>(bucket_floats, 1)) {}
  GradientReducer(const GradientReducer&) = delete;
  GradientReducer& operator=(const GradientReducer&) = delete;
  // Sums still in flight (a backward pass that threw) read and write the flat buffer: wait.
  ~GradientReducer() {
    if (active_ && next_bucket_ > 0) comm_->wait_all();
  }

  std::size_t bucket_floats() const { return bucket_floats_; }
  void set_bucket_floats(std::size_t floats) {
    bucket_floats_ = std::max<std::size_t>(floats, 1);
    sizes_.clear();  // a new layout at the next begin()
  }
  // Buckets of the last reduction (for tests and logs).
  std::size_t buckets() const { return bucket_end_.size(); }
  // Buckets started before finish() in the last reduction, i.e. during the backward pass.
  std::size_t buckets_started_early() const { return started_early_; }

  // Before the backward pass that accumulates into params' gradients (which must hold this rank's
  // gradients when reported ready or at finish(); `params` must outlive finish()). Nothing to do
  // for one rank.
  void begin(Communicator<Dev>& comm, ParamList<Dev>& params) {
    if (active_) finish_started();  // the previous pass threw: complete its sums first
    active_ = comm.size() > 1;
    if (!active_) return;
    comm_ = &comm;
    params_ = &params;
    layout();
    std::copy(bucket_params_.begin(), bucket_params_.end(), missing_.begin());
    std::fill(packed_.begin(), packed_.end(), char{0});
    next_bucket_ = 0;
  }
  // GradientReadyHook: params[first, first + count) hold their final gradients.
  void gradients_ready(std::size_t first, std::size_t count) override {
    if (!active_) return;
    if (first > params_->size() || count > params_->size() - first)
      fail_argument("GradientReducer: parameters [", first, ", ", first + count,
                    ") reported ready, the list has ", params_->size());
    for (std::size_t i = first; i < first + count; ++i) pack(i);
    start_complete_buckets();
  }
  // After the backward pass: every bucket summed, the sums back in the gradients.
  void finish() {
    if (!active_) return;
    started_early_ = next_bucket_;
    for (std::size_t i = params_->size(); i-- > 0;) pack(i);
    start_complete_buckets();
    finish_started();
    float* flat = flat_.data();
    for (std::size_t i = 0; i < params_->size(); ++i) {
      Tensor<Dev>& g = (*params_)[i].param->grad;
      DeviceMemory<Dev>::copy(g.data(), flat + offset_[i], g.size());
    }
  }
  // The whole reduction after a backward pass that reported nothing.
  void reduce(Communicator<Dev>& comm, ParamList<Dev>& params) {
    begin(comm, params);
    finish();
  }

 private:
  // (Re)computes the layout when the parameter shapes or the bucket size changed.
  void layout() {
    const ParamList<Dev>& params = *params_;
    bool same = sizes_.size() == params.size();
    for (std::size_t i = 0; same && i < params.size(); ++i)
      same = sizes_[i] == params[i].param->grad.size();
    if (same) return;
    const std::size_t n = params.size();
    sizes_.resize(n);
    offset_.resize(n);
    packed_.resize(n);
    std::size_t total = 0;
    for (std::size_t i = n; i-- > 0;) {  // last first
      sizes_[i] = params[i].param->grad.size();
      offset_[i] = total;
      total += sizes_[i];
    }
    const std::size_t buckets = (total + bucket_floats_ - 1) / bucket_floats_;
    bucket_end_.resize(buckets);
    for (std::size_t b = 0; b < buckets; ++b)
      bucket_end_[b] = std::min(total, (b + 1) * bucket_floats_);
    // A parameter larger than a bucket is split across buckets: it counts in each.
    bucket_params_.assign(buckets, 0);
    for (std::size_t i = 0; i < n; ++i)
      if (sizes_[i])
        for (std::size_t b = offset_[i] / bucket_floats_;
             b <= (offset_[i] + sizes_[i] - 1) / bucket_floats_; ++b)
          ++bucket_params_[b];
    missing_.resize(buckets);
    if (flat_.size() != total) flat_.resize(Shape{1, 1, 1, static_cast<int>(total)});
  }
  void pack(std::size_t i) {
    if (packed_[i]) return;
    packed_[i] = 1;
    if (!sizes_[i]) return;
    DeviceMemory<Dev>::copy(flat_.data() + offset_[i], (*params_)[i].param->grad.data(), sizes_[i]);
    for (std::size_t b = offset_[i] / bucket_floats_;
         b <= (offset_[i] + sizes_[i] - 1) / bucket_floats_; ++b)
      --missing_[b];
  }
  // Starts the complete buckets that follow the last one started, in layout order.
  void start_complete_buckets() {
    while (next_bucket_ < bucket_end_.size() && missing_[next_bucket_] == 0) {
      const std::size_t begin = next_bucket_ ? bucket_end_[next_bucket_ - 1] : 0;
      comm_->start_sum(flat_.data() + begin, bucket_end_[next_bucket_] - begin);
      ++next_bucket_;
    }
  }
  void finish_started() {
    comm_->wait_all();
    active_ = false;
  }

  std::size_t bucket_floats_;
  Communicator<Dev>* comm_ = nullptr;
  ParamList<Dev>* params_ = nullptr;
  bool active_ = false;  // between begin() and finish() of a multi-rank reduction
  std::size_t next_bucket_ = 0, started_early_ = 0;
  // Layout, per parameter (in list order) and per bucket.
  std::vector<std::size_t> sizes_, offset_;
  std::vector<std::size_t> bucket_end_, bucket_params_, missing_;
  std::vector<char> packed_;
  Tensor<Dev> flat_;
};

}  // namespace unetsrnn
