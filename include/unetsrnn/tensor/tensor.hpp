#pragma once
// Float32 tensors in NCHW layout.
//
// NCHW because every convolution here becomes a GEMM over (channels x pixels) of one image, and
// a channel block of one image is then a contiguous matrix that Eigen::Map can wrap without
// copying.
//
// `Tensor<Dev>` owns its storage; `View<Dev>` / `CView<Dev>` are non-owning (pointer, shape, batch
// stride). The batch stride lets a view address a block of channels inside a larger tensor, which
// is how concatenation is fused: a layer writes straight into its slice of the concatenated buffer.
#include <algorithm>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <string>

#include "unetsrnn/core/device.hpp"
#include "unetsrnn/core/error.hpp"

namespace unetsrnn {

struct Shape {
  int n = 0, c = 0, h = 0, w = 0;

  constexpr std::size_t size() const {
    return static_cast<std::size_t>(n) * static_cast<std::size_t>(c) * static_cast<std::size_t>(h) *
           static_cast<std::size_t>(w);
  }
  constexpr std::size_t image_size() const {  // elements of one batch item
    return static_cast<std::size_t>(c) * static_cast<std::size_t>(h) * static_cast<std::size_t>(w);
  }
  constexpr std::size_t plane() const {
    return static_cast<std::size_t>(h) * static_cast<std::size_t>(w);
  }
  friend constexpr bool operator==(const Shape&, const Shape&) = default;
  std::string str() const { return str_cat("(", n, ", ", c, ", ", h, ", ", w, ")"); }
};

// Throws std::invalid_argument naming `who` and both shapes.
inline void check_shape(const char* who, const Shape& expected, const Shape& got) {
  if (!(expected == got))
    fail_argument(who, ": shape mismatch, expected ", expected.str(), " but got ", got.str());
}

template <class Dev>
struct DeviceMemory;  // allocate/free/copy for one device; CPU below, CUDA in ops/cuda

template <>
struct DeviceMemory<Cpu> {
  static constexpr std::size_t alignment = 64;  // one cache line / one AVX-512 register
  static float* allocate(std::size_t count) {
    if (count == 0) return nullptr;
    std::size_t bytes = (count * sizeof(float) + alignment - 1) / alignment * alignment;
    void* p = std::aligned_alloc(alignment, bytes);
    if (!p) throw std::bad_alloc();
    return static_cast<float*>(p);
  }
  static void free(float* p) { std::free(p); }
  static void copy(float* dst, const float* src, std::size_t count) {
    if (count) std::memcpy(dst, src, count * sizeof(float));
  }
  static void fill(float* dst, std::size_t count, float value) {
    std::fill(dst, dst + count, value);
  }
  // Host <-> device transfers; on the CPU both sides are host memory.
  static void upload(float* dst_device, const float* src_host, std::size_t count) {
    copy(dst_device, src_host, count);
  }
  static void download(float* dst_host, const float* src_device, std::size_t count) {
    copy(dst_host, src_device, count);
  }
};

template <class Dev = Cpu, class T = float>
struct BasicView {
  T* data = nullptr;
  Shape shape{};
  std::size_t nstride = 0;  // elements between consecutive batch items (>= shape.image_size())

  BasicView() = default;
  BasicView(T* d, Shape s) : data(d), shape(s), nstride(s.image_size()) {}
  BasicView(T* d, Shape s, std::size_t ns) : data(d), shape(s), nstride(ns) {}
  template <class U>
  BasicView(const BasicView<Dev, U>& o) : data(o.data), shape(o.shape), nstride(o.nstride) {}

