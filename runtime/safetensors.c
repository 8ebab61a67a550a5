/* safetensors.c: reading (mmap, checked headers, sharded indexes, memory
 * images) and writing safetensors files for libmorrt. */
#include "runtime/safetensors.h"
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include "runtime/json.h"
#include "runtime/morrt_abi.h"

struct morrt_st {
  char *path;
  int n, cap;
  morrt_st_tensor *t;
  char **names;        /* owned names */
  int n_maps;
  void **maps;
  size_t *map_sizes;
};

static void seterr(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void seterr(char *err, size_t errlen, const char *fmt, ...) {
  if (!err || !errlen) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

const char *morrt_dtype_str(int dtype) {
  return dtype == MORRT_F32 ? "F32" : dtype == MORRT_F16 ? "F16" : dtype == MORRT_BF16 ? "BF16" : "?";
}
int morrt_dtype_bytes(int dtype) { return dtype == MORRT_F32 ? 4 : dtype == MORRT_F16 || dtype == MORRT_BF16 ? 2 : 0; }

static int dtype_code(const char *s, int *bytes, const char **canon) {
  static const struct { const char *n; int code, bytes; } tab[] = {
      {"F32", MORRT_F32, 4}, {"F16", MORRT_F16, 2}, {"BF16", MORRT_BF16, 2}, {"F64", -1, 8}, {"I64", -1, 8},
      {"I32", -1, 4},        {"I16", -1, 2},        {"I8", -1, 1},          {"U8", -1, 1},  {"BOOL", -1, 1},
      {"U16", -1, 2},        {"U32", -1, 4},        {"U64", -1, 8},         {"F8_E4M3", -1, 1}, {"F8_E5M2", -1, 1}};
  for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++)
    if (!strcmp(s, tab[i].n)) {
      *bytes = tab[i].bytes;
      *canon = tab[i].n;
      return tab[i].code;
    }
  *bytes = 0;
  *canon = NULL;
  return -2;
}

static int cmp_tensor(const void *a, const void *b) {
  return strcmp(((const morrt_st_tensor *)a)->name, ((const morrt_st_tensor *)b)->name);
}

void morrt_st_free(morrt_st *st) {
  if (!st) return;
  for (int i = 0; i < st->n; i++) free(st->names[i]);
  for (int i = 0; i < st->n_maps; i++)
    if (st->maps[i]) munmap(st->maps[i], st->map_sizes[i]);
  free(st->names);
  free(st->t);
  free(st->maps);
  free(st->map_sizes);
  free(st->path);
  free(st);
}

/* Parse the header of one image and add its tensors. */
static int add_image(morrt_st *st, const unsigned char *p, size_t len, const char *name, char *err, size_t errlen) {
  if (len < 8) {
    seterr(err, errlen, "%s: not a safetensors file (%zu bytes, shorter than the 8-byte header size)", name, len);
    return -1;
  }
  uint64_t hl = 0;
  for (int i = 7; i >= 0; i--) hl = (hl << 8) | p[i];
  if (hl > len - 8) {
    seterr(err, errlen, "%s: not a safetensors file (header of %llu bytes in a file of %zu)", name,
           (unsigned long long)hl, len);
    return -1;
  }
  char jerr[512];
  morrt_json_doc *doc = morrt_json_parse((const char *)p + 8, (size_t)hl, 0, jerr, sizeof jerr);
  if (!doc) {
    seterr(err, errlen, "%s: header: %s", name, jerr);
    return -1;
  }
  const morrt_json *root = morrt_json_root(doc);
  const unsigned char *data = p + 8 + hl;
  uint64_t dlen = len - 8 - hl;
  int rc = -1;
  if (root->type != MORRT_JSON_OBJECT) {
    seterr(err, errlen, "%s: header is not a JSON object", name);
    goto out;
  }
  for (size_t i = 0; i < root->len; i++) {
    const morrt_json_member *mb = &root->u.members[i];
    if (!strcmp(mb->key, "__metadata__")) continue;
    const morrt_json *v = &mb->value;
    const char *dts = morrt_json_str(morrt_json_get(v, "dtype"));
    const morrt_json *shape = morrt_json_get(v, "shape"), *offs = morrt_json_get(v, "data_offsets");
    if (v->type != MORRT_JSON_OBJECT || !dts || !shape || shape->type != MORRT_JSON_ARRAY || !offs ||
        offs->type != MORRT_JSON_ARRAY || offs->len != 2) {
      seterr(err, errlen, "%s: tensor '%s': expected {dtype, shape, data_offsets}", name, mb->key);
      goto out;
    }
    const char *canon;
    int bytes, code = dtype_code(dts, &bytes, &canon);
    if (code == -2) {
      seterr(err, errlen, "%s: tensor '%s': unknown dtype '%s'", name, mb->key, dts);
      goto out;
    }
    if (shape->len > 8) {
      seterr(err, errlen, "%s: tensor '%s': rank %zu is too large", name, mb->key, shape->len);
      goto out;
    }
    morrt_st_tensor t = {0};
    t.dtype = code;
    t.rank = (int)shape->len;
    uint64_t numel = 1;
    for (size_t d = 0; d < shape->len; d++) {
      long long x;
      if (!morrt_json_int(morrt_json_at(shape, d), 0, (long long)1 << 48, &x)) {
        seterr(err, errlen, "%s: tensor '%s': shape[%zu] is not a size", name, mb->key, d);
        goto out;
      }
      t.shape[d] = x;
      numel *= (uint64_t)x;
      if (numel > ((uint64_t)1 << 50)) {
        seterr(err, errlen, "%s: tensor '%s': too many elements", name, mb->key);
        goto out;
      }
    }
    long long b, e;
    if (!morrt_json_int(morrt_json_at(offs, 0), 0, (long long)dlen, &b) ||
        !morrt_json_int(morrt_json_at(offs, 1), 0, (long long)dlen, &e) || e < b) {
      seterr(err, errlen, "%s: tensor '%s': data_offsets outside the %llu data bytes", name, mb->key,
             (unsigned long long)dlen);
      goto out;
    }
    if ((uint64_t)(e - b) != numel * (uint64_t)bytes) {
      seterr(err, errlen, "%s: tensor '%s': %lld data bytes for %llu elements of %s", name, mb->key, e - b,
             (unsigned long long)numel, dts);
      goto out;
    }
    t.data = data + b;
    t.nbytes = (uint64_t)(e - b);
    if (st->n == st->cap) {
      st->cap = st->cap ? 2 * st->cap : 64;
      st->t = realloc(st->t, sizeof *st->t * (size_t)st->cap);
      st->names = realloc(st->names, sizeof *st->names * (size_t)st->cap);
      if (!st->t || !st->names) {
        seterr(err, errlen, "out of memory");
        goto out;
      }
    }
    st->names[st->n] = strdup(mb->key);
    t.name = st->names[st->n];
    t.dtype_name = canon;
    st->t[st->n++] = t;
  }
  rc = 0;
out:
  morrt_json_free(doc);
  return rc;
}

static int finish(morrt_st *st, char *err, size_t errlen) {
  if (st->n > 1) qsort(st->t, (size_t)st->n, sizeof *st->t, cmp_tensor);
  for (int i = 1; i < st->n; i++)
    if (!strcmp(st->t[i].name, st->t[i - 1].name)) {
      seterr(err, errlen, "%s: tensor '%s' appears twice", st->path, st->t[i].name);
      return -1;
    }
  return 0;
}

static int map_file(morrt_st *st, const char *path, char *err, size_t errlen) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    seterr(err, errlen, "%s: %s", path, strerror(errno));
    return -1;
  }
  struct stat sb;
  if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
    seterr(err, errlen, "%s: not a regular file", path);
    close(fd);
    return -1;
  }
  size_t len = (size_t)sb.st_size;
  void *p = len ? mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0) : NULL;
  close(fd);
  if (len && p == MAP_FAILED) {
    seterr(err, errlen, "%s: mmap: %s", path, strerror(errno));
    return -1;
  }
  st->maps = realloc(st->maps, sizeof *st->maps * (size_t)(st->n_maps + 1));
  st->map_sizes = realloc(st->map_sizes, sizeof *st->map_sizes * (size_t)(st->n_maps + 1));
  st->maps[st->n_maps] = p;
  st->map_sizes[st->n_maps++] = len;
  return add_image(st, p, len, path, err, errlen);
}

