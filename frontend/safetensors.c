/* safetensors.c: maps safetensors weight files read-only (one file, or the
 * shards of a model.safetensors.index.json) and checks every header entry:
 * dtype, shape, offsets inside the file, sizes, overlaps, duplicate names. */
#include "frontend/model.h"
#include "frontend/json.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_HEADER (100u * 1000u * 1000u) /* the safetensors format's own limit */

/* A mor_weights under construction: the arrays and their capacities. */
typedef struct builder {
  mor_weights *w;
  int file_cap, tensor_cap;
} builder;

static void add_file(builder *b, const char *path, void *map, uint64_t size) {
  mor_weights *w = b->w;
  if (w->n_files == b->file_cap) {
    b->file_cap = b->file_cap ? 2 * b->file_cap : 4;
    w->files = mor_xrealloc(w->files, sizeof(char *) * (size_t)b->file_cap);
    w->maps = mor_xrealloc(w->maps, sizeof(void *) * (size_t)b->file_cap);
    w->map_sizes = mor_xrealloc(w->map_sizes, sizeof(uint64_t) * (size_t)b->file_cap);
  }
  w->files[w->n_files] = mor_xstrdup(path);
  w->maps[w->n_files] = map;
  w->map_sizes[w->n_files] = size;
  w->n_files++;
}

static mor_tensor *add_tensor(builder *b) {
  mor_weights *w = b->w;
  if (w->n_tensors == b->tensor_cap) {
    b->tensor_cap = b->tensor_cap ? 2 * b->tensor_cap : 64;
    w->tensors = mor_xrealloc(w->tensors, sizeof(mor_tensor) * (size_t)b->tensor_cap);
  }
  mor_tensor *t = &w->tensors[w->n_tensors++];
  memset(t, 0, sizeof *t);
  return t;
}

/* Safetensors dtype names: the three morc reads, then the others it knows. */
static const char *const other_dtypes[] = {"BOOL", "U8", "I8", "I16", "U16", "I32", "U32", "I64", "U64", "F64",
                                           "F8_E4M3", "F8_E5M2", "F8_E8M0", "F4", "F6_E2M3", "F6_E3M2", "C64", NULL};

static int parse_dtype(const char *file, const char *name, const cJSON *v, mor_dtype *out, mor_err *err) {
  char g[96];
  if (!v) {
    mor_errf(err, "%s: tensor '%s': dtype: required key is missing (expected \"F32\", \"F16\" or \"BF16\")", file, name);
    return -1;
  }
  if (!cJSON_IsString(v)) {
    mor_errf(err, "%s: tensor '%s': dtype: expected \"F32\", \"F16\" or \"BF16\", got %s", file, name,
             mor_json_show(v, g, sizeof g));
    return -1;
  }
  const char *s = v->valuestring;
  if (!strcmp(s, "F32")) *out = MOR_F32;
  else if (!strcmp(s, "F16")) *out = MOR_F16;
  else if (!strcmp(s, "BF16")) *out = MOR_BF16;
  else {
    int known = 0;
    for (int i = 0; other_dtypes[i]; i++) known |= !strcmp(s, other_dtypes[i]);
    mor_errf(err, "%s: tensor '%s': dtype %s %s (expected F32, F16 or BF16)", file, name,
             mor_json_show(v, g, sizeof g), known ? "is not supported" : "is not a safetensors dtype");
    return -1;
  }
  return 0;
}

/* "[2, 3]" for messages. */
static const char *shape_str(const int64_t *shape, int rank, char *buf, size_t n) {
  size_t k = (size_t)snprintf(buf, n, "[");
  for (int i = 0; i < rank && k < n; i++) k += (size_t)snprintf(buf + k, n - k, "%s%lld", i ? ", " : "", (long long)shape[i]);
  if (k < n) snprintf(buf + k, n - k, "]");
  return buf;
}

