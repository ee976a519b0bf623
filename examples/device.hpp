#pragma once
// --device for the example programs. Each program keeps its logic in <program>_program.hpp as
// `template <class Dev> int <program>_body(const <Program>Args&)`; the .cpp main runs the Cpu
// instance, and cuda_programs.cu (compiled by nvcc into every program when CMake finds it, which
// then defines UNETSRNN_EXAMPLES_CUDA) holds the Cuda instances, `int on_cuda(const
// <Program>Args&)`.
#include <cstdio>
#include <stdexcept>
#include <string>

#include "app/cli.hpp"
#include "unetsrnn/ops/cpu/conv_algo.hpp"
#include "unetsrnn/ops/cpu/isa.hpp"

namespace examples {

#ifdef UNETSRNN_EXAMPLES_CUDA
inline constexpr bool kHasCuda = true;
// Throws "no CUDA device: <reason>" where there is none (cuda_programs.cu).
void require_cuda_device();
#else
inline constexpr bool kHasCuda = false;
#endif

inline void add_device_option(app::Command& c, std::string& device) {
  c.option("--device", device, "NAME",
           kHasCuda ? "cpu | cuda (the first GPU)"
                    : "cpu | cuda (this build has no CUDA backend: rebuild with nvcc found)")
      ->check(app::one_of({"cpu", "cuda"}));
}

// Runs the program on args.device: cpu_body(), or on_cuda(args), the program's CUDA instance
// (declared with its Args, defined in cuda_programs.cu); errors of the run become
// "program: error: message" and exit code 1.
template <class Args, class CpuBody>
int run_on_device(const std::string& program, const Args& args, CpuBody&& cpu_body) {
  if (args.device == "cpu")
    return app::run_main(program, [&] {
      std::fprintf(stderr, "%s: CPU kernels: %s path, %s 3x3 convolutions\n", program.c_str(),
                   unetsrnn::cpu::active_isa_name(), unetsrnn::cpu::conv_algorithm_name());
      return cpu_body();
    });
  return app::run_main(program, [&]() -> int {
#ifdef UNETSRNN_EXAMPLES_CUDA
    require_cuda_device();
    return on_cuda(args);
#else
    throw std::runtime_error(
        "--device cuda: this build has no CUDA backend: rebuild with nvcc found (on PATH or "
        "CMAKE_CUDA_COMPILER) to build it");
#endif
  });
}

// A program's main: reads the command line into Args (add_options declares them; --help and
// usage errors exit here), then runs cpu_body(args) or the CUDA instance by --device.
template <class Args, class AddOptions, class CpuBody>
int program_main(int argc, char** argv, const std::string& program, const std::string& summary,
                 AddOptions&& add_options, CpuBody&& cpu_body) {
  Args args;
  app::Command command(program, summary);
  add_options(command, args);
  command.parse(argc, argv);
  return run_on_device(program, args, [&] { return cpu_body(args); });
}

}  // namespace examples
