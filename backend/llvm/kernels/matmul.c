/* matmul.c: y[M,N] = x[M,K] W[N,K]^T in f32, split into tiles of MORK_MB
 * rows by MORK_NT columns (one work item each). Items of 6 rows or more go
 * to gemm.c's packed micro-kernel, smaller ones to gemv.c; the 4x2 (rows x
 * columns) and 1x4 register blocks below (8-wide vectors accumulated over
 * K) remain for -DMORK_GEMV=0. */
#include "kernels/mork.h"

/* Work items of an [M, N] product. */
MORK int64_t mork_matmul_items(int64_t M, int64_t N) {
  return ((M + MORK_MB - 1) / MORK_MB) * ((N + MORK_NT - 1) / MORK_NT);
}

static inline void block_4x2(const float *restrict x, const float *restrict W, float *restrict y, int64_t K,
                             int64_t N, int64_t m, int64_t n) {
  const float *x0 = x + m * K, *x1 = x0 + K, *x2 = x1 + K, *x3 = x2 + K;
  const float *w0 = W + n * K, *w1 = w0 + K;
  mork_v8 a00 = {0}, a01 = {0}, a10 = {0}, a11 = {0}, a20 = {0}, a21 = {0}, a30 = {0}, a31 = {0};
  int64_t k = 0;
  for (; k + 8 <= K; k += 8) {
    mork_v8 b0 = mork_ld(w0 + k), b1 = mork_ld(w1 + k);
    mork_v8 c = mork_ld(x0 + k);
    a00 += c * b0, a01 += c * b1;
    c = mork_ld(x1 + k);
    a10 += c * b0, a11 += c * b1;
    c = mork_ld(x2 + k);
    a20 += c * b0, a21 += c * b1;
    c = mork_ld(x3 + k);
    a30 += c * b0, a31 += c * b1;
  }
  float s00 = mork_hsum(a00), s01 = mork_hsum(a01), s10 = mork_hsum(a10), s11 = mork_hsum(a11);
  float s20 = mork_hsum(a20), s21 = mork_hsum(a21), s30 = mork_hsum(a30), s31 = mork_hsum(a31);
  for (; k < K; k++) {
    s00 += x0[k] * w0[k], s01 += x0[k] * w1[k];
    s10 += x1[k] * w0[k], s11 += x1[k] * w1[k];
    s20 += x2[k] * w0[k], s21 += x2[k] * w1[k];
    s30 += x3[k] * w0[k], s31 += x3[k] * w1[k];
  }
  y[m * N + n] = s00, y[m * N + n + 1] = s01;
  y[(m + 1) * N + n] = s10, y[(m + 1) * N + n + 1] = s11;
  y[(m + 2) * N + n] = s20, y[(m + 2) * N + n + 1] = s21;
  y[(m + 3) * N + n] = s30, y[(m + 3) * N + n + 1] = s31;
}

static inline void block_4x1(const float *restrict x, const float *restrict W, float *restrict y, int64_t K,
                             int64_t N, int64_t m, int64_t n) {
  const float *x0 = x + m * K, *x1 = x0 + K, *x2 = x1 + K, *x3 = x2 + K;
  const float *w0 = W + n * K;
  mork_v8 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
  int64_t k = 0;
  for (; k + 8 <= K; k += 8) {
    mork_v8 b0 = mork_ld(w0 + k);
    a0 += mork_ld(x0 + k) * b0;
    a1 += mork_ld(x1 + k) * b0;
    a2 += mork_ld(x2 + k) * b0;
    a3 += mork_ld(x3 + k) * b0;
  }
  float s0 = mork_hsum(a0), s1 = mork_hsum(a1), s2 = mork_hsum(a2), s3 = mork_hsum(a3);
  for (; k < K; k++) s0 += x0[k] * w0[k], s1 += x1[k] * w0[k], s2 += x2[k] * w0[k], s3 += x3[k] * w0[k];
  y[m * N + n] = s0, y[(m + 1) * N + n] = s1, y[(m + 2) * N + n] = s2, y[(m + 3) * N + n] = s3;
}

