#pragma once
// The deadline every wait of a data-parallel transport (dist/mpi.hpp, dist/nccl.cuh) runs under, so
// that a rank that died or hangs ends the job instead of stalling it. No MPI or CUDA here.
#include <chrono>
#include <cstdlib>
#include <thread>

#include "unetsrnn/core/error.hpp"

namespace unetsrnn {

// UNETSRNN_MPI_TIMEOUT (seconds) or 300: the transports' deadline.
inline double transport_timeout() {
  const char* s = std::getenv("UNETSRNN_MPI_TIMEOUT");
  if (!s || !*s) return 300.0;
  char* end = nullptr;
  const double v = std::strtod(s, &end);
  if (*end != '\0' || !(v > 0.0))
    fail_argument("UNETSRNN_MPI_TIMEOUT must be a positive number of seconds, got '", s, "'");
  return v;
}

// Calls done() until it returns true, sleeping between calls for a time that grows from 1 us to
// 1 ms (an oversubscribed rank leaves the core to the others; a fast sum is not slowed); calls
// timed_out(), which must end the job, when `seconds` pass first.
template <class Done, class TimedOut>
void poll_until(Done&& done, double seconds, TimedOut&& timed_out) {
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                            std::chrono::duration<double>(seconds));
  auto pause = std::chrono::microseconds(1);
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) {
      timed_out();
      std::abort();  // timed_out() ends the job; never poll on past the deadline
    }
    std::this_thread::sleep_for(pause);
    if (pause < std::chrono::microseconds(1000)) pause *= 2;
  }
}

}  // namespace unetsrnn
