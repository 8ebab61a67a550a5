/* npycmp.c: compares two float32 .npy arrays: same shape, and
 * max|a - b| <= tol * max(1, max|b|). Prints the measured error: the
 * largest and the mean |a - b| and, for 2-D arrays (logits [T, V]), in how
 * many rows the arg max agrees.
 * usage: npycmp A.npy B.npy [TOL]   (exit 0 when close, 1 otherwise) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "runtime/npy.h"

int main(int argc, char **argv) {
  if (argc < 3 || argc > 4) {
    fprintf(stderr, "usage: npycmp A.npy B.npy [TOL]\n");
    return 2;
  }
  double tol = argc == 4 ? atof(argv[3]) : 1e-4;
  char err[512];
  int na, nb;
  int64_t sa[MORRT_NPY_MAX_DIMS], sb[MORRT_NPY_MAX_DIMS];
  float *a = morrt_npy_read_f32(argv[1], &na, sa, err, sizeof err);
  if (!a) {
    fprintf(stderr, "npycmp: %s\n", err);
    return 1;
  }
  float *b = morrt_npy_read_f32(argv[2], &nb, sb, err, sizeof err);
  if (!b) {
    fprintf(stderr, "npycmp: %s\n", err);
    free(a);
    return 1;
  }
  int rc = 0;
  int64_t n = 1;
  if (na != nb) rc = 1;
  for (int i = 0; !rc && i < na; i++) {
    if (sa[i] != sb[i]) rc = 1;
    n *= sa[i];
  }
  if (rc) {
    fprintf(stderr, "npycmp: shapes differ (%d-d vs %d-d, first dims %lld vs %lld)\n", na, nb,
            (long long)(na ? sa[0] : 0), (long long)(nb ? sb[0] : 0));
  } else {
    double maxd = 0, maxb = 0, sumd = 0;
    int64_t at = 0;
    for (int64_t i = 0; i < n; i++) {
      double d = fabs((double)a[i] - (double)b[i]);
      sumd += d;
      if (!(d <= maxd)) { /* also catches NaN */
        maxd = isnan(d) ? INFINITY : d;
        at = i;
      }
      if (fabs((double)b[i]) > maxb) maxb = fabs((double)b[i]);
    }
    double bound = tol * (maxb > 1 ? maxb : 1);
    printf("npycmp: max|diff| = %.3g at element %lld (bound %.3g, max|ref| = %.3g), mean|diff| = %.3g", maxd,
           (long long)at, bound, maxb, n ? sumd / (double)n : 0.0);
    if (na == 2 && sa[0] > 0 && sa[1] > 0) {
      int64_t agree = 0;
      for (int64_t r = 0; r < sa[0]; r++) {
        int64_t ia = 0, ib = 0;
        for (int64_t c = 1; c < sa[1]; c++) {
          if (a[r * sa[1] + c] > a[r * sa[1] + ia]) ia = c;
          if (b[r * sa[1] + c] > b[r * sa[1] + ib]) ib = c;
        }
        agree += ia == ib;
      }
      printf(", top-1 agrees in %lld of %lld rows", (long long)agree, (long long)sa[0]);
    }
    putchar('\n');
    rc = maxd <= bound ? 0 : 1;
  }
  free(a);
  free(b);
  return rc;
}
