/* npy.c: .npy writer (temp file + fsync + rename) and float32 reader with a
 * small parser for the header's Python-literal dict. */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif
#include "npy.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...) {
  if (err && errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return -1;
}

static int host_is_little(void) {
  const uint16_t one = 1;
  unsigned char b;
  memcpy(&b, &one, 1);
  return b == 1;
}

static int write_all(int fd, const void *p, size_t n) {
  const char *c = p;
  while (n > 0) {
    ssize_t k = write(fd, c, n > ((size_t)1 << 30) ? (size_t)1 << 30 : n);
    if (k < 0) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    c += k;
    n -= (size_t)k;
  }
  return 0;
}

int morrt_npy_write(const char *path, morrt_npy_dtype dtype, const void *data, int ndim, const int64_t *shape,
                    char *err, size_t errlen) {
  static atomic_uint counter;
  const char *kind;
  size_t elem;
  switch (dtype) {
  case MORRT_NPY_F32: kind = "f4", elem = 4; break;
  case MORRT_NPY_I32: kind = "i4", elem = 4; break;
  case MORRT_NPY_I64: kind = "i8", elem = 8; break;
  default: return fail(err, errlen, "%s: unknown dtype %d", path, (int)dtype);
  }
  if (ndim < 0 || ndim > MORRT_NPY_MAX_DIMS)
    return fail(err, errlen, "%s: %d dimensions (0..%d supported)", path, ndim, MORRT_NPY_MAX_DIMS);
  size_t count = 1;
  char shp[MORRT_NPY_MAX_DIMS * 24 + 8];
  size_t sl = 0;
  shp[sl++] = '(';
  for (int i = 0; i < ndim; i++) {
    if (shape[i] < 0)
      return fail(err, errlen, "%s: negative dimension %lld", path, (long long)shape[i]);
    if (shape[i] > 0 && count > SIZE_MAX / elem / (size_t)shape[i])
      return fail(err, errlen, "%s: array too large", path);
    count *= (size_t)shape[i];
    sl += (size_t)snprintf(shp + sl, sizeof shp - sl, i ? ", %lld" : "%lld", (long long)shape[i]);
  }
  if (ndim == 1)
    shp[sl++] = ',';
  shp[sl++] = ')';
  shp[sl] = 0;
  if (count > 0 && !data)
    return fail(err, errlen, "%s: no data", path);

  char hdr[512];
  int dl = snprintf(hdr + 10, sizeof hdr - 10, "{'descr': '%c%s', 'fortran_order': False, 'shape': %s, }",
                    host_is_little() ? '<' : '>', kind, shp);
  size_t total = 10 + (size_t)dl + 1; /* + '\n' */
  size_t padded = (total + 63) / 64 * 64;
  memset(hdr + 10 + dl, ' ', padded - total);
  hdr[padded - 1] = '\n';
  size_t hlen = padded - 10;
  memcpy(hdr, "\x93NUMPY\x01\x00", 8);
  hdr[8] = (char)(hlen & 0xFF);
  hdr[9] = (char)(hlen >> 8);

  size_t plen = strlen(path);
  char *tmp = malloc(plen + 48);
  if (!tmp)
    return fail(err, errlen, "%s: out of memory", path);
  snprintf(tmp, plen + 48, "%s.tmp.%ld.%u", path, (long)getpid(), atomic_fetch_add(&counter, 1));
  int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_TRUNC, 0666);
  if (fd < 0) {
    int e = errno;
    free(tmp);
    return fail(err, errlen, "%s: cannot create: %s", path, strerror(e));
  }
  int rc = write_all(fd, hdr, padded);
  if (rc == 0 && count > 0)
    rc = write_all(fd, data, count * elem);
  if (rc == 0)
    rc = fsync(fd);
  int e = errno;
  if (close(fd) != 0 && rc == 0)
    rc = -1, e = errno;
  if (rc == 0 && rename(tmp, path) != 0)
    rc = -1, e = errno;
  if (rc != 0) {
    unlink(tmp);
    free(tmp);
    return fail(err, errlen, "%s: cannot write: %s", path, strerror(e));
  }
  free(tmp);
  return 0;
}

