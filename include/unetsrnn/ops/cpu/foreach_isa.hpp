// Compiles the kernel header named by UNETSRNN_KERNELS_HEADER once per instruction-set path (see
// ops/cpu/isa.hpp), each time in its own namespace unetsrnn::cpu::<path> and with the compiler's
// code generation for that path switched on for just that region (GCC: push_options/target;
// clang: attribute push), Highway-style: no -march flag is needed and every path is in the program.
//
// Rules for kernel headers: include nothing (everything they use is included before this file,
// outside the target regions, so that no library inline function is compiled for one path only);
// open namespace unetsrnn::cpu::UNETSRNN_ISA_NS; test UNETSRNN_ISA_<PATH> where paths differ; keep
// OpenMP parallel regions out (clang does not give their bodies the region's target): the loops of
// ops/cpu/threads.hpp call the kernels' lambdas instead.
//
// Paths: portable (baseline), and on x86 avx2 and avx512; plus avx512_emulated (the AVX-512
// path's tiles on AVX2 instructions, for tests) for the kernel headers that define
// UNETSRNN_KERNELS_EMULATE, in programs that define UNETSRNN_EMULATE_AVX512.
#ifndef UNETSRNN_KERNELS_HEADER
#error "define UNETSRNN_KERNELS_HEADER before including foreach_isa.hpp"
#endif

#if UNETSRNN_X86
#include <immintrin.h>
#endif

#if defined(__clang__)
#define UNETSRNN_TARGET_PUSH_AVX2 \
  _Pragma("clang attribute push(__attribute__((target(\"avx2,fma\"))), apply_to = function)")
// clang-format off
#define UNETSRNN_TARGET_PUSH_AVX512 _Pragma("clang attribute push(__attribute__((target(\"avx2,fma,avx512f,avx512vl,avx512dq,avx512bw\"))), apply_to = function)")
// clang-format on
#define UNETSRNN_TARGET_POP _Pragma("clang attribute pop")
#elif defined(__GNUC__)
#define UNETSRNN_TARGET_PUSH_AVX2 _Pragma("GCC push_options") _Pragma("GCC target(\"avx2,fma\")")
// clang-format off
#define UNETSRNN_TARGET_PUSH_AVX512 _Pragma("GCC push_options") _Pragma("GCC target(\"avx2,fma,avx512f,avx512vl,avx512dq,avx512bw,prefer-vector-width=512\")")
// clang-format on
#define UNETSRNN_TARGET_POP _Pragma("GCC pop_options")
#endif

#define UNETSRNN_ISA_NS portable
#define UNETSRNN_ISA_PORTABLE 1
#include "unetsrnn/ops/cpu/simd.hpp"
#include UNETSRNN_KERNELS_HEADER
#undef UNETSRNN_ISA_PORTABLE
#undef UNETSRNN_ISA_NS

#if UNETSRNN_X86
UNETSRNN_TARGET_PUSH_AVX2
#define UNETSRNN_ISA_NS avx2
#define UNETSRNN_ISA_AVX2 1
#include "unetsrnn/ops/cpu/simd.hpp"
#include UNETSRNN_KERNELS_HEADER
#undef UNETSRNN_ISA_AVX2
#undef UNETSRNN_ISA_NS
UNETSRNN_TARGET_POP

UNETSRNN_TARGET_PUSH_AVX512
#define UNETSRNN_ISA_NS avx512
#define UNETSRNN_ISA_AVX512 1
#include "unetsrnn/ops/cpu/simd.hpp"
#include UNETSRNN_KERNELS_HEADER
#undef UNETSRNN_ISA_AVX512
#undef UNETSRNN_ISA_NS
UNETSRNN_TARGET_POP

#if defined(UNETSRNN_EMULATE_AVX512) && defined(UNETSRNN_KERNELS_EMULATE)
UNETSRNN_TARGET_PUSH_AVX2
#define UNETSRNN_ISA_NS avx512_emulated
#define UNETSRNN_ISA_AVX512_EMULATED 1
#include "unetsrnn/ops/cpu/simd.hpp"
#include UNETSRNN_KERNELS_HEADER
#undef UNETSRNN_ISA_AVX512_EMULATED
#undef UNETSRNN_ISA_NS
UNETSRNN_TARGET_POP
#endif
#endif  // UNETSRNN_X86

#undef UNETSRNN_TARGET_PUSH_AVX2
#undef UNETSRNN_TARGET_PUSH_AVX512
#undef UNETSRNN_TARGET_POP
#undef UNETSRNN_KERNELS_HEADER
#undef UNETSRNN_KERNELS_EMULATE
