#pragma once
// The one place the library includes Eigen. g++ 12.2 reports -W(maybe-)uninitialized inside its own
// AVX-512 intrinsics (the self-initialised "undefined" vectors of avx512fintrin.h, GCC bug 105593)
// wherever Eigen's AVX-512 GEMM is instantiated, even from system headers; the warning is
// silenced for Eigen's code only, so a -Werror build of our code survives -march with AVX-512.
// Eigen only ever runs on the host here; in a .cu translation unit its CUDA support would compile
// its complex arithmetic for the device too, which nvcc warns about (#20015-D) and -Werror fails.
#if defined(__CUDACC__) && !defined(EIGEN_NO_CUDA)
#define EIGEN_NO_CUDA
#endif
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <Eigen/Core>
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
