/* gemm.c: the register-blocked matmul micro-kernel for tiles of many rows
 * (prefill). One work item of mork_matmul_w (rows [m0, m1) x columns
 * [n0, n1), at most MORK_NT = 16 columns) is computed as outer products: the
 * item's 16 columns of W are packed, a block of MORK_GEMM_KC values of K at
 * a time, into an f32 [k][16] panel on the stack (widened from bf16, f16 or
 * q8 there, so the inner loop is the same for every weight format), and 6 rows x 16 columns (12
 * accumulators of 8 floats) run one FMA per accumulator per k with one
 * broadcast of x per row. Sums run over k in order, in f32, a K block at a
 * time through y (the reference accumulates in double; the difference is
 * within the backend's tolerance). Rows of an item that do not fill a block
 * of 6 use blocks of 4, 2 and 1. */
#include "kernels/mork.h"

#ifndef MORK_GEMM_KC
#define MORK_GEMM_KC 256 /* values of K per packed panel: 16 KiB */
#endif

MORK void mork_gemm_tile(const float *restrict x, const void *restrict W, int64_t fmt, float *restrict y, int64_t K,
                         int64_t N, int64_t m0, int64_t m1, int64_t n0, int64_t n1);

static inline mork_v8 bcast(float a) { return (mork_v8){a, a, a, a, a, a, a, a}; }

/* y[m, n0 .. n0+nn) (+)= acc, nn <= 16 */
static inline void put(float *restrict y, int64_t N, int64_t m, int64_t n0, int64_t nn, int first, mork_v8 lo,
                       mork_v8 hi) {
  float *p = y + m * N + n0;
  if (nn == 16) {
    if (!first) lo += mork_ld(p), hi += mork_ld(p + 8);
    __builtin_memcpy(p, &lo, sizeof lo);
    __builtin_memcpy(p + 8, &hi, sizeof hi);
    return;
  }
  float t[16];
  __builtin_memcpy(t, &lo, sizeof lo);
  __builtin_memcpy(t + 8, &hi, sizeof hi);
  for (int64_t j = 0; j < nn; j++) p[j] = first ? t[j] : p[j] + t[j];
}

/* R rows (R in 1, 2, 4, 6) from row m, k in [0, kl) of the panel P and of x at column kc */
#define ROWS_KERNEL(R)                                                                                              \
  static inline void rows_##R(const float *restrict x, const float *restrict P, float *restrict y, int64_t K,      \
                              int64_t N, int64_t m, int64_t kc, int64_t kl, int64_t n0, int64_t nn, int first) {    \
    mork_v8 l0 = {0}, h0 = {0}, l1 = {0}, h1 = {0}, l2 = {0}, h2 = {0}, l3 = {0}, h3 = {0}, l4 = {0}, h4 = {0},    \
            l5 = {0}, h5 = {0};                                                                                    \
    const float *x0 = x + m * K + kc;                                                                               \
    for (int64_t k = 0; k < kl; k++) {                                                                              \
      mork_v8 b0 = mork_ld(P + 16 * k), b1 = mork_ld(P + 16 * k + 8), a;                                            \
      a = bcast(x0[k]), l0 += a * b0, h0 += a * b1;                                                                 \
      if (R > 1) a = bcast(x0[K + k]), l1 += a * b0, h1 += a * b1;                                                  \
      if (R > 2) a = bcast(x0[2 * K + k]), l2 += a * b0, h2 += a * b1;                                              \
      if (R > 2) a = bcast(x0[3 * K + k]), l3 += a * b0, h3 += a * b1;                                              \
      if (R > 4) a = bcast(x0[4 * K + k]), l4 += a * b0, h4 += a * b1;                                              \
      if (R > 4) a = bcast(x0[5 * K + k]), l5 += a * b0, h5 += a * b1;                                              \
    }                                                                                                               \
    put(y, N, m, n0, nn, first, l0, h0);                                                                            \
    if (R > 1) put(y, N, m + 1, n0, nn, first, l1, h1);                                                             \
    if (R > 2) put(y, N, m + 2, n0, nn, first, l2, h2), put(y, N, m + 3, n0, nn, first, l3, h3);                    \
    if (R > 4) put(y, N, m + 4, n0, nn, first, l4, h4), put(y, N, m + 5, n0, nn, first, l5, h5);                    \
  }
ROWS_KERNEL(1)
ROWS_KERNEL(2)
ROWS_KERNEL(4)
ROWS_KERNEL(6)

/* P[k][j] = W[n0 + j][kc + k] for k < kl, j < nn; 0 for j >= nn. Full
 * panels are transposed 8 x 8 at a time in registers (no gathers or
 * scatters). */
