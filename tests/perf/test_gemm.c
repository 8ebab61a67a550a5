/* test_gemm.c: the matmul kernels (matmul.c and its packed micro-kernel in
 * gemm.c), compiled natively, against the reference interpreter's matmul
 * (double accumulation, one rounding) on awkward shapes: rows not a
 * multiple of the 6/4/2-row blocks or of the 64-row tile, T = 1, prime T,
 * columns not a multiple of 16, K not a multiple of 8 nor of the 256-value
 * packed panel. Every item range is split as the thread pool splits it. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "kernels/mork.h"

int64_t mork_matmul_items(int64_t M, int64_t N);
void mork_matmul(const float *restrict x, const float *restrict W, float *restrict y, int64_t M, int64_t K, int64_t N,
                 int64_t b, int64_t e);

static uint32_t rng = 1;
static float rnd(void) {
  rng = rng * 1664525u + 1013904223u;
  return (float)(rng >> 8) / 16777216.0f - 0.5f;
}

int main(void) {
  static const int64_t Ms[] = {1, 2, 3, 5, 6, 7, 11, 13, 64, 67, 131};
  static const int64_t Ks[] = {1, 3, 7, 8, 9, 17, 44, 255, 256, 257, 300, 513};
  static const int64_t Ns[] = {1, 5, 15, 16, 17, 33, 70};
  int fails = 0, cases = 0;
  for (size_t a = 0; a < sizeof Ms / sizeof *Ms; a++)
    for (size_t b = 0; b < sizeof Ks / sizeof *Ks; b++)
      for (size_t c = 0; c < sizeof Ns / sizeof *Ns; c++) {
        int64_t M = Ms[a], K = Ks[b], N = Ns[c];
        float *x = malloc(sizeof(float) * (size_t)(M * K)), *W = malloc(sizeof(float) * (size_t)(N * K));
        float *y = malloc(sizeof(float) * (size_t)(M * N));
        for (int64_t i = 0; i < M * K; i++) x[i] = rnd();
        for (int64_t i = 0; i < N * K; i++) W[i] = rnd();
        for (int64_t i = 0; i < M * N; i++) y[i] = NAN;
        int64_t items = mork_matmul_items(M, N), half = items / 2; /* two "threads" */
        mork_matmul(x, W, y, M, K, N, 0, half);
        mork_matmul(x, W, y, M, K, N, half, items);
        double worst = 0;
        for (int64_t m = 0; m < M; m++)
          for (int64_t n = 0; n < N; n++) {
            double s = 0, mag = 0;
            for (int64_t k = 0; k < K; k++) s += (double)x[m * K + k] * W[n * K + k], mag += fabs((double)x[m * K + k] * W[n * K + k]);
            double err = fabs((double)y[m * N + n] - (double)(float)s) / (mag + 1e-30);
            if (!(err <= 1e-6)) err = isnan(err) ? INFINITY : err;
            if (err > worst) worst = err;
          }
        cases++;
        if (!(worst <= 1e-6)) {
          printf("FAIL: M=%lld K=%lld N=%lld: relative error %g\n", (long long)M, (long long)K, (long long)N, worst);
          fails++;
        }
        free(x), free(W), free(y);
      }
  printf("%d of %d shapes within 1e-6 of sum |x w|\n", cases - fails, cases);
  return fails != 0;
}