static int parse_shape(const char *file, const char *name, const cJSON *v, mor_tensor *t, mor_err *err) {
  char g[96];
  if (!v) {
    mor_errf(err, "%s: tensor '%s': shape: required key is missing (expected an array of sizes)", file, name);
    return -1;
  }
  if (!cJSON_IsArray(v)) {
    mor_errf(err, "%s: tensor '%s': shape: expected an array of sizes, got %s", file, name,
             mor_json_show(v, g, sizeof g));
    return -1;
  }
  int rank = cJSON_GetArraySize(v);
  if (rank > 4) {
    mor_errf(err, "%s: tensor '%s': shape: rank %d is not supported (expected at most 4 dimensions)", file, name, rank);
    return -1;
  }
  uint64_t numel = 1;
  int i = 0;
  for (const cJSON *e = v->child; e; e = e->next, i++) {
    if (!mor_json_is_int(e) || e->valuedouble < 0) {
      mor_errf(err, "%s: tensor '%s': shape[%d]: expected a non-negative integer, got %s", file, name, i,
               mor_json_show(e, g, sizeof g));
      return -1;
    }
    t->shape[i] = (int64_t)e->valuedouble;
    if (mor_mul_overflow(numel, (uint64_t)t->shape[i], &numel) || numel > (uint64_t)INT64_MAX) {
      mor_errf(err, "%s: tensor '%s': shape %s has more elements than fit in 64 bits", file, name,
               shape_str(t->shape, i + 1, g, sizeof g));
      return -1;
    }
  }
  t->rank = rank;
  t->numel = (int64_t)numel;
  return 0;
}

/* Parse the offsets; check them against the data area (data_len bytes). */
static int parse_offsets(const char *file, const char *name, const cJSON *v, uint64_t data_len, mor_tensor *t,
                         uint64_t *begin, mor_err *err) {
  char g[96], s[96];
  if (!v) {
    mor_errf(err, "%s: tensor '%s': data_offsets: required key is missing (expected [begin, end])", file, name);
    return -1;
  }
  if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) != 2 || !mor_json_is_int(v->child) || !mor_json_is_int(v->child->next) ||
      v->child->valuedouble < 0 || v->child->next->valuedouble < 0) {
    mor_errf(err, "%s: tensor '%s': data_offsets: expected [begin, end] of two non-negative integers, got %s", file,
             name, mor_json_show(v, g, sizeof g));
    return -1;
  }
  uint64_t b = (uint64_t)v->child->valuedouble, e = (uint64_t)v->child->next->valuedouble;
  if (b > e) {
    mor_errf(err, "%s: tensor '%s': data_offsets [%llu, %llu]: begin is past end", file, name, (unsigned long long)b,
             (unsigned long long)e);
    return -1;
  }
  if (e > data_len) {
    mor_errf(err, "%s: tensor '%s': data_offsets [%llu, %llu]: end is past the data in the file (%llu bytes after the header)",
             file, name, (unsigned long long)b, (unsigned long long)e, (unsigned long long)data_len);
    return -1;
  }
  uint64_t need;
  int dsize = mor_dtype_size(t->dtype);
  if (mor_mul_overflow((uint64_t)t->numel, (uint64_t)dsize, &need) || need != e - b) {
    static const char *const up[] = {"F32", "F16", "BF16"};
    mor_errf(err, "%s: tensor '%s': data_offsets [%llu, %llu] hold %llu bytes but shape %s of %s needs %llu", file, name,
             (unsigned long long)b, (unsigned long long)e, (unsigned long long)(e - b),
             shape_str(t->shape, t->rank, s, sizeof s), up[t->dtype],
             (unsigned long long)((uint64_t)t->numel * (uint64_t)dsize));
    return -1;
  }
  t->nbytes = need;
  *begin = b;
  return 0;
}

typedef struct span {
  uint64_t begin, end;
  const char *name;
} span;

static int span_cmp(const void *a, const void *b) {
  const span *x = a, *y = b;
  return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : 0;
}

/* No two non-empty tensors of one file share a byte. */
static int check_overlaps(const char *file, mor_tensor *ts, int n, const uint8_t *data, mor_err *err) {
  span *sp = mor_xmalloc(sizeof(span) * (size_t)(n ? n : 1));
  int k = 0;
  for (int i = 0; i < n; i++)
    if (ts[i].nbytes) {
      uint64_t b = (uint64_t)((const uint8_t *)ts[i].data - data);
      sp[k++] = (span){b, b + ts[i].nbytes, ts[i].name};
    }
  qsort(sp, (size_t)k, sizeof(span), span_cmp);
  int rc = 0, far = 0; /* far: the span reaching furthest so far */
  char na[256], nb[256];
  for (int i = 1; i < k && !rc; i++) {
    if (sp[i].begin < sp[far].end) {
      mor_errf(err, "%s: tensors '%s' (bytes [%llu, %llu]) and '%s' (bytes [%llu, %llu]) overlap", file,
               mor_esc(sp[far].name, na, sizeof na), (unsigned long long)sp[far].begin,
               (unsigned long long)sp[far].end, mor_esc(sp[i].name, nb, sizeof nb),
               (unsigned long long)sp[i].begin, (unsigned long long)sp[i].end);
      rc = -1;
    }
    if (sp[i].end > sp[far].end) far = i;
  }
  free(sp);
  return rc;
}

