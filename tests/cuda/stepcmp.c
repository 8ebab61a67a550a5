/* stepcmp: compare two step dumps of a CUDA executable (--dump-steps FILE,
 * format in runtime/cuda_rt.h), typically a GPU's against the CPU
 * emulation's of the same executable, and name the first step whose device
 * state differs: the kernel that computed something else.
 *
 *   stepcmp A B [TOL]      TOL: relative tolerance of floats (default 1e-3)
 *
 * Every 4-byte word is compared. Words that are equal bit for bit agree.
 * Otherwise two finite normal floats agree when |a - b| <= TOL * max(1, |b|);
 * any other difference (an integer such as a count, an index or a position,
 * which reads as a zero or subnormal float; NaN or infinity on one side)
 * disagrees. Exit 0: every step agrees; 1: they differ (the first differing
 * step, its section and word, and how many steps differ in all); 2: bad
 * usage or a file that is not a step dump or does not match the other. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  FILE *f;
  const char *path;
  long long rec;
} dump;

static int rd(dump *d, void *p, size_t n, const char *what) {
  if (fread(p, 1, n, d->f) == n) return 0;
  fprintf(stderr, "stepcmp: %s: record %lld: %s cut short\n", d->path, d->rec, what);
  return -1;
}

static int rd_i64(dump *d, int64_t *v, const char *what, int64_t max) {
  if (rd(d, v, 8, what)) return -1;
  if (*v < 0 || *v > max) {
    fprintf(stderr, "stepcmp: %s: record %lld: %s %lld is out of range\n", d->path, d->rec, what, (long long)*v);
    return -1;
  }
  return 0;
}

static const char *section_name(int64_t tag, char *buf, size_t n) {
  if (tag == 0) return "arena";
  if (tag == 1) return "control block (count slots, tickets)";
  if (tag == 2) return "KV counts";
  static const char *part[3] = {"K", "V", "positions"};
  snprintf(buf, n, "KV store %lld %s", (long long)((tag - 3) / 3), part[(tag - 3) % 3]);
  return buf;
}

/* the two sections being compared (file scope: an early error return leaves them reachable) */
static char *ha, *hb;

static int is_float(uint32_t u) {
  uint32_t e = (u >> 23) & 0xff;
  return e != 0 && e != 0xff;
}

