/* cuda_plan.c: reading the serialized launch plan of a CUDA build (the
 * format is described in cuda_plan.h). Every count, offset and index is
 * checked, so a damaged file gives a message instead of a crash. */
#include "runtime/cuda_plan.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct rd {
  const unsigned char *p, *end;
  char *err;
  size_t errlen;
  int failed;
} rd;

static void rfail(rd *r, const char *fmt, ...) {
  if (r->failed) return;
  r->failed = 1;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(r->err, r->errlen, fmt, ap);
  va_end(ap);
}

static uint64_t rd_u64(rd *r) {
  if (r->failed || (size_t)(r->end - r->p) < 8) {
    rfail(r, "launch plan: truncated");
    return 0;
  }
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = v << 8 | r->p[i];
  r->p += 8;
  return v;
}

static uint32_t rd_u32(rd *r) {
  if (r->failed || (size_t)(r->end - r->p) < 4) {
    rfail(r, "launch plan: truncated");
    return 0;
  }
  uint32_t v = (uint32_t)r->p[0] | (uint32_t)r->p[1] << 8 | (uint32_t)r->p[2] << 16 | (uint32_t)r->p[3] << 24;
  r->p += 4;
  return v;
}

static int64_t rd_i64(rd *r) { return (int64_t)rd_u64(r); }
static int32_t rd_i32(rd *r) { return (int32_t)rd_u32(r); }

/* a count of items of at least `min_item` bytes each that must fit in what is left */
static int64_t rd_count(rd *r, size_t min_item, const char *what) {
  int64_t n = rd_i64(r);
  if (r->failed) return 0;
  if (n < 0 || (uint64_t)n > (uint64_t)(r->end - r->p) / (min_item ? min_item : 1)) {
    rfail(r, "launch plan: bad count of %s (%lld)", what, (long long)n);
    return 0;
  }
  return n;
}

static void *rd_bytes(rd *r, uint64_t n, int nul) {
  if (r->failed) return NULL;
  if (n > (uint64_t)(r->end - r->p)) {
    rfail(r, "launch plan: truncated");
    return NULL;
  }
  char *s = malloc((size_t)n + 1);
  if (!s) {
    rfail(r, "launch plan: out of memory");
    return NULL;
  }
  memcpy(s, r->p, (size_t)n);
  if (nul) s[n] = 0;
  r->p += n;
  return s;
}

static char *rd_str(rd *r) {
  uint32_t n = rd_u32(r);
  return rd_bytes(r, n, 1);
}

static void *rd_array(rd *r, int64_t n, size_t sz) {
  if (r->failed) return NULL;
  void *a = calloc((size_t)n + 1, sz);
  if (!a) rfail(r, "launch plan: out of memory");
  return a;
}

static void rd_launch(rd *r, morcu_launch *l) {
  l->kernel = rd_i32(r);
  for (int i = 0; i < 3; i++) l->grid_c[i] = rd_i32(r);
  for (int i = 0; i < 3; i++) l->grid_d[i] = rd_i32(r);
  for (int i = 0; i < 3; i++) l->block[i] = rd_i32(r);
  l->smem = rd_i32(r);
}

static int check_launch(rd *r, const morcu_plan *p, const morcu_launch *l, int64_t s, int optional) {
  if (optional && l->kernel < 0) return 1;
  if (l->kernel < 0 || l->kernel >= p->n_kernels) {
    rfail(r, "launch plan: step %lld: bad kernel index %d", (long long)s, l->kernel);
    return 0;
  }
  for (int i = 0; i < 3; i++)
    if (l->grid_c[i] < 0 || l->grid_d[i] < 0 || l->block[i] < 1 || l->block[i] > 1024 ||
        (l->grid_c[i] == 0 && l->grid_d[i] == 0)) {
      rfail(r, "launch plan: step %lld: bad launch dimensions", (long long)s);
      return 0;
    }
  if (l->smem < 0 || l->smem > (1 << 20)) {
    rfail(r, "launch plan: step %lld: bad shared memory size", (long long)s);
    return 0;
  }
  return 1;
}