static int ends_with(const char *s, const char *suf) {
  size_t a = strlen(s), b = strlen(suf);
  return a >= b && !strcmp(s + a - b, suf);
}

static int open_index(morrt_st *st, const char *path, char *err, size_t errlen) {
  char jerr[512];
  morrt_json_doc *doc = morrt_json_parse_file(path, 0, jerr, sizeof jerr);
  if (!doc) {
    seterr(err, errlen, "%s", jerr);
    return -1;
  }
  const morrt_json *wm = morrt_json_get(morrt_json_root(doc), "weight_map");
  int rc = -1;
  if (!wm || wm->type != MORRT_JSON_OBJECT) {
    seterr(err, errlen, "%s: weight_map: expected an object of tensor name -> file", path);
    goto out;
  }
  const char *slash = strrchr(path, '/');
  size_t dl = slash ? (size_t)(slash - path + 1) : 0;
  const char **seen = calloc(wm->len + 1, sizeof *seen);
  int ns = 0;
  for (size_t i = 0; i < wm->len; i++) {
    const char *f = morrt_json_str(&wm->u.members[i].value);
    if (!f) {
      seterr(err, errlen, "%s: weight_map.%s: expected a file name", path, wm->u.members[i].key);
      free(seen);
      goto out;
    }
    int dup = 0;
    for (int k = 0; k < ns; k++) dup |= !strcmp(seen[k], f);
    if (dup) continue;
    seen[ns++] = f;
    char *full = malloc(dl + strlen(f) + 1);
    memcpy(full, path, dl);
    strcpy(full + dl, f);
    int r = map_file(st, f[0] == '/' ? f : full, err, errlen);
    free(full);
    if (r) {
      free(seen);
      goto out;
    }
  }
  free(seen);
  rc = 0;
out:
  morrt_json_free(doc);
  return rc;
}

