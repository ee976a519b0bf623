#pragma once
// The one place the library includes Eigen. g++ 12.2 reports -W(maybe-)uninitialized inside its own
// AVX-512 intrinsics (the self-initialised "undefined" vectors of avx512fintrin.h, GCC bug 105593)
// wherever Eigen's AVX-512 GEMM is instantiated, even from system headers; the warning is
// silenced for Eigen's code only, so a -Werror build of our code survives -march with AVX-512.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
// Under nvcc (the CUDA programs compile the CPU backend too) Eigen is used on the host only: its
// device annotations only bring nvcc warnings.
#if defined(__CUDACC__) && !defined(EIGEN_NO_CUDA)
#define EIGEN_NO_CUDA
#endif
#include <Eigen/Core>
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