int main(int argc, char **argv) {
  if (argc < 3 || argc > 4) {
    fprintf(stderr, "usage: stepcmp A B [TOL]: compare two --dump-steps files of a CUDA executable\n");
    return 2;
  }
  double tol = 1e-3;
  if (argc == 4) {
    char *end;
    tol = strtod(argv[3], &end);
    if (*end || !(tol >= 0)) {
      fprintf(stderr, "stepcmp: TOL '%s' is not a non-negative number\n", argv[3]);
      return 2;
    }
  }
  dump a = {fopen(argv[1], "rb"), argv[1], 0}, b = {fopen(argv[2], "rb"), argv[2], 0};
  if (!a.f || !b.f) {
    fprintf(stderr, "stepcmp: %s: %s\n", a.f ? argv[2] : argv[1], strerror(errno));
    return 2;
  }
  const int64_t big = (int64_t)1 << 40;
  long long steps = 0, bad_steps = 0;
  int first = 1;
  size_t cap = 0;
  for (;; a.rec++, b.rec++) {
    char ma[8], mb[8];
    size_t na = fread(ma, 1, 8, a.f), nb = fread(mb, 1, 8, b.f);
    if (na == 0 && nb == 0) break;
    if (na == 0 || nb == 0) {
      fprintf(stderr, "stepcmp: %s ends after %lld steps, the other goes on\n", na == 0 ? a.path : b.path, a.rec);
      return 2;
    }
    if (na != 8 || nb != 8 || memcmp(ma, "MORSTEP1", 8) || memcmp(mb, "MORSTEP1", 8)) {
      fprintf(stderr, "stepcmp: %s: record %lld is not a step record (MORSTEP1)\n",
              na != 8 || memcmp(ma, "MORSTEP1", 8) ? a.path : b.path, a.rec);
      return 2;
    }
    int64_t hdr_a[3], hdr_b[3], nsec_a, nsec_b;
    char name_a[161] = {0}, name_b[161] = {0};
    static const char *hn[3] = {"call", "step", "T"};
    for (int i = 0; i < 3; i++)
      if (rd_i64(&a, &hdr_a[i], hn[i], big) || rd_i64(&b, &hdr_b[i], hn[i], big)) return 2;
    if (rd(&a, name_a, 160, "label") || rd(&b, name_b, 160, "label")) return 2;
    if (rd_i64(&a, &nsec_a, "section count", 1 << 20) || rd_i64(&b, &nsec_b, "section count", 1 << 20)) return 2;
    if (memcmp(hdr_a, hdr_b, sizeof hdr_a) || strcmp(name_a, name_b) || nsec_a != nsec_b) {
      fprintf(stderr,
              "stepcmp: record %lld: the dumps are of different runs (call %lld step %lld T %lld '%s' against call "
              "%lld step %lld T %lld '%s')\n",
              a.rec, (long long)hdr_a[0], (long long)hdr_a[1], (long long)hdr_a[2], name_a, (long long)hdr_b[0],
              (long long)hdr_b[1], (long long)hdr_b[2], name_b);
      return 2;
    }
    steps++;
    long long bad_words = 0;
    double worst = 0;
    for (int64_t k = 0; k < nsec_a; k++) {
      int64_t tag_a, tag_b, n_a, n_b;
      if (rd_i64(&a, &tag_a, "section tag", big) || rd_i64(&b, &tag_b, "section tag", big) ||
          rd_i64(&a, &n_a, "section size", big) || rd_i64(&b, &n_b, "section size", big))
        return 2;
      if (tag_a != tag_b || n_a != n_b || n_a % 4) {
        fprintf(stderr, "stepcmp: record %lld: section %lld differs in kind or size between the dumps\n", a.rec,
                (long long)k);
        return 2;
      }
      if ((size_t)n_a > cap) {
        cap = (size_t)n_a;
        free(ha), free(hb);
        ha = malloc(cap), hb = malloc(cap);
        if (!ha || !hb) {
          fprintf(stderr, "stepcmp: out of memory for a section of %lld bytes\n", (long long)n_a);
          return 2;
        }
      }
      if (rd(&a, ha, (size_t)n_a, "section") || rd(&b, hb, (size_t)n_b, "section")) return 2;
      if (!memcmp(ha, hb, (size_t)n_a)) continue;
      for (int64_t w = 0; w < n_a / 4; w++) {
        uint32_t ua, ub;
        memcpy(&ua, ha + 4 * w, 4);
        memcpy(&ub, hb + 4 * w, 4);
        if (ua == ub) continue;
        float fa, fb;
        memcpy(&fa, &ua, 4);
        memcpy(&fb, &ub, 4);
        int ok = 0;
        if (is_float(ua) && is_float(ub)) {
          double d = fabs((double)fa - (double)fb), lim = tol * fmax(1.0, fabs((double)fb));
          ok = d <= lim;
          if (!ok && d / lim > worst) worst = d / lim;
        }
        if (ok) continue;
        if (!is_float(ua) || !is_float(ub)) worst = INFINITY;
        if (bad_words++ == 0 && first) {
          char nb2[64];
          printf("first difference: call %lld, step %lld (%s) for %lld tokens: %s, byte %lld: %s %g (0x%08x), %s "
                 "%g (0x%08x)\n",
                 (long long)hdr_a[0], (long long)hdr_a[1], name_a, (long long)hdr_a[2],
                 section_name(tag_a, nb2, sizeof nb2), (long long)(4 * w), a.path, fa, ua, b.path, fb, ub);
        }
      }
    }
    if (bad_words) {
      if (first || bad_steps < 10)
        printf("  call %lld step %lld (%s): %lld words differ%s\n", (long long)hdr_a[0], (long long)hdr_a[1], name_a,
               bad_words, isinf(worst) ? " (integers, NaN or infinity among them)" : "");
      first = 0;
      bad_steps++;
    }
  }
  free(ha);
  free(hb);
  if (bad_steps) {
    printf("%lld of %lld steps differ beyond %g\n", bad_steps, steps, tol);
    return 1;
  }
  printf("%lld steps agree within %g\n", steps, tol);
  return 0;
}
