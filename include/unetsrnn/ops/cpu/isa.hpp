#pragma once
// Which instruction-set path the CPU kernels run. The convolution and Spatial RNN kernels are
// compiled into every program once per path (ops/cpu/foreach_isa.hpp), whatever -march it is
// built with, and the ops dispatch to one of them at run time:
//   avx512    AVX-512 F/VL/DQ/BW + FMA: 16-float tiles over 32 registers,
//   avx2      AVX2 + FMA: 8-float tiles over 16 registers,
//   portable  the compiler's baseline (SSE2 on x86-64, NEON on AArch64): convolution products
//             through Eigen's GEMM, the Spatial RNN's loops vectorised by the compiler.
// The best path this CPU runs is chosen once, at the first op; the environment variable
// UNETSRNN_CPU_ISA=avx512|avx2|portable (or "auto") forces one, and so does set_isa. A path the
// CPU lacks is refused with an error, never run.
#include <atomic>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <string_view>

#if defined(__x86_64__) || defined(__i386__)
#define UNETSRNN_X86 1
#else
#define UNETSRNN_X86 0
#endif

namespace unetsrnn::cpu {

enum class Isa { Portable, Avx2, Avx512 };
inline constexpr Isa kIsas[] = {Isa::Portable, Isa::Avx2, Isa::Avx512};

constexpr const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::Avx512:
      return "avx512";
    case Isa::Avx2:
      return "avx2";
    case Isa::Portable:
      break;
  }
  return "portable";
}

// Whether this program has the path's kernels and this CPU (and its OS) runs them.
inline bool isa_supported(Isa isa) {
  if (isa == Isa::Portable) return true;
#if UNETSRNN_X86 && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();  // may be called before libgcc's constructor has run
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (isa == Isa::Avx2) return avx2;
  return avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
         __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw");
#else
  return false;
#endif
}

// The widest path this CPU runs.
inline Isa best_isa() {
  if (isa_supported(Isa::Avx512)) return Isa::Avx512;
  if (isa_supported(Isa::Avx2)) return Isa::Avx2;
  return Isa::Portable;
}

// "avx512", "avx2", "portable" or "auto" (the best path); `what` names the source in errors.
inline Isa parse_isa(std::string_view name, const char* what) {
  for (Isa isa : kIsas)
    if (name == isa_name(isa)) return isa;
  if (name == "auto") return best_isa();
  throw std::invalid_argument(std::string(what) + ": unknown CPU path '" + std::string(name) +
                              "': expected avx512, avx2, portable or auto");
}

namespace detail {
inline void require_supported(Isa isa, const char* what) {
  if (!isa_supported(isa))
    throw std::invalid_argument(std::string(what) + ": this CPU cannot run the " + isa_name(isa) +
                                " path (best here: " + isa_name(best_isa()) + ")");
}
inline Isa initial_isa() {
  const char* env = std::getenv("UNETSRNN_CPU_ISA");
  if (!env || !*env) return best_isa();
  const Isa isa = parse_isa(env, "UNETSRNN_CPU_ISA");
  require_supported(isa, "UNETSRNN_CPU_ISA");
  return isa;
}
// Chosen on first use; a bad UNETSRNN_CPU_ISA throws from there (and again on the next use).
inline std::atomic<int>& active_slot() {
  static std::atomic<int> slot{static_cast<int>(initial_isa())};
  return slot;
}
}  // namespace detail

// The path the ops run now.
inline Isa active_isa() {
  return static_cast<Isa>(detail::active_slot().load(std::memory_order_relaxed));
}
inline const char* active_isa_name() { return isa_name(active_isa()); }

// Forces a path (tests, benchmarks); throws std::invalid_argument when the CPU lacks it. Not to be
// called while ops run on other threads.
inline void set_isa(Isa isa) {
  detail::require_supported(isa, "unetsrnn::cpu::set_isa");
  detail::active_slot().store(static_cast<int>(isa), std::memory_order_relaxed);
}

}  // namespace unetsrnn::cpu

// `return <path>::call;` for the active path: the body of every dispatched op.
#if UNETSRNN_X86
#define UNETSRNN_CPU_DISPATCH(call)         \
  switch (::unetsrnn::cpu::active_isa()) {  \
    case ::unetsrnn::cpu::Isa::Avx512:      \
      return ::unetsrnn::cpu::avx512::call; \
    case ::unetsrnn::cpu::Isa::Avx2:        \
      return ::unetsrnn::cpu::avx2::call;   \
    case ::unetsrnn::cpu::Isa::Portable:    \
      break;                                \
  }                                         \
  return ::unetsrnn::cpu::portable::call
#else
#define UNETSRNN_CPU_DISPATCH(call) return ::unetsrnn::cpu::portable::call
#endif
