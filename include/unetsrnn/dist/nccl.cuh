#pragma once
// The NCCL transport of data-parallel training (GPU): Communicator<Cuda>, one rank per GPU, for
// .cu sources that include <unetsrnn/cuda.hpp>; link unetsrnn::mpi, CUDA and libnccl.
//
// Rank r of an MPI job uses GPU (local rank) % (GPUs on its machine); rank 0 creates the NCCL id
// and MPI broadcasts it. Gradient buckets are summed in place on the device with ncclAllReduce on
// the default stream (after the backward kernels that wrote them, before the Adam kernels that
// read them); NCCL's reduction order is fixed for a fixed communicator and message size. Host
// sums (losses, metric counts) and the barrier go through MPI. Waits poll with the MPI
// transport's deadline; on timeout or an asynchronous NCCL error the communicator is aborted and
// the job ended.
#include <cuda_runtime.h>
#include <nccl.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "unetsrnn/core/device.hpp"
#include "unetsrnn/core/error.hpp"
#include "unetsrnn/dist/mpi.hpp"
#include "unetsrnn/train/communicator.hpp"

namespace unetsrnn {

class NcclCommunicator final : public Communicator<Cuda> {
 public:
  explicit NcclCommunicator(double timeout_seconds = MpiCommunicator::default_timeout())
      : mpi_(timeout_seconds), timeout_(timeout_seconds) {
    int gpus = 0;
    check_cuda(cudaGetDeviceCount(&gpus), "cudaGetDeviceCount");
    if (gpus < 1) fail_argument("NcclCommunicator: no CUDA device");
    check_cuda(cudaSetDevice(local_rank() % gpus), "cudaSetDevice");
    ncclUniqueId id;
    if (mpi_.rank() == 0) check_nccl(ncclGetUniqueId(&id), "ncclGetUniqueId");
    MPI_Bcast(&id, sizeof id, MPI_BYTE, 0, MPI_COMM_WORLD);
    check_nccl(ncclCommInitRank(&comm_, mpi_.size(), id, mpi_.rank()), "ncclCommInitRank");
  }
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;
  ~NcclCommunicator() override {
    if (comm_) (void)ncclCommDestroy(comm_);
  }

  int rank() const override { return mpi_.rank(); }
  int size() const override { return mpi_.size(); }

  void start_sum(float* device_data, std::size_t count) override {
    if (count == 0) return;
    check_nccl(ncclAllReduce(device_data, device_data, count, ncclFloat32, ncclSum, comm_,
                             cudaStreamLegacy),
               "ncclAllReduce");
    pending_ = true;
  }
  void wait_all() override {
    if (!pending_) return;
    pending_ = false;
    const auto deadline = std::chrono::steady_clock::now() +
                          std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                              std::chrono::duration<double>(timeout_));
    auto pause = std::chrono::microseconds(1);
    for (;;) {
      const cudaError_t status = cudaStreamQuery(cudaStreamLegacy);
      if (status == cudaSuccess) return;
      if (status != cudaErrorNotReady) check_cuda(status, "gradient all-reduce (NCCL)");
      ncclResult_t async = ncclSuccess;
      (void)ncclCommGetAsyncError(comm_, &async);
      if (async != ncclSuccess) fail_job(ncclGetErrorString(async));
      if (std::chrono::steady_clock::now() > deadline)
        fail_job("no answer before the deadline (a rank died or hangs; UNETSRNN_MPI_TIMEOUT)");
      std::this_thread::sleep_for(pause);
      if (pause < std::chrono::microseconds(1000)) pause *= 2;
    }
  }
  void sum_host(double* data, std::size_t count) override { mpi_.sum_host(data, count); }
  void barrier() override { mpi_.barrier(); }
  [[noreturn]] void abort(int code) override {
    (void)ncclCommAbort(comm_);
    comm_ = nullptr;
    mpi_.abort(code);
  }

 private:
  // The rank among those on this machine (Open MPI, PMIx, Slurm), else the world rank.
  int local_rank() const {
    for (const char* var : {"OMPI_COMM_WORLD_LOCAL_RANK", "PMIX_LOCAL_RANK", "SLURM_LOCALID"})
      if (const char* s = std::getenv(var)) return std::atoi(s);
    return mpi_.rank();
  }
  static void check_cuda(cudaError_t status, const char* what) {
    if (status != cudaSuccess)
      fail_argument("NcclCommunicator: ", what, ": ", cudaGetErrorString(status));
  }
  static void check_nccl(ncclResult_t status, const char* what) {
    if (status != ncclSuccess)
      fail_argument("NcclCommunicator: ", what, ": ", ncclGetErrorString(status));
  }
  [[noreturn]] void fail_job(const char* why) {
    std::fprintf(stderr, "unetsrnn: rank %d of %d: gradient all-reduce (NCCL): %s: aborting\n",
                 rank(), size(), why);
    std::fflush(stderr);
    abort(3);
  }

  MpiCommunicator mpi_;
  double timeout_;
  ncclComm_t comm_ = nullptr;
  bool pending_ = false;
};

}  // namespace unetsrnn
