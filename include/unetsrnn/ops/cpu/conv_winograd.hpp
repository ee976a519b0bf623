// Winograd F(2x2, 3x3) for the 3x3 'same' convolutions (forward, and backward data as the 'same'
// convolution of dY with the flipped, transposed kernel): a kernel header of
// ops/cpu/foreach_isa.hpp, compiled once per path after conv_kernels.hpp and conv_portable.hpp,
// whose helpers it uses (namespace cpu::<path>::conv_detail). The choice between it and the direct
// products is ops/cpu/conv_algo.hpp's.
//
// Each 2x2 output tile is Y = A^T [sum_c (G g G^T) .* (B^T d B)] A, d the 4x4 input patch under
// it. The 16 element-wise products, summed over the input channels, are 16 matrix products per
// block of tiles: M[xi] (Cout x tiles) = U[xi] (Cout x Cin) * V[xi] (Cin x tiles), xi the 16
// positions of the 4x4 transformed tile. Per call the filters are transformed once, U = G g G^T,
// into the shared scratch, [xi][Cout][Cin] (read in place as MatrixA). Then per unit (image,
// block of tiles, range of output channels), in its own scratch slice:
//   1. the input transform V = B^T d B of the block's patches of all Cin channels, 8 tiles at a
//      time along a tile row, written straight into the layout the products read (SIMD paths:
//      16-tile strips, [xi][strip][Cin][16], as PackedStrip; portable: row-major [xi][Cin][tiles]
//      for Eigen);
//   2. the 16 products, by product_block's register tiles (portable: Eigen's GEMM);
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
// Rounding. The transforms are exact up to float rounding but mix values: V sums up to 4 input
// values, U up to 9 weights times 1/4, the output transform 9 products. The error bound relative
// to S = sum |w| |x| over a direct output's terms is therefore a small multiple of the direct
// one's; the tests hold it to 8e-6 S (the direct products sum 9 Cin terms in float, their error
// is about 1e-7 S per sqrt of the terms). Not for conv2d_backward_params, which stays direct.
namespace unetsrnn::cpu::UNETSRNN_ISA_NS {
namespace conv_detail {

// Arithmetic of the transforms on one tile (float) or eight (Vec8).
inline float wadd(float a, float b) { return a + b; }
inline float wsub(float a, float b) { return a - b; }
inline Vec8 wadd(Vec8 a, Vec8 b) { return vadd(a, b); }
inline Vec8 wsub(Vec8 a, Vec8 b) { return vsub(a, b); }

// v = B^T d B, d and v 4 x 4 row-major. B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1].
template <class T>
void winograd_input_transform(const T d[16], T v[16]) {
  T t[16];
  for (int q = 0; q < 4; ++q) {
    t[q] = wsub(d[q], d[8 + q]);
    t[4 + q] = wadd(d[4 + q], d[8 + q]);
    t[8 + q] = wsub(d[8 + q], d[4 + q]);
    t[12 + q] = wsub(d[4 + q], d[12 + q]);
  }
  for (int r = 0; r < 4; ++r) {
    v[4 * r] = wsub(t[4 * r], t[4 * r + 2]);
    v[4 * r + 1] = wadd(t[4 * r + 1], t[4 * r + 2]);
    v[4 * r + 2] = wsub(t[4 * r + 2], t[4 * r + 1]);
    v[4 * r + 3] = wsub(t[4 * r + 1], t[4 * r + 3]);
  }
}

// y = A^T m A, m 4 x 4 and y 2 x 2 row-major. A^T = [1 1 1 0; 0 1 -1 -1].
template <class T>
void winograd_output_transform(const T m[16], T y[4]) {
  T t[8];
  for (int q = 0; q < 4; ++q) {
    t[q] = wadd(wadd(m[q], m[4 + q]), m[8 + q]);
    t[4 + q] = wsub(wsub(m[4 + q], m[8 + q]), m[12 + q]);
  }
  for (int r = 0; r < 2; ++r) {
    y[2 * r] = wadd(wadd(t[4 * r], t[4 * r + 1]), t[4 * r + 2]);
    y[2 * r + 1] = wsub(wsub(t[4 * r + 1], t[4 * r + 2]), t[4 * r + 3]);
  }
}

// u = G g G^T, g 3 x 3 and u 4 x 4 row-major. G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1].
inline void winograd_filter_transform(const float g[9], float u[16]) {
  float t[12];
  for (int q = 0; q < 3; ++q) {
    t[q] = g[q];
    t[3 + q] = 0.5f * (g[q] + g[3 + q] + g[6 + q]);
    t[6 + q] = 0.5f * (g[q] - g[3 + q] + g[6 + q]);
    t[9 + q] = g[6 + q];
  }
  for (int r = 0; r < 4; ++r) {
    u[4 * r] = t[3 * r];
    u[4 * r + 1] = 0.5f * (t[3 * r] + t[3 * r + 1] + t[3 * r + 2]);
    u[4 * r + 2] = 0.5f * (t[3 * r] - t[3 * r + 1] + t[3 * r + 2]);
    u[4 * r + 3] = t[3 * r + 2];
  }
}

// U[xi][row][col] (rows = the convolution's output channels, cols = its input channels) of a
// (Cout, Cin, 3, 3) kernel w: forward row o, col c from w[o][c]; `flipped` (backward data) row c,
// col o from w[o][c] turned by 180 degrees.
inline void winograd_filters(CView<Cpu> w, bool flipped, float* u) {
  const int Cout = w.shape.n, Cin = w.shape.c;
  const int rows = flipped ? Cin : Cout, cols = flipped ? Cout : Cin;
  const std::size_t plane = static_cast<std::size_t>(rows) * cols;
  parallel_for(rows, w.shape.size() > 65536, [&](long long row) {
    const int r = static_cast<int>(row);
    for (int col = 0; col < cols; ++col) {
      const int o = flipped ? col : r, c = flipped ? r : col;
      const float* s = w.data + (static_cast<std::size_t>(o) * Cin + c) * 9;
      float g[9], t[16];
      for (int k = 0; k < 9; ++k) g[k] = s[flipped ? 8 - k : k];
      winograd_filter_transform(g, t);
      for (int xi = 0; xi < 16; ++xi)
        u[xi * plane + static_cast<std::size_t>(r) * cols + col] = t[xi];
    }
  });
}

// How a call is cut into units (see the top of this file); shapes only.
struct WinogradPlan {
  static constexpr std::size_t kBlockFloats = 2 * kL2Floats;  // V of one block: 256 KiB
  static constexpr int kMaxBlockTiles = 64;
  static constexpr int kRangeRows = 64;  // output channels per unit when an image is one block
  int N, H, W, TW, tiles;                // TW tiles per tile row, `tiles` per image
  int depth, rows;                       // input and output channels
  int block, blocks;                     // tiles per block (the last of an image fewer), per image
  int range_rows, ranges;                // output channels per unit, ranges per block
  WinogradPlan(int n, int h, int w, int in, int out)
      : N(n), H(h), W(w), TW((w + 1) / 2), tiles(((h + 1) / 2) * TW), depth(in), rows(out) {
    const int fit = static_cast<int>(kBlockFloats / (16 * static_cast<std::size_t>(depth)));
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
  std::size_t v_floats() const { return round_to_line(16 * v_xi()); }
  // M[xi][o][l] at xi * m_xi + o * block + l.
  std::size_t m_xi() const { return static_cast<std::size_t>(range_rows) * block; }
  std::size_t m_floats() const { return round_to_line(16 * m_xi()); }
  int row_pitch() const { return 2 * TW + 24; }  // a padded input row, with even8's overrun
  std::size_t rows_floats() const {
    return round_to_line(4 * static_cast<std::size_t>(row_pitch()));
  }
  std::size_t shared_floats() const { return 16 * static_cast<std::size_t>(rows) * depth; }
  std::size_t thread_floats() const {
    std::size_t f = v_floats() + m_floats() + rows_floats();
#if defined(UNETSRNN_ISA_PORTABLE)
    f += gemm_floats(depth_block(depth), block);
#endif
    return f;
  }
};

// The input transform of tiles [t0, t0 + count) of image `x` (depth channels) into V.
inline void winograd_transform_input(const WinogradPlan& p, const float* x, std::size_t plane,
                                     int t0, int count, float* v, float* rows) {
  const std::size_t vx = p.v_xi(), vc = p.v_c(), vs = p.v_strip();
  const int pitch = p.row_pitch();
  const auto at = [&](int c, int l) {
    return static_cast<std::size_t>(c) * vc + static_cast<std::size_t>(l / kStrip) * vs +
           l % kStrip;
  };
#if !defined(UNETSRNN_ISA_PORTABLE)
  // The last strip's padding columns: read by the tiles, their results dropped.
  if (count % kStrip)
    for (int xi = 0; xi < 16; ++xi)
      for (int c = 0; c < p.depth; ++c)
        zero_floats(v + xi * vx + at(c, count), kStrip - count % kStrip);
#endif
  for (int c = 0; c < p.depth; ++c) {
    const float* img = x + static_cast<std::size_t>(c) * plane;
    for (int t = t0; t < t0 + count;) {
      const int ti = t / p.TW, ja = t % p.TW, jb = std::min(p.TW, ja + (t0 + count - t));
      // Input rows 2 ti - 1 .. 2 ti + 2, zero-padded: rows[r][q] = x[2 ti - 1 + r][q - 1] for
      // q in [2 ja, 2 jb + 2], zero outside the image.
      const int qa = 2 * ja, qb = 2 * jb + 3;
      for (int r = 0; r < 4; ++r) {
        float* row = rows + r * pitch;
        const int i = 2 * ti - 1 + r;
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
      for (; j + 8 <= jb; j += 8, l += 8) {  // eight tiles: columns 2 j + q of each row
        Vec8 d[16], out[16];
        for (int r = 0; r < 4; ++r)
          for (int q = 0; q < 4; ++q) {
            float e[8];
            even8(rows + r * pitch + 2 * j + q, e);
            d[4 * r + q] = vload(e, Vec8{});
          }
        winograd_input_transform(d, out);
        const int lane = l % kStrip;
        for (int xi = 0; xi < 16; ++xi) {
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
        float d[16], out[16];
        for (int r = 0; r < 4; ++r)
          for (int q = 0; q < 4; ++q) d[4 * r + q] = rows[r * pitch + 2 * j + q];
        winograd_input_transform(d, out);
        for (int xi = 0; xi < 16; ++xi) v[xi * vx + at(c, l)] = out[xi];
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
inline void winograd_transform_output(const WinogradPlan& p, const float* m, int o0, int oc, int t0,
                                      int count, const WinogradOut& ep, float* out,
                                      std::size_t plane) {
  const std::size_t mx = p.m_xi();
  for (int o = 0; o < oc; ++o) {
    float* y = out + static_cast<std::size_t>(o0 + o) * plane;
    const float* mo = m + static_cast<std::size_t>(o) * p.block;
    const float bias = ep.bias ? ep.bias[o0 + o] : 0.0f;
    for (int t = t0; t < t0 + count;) {
      const int ti = t / p.TW, ja = t % p.TW, jb = std::min(p.TW, ja + (t0 + count - t));
      const int i = 2 * ti;
      int j = ja, l = t - t0;
      // Eight whole tiles: both output rows and columns 2 j .. 2 j + 15 exist.
      for (; j + 8 <= jb && i + 1 < p.H && 2 * j + 16 <= p.W; j += 8, l += 8) {
        Vec8 mv[16], yv[4];
        for (int xi = 0; xi < 16; ++xi) mv[xi] = vload(mo + xi * mx + l, Vec8{});
        winograd_output_transform(mv, yv);
        for (int r = 0; r < 2; ++r) {
          Vec8 a = yv[2 * r], b = yv[2 * r + 1];
          if (ep.bias) {
            const Vec8 vb = vbroadcast(&bias, Vec8{});
            a = vadd(a, vb), b = vadd(b, vb);
          }
          if (ep.relu) a = vrelu(a), b = vrelu(b);
          float ea[8], eb[8], row[16];
          vstore(ea, a), vstore(eb, b);
          interleave8(ea, eb, 0.0f, row);
          float* dst = y + static_cast<std::size_t>(i + r) * p.W + 2 * j;
          if (ep.accumulate)
            for (int s = 0; s < 16; s += 8)
              vstore(dst + s, vadd(vload(dst + s, Vec8{}), vload(row + s, Vec8{})));
          else
            copy_floats(dst, row, 16);
        }
      }
      for (; j < jb; ++j, ++l) {  // one tile, clipped at the image's bottom and right edges
        float mt[16], yt[4];
        for (int xi = 0; xi < 16; ++xi) mt[xi] = mo[xi * mx + l];
        winograd_output_transform(mt, yt);
        for (int r = 0; r < 2 && i + r < p.H; ++r)
          for (int s = 0; s < 2 && 2 * j + s < p.W; ++s) {
            float value = yt[2 * r + s] + bias;
            if (ep.relu) value = value > 0.0f ? value : 0.0f;
            float& dst = y[static_cast<std::size_t>(i + r) * p.W + 2 * j + s];
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

// out (+)= the 'same' 3x3 convolution of x with the transformed filters u (WinogradPlan rows x
// depth), its epilogue ep; out's planes are those of a View with out.shape.c = p.rows.
inline void winograd_convolve(const WinogradPlan& p, const float* u, CView<Cpu> x, View<Cpu> out,
                              const WinogradOut& ep, const Workspace& ws) {
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
    for (int xi = 0; xi < 16; ++xi) {
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

inline void conv2d_forward_winograd(CView<Cpu> x, CView<Cpu> w, CView<Cpu> b, View<Cpu> y, Act act,
                                    Tensor<Cpu>& scratch) {
  const WinogradPlan p(x.shape.n, x.shape.h, x.shape.w, x.shape.c, y.shape.c);
  const Workspace ws = workspace(scratch, p.shared_floats(), p.thread_floats());
  winograd_filters(w, false, ws.shared);
  winograd_convolve(p, ws.shared, x, y, WinogradOut{b.data, act == Act::Relu, false}, ws);
}

inline void conv2d_backward_data_winograd(CView<Cpu> dy, CView<Cpu> w, View<Cpu> dx,
                                          bool accumulate, Tensor<Cpu>& scratch) {
  const WinogradPlan p(dy.shape.n, dy.shape.h, dy.shape.w, dy.shape.c, dx.shape.c);
  const Workspace ws = workspace(scratch, p.shared_floats(), p.thread_floats());
  winograd_filters(w, true, ws.shared);
  winograd_convolve(p, ws.shared, dy, dx, WinogradOut{nullptr, false, accumulate}, ws);
}

}  // namespace conv_detail

using conv_detail::conv2d_backward_data_winograd;
using conv_detail::conv2d_forward_winograd;

}  // namespace unetsrnn::cpu::UNETSRNN_ISA_NS
