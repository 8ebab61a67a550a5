/* modelbench.c: the benchmark's whole-model driver. Loads a model built
 * with `morc build --emit=lib --name ID`, then times, in one process after
 * a warm-up call (weights faulted in, pool started):
 *   prefill: one forward call of T tokens on a fresh sequence,
 *   decode:  DECODE successive one-token calls after that prefill.
 * usage: modelbench LIB.so ID WEIGHTS THREADS T DECODE REPS
 * prints "prefill_tok_s decode_tok_s" (medians over REPS), then the
 * prompt's tokens per depth reached ("depths c0 c1 ..."). */
#define _POSIX_C_SOURCE 200809L
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "runtime/morrt.h"
#include "runtime/sampler.h"

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

int main(int argc, char **argv) {
  if (argc != 8) {
    fprintf(stderr, "usage: modelbench LIB.so ID WEIGHTS THREADS T DECODE REPS\n");
    return 2;
  }
  void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    fprintf(stderr, "modelbench: %s\n", dlerror());
    return 1;
  }
  char sym[256], err[512];
  snprintf(sym, sizeof sym, "%s_model", argv[2]);
  const morrt_desc *desc = dlsym(h, sym);
  if (!desc) {
    fprintf(stderr, "modelbench: no %s in %s\n", sym, argv[1]);
    return 1;
  }
  int threads = atoi(argv[4]), reps = atoi(argv[7]);
  int64_t T = atoll(argv[5]), D = atoll(argv[6]);
  morrt_options opt = {.threads = threads, .weights = argv[3], .pin = 1}; /* as the executables */
  morrt_model *m = morrt_model_open(desc, &opt, err, sizeof err);
  if (!m) {
    fprintf(stderr, "modelbench: %s\n", err);
    return 1;
  }
  int64_t V = desc->vocab_size;
  int32_t *tok = malloc(sizeof(int32_t) * (size_t)T);
  uint32_t seed = 12345;
  for (int64_t i = 0; i < T; i++) seed = seed * 1664525u + 1013904223u, tok[i] = (int32_t)((seed >> 8) % (uint32_t)V);
  float *logits = malloc(sizeof(float) * (size_t)(T * V));
  morrt_seq *s = morrt_seq_new(m);
  double *tp = malloc(sizeof(double) * (size_t)reps), *td = malloc(sizeof(double) * (size_t)reps);
  int64_t nr = desc->num_recursions;
  int64_t *counts = calloc((size_t)nr + 1, sizeof(int64_t));
  for (int r = -1; r < reps; r++) {
    morrt_seq_reset(s);
    double t0 = now();
    if (morrt_forward(m, s, tok, T, logits, NULL, err, sizeof err)) {
      fprintf(stderr, "modelbench: %s\n", err);
      return 1;
    }
    double t1 = now();
    if (r == -1) memcpy(counts, morrt_seq_depth_counts(s), sizeof(int64_t) * (size_t)(nr + 1));
    for (int64_t i = 0; i < D; i++) {
      int32_t next = morrt_argmax(logits + (i ? 0 : (T - 1) * V), (int32_t)V);
      if (morrt_forward(m, s, &next, 1, logits, NULL, err, sizeof err)) {
        fprintf(stderr, "modelbench: %s\n", err);
        return 1;
      }
    }
    double t2 = now();
    if (r >= 0) tp[r] = (double)T / (t1 - t0), td[r] = D ? (double)D / (t2 - t1) : 0;
  }
  printf("%.2f %.2f\ndepths", median(tp, reps), median(td, reps));
  for (int64_t d = 0; d <= nr; d++) printf(" %lld", (long long)counts[d]);
  printf("\n");
  morrt_seq_free(s);
  morrt_model_free(m);
  free(tok), free(logits), free(tp), free(td), free(counts);
  return 0;
}
