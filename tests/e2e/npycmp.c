/* npycmp.c: compares two float32 .npy arrays: same shape, and
 * max|a - b| <= tol * max(1, max|b|). Prints the measured error.
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
    double maxd = 0, maxb = 0;
    int64_t at = 0;
    for (int64_t i = 0; i < n; i++) {
      double d = fabs((double)a[i] - (double)b[i]);
      if (!(d <= maxd)) { /* also catches NaN */
        maxd = isnan(d) ? INFINITY : d;
        at = i;
      }
      if (fabs((double)b[i]) > maxb) maxb = fabs((double)b[i]);
    }
    double bound = tol * (maxb > 1 ? maxb : 1);
    printf("npycmp: max|diff| = %.3g at element %lld (bound %.3g, max|ref| = %.3g)\n", maxd, (long long)at, bound,
           maxb);
    rc = maxd <= bound ? 0 : 1;
  }
  free(a);
  free(b);
  return rc;
}
