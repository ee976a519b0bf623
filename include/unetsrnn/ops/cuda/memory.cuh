#pragma once
// CUDA memory and error handling: DeviceMemory<Cuda> (what Tensor<Cuda> allocates with), error
// checks that throw, and the cuBLAS handle. Everything runs on the default stream, so the order of
// launches is the order of calls and results are deterministic.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <new>
#include <stdexcept>
#include <string>

#include "unetsrnn/tensor/tensor.hpp"

namespace unetsrnn {
namespace cuda {

// Throws std::runtime_error naming the failed call and CUDA's description of the error.
inline void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess)
    throw std::runtime_error(std::string("CUDA error in ") + what + ": " +
                             cudaGetErrorName(status) + " (" + cudaGetErrorString(status) + ")");
}

// Checks that the kernel launched just before was accepted (bad configuration, no device, ...).
// Errors raised while the kernel runs surface at the next synchronising call.
inline void check_launch(const char* what) { check(cudaGetLastError(), what); }

inline const char* cublas_status_name(cublasStatus_t status) {
  switch (status) {
    case CUBLAS_STATUS_SUCCESS:
      return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED:
      return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED:
      return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE:
      return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH:
      return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR:
      return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED:
      return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR:
      return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED:
      return "CUBLAS_STATUS_NOT_SUPPORTED";
    case CUBLAS_STATUS_LICENSE_ERROR:
      return "CUBLAS_STATUS_LICENSE_ERROR";
  }
  return "unknown cuBLAS status";
}

inline void check(cublasStatus_t status, const char* what) {
  if (status != CUBLAS_STATUS_SUCCESS)
    throw std::runtime_error(std::string("cuBLAS error in ") + what + ": " +
                             cublas_status_name(status) + " (" +
                             std::to_string(static_cast<int>(status)) + ")");
}

// True when at least one CUDA device can be used. Never throws: a machine without a driver or
// without a GPU simply answers false.
inline bool device_available() {
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    (void)cudaGetLastError();  // clear the sticky error so later checks do not report it
    return false;
  }
  return count > 0;
}

namespace detail {
// One handle per host thread (cuBLAS handles must not be shared between threads that use them
// concurrently). Created on first use, destroyed when the thread ends.
struct CublasHandle {
  cublasHandle_t handle = nullptr;
  CublasHandle() {
    check(cublasCreate(&handle), "cublasCreate");
    // Plain float32 arithmetic: no TF32 tensor-core shortcuts, so results match the CPU to float
    // rounding.
    check(cublasSetMathMode(handle, CUBLAS_DEFAULT_MATH), "cublasSetMathMode");
    check(cublasSetPointerMode(handle, CUBLAS_POINTER_MODE_HOST), "cublasSetPointerMode");
  }
  CublasHandle(const CublasHandle&) = delete;
  CublasHandle& operator=(const CublasHandle&) = delete;
  ~CublasHandle() {
    if (handle) (void)cublasDestroy(handle);  // errors at shutdown cannot be reported
  }
};

template <class T>
__global__ void fill_kernel(T* dst, std::size_t count, T value) {
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  for (std::size_t i = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count;
       i += stride)
    dst[i] = value;
}
}  // namespace detail

// The cuBLAS handle of the calling thread, on the default stream.
inline cublasHandle_t cublas() {
  thread_local detail::CublasHandle holder;
  return holder.handle;
}

// Threads per block and a grid for grid-stride loops over `count` elements.
inline constexpr int kBlock = 256;
inline unsigned grid_for(std::size_t count) {
  const std::size_t blocks = (count + kBlock - 1) / kBlock;
  constexpr std::size_t max_blocks = 65535u * 8u;  // plenty to fill any GPU; loops cover the rest
  return static_cast<unsigned>(blocks < 1 ? 1 : (blocks > max_blocks ? max_blocks : blocks));
}

}  // namespace cuda

template <>
struct DeviceMemory<Cuda> {
  static float* allocate(std::size_t count) {
    if (count == 0) return nullptr;
    void* p = nullptr;
    const cudaError_t status = cudaMalloc(&p, count * sizeof(float));
    if (status == cudaErrorMemoryAllocation) {
      (void)cudaGetLastError();
      throw std::bad_alloc();
    }
    cuda::check(status, "cudaMalloc");
    return static_cast<float*>(p);
  }
  static void free(float* p) {
    if (p) (void)cudaFree(p);  // called from destructors: never throw
  }
  static void copy(float* dst, const float* src, std::size_t count) {
    if (count)
      cuda::check(cudaMemcpy(dst, src, count * sizeof(float), cudaMemcpyDeviceToDevice),
                  "cudaMemcpy (device to device)");
  }
  static void fill(float* dst, std::size_t count, float value) {
    if (count == 0) return;
    cuda::detail::fill_kernel<float><<<cuda::grid_for(count), cuda::kBlock>>>(dst, count, value);
    cuda::check_launch("DeviceMemory<Cuda>::fill");
  }
  // Host to device; synchronous, so `src` may be reused as soon as this returns.
  static void upload(float* dst_device, const float* src_host, std::size_t count) {
    if (count)
      cuda::check(cudaMemcpy(dst_device, src_host, count * sizeof(float), cudaMemcpyHostToDevice),
                  "cudaMemcpy (host to device)");
  }
  // Device to host; waits for every kernel queued before it on the default stream.
  static void download(float* dst_host, const float* src_device, std::size_t count) {
    if (count)
      cuda::check(cudaMemcpy(dst_host, src_device, count * sizeof(float), cudaMemcpyDeviceToHost),
                  "cudaMemcpy (device to host)");
  }
};

}  // namespace unetsrnn
