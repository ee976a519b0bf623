#pragma once
// CUDA bodies of the convolutions (contracts in ops/ops.hpp). Every convolution is a matrix
// product per image over (channels x pixels), P = H * W, done by cuBLAS in float32 (no TF32):
//   conv forward          Y  (Cout x P)         = W  (Cout x Cin k k) * im2col(X) (Cin k k x P)
//   conv backward data    dX (Cin x P)        (+)= W~ (Cin x Cout k k) * im2col(dY), W~ the
//                                                  flipped kernel: a 'same' convolution of dY
//   conv backward params  dW (Cout x Cin k k)  += sum_n dY_n (Cout x P) * im2col(X_n)^T
//   transposed 2x2 conv   T  (4 Cout x P)       = W^T * X, scattered to the four output phases;
//                         its backward gathers the phases of dY (D, 4 Cout x P) first.
// A 1x1 kernel reads X (or dY) in place; otherwise im2col fills the layer's scratch tensor, a few
// images at a time so that the scratch stays below conv_chunk_floats. Images are independent
// matrices at a fixed batch stride, so one strided-batched GEMM covers a chunk and writes straight
// into (possibly strided channel-block) output views.
//
// cuBLAS is column-major: a row-major (r x c) matrix with row length ld is, to cuBLAS, the
// column-major (c x r) matrix with leading dimension ld, i.e. its transpose. So a row-major product
// C = A * B is issued as C^T = B^T * A^T with the operands' memory unchanged.
#include <cstddef>

#include "unetsrnn/ops/cuda/memory.cuh"
#include "unetsrnn/ops/cuda/pointwise.cuh"
#include "unetsrnn/ops/types.hpp"
#include "unetsrnn/tensor/tensor.hpp"

