/* morrt.c: libmorrt's model and sequence objects: weight binding (mmap'ed
 * weights used in place when the file holds them in the format the model was
 * compiled for, converted once otherwise: f32, bf16, f16 or q8), the arena,
 * per-sequence KV caches (anonymous mappings, committed lazily), the thread
 * pool bridge handed to generated code, and the checked forward call. */
#include "runtime/morrt.h"
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "runtime/safetensors.h"
#include "runtime/threadpool.h"

struct morrt_model {
  const morrt_desc *d;
  morrt_st *st;              /* the weights file(s), when opened here */
  char *weights_path;
  const void **w;            /* per weight slot, in its format (morrt_abi.h MORRT_FMT_*) */
  void **owned;              /* converted copies we free */
  char *arena;
  size_t arena_map;
  morrt_pool *pool;
  int threads;
  pthread_mutex_t lock;
  float *scratch_logits;     /* when the caller passes no logits */
  int32_t *scratch_depths;
};

struct morrt_seq {
  morrt_model *m;
  int64_t len;
  morrt_kv *kv;
  void *map;
  size_t map_size;
  int64_t *depth_counts;
};

static void seterr(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void seterr(char *err, size_t errlen, const char *fmt, ...) {
  if (!err || !errlen) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

/* ---- parallel bridge ------------------------------------------------------------ */

typedef struct par_job {
  morrt_task_fn fn;
  void *arg;
} par_job;

static void par_thunk(void *ctx, int64_t b, int64_t e, int tid) {
  (void)tid;
  const par_job *j = ctx;
  j->fn(j->arg, b, e);
}

/* Below this much work (items x cost) a kernel runs on the calling thread. */
#define PAR_MIN_WORK 60000

static void run_parallel(void *pool, morrt_task_fn fn, void *arg, int64_t n, int64_t cost) {
  if (n <= 0) return;
  if (!pool || n == 1 || n * (cost > 0 ? cost : 1) < PAR_MIN_WORK) {
    fn(arg, 0, n);
    return;
  }
  par_job j = {fn, arg};
  morrt_pool_run(pool, par_thunk, &j, n);
}

/* ---- decoding ------------------------------------------------------------------- */

static float f16_to_f32(uint16_t h) {
  uint32_t s = (uint32_t)(h >> 15) << 31, e = (h >> 10) & 0x1f, m = h & 0x3ff, u;
  if (e == 0) {
    if (m == 0) u = s;
    else {
      float f = ldexpf((float)m, -24);
      memcpy(&u, &f, 4);
      u |= s;
    }
  } else if (e == 31) {
    u = s | 0x7f800000u | (m << 13);
  } else {
    u = s | ((e + 112) << 23) | (m << 13);
  }
  float f;
  memcpy(&f, &u, 4);
  return f;
}

static float bf16_to_f32(uint16_t h) {
  uint32_t u = (uint32_t)h << 16;
  float f;
  memcpy(&f, &u, 4);
  return f;
}

static void *map_anon(size_t n) {
  if (!n) n = 64;
  void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  return p == MAP_FAILED ? NULL : p;
}

/* ---- models ---------------------------------------------------------------------- */

static void shape_str(char *buf, size_t n, int64_t rank, const int64_t *shape) {
  size_t k = (size_t)snprintf(buf, n, "[");
  for (int64_t i = 0; i < rank && k < n; i++)
    k += (size_t)snprintf(buf + k, n - k, "%s%lld", i ? ", " : "", (long long)shape[i]);
  if (k < n) snprintf(buf + k, n - k, "]");
}

static int check_desc(const morrt_desc *d, char *err, size_t errlen) {
  if (!d) {
    seterr(err, errlen, "no model descriptor");
    return -1;
  }
  if (d->abi_version != MORRT_ABI_VERSION) {
    seterr(err, errlen, "the model was compiled for runtime ABI %lld, this libmorrt speaks %d: rebuild it with this morc",
           (long long)d->abi_version, MORRT_ABI_VERSION);
    return -1;
  }
  return 0;
}

static morrt_model *model_new(const morrt_desc *d, const morrt_options *opt, char *err, size_t errlen) {
  morrt_model *m = calloc(1, sizeof *m);
  if (!m) {
    seterr(err, errlen, "out of memory");
    return NULL;
  }
  m->d = d;
  pthread_mutex_init(&m->lock, NULL);
  m->w = calloc((size_t)d->n_weights + 1, sizeof *m->w);
  m->owned = calloc((size_t)d->n_weights + 1, sizeof *m->owned);
  m->arena_map = (size_t)d->arena_bytes;
  m->arena = map_anon(m->arena_map);
  int threads = opt && opt->threads > 0 ? opt->threads : morrt_cpu_count();
  if (threads < 1) threads = 1;
  m->threads = threads;
  if (threads > 1) m->pool = morrt_pool_create(threads, opt && opt->pin ? MORRT_POOL_PIN : 0);
  if (!m->w || !m->owned || !m->arena || (threads > 1 && !m->pool)) {
    seterr(err, errlen, "out of memory (arena of %lld bytes, %d threads)", (long long)d->arena_bytes, threads);
    morrt_model_free(m);
    return NULL;
  }
  return m;
}

/* ---- weight conversion ----------------------------------------------------------- */

static float src_value(const unsigned char *p, int64_t dtype, int64_t k) {
  if (dtype == MORRT_F32) {
    float f;
    memcpy(&f, p + 4 * k, 4);
    return f;
  }
  uint16_t h;
  memcpy(&h, p + 2 * k, 2);
  return dtype == MORRT_F16 ? f16_to_f32(h) : bf16_to_f32(h);
}

/* f32 -> bf16 / f16, rounding to nearest even (NaN stays NaN, f16 overflow
 * gives infinity: the caller rejects it) */
static uint16_t f32_to_bf16(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
  return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1)) >> 16);
}

