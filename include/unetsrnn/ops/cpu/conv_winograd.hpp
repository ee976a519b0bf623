// Winograd minimal filtering F(M x M, 3 x 3), M = 2 or 4, for the 3x3 'same' convolutions
// (forward, and backward data as the 'same' convolution of dY with the flipped, transposed
// kernel): a kernel header of ops/cpu/foreach_isa.hpp, compiled once per path after
// conv_kernels.hpp and conv_portable.hpp, whose helpers it uses (namespace
// cpu::<path>::conv_detail). The choice between it and the direct products is
// ops/cpu/conv_algo.hpp's.
//
// Each M x M output tile is Y = A^T [sum_c (G g G^T) .* (B^T d B)] A, d the A x A input patch
// under it (A = M + 2). The A^2 element-wise products (16 for F(2x2), 36 for F(4x4)), summed over
// the input channels, are A^2 matrix products per block of tiles: M[xi] (Cout x tiles) = U[xi]
// (Cout x Cin) * V[xi] (Cin x tiles), xi the positions of the transformed tile. Per call the
// filters are transformed once, U = G g G^T, into the shared scratch, [xi][Cout][Cin] (read in
// place as MatrixA). Then per unit (image, block of tiles, range of output channels), in its own
// scratch slice:
//   1. the input transform V = B^T d B of the block's patches of all Cin channels, 8 tiles at a
//      time along a tile row, written straight into the layout the products read (SIMD paths:
//      16-tile strips, [xi][strip][Cin][16], as PackedStrip; portable: row-major [xi][Cin][tiles]
//      for Eigen);
//   2. the A^2 products, by product_block's register tiles (portable: Eigen's GEMM);
//   3. the output transform A^T m A, plus the bias and ReLU (forward) or added to dX (backward,
//      accumulate), straight into the output.
// Blocks: as many tiles as keep V within kBlockFloats (half of L2), at most kMaxBlockTiles. An
// image with no more tiles than one block (the deep low-resolution levels, where U is large and
// the tiles few) is one block, and its units split the output channels into ranges of about
// kRangeRows instead, so that each unit streams its rows of U once per image. Every choice here
// depends on the shapes only, never on the thread count, and each unit owns its output pixels
// and channels and sums over the input channels in a fixed order (Eigen's too: its blocking is
// fixed by the shapes): results do not depend on the thread count.
//
// Rounding: the transforms mix values (V sums up to A^2 inputs with coefficients up to 5 for
// F(4x4), the output transform A^2 products with coefficients up to 8), so the error relative to
// S = sum |w| |x| over an output's terms is a multiple of the direct products': worst case ~7 times
// for F(2x2) and up to ~256 times for F(4x4), measured ~10 times either (tests/
// test_conv_winograd.cpp derives its limits). conv2d_backward_params always runs direct.
namespace unetsrnn::cpu::UNETSRNN_ISA_NS {
namespace conv_detail {

// Arithmetic of the transforms on one tile (float) or eight (Vec8).
inline float wadd(float a, float b) { return a + b; }
inline float wsub(float a, float b) { return a - b; }
inline float wneg(float a) { return -a; }
inline float wfma(float c, float x, float acc) { return c * x + acc; }
inline float wscale(float c, float x) { return c * x; }
inline Vec8 wadd(Vec8 a, Vec8 b) { return vadd(a, b); }
inline Vec8 wsub(Vec8 a, Vec8 b) { return vsub(a, b); }
inline Vec8 wneg(Vec8 a) { return vsub(vzero(Vec8{}), a); }
inline Vec8 wfma(float c, Vec8 x, Vec8 acc) { return vfma(vbroadcast(&c, Vec8{}), x, acc); }
inline Vec8 wscale(float c, Vec8 x) { return wfma(c, x, vzero(Vec8{})); }

// The matrices of F(M x M, 3 x 3) (Lavin and Gray 2016): tiles of M x M outputs from patches of
// A x A inputs, A = M + 2, in A^2 element-wise products. F(2x2): the points 0, 1, -1;
// F(4x4): 0, 1, -1, 2, -2.
template <int M>
struct WinogradMatrices;
template <>
struct WinogradMatrices<2> {
  static constexpr float bt[4][4] = {{1, 0, -1, 0}, {0, 1, 1, 0}, {0, -1, 1, 0}, {0, 1, 0, -1}};
  static constexpr float g[4][3] = {{1, 0, 0}, {0.5f, 0.5f, 0.5f}, {0.5f, -0.5f, 0.5f}, {0, 0, 1}};
  static constexpr float at[2][4] = {{1, 1, 1, 0}, {0, 1, -1, -1}};
};
template <>
struct WinogradMatrices<4> {
  static constexpr float bt[6][6] = {{4, 0, -5, 0, 1, 0},  {0, -4, -4, 1, 1, 0},
                                     {0, 4, -4, -1, 1, 0}, {0, -2, -1, 2, 1, 0},
                                     {0, 2, -1, -2, 1, 0}, {0, 4, 0, -5, 0, 1}};
  static constexpr float g[6][3] = {{1.0f / 4, 0, 0},
                                    {-1.0f / 6, -1.0f / 6, -1.0f / 6},
                                    {-1.0f / 6, 1.0f / 6, -1.0f / 6},
                                    {1.0f / 24, 1.0f / 12, 1.0f / 6},
                                    {1.0f / 24, -1.0f / 12, 1.0f / 6},
                                    {0, 0, 1}};
  static constexpr float at[4][6] = {
      {1, 1, 1, 1, 1, 0}, {0, 1, -1, 2, -2, 0}, {0, 1, 1, 4, 4, 0}, {0, 1, -1, 8, -8, 1}};
};

// sum_k coef[k] x[k stride] over the nonzero coefficients, +-1 as additions (the loops unroll and
// the constant coefficients fold).
template <int K, class T>
T combine(const float* coef, const T* x, int stride) {
  T acc = x[0];
  bool first = true;
#pragma GCC unroll 8
  for (int k = 0; k < K; ++k) {
    const float c = coef[k];
    if (c == 0.0f) continue;
    const T v = x[k * stride];
    if (first)
      acc = c == 1.0f ? v : c == -1.0f ? wneg(v) : wscale(c, v);
    else
      acc = c == 1.0f ? wadd(acc, v) : c == -1.0f ? wsub(acc, v) : wfma(c, v, acc);
    first = false;
  }
  return acc;
}

// out (R x R) = L in L^T for an R x C matrix L (coef rows C apart) and a C x C `in`, row-major.
template <int R, int C, class T>
void sandwich(const float (&l)[R][C], const T* in, T* out) {
  T t[R * C];  // L in
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i)
#pragma GCC unroll 8
    for (int q = 0; q < C; ++q) t[i * C + q] = combine<C>(l[i], in + q, C);
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i)
#pragma GCC unroll 8
    for (int j = 0; j < R; ++j) out[i * R + j] = combine<C>(l[j], t + i * C, 1);
}