/* Parse one header (already mapped) and append its tensors. */
static int parse_header(builder *b, const char *file, const uint8_t *map, uint64_t size, uint64_t hlen, mor_err *err) {
  char where[1100];
  snprintf(where, sizeof where, "%s: header", file);
  cJSON *root = mor_json_parse(where, (const char *)map + 8, (size_t)hlen, err);
  if (!root) return -1;
  int rc = 0;
  char g[96];
  if (!cJSON_IsObject(root)) {
    mor_errf(err, "%s: header: expected a JSON object, got %s", file, mor_json_show(root, g, sizeof g));
    cJSON_Delete(root);
    return -1;
  }
  const uint8_t *data = map + 8 + hlen;
  uint64_t data_len = size - 8 - hlen;
  int first = b->w->n_tensors;
  const char *fname = b->w->files[b->w->n_files - 1];
  for (const cJSON *e = root->child; e && !rc; e = e->next) {
    char name[256]; /* the tensor name as messages show it */
    mor_esc(e->string, name, sizeof name);
    if (!strcmp(e->string, "__metadata__")) {
      if (!cJSON_IsObject(e)) {
        mor_errf(err, "%s: __metadata__: expected an object of strings, got %s", file, mor_json_show(e, g, sizeof g));
        rc = -1;
      }
      continue;
    }
    if (!name[0]) {
      mor_errf(err, "%s: header: a tensor has an empty name", file);
      rc = -1;
      break;
    }
    if (!cJSON_IsObject(e)) {
      mor_errf(err, "%s: tensor '%s': expected an object with dtype, shape and data_offsets, got %s", file, name,
               mor_json_show(e, g, sizeof g));
      rc = -1;
      break;
    }
    for (const cJSON *k = e->child; k; k = k->next)
      if (strcmp(k->string, "dtype") && strcmp(k->string, "shape") && strcmp(k->string, "data_offsets"))
        mor_warnf("%s: tensor '%s': %s: unknown key, ignored", file, name, mor_esc(k->string, g, sizeof g));
    mor_tensor tmp = {0};
    uint64_t begin = 0;
    if (parse_dtype(file, name, cJSON_GetObjectItemCaseSensitive(e, "dtype"), &tmp.dtype, err) ||
        parse_shape(file, name, cJSON_GetObjectItemCaseSensitive(e, "shape"), &tmp, err) ||
        parse_offsets(file, name, cJSON_GetObjectItemCaseSensitive(e, "data_offsets"), data_len, &tmp, &begin, err)) {
      rc = -1;
      break;
    }
    mor_tensor *t = add_tensor(b);
    *t = tmp;
    t->name = mor_xstrdup(e->string);
    t->data = data + begin;
    t->file = fname;
  }
  cJSON_Delete(root);
  /* (no tensor at all: nothing to check, and tensors may still be NULL) */
  if (!rc && b->w->n_tensors > first) rc = check_overlaps(file, b->w->tensors + first, b->w->n_tensors - first, data, err);
  return rc;
}

/* Map one safetensors file and append its tensors. */
static int open_one(builder *b, const char *path, mor_err *err) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    mor_errf(err, "%s: cannot open: %s", path, strerror(errno));
    return -1;
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    mor_errf(err, "%s: not a regular file", path);
    close(fd);
    return -1;
  }
  uint64_t size = (uint64_t)st.st_size;
  if (size < 8) {
    mor_errf(err, "%s: file is %llu bytes, too short for a safetensors file (it starts with an 8-byte header length)",
             path, (unsigned long long)size);
    close(fd);
    return -1;
  }
  void *map = mmap(NULL, (size_t)size, PROT_READ, MAP_PRIVATE, fd, 0);
  close(fd);
  if (map == MAP_FAILED) {
    mor_errf(err, "%s: cannot map: %s", path, strerror(errno));
    return -1;
  }
  add_file(b, path, map, size);
  const uint8_t *p = map;
  uint64_t hlen = 0;
  for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | p[i];
  if (hlen > size - 8) {
    mor_errf(err, "%s: header length %llu runs past the end of the file (%llu bytes, so at most %llu)", path,
             (unsigned long long)hlen, (unsigned long long)size, (unsigned long long)(size - 8));
    return -1;
  }
  if (hlen > MAX_HEADER) {
    mor_errf(err, "%s: header length %llu is more than the format's limit of 100000000 bytes", path,
             (unsigned long long)hlen);
    return -1;
  }
  return parse_header(b, path, p, size, hlen, err);
}

static int tensor_cmp(const void *a, const void *b) {
  return strcmp(((const mor_tensor *)a)->name, ((const mor_tensor *)b)->name);
}

