#pragma once
// The portable path's convolutions (ops/cpu/isa.hpp): the products of ops/cpu/conv.hpp through
// Eigen's GEMM, which vectorises for whatever the compiler targets (SSE2, NEON, AVX with -march),
// on our own memory: B operands are the input planes in place (1x1 kernels, the transposed
// convolution's input) or blocks of im2col / phase rows packed row-major. The row sources, thin
// products and rearrangements are the shared ones of conv_kernels.hpp (namespace
// cpu::portable::conv_detail).
//
// Eigen is driven through its blocked product, internal::general_matrix_matrix_product, with a
// blocking whose pack buffers are the op's scratch: the expression API (Map * Map) allocates them
// on the heap above 128 KiB and may start its own OpenMP team, and a warm training step must not
// allocate. Each call is sequential; the threads split the op into pixel blocks (or column ranges
// of a weight gradient) as the SIMD paths do. Eigen's result for an element depends on where it
// falls in its micro-panels (the remainders accumulate differently), so the blocks and ranges
// here are fixed, never sized by the thread count: results do not depend on it.
#include <algorithm>
#include <cstddef>

#include "unetsrnn/ops/cpu/eigen.hpp"

namespace unetsrnn::cpu::portable {
namespace conv_detail {

// A matrix operand in memory: element (r, c) at data[r * row_step + c * col_step], one of the two
// steps being 1 (row-major or column-major).
struct Operand {
  const float* data;
  std::ptrdiff_t row_step, col_step;
};

constexpr int kGemmRows = 256;  // rows of C per Eigen call: its packed right operand stays in L2
constexpr int kGradientPixels = kMaxDepth;  // reduction positions per weight-gradient call
constexpr int kGradientColumns = 64;        // columns of a weight gradient per unit

// Eigen's pack buffers for one call of at most `depth` x (kGemmRows + cols), per thread.
inline std::size_t gemm_floats(int depth, int cols) {
  return round_to_line(static_cast<std::size_t>(depth) * kGemmRows) +
         round_to_line(static_cast<std::size_t>(depth) * cols);
}

class GemmBlocking : public Eigen::internal::level3_blocking<float, float> {
 public:
  GemmBlocking(float* block_a, float* block_b, Eigen::Index mc, Eigen::Index nc, Eigen::Index kc) {
    this->m_blockA = block_a, this->m_blockB = block_b;
    this->m_mc = mc, this->m_nc = nc, this->m_kc = kc;
  }
};

template <int AOrder, int BOrder>
void eigen_product(int M, int N, int K, const float* a, std::ptrdiff_t lda, const float* b,
                   std::ptrdiff_t ldb, float* c, std::ptrdiff_t ldc, float* buffer) {
  // A row-major result is computed as its transpose, column-major: Eigen's left operand is then
  // our B (its pack holds K x N floats), its right operand our A (K x M, M <= kGemmRows).
  float* pack_a = buffer;
  float* pack_b = buffer + round_to_line(static_cast<std::size_t>(K) * kGemmRows);
  GemmBlocking blocking(pack_b, pack_a, N, M, K);
  Eigen::internal::general_matrix_matrix_product<Eigen::Index, float, AOrder, false, float, BOrder,
                                                 false, Eigen::RowMajor, 1>::run(M, N, K, a, lda, b,
                                                                                 ldb, c, 1, ldc,
                                                                                 1.0f, blocking);
}

// C (M x N, rows ldc apart) += A (M x K) * B (K x N), K <= kMaxDepth and N <= the `cols` of
// gemm_floats, in calls of at most kGemmRows rows of C.
inline void gemm(int M, int N, int K, Operand a, Operand b, float* c, std::size_t ldc,
                 float* buffer) {
  if (M <= 0 || N <= 0 || K <= 0) return;
  const bool a_rows = a.col_step == 1, b_rows = b.col_step == 1;
  const std::ptrdiff_t lda = a_rows ? a.row_step : a.col_step;
  const std::ptrdiff_t ldb = b_rows ? b.row_step : b.col_step;
  const auto ldc_ = static_cast<std::ptrdiff_t>(ldc);
  for (int m0 = 0; m0 < M; m0 += kGemmRows) {
    const int m = std::min(kGemmRows, M - m0);
    const float* am = a.data + m0 * a.row_step;
    float* cm = c + static_cast<std::size_t>(m0) * ldc;
    if (a_rows && b_rows)
      eigen_product<Eigen::RowMajor, Eigen::RowMajor>(m, N, K, am, lda, b.data, ldb, cm, ldc_,
                                                      buffer);
    else if (a_rows)
      eigen_product<Eigen::RowMajor, Eigen::ColMajor>(m, N, K, am, lda, b.data, ldb, cm, ldc_,
                                                      buffer);
    else if (b_rows)
      eigen_product<Eigen::ColMajor, Eigen::RowMajor>(m, N, K, am, lda, b.data, ldb, cm, ldc_,
                                                      buffer);
    else
      eigen_product<Eigen::ColMajor, Eigen::ColMajor>(m, N, K, am, lda, b.data, ldb, cm, ldc_,
                                                      buffer);
  }
}

// How a product's B is found for a pixel block: the planes of an image in place (1x1 kernels),
// or rows of a source packed row-major (depth block x block pixels) into `pack`.
template <class Rows>
struct PackedRows {
  Rows rows;
  float* pack;
  Operand operand(int k0, int kc, const PixelBlock& blk) const {
    const int i0 = blk.p0 / blk.W, j0 = blk.p0 % blk.W;
    for (int k = 0; k < kc; ++k)
      fill_pixels(rows.row(k0 + k), blk.W, i0, j0, blk.count,
                  pack + static_cast<std::size_t>(k) * blk.count);
    return Operand{pack, blk.count, 1};
  }
};
struct PlanesInPlace {
  const float* image;
  std::size_t plane;
  Operand operand(int k0, int, const PixelBlock& blk) const {
    return Operand{image + static_cast<std::size_t>(k0) * plane + blk.p0,
                   static_cast<std::ptrdiff_t>(plane), 1};
  }
};

// Per thread: a packed B block (when packed) and Eigen's buffers.
inline std::size_t product_floats(int depth, bool packed) {
  return (packed ? round_to_line(static_cast<std::size_t>(depth_block(depth)) * kBlockPixels) : 0) +
         gemm_floats(depth_block(depth), kBlockPixels);
}

// out[m * ldo + t] for t < blk.count = epilogue of sum_k A[m][k] * B[k][p0 + t], by reduction
// blocks of at most kMaxDepth rows; `buffer` holds gemm_floats.
template <class B>
void product_block(const MatrixA& a, const B& b, const PixelBlock& blk, float* out, std::size_t ldo,
                   const Epilogue& ep, float* buffer) {
  if (ep.first != Start::Load)
    for (int m = 0; m < a.rows; ++m) {
      const float start = ep.first == Start::Bias ? ep.bias[m] : 0.0f;
      std::fill(out + static_cast<std::size_t>(m) * ldo,
                out + static_cast<std::size_t>(m) * ldo + blk.count, start);
    }
  const int kc_max = depth_block(a.depth);
  for (int k0 = 0; k0 < a.depth; k0 += kc_max) {
    const int kc = std::min(kc_max, a.depth - k0);
    gemm(a.rows, blk.count, kc, Operand{a.at(0, k0), a.row_step, a.col_step},
         b.operand(k0, kc, blk), out, ldo, buffer);
  }
  if (ep.relu)
    for (int m = 0; m < a.rows; ++m) {
      float* o = out + static_cast<std::size_t>(m) * ldo;
      for (int t = 0; t < blk.count; ++t) o[t] = o[t] > 0.0f ? o[t] : 0.0f;
    }
}

// Y (Cout x P per image) (+)= epilogue of A * im2col_k(X): the conv forward and backward data.
inline void convolve(const MatrixA& a, CView<Cpu> x, int k, View<Cpu> y, const Epilogue& ep,
                     Tensor<Cpu>& scratch, std::size_t shared) {
  const int N = x.shape.n, H = x.shape.h, W = x.shape.w;
  const std::size_t plane = x.shape.plane(), ldo = y.shape.plane();
  const bool packed = k > 1;
  const Workspace ws = workspace(scratch, shared, product_floats(a.depth, packed));
  const std::size_t gemm_at =
      packed ? round_to_line(static_cast<std::size_t>(depth_block(a.depth)) * kBlockPixels) : 0;
  for_each_pixel_block(N, H * W, W, kBlockPixels, [&](int n, PixelBlock blk, int t) {
    float* slice = ws.per_thread(t);
    float* out = y.image(n) + blk.p0;
    if (packed)
      product_block(a, PackedRows<Im2colRows>{Im2colRows{x.image(n), plane, H, W, k}, slice}, blk,
                    out, ldo, ep, slice + gemm_at);
    else
      product_block(a, PlanesInPlace{x.image(n), plane}, blk, out, ldo, ep, slice);
  });
}

// C (M x count, rows ldc apart) += sum over images n and pixels p of A_n[m][p] * B_n[c][p]: A_n's
// rows the planes of `a` (dY, or X of the transposed convolution), B_n's rows `count` rows of the
// row source b_rows(n), packed per block of pixels. The units are column ranges of C, each summing
// its columns over every image and block in order.
template <class BRows>
void gradient_product(CView<Cpu> a, int count, BRows&& b_rows, float* c, std::size_t ldc,
                      Tensor<Cpu>& scratch) {
  const int M = a.shape.c, N = a.shape.n, W = a.shape.w, P = static_cast<int>(a.shape.plane());
  const int cols = kGradientColumns, ranges = (count + cols - 1) / cols;
  const std::size_t pack = round_to_line(static_cast<std::size_t>(cols) * kGradientPixels);
  const Workspace ws = workspace(scratch, 0, pack + gemm_floats(kGradientPixels, cols));
  parallel_for_dynamic(ranges, true, [&](long long range) {
    const int c0 = static_cast<int>(range) * cols, c1 = std::min(count, c0 + cols);
    if (c0 >= c1) return;
    float* slice = ws.per_thread(thread_id());
    for (int n = 0; n < N; ++n) {
      const auto rows = b_rows(n);
      for (int p0 = 0; p0 < P; p0 += kGradientPixels) {
        const int np = std::min(kGradientPixels, P - p0);
        for (int r = c0; r < c1; ++r)
          fill_pixels(rows.row(r), W, p0 / W, p0 % W, np,
                      slice + static_cast<std::size_t>(r - c0) * np);
        const Operand am{a.image(n) + p0, static_cast<std::ptrdiff_t>(a.shape.plane()), 1};
        gemm(M, c1 - c0, np, am, Operand{slice, 1, np}, c + c0, ldc, slice + pack);
      }
    }
  });
}

// ---------------------------------------------------------------------------------- the ops
inline void conv2d_forward(CView<Cpu> x, CView<Cpu> w, CView<Cpu> b, View<Cpu> y, Act act,
                           Tensor<Cpu>& scratch) {
  const int k = w.shape.h, K = x.shape.c * k * k;
  const MatrixA a{w.data, K, 1, y.shape.c, K};
  const Epilogue ep{b.data ? Start::Bias : Start::Zero, b.data, act == Act::Relu};
  if (is_thin(k, a)) return thin_product(a, x, y, ep);
  convolve(a, x, k, y, ep, scratch, 0);
}

inline void conv2d_backward_data(CView<Cpu> dy, CView<Cpu> w, View<Cpu> dx, bool accumulate,
                                 Tensor<Cpu>& scratch) {
  const int k = w.shape.h, Cin = dx.shape.c, K = dy.shape.c * k * k;
  const Epilogue ep{accumulate ? Start::Load : Start::Zero, nullptr, false};
  const MatrixA transposed{w.data, 1, Cin, Cin, K};  // k == 1: W^T
  if (is_thin(k, transposed)) return thin_product(transposed, dy, dx, ep);
  if (k == 1) return convolve(transposed, dy, 1, dx, ep, scratch, 0);
  // The flipped kernel lives in the scratch's shared part, ahead of the per-thread slices.
  const std::size_t flipped = round_to_line(w.shape.size());
  const Workspace ws = workspace(scratch, flipped, product_floats(K, true));
  flip_kernel(w, ws.shared);
  convolve(MatrixA{ws.shared, K, 1, Cin, K}, dy, k, dx, ep, scratch, flipped);
}

inline void conv2d_backward_params(CView<Cpu> x, CView<Cpu> dy, View<Cpu> dw, View<Cpu> db,
                                   Tensor<Cpu>& scratch) {
  const int k = dw.shape.h, K = x.shape.c * k * k;
  if (k == 1 && dy.shape.c <= kThinRows) {
    thin_gradient(x, dy, dw.data);
  } else {
    const int H = x.shape.h, W = x.shape.w;
    gradient_product(
        dy, K,
        [&](int n) {
          return Im2colRows{x.image(n), x.shape.plane(), H, W, k};
        },
        dw.data, static_cast<std::size_t>(K), scratch);
  }
  if (db.data) add_channel_sums(dy, db.data);
}

inline void conv_transpose2x2_forward(CView<Cpu> x, CView<Cpu> w, CView<Cpu> b, View<Cpu> y,
                                      Tensor<Cpu>& scratch) {
  const int Cin = x.shape.c, rows4 = 4 * y.shape.c, N = x.shape.n, H = x.shape.h, W = x.shape.w;
  const MatrixA a{w.data, 1, rows4, rows4, Cin};  // W^T: w is (Cin x 4 Cout)
  const std::size_t tile = round_to_line(static_cast<std::size_t>(rows4) * kBlockPixels);
  const Workspace ws = workspace(scratch, 0, tile + product_floats(Cin, false));
  const Epilogue ep{Start::Zero, nullptr, false};
  for_each_pixel_block(N, H * W, W, kBlockPixels, [&](int n, PixelBlock blk, int t) {
    float* slice = ws.per_thread(t);
    product_block(a, PlanesInPlace{x.image(n), x.shape.plane()}, blk, slice, kBlockPixels, ep,
                  slice + tile);
    scatter_phases(slice, kBlockPixels, b.data, blk, W, y, n);
  });
}

inline void conv_transpose2x2_backward_data(CView<Cpu> dy, CView<Cpu> w, View<Cpu> dx,
                                            bool accumulate, Tensor<Cpu>& scratch) {
  const int Cin = dx.shape.c, rows4 = 4 * dy.shape.c, N = dx.shape.n, H = dx.shape.h;
  const int W = dx.shape.w;
  const MatrixA a{w.data, rows4, 1, Cin, rows4};
  const Epilogue ep{accumulate ? Start::Load : Start::Zero, nullptr, false};
  const Workspace ws = workspace(scratch, 0, product_floats(rows4, true));
  const std::size_t gemm_at =
      round_to_line(static_cast<std::size_t>(depth_block(rows4)) * kBlockPixels);
  for_each_pixel_block(N, H * W, W, kBlockPixels, [&](int n, PixelBlock blk, int t) {
    float* slice = ws.per_thread(t);
    product_block(a, PackedRows<PhaseRows>{PhaseRows{dy.image(n), dy.shape.plane(), W}, slice}, blk,
                  dx.image(n) + blk.p0, dx.shape.plane(), ep, slice + gemm_at);
  });
}

inline void conv_transpose2x2_backward_params(CView<Cpu> x, CView<Cpu> dy, View<Cpu> dw,
                                              View<Cpu> db, Tensor<Cpu>& scratch) {
  const int rows4 = 4 * dy.shape.c, W = x.shape.w;
  gradient_product(
      x, rows4,
      [&](int n) {
        return PhaseRows{dy.image(n), dy.shape.plane(), W};
      },
      dw.data, static_cast<std::size_t>(rows4), scratch);
  if (db.data) add_channel_sums(dy, db.data);
}

}  // namespace conv_detail

using conv_detail::conv2d_backward_data;
using conv_detail::conv2d_backward_params;
using conv_detail::conv2d_forward;
using conv_detail::conv_transpose2x2_backward_data;
using conv_detail::conv_transpose2x2_backward_params;
using conv_detail::conv_transpose2x2_forward;

}  // namespace unetsrnn::cpu::portable