// v = B^T d B (A x A); y = A^T m A (M x M); u = G g G^T (A x A, g 3 x 3).
template <int M, class T>
void winograd_input_transform(const T* d, T* v) {
  sandwich(WinogradMatrices<M>::bt, d, v);
}
template <int M, class T>
void winograd_output_transform(const T* m, T* y) {
  sandwich(WinogradMatrices<M>::at, m, y);
}
template <int M, class T>
void winograd_filter_transform(const T* g, T* u) {
  sandwich(WinogradMatrices<M>::g, g, u);
}

// U[xi][row][col] (rows = the convolution's output channels, cols = its input channels) of a
// (Cout, Cin, 3, 3) kernel w: forward row o, col c from w[o][c]; `flipped` (backward data) row c,
// col o from w[o][c] turned by 180 degrees.
template <int M>
void winograd_filters(CView<Cpu> w, bool flipped, float* u) {
  constexpr int kPositions = (M + 2) * (M + 2);
  const int Cout = w.shape.n, Cin = w.shape.c;
  const int rows = flipped ? Cin : Cout, cols = flipped ? Cout : Cin;
  const std::size_t plane = static_cast<std::size_t>(rows) * cols;
  // Eight columns at a time: their taps gathered into vectors, U's rows stored contiguously.
  parallel_for(rows, w.shape.size() > 65536, [&](long long row) {
    const int r = static_cast<int>(row);
    const auto taps = [&](int col) {
      const int o = flipped ? col : r, c = flipped ? r : col;
      return w.data + (static_cast<std::size_t>(o) * Cin + c) * 9;
    };
    float* ur = u + static_cast<std::size_t>(r) * cols;
    int col = 0;
    for (; col + 8 <= cols; col += 8) {
      Vec8 g[9], t[kPositions];
      for (int k = 0; k < 9; ++k) {
        float e[8];
        for (int s = 0; s < 8; ++s) e[s] = taps(col + s)[flipped ? 8 - k : k];
        g[k] = vload(e, Vec8{});
      }
      winograd_filter_transform<M>(g, t);
      for (int xi = 0; xi < kPositions; ++xi) vstore(ur + xi * plane + col, t[xi]);
    }
    for (; col < cols; ++col) {
      const float* s = taps(col);
      float g[9], t[kPositions];
      for (int k = 0; k < 9; ++k) g[k] = s[flipped ? 8 - k : k];
      winograd_filter_transform<M>(g, t);
      for (int xi = 0; xi < kPositions; ++xi) ur[xi * plane + col] = t[xi];
    }
  });
}