morrt_st *morrt_st_open(const char *path, char *err, size_t errlen) {
  morrt_st *st = calloc(1, sizeof *st);
  if (!st) return NULL;
  st->path = strdup(path);
  int rc = ends_with(path, ".json") ? open_index(st, path, err, errlen) : map_file(st, path, err, errlen);
  if (rc || finish(st, err, errlen)) {
    morrt_st_free(st);
    return NULL;
  }
  return st;
}

morrt_st *morrt_st_from_memory(const void *data, size_t len, const char *name, char *err, size_t errlen) {
  morrt_st *st = calloc(1, sizeof *st);
  if (!st) return NULL;
  st->path = strdup(name);
  if (add_image(st, data, len, name, err, errlen) || finish(st, err, errlen)) {
    morrt_st_free(st);
    return NULL;
  }
  return st;
}

int morrt_st_count(const morrt_st *st) { return st->n; }
const morrt_st_tensor *morrt_st_at(const morrt_st *st, int i) { return i >= 0 && i < st->n ? &st->t[i] : NULL; }
const char *morrt_st_path(const morrt_st *st) { return st->path; }

const morrt_st_tensor *morrt_st_find(const morrt_st *st, const char *name) {
  int lo = 0, hi = st->n - 1;
  while (lo <= hi) {
    int mid = (lo + hi) / 2, c = strcmp(st->t[mid].name, name);
    if (!c) return &st->t[mid];
    if (c < 0) lo = mid + 1;
    else hi = mid - 1;
  }
  return NULL;
}

/* ---- writer ------------------------------------------------------------------ */

