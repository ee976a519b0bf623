#pragma once
// Reference bodies of the Spatial RNN ops, written the way the original layer computes them: for
// the seed and paper rules, L sequential steps per direction, each a depthwise 1x3 (right/left) or
// 3x1 (down/up) 'same' convolution whose stored 3-tap kernel is multiplied by a fixed 0/1 mask, so
// that only the tap reading the previous pixel of the sweep survives; every step allocates its own
// tensors. The backward pass keeps every intermediate state and backpropagates step by step. The
// irnn rule is the plain sweep loop. Slow on purpose and sharing no code with ops/cpu/srnn.hpp, so
// tests and benchmarks can hold the fast kernels against it. Same signatures as the cpu:: versions
// minus the cache; no shape checks (the callers build consistent shapes).
#include <cmath>
#include <cstddef>
#include <vector>

#include "unetsrnn/ops/types.hpp"
#include "unetsrnn/tensor/tensor.hpp"

namespace unetsrnn::ref {
namespace srnn_detail {

// Mask of the stored taps at offsets -1, 0, +1 along the direction's axis (columns for right/left,
// rows for down/up): right reads x[j-1], left x[j+1], down x[i-1], up x[i+1].
inline constexpr float kTapMask[kDirections][3] = {{1, 0, 0}, {0, 0, 1}, {1, 0, 0}, {0, 0, 1}};

inline float activate(SrnnAct act, float v) {
  switch (act) {
    case SrnnAct::Relu:
      return v > 0.0f ? v : 0.0f;
    case SrnnAct::Tanh:
      return std::tanh(v);
    case SrnnAct::Identity:
      return v;
  }
  return v;
}
// The activation's derivative, from its output (as TensorFlow: ReLU's is 0 at 0).
inline float slope(SrnnAct act, float out) {
  switch (act) {
    case SrnnAct::Relu:
      return out > 0.0f ? 1.0f : 0.0f;
    case SrnnAct::Tanh:
      return 1.0f - out * out;
    case SrnnAct::Identity:
      return 1.0f;
  }
  return 1.0f;
}

inline Tensor<Cpu> activated(SrnnAct act, const Tensor<Cpu>& t) {
  Tensor<Cpu> out(t.shape());
  for (std::size_t k = 0; k < t.size(); ++k) out[k] = activate(act, t[k]);
  return out;
}
inline Tensor<Cpu> sum(const Tensor<Cpu>& a, const Tensor<Cpu>& b) {
  Tensor<Cpu> out(a.shape());
  for (std::size_t k = 0; k < a.size(); ++k) out[k] = a[k] + b[k];
  return out;
}

// Pixel read by tap u of direction d's kernel at (i, j), zero outside the image.
inline float tap_input(const Tensor<Cpu>& in, int d, int u, int n, int c, int i, int j) {
  const Shape& s = in.shape();
  const int ii = d < 2 ? i : i + u - 1, jj = d < 2 ? j + u - 1 : j;
  if (ii < 0 || ii >= s.h || jj < 0 || jj >= s.w) return 0.0f;
  return in.at(n, c, ii, jj);
}

// out[n,c,i,j] = sum_u (w[d,c] * mask[d][u]) * in[n,c, pixel of tap u]: every stored tap holds
// w[d,c] (the layer's one weight per channel and direction), the mask zeroes two of them.
inline Tensor<Cpu> masked_conv(const Tensor<Cpu>& in, CView<Cpu> w, int d) {
  const Shape& s = in.shape();
  Tensor<Cpu> out(s);
  for (int n = 0; n < s.n; ++n)
    for (int c = 0; c < s.c; ++c)
      for (int i = 0; i < s.h; ++i)
        for (int j = 0; j < s.w; ++j) {
          float acc = 0.0f;
          for (int u = 0; u < 3; ++u)
            acc += w.at(d, c, 0, 0) * kTapMask[d][u] * tap_input(in, d, u, n, c, i, j);
          out.at(n, c, i, j) = acc;
        }
  return out;
}

// Adjoint of masked_conv: returns d loss / d in given dout; adds to dw_channel[c] the gradient of
// the stored taps gated by the mask (all taps are the one weight).
inline Tensor<Cpu> masked_conv_backward(const Tensor<Cpu>& in, const Tensor<Cpu>& dout,
                                        CView<Cpu> w, int d, std::vector<double>& dw_channel) {
  const Shape& s = in.shape();
  Tensor<Cpu> din(s, 0.0f);
  for (int n = 0; n < s.n; ++n)
    for (int c = 0; c < s.c; ++c)
      for (int i = 0; i < s.h; ++i)
        for (int j = 0; j < s.w; ++j) {
          const float g = dout.at(n, c, i, j);
          for (int u = 0; u < 3; ++u) {
            const float kernel = w.at(d, c, 0, 0) * kTapMask[d][u];
            const int ii = d < 2 ? i : i + u - 1, jj = d < 2 ? j + u - 1 : j;
            if (ii < 0 || ii >= s.h || jj < 0 || jj >= s.w) continue;
            din.at(n, c, ii, jj) += kernel * g;
            dw_channel[c] += double(kTapMask[d][u]) * g * in.at(n, c, ii, jj);
          }
        }
  return din;
}

// Sweep position t of line l in direction d, as (row, column).
inline void sweep_pixel(int d, int H, int W, int l, int t, int& i, int& j) {
  switch (d) {
    case 0:
      i = l, j = t;
      break;  // right: increasing j
    case 1:
      i = l, j = W - 1 - t;
      break;  // left: decreasing j
    case 2:
      i = t, j = l;
      break;  // down: increasing i
    default:
      i = H - 1 - t, j = l;
      break;  // up: decreasing i
  }
}

// Irnn: y[t] = act(w * y[t-1] + x[t]) along every line of direction d, y[-1] = 0.
inline Tensor<Cpu> irnn_sweep(const Tensor<Cpu>& x, CView<Cpu> w, int d, SrnnAct act) {
  const Shape& s = x.shape();
  Tensor<Cpu> y(s);
  const int lines = d < 2 ? s.h : s.w, steps = d < 2 ? s.w : s.h;
  for (int n = 0; n < s.n; ++n)
    for (int c = 0; c < s.c; ++c)
      for (int l = 0; l < lines; ++l) {
        float prev = 0.0f;
        for (int t = 0; t < steps; ++t) {
          int i = 0, j = 0;
          sweep_pixel(d, s.h, s.w, l, t, i, j);
          prev = activate(act, w.at(d, c, 0, 0) * prev + x.at(n, c, i, j));
          y.at(n, c, i, j) = prev;
        }
      }
  return y;
}

}  // namespace srnn_detail

// y[:, d*C:(d+1)*C] = the rule's output for direction d (see SrnnRule in ops/types.hpp).
inline void srnn_forward(CView<Cpu> x, CView<Cpu> w, View<Cpu> y, const SrnnConfig& cfg) {
  using namespace srnn_detail;
  const Tensor<Cpu> input = Tensor<Cpu>::from(x);
  const int C = x.shape.c;
  for (int d = 0; d < kDirections; ++d) {
    Tensor<Cpu> out;
    if (cfg.rule == SrnnRule::Seed) {  // h_k = act(w S h_{k-1}), y = x + sum_k h_k
      Tensor<Cpu> h = input;
      out = input;
      for (int k = 1; k <= cfg.length; ++k) {
        h = activated(cfg.act, masked_conv(h, w, d));
        out = sum(out, h);
      }
    } else if (cfg.rule == SrnnRule::Paper) {  // g_k = act(w S g_{k-1} + g_{k-1}), y = g_L
      out = input;
      for (int k = 1; k <= cfg.length; ++k)
        out = activated(cfg.act, sum(masked_conv(out, w, d), out));
    } else {
      out = irnn_sweep(input, w, d, cfg.act);
    }
    const View<Cpu> block = y.channels(d * C, C);
    for (int n = 0; n < x.shape.n; ++n)
      for (std::size_t k = 0; k < x.shape.image_size(); ++k)
        block.image(n)[k] = out[n * x.shape.image_size() + k];
  }
}

// dx (+)= d loss / d x, dw += d loss / d w, given dy = d loss / d y.
inline void srnn_backward(CView<Cpu> x, CView<Cpu> w, CView<Cpu> dy, View<Cpu> dx, View<Cpu> dw,
                          bool accumulate, const SrnnConfig& cfg) {
  using namespace srnn_detail;
  const Tensor<Cpu> input = Tensor<Cpu>::from(x);
  const Shape s = x.shape;
  const int C = s.c;
  Tensor<Cpu> dx_total(s, 0.0f);
  for (int d = 0; d < kDirections; ++d) {
    const Tensor<Cpu> dy_d = Tensor<Cpu>::from(dy.channels(d * C, C));
    std::vector<double> dw_d(C, 0.0);
    Tensor<Cpu> delta;  // d loss / d (state being backpropagated)
    if (cfg.rule == SrnnRule::Seed || cfg.rule == SrnnRule::Paper) {
      const bool seed = cfg.rule == SrnnRule::Seed;
      std::vector<Tensor<Cpu>> states{input};
      for (int k = 1; k <= cfg.length; ++k) {
        const Tensor<Cpu>& prev = states.back();
        states.push_back(seed ? activated(cfg.act, masked_conv(prev, w, d))
                              : activated(cfg.act, sum(masked_conv(prev, w, d), prev)));
      }
      delta = dy_d;
      for (int k = cfg.length; k >= 1; --k) {
        Tensor<Cpu> pre_grad(s);  // d loss / d (pre-activation of step k)
        for (std::size_t q = 0; q < s.size(); ++q)
          pre_grad[q] = slope(cfg.act, states[k][q]) * delta[q];
        const Tensor<Cpu> back = masked_conv_backward(states[k - 1], pre_grad, w, d, dw_d);
        // Seed: state k-1 feeds step k and (k >= 1) the output sum; paper: step k and its skip
        // term.
        delta = seed ? sum(dy_d, back) : sum(pre_grad, back);
      }
    } else {
      // Irnn: recompute the sweep, then run it backwards.
      const Tensor<Cpu> y = irnn_sweep(input, w, d, cfg.act);
      delta = Tensor<Cpu>(s, 0.0f);
      const int lines = d < 2 ? s.h : s.w, steps = d < 2 ? s.w : s.h;
      for (int n = 0; n < s.n; ++n)
        for (int c = 0; c < C; ++c)
          for (int l = 0; l < lines; ++l) {
            float next = 0.0f;  // d loss / d pre-activation at t + 1
            for (int t = steps - 1; t >= 0; --t) {
              int i = 0, j = 0;
              sweep_pixel(d, s.h, s.w, l, t, i, j);
              const float grad = dy_d.at(n, c, i, j) + w.at(d, c, 0, 0) * next;
              const float pre_grad = slope(cfg.act, y.at(n, c, i, j)) * grad;
              delta.at(n, c, i, j) = pre_grad;
              if (t > 0) {
                int pi = 0, pj = 0;
                sweep_pixel(d, s.h, s.w, l, t - 1, pi, pj);
                dw_d[c] += double(pre_grad) * y.at(n, c, pi, pj);
              }
              next = pre_grad;
            }
          }
    }
    dx_total = sum(dx_total, delta);
    for (int c = 0; c < C; ++c) dw.at(d, c, 0, 0) = static_cast<float>(dw.at(d, c, 0, 0) + dw_d[c]);
  }
  for (int n = 0; n < s.n; ++n)
    for (std::size_t k = 0; k < s.image_size(); ++k) {
      float& target = dx.image(n)[k];
      const float g = dx_total[n * s.image_size() + k];
      target = accumulate ? target + g : g;
    }
}

}  // namespace unetsrnn::ref