static inline void pack(const void *restrict W, int64_t fmt, int64_t K, int64_t N, int64_t n0, int64_t kc,
                        int64_t kl, int64_t nn, float *restrict P) {
  int64_t k = 0;
  if (nn == 16)
    for (; k + 8 <= kl; k += 8)
      for (int h = 0; h < 2; h++) {
        int64_t r = n0 + 8 * h, c = kc + k;
        mork_v8 a0 = mork_wld8(W, fmt, K, N, r, c), a1 = mork_wld8(W, fmt, K, N, r + 1, c);
        mork_v8 a2 = mork_wld8(W, fmt, K, N, r + 2, c), a3 = mork_wld8(W, fmt, K, N, r + 3, c);
        mork_v8 a4 = mork_wld8(W, fmt, K, N, r + 4, c), a5 = mork_wld8(W, fmt, K, N, r + 5, c);
        mork_v8 a6 = mork_wld8(W, fmt, K, N, r + 6, c), a7 = mork_wld8(W, fmt, K, N, r + 7, c);
        mork_v8 b0 = __builtin_shufflevector(a0, a1, 0, 8, 1, 9, 4, 12, 5, 13);
        mork_v8 b1 = __builtin_shufflevector(a0, a1, 2, 10, 3, 11, 6, 14, 7, 15);
        mork_v8 b2 = __builtin_shufflevector(a2, a3, 0, 8, 1, 9, 4, 12, 5, 13);
        mork_v8 b3 = __builtin_shufflevector(a2, a3, 2, 10, 3, 11, 6, 14, 7, 15);
        mork_v8 b4 = __builtin_shufflevector(a4, a5, 0, 8, 1, 9, 4, 12, 5, 13);
        mork_v8 b5 = __builtin_shufflevector(a4, a5, 2, 10, 3, 11, 6, 14, 7, 15);
        mork_v8 b6 = __builtin_shufflevector(a6, a7, 0, 8, 1, 9, 4, 12, 5, 13);
        mork_v8 b7 = __builtin_shufflevector(a6, a7, 2, 10, 3, 11, 6, 14, 7, 15);
        mork_v8 c0 = __builtin_shufflevector(b0, b2, 0, 1, 8, 9, 4, 5, 12, 13);
        mork_v8 c1 = __builtin_shufflevector(b0, b2, 2, 3, 10, 11, 6, 7, 14, 15);
        mork_v8 c2 = __builtin_shufflevector(b1, b3, 0, 1, 8, 9, 4, 5, 12, 13);
        mork_v8 c3 = __builtin_shufflevector(b1, b3, 2, 3, 10, 11, 6, 7, 14, 15);
        mork_v8 c4 = __builtin_shufflevector(b4, b6, 0, 1, 8, 9, 4, 5, 12, 13);
        mork_v8 c5 = __builtin_shufflevector(b4, b6, 2, 3, 10, 11, 6, 7, 14, 15);
        mork_v8 c6 = __builtin_shufflevector(b5, b7, 0, 1, 8, 9, 4, 5, 12, 13);
        mork_v8 c7 = __builtin_shufflevector(b5, b7, 2, 3, 10, 11, 6, 7, 14, 15);
        mork_v8 d[8] = {__builtin_shufflevector(c0, c4, 0, 1, 2, 3, 8, 9, 10, 11),
                        __builtin_shufflevector(c1, c5, 0, 1, 2, 3, 8, 9, 10, 11),
                        __builtin_shufflevector(c2, c6, 0, 1, 2, 3, 8, 9, 10, 11),
                        __builtin_shufflevector(c3, c7, 0, 1, 2, 3, 8, 9, 10, 11),
                        __builtin_shufflevector(c0, c4, 4, 5, 6, 7, 12, 13, 14, 15),
                        __builtin_shufflevector(c1, c5, 4, 5, 6, 7, 12, 13, 14, 15),
                        __builtin_shufflevector(c2, c6, 4, 5, 6, 7, 12, 13, 14, 15),
                        __builtin_shufflevector(c3, c7, 4, 5, 6, 7, 12, 13, 14, 15)};
        for (int i = 0; i < 8; i++) __builtin_memcpy(P + 16 * (k + i) + 8 * h, &d[i], sizeof d[i]);
      }
#pragma clang loop vectorize(disable)
  for (; k < kl; k++)
    for (int64_t j = 0; j < 16; j++) P[16 * k + j] = j < nn ? mork_wld1(W, fmt, K, N, n0 + j, kc + k) : 0.0f;
}

