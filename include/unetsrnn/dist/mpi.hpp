#pragma once
// The MPI transport of data-parallel training (CPU): Communicator<Cpu> over MPI_COMM_WORLD.
// Link unetsrnn::mpi (CMake: find_package(unetsrnn COMPONENTS mpi)); the rest of the library does
// not include MPI.
//
// Gradient buckets are summed by a communication thread, so that they progress while the
// compute thread runs the rest of the backward pass: start_sum() queues a bucket and returns; the
// thread sums the queued buckets one after another, in queue order (MPI_Iallreduce, polled to
// completion), and wait_all() waits for it to drain the queue. Open MPI's progress engine runs
// only inside MPI calls, which is why a thread that keeps calling into MPI is needed for the
// overlap. Every MPI call of this class holds one mutex, so MPI_THREAD_SERIALIZED suffices; it is
// requested, and the constructor fails when MPI grants less. Open MPI picks its reduction
// algorithm from the communicator size and the message size alone, so a run with the same rank
// count and buckets sums in the same order every time, and all ranks receive the same sums (the
// trainer checks this at every checkpoint).
//
// Failures never hang: errors are fatal (MPI_ERRORS_ARE_FATAL), and every wait polls with a
// deadline (UNETSRNN_MPI_TIMEOUT seconds, default 300; dist/deadline.hpp): a rank that stops
// answering (killed, stopped, its machine gone) makes the others call MPI_Abort, which ends the
// whole job with a non-zero status. Under mpirun a rank that dies is also noticed by mpirun itself,
// which ends the job.
#include <mpi.h>

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

#include "unetsrnn/core/error.hpp"
#include "unetsrnn/dist/deadline.hpp"
#include "unetsrnn/train/communicator.hpp"

