#pragma once
// CPU bodies of the convolutions (contracts in ops/ops.hpp): im2col + Eigen GEMM on one image at a
// time. Weights are (Cout, Cin, k, k) row-major, i.e. a (Cout x Cin*k*k) matrix that GEMM reads as is.
#include <Eigen/Core>
#include <cstddef>

#include "unetsrnn/ops/types.hpp"
#include "unetsrnn/tensor/tensor.hpp"

namespace unetsrnn::cpu {

using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using CMatMap = Eigen::Map<const RowMat>;
using MutMap = Eigen::Map<RowMat>;

inline float* scratch_for(Tensor<Cpu>& scratch, std::size_t count) {
  if (scratch.size() < count) scratch.resize(Shape{1, 1, 1, static_cast<int>(count)});
  return scratch.data();
}

// col[(c*k + u)*k + v][i*W + j] = x[c, i+u-k/2, j+v-k/2] (zero outside).
inline void im2col(const float* x, int C, int H, int W, int k, float* col) {
  const int r = k / 2;
  for (int c = 0; c < C; ++c)
    for (int u = 0; u < k; ++u)
      for (int v = 0; v < k; ++v) {
        float* dst = col + static_cast<std::size_t>((c * k + u) * k + v) * H * W;
        const float* src = x + static_cast<std::size_t>(c) * H * W;
        const int dj = v - r;
        const int j0 = dj < 0 ? -dj : 0, j1 = dj > 0 ? W - dj : W;
        for (int i = 0; i < H; ++i) {
          float* d = dst + static_cast<std::size_t>(i) * W;
          const int si = i + u - r;
          if (si < 0 || si >= H) {
            for (int j = 0; j < W; ++j) d[j] = 0.0f;
            continue;
          }
          const float* s = src + static_cast<std::size_t>(si) * W + dj;
          for (int j = 0; j < j0; ++j) d[j] = 0.0f;
          for (int j = j0; j < j1; ++j) d[j] = s[j];
          for (int j = j1; j < W; ++j) d[j] = 0.0f;
        }
      }
}

// Adjoint of im2col: dx[c, i+u-r, j+v-r] += col[...].
inline void col2im_add(const float* col, int C, int H, int W, int k, float* dx) {
  const int r = k / 2;
  for (int c = 0; c < C; ++c)
    for (int u = 0; u < k; ++u)
      for (int v = 0; v < k; ++v) {
        const float* src = col + static_cast<std::size_t>((c * k + u) * k + v) * H * W;
        float* dst = dx + static_cast<std::size_t>(c) * H * W;
        const int dj = v - r;
        const int j0 = dj < 0 ? -dj : 0, j1 = dj > 0 ? W - dj : W;
        for (int i = 0; i < H; ++i) {
          const int si = i + u - r;
          if (si < 0 || si >= H) continue;
          const float* s = src + static_cast<std::size_t>(i) * W;
          float* d = dst + static_cast<std::size_t>(si) * W + dj;
          for (int j = j0; j < j1; ++j) d[j] += s[j];
        }
      }
}

inline void conv2d_forward(CView<Cpu> x, CView<Cpu> w, CView<Cpu> b, View<Cpu> y, Act act,
                           Tensor<Cpu>& scratch) {
  const int Cin = x.shape.c, Cout = y.shape.c, H = x.shape.h, W = x.shape.w, k = w.shape.h;
  const int HW = H * W, K = Cin * k * k;
  CMatMap Wm(w.data, Cout, K);
  float* col = k == 1 ? nullptr : scratch_for(scratch, static_cast<std::size_t>(K) * HW);
  for (int n = 0; n < x.shape.n; ++n) {
    const float* src = x.image(n);
    if (k != 1) {
      im2col(src, Cin, H, W, k, col);
      src = col;
    }
    MutMap Y(y.image(n), Cout, HW);
    Y.noalias() = Wm * CMatMap(src, K, HW);
    if (b.data) Y.colwise() += Eigen::Map<const Eigen::VectorXf>(b.data, Cout);
    if (act == Act::Relu) Y = Y.cwiseMax(0.0f);
  }
}

inline void conv2d_backward_data(CView<Cpu> dy, CView<Cpu> w, View<Cpu> dx, bool accumulate,
                                 Tensor<Cpu>& scratch) {
  const int Cin = dx.shape.c, Cout = dy.shape.c, H = dx.shape.h, W = dx.shape.w, k = w.shape.h;
  const int HW = H * W, K = Cin * k * k;
  CMatMap Wm(w.data, Cout, K);
  float* col = k == 1 ? nullptr : scratch_for(scratch, static_cast<std::size_t>(K) * HW);
  for (int n = 0; n < dy.shape.n; ++n) {
    CMatMap G(dy.image(n), Cout, HW);
    MutMap D(dx.image(n), Cin, HW);
    if (k == 1) {
      if (accumulate) D.noalias() += Wm.transpose() * G;
      else D.noalias() = Wm.transpose() * G;
      continue;
    }
    MutMap Col(col, K, HW);
    Col.noalias() = Wm.transpose() * G;
    if (!accumulate) D.setZero();
    col2im_add(col, Cin, H, W, k, dx.image(n));
  }
}

inline void conv2d_backward_params(CView<Cpu> x, CView<Cpu> dy, View<Cpu> dw, View<Cpu> db,
                                   Tensor<Cpu>& scratch) {
  const int Cin = x.shape.c, Cout = dy.shape.c, H = x.shape.h, W = x.shape.w, k = dw.shape.h;
  const int HW = H * W, K = Cin * k * k;
  MutMap dW(dw.data, Cout, K);
  float* col = k == 1 ? nullptr : scratch_for(scratch, static_cast<std::size_t>(K) * HW);
  for (int n = 0; n < x.shape.n; ++n) {
    const float* src = x.image(n);
    if (k != 1) {
      im2col(src, Cin, H, W, k, col);
      src = col;
    }
    CMatMap G(dy.image(n), Cout, HW);
    dW.noalias() += G * CMatMap(src, K, HW).transpose();
    if (db.data) Eigen::Map<Eigen::VectorXf>(db.data, Cout) += G.rowwise().sum();
  }
}

// Transposed 2x2 stride-2: per image, T (Cout*4 x HWin) = W^T (Cout*4 x Cin) * X (Cin x HWin),
// then T's rows (o, u, v) are scattered to y[o, 2i+u, 2j+v].
inline void conv_transpose2x2_forward(CView<Cpu> x, CView<Cpu> w, CView<Cpu> b, View<Cpu> y,
                                      Tensor<Cpu>& scratch) {
  const int Cin = x.shape.c, Cout = y.shape.c, H = x.shape.h, W = x.shape.w, HW = H * W;
  CMatMap Wm(w.data, Cin, Cout * 4);
  float* t = scratch_for(scratch, static_cast<std::size_t>(Cout) * 4 * HW);
  for (int n = 0; n < x.shape.n; ++n) {
    MutMap T(t, Cout * 4, HW);
    T.noalias() = Wm.transpose() * CMatMap(x.image(n), Cin, HW);
    for (int o = 0; o < Cout; ++o) {
      const float bias = b.data ? b.data[o] : 0.0f;
      float* d = y.channel(n, o);
      for (int u = 0; u < 2; ++u)
        for (int v = 0; v < 2; ++v) {
          const float* s = t + static_cast<std::size_t>(o * 4 + u * 2 + v) * HW;
          for (int i = 0; i < H; ++i)
            for (int j = 0; j < W; ++j) d[(2 * i + u) * 2 * W + 2 * j + v] = s[i * W + j] + bias;
        }
    }
  }
}

// Gathers dy's 2x2 phases into (Cout*4 x HWin) rows, the layout the transposed conv's GEMM uses.
inline void gather_phases(const float* dy, int Cout, int H, int W, float* t) {
  const int HW = H * W;
  for (int o = 0; o < Cout; ++o) {
    const float* s = dy + static_cast<std::size_t>(o) * 4 * HW;
    for (int u = 0; u < 2; ++u)
      for (int v = 0; v < 2; ++v) {
        float* d = t + static_cast<std::size_t>(o * 4 + u * 2 + v) * HW;
        for (int i = 0; i < H; ++i)
          for (int j = 0; j < W; ++j) d[i * W + j] = s[(2 * i + u) * 2 * W + 2 * j + v];
      }
  }
}

inline void conv_transpose2x2_backward_data(CView<Cpu> dy, CView<Cpu> w, View<Cpu> dx,
                                            bool accumulate, Tensor<Cpu>& scratch) {
  const int Cin = dx.shape.c, Cout = dy.shape.c, H = dx.shape.h, W = dx.shape.w, HW = H * W;
  CMatMap Wm(w.data, Cin, Cout * 4);
  float* t = scratch_for(scratch, static_cast<std::size_t>(Cout) * 4 * HW);
  for (int n = 0; n < dy.shape.n; ++n) {
    gather_phases(dy.image(n), Cout, H, W, t);
    MutMap D(dx.image(n), Cin, HW);
    if (accumulate) D.noalias() += Wm * CMatMap(t, Cout * 4, HW);
    else D.noalias() = Wm * CMatMap(t, Cout * 4, HW);
  }
}

inline void conv_transpose2x2_backward_params(CView<Cpu> x, CView<Cpu> dy, View<Cpu> dw,
                                              View<Cpu> db, Tensor<Cpu>& scratch) {
  const int Cin = x.shape.c, Cout = dy.shape.c, H = x.shape.h, W = x.shape.w, HW = H * W;
  MutMap dW(dw.data, Cin, Cout * 4);
  float* t = scratch_for(scratch, static_cast<std::size_t>(Cout) * 4 * HW);
  for (int n = 0; n < x.shape.n; ++n) {
    gather_phases(dy.image(n), Cout, H, W, t);
    CMatMap T(t, Cout * 4, HW);
    dW.noalias() += CMatMap(x.image(n), Cin, HW) * T.transpose();
    if (db.data) {
      Eigen::VectorXf s = T.rowwise().sum();
      for (int o = 0; o < Cout; ++o) db.data[o] += s(4 * o) + s(4 * o + 1) + s(4 * o + 2) + s(4 * o + 3);
    }
  }
}

}  // namespace unetsrnn::cpu
