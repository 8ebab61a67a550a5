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