static uint16_t f32_to_f16(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
  uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return sign | 0x7e00;
  if (a >= 0x47800000u) return sign | 0x7c00; /* >= 65536 */
  if (a < 0x38800000u) {                      /* below 2^-14: subnormal (exact scaling, then rint) */
    float v;
    memcpy(&v, &a, 4);
    return sign | (uint16_t)lrintf(v * 16777216.0f);
  }
  uint32_t h = (((a >> 23) - 112) << 10) | ((a & 0x7fffffu) >> 13), rem = a & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1))) h++;
  return sign | (uint16_t)h;
}

/* The numel values at data (file dtype) in storage format fmt; for bf16,
 * f16 and q8 the tensor is [rows, numel / rows]. Returns a malloc'd buffer,
 * or NULL with err set (out of memory, values the format cannot hold). */
static void *convert_weight(const char *name, const void *data, int64_t dtype, int64_t fmt, int64_t numel,
                            int64_t rows, char *err, size_t errlen) {
  const unsigned char *p = data;
  if (fmt == MORRT_FMT_F32) {
    float *f = malloc(sizeof(float) * (size_t)(numel ? numel : 1));
    if (!f) goto oom;
    for (int64_t k = 0; k < numel; k++) f[k] = src_value(p, dtype, k);
    return f;
  }
  if (fmt == MORRT_FMT_BF16 || fmt == MORRT_FMT_F16) {
    uint16_t *h = malloc(2 * (size_t)(numel ? numel : 1));
    if (!h) goto oom;
    for (int64_t k = 0; k < numel; k++) {
      float v = src_value(p, dtype, k);
      h[k] = fmt == MORRT_FMT_BF16 ? f32_to_bf16(v) : f32_to_f16(v);
      if (fmt == MORRT_FMT_F16 && (h[k] & 0x7fff) == 0x7c00 && isfinite(v)) {
        free(h);
        seterr(err, errlen, "tensor '%s' has a value (%g) beyond the f16 range (65504): build with "
               "--weights-dtype bf16 or f32", name, (double)v);
        return NULL;
      }
    }
    return h;
  }
  /* q8: rows of S int8 (K rounded up to the group), then rows x S/group f32 scales */
  int64_t K = rows ? numel / rows : 0, S = (K + MORRT_Q8_GROUP - 1) / MORRT_Q8_GROUP * MORRT_Q8_GROUP,
          G = S / MORRT_Q8_GROUP;
  unsigned char *q = calloc((size_t)(rows * S + 4 * rows * G) + 1, 1);
  if (!q) goto oom;
  float *scale = (float *)(q + rows * S);
  for (int64_t n = 0; n < rows; n++)
    for (int64_t g = 0; g < G; g++) {
      int64_t k0 = g * MORRT_Q8_GROUP, k1 = k0 + MORRT_Q8_GROUP < K ? k0 + MORRT_Q8_GROUP : K;
      float amax = 0;
      for (int64_t k = k0; k < k1; k++) {
        float v = src_value(p, dtype, n * K + k);
        if (!isfinite(v)) {
          free(q);
          seterr(err, errlen, "tensor '%s' has a non-finite value at [%lld, %lld]: q8 cannot hold it", name,
                 (long long)n, (long long)k);
          return NULL;
        }
        amax = fabsf(v) > amax ? fabsf(v) : amax;
      }
      float s = amax / 127.0f;
      scale[n * G + g] = s;
      for (int64_t k = k0; k < k1 && s > 0; k++) {
        long r = lrintf(src_value(p, dtype, n * K + k) / s);
        q[n * S + k] = (unsigned char)(int8_t)(r > 127 ? 127 : r < -127 ? -127 : r);
      }
    }
  return q;
oom:
  seterr(err, errlen, "out of memory converting '%s'", name);
  return NULL;
}