namespace unetsrnn {

class MpiCommunicator final : public Communicator<Cpu> {
 public:
  // Initialises MPI (MPI_THREAD_SERIALIZED) when the program has not, and finalises it in the
  // destructor then. A program that initialises MPI itself must ask for MPI_THREAD_SERIALIZED or
  // MPI_THREAD_MULTIPLE.
  explicit MpiCommunicator(double timeout_seconds = transport_timeout())
      : timeout_(timeout_seconds) {
    int initialised = 0, provided = MPI_THREAD_SINGLE;
    MPI_Initialized(&initialised);
    if (!initialised) {
      MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided);
      owns_mpi_ = true;
    } else {
      MPI_Query_thread(&provided);
    }
    if (provided < MPI_THREAD_SERIALIZED) {
      if (owns_mpi_) MPI_Finalize();
      fail_argument("MpiCommunicator: MPI grants thread level ", thread_level_name(provided),
                    "; the gradient communication thread needs MPI_THREAD_SERIALIZED or "
                    "MPI_THREAD_MULTIPLE",
                    owns_mpi_ ? " (this MPI does not support it)"
                              : " (initialise MPI with MPI_Init_thread(..., "
                                "MPI_THREAD_SERIALIZED, ...))");
    }
    thread_level_ = provided;
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_ARE_FATAL);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
  }
  MpiCommunicator(const MpiCommunicator&) = delete;
  MpiCommunicator& operator=(const MpiCommunicator&) = delete;
  ~MpiCommunicator() override {
    if (worker_.joinable()) {
      {
        std::lock_guard<std::mutex> lock(queue_mutex_);
        stop_ = true;
      }
      queue_changed_.notify_all();
      worker_.join();
    }
    if (!owns_mpi_) return;
    int finalised = 0;
    MPI_Finalized(&finalised);
    if (!finalised) MPI_Finalize();
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  // The thread level MPI granted (MPI_THREAD_SERIALIZED or MPI_THREAD_MULTIPLE).
  int thread_level() const { return thread_level_; }

  void start_sum(float* data, std::size_t count) override {
    if (count == 0) return;
    if (!worker_.joinable()) worker_ = std::thread([this] { communicate(); });
    {
      std::lock_guard<std::mutex> lock(queue_mutex_);
      for (std::size_t done = 0; done < count;) {  // MPI counts are int
        const std::size_t n = std::min(count - done, kMaxCount);
        queue_.push_back({data + done, n});
        done += n;
      }
    }
    queue_changed_.notify_all();
  }
  // The thread has its own deadline per sum; this waits for it to drain the queue.
  void wait_all() override {
    std::unique_lock<std::mutex> lock(queue_mutex_);
    queue_changed_.wait(lock, [&] { return summed_ == queue_.size(); });
    queue_.clear();
    taken_ = summed_ = 0;
  }
  void sum_host(double* data, std::size_t count) override {
    MPI_Request r;
    {
      std::lock_guard<std::mutex> lock(mpi_mutex_);
      MPI_Iallreduce(MPI_IN_PLACE, data, static_cast<int>(count), MPI_DOUBLE, MPI_SUM,
                     MPI_COMM_WORLD, &r);
    }
    wait(r, "metric all-reduce");
  }
  void barrier() override {
    MPI_Request r;
    {
      std::lock_guard<std::mutex> lock(mpi_mutex_);
      MPI_Ibarrier(MPI_COMM_WORLD, &r);
    }
    wait(r, "barrier");
  }
  // Ends every rank of the job with `code` (after an error on this one).
  [[noreturn]] void abort(int code) override {
    mpi_mutex_.lock();  // kept: no other MPI call of this process may run now
    MPI_Abort(MPI_COMM_WORLD, code);
    std::_Exit(code);
  }

 private:
  static constexpr std::size_t kMaxCount = std::size_t{1} << 30;
  struct Sum {
    float* data;
    std::size_t count;
  };

  // The communication thread: sums queue_[taken_], queue_[taken_ + 1], ... as they come.
  void communicate() {
    std::unique_lock<std::mutex> lock(queue_mutex_);
    for (;;) {
      queue_changed_.wait(lock, [&] { return stop_ || taken_ < queue_.size(); });
      if (taken_ == queue_.size()) return;  // stopping, nothing left
      const Sum s = queue_[taken_++];
      lock.unlock();
      MPI_Request r;
      {
        std::lock_guard<std::mutex> mpi(mpi_mutex_);
        MPI_Iallreduce(MPI_IN_PLACE, s.data, static_cast<int>(s.count), MPI_FLOAT, MPI_SUM,
                       MPI_COMM_WORLD, &r);
      }
      wait(r, "gradient all-reduce");
      lock.lock();
      ++summed_;
      queue_changed_.notify_all();
    }
  }

  // Polls the request (MPI_Test drives the progress of non-blocking collectives) until it is
  // complete; aborts the job past the deadline.
  void wait(MPI_Request& request, const char* what) {
    poll_until(
        [&] {
          int done = 0;
          std::lock_guard<std::mutex> lock(mpi_mutex_);
          MPI_Test(&request, &done, MPI_STATUS_IGNORE);
          return done != 0;
        },
        timeout_,
        [&] {
          std::fprintf(stderr,
                       "unetsrnn: rank %d of %d: %s got no answer in %g s (a rank died or hangs; "
                       "UNETSRNN_MPI_TIMEOUT sets the limit): aborting the job\n",
                       rank_, size_, what, timeout_);
          std::fflush(stderr);
          abort(3);
        });
  }

  static const char* thread_level_name(int level) {
    switch (level) {
      case MPI_THREAD_SINGLE:
        return "MPI_THREAD_SINGLE";
      case MPI_THREAD_FUNNELED:
        return "MPI_THREAD_FUNNELED";
      case MPI_THREAD_SERIALIZED:
        return "MPI_THREAD_SERIALIZED";
      default:
        return "MPI_THREAD_MULTIPLE";
    }
  }

  double timeout_;
  bool owns_mpi_ = false;
  int rank_ = 0, size_ = 1, thread_level_ = MPI_THREAD_SINGLE;
  std::mutex mpi_mutex_;  // held by every MPI call after construction (MPI_THREAD_SERIALIZED)
  // Gradient sums: queue_[0, taken_) taken by the thread, [0, summed_) complete.
  std::mutex queue_mutex_;
  std::condition_variable queue_changed_;
  std::vector<Sum> queue_;
  std::size_t taken_ = 0, summed_ = 0;
  bool stop_ = false;
  std::thread worker_;  // started by the first start_sum (NcclCommunicator never starts it)
};

}  // namespace unetsrnn