// How a call is cut into units (see the top of this file); shapes only.
template <int M>
struct WinogradPlan {
  static constexpr int kIn = M + 2, kPositions = kIn * kIn;   // patch side, products
  static constexpr std::size_t kBlockFloats = 2 * kL2Floats;  // V of one block: 256 KiB
  static constexpr int kMaxBlockTiles = 64;
  static constexpr int kRangeRows = 64;  // output channels per unit when an image is one block
  int N, H, W, TW, tiles;                // TW tiles per tile row, `tiles` per image
  int depth, rows;                       // input and output channels
  int block, blocks;                     // tiles per block (the last of an image fewer), per image
  int range_rows, ranges;                // output channels per unit, ranges per block
  WinogradPlan(int n, int h, int w, int in, int out)
      : N(n), H(h), W(w), TW((w + M - 1) / M), tiles((h + M - 1) / M * TW), depth(in), rows(out) {
    const int fit = static_cast<int>(kBlockFloats / (kPositions * static_cast<std::size_t>(depth)));
    const int max_block = std::clamp(fit / kTileCols * kTileCols, kTileCols, kMaxBlockTiles);
    const int even = (tiles + max_block - 1) / max_block;  // blocks of near-equal size
    block = std::min(tiles, ((tiles + even - 1) / even + kTileCols - 1) / kTileCols * kTileCols);
    blocks = (tiles + block - 1) / block;
    ranges = blocks == 1 ? (rows + kRangeRows - 1) / kRangeRows : 1;
    range_rows = (rows + ranges - 1) / ranges;
    if (ranges > 1) range_rows = (range_rows + 11) / 12 * 12;  // whole 6- and 12-row tiles
    ranges = (rows + range_rows - 1) / range_rows;
  }
  int units() const { return N * blocks * ranges; }
  int strips() const { return (block + kStrip - 1) / kStrip; }
  // V's layout: (xi, c, l) at xi * v_xi + c * v_c + l / 16 * v_strip + l % 16.
#if defined(UNETSRNN_ISA_PORTABLE)
  std::size_t v_c() const { return static_cast<std::size_t>(block); }
  std::size_t v_strip() const { return kStrip; }
  std::size_t v_xi() const { return static_cast<std::size_t>(depth) * block; }
#else
  std::size_t v_c() const { return kStrip; }
  std::size_t v_strip() const { return static_cast<std::size_t>(depth) * kStrip; }
  std::size_t v_xi() const { return static_cast<std::size_t>(strips()) * depth * kStrip; }
#endif
  std::size_t v_floats() const { return round_to_line(kPositions * v_xi()); }
  // M[xi][o][l] at xi * m_xi + o * block + l.
  std::size_t m_xi() const { return static_cast<std::size_t>(range_rows) * block; }
  std::size_t m_floats() const { return round_to_line(kPositions * m_xi()); }
  int row_pitch() const { return M * TW + 24; }  // a padded input row, with even8's overrun
  std::size_t rows_floats() const {
    return round_to_line(kIn * static_cast<std::size_t>(row_pitch()));
  }
  std::size_t shared_floats() const { return kPositions * static_cast<std::size_t>(rows) * depth; }
  std::size_t thread_floats() const {
    std::size_t f = v_floats() + m_floats() + rows_floats();
#if defined(UNETSRNN_ISA_PORTABLE)
    f += gemm_floats(depth_block(depth), block);
#endif
    return f;
  }
};