int morrt_npy_write_f32(const char *path, const float *data, int64_t rows, int64_t cols, char *err, size_t errlen) {
  int64_t shape[2] = {rows, cols};
  return morrt_npy_write(path, MORRT_NPY_F32, data, 2, shape, err, errlen);
}

int morrt_npy_write_i32(const char *path, const int32_t *data, int64_t n, char *err, size_t errlen) {
  return morrt_npy_write(path, MORRT_NPY_I32, data, 1, &n, err, errlen);
}

int morrt_npy_write_i64(const char *path, const int64_t *data, int64_t n, char *err, size_t errlen) {
  return morrt_npy_write(path, MORRT_NPY_I64, data, 1, &n, err, errlen);
}

/* ---- reading ---------------------------------------------------------------------- */

typedef struct hparse {
  const char *p, *end;
} hparse;

static void hp_ws(hparse *h) {
  while (h->p < h->end && (*h->p == ' ' || *h->p == '\t' || *h->p == '\n' || *h->p == '\r'))
    h->p++;
}

static int hp_char(hparse *h, char c) {
  hp_ws(h);
  if (h->p < h->end && *h->p == c) {
    h->p++;
    return 1;
  }
  return 0;
}

/* A quoted Python string (no escapes needed in .npy headers) into out. */
static int hp_string(hparse *h, char *out, size_t n) {
  hp_ws(h);
  if (h->p >= h->end || (*h->p != '\'' && *h->p != '"'))
    return -1;
  char q = *h->p++;
  size_t k = 0;
  while (h->p < h->end && *h->p != q) {
    if (k + 1 >= n)
      return -1;
    out[k++] = *h->p++;
  }
  if (h->p >= h->end)
    return -1;
  h->p++;
  out[k] = 0;
  return 0;
}

static int hp_word(hparse *h, const char *w) {
  hp_ws(h);
  size_t n = strlen(w);
  if ((size_t)(h->end - h->p) >= n && memcmp(h->p, w, n) == 0) {
    h->p += n;
    return 1;
  }
  return 0;
}

static int parse_header(const char *s, size_t n, char *descr, size_t dn, int *fortran, int *ndim, int64_t *shape,
                        const char **why) {
  hparse h = {s, s + n};
  int have_descr = 0, have_fortran = 0, have_shape = 0;
  *why = "malformed header dict";
  if (!hp_char(&h, '{'))
    return -1;
  while (!hp_char(&h, '}')) {
    char key[32];
    if (hp_string(&h, key, sizeof key) || !hp_char(&h, ':'))
      return -1;
    if (strcmp(key, "descr") == 0) {
      if (hp_string(&h, descr, dn))
        return -1;
      have_descr = 1;
    } else if (strcmp(key, "fortran_order") == 0) {
      if (hp_word(&h, "True"))
        *fortran = 1;
      else if (hp_word(&h, "False"))
        *fortran = 0;
      else
        return -1;
      have_fortran = 1;
    } else if (strcmp(key, "shape") == 0) {
      if (!hp_char(&h, '('))
        return -1;
      *ndim = 0;
      while (!hp_char(&h, ')')) {
        hp_ws(&h);
        int64_t v = 0;
        int digits = 0;
        while (h.p < h.end && *h.p >= '0' && *h.p <= '9') {
          if (v > (INT64_MAX - 9) / 10)
            return -1;
          v = v * 10 + (*h.p++ - '0');
          digits++;
        }
        if (h.p < h.end && *h.p == 'L') /* Python 2 longs */
          h.p++;
        if (!digits) {
          *why = "bad shape";
          return -1;
        }
        if (*ndim == MORRT_NPY_MAX_DIMS) {
          *why = "too many dimensions";
          return -1;
        }
        shape[(*ndim)++] = v;
        if (!hp_char(&h, ',')) {
          if (!hp_char(&h, ')'))
            return -1;
          break;
        }
      }
      have_shape = 1;
    } else {
      *why = "unknown key in header dict";
      return -1;
    }
    if (!hp_char(&h, ',')) {
      if (!hp_char(&h, '}'))
        return -1;
      break;
    }
  }
  if (!have_descr || !have_fortran || !have_shape) {
    *why = "header dict lacks descr, fortran_order or shape";
    return -1;
  }
  return 0;
}