  bool contiguous() const { return nstride == shape.image_size() || shape.n <= 1; }
  T* image(int i) const { return data + static_cast<std::size_t>(i) * nstride; }
  T* channel(int i, int ch) const {
    return image(i) + static_cast<std::size_t>(ch) * shape.plane();
  }
  T& at(int i, int ch, int y, int x) const {
    return channel(i, ch)[static_cast<std::size_t>(y) * shape.w + x];
  }
  // Channels [c0, c0 + count) of every image: a strided view, used for fused concatenation.
  BasicView channels(int c0, int count) const {
    if (c0 < 0 || count < 0 || c0 + count > shape.c)
      fail_argument("View::channels: block [", c0, ", ", c0 + count, ") outside ", shape.c,
                    " channels");
    return BasicView(data + static_cast<std::size_t>(c0) * shape.plane(),
                     Shape{shape.n, count, shape.h, shape.w}, nstride);
  }
  // Images [n0, n0 + count).
  BasicView batch(int n0, int count) const {
    if (n0 < 0 || count < 0 || n0 + count > shape.n)
      fail_argument("View::batch: block [", n0, ", ", n0 + count, ") outside ", shape.n, " images");
    return BasicView(data + static_cast<std::size_t>(n0) * nstride,
                     Shape{count, shape.c, shape.h, shape.w}, nstride);
  }
};

template <class Dev = Cpu>
using View = BasicView<Dev, float>;
template <class Dev = Cpu>
using CView = BasicView<Dev, const float>;

template <class Dev = Cpu>
class Tensor {
 public:
  using device = Dev;
  Tensor() = default;
  explicit Tensor(Shape s) { resize(s); }
  Tensor(Shape s, float value) {
    resize(s);
    fill(value);
  }
  Tensor(const Tensor& o) : Tensor(o.shape_) {
    DeviceMemory<Dev>::copy(data_.get(), o.data(), size());
  }
  Tensor(Tensor&&) noexcept = default;
  Tensor& operator=(Tensor&&) noexcept = default;
  Tensor& operator=(const Tensor& o) {
    if (this != &o) {
      resize(o.shape_);
      DeviceMemory<Dev>::copy(data_.get(), o.data(), size());
    }
    return *this;
  }
  // Deep copy from a (possibly strided) view of the same device.
  static Tensor from(CView<Dev> v) {
    Tensor t(v.shape);
    for (int i = 0; i < v.shape.n; ++i)
      DeviceMemory<Dev>::copy(t.data() + i * v.shape.image_size(), v.image(i),
                              v.shape.image_size());
    return t;
  }

  // Reallocates only when the element count grows; contents are unspecified afterwards.
  void resize(Shape s) {
    if (s.n < 0 || s.c < 0 || s.h < 0 || s.w < 0) fail_argument("Tensor: negative shape ", s.str());
    if (s.size() > capacity_) {
      data_.reset(DeviceMemory<Dev>::allocate(s.size()));
      capacity_ = s.size();
    }
    shape_ = s;
  }
  void fill(float value) { DeviceMemory<Dev>::fill(data_.get(), size(), value); }
  void zero() { fill(0.0f); }

  // This tensor becomes a copy of a host tensor (same shape, same values bit for bit).
  void copy_from_host(const Tensor<Cpu>& host) {
    resize(host.shape());
    DeviceMemory<Dev>::upload(data(), host.data(), size());
  }
  // `host` becomes a copy of this tensor (waits for the device work that produces it).
  void copy_to_host(Tensor<Cpu>& host) const {
    host.resize(shape_);
    DeviceMemory<Dev>::download(host.data(), data(), size());
  }
  Tensor<Cpu> to_host() const {
    Tensor<Cpu> host;
    copy_to_host(host);
    return host;
  }

  const Shape& shape() const { return shape_; }
  std::size_t size() const { return shape_.size(); }
  bool empty() const { return size() == 0; }
  float* data() { return data_.get(); }
  const float* data() const { return data_.get(); }
  float* begin() { return data(); }
  float* end() { return data() + size(); }
  const float* begin() const { return data(); }
  const float* end() const { return data() + size(); }
  float& operator[](std::size_t i) { return data_.get()[i]; }
  float operator[](std::size_t i) const { return data_.get()[i]; }
  float& at(int i, int ch, int y, int x) { return view().at(i, ch, y, x); }
  float at(int i, int ch, int y, int x) const { return cview().at(i, ch, y, x); }

  View<Dev> view() { return View<Dev>(data(), shape_); }
  CView<Dev> view() const { return CView<Dev>(data(), shape_); }
  CView<Dev> cview() const { return CView<Dev>(data(), shape_); }
  operator View<Dev>() { return view(); }
  operator CView<Dev>() const { return cview(); }

 private:
  struct Free {
    void operator()(float* p) const { DeviceMemory<Dev>::free(p); }
  };
  Shape shape_{};
  std::size_t capacity_ = 0;
  std::unique_ptr<float, Free> data_;
};

}  // namespace unetsrnn