/* Bind slot i to a tensor of the given dtype/shape/data, checking it. */
static int bind_slot(morrt_model *m, int64_t i, const char *src, int64_t dtype, int64_t rank, const int64_t *shape,
                     const void *data, char *err, size_t errlen) {
  const morrt_weight_desc *wd = &m->d->weights[i];
  int same = dtype == wd->dtype && rank == wd->rank;
  for (int64_t k = 0; same && k < rank; k++) same = shape[k] == wd->shape[k];
  if (!same) {
    char a[128], b[128];
    shape_str(a, sizeof a, rank, shape);
    shape_str(b, sizeof b, wd->rank, wd->shape);
    seterr(err, errlen,
           "%s: tensor '%s' is %s %s, but the model was compiled for %s %s: these are not the weights it was "
           "built for",
           src, wd->name, morrt_dtype_str((int)dtype), a, morrt_dtype_str((int)wd->dtype), b);
    return -1;
  }
  int64_t numel = 1;
  for (int64_t k = 0; k < rank; k++) numel *= shape[k];
  int64_t fmt = wd->format;
  if (fmt < MORRT_FMT_F32 || fmt > MORRT_FMT_Q8 || (fmt != MORRT_FMT_F32 && rank != 2)) {
    seterr(err, errlen, "the model's descriptor gives tensor '%s' an invalid storage format %lld", wd->name,
           (long long)fmt);
    return -1;
  }
  /* used in place: f32 as f32, f16/bf16 already in the format */
  if (((uintptr_t)data & 3) == 0 &&
      ((fmt == MORRT_FMT_F32 && dtype == MORRT_F32) || (fmt == MORRT_FMT_BF16 && dtype == MORRT_BF16) ||
       (fmt == MORRT_FMT_F16 && dtype == MORRT_F16))) {
    m->w[i] = data;
    return 0;
  }
  void *out = convert_weight(wd->name, data, dtype, fmt, numel, rank == 2 ? shape[0] : 1, err, errlen);
  if (!out) return -1;
  m->owned[i] = out;
  m->w[i] = out;
  return 0;
}

