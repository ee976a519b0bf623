#pragma once
// Reference bodies of the convolution and pooling ops: nested loops written straight from the
// formulas in ops/ops.hpp, accumulating in double. They are slow on purpose and share no code with
// the fast kernels in ops/cpu, so tests can hold the fast kernels against an independent reading of
// the contract. Same signatures as the cpu:: versions minus the scratch tensor; no shape checks
// (the callers are tests that build consistent shapes).
#include <cstddef>

#include "unetsrnn/ops/types.hpp"
#include "unetsrnn/tensor/tensor.hpp"

namespace unetsrnn::ref {

// x[n, c, i, j] with zero padding outside the image.
inline double padded(const CView<Cpu>& x, int n, int c, int i, int j) {
  if (i < 0 || i >= x.shape.h || j < 0 || j >= x.shape.w) return 0.0;
  return x.at(n, c, i, j);
}

// y[n,o,i,j] = act(b[o] + sum_{c,u,v} w[o,c,u,v] * x[n,c,i+u-k/2,j+v-k/2]).
inline void conv2d_forward(CView<Cpu> x, CView<Cpu> w, CView<Cpu> b, View<Cpu> y, Act act) {
  const int k = w.shape.h, r = k / 2;
  for (int n = 0; n < y.shape.n; ++n)
    for (int o = 0; o < y.shape.c; ++o)
      for (int i = 0; i < y.shape.h; ++i)
        for (int j = 0; j < y.shape.w; ++j) {
          double sum = b.data ? b.data[o] : 0.0;
          for (int c = 0; c < x.shape.c; ++c)
            for (int u = 0; u < k; ++u)
              for (int v = 0; v < k; ++v)
                sum += double(w.at(o, c, u, v)) * padded(x, n, c, i + u - r, j + v - r);
          if (act == Act::Relu && sum < 0.0) sum = 0.0;
          y.at(n, o, i, j) = static_cast<float>(sum);
        }
}

// dx[n,c,p,q] (+)= sum_{o,u,v} dy[n,o,p-u+k/2,q-v+k/2] * w[o,c,u,v]: each input pixel collects
// from the output pixels whose window covered it.
inline void conv2d_backward_data(CView<Cpu> dy, CView<Cpu> w, View<Cpu> dx, bool accumulate) {
  const int k = w.shape.h, r = k / 2;
  for (int n = 0; n < dx.shape.n; ++n)
    for (int c = 0; c < dx.shape.c; ++c)
      for (int p = 0; p < dx.shape.h; ++p)
        for (int q = 0; q < dx.shape.w; ++q) {
          double sum = 0.0;
          for (int o = 0; o < dy.shape.c; ++o)
            for (int u = 0; u < k; ++u)
              for (int v = 0; v < k; ++v)
                sum += padded(dy, n, o, p - u + r, q - v + r) * double(w.at(o, c, u, v));
          float& d = dx.at(n, c, p, q);
          d = static_cast<float>(accumulate ? d + sum : sum);
        }
}

// dw[o,c,u,v] += sum_{n,i,j} dy[n,o,i,j] * x[n,c,i+u-k/2,j+v-k/2]; db[o] += sum_{n,i,j}
// dy[n,o,i,j].
inline void conv2d_backward_params(CView<Cpu> x, CView<Cpu> dy, View<Cpu> dw, View<Cpu> db) {
  const int k = dw.shape.h, r = k / 2;
  for (int o = 0; o < dw.shape.n; ++o) {
    for (int c = 0; c < dw.shape.c; ++c)
      for (int u = 0; u < k; ++u)
        for (int v = 0; v < k; ++v) {
          double sum = 0.0;
          for (int n = 0; n < dy.shape.n; ++n)
            for (int i = 0; i < dy.shape.h; ++i)
              for (int j = 0; j < dy.shape.w; ++j)
                sum += double(dy.at(n, o, i, j)) * padded(x, n, c, i + u - r, j + v - r);
          float& d = dw.at(o, c, u, v);
          d = static_cast<float>(d + sum);
        }
    if (db.data) {
      double sum = 0.0;
      for (int n = 0; n < dy.shape.n; ++n)
        for (int i = 0; i < dy.shape.h; ++i)
          for (int j = 0; j < dy.shape.w; ++j) sum += dy.at(n, o, i, j);
      db.data[o] = static_cast<float>(db.data[o] + sum);
    }
  }
}

// y[n,o,2i+u,2j+v] = b[o] + sum_c x[n,c,i,j] * w[c,o,u,v].
inline void conv_transpose2x2_forward(CView<Cpu> x, CView<Cpu> w, CView<Cpu> b, View<Cpu> y) {
  for (int n = 0; n < y.shape.n; ++n)
    for (int o = 0; o < y.shape.c; ++o)
      for (int p = 0; p < y.shape.h; ++p)
        for (int q = 0; q < y.shape.w; ++q) {
          const int i = p / 2, u = p % 2, j = q / 2, v = q % 2;
          double sum = b.data ? b.data[o] : 0.0;
          for (int c = 0; c < x.shape.c; ++c) sum += double(x.at(n, c, i, j)) * w.at(c, o, u, v);
          y.at(n, o, p, q) = static_cast<float>(sum);
        }
}

// dx[n,c,i,j] (+)= sum_{o,u,v} dy[n,o,2i+u,2j+v] * w[c,o,u,v].
inline void conv_transpose2x2_backward_data(CView<Cpu> dy, CView<Cpu> w, View<Cpu> dx,
                                            bool accumulate) {
  for (int n = 0; n < dx.shape.n; ++n)
    for (int c = 0; c < dx.shape.c; ++c)
      for (int i = 0; i < dx.shape.h; ++i)
        for (int j = 0; j < dx.shape.w; ++j) {
          double sum = 0.0;
          for (int o = 0; o < dy.shape.c; ++o)
            for (int u = 0; u < 2; ++u)
              for (int v = 0; v < 2; ++v)
                sum += double(dy.at(n, o, 2 * i + u, 2 * j + v)) * w.at(c, o, u, v);
          float& d = dx.at(n, c, i, j);
          d = static_cast<float>(accumulate ? d + sum : sum);
        }
}

// dw[c,o,u,v] += sum_{n,i,j} x[n,c,i,j] * dy[n,o,2i+u,2j+v]; db[o] += sum of dy[n,o,:,:].
inline void conv_transpose2x2_backward_params(CView<Cpu> x, CView<Cpu> dy, View<Cpu> dw,
                                              View<Cpu> db) {
  for (int c = 0; c < dw.shape.n; ++c)
    for (int o = 0; o < dw.shape.c; ++o)
      for (int u = 0; u < 2; ++u)
        for (int v = 0; v < 2; ++v) {
          double sum = 0.0;
          for (int n = 0; n < x.shape.n; ++n)
            for (int i = 0; i < x.shape.h; ++i)
              for (int j = 0; j < x.shape.w; ++j)
                sum += double(x.at(n, c, i, j)) * dy.at(n, o, 2 * i + u, 2 * j + v);
          float& d = dw.at(c, o, u, v);
          d = static_cast<float>(d + sum);
        }
  if (db.data)
    for (int o = 0; o < dy.shape.c; ++o) {
      double sum = 0.0;
      for (int n = 0; n < dy.shape.n; ++n)
        for (int p = 0; p < dy.shape.h; ++p)
          for (int q = 0; q < dy.shape.w; ++q) sum += dy.at(n, o, p, q);
      db.data[o] = static_cast<float>(db.data[o] + sum);
    }
}

// Offset (u, v) in {0,1}^2 of the first maximum of window (i, j) in row-major order; the maximum is
// taken from x itself, so the reference does not depend on the y that forward produced.
inline void first_max_in_window(const CView<Cpu>& x, int n, int c, int i, int j, int& du, int& dv) {
  du = 0;
  dv = 0;
  float best = x.at(n, c, 2 * i, 2 * j);
  for (int u = 0; u < 2; ++u)
    for (int v = 0; v < 2; ++v)
      if (x.at(n, c, 2 * i + u, 2 * j + v) > best) {
        best = x.at(n, c, 2 * i + u, 2 * j + v);
        du = u;
        dv = v;
      }
}

// y[n,c,i,j] = max of x[n,c,2i..2i+1,2j..2j+1].
inline void maxpool2x2_forward(CView<Cpu> x, View<Cpu> y) {
  for (int n = 0; n < y.shape.n; ++n)
    for (int c = 0; c < y.shape.c; ++c)
      for (int i = 0; i < y.shape.h; ++i)
        for (int j = 0; j < y.shape.w; ++j) {
          int du, dv;
          first_max_in_window(x, n, c, i, j, du, dv);
          y.at(n, c, i, j) = x.at(n, c, 2 * i + du, 2 * j + dv);
        }
}

// dx (+)= dy routed to the first maximum of each window in row-major order; the other three
// window elements receive zero.
inline void maxpool2x2_backward(CView<Cpu> x, CView<Cpu> /*y*/, CView<Cpu> dy, View<Cpu> dx,
                                bool accumulate) {
  for (int n = 0; n < dy.shape.n; ++n)
    for (int c = 0; c < dy.shape.c; ++c)
      for (int i = 0; i < dy.shape.h; ++i)
        for (int j = 0; j < dy.shape.w; ++j) {
          int du, dv;
          first_max_in_window(x, n, c, i, j, du, dv);
          for (int u = 0; u < 2; ++u)
            for (int v = 0; v < 2; ++v) {
              const float routed = (u == du && v == dv) ? dy.at(n, c, i, j) : 0.0f;
              float& d = dx.at(n, c, 2 * i + u, 2 * j + v);
              d = accumulate ? d + routed : routed;
            }
        }
}

}  // namespace unetsrnn::ref
