#pragma once
// OpenMP thread queries and the parallel loops every CPU kernel uses; all also compile (as one
// thread) without OpenMP. The kernels of every instruction-set path run their work through these
// loops (compiled for the baseline: see ops/cpu/foreach_isa.hpp), never their own parallel regions.
#ifdef _OPENMP
#include <omp.h>
#endif

namespace unetsrnn::cpu {

inline int max_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}
inline int thread_id() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}
inline bool in_parallel() {
#ifdef _OPENMP
  return omp_in_parallel() != 0;
#else
  return false;
#endif
}
// Whether a loop asked to run in parallel gets a team of several threads. Otherwise the caller runs
// it without entering a parallel region: libgomp allocates a team for every serialised region, and
// the training step must not touch the heap.
inline bool use_threads(bool wanted) { return wanted && max_threads() > 1 && !in_parallel(); }

// body(t) for t in [0, count), spread over the threads (static schedule) when `parallel`.
template <class Body>
void parallel_for(long long count, bool parallel, Body&& body) {
  if (use_threads(parallel)) {
#pragma omp parallel for schedule(static)
    for (long long t = 0; t < count; ++t) body(t);
  } else {
    for (long long t = 0; t < count; ++t) body(t);
  }
}

// body(t) for t in [0, count), handed out one at a time to the threads (the cores may be shared)
// when `parallel` and there is more than one item.
template <class Body>
void parallel_for_dynamic(long long count, bool parallel, Body&& body) {
  if (use_threads(parallel && count > 1)) {
#pragma omp parallel for schedule(dynamic, 1)
    for (long long t = 0; t < count; ++t) body(t);
  } else {
    for (long long t = 0; t < count; ++t) body(t);
  }
}

}  // namespace unetsrnn::cpu