static int bind_from_st(morrt_model *m, char *err, size_t errlen) {
  const char *src = morrt_st_path(m->st);
  for (int64_t i = 0; i < m->d->n_weights; i++) {
    const morrt_weight_desc *wd = &m->d->weights[i];
    const morrt_st_tensor *t = morrt_st_find(m->st, wd->name);
    if (!t) {
      seterr(err, errlen, "%s: tensor '%s' is missing: these are not the weights the model was built for", src,
             wd->name);
      return -1;
    }
    if (t->dtype < 0) {
      seterr(err, errlen, "%s: tensor '%s' is %s, but the model was compiled for %s", src, wd->name,
             t->dtype_name ? t->dtype_name : "?", morrt_dtype_str((int)wd->dtype));
      return -1;
    }
    if (bind_slot(m, i, src, t->dtype, t->rank, t->shape, t->data, err, errlen)) return -1;
  }
  return 0;
}

/* Directory of the running executable ("" when unknown). */
static void exe_dir(char *buf, size_t n) {
  ssize_t k = readlink("/proc/self/exe", buf, n - 1);
  if (k <= 0) {
    buf[0] = 0;
    return;
  }
  buf[k] = 0;
  char *s = strrchr(buf, '/');
  if (s) s[1] = 0;
  else buf[0] = 0;
}

morrt_model *morrt_model_open(const morrt_desc *d, const morrt_options *opt, char *err, size_t errlen) {
  if (check_desc(d, err, errlen)) return NULL;
  morrt_model *m = model_new(d, opt, err, errlen);
  if (!m) return NULL;
  char path[PATH_MAX + 64];
  if (opt && opt->weights) {
    m->st = morrt_st_open(opt->weights, err, errlen);
    if (!m->st && errlen) {
      char inner[768];
      snprintf(inner, sizeof inner, "%s", err);
      seterr(err, errlen, "cannot load the weights: %s", inner);
    }
    m->weights_path = strdup(opt->weights);
  } else if (d->weights_blob) {
    m->st = morrt_st_from_memory(d->weights_blob, (size_t)d->weights_blob_size, "(embedded weights)", err, errlen);
    m->weights_path = strdup("(embedded)");
  } else if (d->weights_file) {
    exe_dir(path, PATH_MAX);
    strncat(path, d->weights_file, sizeof path - strlen(path) - 1);
    m->st = morrt_st_open(path, err, errlen);
    if (!m->st && errlen) {
      char inner[768];
      snprintf(inner, sizeof inner, "%s", err);
      seterr(err, errlen, "cannot load the model's weights: %s (they are expected beside the executable; pass "
             "--weights FILE)", inner);
    }
    m->weights_path = strdup(path);
  } else {
    seterr(err, errlen, "the model has no embedded weights and no default weights file: pass the weights (--weights FILE)");
  }
  if (!m->st || bind_from_st(m, err, errlen)) {
    morrt_model_free(m);
    return NULL;
  }
  return m;
}

morrt_model *morrt_model_bind(const morrt_desc *d, const morrt_tensor_ref *t, int64_t n, const morrt_options *opt,
                              char *err, size_t errlen) {
  if (check_desc(d, err, errlen)) return NULL;
  morrt_model *m = model_new(d, opt, err, errlen);
  if (!m) return NULL;
  m->weights_path = strdup("(bound in memory)");
  for (int64_t i = 0; i < d->n_weights; i++) {
    const morrt_tensor_ref *r = NULL;
    for (int64_t k = 0; k < n && !r; k++)
      if (!strcmp(t[k].name, d->weights[i].name)) r = &t[k];
    if (!r) {
      seterr(err, errlen, "tensor '%s' is missing", d->weights[i].name);
      morrt_model_free(m);
      return NULL;
    }
    if (bind_slot(m, i, "weights", r->dtype, r->rank, r->shape, r->data, err, errlen)) {
      morrt_model_free(m);
      return NULL;
    }
  }
  return m;
}