static inline void block_1x4(const float *restrict x, const float *restrict W, float *restrict y, int64_t K,
                             int64_t N, int64_t m, int64_t n) {
  const float *x0 = x + m * K;
  const float *w0 = W + n * K, *w1 = w0 + K, *w2 = w1 + K, *w3 = w2 + K;
  mork_v8 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
  int64_t k = 0;
  for (; k + 8 <= K; k += 8) {
    mork_v8 c = mork_ld(x0 + k);
    a0 += c * mork_ld(w0 + k);
    a1 += c * mork_ld(w1 + k);
    a2 += c * mork_ld(w2 + k);
    a3 += c * mork_ld(w3 + k);
  }
  float s0 = mork_hsum(a0), s1 = mork_hsum(a1), s2 = mork_hsum(a2), s3 = mork_hsum(a3);
  for (; k < K; k++) s0 += x0[k] * w0[k], s1 += x0[k] * w1[k], s2 += x0[k] * w2[k], s3 += x0[k] * w3[k];
  y[m * N + n] = s0, y[m * N + n + 1] = s1, y[m * N + n + 2] = s2, y[m * N + n + 3] = s3;
}

static inline void block_1x1(const float *restrict x, const float *restrict W, float *restrict y, int64_t K,
                             int64_t N, int64_t m, int64_t n) {
  const float *x0 = x + m * K, *w0 = W + n * K;
  mork_v8 a0 = {0};
  int64_t k = 0;
  for (; k + 8 <= K; k += 8) a0 += mork_ld(x0 + k) * mork_ld(w0 + k);
  float s0 = mork_hsum(a0);
  for (; k < K; k++) s0 += x0[k] * w0[k];
  y[m * N + n] = s0;
}

/* gemm.c: items of at least MORK_GEMM_MIN_ROWS rows go to its packed micro-kernel,
 * gemv.c: smaller ones (decode) to its 8-stream kernel */
#define MORK_GEMM_MIN_ROWS 6
#ifndef MORK_GEMV
#define MORK_GEMV 1
#endif
MORK void mork_gemm_tile(const float *restrict x, const float *restrict W, float *restrict y, int64_t K, int64_t N,
                         int64_t m0, int64_t m1, int64_t n0, int64_t n1);
MORK void mork_gemv_tile(const float *restrict x, const float *restrict W, float *restrict y, int64_t K, int64_t N,
                         int64_t m0, int64_t m1, int64_t n0, int64_t n1);

/* Items [b, e) of mork_matmul_items(M, N); columns vary fastest. */
MORK void mork_matmul(const float *restrict x, const float *restrict W, float *restrict y, int64_t M, int64_t K,
                      int64_t N, int64_t b, int64_t e) {
  int64_t nct = (N + MORK_NT - 1) / MORK_NT;
  for (int64_t it = b; it < e; it++) {
    int64_t m0 = (it / nct) * MORK_MB, n0 = (it % nct) * MORK_NT;
    int64_t m1 = m0 + MORK_MB < M ? m0 + MORK_MB : M, n1 = n0 + MORK_NT < N ? n0 + MORK_NT : N;
    if (m1 - m0 >= MORK_GEMM_MIN_ROWS) {
      mork_gemm_tile(x, W, y, K, N, m0, m1, n0, n1);
      continue;
    }
    if (MORK_GEMV) {
      mork_gemv_tile(x, W, y, K, N, m0, m1, n0, n1);
      continue;
    }
    int64_t m = m0;
    for (; m + 4 <= m1; m += 4) {
      int64_t n = n0;
      for (; n + 2 <= n1; n += 2) block_4x2(x, W, y, K, N, m, n);
      for (; n < n1; n++) block_4x1(x, W, y, K, N, m, n);
    }
    for (; m < m1; m++) {
      int64_t n = n0;
      for (; n + 4 <= n1; n += 4) block_1x4(x, W, y, K, N, m, n);
      for (; n < n1; n++) block_1x1(x, W, y, K, N, m, n);
    }
  }
}
