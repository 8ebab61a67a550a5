/* cli.c: token-list and chunk parsing for the driver, with errors that say
 * which item is wrong and why. */
#include "tools/cli.h"
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int mor_cli_parse_ints(const char *s, const char *what, int64_t **out, size_t *n, mor_err *e) {
  size_t cap = 16, k = 0;
  int64_t *v = mor_xmalloc(cap * sizeof *v);
  const char *p = s;
  while (*p) {
    while (*p == ' ' || *p == '\t') p++;
    if (!isdigit((unsigned char)*p)) {
      char item[24], shown[100];
      int len = 0;
      while (p[len] && p[len] != ',' && len < 20) len++;
      snprintf(item, sizeof item, "%.*s", len, p);
      mor_errf(e, "%s: item %zu: expected a non-negative integer, found '%s'", what, k + 1,
               len ? mor_esc(item, shown, sizeof shown) : "(end)");
      free(v);
      return -1;
    }
    int64_t x = 0;
    while (isdigit((unsigned char)*p)) {
      if (x > (INT64_MAX - 9) / 10) {
        mor_errf(e, "%s: item %zu: number too large", what, k + 1);
        free(v);
        return -1;
      }
      x = x * 10 + (*p++ - '0');
    }
    while (*p == ' ' || *p == '\t') p++;
    if (k == cap) v = mor_xrealloc(v, (cap *= 2) * sizeof *v);
    v[k++] = x;
    if (*p == ',') {
      p++;
      if (!*p) {
        mor_errf(e, "%s: trailing comma", what);
        free(v);
        return -1;
      }
    } else if (*p) {
      char c[2] = {*p, 0}, shown[8];
      mor_errf(e, "%s: item %zu: unexpected character '%s' (expected ',')", what, k, mor_esc(c, shown, sizeof shown));
      free(v);
      return -1;
    }
  }
  *out = v;
  *n = k;
  return 0;
}

int mor_cli_check_chunks(const int64_t *chunks, size_t nc, size_t ntokens, mor_err *e) {
  uint64_t sum = 0;
  if (nc == 0) {
    mor_errf(e, "--chunks: no sizes given");
    return -1;
  }
  for (size_t i = 0; i < nc; i++) {
    if (chunks[i] < 1) {
      mor_errf(e, "--chunks: size %zu is %lld; every chunk needs at least one token", i + 1, (long long)chunks[i]);
      return -1;
    }
    sum += (uint64_t)chunks[i];
    if (sum > ((uint64_t)1 << 62)) sum = (uint64_t)1 << 62; /* saturate: still "too many" */
  }
  if (sum != ntokens) {
    mor_errf(e, "--chunks: the sizes add up to %llu, but --tokens has %zu ids", (unsigned long long)sum, ntokens);
    return -1;
  }
  return 0;
}

int mor_cli_check_tokens(const int64_t *toks, size_t n, int64_t vocab, int64_t max_pos, mor_err *e) {
  if ((int64_t)n > max_pos) {
    mor_errf(e, "--tokens: %zu tokens do not fit in the context of %lld positions (max_position_embeddings)", n,
             (long long)max_pos);
    return -1;
  }
  for (size_t i = 0; i < n; i++)
    if (toks[i] >= vocab) {
      mor_errf(e, "--tokens: item %zu: token id %lld is out of range (vocab_size %lld)", i + 1, (long long)toks[i],
               (long long)vocab);
      return -1;
    }
  return 0;
}

int mor_cli_parse_size(const char *s, const char *what, uint64_t *bytes, mor_err *e) {
  const char *p = s;
  double x = 0, scale = 1;
  int digits = 0;
  while (isdigit((unsigned char)*p)) x = x * 10 + (*p++ - '0'), digits++;
  if (*p == '.')
    for (p++; isdigit((unsigned char)*p); p++) x += (*p - '0') * (scale /= 10), digits++;
  static const char units[] = "KMGT";
  const char *u = *p ? strchr(units, toupper((unsigned char)*p)) : NULL;
  double mult = 1;
  if (u) {
    for (const char *q = units; q <= u; q++) mult *= 1024;
    p++;
    if (*p == 'i' && p[1] == 'B') p += 2;
    else if (*p == 'B' || *p == 'b') p++;
  } else if (*p == 'B' || *p == 'b') {
    p++;
  }
  char shown[64];
  mor_esc(s, shown, sizeof shown);
  if (!digits || *p) {
    mor_errf(e, "%s: expected a size such as 16G, 512M or 1.5T, found '%s'", what, shown);
    return -1;
  }
  double b = ceil(x * mult);
  if (!(b >= 1) || b >= 18446744073709551616.0) {
    mor_errf(e, "%s: '%s' is %s", what, shown, b >= 1 ? "more than 2^64 bytes" : "not a positive number of bytes");
    return -1;
  }
  *bytes = (uint64_t)b;
  return 0;
}
