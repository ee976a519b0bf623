// The width-generic SIMD layer the CPU kernels are written against: 8- and 16-float vectors with
// loads, stores, broadcasts, FMA and the few shuffles the kernels need (8 x 8 transposes, even
// elements, interleaving).
//
// Included by ops/cpu/foreach_isa.hpp once per instruction-set path, inside that path's target
// region; it defines, in namespace unetsrnn::cpu::<path>:
//   Vec    the widest vector of the path (portable: 8 floats in an array the compiler may
//          vectorise; avx2: __m256; avx512: __m512; avx512_emulated: two __m256, for testing the
//          AVX-512 path's tiling on AVX2 machines),
//   Vec8   an 8-float vector (__m256 on every x86 path),
// and the same operations on both: vload, vbroadcast, vzero (given a value of the vector type as a
// tag: vload(p, Vec{}); a vector type as a template argument would drop its attributes), vstore,
// vfma, vadd, vsub, vrelu; kLanes is the lanes of Vec.
// Each path's section has its own guard: conv.hpp and srnn.hpp both include their kernels through
// foreach_isa.hpp. It includes no header itself (foreach_isa.hpp includes <immintrin.h> outside
// every target region, so that no standard-library inline function is compiled for one path).

#if defined(UNETSRNN_ISA_PORTABLE) && !defined(UNETSRNN_SIMD_PORTABLE_DONE)
#define UNETSRNN_SIMD_PORTABLE_DONE
#define UNETSRNN_SIMD_SECTION
#elif defined(UNETSRNN_ISA_AVX2) && !defined(UNETSRNN_SIMD_AVX2_DONE)
#define UNETSRNN_SIMD_AVX2_DONE
#define UNETSRNN_SIMD_SECTION
#elif defined(UNETSRNN_ISA_AVX512) && !defined(UNETSRNN_SIMD_AVX512_DONE)
#define UNETSRNN_SIMD_AVX512_DONE
#define UNETSRNN_SIMD_SECTION
#elif defined(UNETSRNN_ISA_AVX512_EMULATED) && !defined(UNETSRNN_SIMD_AVX512_EMULATED_DONE)
#define UNETSRNN_SIMD_AVX512_EMULATED_DONE
#define UNETSRNN_SIMD_SECTION
#endif

#ifdef UNETSRNN_SIMD_SECTION
#undef UNETSRNN_SIMD_SECTION

