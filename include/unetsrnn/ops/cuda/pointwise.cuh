#pragma once
// CUDA bodies of the pointwise, data-movement and optimiser ops (contracts in ops/ops.hpp).
// Views may be strided channel blocks: element k of image i lives at data + i * nstride + k, so
// the kernels walk (image, offset) pairs: images along grid y, offsets in a grid-stride loop
// along x.
#include <cstddef>

#include "unetsrnn/ops/cuda/memory.cuh"
#include "unetsrnn/tensor/tensor.hpp"

namespace unetsrnn::cuda {

namespace pointwise_detail {

// What a kernel needs of a view: plain data, copyable to the device.
template <class T>
struct Images {
  T* data;
  std::size_t nstride;
  __device__ T& operator()(int i, std::size_t k) const {
    return data[static_cast<std::size_t>(i) * nstride + k];
  }
};
template <class T>
Images<T> images(BasicView<Cuda, T> v) {
  return {v.data, v.nstride};
}

// Calls op(i, k) for every image i < n and offset k < image_size.
template <class Op>
__global__ void for_each_element(int n, std::size_t image_size, Op op) {
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  for (int i = blockIdx.y; i < n; i += gridDim.y)
    for (std::size_t k = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
         k < image_size; k += stride)
      op(i, k);
}

template <class Op>
void launch(const char* what, const Shape& s, Op op) {
  const std::size_t image_size = s.image_size();
  if (s.n <= 0 || image_size == 0) return;
  const unsigned images = static_cast<unsigned>(s.n < 65535 ? s.n : 65535);
  const dim3 grid(grid_for(image_size), images);
  for_each_element<Op><<<grid, kBlock>>>(s.n, image_size, op);
  check_launch(what);
}

struct Fill {
  Images<float> y;
  float value;
  __device__ void operator()(int i, std::size_t k) const { y(i, k) = value; }
};
struct Copy {
  Images<const float> x;
  Images<float> y;
  __device__ void operator()(int i, std::size_t k) const { y(i, k) = x(i, k); }
};
struct Add {
  Images<const float> x;
  Images<float> y;
  __device__ void operator()(int i, std::size_t k) const { y(i, k) += x(i, k); }
};
struct Relu {
  Images<const float> x;
  Images<float> y;
  __device__ void operator()(int i, std::size_t k) const {
    const float v = x(i, k);
    y(i, k) = v > 0.0f ? v : 0.0f;
  }
};
template <bool Accumulate>
struct ReluBackward {
  Images<const float> y, dy;
  Images<float> dx;
  __device__ void operator()(int i, std::size_t k) const {
    const float g = y(i, k) > 0.0f ? dy(i, k) : 0.0f;
    if constexpr (Accumulate)
      dx(i, k) += g;
    else
      dx(i, k) = g;
  }
};
struct Sigmoid {
  Images<const float> x;
  Images<float> y;
  __device__ void operator()(int i, std::size_t k) const {
    // exp of a non-positive argument only, so it never overflows (as on the CPU).
    const float v = x(i, k);
    if (v >= 0.0f) {
      y(i, k) = 1.0f / (1.0f + expf(-v));
    } else {
      const float e = expf(v);
      y(i, k) = e / (1.0f + e);
    }
  }
};

template <class T>
__global__ void adam_kernel(T* p, const T* g, T* m, T* v, std::size_t n, T lr_t, T b1, T b2,
                            T eps) {
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  for (std::size_t k = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < n;
       k += stride) {
    const T gk = g[k];
    const T mk = b1 * m[k] + (T(1) - b1) * gk;
    const T vk = b2 * v[k] + (T(1) - b2) * gk * gk;
    m[k] = mk;
    v[k] = vk;
    p[k] -= lr_t * mk / (sqrtf(vk) + eps);
  }
}

template <class T>
__global__ void sgd_kernel(T* p, const T* g, T* vel, std::size_t n, T lr, T momentum) {
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  for (std::size_t k = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < n;
       k += stride) {
    const T vk = momentum * vel[k] - lr * g[k];
    vel[k] = vk;
    p[k] += vk;
  }
}

}  // namespace pointwise_detail

inline void fill(View<Cuda> y, float value) {
  using namespace pointwise_detail;
  launch("cuda::fill", y.shape, Fill{images(y), value});
}
inline void copy(CView<Cuda> x, View<Cuda> y) {
  using namespace pointwise_detail;
  if (x.data == y.data && x.nstride == y.nstride) return;  // copying a view onto itself
  launch("cuda::copy", x.shape, Copy{images(x), images(y)});
}
inline void add(CView<Cuda> x, View<Cuda> y) {
  using namespace pointwise_detail;
  launch("cuda::add", x.shape, Add{images(x), images(y)});
}
inline void relu_forward(CView<Cuda> x, View<Cuda> y) {
  using namespace pointwise_detail;
  launch("cuda::relu_forward", x.shape, Relu{images(x), images(y)});
}
inline void relu_backward(CView<Cuda> y, CView<Cuda> dy, View<Cuda> dx, bool accumulate) {
  using namespace pointwise_detail;
  if (accumulate)
    launch("cuda::relu_backward", y.shape, ReluBackward<true>{images(y), images(dy), images(dx)});
  else
    launch("cuda::relu_backward", y.shape, ReluBackward<false>{images(y), images(dy), images(dx)});
}
inline void sigmoid_forward(CView<Cuda> x, View<Cuda> y) {
  using namespace pointwise_detail;
  launch("cuda::sigmoid_forward", x.shape, Sigmoid{images(x), images(y)});
}

inline void adam_update(View<Cuda> p, CView<Cuda> g, View<Cuda> m, View<Cuda> v, float lr_t,
                        float beta1, float beta2, float eps) {
  const std::size_t n = p.shape.size();
  if (n == 0) return;
  pointwise_detail::adam_kernel<float>
      <<<grid_for(n), kBlock>>>(p.data, g.data, m.data, v.data, n, lr_t, beta1, beta2, eps);
  check_launch("cuda::adam_update");
}
inline void sgd_update(View<Cuda> p, CView<Cuda> g, View<Cuda> vel, float lr, float momentum) {
  const std::size_t n = p.shape.size();
  if (n == 0) return;
  pointwise_detail::sgd_kernel<float>
      <<<grid_for(n), kBlock>>>(p.data, g.data, vel.data, n, lr, momentum);
  check_launch("cuda::sgd_update");
}

}  // namespace unetsrnn::cuda
