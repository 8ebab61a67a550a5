/* util.c: errors, allocation, buffers, half-precision conversion, files. */
#include "ir/util.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int mor_quiet_warnings = 0;

void mor_errf(mor_err *e, const char *fmt, ...) {
  if (!e) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(e->msg, sizeof e->msg, fmt, ap);
  va_end(ap);
}

void mor_err_prefix(mor_err *e, const char *fmt, ...) {
  if (!e) return;
  char pre[1024], old[sizeof e->msg];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(pre, sizeof pre, fmt, ap);
  va_end(ap);
  memcpy(old, e->msg, sizeof old);
  size_t np = strlen(pre), no = strlen(old);
  if (np > sizeof e->msg - 3) np = sizeof e->msg - 3;
  if (no > sizeof e->msg - 3 - np) no = sizeof e->msg - 3 - np;
  memcpy(e->msg, pre, np);
  memcpy(e->msg + np, ": ", 2);
  memcpy(e->msg + np + 2, old, no);
  e->msg[np + 2 + no] = 0;
}

void mor_warnf(const char *fmt, ...) {
  if (mor_quiet_warnings) return;
  va_list ap;
  va_start(ap, fmt);
  fputs("morc: warning: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

static void oom(void) {
  fputs("morc: error: out of memory\n", stderr);
  exit(3);
}
void *mor_xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p) oom();
  return p;
}
void *mor_xcalloc(size_t n, size_t sz) {
  void *p = calloc(n ? n : 1, sz ? sz : 1);
  if (!p) oom();
  return p;
}
void *mor_xrealloc(void *p, size_t n) {
  p = realloc(p, n ? n : 1);
  if (!p) oom();
  return p;
}
char *mor_xstrdup(const char *s) {
  size_t n = strlen(s) + 1;
  char *p = mor_xmalloc(n);
  memcpy(p, s, n);
  return p;
}
char *mor_xasprintf(const char *fmt, ...) {
  va_list ap, ap2;
  va_start(ap, fmt);
  va_copy(ap2, ap);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  char *p = mor_xmalloc((size_t)n + 1);
  vsnprintf(p, (size_t)n + 1, fmt, ap2);
  va_end(ap2);
  return p;
}

static void buf_grow(mor_buf *b, size_t extra) {
  if (b->len + extra + 1 <= b->cap) return;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < b->len + extra + 1) cap *= 2;
  b->data = mor_xrealloc(b->data, cap);
  b->cap = cap;
}
void mor_buf_write(mor_buf *b, const void *p, size_t n) {
  buf_grow(b, n);
  memcpy(b->data + b->len, p, n);
  b->len += n;
  b->data[b->len] = 0;
}
void mor_buf_putc(mor_buf *b, char c) { mor_buf_write(b, &c, 1); }
void mor_buf_puts(mor_buf *b, const char *s) { mor_buf_write(b, s, strlen(s)); }
void mor_buf_printf(mor_buf *b, const char *fmt, ...) {
  va_list ap, ap2;
  va_start(ap, fmt);
  va_copy(ap2, ap);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  buf_grow(b, (size_t)n);
  vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap2);
  va_end(ap2);
  b->len += (size_t)n;
}
void mor_buf_free(mor_buf *b) {
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}

int mor_mul_overflow(uint64_t a, uint64_t b, uint64_t *out) {
  return __builtin_mul_overflow(a, b, out) ? -1 : 0;
}

