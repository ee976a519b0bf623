#pragma once
// The NCCL transport of data-parallel training (GPU): Communicator<Cuda>, one rank per GPU, for
// .cu sources that include <unetsrnn/cuda.hpp>; link unetsrnn::mpi, CUDA and libnccl.
//
// Rank r of an MPI job uses GPU (local rank) % (GPUs on its machine); rank 0 creates the NCCL id
// and MPI broadcasts it. Gradient buckets are summed in place on the device by ncclAllReduce on a
// side stream of their own (non-blocking, so that it runs beside the default stream's kernels):
// each start_sum() records an event on the default stream, after the backward kernels and the
// packing copy that wrote the bucket, and the side stream waits for it, so the sums run while the
// default stream goes on with the backward pass. wait_all() waits for the side stream, before the
// default stream unpacks the sums for the Adam kernels. NCCL's reduction order is fixed for a fixed
// communicator and message size. Host sums (losses, metric counts) and the barrier go through MPI.
// Waits poll with the MPI transport's deadline (dist/deadline.hpp); on timeout or an asynchronous
// NCCL error the communicator is aborted and the job ended.
#include <cuda_runtime.h>
#include <nccl.h>

#include <cstdio>
#include <cstdlib>

#include "unetsrnn/core/device.hpp"
#include "unetsrnn/core/error.hpp"
#include "unetsrnn/dist/deadline.hpp"
#include "unetsrnn/dist/mpi.hpp"
#include "unetsrnn/train/communicator.hpp"

namespace unetsrnn {

class NcclCommunicator final : public Communicator<Cuda> {
 public:
  explicit NcclCommunicator(double timeout_seconds = transport_timeout())
      : mpi_(timeout_seconds), timeout_(timeout_seconds) {
    int gpus = 0;
    check_cuda(cudaGetDeviceCount(&gpus), "cudaGetDeviceCount");
    if (gpus < 1) fail_argument("NcclCommunicator: no CUDA device");
    check_cuda(cudaSetDevice(local_rank() % gpus), "cudaSetDevice");
    ncclUniqueId id;
    if (mpi_.rank() == 0) check_nccl(ncclGetUniqueId(&id), "ncclGetUniqueId");
    MPI_Bcast(&id, sizeof id, MPI_BYTE, 0, MPI_COMM_WORLD);
    check_nccl(ncclCommInitRank(&comm_, mpi_.size(), id, mpi_.rank()), "ncclCommInitRank");
    check_cuda(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
    check_cuda(cudaEventCreateWithFlags(&packed_, cudaEventDisableTiming), "cudaEventCreate");
  }
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;
  ~NcclCommunicator() override {
    if (pending_) (void)cudaStreamSynchronize(stream_);
    if (comm_) (void)ncclCommDestroy(comm_);
    if (packed_) (void)cudaEventDestroy(packed_);
    if (stream_) (void)cudaStreamDestroy(stream_);
  }

  int rank() const override { return mpi_.rank(); }
  int size() const override { return mpi_.size(); }

  void start_sum(float* device_data, std::size_t count) override {
    if (count == 0) return;
    // The side stream starts the sum once the default stream has written the bucket.
    check_cuda(cudaEventRecord(packed_, cudaStreamLegacy), "cudaEventRecord");
    check_cuda(cudaStreamWaitEvent(stream_, packed_, 0), "cudaStreamWaitEvent");
    check_nccl(ncclAllReduce(device_data, device_data, count, ncclFloat32, ncclSum, comm_, stream_),
               "ncclAllReduce");
    pending_ = true;
  }
  // Returns when the side stream has summed every bucket: what the default stream queues next
  // (unpacking the sums) runs after them.
  void wait_all() override {
    if (!pending_) return;
    pending_ = false;
    poll_until(
        [&] {
          const cudaError_t status = cudaStreamQuery(stream_);
          if (status == cudaSuccess) return true;
          if (status != cudaErrorNotReady) check_cuda(status, "gradient all-reduce (NCCL)");
          ncclResult_t async = ncclSuccess;
          (void)ncclCommGetAsyncError(comm_, &async);
          if (async != ncclSuccess) fail_job(ncclGetErrorString(async));
          return false;
        },
        timeout_,
        [&] {
          fail_job("no answer before the deadline (a rank died or hangs; UNETSRNN_MPI_TIMEOUT)");
        });
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
  cudaStream_t stream_ = nullptr;  // the sums
  cudaEvent_t packed_ = nullptr;   // recorded after a bucket is written, on the default stream
  bool pending_ = false;
};

}  // namespace unetsrnn