typedef struct sbuf {
  char *p;
  size_t len, cap;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
  if (b->len + n + 1 > b->cap) {
    while (b->len + n + 1 > b->cap) b->cap = b->cap ? 2 * b->cap : 4096;
    b->p = realloc(b->p, b->cap);
    if (!b->p) abort();
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = 0;
}
static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }
static void sb_json(sbuf *b, const char *s) {
  sb_put(b, "\"", 1);
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    char tmp[8];
    if (c == '"' || c == '\\') {
      tmp[0] = '\\';
      tmp[1] = (char)c;
      sb_put(b, tmp, 2);
    } else if (c < 0x20) {
      snprintf(tmp, sizeof tmp, "\\u%04x", c);
      sb_put(b, tmp, 6);
    } else {
      sb_put(b, (const char *)&c, 1);
    }
  }
  sb_put(b, "\"", 1);
}

int morrt_st_write(const char *path, int n, const morrt_st_tensor *t, int n_meta, const char *const *meta_kv, char *err,
                   size_t errlen) {
  sbuf h = {0};
  uint64_t off = 0;
  char num[64];
  sb_str(&h, "{");
  if (n_meta > 0) {
    sb_str(&h, "\"__metadata__\":{");
    for (int i = 0; i < n_meta; i++) {
      if (i) sb_str(&h, ",");
      sb_json(&h, meta_kv[2 * i]);
      sb_str(&h, ":");
      sb_json(&h, meta_kv[2 * i + 1]);
    }
    sb_str(&h, "}");
  }
  for (int i = 0; i < n; i++) {
    if (i || n_meta > 0) sb_str(&h, ",");
    sb_json(&h, t[i].name);
    sb_str(&h, ":{\"dtype\":");
    sb_json(&h, t[i].dtype_name ? t[i].dtype_name : morrt_dtype_str(t[i].dtype));
    sb_str(&h, ",\"shape\":[");
    for (int d = 0; d < t[i].rank; d++) {
      snprintf(num, sizeof num, "%s%lld", d ? "," : "", (long long)t[i].shape[d]);
      sb_str(&h, num);
    }
    off = (off + 63) / 64 * 64;
    snprintf(num, sizeof num, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
             (unsigned long long)(off + t[i].nbytes));
    sb_str(&h, num);
    off += t[i].nbytes;
  }
  sb_str(&h, "}");
  /* pad the header with spaces so the data starts 64-byte aligned */
  while ((8 + h.len) % 64) sb_put(&h, " ", 1);
  char *tmp = malloc(strlen(path) + 32);
  snprintf(tmp, strlen(path) + 32, "%s.tmp.%ld", path, (long)getpid());
  FILE *f = fopen(tmp, "wb");
  int rc = -1;
  if (!f) {
    seterr(err, errlen, "%s: %s", path, strerror(errno));
    goto done;
  }
  unsigned char hl[8];
  for (int i = 0; i < 8; i++) hl[i] = (unsigned char)((uint64_t)h.len >> (8 * i));
  int ok = fwrite(hl, 1, 8, f) == 8 && fwrite(h.p, 1, h.len, f) == h.len;
  static const char zeros[64] = {0};
  off = 0;
  for (int i = 0; i < n && ok; i++) {
    uint64_t pad = (off + 63) / 64 * 64 - off;
    ok = fwrite(zeros, 1, (size_t)pad, f) == pad && fwrite(t[i].data, 1, (size_t)t[i].nbytes, f) == t[i].nbytes;
    off += pad + t[i].nbytes;
  }
  if (fclose(f) != 0) ok = 0;
  if (!ok) {
    seterr(err, errlen, "%s: write failed: %s", path, strerror(errno));
    unlink(tmp);
    goto done;
  }
  if (rename(tmp, path) != 0) {
    seterr(err, errlen, "%s: %s", path, strerror(errno));
    unlink(tmp);
    goto done;
  }
  rc = 0;
done:
  free(tmp);
  free(h.p);
  return rc;
}