// The input transform of tiles [t0, t0 + count) of image `x` (depth channels) into V.
template <int M>
void winograd_transform_input(const WinogradPlan<M>& p, const float* x, std::size_t plane, int t0,
                              int count, float* v, float* rows) {
  constexpr int kIn = M + 2, kPositions = kIn * kIn;
  const std::size_t vx = p.v_xi(), vc = p.v_c(), vs = p.v_strip();
  const int pitch = p.row_pitch();
  const auto at = [&](int c, int l) {
    return static_cast<std::size_t>(c) * vc + static_cast<std::size_t>(l / kStrip) * vs +
           l % kStrip;
  };
#if !defined(UNETSRNN_ISA_PORTABLE)
  // The last strip's padding columns: read by the tiles, their results dropped.
  if (count % kStrip)
    for (int xi = 0; xi < kPositions; ++xi)
      for (int c = 0; c < p.depth; ++c)
        zero_floats(v + xi * vx + at(c, count), kStrip - count % kStrip);
#endif
  for (int c = 0; c < p.depth; ++c) {
    const float* img = x + static_cast<std::size_t>(c) * plane;
    for (int t = t0; t < t0 + count;) {
      const int ti = t / p.TW, ja = t % p.TW, jb = std::min(p.TW, ja + (t0 + count - t));
      // Input rows M ti - 1 .. M ti + M, zero-padded: rows[r][q] = x[M ti - 1 + r][q - 1] for
      // q in [M ja, M jb + 3), zero outside the image.
      const int qa = M * ja, qb = M * jb + 3;
      for (int r = 0; r < kIn; ++r) {
        float* row = rows + r * pitch;
        const int i = M * ti - 1 + r;
        if (i < 0 || i >= p.H) {
          zero_floats(row + qa, qb - qa);
          continue;
        }
        const int lo = std::max(qa, 1), hi = std::min(qb, p.W + 1);
        zero_floats(row + qa, lo - qa);
        copy_floats(row + lo, img + static_cast<std::size_t>(i) * p.W + lo - 1, hi - lo);
        zero_floats(row + hi, qb - hi);
      }
      int j = ja, l = t - t0;
      for (; j + 8 <= jb; j += 8, l += 8) {  // eight tiles: columns M j + q of each row
        Vec8 d[kPositions], out[kPositions];
        for (int r = 0; r < kIn; ++r)
          for (int q = 0; q < kIn; ++q) {
            float e[8];
            const float* src = rows + r * pitch + M * j + q;
            if constexpr (M == 2)
              even8(src, e);
            else
              for (int s = 0; s < 8; ++s) e[s] = src[M * s];
            d[kIn * r + q] = vload(e, Vec8{});
          }
        winograd_input_transform<M>(d, out);
        const int lane = l % kStrip;
        for (int xi = 0; xi < kPositions; ++xi) {
          float* dst = v + xi * vx + at(c, l);
          if (lane + 8 <= kStrip) {
            vstore(dst, out[xi]);
          } else {  // the eight straddle two strips
            float e[8];
            vstore(e, out[xi]);
            for (int s = 0; s < 8; ++s) v[xi * vx + at(c, l + s)] = e[s];
          }
        }
      }
      for (; j < jb; ++j, ++l) {
        float d[kPositions], out[kPositions];
        for (int r = 0; r < kIn; ++r)
          for (int q = 0; q < kIn; ++q) d[kIn * r + q] = rows[r * pitch + M * j + q];
        winograd_input_transform<M>(d, out);
        for (int xi = 0; xi < kPositions; ++xi) v[xi * vx + at(c, l)] = out[xi];
      }
      t += jb - ja;
    }
  }
}

// The output epilogue: what a transformed value becomes before it is stored.
struct WinogradOut {
  const float* bias;  // forward, or nullptr
  bool relu, accumulate;
};

