/* util.c: errors, allocation, buffers, half-precision conversion, files. */
#include "ir/util.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int mor_quiet_warnings = 0;

/* Make a formatted message safe to print, in place: tabs become spaces,
 * other control bytes (but newlines) and bytes that are not UTF-8 become '?',
 * and a UTF-8 sequence cut by truncation is dropped. Names are escaped where
 * they are formatted (mor_esc); this is the net under every message. */
static void clean_msg(char *s) {
  size_t n = strlen(s);
  for (size_t i = 0; i < n;) {
    unsigned char c = (unsigned char)s[i];
    int k = c == '\n' ? 1 : mor_utf8_char(s + i, n - i);
    if (k) {
      i += (size_t)k;
      continue;
    }
    if (c >= 0xc2 && c <= 0xf4 && n - i < 4) { /* a sequence cut short at the end */
      int whole = 1;
      for (size_t j = i + 1; j < n; j++) whole &= ((unsigned char)s[j] & 0xc0) == 0x80;
      if (whole) {
        s[i] = 0;
        return;
      }
    }
    s[i++] = c == '\t' ? ' ' : '?';
  }
}

void mor_errf(mor_err *e, const char *fmt, ...) {
  if (!e) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(e->msg, sizeof e->msg, fmt, ap);
  va_end(ap);
  clean_msg(e->msg);
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
  clean_msg(e->msg);
}

/* Length of the well-formed UTF-8 sequence at p (2..4), or 0. */
static int utf8_len(const unsigned char *p, uint32_t *cp) {
  int n = p[0] >= 0xf5 ? 0 : p[0] >= 0xf0 ? 4 : p[0] >= 0xe0 ? 3 : p[0] >= 0xc2 ? 2 : 0;
  if (!n) return 0;
  uint32_t c = p[0] & (0x7f >> n);
  for (int i = 1; i < n; i++) {
    if ((p[i] & 0xc0) != 0x80) return 0;
    c = (c << 6) | (p[i] & 0x3f);
  }
  if ((n == 3 && (c < 0x800 || (c >= 0xd800 && c <= 0xdfff))) || (n == 4 && (c < 0x10000 || c > 0x10ffff))) return 0;
  *cp = c;
  return n;
}

int mor_utf8_char(const char *s, size_t n) {
  const unsigned char *p = (const unsigned char *)s;
  unsigned char tmp[5] = {0};
  uint32_t cp = 0;
  if (n == 0) return 0;
  if (*p < 0x80) return *p >= 0x20 && *p != 0x7f;
  memcpy(tmp, p, n < 4 ? n : 4); /* utf8_len stops at the first non-continuation byte: the 0 after a short copy */
  int k = utf8_len(tmp, &cp);
  if ((cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069) || cp == 0x200e || cp == 0x200f)
    return 0; /* bidi controls: they reorder the text around them */
  return k;
}

const char *mor_esc(const char *s, char *buf, size_t n) {
  size_t k = 0;
  if (n == 0) return buf;
  for (const unsigned char *p = (const unsigned char *)s; *p;) {
    char tmp[16];
    size_t len = 1;
    uint32_t cp = 0;
    int u = *p >= 0x80 ? utf8_len(p, &cp) : 0;
    if (*p == '"' || *p == '\\') snprintf(tmp, sizeof tmp, "\\%c", *p);
    else if (*p == '\n') snprintf(tmp, sizeof tmp, "\\n");
    else if (*p == '\t') snprintf(tmp, sizeof tmp, "\\t");
    else if (*p < 0x20 || *p == 0x7f || (*p >= 0x80 && !u)) snprintf(tmp, sizeof tmp, "\\x%02x", *p);
    else if (u && ((cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069) || cp == 0x200e || cp == 0x200f)) {
      snprintf(tmp, sizeof tmp, "\\x%02x\\x%02x\\x%02x", p[0], p[1], p[2]); /* bidi controls: 3 bytes */
      len = (size_t)u;
    } else {
      len = u ? (size_t)u : 1;
      memcpy(tmp, p, len);
      tmp[len] = 0;
    }
    size_t t = strlen(tmp);
    if (k + t + 4 > n) { /* no room for this and "..." */
      if (k + 4 <= n) memcpy(buf + k, "...", 3), k += 3;
      break;
    }
    memcpy(buf + k, tmp, t);
    k += t;
    p += len;
  }
  buf[k < n ? k : n - 1] = 0;
  return buf;
}

void mor_warnf(const char *fmt, ...) {
  if (mor_quiet_warnings) return;
  char msg[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  clean_msg(msg);
  fprintf(stderr, "morc: warning: %s\n", msg);
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
void mor_buf_c_string(mor_buf *b, const char *s) {
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p >= 0x20 && *p < 0x7f && *p != '"' && *p != '\\' && *p != '?') mor_buf_putc(b, (char)*p);
    else mor_buf_printf(b, "\\%03o", *p);
  }
}

void mor_buf_c_comment(mor_buf *b, const char *s) {
  size_t n = strlen(s) * 4 + 8; /* 4 bytes per byte at most, and room that mor_esc keeps for "..." */
  char *t = mor_xmalloc(n);
  mor_esc(s, t, n);
  for (const char *p = t; *p; p++) {
    mor_buf_putc(b, *p);
    if ((p[0] == '*' && p[1] == '/') || (p[0] == '/' && p[1] == '*')) mor_buf_putc(b, ' ');
  }
  free(t);
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
