// The convolution kernels of one instruction-set path: a kernel header of ops/cpu/foreach_isa.hpp
// (compiled once per path in namespace unetsrnn::cpu::<path>; includes nothing). The ops and the
// products they are made of are described in ops/cpu/conv.hpp.
//
// Shared by every path: the row sources (im2col, transposed-conv phases), the workspace, the
// partition into pixel blocks, the thin 1x1 products and the small rearrangements. The SIMD paths
// add the register-tiled products and the six ops built on them; the portable path's ops run
// their products through Eigen instead (ops/cpu/conv_portable.hpp).
//
// Register tiles. product_tile accumulates a Rows x (2 vectors) tile as sum_k broadcast(A[r][k]) *
// B[k][columns], A read in place through strides. B is laid out in 16-pixel strips whatever the
// path (the layouts below are shared); a tile spans one strip on AVX2 (two 8-float vectors) and
// two strips on AVX-512 (one 16-float vector each), so that both use the same packing code:
//   avx2     6 x 16: twelve accumulators, two B vectors and one broadcast fill 15 of the 16
//            registers (a 4 x 24 tile needs all 16 and the compiler re-reads B from memory);
//   avx512   12 x 32: twenty-four accumulators and two B vectors of the 32 registers, the broadcast
//            folded into each FMA ({1to16}); eight A row pointers more than AVX2 keep the general
//            registers busy but unspilled.
// A 4-row variant (eight accumulators, still enough to hide the FMA latency) finishes row counts
// that are not multiples of the tall one, and an AVX-512 tile at the end of an odd number of
// strips uses one vector.
namespace unetsrnn::cpu::UNETSRNN_ISA_NS {
namespace conv_detail {

constexpr int kStrip = 16;  // pixels per strip of B, on every path
#if defined(UNETSRNN_ISA_AVX512) || defined(UNETSRNN_ISA_AVX512_EMULATED)
constexpr int kTileRows = 12;  // the tallest tile
#else
constexpr int kTileRows = 6;
#endif
constexpr int kShortRows = 4;
constexpr int kTileCols = 2 * kLanes;            // columns of a full tile: 16, or 32 on AVX-512
constexpr int kTileStrips = kTileCols / kStrip;  // strips of B a full tile reads: 1 or 2

// How a tile's accumulators start: at zero, at the bias, or at what the output already holds.
enum class Start { Zero, Bias, Load };

// ------------------------------------------------------------------------------ row sources
// A "rows" source describes a virtual (rows x P) matrix over one image of width W: row(k).fill(i,
// j, len, dst) writes its pixels (i, j .. j + len - 1), all on image row i.

// im2col of a k x k 'same' convolution: row (c, u, v) holds x[c, i + u - k/2, j + v - k/2]. With
// k = 1 the rows are the channel planes themselves.
struct Im2colRows {
  const float* image;
  std::size_t plane;
  int H, W, k;

  struct Row {
    const float* plane;
    int H, W, du, dv;
    void fill(int i, int j, int len, float* d) const {
      const int si = i + du;
      if (si < 0 || si >= H) return zero_floats(d, len);
      const int j0 = j + dv;  // source columns [j0, j0 + len), zero outside [0, W)
      const int lo = std::max(j0, 0), hi = std::min(j0 + len, W);
      if (hi <= lo) return zero_floats(d, len);
      zero_floats(d, lo - j0);
      copy_floats(d + (lo - j0), plane + static_cast<std::size_t>(si) * W + lo, hi - lo);
      zero_floats(d + (hi - j0), j0 + len - hi);
    }
  };
  Row row(int r) const {
    if (k == 1) return Row{image + static_cast<std::size_t>(r) * plane, H, W, 0, 0};
    if (k == 3) {  // the models' kernel: divisions by constants are cheap
      const int c = r / 9, t = r - 9 * c;
      return Row{image + static_cast<std::size_t>(c) * plane, H, W, t / 3 - 1, t % 3 - 1};
    }
    const int taps = k * k, c = r / taps, t = r % taps;
    return Row{image + static_cast<std::size_t>(c) * plane, H, W, t / k - k / 2, t % k - k / 2};
  }
};

// The phases of a transposed conv's output gradient on its input grid (H x W): row (o, u, v)
// holds dy[o, 2i + u, 2j + v].
struct PhaseRows {
  const float* image;  // dy of one image, planes of 2H x 2W
  std::size_t plane;
  int W;