// Output rows [o0, o0 + oc) of tiles [t0, t0 + count): y = A^T m A, then the epilogue, into the
// output planes of one image (`out` at channel 0, planes `plane` apart).
template <int M>
void winograd_transform_output(const WinogradPlan<M>& p, const float* m, int o0, int oc, int t0,
                               int count, const WinogradOut& ep, float* out, std::size_t plane) {
  constexpr int kPositions = (M + 2) * (M + 2);
  const std::size_t mx = p.m_xi();
  for (int o = 0; o < oc; ++o) {
    float* y = out + static_cast<std::size_t>(o0 + o) * plane;
    const float* mo = m + static_cast<std::size_t>(o) * p.block;
    const float bias = ep.bias ? ep.bias[o0 + o] : 0.0f;
    for (int t = t0; t < t0 + count;) {
      const int ti = t / p.TW, ja = t % p.TW, jb = std::min(p.TW, ja + (t0 + count - t));
      const int i = M * ti;
      int j = ja, l = t - t0;
      // Eight whole tiles: all M output rows and columns M j .. M j + 8 M - 1 exist.
      for (; j + 8 <= jb && i + M <= p.H && M * j + 8 * M <= p.W; j += 8, l += 8) {
        Vec8 mv[kPositions], yv[M * M];
        for (int xi = 0; xi < kPositions; ++xi) mv[xi] = vload(mo + xi * mx + l, Vec8{});
        winograd_output_transform<M>(mv, yv);
        for (int r = 0; r < M; ++r) {
          float e[M][8], row[8 * M];
          for (int s = 0; s < M; ++s) {
            Vec8 value = yv[M * r + s];
            if (ep.bias) value = vadd(value, vbroadcast(&bias, Vec8{}));
            if (ep.relu) value = vrelu(value);
            vstore(e[s], value);
          }
          if constexpr (M == 2)
            interleave8(e[0], e[1], 0.0f, row);
          else
            for (int q = 0; q < 8; ++q)
              for (int s = 0; s < M; ++s) row[M * q + s] = e[s][q];
          float* dst = y + static_cast<std::size_t>(i + r) * p.W + M * j;
          if (ep.accumulate)
            for (int s = 0; s < 8 * M; s += 8)
              vstore(dst + s, vadd(vload(dst + s, Vec8{}), vload(row + s, Vec8{})));
          else
            copy_floats(dst, row, 8 * M);
        }
      }
      for (; j < jb; ++j, ++l) {  // one tile, clipped at the image's bottom and right edges
        float mt[kPositions], yt[M * M];
        for (int xi = 0; xi < kPositions; ++xi) mt[xi] = mo[xi * mx + l];
        winograd_output_transform<M>(mt, yt);
        for (int r = 0; r < M && i + r < p.H; ++r)
          for (int s = 0; s < M && M * j + s < p.W; ++s) {
            float value = yt[M * r + s] + bias;
            if (ep.relu) value = value > 0.0f ? value : 0.0f;
            float& dst = y[static_cast<std::size_t>(i + r) * p.W + M * j + s];
            dst = ep.accumulate ? dst + value : value;
          }
      }
      t += jb - ja;
    }
  }
}

#if !defined(UNETSRNN_ISA_PORTABLE)
// V[xi] as product_block's B: strip s of the reduction block from row k0 on.
struct WinogradB {
  const float* v;  // V[xi]
  int depth, k0 = 0;
  void prepare(int k, int) { k0 = k; }
  PackedStrip strip(int s) const {
    return PackedStrip{v + (static_cast<std::size_t>(s) * depth + k0) * kStrip};
  }
  std::ptrdiff_t next(int) const { return static_cast<std::ptrdiff_t>(depth) * kStrip; }
};
#endif