MORK void mork_gemm_tile(const float *restrict x, const void *restrict W, int64_t fmt, float *restrict y, int64_t K,
                         int64_t N, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  float P[MORK_GEMM_KC * 16] __attribute__((aligned(64)));
  int64_t nn = n1 - n0;
  for (int64_t kc = 0; kc < K || kc == 0; kc += MORK_GEMM_KC) {
    int64_t kl = K - kc < MORK_GEMM_KC ? K - kc : MORK_GEMM_KC;
    pack(W, fmt, K, N, n0, kc, kl, nn, P);
    int first = kc == 0;
    int64_t m = m0;
    for (; m + 6 <= m1; m += 6) rows_6(x, P, y, K, N, m, kc, kl, n0, nn, first);
    for (; m + 4 <= m1; m += 4) rows_4(x, P, y, K, N, m, kc, kl, n0, nn, first);
    for (; m + 2 <= m1; m += 2) rows_2(x, P, y, K, N, m, kc, kl, n0, nn, first);
    for (; m < m1; m++) rows_1(x, P, y, K, N, m, kc, kl, n0, nn, first);
  }
}

/* ---- BF16 weights on AVX512-BF16 (morc build --bf16-dot) ------------------------
 * The same work item as mork_gemm_tile, for bf16 weights, with vdpbf16ps,
 * which adds x[k] w[k] + x[k+1] w[k+1] into each of 16 f32 lanes: a dot
 * product 32 values of K at a time. W is read as stored (row-major bf16, no
 * packing); the item's rows are rounded to bf16 (round to nearest even)
 * four at a time into a zero-padded block on the stack, then each block of
 * 4 rows x 4 columns keeps 16 accumulators over the whole K and reduces them
 * at the end. Rounding the activations is the numerical price, and the
 * reason the path is opt-in. Only code built with --bf16-dot for a target
 * with AVX512-BF16 calls it; otherwise morc removes its body before code
 * generation (target.c). */
#if defined(__x86_64__)
#include <immintrin.h>
#define MORK_BF16DOT_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))
#ifndef MORK_BF16DOT_KMAX
#define MORK_BF16DOT_KMAX 4096 /* longer rows go a block of K at a time */
#endif

/* a + b of two vectors' 128-bit quarters: (lo, hi) = (imm_lo, imm_hi) picks */
#define DOT_Q(a, b, lo, hi) _mm512_add_ps(_mm512_shuffle_f32x4(a, b, lo), _mm512_shuffle_f32x4(a, b, hi))
#define DOT_P(a, b) _mm512_add_ps(_mm512_unpacklo_ps(a, b), _mm512_unpackhi_ps(a, b))
#define DOT_D(a, b)                                                                                                  \
  _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(a), _mm512_castps_pd(b))),                      \
                _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(a), _mm512_castps_pd(b))))

/* The 16 lane sums of a0..a15 as one vector: lane 4q + j holds the sum of
 * a(4j + q). Written out (the kernels are compiled without loop unrolling,
 * and arrays indexed in loops would stay in memory). */
MORK_BF16DOT_TARGET static inline __m512 dot_hsum16(__m512 a0, __m512 a1, __m512 a2, __m512 a3, __m512 a4, __m512 a5,
                                                   __m512 a6, __m512 a7, __m512 a8, __m512 a9, __m512 a10, __m512 a11,
                                                   __m512 a12, __m512 a13, __m512 a14, __m512 a15) {
  /* b: quarters 0-1 hold a(2i)'s half sums, 2-3 a(2i+1)'s */
  __m512 b0 = DOT_Q(a0, a1, 0x44, 0xee), b1 = DOT_Q(a2, a3, 0x44, 0xee), b2 = DOT_Q(a4, a5, 0x44, 0xee),
         b3 = DOT_Q(a6, a7, 0x44, 0xee), b4 = DOT_Q(a8, a9, 0x44, 0xee), b5 = DOT_Q(a10, a11, 0x44, 0xee),
         b6 = DOT_Q(a12, a13, 0x44, 0xee), b7 = DOT_Q(a14, a15, 0x44, 0xee);
  /* c: quarter q holds 4 partial sums of a(4i + q) */
  __m512 c0 = DOT_Q(b0, b1, 0x88, 0xdd), c1 = DOT_Q(b2, b3, 0x88, 0xdd), c2 = DOT_Q(b4, b5, 0x88, 0xdd),
         c3 = DOT_Q(b6, b7, 0x88, 0xdd);
  return DOT_D(DOT_P(c0, c1), DOT_P(c2, c3));
}