namespace unetsrnn::cpu::UNETSRNN_ISA_NS {

#if defined(UNETSRNN_ISA_PORTABLE)
// ------------------------------------------------------------------------------ portable
// Plain loops over an 8-float array: the compiler vectorises them for whatever the baseline is
// (SSE2, NEON, or -march=...). The portable path's products run through Eigen instead.
struct Vec {
  float v[8];
};
using Vec8 = Vec;
inline Vec vload(const float* p, Vec) {
  Vec r;
  for (int i = 0; i < 8; ++i) r.v[i] = p[i];
  return r;
}
inline Vec vbroadcast(const float* p, Vec) {
  Vec r;
  for (float& e : r.v) e = *p;
  return r;
}
inline Vec vzero(Vec) {
  Vec r;
  for (float& e : r.v) e = 0.0f;
  return r;
}
inline void vstore(float* p, Vec a) {
  for (int i = 0; i < 8; ++i) p[i] = a.v[i];
}
inline Vec vfma(Vec a, Vec b, Vec c) {
  for (int i = 0; i < 8; ++i) c.v[i] += a.v[i] * b.v[i];
  return c;
}
inline Vec vadd(Vec a, Vec b) {
  for (int i = 0; i < 8; ++i) a.v[i] += b.v[i];
  return a;
}
inline Vec vsub(Vec a, Vec b) {
  for (int i = 0; i < 8; ++i) a.v[i] -= b.v[i];
  return a;
}
inline Vec vrelu(Vec a) {
  for (float& e : a.v) e = e > 0.0f ? e : 0.0f;
  return a;
}
// dst[t * ldd + r] (+)= src[r * lds + t] for r, t < 8.
template <bool Accumulate>
inline void transpose8x8(const float* src, std::size_t lds, float* dst, std::size_t ldd) {
  for (int r = 0; r < 8; ++r)
    for (int t = 0; t < 8; ++t) {
      float& d = dst[t * ldd + r];
      d = Accumulate ? d + src[r * lds + t] : src[r * lds + t];
    }
}
// d[t] = s[2 t] for t < 8 (reads s[0 .. 14]).
inline void even8(const float* s, float* d) {
  for (int t = 0; t < 8; ++t) d[t] = s[2 * t];
}
// d[2 t] = a[t] + bias, d[2 t + 1] = b[t] + bias for t < 8.
inline void interleave8(const float* a, const float* b, float bias, float* d) {
  for (int t = 0; t < 8; ++t) d[2 * t] = a[t] + bias, d[2 * t + 1] = b[t] + bias;
}

#else
// ------------------------------------------------------------------------------ x86: 8 floats
using Vec8 = __m256;
inline __m256 vload(const float* p, __m256) { return _mm256_loadu_ps(p); }
inline __m256 vbroadcast(const float* p, __m256) { return _mm256_broadcast_ss(p); }
inline __m256 vzero(__m256) { return _mm256_setzero_ps(); }
inline void vstore(float* p, __m256 a) { _mm256_storeu_ps(p, a); }
inline __m256 vfma(__m256 a, __m256 b, __m256 c) { return _mm256_fmadd_ps(a, b, c); }
inline __m256 vadd(__m256 a, __m256 b) { return _mm256_add_ps(a, b); }
inline __m256 vsub(__m256 a, __m256 b) { return _mm256_sub_ps(a, b); }
inline __m256 vrelu(__m256 a) { return _mm256_max_ps(a, _mm256_setzero_ps()); }

// dst[t * ldd + r] (+)= src[r * lds + t] for r, t < 8: three shuffle stages (unpack pairs, shuffle
// quads, swap 128-bit halves), about five times faster than scalar copies.
template <bool Accumulate>
inline void transpose8x8(const float* src, std::size_t lds, float* dst, std::size_t ldd) {
  const __m256 r0 = _mm256_loadu_ps(src), r1 = _mm256_loadu_ps(src + lds);
  const __m256 r2 = _mm256_loadu_ps(src + 2 * lds), r3 = _mm256_loadu_ps(src + 3 * lds);
  const __m256 r4 = _mm256_loadu_ps(src + 4 * lds), r5 = _mm256_loadu_ps(src + 5 * lds);
  const __m256 r6 = _mm256_loadu_ps(src + 6 * lds), r7 = _mm256_loadu_ps(src + 7 * lds);
  const __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
  const __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
  const __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
  const __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
  const __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  const __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  const __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  const __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  const __m256 out[8] = {
      _mm256_permute2f128_ps(s0, s4, 0x20), _mm256_permute2f128_ps(s1, s5, 0x20),
      _mm256_permute2f128_ps(s2, s6, 0x20), _mm256_permute2f128_ps(s3, s7, 0x20),
      _mm256_permute2f128_ps(s0, s4, 0x31), _mm256_permute2f128_ps(s1, s5, 0x31),
      _mm256_permute2f128_ps(s2, s6, 0x31), _mm256_permute2f128_ps(s3, s7, 0x31)};
  for (int i = 0; i < 8; ++i) {
    float* d = dst + i * ldd;
    if constexpr (Accumulate)
      _mm256_storeu_ps(d, _mm256_add_ps(_mm256_loadu_ps(d), out[i]));
    else
      _mm256_storeu_ps(d, out[i]);
  }
}
// d[t] = s[2 t] for t < 8 (reads s[0 .. 15]).
inline void even8(const float* s, float* d) {
  const __m256 e =
      _mm256_shuffle_ps(_mm256_loadu_ps(s), _mm256_loadu_ps(s + 8), _MM_SHUFFLE(2, 0, 2, 0));
  _mm256_storeu_ps(d, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(e), 0xD8)));
}
// d[2 t] = a[t] + bias, d[2 t + 1] = b[t] + bias for t < 8.
inline void interleave8(const float* a, const float* b, float bias, float* d) {
  const __m256 vb = _mm256_set1_ps(bias);
  const __m256 x = _mm256_add_ps(_mm256_loadu_ps(a), vb);
  const __m256 y = _mm256_add_ps(_mm256_loadu_ps(b), vb);
  const __m256 lo = _mm256_unpacklo_ps(x, y), hi = _mm256_unpackhi_ps(x, y);
  _mm256_storeu_ps(d, _mm256_permute2f128_ps(lo, hi, 0x20));
  _mm256_storeu_ps(d + 8, _mm256_permute2f128_ps(lo, hi, 0x31));
}

