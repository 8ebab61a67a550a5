/* gemv.c: matmul items of fewer than 6 rows (decode: one token). Each row
 * of x is multiplied with 8 rows of W at a time: 8 independent streams of
 * W in flight (memory-level parallelism; the weights come from DRAM once
 * per token) and 8 accumulators, reduced together by a transpose so the 8
 * results are stored as one vector. Sums follow the 8 lanes of k as the
 * 8-wide blocks of gemm.c's panels do. The next 8 rows are prefetched into
 * L2 while a block is summed. Weights of a narrower format (bf16,
 * f16, q8; mork.h) are widened to f32 as they are loaded: fewer bytes from
 * memory per token for the same arithmetic. */
#include "kernels/mork.h"

MORK void mork_gemv_tile(const float *restrict x, const void *restrict W, int64_t fmt, float *restrict y, int64_t K,
                         int64_t N, int64_t m0, int64_t m1, int64_t n0, int64_t n1);

MORK void mork_gemv_tile(const float *restrict x, const void *restrict W, int64_t fmt, float *restrict y, int64_t K,
                         int64_t N, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  /* bytes of a row of W, and of 8 values of it */
  int64_t esz = fmt == MORRT_FMT_F32 ? 4 : fmt == MORRT_FMT_Q8 ? 1 : 2;
  int64_t rowbytes = fmt == MORRT_FMT_Q8 ? mork_q8_stride(K) : K * esz, step = 8 * esz;
  for (int64_t m = m0; m < m1; m++) {
    const float *xr = x + m * K;
    int64_t n = n0;
    for (; n + 8 <= n1; n += 8) {
      mork_v8 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, a4 = {0}, a5 = {0}, a6 = {0}, a7 = {0};
      /* the next 8 rows are the next block of memory: fetch it into L2 while
       * this one is summed, an equal share per step (rows of a few hundred
       * values are too short for the hardware prefetcher to ramp up) */
      const char *next = (const char *)W + (n + 8) * rowbytes;
      int64_t k = 0;
      if (fmt == MORRT_FMT_Q8) {
        /* whole groups of 32: the 4 products of a group summed unscaled, then
         * one multiply by the row's scale (instead of one per 8 values) */
        int64_t S = mork_q8_stride(K), G = S / MORRT_Q8_GROUP;
        const int8_t *q = (const int8_t *)W + n * S;
        const float *sc = (const float *)((const char *)W + N * S) + n * G;
#define MORK_Q8_ROW(j, acc)                                                                                        \
  do {                                                                                                              \
    const int8_t *r = q + (j) * S + k;                                                                              \
    mork_i8x8 q0, q1, q2, q3;                                                                                       \
    __builtin_memcpy(&q0, r, 8), __builtin_memcpy(&q1, r + 8, 8);                                                   \
    __builtin_memcpy(&q2, r + 16, 8), __builtin_memcpy(&q3, r + 24, 8);                                             \
    mork_v8 t = c0 * __builtin_convertvector(q0, mork_v8) + c1 * __builtin_convertvector(q1, mork_v8) +             \
                c2 * __builtin_convertvector(q2, mork_v8) + c3 * __builtin_convertvector(q3, mork_v8);              \
    acc += t * sc[(j) * G + k / MORRT_Q8_GROUP];                                                                    \
  } while (0)
        for (; k + MORRT_Q8_GROUP <= K; k += MORRT_Q8_GROUP) {
          for (int64_t l = 0; l < 8 * MORRT_Q8_GROUP; l += 64) __builtin_prefetch(next + k * 8 + l, 0, 2);
          mork_v8 c0 = mork_ld(xr + k), c1 = mork_ld(xr + k + 8), c2 = mork_ld(xr + k + 16), c3 = mork_ld(xr + k + 24);
          MORK_Q8_ROW(0, a0);
          MORK_Q8_ROW(1, a1);
          MORK_Q8_ROW(2, a2);
          MORK_Q8_ROW(3, a3);
          MORK_Q8_ROW(4, a4);
          MORK_Q8_ROW(5, a5);
          MORK_Q8_ROW(6, a6);
          MORK_Q8_ROW(7, a7);
        }
#undef MORK_Q8_ROW
      }
      for (; k + 8 <= K; k += 8) {
        for (int64_t l = 0; l < 8 * step; l += 64) __builtin_prefetch(next + k / 8 * 8 * step + l, 0, 2);
        mork_v8 c = mork_ld(xr + k);
        a0 += c * mork_wld8(W, fmt, K, N, n, k), a1 += c * mork_wld8(W, fmt, K, N, n + 1, k);
        a2 += c * mork_wld8(W, fmt, K, N, n + 2, k), a3 += c * mork_wld8(W, fmt, K, N, n + 3, k);
        a4 += c * mork_wld8(W, fmt, K, N, n + 4, k), a5 += c * mork_wld8(W, fmt, K, N, n + 5, k);
        a6 += c * mork_wld8(W, fmt, K, N, n + 6, k), a7 += c * mork_wld8(W, fmt, K, N, n + 7, k);
      }
      mork_v8 s = mork_hsum8(a0, a1, a2, a3, a4, a5, a6, a7);
      for (; k < K; k++)
        for (int j = 0; j < 8; j++) s[j] += xr[k] * mork_wld1(W, fmt, K, N, n + j, k);
      __builtin_memcpy(y + m * N + n, &s, sizeof s);
    }
    for (; n < n1; n++) {
      mork_v8 a = {0};
      int64_t k = 0;
      for (; k + 8 <= K; k += 8) a += mork_ld(xr + k) * mork_wld8(W, fmt, K, N, n, k);
      float s = mork_hsum(a);
      for (; k < K; k++) s += xr[k] * mork_wld1(W, fmt, K, N, n, k);
      y[m * N + n] = s;
    }
  }
}
