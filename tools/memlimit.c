/* memlimit.c: what a `morc run` will hold in memory, estimated from the IR
 * (after the pass pipeline) and checked against a cap before the weights
 * are decoded: refusing with the numbers beats being killed by the kernel. */
#include "tools/memlimit.h"
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static uint64_t sat_add(uint64_t a, uint64_t b) { return a + b < a ? UINT64_MAX : a + b; }

static uint64_t sat_mul(uint64_t a, uint64_t b) {
  uint64_t r;
  return __builtin_mul_overflow(a, b, &r) ? UINT64_MAX : r;
}

/* Elements of t with every symbolic dim at min(its bound, T). */
static uint64_t numel_at(const mor_type *t, int64_t T) {
  uint64_t n = 1;
  for (int d = 0; d < t->rank; d++) {
    int64_t k = t->dims[d].n;
    if (t->dims[d].sym >= 0 && k > T) k = T;
    n = sat_mul(n, (uint64_t)(k > 0 ? k : 0));
  }
  return n;
}

/* The four largest values defined in b and its regions. */
static void largest(const mor_block *b, int64_t T, uint64_t top[4]) {
  for (const mor_op *op = b->first; op; op = op->next) {
    for (int i = 0; i < op->n_results; i++) {
      const mor_type *t = &op->results[i]->type;
      uint64_t v = sat_mul(numel_at(t, T), (uint64_t)mor_dtype_size(t->dtype));
      for (int k = 0; k < 4; k++)
        if (v > top[k]) {
          uint64_t tmp = top[k];
          top[k] = v;
          v = tmp;
        }
    }
    if (op->region) largest(op->region, T, top);
  }
}

morc_mem morc_mem_estimate(const mor_module *m, int64_t T) {
  morc_mem r = {0};
  for (int i = 0; i < m->n_globals; i++) {
    const mor_global *g = &m->globals[i];
    if (g->kind == MOR_GLOBAL_WEIGHT) {
      r.weights = sat_add(r.weights, sat_mul(numel_at(&g->type, T), 4));
    } else if (!g->alias && g->type.rank == 3) {
      /* rows: the whole capacity when reserved, else the run's tokens grown by doubling from 16 */
      uint64_t cap = (uint64_t)(g->type.dims[0].n > 0 ? g->type.dims[0].n : 0), rows = 16;
      if (g->policy && !strcmp(g->policy, "reserve")) rows = cap;
      else
        while (rows < (uint64_t)T && rows < ((uint64_t)1 << 62)) rows *= 2;
      uint64_t width = sat_mul((uint64_t)g->type.dims[1].n, (uint64_t)g->type.dims[2].n);
      r.kv = sat_add(r.kv, sat_mul(rows, sat_add(sat_mul(width, 8), 4))); /* K and V in f32, a position */
    }
  }
  uint64_t arenas = 0, top[4] = {0};
  for (int f = 0; f < m->n_funcs; f++) {
    char key[160];
    snprintf(key, sizeof key, "arena_%s", m->funcs[f]->name);
    int64_t a = mor_mattr_int(m, key, -1);
    if (a > 0) arenas = sat_add(arenas, (uint64_t)a);
    largest(m->funcs[f]->body, T, top);
  }
  r.activations = arenas ? arenas : sat_add(sat_add(top[0], top[1]), sat_add(top[2], top[3]));
  uint64_t logits = sat_mul(sat_mul((uint64_t)T, (uint64_t)mor_mattr_int(m, "vocab_size", 0)), 4);
  r.total = sat_add(sat_add(r.weights, r.kv), sat_add(r.activations, logits));
  return r;
}

uint64_t morc_phys_mem(void) {
  long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
  if (pages <= 0 || size <= 0) return UINT64_MAX;
  return sat_mul((uint64_t)pages, (uint64_t)size);
}

const char *morc_bytes_str(uint64_t b, char *buf, size_t n) {
  static const char *const units[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  if (b < 1024) {
    snprintf(buf, n, "%llu bytes", (unsigned long long)b);
    return buf;
  }
  double v = (double)b / 1024;
  int u = 0;
  while (v >= 1024 && u < 5) v /= 1024, u++;
  snprintf(buf, n, "%.1f %s", v, units[u]);
  return buf;
}

int morc_mem_check(const char *model, const mor_module *m, int64_t ntokens, uint64_t cap, int cap_given,
                   mor_err *e) {
  morc_mem r = morc_mem_estimate(m, ntokens);
  if (r.total <= cap) return 0;
  char t[32], w[32], k[32], a[32], c[32];
  mor_errf(e,
           "%s: this run needs about %s of memory (weights %s as f32, KV caches %s for %lld token%s, "
           "activations %s), more than the %s %s",
           model, morc_bytes_str(r.total, t, sizeof t), morc_bytes_str(r.weights, w, sizeof w),
           morc_bytes_str(r.kv, k, sizeof k), (long long)ntokens, ntokens == 1 ? "" : "s",
           morc_bytes_str(r.activations, a, sizeof a), morc_bytes_str(cap, c, sizeof c),
           cap_given ? "that --max-memory allows" : "of physical memory (--max-memory sets another cap)");
  return -1;
}