float *morrt_npy_read_f32(const char *path, int *ndim, int64_t shape[MORRT_NPY_MAX_DIMS], char *err, size_t errlen) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    fail(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    return NULL;
  }
  unsigned char pre[12];
  char *hdr = NULL;
  float *out = NULL;
  if (fread(pre, 1, 10, f) != 10 || memcmp(pre, "\x93NUMPY", 6) != 0) {
    fail(err, errlen, "%s: not a .npy file (bad magic)", path);
    goto out;
  }
  size_t hlen;
  if (pre[6] == 1) {
    hlen = (size_t)pre[8] | (size_t)pre[9] << 8;
  } else if (pre[6] == 2 || pre[6] == 3) {
    if (fread(pre + 10, 1, 2, f) != 2) {
      fail(err, errlen, "%s: truncated header", path);
      goto out;
    }
    hlen = (size_t)pre[8] | (size_t)pre[9] << 8 | (size_t)pre[10] << 16 | (size_t)pre[11] << 24;
  } else {
    fail(err, errlen, "%s: .npy format version %d.%d is not supported", path, pre[6], pre[7]);
    goto out;
  }
  if (hlen > ((size_t)1 << 24)) {
    fail(err, errlen, "%s: header too long", path);
    goto out;
  }
  hdr = malloc(hlen + 1);
  if (!hdr || fread(hdr, 1, hlen, f) != hlen) {
    fail(err, errlen, "%s: truncated header", path);
    goto out;
  }
  char descr[16];
  int fortran = 0;
  const char *why;
  if (parse_header(hdr, hlen, descr, sizeof descr, &fortran, ndim, shape, &why)) {
    fail(err, errlen, "%s: %s", path, why);
    goto out;
  }
  int little = host_is_little();
  int swap;
  if (strcmp(descr, "<f4") == 0)
    swap = !little;
  else if (strcmp(descr, ">f4") == 0)
    swap = little;
  else {
    fail(err, errlen, "%s: dtype '%s' is not float32 ('<f4')", path, descr);
    goto out;
  }
  if (fortran && *ndim > 1) {
    fail(err, errlen, "%s: fortran_order arrays are not supported", path);
    goto out;
  }
  size_t count = 1;
  for (int i = 0; i < *ndim; i++) {
    if (shape[i] > 0 && count > SIZE_MAX / 4 / (size_t)shape[i]) {
      fail(err, errlen, "%s: array too large", path);
      goto out;
    }
    count *= (size_t)shape[i];
  }
  out = malloc(count ? count * 4 : 1);
  if (!out) {
    fail(err, errlen, "%s: out of memory for %zu elements", path, count);
    goto out;
  }
  if (fread(out, 4, count, f) != count) {
    fail(err, errlen, "%s: truncated data (expected %zu float32 values)", path, count);
    free(out);
    out = NULL;
    goto out;
  }
  if (swap) {
    unsigned char *b = (unsigned char *)out;
    for (size_t i = 0; i < count; i++, b += 4) {
      unsigned char t0 = b[0], t1 = b[1];
      b[0] = b[3], b[1] = b[2], b[2] = t1, b[3] = t0;
    }
  }
out:
  free(hdr);
  fclose(f);
  return out;
}
