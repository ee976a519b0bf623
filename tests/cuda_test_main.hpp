#pragma once
// main() of the CUDA test programs: on a machine without a usable CUDA device it prints why and
// exits 77, which CTest reports as "Skipped" (SKIP_RETURN_CODE); otherwise it names the device and
// runs the doctest cases. Include once, after the test cases, with DOCTEST_CONFIG_IMPLEMENT set.
#include <cstdio>
#include <unetsrnn/cuda.hpp>

inline int run_cuda_tests(const char* program, int argc, char** argv) {
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (!unetsrnn::cuda::device_available()) {
    std::printf("%s: SKIPPED: no CUDA device (cudaGetDeviceCount: %s, %d devices)\n", program,
                status == cudaSuccess ? "ok" : cudaGetErrorString(status), count);
    return 77;
  }
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, 0) == cudaSuccess)
    std::printf("%s: device 0: %s, compute capability %d.%d, %d SMs, %.1f GiB\n", program,
                prop.name, prop.major, prop.minor, prop.multiProcessorCount,
                static_cast<double>(prop.totalGlobalMem) / (1024.0 * 1024.0 * 1024.0));
  doctest::Context context(argc, argv);
  return context.run();
}