MORK MORK_BF16DOT_TARGET void mork_gemm_tile_bf16dot(const float *restrict x, const uint16_t *restrict W,
                                                     float *restrict y, int64_t K, int64_t N, int64_t m0, int64_t m1,
                                                     int64_t n0, int64_t n1) {
  uint16_t xb[4 * MORK_BF16DOT_KMAX] __attribute__((aligned(64)));
  for (int64_t kc = 0; kc < K; kc += MORK_BF16DOT_KMAX) {
    const int64_t kl = K - kc < MORK_BF16DOT_KMAX ? K - kc : MORK_BF16DOT_KMAX, kp = (kl + 31) / 32 * 32;
    const __mmask32 tail = kl % 32 ? (__mmask32)((1u << (kl % 32)) - 1) : (__mmask32)0xffffffffu;
    for (int64_t m = m0; m < m1; m += 4) {
      const int64_t R = m1 - m < 4 ? m1 - m : 4;
      for (int64_t r = 0; r < 4; r++) { /* rows past m1: zeros (computed, not stored) */
        const float *xr = r < R ? x + (m + r) * K + kc : x;
        for (int64_t k = 0; k < kp; k += 32) {
          int64_t left = kl - k;
          __mmask16 lo = left >= 16 ? 0xffff : left > 0 ? (__mmask16)((1u << left) - 1) : 0;
          __mmask16 hi = left >= 32 ? 0xffff : left > 16 ? (__mmask16)((1u << (left - 16)) - 1) : 0;
          if (r >= R) lo = hi = 0;
          __m512bh v = _mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(hi, xr + k + 16), _mm512_maskz_loadu_ps(lo, xr + k));
          _mm512_store_si512(xb + r * MORK_BF16DOT_KMAX + k, (__m512i)v);
        }
      }
      for (int64_t c0 = n0; c0 < n1; c0 += 4) {
        __m512 z = _mm512_setzero_ps();
        __m512 s00 = z, s01 = z, s02 = z, s03 = z, s10 = z, s11 = z, s12 = z, s13 = z, s20 = z, s21 = z, s22 = z,
               s23 = z, s30 = z, s31 = z, s32 = z, s33 = z; /* s<row><column> */
        const uint16_t *w0 = W + c0 * K + kc, *w1 = c0 + 1 < n1 ? w0 + K : w0, *w2 = c0 + 2 < n1 ? w0 + 2 * K : w0,
                       *w3 = c0 + 3 < n1 ? w0 + 3 * K : w0;
        const uint16_t *x0 = xb, *x1 = xb + MORK_BF16DOT_KMAX, *x2 = xb + 2 * MORK_BF16DOT_KMAX,
                       *x3 = xb + 3 * MORK_BF16DOT_KMAX;
        for (int64_t k = 0; k < kp; k += 32) {
          __mmask32 mk = k + 32 <= kl ? (__mmask32)0xffffffffu : tail;
          __m512bh b0 = (__m512bh)_mm512_maskz_loadu_epi16(mk, w0 + k), b1 = (__m512bh)_mm512_maskz_loadu_epi16(mk, w1 + k);
          __m512bh b2 = (__m512bh)_mm512_maskz_loadu_epi16(mk, w2 + k), b3 = (__m512bh)_mm512_maskz_loadu_epi16(mk, w3 + k);
          __m512bh a = (__m512bh)_mm512_load_si512(x0 + k);
          s00 = _mm512_dpbf16_ps(s00, a, b0), s01 = _mm512_dpbf16_ps(s01, a, b1);
          s02 = _mm512_dpbf16_ps(s02, a, b2), s03 = _mm512_dpbf16_ps(s03, a, b3);
          a = (__m512bh)_mm512_load_si512(x1 + k);
          s10 = _mm512_dpbf16_ps(s10, a, b0), s11 = _mm512_dpbf16_ps(s11, a, b1);
          s12 = _mm512_dpbf16_ps(s12, a, b2), s13 = _mm512_dpbf16_ps(s13, a, b3);
          a = (__m512bh)_mm512_load_si512(x2 + k);
          s20 = _mm512_dpbf16_ps(s20, a, b0), s21 = _mm512_dpbf16_ps(s21, a, b1);
          s22 = _mm512_dpbf16_ps(s22, a, b2), s23 = _mm512_dpbf16_ps(s23, a, b3);
          a = (__m512bh)_mm512_load_si512(x3 + k);
          s30 = _mm512_dpbf16_ps(s30, a, b0), s31 = _mm512_dpbf16_ps(s31, a, b1);
          s32 = _mm512_dpbf16_ps(s32, a, b2), s33 = _mm512_dpbf16_ps(s33, a, b3);
        }
        float s[16]; /* s[4c + r]: row m + r, column c0 + c */
        _mm512_storeu_ps(s, dot_hsum16(s00, s01, s02, s03, s10, s11, s12, s13, s20, s21, s22, s23, s30, s31, s32, s33));
        for (int64_t r = 0; r < R; r++)
          for (int64_t c = 0; c < 4 && c0 + c < n1; c++) {
            float *p = y + (m + r) * N + c0 + c;
            *p = kc ? *p + s[4 * c + r] : s[4 * c + r];
          }
      }
    }
  }
}
#endif
