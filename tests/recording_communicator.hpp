#pragma once
// A Communicator test double for data-parallel code without MPI: this process is rank 0 of
// `ranks`, and every other rank holds the same values, so a sum is `ranks` times the value (exact
// for 2 ranks). Like a real transport, start_sum() only starts a sum: it is done in wait_all(),
// so code that read a buffer before wait_all() would see the unsummed values. Every call is
// recorded, in order, in `events`, where RecordingHook also notes what a backward pass reports
// ready: the order of reports and sums is then one list. Recording allocates nothing once
// `events` has the capacity (reserve it; clear() keeps it).
#include <cstddef>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "unetsrnn/train/communicator.hpp"

namespace unetsrnn::testing {

struct CommEvent {
  enum Kind { StartSum, WaitAll, Ready } kind;
  float* data = nullptr;  // StartSum
  std::size_t first = 0;  // Ready: parameters [first, first + count)
  std::size_t count = 0;  // StartSum: floats; Ready: parameters
};

class RecordingCommunicator final : public Communicator<Cpu> {
 public:
  explicit RecordingCommunicator(int ranks = 2) : ranks_(ranks) {}
  int rank() const override { return 0; }
  int size() const override { return ranks_; }
  void start_sum(float* data, std::size_t count) override {
    if (on_start_sum) on_start_sum();
    events.push_back({CommEvent::StartSum, data, 0, count});
  }
  void wait_all() override {
    for (std::size_t e = last_wait_; e < events.size(); ++e)
      if (events[e].kind == CommEvent::StartSum)
        for (std::size_t i = 0; i < events[e].count; ++i)
          events[e].data[i] *= static_cast<float>(ranks_);
    events.push_back({CommEvent::WaitAll, nullptr, 0, 0});
    last_wait_ = events.size();
  }
  void sum_host(double* data, std::size_t count) override {
    for (std::size_t i = 0; i < count; ++i) data[i] *= ranks_;
  }
  void barrier() override {}
  [[noreturn]] void abort(int code) override {
    throw std::runtime_error("RecordingCommunicator::abort(" + std::to_string(code) + ")");
  }
  void clear() {
    events.clear();
    last_wait_ = 0;
  }

  std::vector<CommEvent> events;
  std::function<void()> on_start_sum;  // optional probe, called before each sum is recorded

 private:
  int ranks_;
  std::size_t last_wait_ = 0;  // events before it are summed
};

// Notes each report of a backward pass in the communicator's events, then passes it on.
struct RecordingHook final : GradientReadyHook {
  RecordingHook(RecordingCommunicator& log, GradientReadyHook& next) : log(log), next(next) {}
  void gradients_ready(std::size_t first, std::size_t count) override {
    log.events.push_back({CommEvent::Ready, nullptr, first, count});
    next.gradients_ready(first, count);
  }
  RecordingCommunicator& log;
  GradientReadyHook& next;
};

}  // namespace unetsrnn::testing