#if defined(UNETSRNN_ISA_AVX2)
using Vec = __m256;

#elif defined(UNETSRNN_ISA_AVX512)
// ------------------------------------------------------------------------------ x86: 16 floats
// g++ 12.2 reports -W(maybe-)uninitialized inside its own AVX-512 intrinsics (the self-initialised
// "undefined" vectors of avx512fintrin.h, GCC bug 105593) where they are inlined: silenced here,
// for these wrappers only.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
using Vec = __m512;
inline __m512 vload(const float* p, __m512) { return _mm512_loadu_ps(p); }
// Folded into the FMA as an embedded {1to16} broadcast.
inline __m512 vbroadcast(const float* p, __m512) { return _mm512_set1_ps(*p); }
inline __m512 vzero(__m512) { return _mm512_setzero_ps(); }
inline void vstore(float* p, __m512 a) { _mm512_storeu_ps(p, a); }
inline __m512 vfma(__m512 a, __m512 b, __m512 c) { return _mm512_fmadd_ps(a, b, c); }
inline __m512 vadd(__m512 a, __m512 b) { return _mm512_add_ps(a, b); }
inline __m512 vsub(__m512 a, __m512 b) { return _mm512_sub_ps(a, b); }
inline __m512 vrelu(__m512 a) { return _mm512_max_ps(a, _mm512_setzero_ps()); }
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

#elif defined(UNETSRNN_ISA_AVX512_EMULATED)
// 16 floats as two AVX2 halves: the AVX-512 path's tiles and layouts, run with AVX2 instructions,
// so that their logic is tested on machines without AVX-512 (slow: the tiles spill).
struct Vec {
  __m256 lo, hi;
};
inline Vec vload(const float* p, Vec) { return Vec{_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8)}; }
inline Vec vbroadcast(const float* p, Vec) {
  const __m256 b = _mm256_broadcast_ss(p);
  return Vec{b, b};
}
inline Vec vzero(Vec) { return Vec{_mm256_setzero_ps(), _mm256_setzero_ps()}; }
inline void vstore(float* p, Vec a) {
  _mm256_storeu_ps(p, a.lo);
  _mm256_storeu_ps(p + 8, a.hi);
}
inline Vec vfma(Vec a, Vec b, Vec c) {
  return Vec{_mm256_fmadd_ps(a.lo, b.lo, c.lo), _mm256_fmadd_ps(a.hi, b.hi, c.hi)};
}
inline Vec vadd(Vec a, Vec b) { return Vec{_mm256_add_ps(a.lo, b.lo), _mm256_add_ps(a.hi, b.hi)}; }
inline Vec vsub(Vec a, Vec b) { return Vec{_mm256_sub_ps(a.lo, b.lo), _mm256_sub_ps(a.hi, b.hi)}; }
inline Vec vrelu(Vec a) { return Vec{vrelu(a.lo), vrelu(a.hi)}; }
#endif
#endif  // x86

inline constexpr int kLanes = static_cast<int>(sizeof(Vec) / sizeof(float));

// Short copies and fills inline (the packers move 16-float pieces; a libc call would cost more).
inline void copy_floats(float* d, const float* s, int n) {
  int i = 0;
  for (; i + 8 <= n; i += 8) vstore(d + i, vload(s + i, Vec8{}));
  for (; i < n; ++i) d[i] = s[i];
}
inline void zero_floats(float* d, int n) {
  int i = 0;
  for (; i + 8 <= n; i += 8) vstore(d + i, vzero(Vec8{}));
  for (; i < n; ++i) d[i] = 0.0f;
}

}  // namespace unetsrnn::cpu::UNETSRNN_ISA_NS

#endif  // UNETSRNN_SIMD_SECTION