  struct Row {
    const float* base;  // dy[o] offset by the phase (u, v)
    int W2;
    void fill(int i, int j, int len, float* d) const {
      const float* s = base + static_cast<std::size_t>(2 * i) * W2 + 2 * j;
      int t = 0;
      // Eight even elements out of sixteen; the last odd one read is s[2 t + 15] <= s[2 len - 2],
      // so the phase's row is never read past its end.
      for (; t + 8 < len; t += 8) even8(s + 2 * t, d + t);
      for (; t < len; ++t) d[t] = s[2 * t];
    }
  };
  Row row(int r) const {
    const int o = r / 4, u = (r / 2) % 2, v = r % 2;
    return Row{
        image + static_cast<std::size_t>(o) * plane + static_cast<std::size_t>(u) * 2 * W + v,
        2 * W};
  }
};

// d[2 t] = a[t] + bias, d[2 t + 1] = b[t] + bias for t < len: two phases of a transposed conv's
// output row, interleaved.
inline void interleave_phases(const float* a, const float* b, float bias, int len, float* d) {
  int t = 0;
  for (; t + 8 <= len; t += 8) interleave8(a + t, b + t, bias, d + 2 * t);
  for (; t < len; ++t) d[2 * t] = a[t] + bias, d[2 * t + 1] = b[t] + bias;
}

// Writes pixels [p, p + n) of a row, p = i * W + j, splitting at image-row ends.
template <class Row>
void fill_pixels(const Row& row, int W, int i, int j, int n, float* d) {
  while (n > 0) {
    const int len = std::min(n, W - j);
    row.fill(i, j, len, d);
    d += len, n -= len, ++i, j = 0;
  }
}

// ------------------------------------------------------------------------------ workspace
// A layer's scratch carved into one shared region and one packing slice per thread.
struct Workspace {
  float* shared;
  float* first_slice;
  std::size_t slice;
  float* per_thread(int t) const { return first_slice + static_cast<std::size_t>(t) * slice; }
};
inline std::size_t round_to_line(std::size_t floats) { return (floats + 15) / 16 * 16; }
inline Workspace workspace(Tensor<Cpu>& scratch, std::size_t shared, std::size_t per_thread) {
  shared = round_to_line(shared), per_thread = round_to_line(per_thread);
  float* base = scratch_for(scratch, shared + per_thread * max_threads());
  return Workspace{base, base + shared, per_thread};
}

// ------------------------------------------------------------------------------ products
// The left operand, read in place: element (r, k) at data[r * row_step + k * col_step] (a kernel
// or its transpose).
struct MatrixA {
  const float* data;
  std::ptrdiff_t row_step, col_step;
  int rows, depth;
  const float* at(int r, int k) const { return data + r * row_step + k * col_step; }
};

struct Epilogue {
  Start first;        // how the first reduction block starts (later ones load)
  const float* bias;  // per output row, with Start::Bias
  bool relu;
};

constexpr int kMaxDepth = 256;  // reduction rows per block: one packed strip (16 KiB) fits L1
constexpr std::size_t kL2Floats = 32768;  // what one pass of a loop nest keeps in L2: 128 KiB

// Reduction blocks of near-equal size, none over kMaxDepth, each a whole number of `unit` rows.
inline int depth_block(int depth, int unit = 1) {
  const int units = depth / unit, max_units = std::max(1, kMaxDepth / unit);
  const int blocks = (units + max_units - 1) / max_units;
  return (units + blocks - 1) / blocks * unit;
}

// A block of pixels [p0, p0 + count) of a W-wide image.
struct PixelBlock {
  int p0, count, W;
  int strips() const { return (count + kStrip - 1) / kStrip; }
};
constexpr int kBlockPixels = 192;  // pixels per packed or in-place unit: its strips stay in L2

// Runs body(image, block, thread) over every pixel block of every image, in parallel (handed out
// one at a time: the cores may be shared); blocks hold `size` pixels (the last of an image fewer).
template <class Body>
void for_each_pixel_block(int images, int pixels, int W, int size, Body&& body) {
  const int blocks = (pixels + size - 1) / size;
  parallel_for_dynamic(static_cast<long long>(images) * blocks, true, [&](long long unit) {
    const int u = static_cast<int>(unit), n = u / blocks, b = u % blocks;
    body(n, PixelBlock{b * size, std::min(size, pixels - b * size), W}, thread_id());
  });
}

// Each row (o, u, v) of T (4 Cout x the block's pixels, rows ld apart) goes to the output phase
// y[o, 2i + u, 2j + v] of image n, plus the bias: rows (o, u, 0) and (o, u, 1) fill output row
// 2i + u, walked row segment by row segment.
inline void scatter_phases(const float* t, std::size_t ld, const float* bias, const PixelBlock& blk,
                           int W, View<Cpu> y, int n) {
  for (int r = 0; r < 4 * y.shape.c; r += 2) {
    const int o = r / 4, u = (r / 2) % 2;
    const float b = bias ? bias[o] : 0.0f;
    const float* s = t + static_cast<std::size_t>(r) * ld;
    float* phase = y.channel(n, o) + static_cast<std::size_t>(u) * 2 * W;
    for (int q = 0, i = blk.p0 / W, j = blk.p0 % W; q < blk.count; ++i, j = 0) {
      const int len = std::min(W - j, blk.count - q);
      interleave_phases(s + q, s + ld + q, b, len,
                        phase + static_cast<std::size_t>(2 * i) * 2 * W + 2 * j);
      q += len;
    }
  }
}

// Pixels per block: a multiple of the tile width, at most kBlockPixels (packed strips must stay in
// L2), with enough blocks to occupy every thread; when there are few blocks, a count the threads
// share evenly (3 blocks on 2 threads would leave one idle a third of the time).
inline int block_size(int images, int H, int W) {
  const int threads = max_threads();
  const int per_image = std::max(1, (threads + images - 1) / images);
  const int P = H * W;
  int blocks = std::max(per_image, (P + kBlockPixels - 1) / kBlockPixels);
  if (images * blocks < 4 * threads) {
    const int total = (images * blocks + threads - 1) / threads * threads;
    blocks = (total + images - 1) / images;
  }
  return std::clamp((P + blocks - 1) / blocks + kTileCols - 1, kTileCols,
                    kBlockPixels + kTileCols - 1) /
         kTileCols * kTileCols;
}

// 1x1 products with at most kThinRows output or reduction rows (the logit head and its backward)
// are too thin for the tile kernel, whose tiles would be mostly padding or call overhead: they run
// as axpys over chunks of pixels instead, streaming X once.
constexpr int kThinRows = 4;
inline bool is_thin(int k, const MatrixA& a) {
  return k == 1 && (a.rows <= kThinRows || a.depth <= kThinRows);
}
inline void thin_product(const MatrixA& a, CView<Cpu> x, View<Cpu> y, const Epilogue& ep) {
  constexpr int kChunk = 512;
  const int N = x.shape.n, P = static_cast<int>(x.shape.plane());
  const int chunks = (P + kChunk - 1) / kChunk;
  const bool parallel = static_cast<long long>(N) * P * (a.rows + a.depth) > 65536;
  parallel_for(N * chunks, parallel, [&](long long unit) {
    const int u = static_cast<int>(unit);
    const int n = u / chunks, p0 = u % chunks * kChunk, np = std::min(kChunk, P - p0);
    float acc[kChunk];
    for (int m = 0; m < a.rows; ++m) {
      float* out = y.channel(n, m) + p0;
      if (ep.first == Start::Load) {
        copy_floats(acc, out, np);
      } else {
        const float start = ep.first == Start::Bias ? ep.bias[m] : 0.0f;
#pragma omp simd
        for (int t = 0; t < np; ++t) acc[t] = start;
      }
      for (int k = 0; k < a.depth; ++k) {
        const float w = *a.at(m, k);
        const float* in = x.channel(n, k) + p0;
#pragma omp simd
        for (int t = 0; t < np; ++t) acc[t] += w * in[t];
      }
      if (ep.relu) {
#pragma omp simd
        for (int t = 0; t < np; ++t) acc[t] = acc[t] > 0.0f ? acc[t] : 0.0f;
      }
      copy_floats(out, acc, np);
    }
  });
}

// The weight gradient of a thin 1x1 product with at most kThinRows output channels (the logit
// head): dw[o][c] += sum over images and pixels of dy[n, o] * x[n, c], as dot products that
// stream each plane once; the tiles would compute mostly padding columns.
inline void thin_gradient(CView<Cpu> x, CView<Cpu> dy, float* dw) {
  constexpr int kChunk = 2048;  // pixels summed in float before joining the double total
  const int N = x.shape.n, Cin = x.shape.c, Cout = dy.shape.c;
  const int P = static_cast<int>(x.shape.plane());
  const bool parallel = static_cast<long long>(N) * P * (Cin + Cout) > 65536;
  parallel_for(Cin, parallel, [&](long long channel) {
    const int c = static_cast<int>(channel);
    for (int o = 0; o < Cout; ++o) {
      double total = 0.0;
      for (int n = 0; n < N; ++n) {
        const float* xs = x.channel(n, c);
        const float* gs = dy.channel(n, o);
        for (int p0 = 0; p0 < P; p0 += kChunk) {
          float partial = 0.0f;
          const int p1 = std::min(P, p0 + kChunk);
#pragma omp simd reduction(+ : partial)
          for (int p = p0; p < p1; ++p) partial += xs[p] * gs[p];
          total += partial;
        }
      }
      dw[static_cast<std::size_t>(o) * Cin + c] += static_cast<float>(total);
    }
  });
}

// db[c] += sum over images and pixels of g[n, c].
inline void add_channel_sums(CView<Cpu> g, float* db) {
  const int C = g.shape.c;
  const std::size_t plane = g.shape.plane();
  parallel_for(C, g.shape.size() > 65536, [&](long long channel) {
    const int c = static_cast<int>(channel);
    double total = 0.0;
    for (int n = 0; n < g.shape.n; ++n) {
      const float* s = g.channel(n, c);
      float partial = 0.0f;
#pragma omp simd reduction(+ : partial)
      for (std::size_t k = 0; k < plane; ++k) partial += s[k];
      total += partial;
    }
    db[c] += static_cast<float>(total);
  });
}

// W~[c][o k k + t] = w[o][c][k k - 1 - t]: the kernel that turns backward data into a convolution.
// In blocks of 16 x 16 channels, so that both sides of the transposition stay in L1.
inline void flip_kernel(CView<Cpu> w, float* flipped) {
  const int Cout = w.shape.n, Cin = w.shape.c, taps = w.shape.h * w.shape.w;
  constexpr int kBlock = 16;
  parallel_for((Cin + kBlock - 1) / kBlock, w.shape.size() > 65536, [&](long long block) {
    const int c0 = static_cast<int>(block) * kBlock;
    for (int o0 = 0; o0 < Cout; o0 += kBlock)
      for (int c = c0; c < std::min(Cin, c0 + kBlock); ++c)
        for (int o = o0; o < std::min(Cout, o0 + kBlock); ++o) {
          const float* s = w.data + (static_cast<std::size_t>(o) * Cin + c) * taps;
          float* d = flipped + (static_cast<std::size_t>(c) * Cout + o) * taps;
          for (int t = 0; t < taps; ++t) d[t] = s[taps - 1 - t];
        }
  });
}

// dw[o][k] += dwt[k][o] for a (K x Cout) dwt, in 8 x 8 blocks.
inline void add_transposed(const float* dwt, int K, int Cout, float* dw) {
  parallel_for((Cout + 7) / 8, static_cast<std::size_t>(K) * Cout > 65536, [&](long long block) {
    const int o0 = static_cast<int>(block) * 8;
    for (int k0 = 0; k0 < K; k0 += 8) {
      const int no = std::min(8, Cout - o0), nk = std::min(8, K - k0);
      for (int o = o0; o < o0 + no; ++o)
        for (int k = k0; k < k0 + nk; ++k)
          dw[static_cast<std::size_t>(o) * K + k] += dwt[static_cast<std::size_t>(k) * Cout + o];
    }
  });
}

#if !defined(UNETSRNN_ISA_PORTABLE)
// ------------------------------------------------------------------------------ the tiles
// An output tile: `rows` x `cols` (at most its height x width) floats at c, rows ldc apart.
struct Tile {
  float* c;
  std::size_t ldc;
  int rows, cols;
};

// Where a tile's B rows live: row k of a 16-column strip at at(k).
struct PackedStrip {  // packed contiguously, [depth][16]
  const float* base;
  const float* at(int k) const { return base + static_cast<std::ptrdiff_t>(k) * kStrip; }
};
struct OffsetStrip {  // anywhere: an origin plus a per-row offset (implicit im2col)
  const float* origin;
  const int* offsets;
  const float* at(int k) const { return origin + offsets[k]; }
};

// tile = start + sum_{k < depth} A[r][k] * B[k][columns], then ReLU when `relu`, for a tile of Rows
// rows and Vecs vectors of columns: vector v of B's row k at b.at(k) + v * second. A's row r
// begins at a[r] and advances by a_step per k (rows past tile.rows repeat a valid row; their
// results are dropped); B's columns are zero where they pad a partial tile. Every loop over `acc`
// is fully unrolled so that the accumulators stay in registers.
template <int Rows, int Vecs, class Strip>
void product_tile(int depth, const float* const a[kTileRows], std::ptrdiff_t a_step, Strip b,
                  std::ptrdiff_t second, Tile tile, Start start, const float* bias, bool relu) {
  constexpr int W = kLanes, Cols = Vecs * W;
  Vec acc[Rows][Vecs];
  float edge[Rows * Cols];  // a partial tile's values, padded to the full shape
  const bool full = tile.rows == Rows && tile.cols == Cols;
  if (start == Start::Load) {
    const float* src = tile.c;
    std::size_t ld = tile.ldc;
    if (!full) {
      zero_floats(edge, Rows * Cols);
      for (int r = 0; r < tile.rows; ++r) copy_floats(edge + r * Cols, tile.c + r * ld, tile.cols);
      src = edge, ld = Cols;
    }
#pragma GCC unroll 16
    for (int r = 0; r < Rows; ++r)
#pragma GCC unroll 2
      for (int v = 0; v < Vecs; ++v) acc[r][v] = vload(src + r * ld + v * W, Vec{});
  } else {
#pragma GCC unroll 16
    for (int r = 0; r < Rows; ++r) {
      const Vec init = start == Start::Bias ? vbroadcast(bias + std::min(r, tile.rows - 1), Vec{})
                                            : vzero(Vec{});
#pragma GCC unroll 2
      for (int v = 0; v < Vecs; ++v) acc[r][v] = init;
    }
  }
  const float* ar[Rows];
#pragma GCC unroll 16
  for (int r = 0; r < Rows; ++r) ar[r] = a[r];
  for (int k = 0; k < depth; ++k) {
    const float* bk = b.at(k);
    Vec bv[Vecs];
#pragma GCC unroll 2
    for (int v = 0; v < Vecs; ++v) bv[v] = vload(bk + v * second, Vec{});
#pragma GCC unroll 16
    for (int r = 0; r < Rows; ++r) {
      const Vec s = vbroadcast(ar[r], Vec{});
#pragma GCC unroll 2
      for (int v = 0; v < Vecs; ++v) acc[r][v] = vfma(s, bv[v], acc[r][v]);
      ar[r] += a_step;
    }
  }
  if (relu) {
#pragma GCC unroll 16
    for (int r = 0; r < Rows; ++r)
#pragma GCC unroll 2
      for (int v = 0; v < Vecs; ++v) acc[r][v] = vrelu(acc[r][v]);
  }
  float* dst = full ? tile.c : edge;
  const std::size_t ld = full ? tile.ldc : Cols;
#pragma GCC unroll 16
  for (int r = 0; r < Rows; ++r)
#pragma GCC unroll 2
    for (int v = 0; v < Vecs; ++v) vstore(dst + r * ld + v * W, acc[r][v]);
  if (full) return;
  for (int r = 0; r < tile.rows; ++r)
    copy_floats(tile.c + r * tile.ldc, edge + r * Cols, tile.cols);
}

// The tile over strips [s, s + kTileStrips) of B (fewer at the end), `count_left` pixels from
// strip s on: how many vectors it spans, its columns, and the distance from its first vector to
// its second. On AVX2 both vectors lie in one strip; on AVX-512 each is a strip, strip s + 1 lying
// `next` floats after strip s (the B provider's next(s)).
struct TileSpan {
  int vecs, cols;
  std::ptrdiff_t second;
};
inline TileSpan tile_span(int s, int strips, int count_left, std::ptrdiff_t next) {
  if constexpr (kTileStrips == 1) {
    (void)s, (void)strips, (void)next;
    return TileSpan{2, std::min(kStrip, count_left), kLanes};
  } else {
    const bool pair = s + 1 < strips;
    return TileSpan{pair ? 2 : 1, std::min(pair ? kTileCols : kStrip, count_left), pair ? next : 0};
  }
}

// Runs the tile of the given height (kTileRows or kShortRows) and span.
template <class Strip>
void product_tile(int height, const TileSpan& span, int depth, const float* const a[kTileRows],
                  std::ptrdiff_t a_step, Strip b, Tile tile, Start start, const float* bias,
                  bool relu) {
  const bool tall = height == kTileRows;
  if (span.vecs == 2) {
    if (tall)
      product_tile<kTileRows, 2>(depth, a, a_step, b, span.second, tile, start, bias, relu);
    else
      product_tile<kShortRows, 2>(depth, a, a_step, b, span.second, tile, start, bias, relu);
  } else if constexpr (kTileStrips > 1) {
    if (tall)
      product_tile<kTileRows, 1>(depth, a, a_step, b, 0, tile, start, bias, relu);
    else
      product_tile<kShortRows, 1>(depth, a, a_step, b, 0, tile, start, bias, relu);
  }
}

// How M rows are cut into tiles: `tall` tiles of `high` rows (kTileRows, or kNarrowRows for the
// 8-column tiles), then `short_tiles` tiles of 4, the last tile possibly partial; chosen to compute
// the fewest padding rows.
struct RowTiles {
  int high, tall = 0, short_tiles = 0;
  explicit RowTiles(int M, int tall_height = kTileRows) : high(tall_height) {
    int best = 1 << 30;
    for (int n4 = 0; n4 <= 2; ++n4) {
      const int n = (std::max(0, M - kShortRows * n4) + high - 1) / high;
      const int waste = high * n + kShortRows * n4 - M;
      if (waste < best) best = waste, tall = n, short_tiles = n4;
    }
  }
  int count() const { return tall + short_tiles; }
  int start(int t) const { return t <= tall ? high * t : high * tall + kShortRows * (t - tall); }
  int height(int t) const { return t < tall ? high : kShortRows; }
};

// The 8-column tile of the weight gradients with at most 8 columns (Cout <= 8): C (Rows x 8, at
// most) += sum_k A[r][k] * B[k][0..8), A's rows advancing by 1, B packed as [depth][8]. Twelve
// rows keep as many accumulators busy as the 6 x 16 tile, without computing 8 padding columns.
// 8-float vectors on every path (AVX-512 included: the columns are 8).
constexpr int kNarrow = 8;
constexpr int kNarrowRows = 12;
template <int Rows>
void product_tile_narrow(int depth, const float* const a[kNarrowRows], const float* b, Tile tile) {
  Vec8 acc[Rows];
  float edge[Rows * kNarrow];
  const bool full = tile.rows == Rows && tile.cols == kNarrow;
  const float* src = tile.c;
  std::size_t ld = tile.ldc;
  if (!full) {
    zero_floats(edge, Rows * kNarrow);
    for (int r = 0; r < tile.rows; ++r)
      copy_floats(edge + r * kNarrow, tile.c + r * tile.ldc, tile.cols);
    src = edge, ld = kNarrow;
  }
#pragma GCC unroll 12
  for (int r = 0; r < Rows; ++r) acc[r] = vload(src + r * ld, Vec8{});
  const float* ar[Rows];
#pragma GCC unroll 12
  for (int r = 0; r < Rows; ++r) ar[r] = a[r];
  for (int k = 0; k < depth; ++k) {
    const Vec8 bk = vload(b + static_cast<std::ptrdiff_t>(k) * kNarrow, Vec8{});
#pragma GCC unroll 12
    for (int r = 0; r < Rows; ++r) acc[r] = vfma(vbroadcast(ar[r] + k, Vec8{}), bk, acc[r]);
  }
  if (full) {
#pragma GCC unroll 12
    for (int r = 0; r < Rows; ++r) vstore(tile.c + r * tile.ldc, acc[r]);
    return;
  }
#pragma GCC unroll 12
  for (int r = 0; r < Rows; ++r) vstore(edge + r * kNarrow, acc[r]);
  for (int r = 0; r < tile.rows; ++r)
    copy_floats(tile.c + r * tile.ldc, edge + r * kNarrow, tile.cols);
}

// ------------------------------------------------------------------------------ packing
// B for the forward products: rows [k0, k0 + depth) x the block's pixels as 16-pixel strips,
// dst[(s * depth + k - k0) * 16 + t] = M[k][p0 + 16 s + t], zero past the block. Each row is
// filled into `row_buf` (kBlockPixels floats) in one pass, then cut into strips.
template <class Rows>
void pack_strips(const Rows& rows, int k0, int depth, const PixelBlock& blk, float* dst,
                 float* row_buf) {
  const int strips = blk.strips(), i0 = blk.p0 / blk.W, j0 = blk.p0 % blk.W;
  zero_floats(row_buf + blk.count, strips * kStrip - blk.count);  // the last strip's padding
  for (int k = 0; k < depth; ++k) {
    fill_pixels(rows.row(k0 + k), blk.W, i0, j0, blk.count, row_buf);
    float* d = dst + static_cast<std::size_t>(k) * kStrip;
    for (int s = 0; s < strips; ++s, d += static_cast<std::size_t>(depth) * kStrip)
      copy_floats(d, row_buf + s * kStrip, kStrip);
  }
}

// B for the weight gradients, where the reduction runs over pixels: `count` rows of `depth`
// values, fill(r, dst) writing row r, transposed into strips of `width` (16, or 8 for the narrow
// tiles) columns, dst[(s * depth + p) * width + t] = row(width s + t)[p], zero for columns past
// count. `rows8` holds 8 x round8(depth) floats.
template <class Fill>
void pack_transposed(int count, int depth, float* dst, float* rows8, Fill&& fill,
                     int width = kStrip) {
  const int depth8 = (depth + 7) / 8 * 8, strips = (count + width - 1) / width;
  for (int g = 0; g < strips * width; g += 8) {  // eight columns of one strip at a time
    for (int t = 0; t < 8; ++t) {
      float* d = rows8 + static_cast<std::size_t>(t) * depth8;
      if (g + t < count)
        fill(g + t, d);
      else
        zero_floats(d, depth);
      zero_floats(d + depth, depth8 - depth);
    }
    float* strip = dst + static_cast<std::size_t>(g / width) * depth * width + g % width;
    int p = 0;
    for (; p + 8 <= depth; p += 8) transpose8x8<false>(rows8 + p, depth8, strip + p * width, width);
    for (; p < depth; ++p)
      for (int t = 0; t < 8; ++t) strip[p * width + t] = rows8[t * depth8 + p];
  }
}

// ------------------------------------------------------------------------------ forward products
// B providers of product_block. For each reduction block, prepare(k0, kc) lays out rows
// [k0, k0 + kc) of B for the unit's pixels; strip(s) then gives the s-th 16-pixel strip, and
// next(s) the distance from strip s to strip s + 1 (the same row k of both).

// General B: packed strips from any row source (any kernel, any width, phases).
template <class Rows>
struct PackedB {
  Rows rows;
  PixelBlock blk;
  float* pack;     // depth_block x kBlockPixels
  float* row_buf;  // kBlockPixels
  int kc = 0;
  static std::size_t floats(int depth) {
    return static_cast<std::size_t>(depth_block(depth) + 1) * kBlockPixels;
  }
  void prepare(int k0, int depth) {
    kc = depth;
    pack_strips(rows, k0, depth, blk, pack, row_buf);
  }
  PackedStrip strip(int s) const {
    return PackedStrip{pack + static_cast<std::size_t>(s) * kc * kStrip};
  }
  std::ptrdiff_t next(int) const { return static_cast<std::ptrdiff_t>(kc) * kStrip; }
};

// Copies channels [c0, c0 + channels) x image rows [i0 - k/2, i0 + rows + k/2) of an image into a
// band with zero borders: band[c][t][q] = x[c0 + c][i0 - k/2 + t][q - k/2], zero outside the
// image; rows of pitch W + k - 1, channels band_plane apart.
inline void copy_band(const float* image, std::size_t plane, int H, int W, int k, int c0,
                      int channels, int i0, int rows, float* band, std::size_t band_plane) {
  const int r = k / 2, pitch = W + k - 1;
  for (int c = 0; c < channels; ++c)
    for (int t = 0; t < rows + k - 1; ++t) {
      float* d = band + c * band_plane + static_cast<std::size_t>(t) * pitch;
      const int i = i0 - r + t;
      if (i < 0 || i >= H) {
        zero_floats(d, pitch);
        continue;
      }
      zero_floats(d, r);
      copy_floats(d + r, image + (c0 + c) * plane + static_cast<std::size_t>(i) * W, W);
      zero_floats(d + r + W, r);
    }
}

// B of a k x k kernel on an image whose width is a multiple of 16 (blocks of whole image rows):
// implicit im2col. For each reduction block, the unit's input rows with k/2 rows of context above
// and below are copied into a zero-bordered band (channels x rows x pitch); each (c, u, v) row of
// a strip is then a shifted run of the band. (Packed strips would write every input value k*k
// times.) Reduction blocks hold whole channels and every band has the same geometry, so one offset
// table serves all blocks and units.
struct BandB {
  // The band geometry of an op: units of at most max_rows image rows.
  struct Geometry {
    int W, k, max_rows;
    int pitch() const { return W + k - 1; }
    int plane() const { return (max_rows + k - 1) * pitch(); }
    std::size_t floats(int depth) const {
      return static_cast<std::size_t>(depth_block(depth, k * k) / (k * k)) * plane();
    }
    // offsets[(c, u, v) of a block] = c * plane + u * pitch + v.
    void fill_offsets(int depth, int* offsets) const {
      const int block = depth_block(depth, k * k);
      for (int c = 0, j = 0; j < block; ++c)
        for (int u = 0; u < k; ++u)
          for (int v = 0; v < k; ++v) offsets[j++] = c * plane() + u * pitch() + v;
    }
  };
  const float* image;
  std::size_t image_plane;
  int H;
  Geometry g;
  PixelBlock blk;
  float* band;
  const int* offsets;

