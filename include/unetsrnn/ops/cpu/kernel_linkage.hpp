#pragma once
// How a program links the CPU kernels. By default the library is header-only: every translation
// unit that calls a CPU op compiles the kernels of every instruction-set path, which costs about
// 40 s of g++ -O3 per unit. A program of many units can compile them once instead:
//   - define UNETSRNN_EXTERN_KERNELS in every unit (on the command line), and
//   - in exactly one unit define UNETSRNN_KERNELS_IMPLEMENTATION as well, then include
//     <unetsrnn/ops/cpu/backend.hpp> (or <unetsrnn/unetsrnn.hpp>).
// The other units then see the ops' declarations only (the dispatching functions of conv.hpp and
// srnn.hpp); the implementing unit defines them once, with external linkage. All units of a
// program must agree on UNETSRNN_EXTERN_KERNELS. This project builds its programs that way (CMake
// target unetsrnn_kernels), except the tests that call one path's kernels directly.
#if defined(UNETSRNN_EXTERN_KERNELS)
#define UNETSRNN_KERNEL_API
#else
#define UNETSRNN_KERNEL_API inline
#endif
#if !defined(UNETSRNN_EXTERN_KERNELS) || defined(UNETSRNN_KERNELS_IMPLEMENTATION)
#define UNETSRNN_KERNEL_BODIES 1
#else
#define UNETSRNN_KERNEL_BODIES 0
#endif