float mor_f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
  if (exp == 0) {
    if (man == 0) {
      bits = sign;
    } else { /* subnormal */
      exp = 127 - 15 + 1;
      while (!(man & 0x400)) { man <<= 1; exp--; }
      man &= 0x3ff;
      bits = sign | (exp << 23) | (man << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (man << 13);
  } else {
    bits = sign | ((exp - 15 + 127) << 23) | (man << 13);
  }
  float f;
  memcpy(&f, &bits, 4);
  return f;
}
float mor_bf16_to_f32(uint16_t h) {
  uint32_t bits = (uint32_t)h << 16;
  float f;
  memcpy(&f, &bits, 4);
  return f;
}
uint16_t mor_f32_to_bf16(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* NaN */
  u += 0x7fffu + ((u >> 16) & 1); /* round to nearest even */
  return (uint16_t)(u >> 16);
}
uint16_t mor_f32_to_f16(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  uint32_t sign = (u >> 16) & 0x8000;
  int32_t exp = (int32_t)((u >> 23) & 0xff) - 127 + 15;
  uint32_t man = u & 0x7fffff;
  if (((u >> 23) & 0xff) == 0xff) return (uint16_t)(sign | 0x7c00 | (man ? 0x200 : 0));
  if (exp >= 31) return (uint16_t)(sign | 0x7c00);
  if (exp <= 0) {
    if (exp < -10) return (uint16_t)sign;
    man |= 0x800000;
    uint32_t shift = (uint32_t)(14 - exp);
    uint32_t half = 1u << (shift - 1);
    uint32_t r = man >> shift;
    uint32_t rem = man & ((1u << shift) - 1);
    if (rem > half || (rem == half && (r & 1))) r++;
    return (uint16_t)(sign | r);
  }
  uint32_t r = (uint32_t)(exp << 10) | (man >> 13);
  uint32_t rem = man & 0x1fff;
  if (rem > 0x1000 || (rem == 0x1000 && (r & 1))) r++;
  return (uint16_t)(sign | r);
}

char *mor_read_file(const char *path, size_t *len, mor_err *err) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    mor_errf(err, "%s: cannot open: %s", path, strerror(errno));
    return NULL;
  }
  mor_buf b = {0};
  char tmp[65536];
  size_t n;
  while ((n = fread(tmp, 1, sizeof tmp, f)) > 0) mor_buf_write(&b, tmp, n);
  int bad = ferror(f);
  fclose(f);
  if (bad) {
    mor_errf(err, "%s: read error", path);
    mor_buf_free(&b);
    return NULL;
  }
  if (!b.data) b.data = mor_xcalloc(1, 1);
  if (len) *len = b.len;
  return b.data;
}

int mor_write_file_atomic(const char *path, const void *data, size_t len, mor_err *err) {
  char *tmp = mor_xasprintf("%s.tmp.%ld", path, (long)getpid());
  FILE *f = fopen(tmp, "wb");
  if (!f) {
    mor_errf(err, "%s: cannot write: %s", path, strerror(errno));
    free(tmp);
    return -1;
  }
  int ok = fwrite(data, 1, len, f) == len;
  ok = (fclose(f) == 0) && ok;
  if (!ok || rename(tmp, path) != 0) {
    mor_errf(err, "%s: cannot write: %s", path, strerror(errno));
    unlink(tmp);
    free(tmp);
    return -1;
  }
  free(tmp);
  return 0;
}

char *mor_dirname(const char *path) {
  const char *s = strrchr(path, '/');
  if (!s) return mor_xstrdup(".");
  if (s == path) return mor_xstrdup("/");
  char *d = mor_xmalloc((size_t)(s - path) + 1);
  memcpy(d, path, (size_t)(s - path));
  d[s - path] = 0;
  return d;
}

char *mor_path_join(const char *dir, const char *rel) {
  if (rel[0] == '/') return mor_xstrdup(rel);
  return mor_xasprintf("%s/%s", dir, rel);
}

const char *mor_dtype_name(mor_dtype t) {
  static const char *n[] = {"f32", "f16", "bf16", "i32", "i64"};
  return (unsigned)t < MOR_DTYPE_COUNT ? n[t] : "?";
}
int mor_dtype_size(mor_dtype t) {
  static const int s[] = {4, 2, 2, 4, 8};
  return (unsigned)t < MOR_DTYPE_COUNT ? s[t] : 0;
}
