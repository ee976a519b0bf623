#pragma once
// Data-parallel training without a transport: the interface the Trainer talks to, the
// single-process default, and the two pieces built on it (the bucketed gradient all-reduce and the
// per-rank share of a batch / an evaluation set).
//
// A Communicator<Dev> joins `size()` processes (ranks). It sums float buffers of Dev memory in
// place (gradients: started per bucket, completed together, so that several buckets are in flight
// at once), sums double buffers of host memory in place (losses, metric counts), and has a barrier.
// Transports live outside the header library: dist/mpi.hpp (target unetsrnn::mpi) and
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
  // Starts an in-place sum over ranks of `count` floats at `data` (Dev memory). The buffer must
  // stay untouched until wait_all() returns. Every rank starts the same sums in the same order.
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
// a fixed size: the parameters are packed last first (the order in which a backward pass produces
// them) and each bucket's sum starts as soon as it is packed, so packing and the transfers of
// earlier buckets overlap. The layout depends only on the parameter shapes and the bucket size, so
// the reduction is the same on every rank and in every run.
template <class Dev = Cpu>
class GradientReducer {
 public:
  static constexpr std::size_t kDefaultBucketFloats = std::size_t{1} << 20;  // 4 MiB of fp32

  explicit GradientReducer(std::size_t bucket_floats = kDefaultBucketFloats)
      : bucket_floats_(std::max<std::size_t>(bucket_floats, 1)) {}

  std::size_t bucket_floats() const { return bucket_floats_; }
  void set_bucket_floats(std::size_t floats) { bucket_floats_ = std::max<std::size_t>(floats, 1); }
  // Buckets of the last reduce (for tests and logs).
  std::size_t buckets() const { return buckets_; }

  void reduce(Communicator<Dev>& comm, ParamList<Dev>& params) {
    if (comm.size() == 1) return;
    std::size_t total = 0;
    for (auto& p : params) total += p.param->grad.size();
    if (flat_.size() != total) flat_.resize(Shape{1, 1, 1, static_cast<int>(total)});
    float* flat = flat_.data();
    std::size_t offset = 0, bucket_start = 0;
    buckets_ = 0;
    auto flush = [&](std::size_t end) {
      if (end == bucket_start) return;
      comm.start_sum(flat + bucket_start, end - bucket_start);
      ++buckets_;
      bucket_start = end;
    };
    for (std::size_t i = params.size(); i-- > 0;) {
      const Tensor<Dev>& g = params[i].param->grad;
      // A parameter larger than a bucket is split across buckets.
      std::size_t done = 0;
      while (done < g.size()) {
        const std::size_t room = bucket_start + bucket_floats_ - offset;
        const std::size_t n = std::min(room, g.size() - done);
        DeviceMemory<Dev>::copy(flat + offset, g.data() + done, n);
        offset += n, done += n;
        if (offset - bucket_start == bucket_floats_) flush(offset);
      }
    }
    flush(offset);
    comm.wait_all();
    offset = 0;
    for (std::size_t i = params.size(); i-- > 0;) {
      Tensor<Dev>& g = params[i].param->grad;
      DeviceMemory<Dev>::copy(g.data(), flat + offset, g.size());
      offset += g.size();
    }
  }

 private:
  std::size_t bucket_floats_;
  std::size_t buckets_ = 0;
  Tensor<Dev> flat_;
};

}  // namespace unetsrnn