/* Sort by name; a name held twice is an error. */
static int finish(mor_weights *w, mor_err *err) {
  if (w->n_tensors > 1) qsort(w->tensors, (size_t)w->n_tensors, sizeof(mor_tensor), tensor_cmp);
  for (int i = 1; i < w->n_tensors; i++)
    if (!strcmp(w->tensors[i - 1].name, w->tensors[i].name)) {
      const mor_tensor *a = &w->tensors[i - 1], *c = &w->tensors[i];
      char name[256];
      mor_esc(a->name, name, sizeof name);
      if (a->file == c->file)
        mor_errf(err, "%s: tensor '%s' appears twice in the header", a->file, name);
      else
        mor_errf(err, "tensor '%s' is in two weight files: %s and %s", name, a->file, c->file);
      return -1;
    }
  return 0;
}

/* dir/rel, or rel alone when dir is "." (messages then show the name as given). */
static char *join(const char *dir, const char *rel) {
  return strcmp(dir, ".") ? mor_path_join(dir, rel) : mor_xstrdup(rel);
}

/* One entry of a shard index's weight_map: tensor name -> shard number. */
typedef struct map_entry {
  const char *name;
  int shard;
} map_entry;

static int map_entry_cmp(const void *a, const void *b) {
  return strcmp(((const map_entry *)a)->name, ((const map_entry *)b)->name);
}

/* Open the shards of a model.safetensors.index.json; the index and the
 * shards' headers must agree tensor for tensor. */
static int open_index(builder *b, const char *path, mor_err *err) {
  size_t len;
  char *text = mor_read_file(path, &len, err);
  if (!text) return -1;
  cJSON *root = mor_json_parse(path, text, len, err);
  free(text);
  if (!root) return -1;
  char g[96];
  int rc = -1, n_shards = 0, n_map = 0;
  char **shards = NULL;
  int *shard_first = NULL, *shard_end = NULL;
  map_entry *map = NULL;
  char *dir = mor_dirname(path);
  const cJSON *wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
  if (!cJSON_IsObject(root)) {
    mor_errf(err, "%s: expected a JSON object at the top level, got %s", path, mor_json_show(root, g, sizeof g));
    goto out;
  }
  for (const cJSON *k = root->child; k; k = k->next)
    if (strcmp(k->string, "weight_map") && strcmp(k->string, "metadata"))
      mor_warnf("%s: %s: unknown key, ignored", path, mor_esc(k->string, g, sizeof g));
  if (!wm) {
    mor_errf(err, "%s: weight_map: required key is missing (expected an object of tensor name -> file)", path);
    goto out;
  }
  if (!cJSON_IsObject(wm)) {
    mor_errf(err, "%s: weight_map: expected an object of tensor name -> file, got %s", path,
             mor_json_show(wm, g, sizeof g));
    goto out;
  }
  int cap = cJSON_GetArraySize(wm);
  map = mor_xmalloc(sizeof(map_entry) * (size_t)(cap ? cap : 1));
  shards = mor_xcalloc((size_t)(cap ? cap : 1), sizeof(char *));
  char name[256], file[256]; /* a tensor name and a shard's file name as messages show them */
  for (const cJSON *e = wm->child; e; e = e->next) {
    mor_esc(e->string, name, sizeof name);
    if (!cJSON_IsString(e) || !e->valuestring[0]) {
      mor_errf(err, "%s: weight_map[\"%s\"]: expected a file name, got %s", path, name,
               mor_json_show(e, g, sizeof g));
      goto out;
    }
    int s = 0;
    while (s < n_shards && strcmp(shards[s], e->valuestring)) s++;
    if (s == n_shards) {
      char *full = join(dir, e->valuestring);
      struct stat st;
      if (stat(full, &st) != 0) {
        mor_esc(e->valuestring, file, sizeof file);
        if (strcmp(full, e->valuestring))
          mor_errf(err, "%s: weight_map[\"%s\"]: shard %s does not exist (looked for %s)", path, name, file, full);
        else
          mor_errf(err, "%s: weight_map[\"%s\"]: shard %s does not exist", path, name, file);
        free(full);
        goto out;
      }
      free(full);
      shards[n_shards++] = e->valuestring;
    }
    map[n_map++] = (map_entry){e->string, s};
  }
  if (n_map > 1) qsort(map, (size_t)n_map, sizeof(map_entry), map_entry_cmp);
  for (int i = 1; i < n_map; i++)
    if (!strcmp(map[i - 1].name, map[i].name)) {
      mor_errf(err, "%s: weight_map[\"%s\"]: key appears twice", path, mor_esc(map[i].name, name, sizeof name));
      goto out;
    }
  shard_first = mor_xmalloc(sizeof(int) * (size_t)(n_shards ? n_shards : 1));
  shard_end = mor_xmalloc(sizeof(int) * (size_t)(n_shards ? n_shards : 1));
  for (int s = 0; s < n_shards; s++) {
    char *full = join(dir, shards[s]);
    shard_first[s] = b->w->n_tensors;
    int bad = open_one(b, full, err);
    free(full);
    if (bad) goto out;
    shard_end[s] = b->w->n_tensors;
  }
  /* Every tensor of a shard is listed for that shard ... */
  int listed = 0;
  for (int s = 0; s < n_shards; s++)
    for (int i = shard_first[s]; i < shard_end[s]; i++) {
      const mor_tensor *t = &b->w->tensors[i];
      map_entry key = {t->name, 0};
      map_entry *m = bsearch(&key, map, (size_t)n_map, sizeof(map_entry), map_entry_cmp);
      mor_esc(t->name, name, sizeof name);
      if (!m) {
        mor_errf(err, "%s: tensor '%s' is not listed in the index %s", t->file, name, path);
        goto out;
      }
      if (m->shard != s) {
        mor_errf(err, "%s: tensor '%s' is listed for shard %s in the index %s", t->file, name,
                 mor_esc(shards[m->shard], file, sizeof file), path);
        goto out;
      }
      listed++;
    }
  /* ... and every listed tensor is in its shard. */
  if (listed != n_map) {
    for (int i = 0; i < n_map; i++) {
      int found = 0, s = map[i].shard;
      for (int j = shard_first[s]; j < shard_end[s] && !found; j++) found = !strcmp(b->w->tensors[j].name, map[i].name);
      if (!found) {
        mor_errf(err, "%s: weight_map[\"%s\"]: tensor is not in shard %s", path, mor_esc(map[i].name, name, sizeof name),
                 mor_esc(shards[s], file, sizeof file));
        goto out;
      }
    }
  }
  rc = 0;
out:
  free(map);
  free(shards);
  free(shard_first);
  free(shard_end);
  free(dir);
  cJSON_Delete(root);
  return rc;
}

