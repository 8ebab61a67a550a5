/* gemm.c: the benchmark's kernel harness. Times morc's matmul kernel (the
 * C source the LLVM backend specializes, compiled here with the same flags
 * for the host CPU, split over the libmorrt thread pool the way generated
 * code splits it) against OpenBLAS, and measures read bandwidth.
 *   gemm-bench gemm T K N REPS THREADS   -> "morc_ms blas_ms maxdiff"
 *   gemm-bench cold T K N REPS THREADS   -> the same, every run on another copy of
 *       W (copies > 128 MiB in all), so W comes from memory as in a model
 *   gemm-bench bw MIB REPS THREADS       -> "GB/s" (streaming sum)
 * Every number printed is the median of REPS timed runs; morc and OpenBLAS
 * runs alternate so both see the same machine load. */
#define _POSIX_C_SOURCE 200809L
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/mork.h"
#include "runtime/threadpool.h"

int64_t mork_matmul_items(int64_t M, int64_t N);
void mork_matmul(const float *restrict x, const float *restrict W, float *restrict y, int64_t M, int64_t K, int64_t N,
                 int64_t b, int64_t e);
void openblas_set_num_threads(int);

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + 1e-9 * t.tv_nsec;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}
static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp);
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static float *randbuf(size_t n, unsigned seed) {
  float *p = aligned_alloc(64, (n * 4 + 63) / 64 * 64);
  for (size_t i = 0; i < n; i++) {
    seed = seed * 1664525u + 1013904223u;
    p[i] = (float)(seed >> 8) / 16777216.0f - 0.5f;
  }
  return p;
}

typedef struct {
  const float *x, *W;
  float *y;
  int64_t M, K, N;
} mm_args;

static void mm_chunk(void *ctx, int64_t b, int64_t e, int tid) {
  (void)tid;
  const mm_args *a = ctx;
  mork_matmul(a->x, a->W, a->y, a->M, a->K, a->N, b, e);
}

static int gemm(int64_t T, int64_t K, int64_t N, int reps, int threads, int cold) {
  float *x = randbuf((size_t)(T * K), 1), *W0 = randbuf((size_t)(N * K), 2), *W = W0;
  int64_t copies = cold ? ((128 << 20) / (N * K * 4) + 2) : 1;
  float *Ws = W0;
  if (copies > 1) {
    Ws = aligned_alloc(64, (size_t)(copies * N * K * 4));
    for (int64_t c = 0; c < copies; c++) memcpy(Ws + c * N * K, W0, (size_t)(N * K * 4));
  }
  float *y0 = calloc((size_t)(T * N), 4), *y1 = calloc((size_t)(T * N), 4);
  morrt_pool *pool = threads > 1 ? morrt_pool_create(threads, MORRT_POOL_PIN) : NULL;
  openblas_set_num_threads(threads);
  mm_args a = {x, W, y0, T, K, N};
  int64_t items = mork_matmul_items(T, N);
  double *tm = malloc(sizeof(double) * (size_t)reps), *tb = malloc(sizeof(double) * (size_t)reps);
  /* morc's repetitions first, then OpenBLAS's: OpenBLAS's idle threads spin
   * for a while after each call, which would steal the cores of a morc call
   * run right after it */
  for (int r = -1; r < reps; r++) { /* r = -1: warm-up */
    a.W = Ws + ((2 * r + 2) % copies) * N * K; /* cold: each its own copy */
    double t0 = now();
    morrt_pool_run(pool, mm_chunk, &a, items);
    if (r >= 0) tm[r] = now() - t0;
  }
  nanosleep(&(struct timespec){0, 200000000}, NULL);
  for (int r = -1; r < reps; r++) {
    W = Ws + ((2 * r + 3) % copies) * N * K;
    double t1 = now();
    if (T == 1) cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)N, (int)K, 1.0f, W, (int)K, x, 1, 0.0f, y1, 1);
    else
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)T, (int)N, (int)K, 1.0f, x, (int)K, W, (int)K, 0.0f, y1,
                  (int)N);
    if (r >= 0) tb[r] = now() - t1;
  }
  nanosleep(&(struct timespec){0, 200000000}, NULL);
  double md = 0;
  for (int64_t i = 0; i < T * N; i++) md = fmax(md, fabs((double)y0[i] - y1[i]));
  printf("%.4f %.4f %.3g\n", 1e3 * median(tm, reps), 1e3 * median(tb, reps), md);
  morrt_pool_free(pool);
  if (Ws != W0) free(Ws);
  free(x), free(W0), free(y0), free(y1), free(tm), free(tb);
  return 0;
}

typedef struct {
  const float *p;
  int64_t n;
  double part[64];
} bw_args;

static void bw_chunk(void *ctx, int64_t b, int64_t e, int tid) {
  bw_args *a = ctx;
  /* items are 64 KiB blocks */
  const float *p = a->p + b * 16384, *end = a->p + e * 16384;
  mork_v8 s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0};
  for (; p < end; p += 32) s0 += mork_ld(p), s1 += mork_ld(p + 8), s2 += mork_ld(p + 16), s3 += mork_ld(p + 24);
  a->part[tid] = mork_hsum(s0 + s1 + s2 + s3);
}

static int bw(int64_t mib, int reps, int threads) {
  int64_t blocks = mib * 16, n = blocks * 16384;
  float *p = aligned_alloc(64, (size_t)n * 4);
  for (int64_t i = 0; i < n; i++) p[i] = (float)(i & 7);
  morrt_pool *pool = threads > 1 ? morrt_pool_create(threads, MORRT_POOL_PIN) : NULL;
  bw_args a = {.p = p, .n = n};
  double *t = malloc(sizeof(double) * (size_t)reps), sink = 0;
  for (int r = -1; r < reps; r++) {
    double t0 = now();
    morrt_pool_run(pool, bw_chunk, &a, blocks);
    double t1 = now();
    for (int i = 0; i < 64; i++) sink += a.part[i];
    if (r >= 0) t[r] = (double)n * 4 / (t1 - t0) / 1e9;
  }
  printf("%.2f\n", median(t, reps));
  if (sink == 1234.5) fprintf(stderr, "!\n");
  morrt_pool_free(pool);
  free(p), free(t);
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 7 && (!strcmp(argv[1], "gemm") || !strcmp(argv[1], "cold")))
    return gemm(atoll(argv[2]), atoll(argv[3]), atoll(argv[4]), atoi(argv[5]), atoi(argv[6]), !strcmp(argv[1], "cold"));
  if (argc == 5 && !strcmp(argv[1], "bw")) return bw(atoll(argv[2]), atoi(argv[3]), atoi(argv[4]));
  fprintf(stderr, "usage: gemm-bench gemm|cold T K N REPS THREADS | bw MIB REPS THREADS\n");
  return 2;
}
