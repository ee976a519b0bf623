#pragma once
// --device for the example programs. Each program keeps its logic in <program>_program.hpp as
// `template <class Dev> int <program>_body(const cli::Parser&)`; the .cpp main runs the Cpu
// instance, and cuda_programs.cu (compiled by nvcc into every program when CMake finds it, which
// then defines UNETSRNN_EXAMPLES_CUDA) runs the Cuda instances.
#include <cstdio>
#include <stdexcept>
#include <string>

#include "cli.hpp"
#include "unetsrnn/ops/cpu/isa.hpp"

namespace examples {

enum class Program { Train, Evaluate, Predict, Demo };

#ifdef UNETSRNN_EXAMPLES_CUDA
inline constexpr bool kHasCuda = true;
// Runs `program` on the first CUDA device; throws "no CUDA device: <reason>" where there is none.
int cuda_main(Program program, const cli::Parser& p);
#else
inline constexpr bool kHasCuda = false;
#endif

inline void add_device_option(cli::Parser& p) {
  p.option("--device", "NAME",
           kHasCuda ? "cpu | cuda (the first GPU)"
                    : "cpu | cuda (this build has no CUDA backend: rebuild with nvcc found)",
           "cpu");
}

// Runs cpu_body (the program on the CPU) or the program's CUDA instance, by --device; library
// errors become "program: error: message" and exit code 1.
template <class CpuBody>
int run_on_device(const char* name, Program program, const cli::Parser& p, CpuBody&& cpu_body) {
  const std::string device = p.get("--device");
  if (device == "cpu")
    return cli::run_main(name, [&] {
      std::fprintf(stderr, "%s: CPU kernels: %s path\n", name, unetsrnn::cpu::active_isa_name());
      return cpu_body();
    });
  if (device != "cuda") p.usage_error("--device must be cpu or cuda, got '" + device + "'");
  return cli::run_main(name, [&]() -> int {
#ifdef UNETSRNN_EXAMPLES_CUDA
    return cuda_main(program, p);
#else
    (void)program;
    throw std::runtime_error(
        "--device cuda: this build has no CUDA backend: rebuild with nvcc found (on PATH or "
        "CMAKE_CUDA_COMPILER) to build it");
#endif
  });
}

}  // namespace examples
