/* test_gemm.c: the matmul kernels (matmul.c with gemm.c's packed
 * micro-kernel and gemv.c's decode kernel), compiled natively, against a
 * double-precision matmul on awkward shapes: rows not a multiple of the
 * 6/4/2-row blocks or of the 128-row tile, T = 1, prime T, columns not a
 * multiple of 16 or 8, K not a multiple of 8, of the q8 group (32) nor of
 * the 256-value packed panel. Every weight format is tested: the stored
 * values are made here from random bits (bf16, f16) or random int8 values
 * and scales (q8), and the expected result uses the values the format
 * defines (runtime/morrt_abi.h), so the kernels' widening is checked, not
 * a conversion. Every item range is split as the thread pool splits it.
 * Where the CPU has AVX512-BF16, bf16 weights also run through the
 * --bf16-dot tile (MORRT_FMT_BF16DOT), against a matmul of the activations
 * rounded to bf16 here (round to nearest even), with the same bound. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/mork.h"

int64_t mork_matmul_items(int64_t M, int64_t N);
void mork_matmul_w(const float *restrict x, const void *restrict W, int64_t fmt, float *restrict y, int64_t M,
                   int64_t K, int64_t N, int64_t b, int64_t e);

static uint32_t rng = 1;
static uint32_t rnd32(void) {
  rng = rng * 1664525u + 1013904223u;
  return rng;
}
static float rnd(void) { return (float)(rnd32() >> 8) / 16777216.0f - 0.5f; }

/* W[N, K] in format fmt, and Wd[N, K] the values it stands for */
static void *make_weights(int fmt, int64_t N, int64_t K, double *Wd) {
  if (fmt == MORRT_FMT_F32) {
    float *w = malloc(sizeof(float) * (size_t)(N * K + 1));
    for (int64_t i = 0; i < N * K; i++) w[i] = rnd(), Wd[i] = w[i];
    return w;
  }
  if (fmt == MORRT_FMT_BF16 || fmt == MORRT_FMT_F16) {
    uint16_t *h = malloc(2 * (size_t)(N * K + 1));
    for (int64_t i = 0; i < N * K; i++) {
      float f = rnd();
      if (fmt == MORRT_FMT_BF16) {
        uint32_t u;
        memcpy(&u, &f, 4);
        h[i] = (uint16_t)(u >> 16); /* truncated: any bf16 value will do */
        u = (uint32_t)h[i] << 16;
        memcpy(&f, &u, 4);
        Wd[i] = f;
      } else {
        _Float16 v = (_Float16)f;
        memcpy(&h[i], &v, 2);
        Wd[i] = (double)v;
      }
    }
    return h;
  }
  int64_t S = (K + 31) / 32 * 32, G = S / 32;
  unsigned char *q = calloc((size_t)(N * S + 4 * N * G) + 1, 1);
  float *sc = (float *)(q + N * S);
  for (int64_t n = 0; n < N; n++) {
    for (int64_t g = 0; g < G; g++) sc[n * G + g] = (float)(rnd32() % 1000 + 1) / 64000.0f;
    for (int64_t k = 0; k < K; k++) {
      int v = (int)(rnd32() % 255) - 127;
      q[n * S + k] = (unsigned char)(int8_t)v;
      Wd[n * K + k] = (double)v * sc[n * G + k / 32];
    }
    for (int64_t k = K; k < S; k++) q[n * S + k] = (unsigned char)(int8_t)((int)(rnd32() % 255) - 127); /* padding: must be ignored */
  }
  return q;
}

/* x rounded to the nearest bf16, ties to even (finite x) */
static double bf16_rne(float x) {
  uint32_t u;
  memcpy(&u, &x, 4);
  u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
  float f;
  memcpy(&f, &u, 4);
  return f;
}

int main(void) {
  static const int64_t Ms[] = {1, 2, 3, 5, 6, 7, 11, 13, 64, 67, 131};
  static const int64_t Ks[] = {1, 3, 7, 8, 9, 17, 33, 44, 255, 256, 257, 300, 513, 4133};
  static const int64_t Ns[] = {1, 5, 15, 16, 17, 33, 70};
  static const char *const names[] = {"f32", "bf16", "f16", "q8", "bf16 --bf16-dot"};
#if defined(__x86_64__)
  int nfmt = __builtin_cpu_supports("avx512bf16") ? 5 : 4;
#else
  int nfmt = 4;
#endif
  if (nfmt == 4) printf("note: this CPU has no AVX512-BF16: the --bf16-dot tile is not run\n");
  int fails = 0, cases = 0;
  for (int f = 0; f < nfmt; f++)
    for (size_t a = 0; a < sizeof Ms / sizeof *Ms; a++)
      for (size_t b = 0; b < sizeof Ks / sizeof *Ks; b++)
        for (size_t c = 0; c < sizeof Ns / sizeof *Ns; c++) {
          int64_t M = Ms[a], K = Ks[b], N = Ns[c];
          int fmt = f == 4 ? MORRT_FMT_BF16 : f, kfmt = f == 4 ? MORRT_FMT_BF16 | MORRT_FMT_BF16DOT : f;
          if (K > 513 && (M > 13 || N > 17)) continue; /* the long K: a few shapes */
          float *x = malloc(sizeof(float) * (size_t)(M * K));
          double *Wd = malloc(sizeof(double) * (size_t)(N * K));
          void *W = make_weights(fmt, N, K, Wd);
          float *y = malloc(sizeof(float) * (size_t)(M * N));
          for (int64_t i = 0; i < M * K; i++) x[i] = rnd();
          for (int64_t i = 0; i < M * N; i++) y[i] = NAN;
          int64_t items = mork_matmul_items(M, N), half = items / 2; /* two "threads" */
          mork_matmul_w(x, W, kfmt, y, M, K, N, 0, half);
          mork_matmul_w(x, W, kfmt, y, M, K, N, half, items);
          double worst = 0;
          for (int64_t m = 0; m < M; m++)
            for (int64_t n = 0; n < N; n++) {
              double s = 0, mag = 0;
              /* the dot tile takes rows of 6 or more (per 128-row item) in bf16; fewer go to the GEMV in f32 */
              int64_t rows = M - m / 128 * 128 < 128 ? M - m / 128 * 128 : 128;
              int rounded = f == 4 && rows >= 6;
              for (int64_t k = 0; k < K; k++) {
                double xv = rounded ? bf16_rne(x[m * K + k]) : (double)x[m * K + k];
                s += xv * Wd[n * K + k], mag += fabs(xv * Wd[n * K + k]);
              }
              double err = fabs((double)y[m * N + n] - s) / (mag + 1e-30);
              if (!(err <= 1e-6)) err = isnan(err) ? INFINITY : err;
              if (err > worst) worst = err;
            }
          cases++;
          if (!(worst <= 1e-6)) {
            printf("FAIL: %s M=%lld K=%lld N=%lld: relative error %g\n", names[f], (long long)M, (long long)K,
                   (long long)N, worst);
            fails++;
          }
          free(x), free(W), free(Wd), free(y);
        }
  printf("%d of %d shapes and formats within 1e-6 of sum |x w|\n", cases - fails, cases);
  return fails != 0;
}