  void prepare(int k0, int depth) {
    const int taps = g.k * g.k;
    copy_band(image, image_plane, H, g.W, g.k, k0 / taps, depth / taps, blk.p0 / g.W,
              blk.count / g.W, band, g.plane());
  }
  // Strip s starts at pixel (i, j); its (u, v) = (0, 0) row reads input (i - k/2, j - k/2).
  OffsetStrip strip(int s) const {
    const int p = s * kStrip, i = p / g.W, j = p % g.W;
    return OffsetStrip{band + i * g.pitch() + j, offsets};
  }
  // Strips never straddle image rows (W is a multiple of 16): the next one is 16 columns on, or at
  // the start of the next band row.
  std::ptrdiff_t next(int s) const {
    const int j = s * kStrip % g.W;
    return j + kStrip < g.W ? kStrip : g.pitch() - j;
  }
};

// out[m * ldo + t] for t < blk.count (out at the block's first pixel) = epilogue of
// sum_k A[m][k] * B[k][p0 + t].
template <class BProvider>
void product_block(const MatrixA& a, BProvider& b, int row_unit, const PixelBlock& blk, float* out,
                   std::size_t ldo, const Epilogue& ep) {
  const int M = a.rows, strips = blk.strips(), kc_max = depth_block(a.depth, row_unit);
  const RowTiles tiles(M);
  // Tiles of A rows that one pass over the strips reuses from L2.
  const int group = std::max(1, static_cast<int>(kL2Floats / kc_max) / kTileRows);
  for (int k0 = 0; k0 < a.depth; k0 += kc_max) {
    const int kc = std::min(kc_max, a.depth - k0);
    b.prepare(k0, kc);
    const Start start = k0 == 0 ? ep.first : Start::Load;
    const bool relu = ep.relu && k0 + kc >= a.depth;
    for (int g0 = 0; g0 < tiles.count(); g0 += group)
      for (int s = 0; s < strips; s += kTileStrips) {
        const TileSpan span = tile_span(s, strips, blk.count - s * kStrip, b.next(s));
        for (int t = g0; t < std::min(tiles.count(), g0 + group); ++t) {
          const int m = tiles.start(t), height = tiles.height(t);
          const Tile tile{out + static_cast<std::size_t>(m) * ldo + s * kStrip, ldo,
                          std::min(height, M - m), span.cols};
          const float* arow[kTileRows];
          for (int r = 0; r < kTileRows; ++r) arow[r] = a.at(std::min(m + r, M - 1), k0);
          product_tile(height, span, kc, arow, a.col_step, b.strip(s), tile, start,
                       ep.bias ? ep.bias + m : nullptr, relu);
        }
      }
  }
}

// Image rows per band block: about kBandPixels, as whole rows; when there are few blocks, a count
// the threads share evenly.
constexpr int kBandPixels = 768;  // a band copies (rows + k - 1) / rows of its input: keep it low
inline int band_rows(int images, int H, int W) {
  const int threads = max_threads();
  int per_image =
      std::max((threads + images - 1) / images, (H * W + kBandPixels - 1) / kBandPixels);
  if (images * per_image < 4 * threads) {  // few blocks: make their total a multiple of the threads
    const int total = (images * per_image + threads - 1) / threads * threads;
    per_image = (total + images - 1) / images;
  }
  per_image = std::min(per_image, H);
  return (H + per_image - 1) / per_image;
}

// How convolve lays out B (im2col of its input), and what memory it needs. 1x1 kernels pack their
// strips too, rather than read the input planes in place: in place, a strip's rows are whole
// planes apart, strides that alias in the caches (the 40 x 48 and 80 x 96 planes of the SRNN skip
// links put a strip's 256 rows in 8 and 2 of L1's 64 sets, and into few enough L2 sets that every
// tile refetched them from L3): their 1x1 products from 4C channels ran at a third of the other
// convolutions' rate. Packing costs one copy of each input value per M multiply-adds.
enum class Layout { Band, Packed };
struct ConvolvePlan {
  Layout layout;
  int block;                  // pixels per unit
  std::size_t shared_floats;  // the offset table, shared by all threads
  std::size_t thread_floats;  // per thread
  ConvolvePlan(int depth, int k, int N, int H, int W) {
    if (k > 1 && W % kStrip == 0) {
      layout = Layout::Band, block = band_rows(N, H, W) * W;
      shared_floats = depth_block(depth, k * k);
      thread_floats = BandB::Geometry{W, k, block / W}.floats(depth);
    } else {
      layout = Layout::Packed, block = block_size(N, H, W);
      shared_floats = 0, thread_floats = PackedB<Im2colRows>::floats(depth);
    }
  }
};

// Y (Cout x P per image) (+)= epilogue of A * im2col_k(X): the conv forward and backward data.
// `shared` holds plan.shared_floats, ws.per_thread plan.thread_floats.
inline void convolve(const ConvolvePlan& plan, const MatrixA& a, CView<Cpu> x, int k, View<Cpu> y,
                     const Epilogue& ep, float* shared, const Workspace& ws) {
  const int N = x.shape.n, H = x.shape.h, W = x.shape.w, P = H * W;
  const std::size_t plane = x.shape.plane(), ldo = y.shape.plane();
  int* offsets = reinterpret_cast<int*>(shared);
  if (plan.layout == Layout::Band) {
    const BandB::Geometry g{W, k, plan.block / W};
    g.fill_offsets(a.depth, offsets);
    for_each_pixel_block(N, P, W, plan.block, [&](int n, PixelBlock blk, int t) {
      BandB b{x.image(n), plane, H, g, blk, ws.per_thread(t), offsets};
      product_block(a, b, k * k, blk, y.image(n) + blk.p0, ldo, ep);
    });
    return;
  }
  const std::size_t row_buf_at = static_cast<std::size_t>(depth_block(a.depth)) * kBlockPixels;
  for_each_pixel_block(N, P, W, plan.block, [&](int n, PixelBlock blk, int t) {
    float* slice = ws.per_thread(t);
    PackedB<Im2colRows> b{Im2colRows{x.image(n), plane, H, W, k}, blk, slice, slice + row_buf_at};
    product_block(a, b, 1, blk, y.image(n) + blk.p0, ldo, ep);
  });
}

// ------------------------------------------------------------------------------ weight gradients
// C[a][b] += sum over images n and pixels p of A_n[a][p] * B_n[b][p], the reduction running over
// pixels in blocks. A's rows are read in place: from the tensor itself (PlaneRows) or from a
// zero-bordered band of input rows (BandRows, im2col rows of a k x k kernel). B's rows come from a
// row source and are packed transposed per block, over the same reduction positions as A. The
// units form a grid of ranges of A rows x ranges of B strips; each unit owns its part of C, so no
// two threads ever write the same element.
struct GradientShape {
  int images, H, W;
  int a_count, b_count;  // rows of A and of B (= rows and columns of C)
  int a_ranges, b_ranges;
  // At most 8 columns: 12 x 8 tiles (kNarrow), else the tall and short tiles.
  bool narrow() const { return b_count <= kNarrow; }
  int tall_rows() const { return narrow() ? kNarrowRows : kTileRows; }
  int columns() const {  // B columns of one unit: whole tiles
    const int tiles = (b_count + kTileCols - 1) / kTileCols;
    return std::min((tiles + b_ranges - 1) / b_ranges * kTileCols,
                    (b_count + kStrip - 1) / kStrip * kStrip);
  }
  // Reduction positions per block: one unit's packed B strips (columns x block) stay in L2.
  int block_positions() const {
    const int fit = static_cast<int>(2 * kL2Floats / columns()) / 8 * 8;
    return std::clamp(fit, 64, 2048);
  }
};

// The A operands of gradient_product. Each says how a pixel block maps to reduction positions
// (positions(np)), how B's rows are laid over them (fill_b), and, per unit, where A's rows are
// (unit(...).prepare for each image and block, then row(a)).

// A's rows are planes of a tensor (dY, or X of a 1x1 kernel): row a of image n at
// base(n) + a * plane; the reduction positions are the block's pixels, any run of them.
template <class Base>
struct PlaneRows {
  Base base;
  std::size_t plane;
  int H, W;
  int block_pixels(const GradientShape& g) const { return std::min(H * W, g.block_positions()); }
  int positions(int np) const { return np; }
  template <class Row>
  void fill_b(const Row& row, int p0, int np, float* d) const {
    fill_pixels(row, W, p0 / W, p0 % W, np, d);
  }
  std::size_t floats(const GradientShape&, int) const { return 0; }
  struct Unit {
    const PlaneRows* src;
    const float* image = nullptr;
    int p0 = 0;
    void prepare(int n, int block_p0, int) { image = src->base(n), p0 = block_p0; }
    const float* row(int a) const { return image + a * src->plane + p0; }
  };
  Unit unit(const GradientShape&, int, int, float*) const { return Unit{this}; }
};

// A's rows are the im2col rows (c, u, v) of a k x k kernel on X, read in place from a band of the
// block's input rows (copy_band, the unit's channels only). Blocks are whole image rows and the
// reduction positions are the band's, rows of pitch W + k - 1 whose k - 1 border columns are zero
// in B; the last row's border is left out, so that A is never read past the band. (Packing the
// im2col rows instead would write each input value k*k times.)
struct BandRows {
  const float* x;  // image 0
  std::size_t image_stride, plane;
  int H, W, k;
  int pitch() const { return W + k - 1; }
  int block_rows(const GradientShape& g) const {
    return std::clamp(g.block_positions() / pitch(), 1, H);
  }
  int block_pixels(const GradientShape& g) const { return block_rows(g) * W; }
  int positions(int np) const { return (np / W - 1) * pitch() + W; }
  template <class Row>
  void fill_b(const Row& row, int p0, int np, float* d) const {
    const int i0 = p0 / W, rows = np / W;
    for (int t = 0; t < rows; ++t) {
      row.fill(i0 + t, 0, W, d + t * pitch());
      if (t + 1 < rows) zero_floats(d + t * pitch() + W, pitch() - W);
    }
  }
  std::size_t band_plane(const GradientShape& g) const {
    return static_cast<std::size_t>(block_rows(g) + k - 1) * pitch();
  }
  // Per thread: the band of one unit's channels (its rows may straddle two more channels).
  std::size_t floats(const GradientShape& g, int max_a_rows) const {
    return static_cast<std::size_t>(max_a_rows / (k * k) + 2) * band_plane(g);
  }
  struct Unit {
    const BandRows* src;
    std::size_t band_plane;
    float* band;
    int c_lo, channels;
    void prepare(int n, int p0, int np) {
      const int W = src->W;
      copy_band(src->x + n * src->image_stride, src->plane, src->H, W, src->k, c_lo, channels,
                p0 / W, np / W, band, band_plane);
    }
    const float* row(int a) const {
      const int taps = src->k * src->k, c = a / taps, t = a % taps;
      return band + (c - c_lo) * band_plane + (t / src->k) * src->pitch() + t % src->k;
    }
  };
  Unit unit(const GradientShape& g, int a_begin, int a_end, float* buffer) const {
    const int taps = k * k, c_lo = a_begin / taps, c_hi = (a_end + taps - 1) / taps;
    return Unit{this, band_plane(g), buffer, c_lo, c_hi - c_lo};
  }
};

// Per-thread floats of gradient_product: B strips, eight rows for transposing, the A band.
template <class ARows>
std::size_t gradient_floats(const GradientShape& g, const ARows& a) {
  const int a_tiles = RowTiles(g.a_count, g.tall_rows()).count();
  const int max_a_rows = ((a_tiles + g.a_ranges - 1) / g.a_ranges + 1) * g.tall_rows();
  const std::size_t positions = round_to_line(a.positions(a.block_pixels(g)));
  return (static_cast<std::size_t>(g.columns()) + 8) * positions + a.floats(g, max_a_rows);
}

template <class ARows, class BRows>
void gradient_product(const GradientShape& g, const ARows& a_rows, BRows&& b_rows, float* c,
                      std::size_t ldc, const Workspace& ws) {
  const int P = g.H * g.W, cols = g.columns(), block = a_rows.block_pixels(g);
  const std::size_t positions = round_to_line(a_rows.positions(block));
  const RowTiles tiles(g.a_count, g.tall_rows());
  parallel_for_dynamic(g.a_ranges * g.b_ranges, true, [&](long long unit) {
    const int u = static_cast<int>(unit), ar = u / g.b_ranges, br = u % g.b_ranges;
    const int t_begin = tiles.count() * ar / g.a_ranges;
    const int t_end = tiles.count() * (ar + 1) / g.a_ranges;
    const int a_begin = tiles.start(t_begin), a_end = std::min(g.a_count, tiles.start(t_end));
    const int b_begin = br * cols, b_end = std::min(g.b_count, b_begin + cols);
    if (a_begin >= a_end || b_begin >= b_end) return;
    float* b_pack = ws.per_thread(thread_id());
    float* rows8 = b_pack + static_cast<std::size_t>(cols) * positions;
    auto a = a_rows.unit(g, a_begin, a_end, rows8 + 8 * positions);
    for (int n = 0; n < g.images; ++n) {
      const auto b_src = b_rows(n);
      for (int p0 = 0; p0 < P; p0 += block) {
        const int np = std::min(block, P - p0), depth = a_rows.positions(np);
        a.prepare(n, p0, np);
        const auto fill = [&](int r, float* d) {
          a_rows.fill_b(b_src.row(b_begin + r), p0, np, d);
        };
        if (g.narrow()) {
          pack_transposed(b_end - b_begin, depth, b_pack, rows8, fill, kNarrow);
          for (int t = t_begin; t < t_end; ++t) {
            const int a0 = tiles.start(t), valid = std::min(tiles.height(t), a_end - a0);
            const float* arow[kNarrowRows];
            for (int r = 0; r < kNarrowRows; ++r) arow[r] = a.row(r < valid ? a0 + r : a0);
            const Tile tile{c + static_cast<std::size_t>(a0) * ldc + b_begin, ldc, valid,
                            b_end - b_begin};
            if (tiles.height(t) == kNarrowRows)
              product_tile_narrow<kNarrowRows>(depth, arow, b_pack, tile);
            else
              product_tile_narrow<kShortRows>(depth, arow, b_pack, tile);
          }
          continue;
        }
        pack_transposed(b_end - b_begin, depth, b_pack, rows8, fill);
        const int strips = (b_end - b_begin + kStrip - 1) / kStrip;
        for (int t = t_begin; t < t_end; ++t) {
          const int a0 = tiles.start(t), height = tiles.height(t);
          const int valid = std::min(height, a_end - a0);
          const float* arow[kTileRows];
          // Rows past `valid` repeat row a0 (computed, then dropped by the tile).
          for (int r = 0; r < kTileRows; ++r) arow[r] = a.row(r < valid ? a0 + r : a0);
          for (int s = 0; s < strips; s += kTileStrips) {
            const int b0 = b_begin + s * kStrip;
            const PackedStrip strip{b_pack + static_cast<std::size_t>(s) * depth * kStrip};
            const TileSpan span =  // the packed strips lie depth * 16 floats apart
                tile_span(s, strips, b_end - b0, static_cast<std::ptrdiff_t>(depth) * kStrip);
            const Tile tile{c + static_cast<std::size_t>(a0) * ldc + b0, ldc, valid, span.cols};
            product_tile(height, span, depth, arow, 1, strip, tile, Start::Load, nullptr, false);
          }
        }
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
  const ConvolvePlan plan(K, k, x.shape.n, x.shape.h, x.shape.w);
  const Workspace ws = workspace(scratch, plan.shared_floats, plan.thread_floats);
  convolve(plan, a, x, k, y, ep, ws.shared, ws);
}

// A 'same' convolution of dy with the flipped kernel (for a 1x1 kernel: the transposed one). The
// flipped kernel is a copy with contiguous rows: a 1x1 kernel's W^T read in place would advance its
// tiles' rows by Cin floats per step, one cache line per multiply-add row and all in a few sets.
inline void conv2d_backward_data(CView<Cpu> dy, CView<Cpu> w, View<Cpu> dx, bool accumulate,
                                 Tensor<Cpu>& scratch) {
  const int k = w.shape.h, Cin = dx.shape.c, K = dy.shape.c * k * k;
  const Epilogue ep{accumulate ? Start::Load : Start::Zero, nullptr, false};
  if (is_thin(k, MatrixA{w.data, 1, Cin, Cin, K}))
    return thin_product(MatrixA{w.data, 1, Cin, Cin, K}, dy, dx, ep);
  const ConvolvePlan plan(K, k, dy.shape.n, dy.shape.h, dy.shape.w);
  const std::size_t flipped = round_to_line(w.shape.size());
  const Workspace ws = workspace(scratch, flipped + plan.shared_floats, plan.thread_floats);
  flip_kernel(w, ws.shared);
  convolve(plan, MatrixA{ws.shared, K, 1, Cin, K}, dy, k, dx, ep, ws.shared + flipped, ws);
}

// Two arrangements of dW += dY * im2col(X)^T, chosen by which packing costs less per
// multiply-add: with many output channels, dY's rows are read in place and im2col(X) is packed
// transposed (each packed value then serves Cout multiply-adds); with few, im2col(X)'s rows are
// read in place (from a band, or X itself for 1x1) and dY is packed transposed, into dW^T, which
// is added to dW at the end.
inline void conv2d_backward_params(CView<Cpu> x, CView<Cpu> dy, View<Cpu> dw, View<Cpu> db,
                                   Tensor<Cpu>& scratch) {
  const int k = dw.shape.h, Cout = dy.shape.c, K = x.shape.c * k * k;
  const int H = x.shape.h, W = x.shape.w, N = x.shape.n, threads = max_threads();
  const auto x_rows = [&](int n) { return Im2colRows{x.image(n), x.shape.plane(), H, W, k}; };
  const auto dy_rows = [&](int n) { return Im2colRows{dy.image(n), dy.shape.plane(), H, W, 1}; };
  const auto x_image = [&](int n) { return x.image(n); };
  const auto dy_image = [&](int n) { return dy.image(n); };
  if (k == 1 && Cout <= kThinRows) {
    thin_gradient(x, dy, dw.data);
  } else if (Cout >= 128) {
    // Column ranges of about 256: enough units to balance, and blocks long enough to amortise
    // each tile's load and store of dW.
    const int strips = (K + kStrip - 1) / kStrip;
    const GradientShape g{N, H, W, Cout, K, 1, std::min(strips, std::max(2 * threads, K / 256))};
    const PlaneRows<decltype(dy_image)> a{dy_image, dy.shape.plane(), H, W};
    const Workspace ws = workspace(scratch, 0, gradient_floats(g, a));
    gradient_product(g, a, x_rows, dw.data, static_cast<std::size_t>(K), ws);
  } else {
    const int tiles = (K + kTileRows - 1) / kTileRows;
    const GradientShape g{N, H, W, K, Cout, std::min(tiles, 2 * threads), 1};
    const std::size_t transposed = round_to_line(static_cast<std::size_t>(K) * Cout);
    const auto run = [&](const auto& a) {
      const Workspace ws = workspace(scratch, transposed, gradient_floats(g, a));
      std::fill(ws.shared, ws.shared + transposed, 0.0f);
      gradient_product(g, a, dy_rows, ws.shared, static_cast<std::size_t>(Cout), ws);
      add_transposed(ws.shared, K, Cout, dw.data);
    };
    if (k == 1)
      run(PlaneRows<decltype(x_image)>{x_image, x.shape.plane(), H, W});
    else
      run(BandRows{x.data, x.nstride, x.shape.plane(), H, W, k});
  }
  if (db.data) add_channel_sums(dy, db.data);
}

// Per pixel block: T (4 Cout x block) = W^T * X, then each row (o, u, v) of T goes to the output
// phase y[o, 2i + u, 2j + v], plus the bias.
inline void conv_transpose2x2_forward(CView<Cpu> x, CView<Cpu> w, CView<Cpu> b, View<Cpu> y,
                                      Tensor<Cpu>& scratch) {
  const int Cin = x.shape.c, Cout = y.shape.c, H = x.shape.h, W = x.shape.w, P = H * W;
  const int rows4 = 4 * Cout, N = x.shape.n;
  const MatrixA a{w.data, 1, rows4, rows4, Cin};  // W^T: w is (Cin x 4 Cout)
  // X packed into strips, as a 1x1 convolution's (see ConvolvePlan).
  const std::size_t tile_floats = static_cast<std::size_t>(rows4) * kBlockPixels;
  const std::size_t pack = round_to_line(PackedB<Im2colRows>::floats(Cin));
  const Workspace ws = workspace(scratch, 0, pack + tile_floats);
  const std::size_t row_buf_at = static_cast<std::size_t>(depth_block(Cin)) * kBlockPixels;
  const Epilogue ep{Start::Zero, nullptr, false};
  for_each_pixel_block(N, P, W, block_size(N, H, W), [&](int n, PixelBlock blk, int t) {
    float* slice = ws.per_thread(t);
    float* tile = slice + pack;
    PackedB<Im2colRows> bp{Im2colRows{x.image(n), x.shape.plane(), H, W, 1}, blk, slice,
                           slice + row_buf_at};
    product_block(a, bp, 1, blk, tile, kBlockPixels, ep);
    scatter_phases(tile, kBlockPixels, b.data, blk, W, y, n);
  });
}

// dx (Cin x P) (+)= W (Cin x 4 Cout) * phases of dy (4 Cout x P).
inline void conv_transpose2x2_backward_data(CView<Cpu> dy, CView<Cpu> w, View<Cpu> dx,
                                            bool accumulate, Tensor<Cpu>& scratch) {
  const int Cin = dx.shape.c, rows4 = 4 * dy.shape.c, H = dx.shape.h, W = dx.shape.w;
  const MatrixA a{w.data, rows4, 1, Cin, rows4};
  const Workspace ws = workspace(scratch, 0, PackedB<PhaseRows>::floats(rows4));
  const std::size_t row_buf_at = static_cast<std::size_t>(depth_block(rows4)) * kBlockPixels;
  const Epilogue ep{accumulate ? Start::Load : Start::Zero, nullptr, false};
  const int N = dx.shape.n;
  for_each_pixel_block(N, H * W, W, block_size(N, H, W), [&](int n, PixelBlock blk, int t) {
    float* slice = ws.per_thread(t);
    PackedB<PhaseRows> b{PhaseRows{dy.image(n), dy.shape.plane(), W}, blk, slice,
                         slice + row_buf_at};
    product_block(a, b, 1, blk, dx.image(n) + blk.p0, dx.shape.plane(), ep);
  });
}

// dW (Cin x 4 Cout) += X (Cin x P) * phases of dy^T, X's rows read in place; db[o] += sum of dy[o].
inline void conv_transpose2x2_backward_params(CView<Cpu> x, CView<Cpu> dy, View<Cpu> dw,
                                              View<Cpu> db, Tensor<Cpu>& scratch) {
  const int Cin = x.shape.c, rows4 = 4 * dy.shape.c, H = x.shape.h, W = x.shape.w;
  const int strips = (rows4 + kStrip - 1) / kStrip;
  const GradientShape g{x.shape.n, H, W, Cin, rows4, 1, std::min(strips, 2 * max_threads())};
  const auto x_image = [&](int n) { return x.image(n); };
  const PlaneRows<decltype(x_image)> a{x_image, x.shape.plane(), H, W};
  const Workspace ws = workspace(scratch, 0, gradient_floats(g, a));
  gradient_product(
      g, a,
      [&](int n) {
        return PhaseRows{dy.image(n), dy.shape.plane(), W};
      },
      dw.data, static_cast<std::size_t>(rows4), ws);
  if (db.data) add_channel_sums(dy, db.data);
}
#endif  // !UNETSRNN_ISA_PORTABLE

}  // namespace conv_detail

#if !defined(UNETSRNN_ISA_PORTABLE)
using conv_detail::conv2d_backward_data;
using conv_detail::conv2d_backward_params;
using conv_detail::conv2d_forward;
using conv_detail::conv_transpose2x2_backward_data;
using conv_detail::conv_transpose2x2_backward_params;
using conv_detail::conv_transpose2x2_forward;
#endif

}  // namespace unetsrnn::cpu::UNETSRNN_ISA_NS
