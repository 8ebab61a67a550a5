/* matmul.c: y[M,N] = x[M,K] W[N,K]^T, x and y f32, W in any weight format
 * (mork.h), split into tiles of MORK_MB rows by MORK_NT columns (one work
 * item each). Items of 6 rows or more go to gemm.c's packed micro-kernel,
 * smaller ones (decode) to gemv.c. */
#include "kernels/mork.h"

/* Work items of an [M, N] product. */
MORK int64_t mork_matmul_items(int64_t M, int64_t N) {
  return ((M + MORK_MB - 1) / MORK_MB) * ((N + MORK_NT - 1) / MORK_NT);
}

/* gemm.c: items of at least MORK_GEMM_MIN_ROWS rows go to its packed micro-kernel,
 * gemv.c: smaller ones (decode) to its 8-stream kernel */
#define MORK_GEMM_MIN_ROWS 6
MORK void mork_gemm_tile(const float *restrict x, const void *restrict W, int64_t fmt, float *restrict y, int64_t K,
                         int64_t N, int64_t m0, int64_t m1, int64_t n0, int64_t n1);
MORK void mork_gemv_tile(const float *restrict x, const void *restrict W, int64_t fmt, float *restrict y, int64_t K,
                         int64_t N, int64_t m0, int64_t m1, int64_t n0, int64_t n1);
#if defined(__x86_64__)
MORK void mork_gemm_tile_bf16dot(const float *restrict x, const uint16_t *restrict W, float *restrict y, int64_t K,
                                 int64_t N, int64_t m0, int64_t m1, int64_t n0, int64_t n1);
#endif

/* Items [b, e) of mork_matmul_items(M, N); columns vary fastest. W is in
 * format fmt (MORRT_FMT_*), with MORRT_FMT_BF16DOT set for bf16 weights
 * whose GEMM tiles run on AVX512-BF16. */
MORK void mork_matmul_w(const float *restrict x, const void *restrict W, int64_t fmt, float *restrict y, int64_t M,
                        int64_t K, int64_t N, int64_t b, int64_t e) {
  int64_t nct = (N + MORK_NT - 1) / MORK_NT, dot = fmt & MORRT_FMT_BF16DOT;
  fmt &= ~(int64_t)MORRT_FMT_BF16DOT;
  for (int64_t it = b; it < e; it++) {
    int64_t m0 = (it / nct) * MORK_MB, n0 = (it % nct) * MORK_NT;
    int64_t m1 = m0 + MORK_MB < M ? m0 + MORK_MB : M, n1 = n0 + MORK_NT < N ? n0 + MORK_NT : N;
#if defined(__x86_64__)
    if (dot && m1 - m0 >= MORK_GEMM_MIN_ROWS) {
      mork_gemm_tile_bf16dot(x, (const uint16_t *)W, y, K, N, m0, m1, n0, n1);
      continue;
    }
#else
    (void)dot;
#endif
    if (m1 - m0 >= MORK_GEMM_MIN_ROWS) mork_gemm_tile(x, W, fmt, y, K, N, m0, m1, n0, n1);
    else mork_gemv_tile(x, W, fmt, y, K, N, m0, m1, n0, n1);
  }
}

/* The f32 case. */
MORK void mork_matmul(const float *restrict x, const float *restrict W, float *restrict y, int64_t M, int64_t K,
                      int64_t N, int64_t b, int64_t e) {
  mork_matmul_w(x, W, MORRT_FMT_F32, y, M, K, N, b, e);
}

/* Up to three products of the same x in one parallel call (qkv's q, k and v;
 * gate_up's gate and up): y_i[M, N_i] = x W_i^T, the items of product 0,
 * then 1, then 2 (N_i = 0: absent). One pool dispatch instead of three: in
 * decode, where each product is a few microseconds of streaming, the
 * dispatches and the waits between them are a good part of the time. */
MORK int64_t mork_matmul3_items(int64_t M, int64_t N0, int64_t N1, int64_t N2) {
  return mork_matmul_items(M, N0) + (N1 ? mork_matmul_items(M, N1) : 0) + (N2 ? mork_matmul_items(M, N2) : 0);
}

MORK void mork_matmul3_w(const float *restrict x, int64_t fmt, int64_t M, int64_t K, const void *W0,
                         float *y0, int64_t N0, const void *W1, float *y1, int64_t N1, const void *W2,
                         float *y2, int64_t N2, int64_t b, int64_t e) {
  int64_t i0 = mork_matmul_items(M, N0), i1 = N1 ? mork_matmul_items(M, N1) : 0;
  int64_t lo = b, hi = e < i0 ? e : i0;
  if (lo < hi) mork_matmul_w(x, W0, fmt, y0, M, K, N0, lo, hi);
  lo = (b > i0 ? b : i0) - i0, hi = (e < i0 + i1 ? e : i0 + i1) - i0;
  if (lo < hi) mork_matmul_w(x, W1, fmt, y1, M, K, N1, lo, hi);
  lo = (b > i0 + i1 ? b : i0 + i1) - i0 - i1, hi = e - i0 - i1;
  if (N2 && lo < hi) mork_matmul_w(x, W2, fmt, y2, M, K, N2, lo, hi);
}