namespace unetsrnn::cuda {

// Upper bound, in floats, of the im2col / phase buffer one convolution keeps in its scratch; a
// chunk holds at least one image whatever this says. Tests lower it to exercise chunking.
inline std::size_t conv_chunk_floats = std::size_t{1} << 25;  // 128 MiB

namespace conv_detail {

// At least `count` floats of scratch (reallocated only when it must grow).
inline float* scratch_for(Tensor<Cuda>& scratch, std::size_t count) {
  constexpr std::size_t row = 1024;  // Shape's dimensions are ints: keep each well below 2^31
  if (scratch.size() < count)
    scratch.resize(Shape{1, 1, static_cast<int>((count + row - 1) / row), static_cast<int>(row)});
  return scratch.data();
}

// Images per chunk when each image needs `per_image` floats of buffer.
inline int images_per_chunk(int images, std::size_t per_image) {
  const std::size_t fit = per_image ? conv_chunk_floats / per_image : images;
  return static_cast<int>(fit < 1 ? 1 : (fit > static_cast<std::size_t>(images) ? images : fit));
}

inline std::size_t round_up(std::size_t floats) { return (floats + 63) / 64 * 64; }  // 256 bytes

// Column-major C (m x n) = alpha op(A) op(B) + beta C for `batch` matrices at fixed strides.
inline void gemm(const char* what, bool trans_a, bool trans_b, int m, int n, int k, const float* a,
                 int lda, long long stride_a, const float* b, int ldb, long long stride_b,
                 float beta, float* c, int ldc, long long stride_c, int batch) {
  if (m <= 0 || n <= 0 || batch <= 0) return;
  const float alpha = 1.0f;
  const cublasOperation_t op_a = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_b = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  if (batch == 1)
    check(cublasSgemm(cublas(), op_a, op_b, m, n, k, &alpha, a, lda, b, ldb, &beta, c, ldc), what);
  else
    check(cublasSgemmStridedBatched(cublas(), op_a, op_b, m, n, k, &alpha, a, lda, stride_a, b, ldb,
                                    stride_b, &beta, c, ldc, stride_c, batch),
          what);
}

// col[n][(c k + u) k + v][i W + j] = x[n, c, i + u - k/2, j + v - k/2] (zero outside the image)
// for `images` images of x starting at x.
template <class T>
__global__ void im2col_kernel(const T* x, std::size_t x_nstride, int C, int H, int W, int k,
                              int images, T* col) {
  const std::size_t P = static_cast<std::size_t>(H) * W;
  const std::size_t K = static_cast<std::size_t>(C) * k * k;
  const std::size_t total = static_cast<std::size_t>(images) * K * P;
  const int r = k / 2;
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  for (std::size_t t = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; t < total;
       t += stride) {
    const std::size_t p = t % P, row_index = t / P;
    const std::size_t kk = row_index % K, n = row_index / K;
    const int v = static_cast<int>(kk % k), u = static_cast<int>((kk / k) % k);
    const int c = static_cast<int>(kk / (static_cast<std::size_t>(k) * k));
    const int i = static_cast<int>(p / W) + u - r, j = static_cast<int>(p % W) + v - r;
    col[t] = (i >= 0 && i < H && j >= 0 && j < W)
                 ? x[n * x_nstride + (static_cast<std::size_t>(c) * H + i) * W + j]
                 : T(0);
  }
}

// flipped[c][o][u][v] = w[o][c][k-1-u][k-1-v]: the kernel of the 'same' convolution of dY that
// gives dX, as a row-major (Cin x Cout k k) matrix.
template <class T>
__global__ void flip_kernel(const T* w, int Cout, int Cin, int k, T* flipped) {
  const std::size_t kk = static_cast<std::size_t>(k) * k;
  const std::size_t total = static_cast<std::size_t>(Cout) * Cin * kk;
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  for (std::size_t t = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; t < total;
       t += stride) {
    const int v = static_cast<int>(t % k), u = static_cast<int>((t / k) % k);
    const std::size_t co = t / kk;  // c * Cout + o
    const int o = static_cast<int>(co % Cout), c = static_cast<int>(co / Cout);
    flipped[t] = w[((static_cast<std::size_t>(o) * Cin + c) * k + (k - 1 - u)) * k + (k - 1 - v)];
  }
}

// y[n, o, p] = act(y[n, o, p] + b[o]) over a (possibly strided) view.
template <bool Bias, bool Relu>
__global__ void bias_act_kernel(float* y, std::size_t y_nstride, int N, int C, std::size_t P,
                                const float* b) {
  const std::size_t image = static_cast<std::size_t>(C) * P;
  const std::size_t total = static_cast<std::size_t>(N) * image;
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  for (std::size_t t = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; t < total;
       t += stride) {
    const std::size_t n = t / image, e = t % image;
    float& d = y[n * y_nstride + e];
    float v = d;
    if constexpr (Bias) v += b[e / P];
    if constexpr (Relu) v = v > 0.0f ? v : 0.0f;
    d = v;
  }
}

// db[c] += sum over images and pixels of g[n, c, :]. One block per channel; a fixed reduction
// order, so results are deterministic.
template <int Threads>
__global__ void channel_sums_kernel(const float* g, std::size_t g_nstride, int N, std::size_t P,
                                    float* db) {
  __shared__ float partial[Threads];
  const int c = blockIdx.x;
  float sum = 0.0f;
  for (int n = 0; n < N; ++n) {
    const float* plane =
        g + static_cast<std::size_t>(n) * g_nstride + static_cast<std::size_t>(c) * P;
    for (std::size_t p = threadIdx.x; p < P; p += Threads) sum += plane[p];
  }
  partial[threadIdx.x] = sum;
  __syncthreads();
  for (int half = Threads / 2; half > 0; half /= 2) {
    if (static_cast<int>(threadIdx.x) < half) partial[threadIdx.x] += partial[threadIdx.x + half];
    __syncthreads();
  }
  if (threadIdx.x == 0) db[c] += partial[0];
}

inline void add_channel_sums(CView<Cuda> g, float* db, const char* what) {
  if (g.shape.c <= 0) return;
  constexpr int threads = 256;
  channel_sums_kernel<threads>
      <<<g.shape.c, threads>>>(g.data, g.nstride, g.shape.n, g.shape.plane(), db);
  check_launch(what);
}

// y (N x rows x P) (+)= a (rows x C k k) * im2col(x) per image: a 'same' k x k convolution of x
// (N, C, H, W) with the row-major matrix a, or, when a_transposed, with a^T where a is stored as a
// row-major (C k k x rows) matrix (used for k == 1 only).
inline void same_convolution(const char* what, CView<Cuda> x, const float* a, bool a_transposed,
                             int rows, int k, View<Cuda> y, bool accumulate, float* col) {
  const int N = x.shape.n, H = x.shape.h, W = x.shape.w, C = x.shape.c;
  const int P = H * W, K = C * k * k;
  if (N <= 0 || P <= 0 || rows <= 0) return;
  if (K <= 0) {  // an empty sum
    if (!accumulate) fill(y, 0.0f);
    return;
  }
  const float beta = accumulate ? 1.0f : 0.0f;
  const int ldb = a_transposed ? rows : K;
  const auto ns = [](std::size_t s) { return static_cast<long long>(s); };
  if (k == 1) {  // im2col(x) is x itself
    gemm(what, false, a_transposed, P, rows, K, x.data, P, ns(x.nstride), a, ldb, 0, beta, y.data,
         P, ns(y.nstride), N);
    return;
  }
  const std::size_t per_image = static_cast<std::size_t>(K) * P;
  const int chunk = images_per_chunk(N, per_image);
  for (int n0 = 0; n0 < N; n0 += chunk) {
    const int count = N - n0 < chunk ? N - n0 : chunk;
    const std::size_t total = per_image * count;
    im2col_kernel<float>
        <<<grid_for(total), kBlock>>>(x.image(n0), x.nstride, C, H, W, k, count, col);
    check_launch(what);
    gemm(what, false, a_transposed, P, rows, K, col, P, ns(per_image), a, ldb, 0, beta, y.image(n0),
         P, ns(y.nstride), count);
  }
}

// D[n][(o 4 + u 2 + v) P + i W + j] = dy[n, o, 2i + u, 2j + v]: the four phases of dy as rows.
template <class T>
__global__ void gather_phases_kernel(const T* dy, std::size_t dy_nstride, int Cout, int H, int W,
                                     int images, T* phases) {
  const std::size_t P = static_cast<std::size_t>(H) * W;
  const std::size_t total = static_cast<std::size_t>(images) * Cout * 4 * P;
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  for (std::size_t t = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; t < total;
       t += stride) {
    const std::size_t p = t % P, row_index = t / P;
    const int r = static_cast<int>(row_index % (4 * static_cast<std::size_t>(Cout)));
    const std::size_t n = row_index / (4 * static_cast<std::size_t>(Cout));
    const int o = r / 4, u = (r / 2) % 2, v = r % 2;
    const int i = static_cast<int>(p / W), j = static_cast<int>(p % W);
    phases[t] =
        dy[n * dy_nstride + (static_cast<std::size_t>(o) * 2 * H + 2 * i + u) * 2 * W + 2 * j + v];
  }
}

// y[n, o, 2i + u, 2j + v] = T[n][(o 4 + u 2 + v) P + i W + j] + b[o]: the inverse of the gather.
template <bool Bias>
__global__ void scatter_phases_kernel(const float* phases, int Cout, int H, int W, int images,
                                      const float* b, float* y, std::size_t y_nstride) {
  const std::size_t P = static_cast<std::size_t>(H) * W;
  const std::size_t out_image = static_cast<std::size_t>(Cout) * 4 * P;
  const std::size_t total = static_cast<std::size_t>(images) * out_image;
  const int W2 = 2 * W;
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  for (std::size_t t = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; t < total;
       t += stride) {
    // t walks y in order (n, o, row, column), so the writes are coalesced.
    const std::size_t n = t / out_image, e = t % out_image;
    const int q = static_cast<int>(e % W2);
    const std::size_t rest = e / W2;
    const int row = static_cast<int>(rest % (2 * static_cast<std::size_t>(H)));
    const int o = static_cast<int>(rest / (2 * static_cast<std::size_t>(H)));
    const int i = row / 2, u = row % 2, j = q / 2, v = q % 2;
    const float s = phases[n * out_image + (static_cast<std::size_t>(o) * 4 + u * 2 + v) * P +
                           static_cast<std::size_t>(i) * W + j];
    if constexpr (Bias)
      y[n * y_nstride + e] = s + b[o];
    else
      y[n * y_nstride + e] = s + 0.0f;  // as the CPU adds its zero bias
  }
}

}  // namespace conv_detail

// ---------------------------------------------------------------------------------- the ops
inline void conv2d_forward(CView<Cuda> x, CView<Cuda> w, CView<Cuda> b, View<Cuda> y, Act act,
                           Tensor<Cuda>& scratch) {
  using namespace conv_detail;
  const int k = w.shape.h, K = x.shape.c * k * k, N = x.shape.n, P = x.shape.h * x.shape.w;
  if (N <= 0 || P <= 0 || y.shape.c <= 0) return;
  float* col = nullptr;
  if (k > 1)
    col = scratch_for(scratch, static_cast<std::size_t>(K) * P *
                                   images_per_chunk(N, static_cast<std::size_t>(K) * P));
  same_convolution("cuda::conv2d_forward", x, w.data, false, y.shape.c, k, y, false, col);
  const bool relu = act == Act::Relu;
  if (!b.data && !relu) return;
  const std::size_t total = y.shape.size();
  const unsigned grid = grid_for(total);
  const int C = y.shape.c;
  const std::size_t plane = y.shape.plane();
  if (b.data && relu)
    bias_act_kernel<true, true><<<grid, kBlock>>>(y.data, y.nstride, N, C, plane, b.data);
  else if (b.data)
    bias_act_kernel<true, false><<<grid, kBlock>>>(y.data, y.nstride, N, C, plane, b.data);
  else
    bias_act_kernel<false, true><<<grid, kBlock>>>(y.data, y.nstride, N, C, plane, nullptr);
  check_launch("cuda::conv2d_forward (bias, activation)");
}

inline void conv2d_backward_data(CView<Cuda> dy, CView<Cuda> w, View<Cuda> dx, bool accumulate,
                                 Tensor<Cuda>& scratch) {
  using namespace conv_detail;
  const char* what = "cuda::conv2d_backward_data";
  const int k = w.shape.h, Cin = dx.shape.c, Cout = dy.shape.c, N = dy.shape.n;
  const int P = dy.shape.h * dy.shape.w, K = Cout * k * k;
  if (N <= 0 || P <= 0 || Cin <= 0) return;
  if (k == 1) {  // dX = W^T dY, W (Cout x Cin) read as stored
    same_convolution(what, dy, w.data, true, Cin, 1, dx, accumulate, nullptr);
    return;
  }
  const std::size_t flipped_floats = round_up(w.shape.size());
  const std::size_t per_image = static_cast<std::size_t>(K) * P;
  float* space = scratch_for(scratch, flipped_floats + per_image * images_per_chunk(N, per_image));
  flip_kernel<float><<<grid_for(w.shape.size()), kBlock>>>(w.data, Cout, Cin, k, space);
  check_launch(what);
  same_convolution(what, dy, space, false, Cin, k, dx, accumulate, space + flipped_floats);
}

inline void conv2d_backward_params(CView<Cuda> x, CView<Cuda> dy, View<Cuda> dw, View<Cuda> db,
                                   Tensor<Cuda>& scratch) {
  using namespace conv_detail;
  const char* what = "cuda::conv2d_backward_params";
  const int k = dw.shape.h, Cout = dy.shape.c, C = x.shape.c, N = x.shape.n;
  const int H = x.shape.h, W = x.shape.w, P = H * W, K = C * k * k;
  if (N <= 0 || P <= 0) return;
  if (db.data) add_channel_sums(dy, db.data, what);
  if (K <= 0 || Cout <= 0) return;
  // dW^T (K x Cout, column-major) += im2col(X_n) (K x P) * dY_n^T (P x Cout), image after image.
  if (k == 1) {
    for (int n = 0; n < N; ++n)
      gemm(what, true, false, K, Cout, P, x.image(n), P, 0, dy.image(n), P, 0, 1.0f, dw.data, K, 0,
           1);
    return;
  }
  const std::size_t per_image = static_cast<std::size_t>(K) * P;
  const int chunk = images_per_chunk(N, per_image);
  float* col = scratch_for(scratch, per_image * chunk);
  for (int n0 = 0; n0 < N; n0 += chunk) {
    const int count = N - n0 < chunk ? N - n0 : chunk;
    im2col_kernel<float>
        <<<grid_for(per_image * count), kBlock>>>(x.image(n0), x.nstride, C, H, W, k, count, col);
    check_launch(what);
    for (int n = 0; n < count; ++n)
      gemm(what, true, false, K, Cout, P, col + per_image * n, P, 0, dy.image(n0 + n), P, 0, 1.0f,
           dw.data, K, 0, 1);
  }
}

// Per chunk of images: T (4 Cout x P) = W^T X into the scratch, then scattered to y's phases.
inline void conv_transpose2x2_forward(CView<Cuda> x, CView<Cuda> w, CView<Cuda> b, View<Cuda> y,
                                      Tensor<Cuda>& scratch) {
  using namespace conv_detail;
  const char* what = "cuda::conv_transpose2x2_forward";
  const int Cin = x.shape.c, Cout = y.shape.c, H = x.shape.h, W = x.shape.w, N = x.shape.n;
  const int P = H * W, rows4 = 4 * Cout;
  if (N <= 0 || P <= 0 || Cout <= 0) return;
  const std::size_t per_image = static_cast<std::size_t>(rows4) * P;
  const int chunk = images_per_chunk(N, per_image);
  float* phases = scratch_for(scratch, per_image * chunk);
  for (int n0 = 0; n0 < N; n0 += chunk) {
    const int count = N - n0 < chunk ? N - n0 : chunk;
    if (Cin > 0)
      // T^T (P x 4 Cout) = X^T (P x Cin) * W (Cin x 4 Cout); w is row-major (Cin x 4 Cout).
      gemm(what, false, true, P, rows4, Cin, x.image(n0), P, static_cast<long long>(x.nstride),
           w.data, rows4, 0, 0.0f, phases, P, static_cast<long long>(per_image), count);
    else
      DeviceMemory<Cuda>::fill(phases, per_image * count, 0.0f);
    const std::size_t total = per_image * count;
    if (b.data)
      scatter_phases_kernel<true>
          <<<grid_for(total), kBlock>>>(phases, Cout, H, W, count, b.data, y.image(n0), y.nstride);
    else
      scatter_phases_kernel<false>
          <<<grid_for(total), kBlock>>>(phases, Cout, H, W, count, nullptr, y.image(n0), y.nstride);
    check_launch(what);
  }
}

// dX (Cin x P) (+)= W (Cin x 4 Cout) * D (4 Cout x P), D the phases of dy.
inline void conv_transpose2x2_backward_data(CView<Cuda> dy, CView<Cuda> w, View<Cuda> dx,
                                            bool accumulate, Tensor<Cuda>& scratch) {
  using namespace conv_detail;
  const char* what = "cuda::conv_transpose2x2_backward_data";
  const int Cin = dx.shape.c, Cout = dy.shape.c, H = dx.shape.h, W = dx.shape.w, N = dx.shape.n;
  const int P = H * W, rows4 = 4 * Cout;
  if (N <= 0 || P <= 0 || Cin <= 0) return;
  if (Cout <= 0) {
    if (!accumulate) fill(dx, 0.0f);
    return;
  }
  const std::size_t per_image = static_cast<std::size_t>(rows4) * P;
  const int chunk = images_per_chunk(N, per_image);
  float* phases = scratch_for(scratch, per_image * chunk);
  for (int n0 = 0; n0 < N; n0 += chunk) {
    const int count = N - n0 < chunk ? N - n0 : chunk;
    gather_phases_kernel<float><<<grid_for(per_image * count), kBlock>>>(dy.image(n0), dy.nstride,
                                                                         Cout, H, W, count, phases);
    check_launch(what);
    // dX^T (P x Cin) = D^T (P x 4 Cout) * W^T (4 Cout x Cin).
    gemm(what, false, false, P, Cin, rows4, phases, P, static_cast<long long>(per_image), w.data,
         rows4, 0, accumulate ? 1.0f : 0.0f, dx.image(n0), P, static_cast<long long>(dx.nstride),
         count);
  }
}

// dW (Cin x 4 Cout) += sum_n X_n (Cin x P) * D_n^T (P x 4 Cout); db[o] += sum of dy[o].
inline void conv_transpose2x2_backward_params(CView<Cuda> x, CView<Cuda> dy, View<Cuda> dw,
                                              View<Cuda> db, Tensor<Cuda>& scratch) {
  using namespace conv_detail;
  const char* what = "cuda::conv_transpose2x2_backward_params";
  const int Cin = x.shape.c, Cout = dy.shape.c, H = x.shape.h, W = x.shape.w, N = x.shape.n;
  const int P = H * W, rows4 = 4 * Cout;
  if (N <= 0 || P <= 0 || Cout <= 0) return;
  if (db.data) add_channel_sums(dy, db.data, what);
  if (Cin <= 0) return;
  const std::size_t per_image = static_cast<std::size_t>(rows4) * P;
  const int chunk = images_per_chunk(N, per_image);
  float* phases = scratch_for(scratch, per_image * chunk);
  for (int n0 = 0; n0 < N; n0 += chunk) {
    const int count = N - n0 < chunk ? N - n0 : chunk;
    gather_phases_kernel<float><<<grid_for(per_image * count), kBlock>>>(dy.image(n0), dy.nstride,
                                                                         Cout, H, W, count, phases);
    check_launch(what);
    // dW^T (4 Cout x Cin, column-major) += D_n (4 Cout x P) * X_n^T (P x Cin).
    for (int n = 0; n < count; ++n)
      gemm(what, true, false, rows4, Cin, P, phases + per_image * n, P, 0, x.image(n0 + n), P, 0,
           1.0f, dw.data, rows4, 0, 1);
  }
}

}  // namespace unetsrnn::cuda