void morrt_model_free(morrt_model *m) {
  if (!m) return;
  for (int64_t i = 0; m->owned && i < m->d->n_weights; i++) free(m->owned[i]);
  free(m->owned);
  free(m->w);
  if (m->arena) munmap(m->arena, m->arena_map ? m->arena_map : 64);
  morrt_pool_free(m->pool);
  morrt_st_free(m->st);
  free(m->weights_path);
  free(m->scratch_logits);
  free(m->scratch_depths);
  pthread_mutex_destroy(&m->lock);
  free(m);
}

const morrt_desc *morrt_model_desc(const morrt_model *m) { return m->d; }
const char *morrt_model_weights_path(const morrt_model *m) { return m->weights_path; }
int morrt_model_threads(const morrt_model *m) { return m->threads; }
int morrt_model_pinned(const morrt_model *m) { return morrt_pool_pinned(m->pool); }

morrt_tokenizer *morrt_model_tokenizer(const morrt_model *m, char *err, size_t errlen) {
  if (errlen) err[0] = 0;
  if (!m->d->tokenizer_json) return NULL;
  return morrt_tokenizer_load_mem(m->d->tokenizer_json, (size_t)m->d->tokenizer_size, "(embedded tokenizer.json)",
                                  err, errlen);
}

/* ---- sequences -------------------------------------------------------------------- */

static size_t align_up(size_t n, size_t a) { return (n + a - 1) / a * a; }

morrt_seq *morrt_seq_new(morrt_model *m) {
  morrt_seq *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->m = m;
  const morrt_desc *d = m->d;
  s->kv = calloc((size_t)d->n_kv + 1, sizeof *s->kv);
  s->depth_counts = calloc((size_t)d->num_recursions + 2, sizeof *s->depth_counts);
  size_t total = 0;
  for (int64_t i = 0; i < d->n_kv; i++) {
    size_t c = (size_t)d->kv[i].capacity, w = (size_t)d->kv[i].width;
    total += align_up(c * 4, 64) + 2 * align_up(c * w * 4, 64);
  }
  s->map_size = total ? total : 64;
  s->map = map_anon(s->map_size);
  if (!s->kv || !s->depth_counts || !s->map) {
    morrt_seq_free(s);
    return NULL;
  }
  char *p = s->map;
  for (int64_t i = 0; i < d->n_kv; i++) {
    size_t c = (size_t)d->kv[i].capacity, w = (size_t)d->kv[i].width;
    s->kv[i].capacity = (int64_t)c;
    s->kv[i].pos = (int32_t *)p;
    p += align_up(c * 4, 64);
    s->kv[i].k = (float *)p;
    p += align_up(c * w * 4, 64);
    s->kv[i].v = (float *)p;
    p += align_up(c * w * 4, 64);
  }
  return s;
}

void morrt_seq_free(morrt_seq *s) {
  if (!s) return;
  if (s->map) munmap(s->map, s->map_size);
  free(s->kv);
  free(s->depth_counts);
  free(s);
}

void morrt_seq_reset(morrt_seq *s) {
  s->len = 0;
  for (int64_t i = 0; i < s->m->d->n_kv; i++) s->kv[i].n = 0;
  memset(s->depth_counts, 0, sizeof *s->depth_counts * (size_t)(s->m->d->num_recursions + 1));
}

int64_t morrt_seq_len(const morrt_seq *s) { return s->len; }

int64_t morrt_seq_kv_bytes(const morrt_seq *s) {
  int64_t b = 0;
  for (int64_t i = 0; i < s->m->d->n_kv; i++) b += s->kv[i].n * (2 * s->m->d->kv[i].width * 4 + 4);
  return b;
}

const int64_t *morrt_seq_depth_counts(const morrt_seq *s) { return s->depth_counts; }

/* ---- forward ----------------------------------------------------------------------- */