// out (+)= the 'same' 3x3 convolution of x with the transformed filters u (p.rows x p.depth per
// position), its epilogue ep; out's planes are those of a View with out.shape.c = p.rows.
template <int M>
void winograd_convolve(const WinogradPlan<M>& p, const float* u, CView<Cpu> x, View<Cpu> out,
                       const WinogradOut& ep, const Workspace& ws) {
  constexpr int kPositions = (M + 2) * (M + 2);
  const std::size_t plane = x.shape.plane(), out_plane = out.shape.plane();
  const std::size_t u_xi = static_cast<std::size_t>(p.rows) * p.depth;
  parallel_for_dynamic(p.units(), true, [&](long long unit) {
    const int q = static_cast<int>(unit), r = q % p.ranges, b = q / p.ranges % p.blocks;
    const int n = q / (p.ranges * p.blocks);
    const int t0 = b * p.block, count = std::min(p.block, p.tiles - t0);
    const int o0 = r * p.range_rows, oc = std::min(p.range_rows, p.rows - o0);
    float* v = ws.per_thread(thread_id());
    float* m = v + p.v_floats();
    float* rows = m + p.m_floats();
    winograd_transform_input(p, x.image(n), plane, t0, count, v, rows);
    for (int xi = 0; xi < kPositions; ++xi) {
      const float* a = u + xi * u_xi + static_cast<std::size_t>(o0) * p.depth;
      float* mxi = m + xi * p.m_xi();
#if defined(UNETSRNN_ISA_PORTABLE)
      float* gemm_buffer = rows + p.rows_floats();
      for (int o = 0; o < oc; ++o) std::fill(mxi + o * p.block, mxi + o * p.block + count, 0.0f);
      const int kc_max = depth_block(p.depth);
      for (int k0 = 0; k0 < p.depth; k0 += kc_max)
        gemm(oc, count, std::min(kc_max, p.depth - k0), Operand{a + k0, p.depth, 1},
             Operand{v + xi * p.v_xi() + static_cast<std::size_t>(k0) * p.block, p.block, 1}, mxi,
             p.block, gemm_buffer);
#else
      WinogradB bv{v + xi * p.v_xi(), p.depth};
      product_block(MatrixA{a, p.depth, 1, oc, p.depth}, bv, 1, PixelBlock{0, count, 1}, mxi,
                    p.block, Epilogue{Start::Zero, nullptr, false});
#endif
    }
    winograd_transform_output(p, m, o0, oc, t0, count, ep, out.image(n), out_plane);
  });
}

// The op: filters transformed (flipped for backward data), then the convolution of `in`.
template <int M>
void winograd_op(CView<Cpu> in, CView<Cpu> w, bool flipped, View<Cpu> out, const WinogradOut& ep,
                 Tensor<Cpu>& scratch) {
  const WinogradPlan<M> p(in.shape.n, in.shape.h, in.shape.w, in.shape.c, out.shape.c);
  const Workspace ws = workspace(scratch, p.shared_floats(), p.thread_floats());
  winograd_filters<M>(w, flipped, ws.shared);
  winograd_convolve(p, ws.shared, in, out, ep, ws);
}
template <int M>
void winograd_forward(CView<Cpu> x, CView<Cpu> w, CView<Cpu> b, View<Cpu> y, Act act,
                      Tensor<Cpu>& scratch) {
  winograd_op<M>(x, w, false, y, WinogradOut{b.data, act == Act::Relu, false}, scratch);
}
template <int M>
void winograd_backward_data(CView<Cpu> dy, CView<Cpu> w, View<Cpu> dx, bool accumulate,
                            Tensor<Cpu>& scratch) {
  winograd_op<M>(dy, w, true, dx, WinogradOut{nullptr, false, accumulate}, scratch);
}

// F(2x2, 3x3) and F(4x4, 3x3).
inline void conv2d_forward_winograd(CView<Cpu> x, CView<Cpu> w, CView<Cpu> b, View<Cpu> y, Act act,
                                    Tensor<Cpu>& scratch) {
  winograd_forward<2>(x, w, b, y, act, scratch);
}
inline void conv2d_backward_data_winograd(CView<Cpu> dy, CView<Cpu> w, View<Cpu> dx,
                                          bool accumulate, Tensor<Cpu>& scratch) {
  winograd_backward_data<2>(dy, w, dx, accumulate, scratch);
}
inline void conv2d_forward_winograd4(CView<Cpu> x, CView<Cpu> w, CView<Cpu> b, View<Cpu> y, Act act,
                                     Tensor<Cpu>& scratch) {
  winograd_forward<4>(x, w, b, y, act, scratch);
}
inline void conv2d_backward_data_winograd4(CView<Cpu> dy, CView<Cpu> w, View<Cpu> dx,
                                           bool accumulate, Tensor<Cpu>& scratch) {
  winograd_backward_data<4>(dy, w, dx, accumulate, scratch);
}

}  // namespace conv_detail

using conv_detail::conv2d_backward_data_winograd;
using conv_detail::conv2d_backward_data_winograd4;
using conv_detail::conv2d_forward_winograd;
using conv_detail::conv2d_forward_winograd4;

}  // namespace unetsrnn::cpu::UNETSRNN_ISA_NS
