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

void require_cuda_device() {
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    (void)cudaGetLastError();  // clear the error so that it is not reported again later
    throw std::runtime_error(std::string("no CUDA device: ") + cudaGetErrorString(status) + " (" +
                             cudaGetErrorName(status) + ")");
  }
  if (count == 0) throw std::runtime_error("no CUDA device: the driver reports 0 devices");
}

int on_cuda(const TrainArgs& args) { return train_body<unetsrnn::Cuda>(args); }
int on_cuda(const EvaluateArgs& args) { return evaluate_body<unetsrnn::Cuda>(args); }
int on_cuda(const PredictArgs& args) { return predict_body<unetsrnn::Cuda>(args); }
int on_cuda(const DemoArgs& args) { return demo_body<unetsrnn::Cuda>(args); }

}  // namespace examples
