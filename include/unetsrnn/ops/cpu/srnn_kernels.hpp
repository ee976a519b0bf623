// The Spatial RNN kernels of one instruction-set path: a kernel header of ops/cpu/foreach_isa.hpp
// (compiled once per path in namespace unetsrnn::cpu::<path>; includes nothing). What they compute
// and how is described in ops/cpu/srnn.hpp. The paths share this code: their difference is the
// vector width the compiler gives the contiguous loops over a sweep's rows (#pragma omp simd) and
// the 8 x 8 transposes of the SIMD layer.
namespace unetsrnn::cpu::UNETSRNN_ISA_NS {
namespace srnn_detail {
using Workspace = ::unetsrnn::cpu::srnn_detail::Workspace;

// Rows of a plane in sweep order: row(t) holds the `width` values at sweep position t.
template <class T>
struct Lines {
  T* base = nullptr;
  std::ptrdiff_t stride = 0;
  int steps = 0, width = 0;

  Lines() = default;
  Lines(T* b, std::ptrdiff_t s, int t, int m) : base(b), stride(s), steps(t), width(m) {}
  template <class U>
  Lines(const Lines<U>& o) : base(o.base), stride(o.stride), steps(o.steps), width(o.width) {}

  T* row(int t) const { return base + static_cast<std::ptrdiff_t>(t) * stride; }
  Lines reversed() const { return Lines(row(steps - 1), -stride, steps, width); }
};
using In = Lines<const float>;
using Out = Lines<float>;

inline float* grow(std::vector<float>& v, std::size_t n) {
  if (v.size() < n) v.resize(n);
  return v.data();
}
inline double* zeroed_lanes(Workspace& ws, int m) {
  if (ws.lanes.size() < static_cast<std::size_t>(m)) ws.lanes.resize(m);
  std::fill(ws.lanes.begin(), ws.lanes.begin() + m, 0.0);
  return ws.lanes.data();
}
inline double lane_total(const double* lanes, int m) {
  double s = 0.0;
  for (int j = 0; j < m; ++j) s += lanes[j];
  return s;
}
// A T x M scratch plane as Lines in sweep order.
inline Out plane_lines(std::vector<float>& buffer, int steps, int width) {
  return Out(grow(buffer, static_cast<std::size_t>(steps) * width), width, steps, width);
}
inline void store(float* dst, const float* src, int m, bool accumulate) {
  if (accumulate) {
#pragma omp simd
    for (int j = 0; j < m; ++j) dst[j] += src[j];
  } else {
#pragma omp simd
    for (int j = 0; j < m; ++j) dst[j] = src[j];
  }
}
inline void copy_lines(In src, Out dst) {
  for (int t = 0; t < src.steps; ++t) store(dst.row(t), src.row(t), src.width, false);
}

// e^x for |x| <= 40 (Cephes expf: x = n ln2 + r with |r| <= ln2 / 2, a degree-5 polynomial for
// e^r, and 2^n built in the exponent bits). Branch-free, so loops calling it vectorise.
inline float exp_float(float x) {
  const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  // round to nearest
  const float r = (x - n * 0.693359375f) - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float e = p * r * r + r + 1.0f;
  return e * std::bit_cast<float>((static_cast<std::int32_t>(n) + 127) << 23);
}

// tanh in float, within 1.4 ulp of the exact value for every input (glibc's tanhf: about 2.2), and
// vectorisable, unlike the libm call (~20 ns a value, which kept the tanh rules barely faster than
// the reference). |x| < 0.625: Cephes' odd polynomial; above, 1 - 2 / (e^(2|x|) + 1), which
// cancels nothing there. Clamping |x| at 20 (tanh(20) == 1 in float) and choosing between the two
// are integer operations on the bits (non-negative floats order like their bits): float selects
// would stop GCC vectorising under its default -ftrapping-math. NaN stays NaN.
inline float tanh_float(float x) {
  const std::int32_t bits = std::bit_cast<std::int32_t>(x);
  const std::int32_t magnitude = bits & 0x7fffffff;
  const std::int32_t clamped = std::min(magnitude, std::bit_cast<std::int32_t>(20.0f));
  const float a = std::bit_cast<float>(clamped);
  const float s = a * a;
  float p = -5.70498872745e-3f;
  p = p * s + 2.06390887954e-2f;
  p = p * s - 5.37397155531e-2f;
  p = p * s + 1.33314422036e-1f;
  p = p * s - 3.33332819422e-1f;
  const float small = p * s * a + a;
  const float large = 1.0f - 2.0f / (exp_float(2.0f * a) + 1.0f);
  const std::int32_t use_small =
      -static_cast<std::int32_t>(clamped < std::bit_cast<std::int32_t>(0.625f));
  const std::int32_t value = (std::bit_cast<std::int32_t>(small) & use_small) |
                             (std::bit_cast<std::int32_t>(large) & ~use_small);
  const std::int32_t nan = -static_cast<std::int32_t>(magnitude > 0x7f800000);
  const std::int32_t sign = bits & static_cast<std::int32_t>(0x80000000u);
  return std::bit_cast<float>(((value | sign) & ~nan) | (bits & nan));
}

template <SrnnAct A>
inline float activate(float v) {
  if constexpr (A == SrnnAct::Relu)
    return v > 0.0f ? v : 0.0f;
  else if constexpr (A == SrnnAct::Tanh)
    return tanh_float(v);
  else
    return v;
}
// [v > 0] as a float. Multiplying by it, rather than selecting a computed value with ?:, keeps the
// loops vectorisable: under the default -ftrapping-math GCC does not if-convert a select whose arm
// is a floating-point operation sunk into a branch (and a bool parameter here defeats it too).
inline float positive(float v) { return static_cast<float>(v > 0.0f); }

// Derivative of the activation from its output (ReLU: 0 at 0, as TensorFlow).
template <SrnnAct A>
inline float slope(float out) {
  if constexpr (A == SrnnAct::Relu)
    return positive(out);
  else if constexpr (A == SrnnAct::Tanh)
    return 1.0f - out * out;
  else
    return 1.0f;
}

// pw[k] = w^k and (if dpw) dpw[k] = k w^(k-1) = d w^k / dw for k = 0..n, each rounded once.
inline void powers(float w, int n, float* pw, float* dpw) {
  double power = 1.0, previous = 0.0;  // w^k, w^(k-1)
  for (int k = 0; k <= n; ++k) {
    pw[k] = static_cast<float>(power);
    if (dpw) dpw[k] = static_cast<float>(k * previous);
    previous = power;
    power *= w;
  }
}

template <bool Rectify>
inline float source(float v) {
  if constexpr (Rectify)
    return v > 0.0f ? v : 0.0f;
  else
    return v;
}

// ------------------------------------------------------------------ geometric window sums
// z[t] = sum_{k=1..min(L,t)} w^k r[t-k], r = relu(src) when Rectify else src, in O(1) per element.
// The sweep is cut into blocks of L rows. The window [t-L, t-1] is then a prefix of the block that
// holds e = t-1 plus, unless e ends its block, a suffix of the block before (van Herk /
// Gil-Werman). With the running in-block prefix p[e] = w p[e-1] + r[e] and the per-block suffix
// q[m] = sum_{m'=m..end} w^(end-m') r[m'] (end = last row of m's block, s = first row of e's),
//   z[t] = w p[e] + w^(t-s+1) q[t-L].
// Nothing is subtracted, so with r >= 0 and w > 0 every term is non-negative: no cancellation for
// any |w| or L (unlike z[t] = w z[t-1] + w r[t-1] - w^(L+1) r[t-1-L]).
// emit(t, z_row) receives every row in increasing t.
template <bool Rectify, class Emit>
void window_sums(In src, float w, int length, Workspace& ws, Emit&& emit) {
  const int T = src.steps, M = src.width;
  const int L = std::min(length, T - 1);  // a longer window only reaches the zero padding
  float* const z = grow(ws.rows, 2 * static_cast<std::size_t>(M));
  float* const p = z + M;
  std::fill(z, z + M, 0.0f);
  emit(0, static_cast<const float*>(z));
  if (L <= 0) {
    for (int t = 1; t < T; ++t) emit(t, static_cast<const float*>(z));
    return;
  }
  float* const pw = grow(ws.coef, L + 1);
  powers(w, L, pw, nullptr);
  const Out q = plane_lines(ws.plane_a, T, M);
  // Suffix sums of every block whose successor holds some e <= T-2.
  for (int b = 0; b + L <= T - 2; b += L) {
    const int end = b + L - 1;
    {
      const float* r = src.row(end);
      float* qe = q.row(end);
#pragma omp simd
      for (int j = 0; j < M; ++j) qe[j] = source<Rectify>(r[j]);
    }
    for (int m = end - 1; m >= b; --m) {
      const float* r = src.row(m);
      const float* qn = q.row(m + 1);
      float* qm = q.row(m);
      const float c = pw[end - m];
#pragma omp simd
      for (int j = 0; j < M; ++j) qm[j] = c * source<Rectify>(r[j]) + qn[j];
    }
  }
  for (int t = 1; t < T; ++t) {
    const int e = t - 1, s = e - e % L, a = t - L;
    const float* r = src.row(e);
    if (e == s) {
#pragma omp simd
      for (int j = 0; j < M; ++j) p[j] = source<Rectify>(r[j]);
    } else {
#pragma omp simd
      for (int j = 0; j < M; ++j) p[j] = w * p[j] + source<Rectify>(r[j]);
    }
    if (s > 0 && a < s) {  // the window reaches into the previous block (then a >= 0)
      const float c = pw[t - s + 1];
      const float* qa = q.row(a);
#pragma omp simd
      for (int j = 0; j < M; ++j) z[j] = w * p[j] + c * qa[j];
    } else {
#pragma omp simd
      for (int j = 0; j < M; ++j) z[j] = w * p[j];
    }
    emit(t, static_cast<const float*>(z));
  }
}

// sum_t dy[t] . dz[t]/dw for the window sums above, by forward-mode derivatives of the same
// recurrences (a = t-L):
//   dp[e] = w dp[e-1] + p[e-1],   dq[m] = (end-m) w^(end-m-1) r[m] + dq[m+1],
//   dz[t] = p[e] + w dp[e] + (t-s+1) w^(t-s) q[a] + w^(t-s+1) dq[a].
// O(1) per element.
template <bool Rectify>
double window_sums_dw(In src, In dy, float w, int length, Workspace& ws) {
  const int T = src.steps, M = src.width;
  const int L = std::min(length, T - 1);
  if (L <= 0) return 0.0;
  float* const z = grow(ws.rows, 3 * static_cast<std::size_t>(M));
  float* const p = z + M;
  float* const dp = p + M;
  float* const pw = grow(ws.coef, L + 1);
  float* const dpw = grow(ws.dcoef, L + 1);
  powers(w, L, pw, dpw);
  const Out q = plane_lines(ws.plane_a, T, M), dq = plane_lines(ws.plane_b, T, M);
  for (int b = 0; b + L <= T - 2; b += L) {
    const int end = b + L - 1;
    {
      const float* r = src.row(end);
      float* qe = q.row(end);
      float* dqe = dq.row(end);
#pragma omp simd
      for (int j = 0; j < M; ++j) {
        qe[j] = source<Rectify>(r[j]);
        dqe[j] = 0.0f;
      }
    }
    for (int m = end - 1; m >= b; --m) {
      const float* r = src.row(m);
      const float *qn = q.row(m + 1), *dqn = dq.row(m + 1);
      float *qm = q.row(m), *dqm = dq.row(m);
      const float c = pw[end - m], dc = dpw[end - m];
#pragma omp simd
      for (int j = 0; j < M; ++j) {
        const float rv = source<Rectify>(r[j]);
        qm[j] = c * rv + qn[j];
        dqm[j] = dc * rv + dqn[j];
      }
    }
  }
  double* const lanes = zeroed_lanes(ws, M);
  for (int t = 1; t < T; ++t) {
    const int e = t - 1, s = e - e % L, a = t - L;
    const float* r = src.row(e);
    const float* g = dy.row(t);
    if (e == s) {
#pragma omp simd
      for (int j = 0; j < M; ++j) {
        p[j] = source<Rectify>(r[j]);
        dp[j] = 0.0f;
      }
    } else {
#pragma omp simd
      for (int j = 0; j < M; ++j) {
        dp[j] = w * dp[j] + p[j];
        p[j] = w * p[j] + source<Rectify>(r[j]);
      }
    }
    if (s > 0 && a < s) {
      const float c = pw[t - s + 1], dc = dpw[t - s + 1];
      const float *qa = q.row(a), *dqa = dq.row(a);
#pragma omp simd
      for (int j = 0; j < M; ++j) {
        const float dz = p[j] + w * dp[j] + dc * qa[j] + c * dqa[j];
        lanes[j] += double(g[j]) * dz;
      }
    } else {
#pragma omp simd
      for (int j = 0; j < M; ++j) lanes[j] += double(g[j]) * (p[j] + w * dp[j]);
    }
  }
  return lane_total(lanes, M);
}

// ------------------------------------------------------------------ seed rule, per-source chains
// h_k[t] = phi^k(x[t-k]) with phi(v) = act(w v): each source row m runs its own chain and adds
// step k to y[m+k]. Sources are visited last to first so that y[t] sums x + h_1 + h_2 + ... in the
// definition's order. O(min(steps, T-1)) per element.
template <SrnnAct A>
void seed_chains_forward(In x, Out y, float w, int steps, Workspace& ws) {
  const int T = x.steps, M = x.width;
  const int K = std::min(steps, T - 1);
  float* const v = grow(ws.rows, M);
  copy_lines(x, y);
  for (int m = T - 2; m >= 0; --m) {
    store(v, x.row(m), M, false);
    for (int k = 1; k <= std::min(K, T - 1 - m); ++k) {
      float* yr = y.row(m + k);
#pragma omp simd
      for (int j = 0; j < M; ++j) {
        v[j] = activate<A>(w * v[j]);
        yr[j] += v[j];
      }
    }
  }
}

// Backward of the chains: each chain carries dv/dx (a product of slopes times w) and dv/dw
// (d phi(v)/dw = act'(w v) (v + w dv/dw)) forward, dotting them with dy on the way.
template <SrnnAct A>
double seed_chains_backward(In x, In dy, Out dx, bool accumulate, float w, int steps,
                            Workspace& ws) {
  const int T = x.steps, M = x.width;
  const int K = std::min(steps, T - 1);
  float* const v = grow(ws.rows, 4 * static_cast<std::size_t>(M));
  float* const dv_dx = v + M;
  float* const dv_dw = dv_dx + M;
  float* const gx = dv_dw + M;
  double* const lanes = zeroed_lanes(ws, M);
  for (int m = 0; m < T; ++m) {
    const float* xm = x.row(m);
    const float* gm = dy.row(m);
#pragma omp simd
    for (int j = 0; j < M; ++j) {
      v[j] = xm[j];
      dv_dx[j] = 1.0f;
      dv_dw[j] = 0.0f;
      gx[j] = gm[j];
    }
    for (int k = 1; k <= std::min(K, T - 1 - m); ++k) {
      const float* g = dy.row(m + k);
#pragma omp simd
      for (int j = 0; j < M; ++j) {
        const float next = activate<A>(w * v[j]);
        const float d = slope<A>(next);
        dv_dw[j] = d * (v[j] + w * dv_dw[j]);
        dv_dx[j] = d * w * dv_dx[j];
        v[j] = next;
        gx[j] += g[j] * dv_dx[j];
        lanes[j] += double(g[j]) * dv_dw[j];
      }
    }
    store(dx.row(m), gx, M, accumulate);
  }
  return lane_total(lanes, M);
}

// Seed + ReLU with w <= 0: h_1 = relu(w S x) and h_2 = relu(w h_1) = 0 (h_1 >= 0), so
// y[t] = x[t] + relu(w x[t-1]); backward dx[s] = dy[s] + [w x[s] > 0] w dy[s+1],
// dw = sum_t [w x[t-1] > 0] x[t-1] dy[t]. (At w = 0 nothing passes, as in the definition.)
inline void seed_one_step_forward(In x, Out y, float w) {
  const int T = x.steps, M = x.width;
  store(y.row(0), x.row(0), M, false);
  for (int t = 1; t < T; ++t) {
    const float *xp = x.row(t - 1), *xt = x.row(t);
    float* yr = y.row(t);
#pragma omp simd
    for (int j = 0; j < M; ++j) {
      const float h = w * xp[j];
      yr[j] = xt[j] + (h > 0.0f ? h : 0.0f);
    }
  }
}
inline double seed_one_step_backward(In x, In dy, Out dx, bool accumulate, float w, Workspace& ws) {
  const int T = x.steps, M = x.width;
  double* const lanes = zeroed_lanes(ws, M);
  for (int t = 0; t < T; ++t) {
    const float *xt = x.row(t), *g = dy.row(t);
    float* d = dx.row(t);
    if (t + 1 == T) {
      store(d, g, M, accumulate);
      break;
    }
    const float* gn = dy.row(t + 1);
    if (accumulate) {
#pragma omp simd
      for (int j = 0; j < M; ++j) {
        const float open = positive(w * xt[j]);
        d[j] += g[j] + open * (w * gn[j]);
        lanes[j] += double(open * xt[j]) * gn[j];
      }
    } else {
#pragma omp simd
      for (int j = 0; j < M; ++j) {
        const float open = positive(w * xt[j]);
        d[j] = g[j] + open * (w * gn[j]);
        lanes[j] += double(open * xt[j]) * gn[j];
      }
    }
  }
  return lane_total(lanes, M);
}

template <SrnnAct A>
void seed_forward(In x, Out y, float w, int length, Workspace& ws) {
  if constexpr (A == SrnnAct::Tanh) {
    seed_chains_forward<A>(x, y, w, length, ws);
  } else {
    constexpr bool relu = A == SrnnAct::Relu;
    if (relu && w <= 0.0f) {
      seed_one_step_forward(x, y, w);
      return;
    }
    window_sums<relu>(x, w, length, ws, [&](int t, const float* z) {
      const float* xr = x.row(t);
      float* yr = y.row(t);
#pragma omp simd
      for (int j = 0; j < x.width; ++j) yr[j] = xr[j] + z[j];
    });
  }
}

template <SrnnAct A>
double seed_backward(In x, In dy, Out dx, bool accumulate, float w, int length, Workspace& ws) {
  if constexpr (A == SrnnAct::Tanh) {
    return seed_chains_backward<A>(x, dy, dx, accumulate, w, length, ws);
  } else {
    constexpr bool relu = A == SrnnAct::Relu;
    if (relu && w <= 0.0f) return seed_one_step_backward(x, dy, dx, accumulate, w, ws);
    // dx[s] = dy[s] + relu'(w x[s]) sum_{k=1..L} w^k dy[s+k]: the same window against the sweep.
    const In xr = x.reversed(), dyr = dy.reversed();
    const Out dxr = dx.reversed();
    window_sums<false>(dyr, w, length, ws, [&](int t, const float* u) {
      const float *xt = xr.row(t), *gt = dyr.row(t);
      float* d = dxr.row(t);
      const int M = x.width;
      if (accumulate) {
#pragma omp simd
        for (int j = 0; j < M; ++j) d[j] += gt[j] + (!relu || w * xt[j] > 0.0f ? u[j] : 0.0f);
      } else {
#pragma omp simd
        for (int j = 0; j < M; ++j) d[j] = gt[j] + (!relu || w * xt[j] > 0.0f ? u[j] : 0.0f);
      }
    });
    return window_sums_dw<relu>(x, dy, w, length, ws);
  }
}

// ------------------------------------------------------------------ paper rule
// One step g'[t] = act(w g[t-1] + g[t]), out of place.
template <SrnnAct A>
void paper_step(In g, Out next, float w) {
  const int T = g.steps, M = g.width;
  {
    const float* cur = g.row(0);
    float* o = next.row(0);
#pragma omp simd
    for (int j = 0; j < M; ++j) o[j] = activate<A>(cur[j]);
  }
  for (int t = 1; t < T; ++t) {
    const float *prev = g.row(t - 1), *cur = g.row(t);
    float* o = next.row(t);
#pragma omp simd
    for (int j = 0; j < M; ++j) o[j] = activate<A>(w * prev[j] + cur[j]);
  }
}
// The same step in place (last row first, so g[t-1] is still the old value).
template <SrnnAct A>
void paper_step_in_place(Out g, float w) {
  const int T = g.steps, M = g.width;
  for (int t = T - 1; t >= 1; --t) {
    const float* prev = g.row(t - 1);
    float* cur = g.row(t);
#pragma omp simd
    for (int j = 0; j < M; ++j) cur[j] = activate<A>(w * prev[j] + cur[j]);
  }
  float* first = g.row(0);
#pragma omp simd
  for (int j = 0; j < M; ++j) first[j] = activate<A>(first[j]);
}

// b[k] = C(K, k) w^k for k = 0..n: the taps of (I + wS)^K. The ratio recurrence in double keeps
// the huge binomials and tiny powers from overflowing separately.
inline void binomial_taps(float w, int K, int n, float* b) {
  double c = 1.0;
  b[0] = 1.0f;
  for (int k = 0; k < n; ++k) {
    c *= double(w) * (K - k) / (k + 1);
    b[k + 1] = static_cast<float>(c);
  }
}
// out[t] = sum_{k=0..min(n,t)} b[k] src[t-k].
inline void binomial_window(In src, Out out, const float* b, int n) {
  const int T = src.steps, M = src.width;
  for (int t = 0; t < T; ++t) {
    float* o = out.row(t);
    const float* s0 = src.row(t);
#pragma omp simd
    for (int j = 0; j < M; ++j) o[j] = b[0] * s0[j];
    for (int k = 1; k <= std::min(n, t); ++k) {
      const float c = b[k];
      const float* sk = src.row(t - k);
#pragma omp simd
      for (int j = 0; j < M; ++j) o[j] += c * sk[j];
    }
  }
}
// sum_t [src[t] > 0 if masked] dy[t] . sum_{k=1..min(n,t)} c[k] src[t-k].
inline double binomial_window_dot(In src, In dy, const float* c, int n, bool masked,
                                  Workspace& ws) {
  const int T = src.steps, M = src.width;
  float* const acc = grow(ws.rows, M);
  double* const lanes = zeroed_lanes(ws, M);
  for (int t = 1; t < T; ++t) {
    std::fill(acc, acc + M, 0.0f);
    for (int k = 1; k <= std::min(n, t); ++k) {
      const float ck = c[k];
      const float* sk = src.row(t - k);
#pragma omp simd
      for (int j = 0; j < M; ++j) acc[j] += ck * sk[j];
    }
    const float *g = dy.row(t), *st = src.row(t);
    if (masked) {
#pragma omp simd
      for (int j = 0; j < M; ++j) lanes[j] += double(positive(st[j]) * g[j]) * acc[j];
    } else {
#pragma omp simd
      for (int j = 0; j < M; ++j) lanes[j] += double(g[j]) * acc[j];
    }
  }
  return lane_total(lanes, M);
}

// y for ReLU with w >= 0 is (I + wS)^(L-1) g_1 (g_1 >= 0 makes every later ReLU the identity);
// for the identity it is (I + wS)^L x. Returns false when neither applies.
template <SrnnAct A>
constexpr bool paper_is_linear(float w) {
  return A == SrnnAct::Identity || (A == SrnnAct::Relu && w >= 0.0f);
}

template <SrnnAct A>
void paper_forward(In x, Out y, float w, int length, Workspace& ws) {
  const int T = x.steps, M = x.width;
  if (paper_is_linear<A>(w)) {
    In src = x;
    int K = length;
    if constexpr (A == SrnnAct::Relu) {
      const Out g1 = plane_lines(ws.plane_a, T, M);
      paper_step<A>(x, g1, w);
      src = g1;
      K = length - 1;
    }
    const int n = std::min(K, T - 1);
    float* const b = grow(ws.coef, n + 1);
    binomial_taps(w, K, n, b);
    binomial_window(src, y, b, n);
    return;
  }
  copy_lines(x, y);
  for (int k = 1; k <= length; ++k) paper_step_in_place<A>(y, w);
}

// Linear cases: with B = (I + wS)^K applied to src (g_1 or x), dsrc = B^T dy (the binomial window
// against the sweep) and d(B src)/dw = K S (I + wS)^(K-1) src.
template <SrnnAct A>
double paper_linear_backward(In x, In dy, Out dx, bool accumulate, float w, int length,
                             Workspace& ws) {
  const int T = x.steps, M = x.width;
  constexpr bool relu = A == SrnnAct::Relu;
  const int K = relu ? length - 1 : length;
  const int n = std::min(K, T - 1);
  In src = x;
  Out g1;
  if (relu) {
    g1 = plane_lines(ws.plane_a, T, M);
    paper_step<A>(x, g1, w);
    src = g1;
  }
  float* const b = grow(ws.coef, n + 1);
  binomial_taps(w, K, n, b);
  const Out dsrc = plane_lines(ws.plane_b, T, M);
  binomial_window(dy.reversed(), dsrc.reversed(), b, n);
  double dw = 0.0;
  if (n >= 1) {
    // c[k] = K C(K-1, k-1) w^(k-1), k = 1..n. At w = 0 with ReLU every later step's pre-activation
    // is g_1[t] itself, and where that is 0 the TensorFlow convention gives no gradient: mask.
    float* const c = grow(ws.dcoef, n + 1);
    binomial_taps(w, K - 1, n - 1, c + 1);
    for (int k = 1; k <= n; ++k) c[k] *= static_cast<float>(K);
    dw += binomial_window_dot(src, dy, c, n, relu && w == 0.0f, ws);
  }
  if constexpr (!relu) {
    for (int t = 0; t < T; ++t) store(dx.row(t), dsrc.row(t), M, accumulate);
    return dw;
  } else {
    // Through step 1: a = [g_1 > 0] dg_1; dx[s] = a[s] + w a[s+1]; dw += sum_t a[t] x[t-1].
    double* const lanes = zeroed_lanes(ws, M);
    for (int t = 0; t < T; ++t) {
      const float* g = g1.row(t);
      float* a = dsrc.row(t);
#pragma omp simd
      for (int j = 0; j < M; ++j) a[j] = g[j] > 0.0f ? a[j] : 0.0f;
      if (t > 0) {
        const float* xp = x.row(t - 1);
#pragma omp simd
        for (int j = 0; j < M; ++j) lanes[j] += double(a[j]) * xp[j];
      }
    }
    for (int t = 0; t < T; ++t) {
      const float* a = dsrc.row(t);
      float* d = dx.row(t);
      if (t + 1 < T) {
        const float* an = dsrc.row(t + 1);
        if (accumulate) {
#pragma omp simd
          for (int j = 0; j < M; ++j) d[j] += a[j] + w * an[j];
        } else {
#pragma omp simd
          for (int j = 0; j < M; ++j) d[j] = a[j] + w * an[j];
        }
      } else {
        store(d, a, M, accumulate);
      }
    }
    return dw + lane_total(lanes, M);
  }
}

// Nonlinear cases: step-by-step backpropagation over recomputed states (the forward keeps none).
// Long sequences on large planes recompute them from checkpoints every S = ceil(sqrt(L)) steps, one
// segment at a time: about 2 sqrt(L) planes of memory instead of L + 1, for one more pass.
template <SrnnAct A>
double paper_steps_backward(In x, In dy, Out dx, bool accumulate, float w, int length,
                            Workspace& ws) {
  const int T = x.steps, M = x.width;
  const std::size_t P = static_cast<std::size_t>(T) * M;
  // All L + 1 states when they fit the budget (one recomputation pass), else checkpoints every
  // ceil(sqrt(L)) steps (two passes, ~2 sqrt(L) planes).
  const int S =
      (static_cast<std::size_t>(length) + 1) * P <= ::unetsrnn::cpu::srnn_detail::paper_state_budget
          ? length
          : std::max(1, static_cast<int>(std::ceil(std::sqrt(double(length)))));
  const int checkpoints = (length + S - 1) / S;  // states 0, S, 2S, ... (all < L)
  float* const cp = grow(ws.checkpoints, checkpoints * P);
  float* const seg = grow(ws.segment, (S + 1) * P);
  const auto state = [&](float* base, int i) { return Out(base + i * P, M, T, M); };

  copy_lines(x, state(cp, 0));
  {
    const Out g = state(seg, 0);
    copy_lines(x, g);
    for (int k = 1; k <= (checkpoints - 1) * S; ++k) {
      paper_step_in_place<A>(g, w);
      if (k % S == 0) copy_lines(g, state(cp, k / S));
    }
  }
  const Out delta = plane_lines(ws.plane_a, T, M);  // d loss / d g_k
  copy_lines(dy, delta);
  double* const lanes = zeroed_lanes(ws, M);
  for (int i = checkpoints - 1; i >= 0; --i) {
    const int k0 = i * S, k1 = std::min(k0 + S, length);
    copy_lines(state(cp, i), state(seg, 0));
    for (int k = k0 + 1; k <= k1; ++k) paper_step<A>(state(seg, k - k0 - 1), state(seg, k - k0), w);
    for (int k = k1; k > k0; --k) {
      const Out gk = state(seg, k - k0), gp = state(seg, k - k0 - 1);
      // delta <- d loss / d pre-activation of step k; dw += sum_t delta[t] g_{k-1}[t-1].
      for (int t = 0; t < T; ++t) {
        const float* g = gk.row(t);
        float* dl = delta.row(t);
#pragma omp simd
        for (int j = 0; j < M; ++j) dl[j] *= slope<A>(g[j]);
        if (t > 0) {
          const float* p = gp.row(t - 1);
#pragma omp simd
          for (int j = 0; j < M; ++j) lanes[j] += double(dl[j]) * p[j];
        }
      }
      // d loss / d g_{k-1}[t] = a[t] + w a[t+1] (ascending t reads a[t+1] before it changes).
      for (int t = 0; t + 1 < T; ++t) {
        float* dl = delta.row(t);
        const float* dn = delta.row(t + 1);
#pragma omp simd
        for (int j = 0; j < M; ++j) dl[j] += w * dn[j];
      }
    }
  }
  for (int t = 0; t < T; ++t) store(dx.row(t), delta.row(t), M, accumulate);
  return lane_total(lanes, M);
}

template <SrnnAct A>
double paper_backward(In x, In dy, Out dx, bool accumulate, float w, int length, Workspace& ws) {
  if (paper_is_linear<A>(w)) return paper_linear_backward<A>(x, dy, dx, accumulate, w, length, ws);
  return paper_steps_backward<A>(x, dy, dx, accumulate, w, length, ws);
}

// ------------------------------------------------------------------ irnn rule
template <SrnnAct A>
void irnn_forward(In x, Out y, float w) {
  const int T = x.steps, M = x.width;
  {
    const float* xr = x.row(0);
    float* yr = y.row(0);
#pragma omp simd
    for (int j = 0; j < M; ++j) yr[j] = activate<A>(xr[j]);
  }
  for (int t = 1; t < T; ++t) {
    const float *xr = x.row(t), *yp = y.row(t - 1);
    float* yr = y.row(t);
#pragma omp simd
    for (int j = 0; j < M; ++j) yr[j] = activate<A>(w * yp[j] + xr[j]);
  }
}

// Reverse sweep: a[t] = act'(y[t]) (dy[t] + w a[t+1]); dx[t] = a[t]; dw += a[t] y[t-1].
template <SrnnAct A>
double irnn_backward(In y, In dy, Out dx, bool accumulate, float w, Workspace& ws) {
  const int T = y.steps, M = y.width;
  float* const next = grow(ws.rows, M);
  std::fill(next, next + M, 0.0f);
  double* const lanes = zeroed_lanes(ws, M);
  for (int t = T - 1; t >= 0; --t) {
    const float *yr = y.row(t), *g = dy.row(t);
#pragma omp simd
    for (int j = 0; j < M; ++j) next[j] = slope<A>(yr[j]) * (g[j] + w * next[j]);
    store(dx.row(t), next, M, accumulate);
    if (t > 0) {
      const float* yp = y.row(t - 1);
#pragma omp simd
      for (int j = 0; j < M; ++j) lanes[j] += double(next[j]) * yp[j];
    }
  }
  return lane_total(lanes, M);
}

// ------------------------------------------------------------------ dispatch
template <SrnnAct A>
void sweep_forward(const SrnnConfig& cfg, In x, Out y, float w, Workspace& ws) {
  switch (cfg.rule) {
    case SrnnRule::Seed:
      seed_forward<A>(x, y, w, cfg.length, ws);
      return;
    case SrnnRule::Paper:
      paper_forward<A>(x, y, w, cfg.length, ws);
      return;
    case SrnnRule::Irnn:
      irnn_forward<A>(x, y, w);
      return;
  }
}
// `y` is the cached forward output (irnn only).
template <SrnnAct A>
double sweep_backward(const SrnnConfig& cfg, In x, In y, In dy, Out dx, bool accumulate, float w,
                      Workspace& ws) {
  switch (cfg.rule) {
    case SrnnRule::Seed:
      return seed_backward<A>(x, dy, dx, accumulate, w, cfg.length, ws);
    case SrnnRule::Paper:
      return paper_backward<A>(x, dy, dx, accumulate, w, cfg.length, ws);
    case SrnnRule::Irnn:
      return irnn_backward<A>(y, dy, dx, accumulate, w, ws);
  }
  return 0.0;
}

// dst (cols x rows) (+)= transpose of src (rows x cols): 8x8 tiles, then the ragged edges.
template <bool Accumulate>
void transpose_into(const float* src, int rows, int cols, float* dst) {
  const int full_rows = rows / 8 * 8, full_cols = cols / 8 * 8;
  for (int i0 = 0; i0 < full_rows; i0 += 8)
    for (int j0 = 0; j0 < full_cols; j0 += 8)
      transpose8x8<Accumulate>(src + static_cast<std::size_t>(i0) * cols + j0, cols,
                               dst + static_cast<std::size_t>(j0) * rows + i0, rows);
  for (int i = 0; i < rows; ++i)
    for (int j = i < full_rows ? full_cols : 0; j < cols; ++j) {
      float& d = dst[static_cast<std::size_t>(j) * rows + i];
      const float v = src[static_cast<std::size_t>(i) * cols + j];
      d = Accumulate ? d + v : v;
    }
}
inline void transpose(const float* src, int rows, int cols, float* dst, bool accumulate = false) {
  if (accumulate)
    transpose_into<true>(src, rows, cols, dst);
  else
    transpose_into<false>(src, rows, cols, dst);
}

// Sweep lines of a plane for direction d. Vertical directions use the plane as is (rows of W);
// horizontal ones the transposed plane (rows of H, one per column of the image).
template <class T>
Lines<T> direction_lines(T* plane, int d, int H, int W) {
  const bool horizontal =
      d == static_cast<int>(Direction::Right) || d == static_cast<int>(Direction::Left);
  const Lines<T> lines = horizontal ? Lines<T>(plane, H, W, H) : Lines<T>(plane, W, H, W);
  const bool against =
      d == static_cast<int>(Direction::Left) || d == static_cast<int>(Direction::Up);
  return against ? lines.reversed() : lines;
}

// Work is split over (image, channel) planes; parallel only when there is enough of it.
inline bool worth_parallel(const Shape& s) { return s.n * s.c > 1 && s.size() >= 16384; }

// body(workspace, item) for every (image, channel) plane `item`, spread over the threads when
// worth it, each thread with its own workspace kept in the cache. A static schedule gives each
// thread the same planes every call, so its workspace is fully grown after the first call.
template <class Body>
void for_each_plane(SrnnCache<Cpu>& cache, const Shape& shape, Body&& body) {
  const std::size_t threads = static_cast<std::size_t>(max_threads());
  if (cache.workspaces.size() < threads) cache.workspaces.resize(threads);
  parallel_for(
      static_cast<long long>(shape.n) * shape.c, worth_parallel(shape), [&](long long item) {
        body(cache.workspaces[static_cast<std::size_t>(thread_id())], static_cast<int>(item));
      });
}

}  // namespace srnn_detail

inline void srnn_forward(CView<Cpu> x, CView<Cpu> w, View<Cpu> y, const SrnnConfig& cfg,
                         SrnnCache<Cpu>& cache) {
  using namespace srnn_detail;
  const int C = x.shape.c, H = x.shape.h, W = x.shape.w;
  const std::size_t HW = x.shape.plane();
  const bool keep_outputs = cfg.rule == SrnnRule::Irnn;
  if (keep_outputs) cache.outputs.resize(y.shape);
  cache.input = x.shape;
  cache.config = cfg;
  cache.filled = true;
  if (x.shape.size() == 0) return;
  float* const kept = keep_outputs ? cache.outputs.data() : nullptr;
  with_act(cfg.act, [&](auto tag) {
    constexpr SrnnAct A = decltype(tag)::value;
    for_each_plane(cache, x.shape, [&](Workspace& ws, int item) {
      const int n = item / C, c = item % C;
      const float* xs = x.channel(n, c);
      float* const xt = grow(ws.x_t, HW);
      transpose(xs, H, W, xt);
      for (int d = 0; d < kDirections; ++d) {
        const int oc = d * C + c;
        const float wd = w.at(d, c, 0, 0);
        const bool horizontal = d < 2;
        float* const out = horizontal ? grow(ws.y_t, HW) : y.channel(n, oc);
        const float* in = horizontal ? xt : xs;
        sweep_forward<A>(cfg, direction_lines(in, d, H, W), direction_lines(out, d, H, W), wd, ws);
        if (horizontal) transpose(out, W, H, y.channel(n, oc));
        if (kept) std::copy(y.channel(n, oc), y.channel(n, oc) + HW, kept + (n * 4 * C + oc) * HW);
      }
    });
  });
}

inline void srnn_backward(CView<Cpu> x, CView<Cpu> w, CView<Cpu> dy, View<Cpu> dx, View<Cpu> dw,
                          bool accumulate, const SrnnConfig& cfg, SrnnCache<Cpu>& cache) {
  using namespace srnn_detail;
  const int N = x.shape.n, C = x.shape.c, H = x.shape.h, W = x.shape.w;
  const std::size_t HW = x.shape.plane();
  const bool irnn = cfg.rule == SrnnRule::Irnn;
  if (irnn && !(cache.filled && cache.input == x.shape && cache.config.rule == cfg.rule &&
                cache.config.act == cfg.act))
    fail_argument(
        "srnn_backward: the irnn rule needs the cache of a forward pass on the same input "
        "shape and configuration");
  if (x.shape.size() == 0) return;
  std::vector<double>& partial = cache.partial_dw;
  partial.assign(static_cast<std::size_t>(N) * C * kDirections, 0.0);
  with_act(cfg.act, [&](auto tag) {
    constexpr SrnnAct A = decltype(tag)::value;
    for_each_plane(cache, x.shape, [&](Workspace& ws, int item) {
      const int n = item / C, c = item % C;
      const float* xs = x.channel(n, c);
      float* const xt = grow(ws.x_t, HW);
      float* const dxt = grow(ws.dx_t, HW);
      transpose(xs, H, W, xt);
      // Right and left add into the transposed dx, down and up into dx itself.
      for (int d = 0; d < kDirections; ++d) {
        const int oc = d * C + c;
        const bool horizontal = d < 2;
        const float* dys = dy.channel(n, oc);
        const float* ys = irnn ? cache.outputs.data() + (n * 4 * C + oc) * HW : nullptr;
        if (horizontal) {
          transpose(dys, H, W, grow(ws.dy_t, HW));
          dys = ws.dy_t.data();
          if (irnn) {
            transpose(ys, H, W, grow(ws.cached_t, HW));
            ys = ws.cached_t.data();
          }
        }
        const In ylines = irnn ? direction_lines(ys, d, H, W) : In();
        const bool acc = horizontal ? d == 1 : true;
        partial[static_cast<std::size_t>(item) * kDirections + d] =
            sweep_backward<A>(cfg, direction_lines(horizontal ? xt : xs, d, H, W), ylines,
                              direction_lines(dys, d, H, W),
                              direction_lines(horizontal ? dxt : dx.channel(n, c), d, H, W), acc,
                              w.at(d, c, 0, 0), ws);
        if (d == 1) transpose(dxt, W, H, dx.channel(n, c), accumulate);
      }
    });
  });
  // Fixed summation order over the batch: the result does not depend on the thread count.
  for (int d = 0; d < kDirections; ++d)
    for (int c = 0; c < C; ++c) {
      double s = 0.0;
      for (int n = 0; n < N; ++n)
        s += partial[(static_cast<std::size_t>(n) * C + c) * kDirections + d];
      dw.at(d, c, 0, 0) = static_cast<float>(dw.at(d, c, 0, 0) + s);
    }
}

}  // namespace unetsrnn::cpu::UNETSRNN_ISA_NS