morcu_plan *morcu_plan_read(const void *data, size_t len, char *err, size_t errlen) {
  rd r0 = {data, (const unsigned char *)data + len, err, errlen, 0}, *r = &r0;
  if (len < 8 || memcmp(data, MORCU_PLAN_MAGIC, 8) != 0) {
    snprintf(err, errlen, "launch plan: bad magic (not a morc CUDA build, or another version of morc)");
    return NULL;
  }
  r->p += 8;
  morcu_plan *p = calloc(1, sizeof *p);
  if (!p) {
    snprintf(err, errlen, "launch plan: out of memory");
    return NULL;
  }
  p->name = rd_str(r);
  p->arch = rd_str(r);
  p->vocab = rd_i64(r);
  p->hidden = rd_i64(r);
  p->max_pos = rd_i64(r);
  p->max_tokens = rd_i64(r);
  p->n_r = rd_i64(r);
  p->routing = rd_i64(r);
  p->whole_sequence = rd_i64(r);
  p->io_bytes = rd_i64(r);
  p->io_tokens = rd_i64(r);
  p->io_pos = rd_i64(r);
  p->arena_bytes = rd_i64(r);
  p->weights_bytes = rd_i64(r);
  p->n_cnt = rd_i64(r);
  p->n_tickets = rd_i64(r);
  p->n_cnt_init = rd_count(r, 16, "constant count slots");
  p->cnt_init = rd_array(r, 2 * p->n_cnt_init, sizeof(int64_t));
  for (int64_t i = 0; !r->failed && i < 2 * p->n_cnt_init; i++) p->cnt_init[i] = rd_i64(r);
  p->logits_off = rd_i64(r);
  p->depths_off = rd_i64(r);
  p->n_weights = rd_count(r, 24, "weights");
  p->weights = rd_array(r, p->n_weights, sizeof *p->weights);
  for (int64_t i = 0; !r->failed && i < p->n_weights; i++) {
    morcu_weight *w = &p->weights[i];
    w->name = rd_str(r);
    w->dtype = rd_u32(r);
    w->offset = rd_u64(r);
    w->bytes = rd_u64(r);
  }
  p->n_kv = rd_count(r, 36, "KV stores");
  p->kv = rd_array(r, p->n_kv, sizeof *p->kv);
  for (int64_t i = 0; !r->failed && i < p->n_kv; i++) {
    morcu_kv *k = &p->kv[i];
    k->name = rd_str(r);
    k->capacity = rd_i64(r);
    k->width = rd_i64(r);
    k->layer = rd_i64(r);
    k->depth = rd_i64(r);
  }
  p->n_kernels = rd_count(r, 4, "kernels");
  p->kernel_names = rd_array(r, p->n_kernels, sizeof(char *));
  for (int64_t i = 0; !r->failed && i < p->n_kernels; i++) p->kernel_names[i] = rd_str(r);
  p->n_labels = rd_count(r, 4, "labels");
  p->labels = rd_array(r, p->n_labels, sizeof(char *));
  for (int64_t i = 0; !r->failed && i < p->n_labels; i++) p->labels[i] = rd_str(r);
  p->n_steps = rd_count(r, 150, "steps");
  p->steps = rd_array(r, p->n_steps, sizeof *p->steps);
  for (int64_t i = 0; !r->failed && i < p->n_steps; i++) {
    morcu_step *s = &p->steps[i];
    for (int v = 0; v < MORCU_VARIANTS; v++) {
      rd_launch(r, &s->var[v]);
      s->max_t[v] = rd_i32(r);
    }
    s->first_param = rd_i32(r);
    s->n_params = rd_i32(r);
    s->label = rd_i32(r);
  }
  p->n_params = rd_count(r, 12, "parameters");
  p->params = rd_array(r, p->n_params, sizeof *p->params);
  for (int64_t i = 0; !r->failed && i < p->n_params; i++) {
    p->params[i].kind = rd_u32(r);
    p->params[i].v = rd_u64(r);
  }
  uint64_t n = rd_u64(r);
  p->ptx = rd_bytes(r, n, 1);
  p->cubin_size = rd_u64(r);
  p->cubin = rd_bytes(r, p->cubin_size, 0);
  p->tokenizer_size = rd_u64(r);
  if (p->tokenizer_size) p->tokenizer_json = rd_bytes(r, p->tokenizer_size, 1);
  if (!r->failed && r->p != r->end) rfail(r, "launch plan: %zu bytes of trailing data", (size_t)(r->end - r->p));

  /* consistency */
  if (!r->failed && (p->vocab < 1 || p->max_tokens < 1 || p->max_tokens > ((int64_t)1 << 40) || p->max_pos < 1 ||
                     p->n_cnt < 1 || p->n_tickets < 0 ||
                     p->io_bytes < 16 || p->arena_bytes < 0 || p->weights_bytes < 0))
    rfail(r, "launch plan: bad sizes");
  /* bounds that keep every size the runtime computes from these far from overflow */
  const int64_t big = (int64_t)1 << 50;
  if (!r->failed && (p->vocab > ((int64_t)1 << 32) || p->max_pos > ((int64_t)1 << 40) || p->n_cnt > (1 << 24) ||
                     p->n_tickets > (1 << 24) || p->io_bytes > big || p->arena_bytes > big || p->weights_bytes > big))
    rfail(r, "launch plan: sizes out of range");
  if (!r->failed && (p->io_tokens < 0 || p->io_pos < 0 || p->io_tokens > p->io_bytes - 4 * p->max_tokens ||
                     p->io_pos > p->io_bytes - 4 * p->max_tokens))
    rfail(r, "launch plan: bad io layout");
  for (int64_t i = 0; !r->failed && i < p->n_cnt_init; i++)
    if (p->cnt_init[2 * i] < 1 || p->cnt_init[2 * i] >= p->n_cnt) rfail(r, "launch plan: bad constant slot");
  for (int64_t i = 0; !r->failed && i < p->n_weights; i++) {
    const morcu_weight *w = &p->weights[i];
    if ((w->dtype != 0 && w->dtype != 2) || w->offset > (uint64_t)p->weights_bytes ||
        w->bytes > (uint64_t)p->weights_bytes - w->offset)
      rfail(r, "launch plan: weight %lld lies outside the weight buffer", (long long)i);
  }
  for (int64_t i = 0; !r->failed && i < p->n_kv; i++)
    if (p->kv[i].capacity < 1 || p->kv[i].width < 1 || p->kv[i].capacity > ((int64_t)1 << 31) ||
        p->kv[i].width > (1 << 20))
      rfail(r, "launch plan: bad KV store %lld", (long long)i);
  for (int64_t i = 0; !r->failed && i < p->n_steps; i++) {
    const morcu_step *s = &p->steps[i];
    int covers = 0;
    for (int v = 0; v < MORCU_VARIANTS; v++) {
      if (!check_launch(r, p, &s->var[v], i, v > 0)) break;
      if (s->var[v].kernel >= 0 && s->max_t[v] >= p->max_tokens) covers = 1;
    }
    if (r->failed) break;
    if (!covers) rfail(r, "launch plan: step %lld has no kernel for calls of %lld tokens", (long long)i, (long long)p->max_tokens);
    if (s->first_param < 0 || s->n_params < 0 || s->n_params > 64 || s->first_param > p->n_params ||
        s->n_params > p->n_params - s->first_param || s->label < 0 || s->label >= p->n_labels)
      rfail(r, "launch plan: step %lld: bad parameters", (long long)i);
  }
  for (int64_t i = 0; !r->failed && i < p->n_params; i++) {
    const morcu_param *q = &p->params[i];
    int ok = q->kind < MORCU_P_KINDS;
    switch (q->kind) {
    case MORCU_P_IO: ok = q->v < (uint64_t)p->io_bytes; break;
    case MORCU_P_ARENA: ok = q->v < (uint64_t)p->arena_bytes; break;
    case MORCU_P_WEIGHT: ok = q->v < (uint64_t)p->weights_bytes; break;
    case MORCU_P_KVK:
    case MORCU_P_KVV:
    case MORCU_P_KVPOS:
    case MORCU_P_KVN: ok = q->v < (uint64_t)p->n_kv; break;
    case MORCU_P_CNT: ok = q->v < (uint64_t)p->n_cnt; break;
    case MORCU_P_TICKET: ok = q->v < (uint64_t)p->n_tickets; break;
    default: break;
    }
    if (!ok) rfail(r, "launch plan: parameter %lld points outside its buffer", (long long)i);
  }
  int64_t lend, dend; /* the ends of the outputs; the sizes come from a file, so no product may wrap */
  if (!r->failed && (p->logits_off < 0 || p->depths_off < 0 || __builtin_mul_overflow(p->max_tokens, p->vocab, &lend) ||
                     __builtin_mul_overflow(lend, (int64_t)4, &lend) || __builtin_add_overflow(lend, p->logits_off, &lend) ||
                     lend > p->arena_bytes || __builtin_mul_overflow(p->max_tokens, (int64_t)4, &dend) ||
                     __builtin_add_overflow(dend, p->depths_off, &dend) || dend > p->arena_bytes))
    rfail(r, "launch plan: outputs lie outside the arena");
  if (r->failed) {
    morcu_plan_free(p);
    return NULL;
  }
  return p;
}

void morcu_plan_free(morcu_plan *p) {
  if (!p) return;
  free(p->name);
  free(p->arch);
  free(p->cnt_init);
  for (int64_t i = 0; p->weights && i < p->n_weights; i++) free(p->weights[i].name);
  free(p->weights);
  for (int64_t i = 0; p->kv && i < p->n_kv; i++) free(p->kv[i].name);
  free(p->kv);
  for (int64_t i = 0; p->kernel_names && i < p->n_kernels; i++) free(p->kernel_names[i]);
  free(p->kernel_names);
  for (int64_t i = 0; p->labels && i < p->n_labels; i++) free(p->labels[i]);
  free(p->labels);
  free(p->steps);
  free(p->params);
  free(p->ptx);
  free(p->cubin);
  free(p->tokenizer_json);
  free(p);
}
