// The example programs on the GPU: the Cuda instances of train/evaluate/predict/demo_body, compiled
// once by nvcc and linked into every program (see device.hpp and CMakeLists.txt).
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>
#include <unetsrnn/cuda.hpp>

#include "demo_program.hpp"
#include "evaluate_program.hpp"
#include "predict_program.hpp"
#include "train_program.hpp"

namespace examples {

int cuda_main(Program program, const cli::Parser& p) {
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    (void)cudaGetLastError();  // clear the error so that it is not reported again later
    throw std::runtime_error(std::string("no CUDA device: ") + cudaGetErrorString(status) + " (" +
                             cudaGetErrorName(status) + ")");
  }
  if (count == 0) throw std::runtime_error("no CUDA device: the driver reports 0 devices");
  using unetsrnn::Cuda;
  switch (program) {
    case Program::Train:
      return train_body<Cuda>(p);
    case Program::Evaluate:
      return evaluate_body<Cuda>(p);
    case Program::Predict:
      return predict_body<Cuda>(p);
    case Program::Demo:
      return demo_body<Cuda>(p);
  }
  throw std::logic_error("cuda_main: unknown program");
}

}  // namespace examples
