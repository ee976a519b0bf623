#pragma once
// unetsrnn with the CUDA backend: everything of <unetsrnn/unetsrnn.hpp> plus Backend<Cuda>, so
// that Tensor<Cuda>, the layers and the models (CRUNetRes<Filters::High, Cuda>, ...) run on the
// GPU. Compile with nvcc and link the unetsrnn::cuda CMake target (CUDA runtime and cuBLAS).
#ifndef __CUDACC__
#error "<unetsrnn/cuda.hpp> holds CUDA kernels: compile this file with nvcc (a .cu source)"
#endif
#include "unetsrnn/ops/cuda/backend.cuh"
// The CPU kernels' "#pragma GCC unroll" and OpenMP clauses are meant for the host compiler, which
// still receives them; nvcc's front end knows neither, so it reports the pragma (1675) and
// variables that only an OpenMP clause reads (177).
#pragma nv_diagnostic push
#pragma nv_diag_suppress 1675
#pragma nv_diag_suppress 177
#include "unetsrnn/unetsrnn.hpp"
#pragma nv_diagnostic pop
