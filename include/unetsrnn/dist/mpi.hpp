#pragma once
// The MPI transport of data-parallel training (CPU): Communicator<Cpu> over MPI_COMM_WORLD.
// Link unetsrnn::mpi (CMake: find_package(unetsrnn COMPONENTS mpi)); the rest of the library does
// not include MPI.
//
// Gradient buckets go out with MPI_Iallreduce as soon as they are packed and are completed
// together. Open MPI picks its reduction algorithm from the communicator size and the message
// size alone, so a run with the same rank count and buckets sums in the same order every time, and
// all ranks receive the same sums (the trainer checks this at every checkpoint).
//
// Failures never hang: errors are fatal (MPI_ERRORS_ARE_FATAL), and every wait polls with a
// deadline (UNETSRNN_MPI_TIMEOUT seconds, default 300): a rank that stops answering (killed,
// stopped, its machine gone) makes the others call MPI_Abort, which ends the whole job with a
// non-zero status. Under mpirun a rank that dies is also noticed by mpirun itself, which ends the
// job.
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "unetsrnn/core/error.hpp"
#include "unetsrnn/train/communicator.hpp"

namespace unetsrnn {

class MpiCommunicator final : public Communicator<Cpu> {
 public:
  // Initialises MPI when the program has not (and finalises it in the destructor then).
  explicit MpiCommunicator(double timeout_seconds = default_timeout()) : timeout_(timeout_seconds) {
    int initialised = 0;
    MPI_Initialized(&initialised);
    if (!initialised) {
      int provided = 0;
      MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
      owns_mpi_ = true;
    }
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_ARE_FATAL);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
  }
  MpiCommunicator(const MpiCommunicator&) = delete;
  MpiCommunicator& operator=(const MpiCommunicator&) = delete;
  ~MpiCommunicator() override {
    if (!owns_mpi_) return;
    int finalised = 0;
    MPI_Finalized(&finalised);
    if (!finalised) MPI_Finalize();
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }

  void start_sum(float* data, std::size_t count) override {
    for (std::size_t done = 0; done < count;) {  // MPI counts are int
      const int n = static_cast<int>(std::min<std::size_t>(count - done, kMaxCount));
      pending_.emplace_back();
      MPI_Iallreduce(MPI_IN_PLACE, data + done, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD,
                     &pending_.back());
      done += static_cast<std::size_t>(n);
    }
  }
  void wait_all() override {
    wait(pending_, "gradient all-reduce");
    pending_.clear();
  }
  void sum_host(double* data, std::size_t count) override {
    std::vector<MPI_Request> r(1);
    MPI_Iallreduce(MPI_IN_PLACE, data, static_cast<int>(count), MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD,
                   r.data());
    wait(r, "metric all-reduce");
  }
  void barrier() override {
    std::vector<MPI_Request> r(1);
    MPI_Ibarrier(MPI_COMM_WORLD, r.data());
    wait(r, "barrier");
  }
  // Ends every rank of the job with `code` (after an error on this one).
  [[noreturn]] void abort(int code) override {
    MPI_Abort(MPI_COMM_WORLD, code);
    std::_Exit(code);
  }

  // UNETSRNN_MPI_TIMEOUT (seconds) or 300.
  static double default_timeout() {
    const char* s = std::getenv("UNETSRNN_MPI_TIMEOUT");
    if (!s || !*s) return 300.0;
    char* end = nullptr;
    const double v = std::strtod(s, &end);
    if (*end != '\0' || !(v > 0.0))
      fail_argument("UNETSRNN_MPI_TIMEOUT must be a positive number of seconds, got '", s, "'");
    return v;
  }

 private:
  static constexpr std::size_t kMaxCount = std::size_t{1} << 30;

  // Polls (MPI_Testall drives the progress of non-blocking collectives) with a short sleep that
  // grows to 1 ms, so that an oversubscribed rank leaves the core to the others; aborts the job
  // past the deadline.
  void wait(std::vector<MPI_Request>& requests, const char* what) {
    if (requests.empty()) return;
    const auto deadline = std::chrono::steady_clock::now() +
                          std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                              std::chrono::duration<double>(timeout_));
    auto pause = std::chrono::microseconds(1);
    for (;;) {
      int done = 0;
      MPI_Testall(static_cast<int>(requests.size()), requests.data(), &done, MPI_STATUSES_IGNORE);
      if (done) return;
      if (std::chrono::steady_clock::now() > deadline) {
        std::fprintf(stderr,
                     "unetsrnn: rank %d of %d: %s got no answer in %g s (a rank died or hangs; "
                     "UNETSRNN_MPI_TIMEOUT sets the limit): aborting the job\n",
                     rank_, size_, what, timeout_);
        std::fflush(stderr);
        abort(3);
      }
      std::this_thread::sleep_for(pause);
      if (pause < std::chrono::microseconds(1000)) pause *= 2;
    }
  }

  double timeout_;
  bool owns_mpi_ = false;
  int rank_ = 0, size_ = 1;
  std::vector<MPI_Request> pending_;
};

}  // namespace unetsrnn