static int forward_locked(morrt_model *m, morrt_seq *s, const int32_t *tokens, int64_t T, float *logits,
                          int32_t *depths, char *err, size_t errlen) {
  const morrt_desc *d = m->d;
  if (T < 1) {
    seterr(err, errlen, "no tokens given");
    return -1;
  }
  for (int64_t i = 0; i < T; i++)
    if (tokens[i] < 0 || tokens[i] >= d->vocab_size) {
      seterr(err, errlen, "token %lld: id %d out of range [0, %lld)", (long long)i, tokens[i], (long long)d->vocab_size);
      return -1;
    }
  if (s->len + T > d->max_pos) {
    int64_t i = d->max_pos - s->len < 0 ? 0 : d->max_pos - s->len;
    seterr(err, errlen,
           "token %lld: position %lld is past the context (max_position_embeddings %lld): %lld positions in use + %lld "
           "new tokens",
           (long long)i, (long long)(s->len + i), (long long)d->max_pos, (long long)s->len, (long long)T);
    return -1;
  }
  if (d->whole_sequence && s->len > 0) {
    seterr(err, errlen,
           "top_k routing scores whole sequences only, but the sequence already has cached positions "
           "(compile with threshold routing to decode)");
    return -1;
  }
  if (d->whole_sequence && T > d->max_tokens) {
    seterr(err, errlen, "top_k routing scores a sequence in one call, but %lld tokens exceed the %lld the model was "
           "compiled for", (long long)T, (long long)d->max_tokens);
    return -1;
  }
  int64_t chunk = d->max_tokens > 0 ? d->max_tokens : T;
  if (!logits && !m->scratch_logits) m->scratch_logits = malloc(sizeof(float) * (size_t)(chunk * d->vocab_size));
  if (!depths && !m->scratch_depths) m->scratch_depths = malloc(sizeof(int32_t) * (size_t)chunk);
  int32_t *pos = malloc(sizeof(int32_t) * (size_t)(T < chunk ? T : chunk));
  if ((!logits && !m->scratch_logits) || (!depths && !m->scratch_depths) || !pos) {
    free(pos);
    seterr(err, errlen, "out of memory");
    return -1;
  }
  morrt_exec x = {.weights = (const void *const *)m->w, .kv = s->kv, .arena = m->arena, .pool = m->pool,
                  .parallel = run_parallel};
  for (int64_t off = 0; off < T; off += chunk) {
    int64_t n = T - off < chunk ? T - off : chunk;
    for (int64_t i = 0; i < n; i++) pos[i] = (int32_t)(s->len + i);
    float *lg = logits ? logits + off * d->vocab_size : m->scratch_logits;
    int32_t *dp = depths ? depths + off : m->scratch_depths;
    d->forward(&x, tokens + off, pos, n, lg, dp);
    for (int64_t i = 0; i < n; i++)
      if (dp[i] >= 0 && dp[i] <= d->num_recursions) s->depth_counts[dp[i]]++;
    s->len += n;
  }
  free(pos);
  return 0;
}

int morrt_forward(morrt_model *m, morrt_seq *s, const int32_t *tokens, int64_t T, float *logits, int32_t *depths,
                  char *err, size_t errlen) {
  if (s->m != m) {
    seterr(err, errlen, "the sequence belongs to another model");
    return -1;
  }
  pthread_mutex_lock(&m->lock);
  int rc = forward_locked(m, s, tokens, T, logits, depths, err, errlen);
  pthread_mutex_unlock(&m->lock);
  return rc;
}

int morrt_forward_batch(morrt_model *m, int n, morrt_seq *const *seqs, const int32_t *const *tokens, const int64_t *T,
                        float *const *logits, int32_t *const *depths, char *err, size_t errlen) {
  for (int i = 0; i < n; i++) {
    char e[1024];
    if (morrt_forward(m, seqs[i], tokens[i], T[i], logits ? logits[i] : NULL, depths ? depths[i] : NULL, e, sizeof e)) {
      seterr(err, errlen, "sequence %d: %s", i, e);
      return -1;
    }
  }
  return 0;
}
