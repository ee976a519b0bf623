#pragma once
// Device tags. Tensors, ops and models carry one of these as a template parameter; every op in
// ops/ops.hpp dispatches on it to exactly one backend body (ops/cpu or ops/cuda).

namespace unetsrnn {

struct Cpu {
  static constexpr const char* name = "cpu";
};

// The CUDA backend is declared here so that model types can already name it
// (CRUNetRes<Filters::High, Cuda>); its op bodies live in ops/cuda and are only compiled by nvcc.
struct Cuda {
  static constexpr const char* name = "cuda";
};

}  // namespace unetsrnn