static int ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), k = strlen(suffix);
  return n >= k && !strcmp(s + n - k, suffix);
}

mor_weights *mor_weights_open(const mor_config *c, mor_err *err) {
  builder b = {mor_xcalloc(1, sizeof(mor_weights)), 0, 0};
  for (int i = 0; i < c->n_weight_files; i++) {
    const char *f = c->weight_files[i];
    if (ends_with(f, ".index.json") ? open_index(&b, f, err) : open_one(&b, f, err)) {
      mor_weights_free(b.w);
      return NULL;
    }
  }
  if (finish(b.w, err)) {
    mor_weights_free(b.w);
    return NULL;
  }
  return b.w;
}

mor_weights *mor_safetensors_open(const char *path, mor_err *err) {
  builder b = {mor_xcalloc(1, sizeof(mor_weights)), 0, 0};
  if (open_one(&b, path, err) || finish(b.w, err)) {
    mor_weights_free(b.w);
    return NULL;
  }
  return b.w;
}

const mor_tensor *mor_weights_find(const mor_weights *w, const char *name) {
  if (!w || !w->n_tensors) return NULL;
  mor_tensor key = {0};
  key.name = (char *)name;
  return bsearch(&key, w->tensors, (size_t)w->n_tensors, sizeof(mor_tensor), tensor_cmp);
}

void mor_weights_free(mor_weights *w) {
  if (!w) return;
  for (int i = 0; i < w->n_tensors; i++) free(w->tensors[i].name);
  free(w->tensors);
  for (int i = 0; i < w->n_files; i++) {
    munmap(w->maps[i], (size_t)w->map_sizes[i]);
    free(w->files[i]);
  }
  free(w->files);
  free(w->maps);
  free(w->map_sizes);
  free(w);
}

float mor_tensor_get(const mor_tensor *t, int64_t i) {
  const uint8_t *p = t->data;
  switch (t->dtype) {
  case MOR_F32: {
    float f;
    memcpy(&f, p + 4 * i, 4);
    return f;
  }
  case MOR_F16: {
    uint16_t h;
    memcpy(&h, p + 2 * i, 2);
    return mor_f16_to_f32(h);
  }
  case MOR_BF16: {
    uint16_t h;
    memcpy(&h, p + 2 * i, 2);
    return mor_bf16_to_f32(h);
  }
  default:
    return 0.0f;
  }
}
