/* sampler.c: token sampling. Top-k keeps a size-k heap over the vocab; top-p
 * first drops tokens too unlikely to be in any nucleus, then sorts the rest;
 * the draw is one uniform number against the cumulative sum. */
#include "sampler.h"

#include <math.h>
#include <stdlib.h>

uint64_t morrt_rng_next(uint64_t *state) {
  uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

double morrt_rng_uniform(uint64_t *state) { return (double)(morrt_rng_next(state) >> 11) * 0x1.0p-53; }

static float clean(float x) { return isnan(x) ? -INFINITY : x; }

int32_t morrt_argmax(const float *logits, int32_t V) {
  int32_t best = 0;
  float bv = clean(logits[0]);
  for (int32_t i = 1; i < V; i++) {
    float v = clean(logits[i]);
    if (v > bv)
      bv = v, best = i;
  }
  return best;
}

typedef struct cand {
  float logit;
  int32_t id;
} cand;

/* a ranks before b: larger logit, then smaller id (a total order, so the
 * result does not depend on the sort algorithm). */
static int before(const cand *a, const cand *b) { return a->logit > b->logit || (a->logit == b->logit && a->id < b->id); }

static int cmp_cand(const void *pa, const void *pb) {
  const cand *a = pa, *b = pb;
  return before(a, b) ? -1 : before(b, a) ? 1 : 0;
}

/* Keep the k best of logits in a min-heap (root = worst kept), then sort. */
static int32_t top_k_cands(const float *logits, int32_t V, int32_t k, cand *h) {
  int32_t n = 0;
  for (int32_t i = 0; i < V; i++) {
    cand c = {clean(logits[i]), i};
    if (n < k) {
      int32_t j = n++;
      while (j > 0 && before(&h[(j - 1) / 2], &c)) {
        h[j] = h[(j - 1) / 2];
        j = (j - 1) / 2;
      }
      h[j] = c;
    } else if (before(&c, &h[0])) {
      int32_t j = 0;
      for (;;) {
        int32_t l = 2 * j + 1, w = j;
        cand *worst = &c;
        if (l < n && before(worst, &h[l]))
          w = l, worst = &h[l];
        if (l + 1 < n && before(worst, &h[l + 1]))
          w = l + 1, worst = &h[l + 1];
        if (w == j)
          break;
        h[j] = h[w];
        j = w;
      }
      h[j] = c;
    }
  }
  qsort(h, (size_t)n, sizeof *h, cmp_cand);
  return n;
}

/* Draw from cands[0..n) (sorted, best first) with weights exp((l - mx) / T),
 * cut to the top-p nucleus of a distribution whose total weight is total
 * (the candidates may be only the head of it). */
static int32_t draw_sorted(const cand *c, int32_t n, double mx, double inv_t, double top_p, double total,
                           uint64_t *rng) {
  double cut = total;
  if (top_p > 0 && top_p < 1) {
    double cum = 0;
    for (int32_t i = 0; i < n; i++) {
      cum += exp((c[i].logit - mx) * inv_t);
      if (cum >= top_p * total) {
        n = i + 1;
        cut = cum;
        break;
      }
    }
  }
  double r = morrt_rng_uniform(rng) * cut, cum = 0;
  for (int32_t i = 0; i < n; i++) {
    cum += exp((c[i].logit - mx) * inv_t);
    if (cum > r)
      return c[i].id;
  }
  return c[n - 1].id;
}

int32_t morrt_sample(const float *logits, int32_t V, const morrt_sampler_cfg *cfg, uint64_t *rng_state) {
  if (V < 1)
    return -1;
  if (!cfg || !(cfg->temperature > 0))
    return morrt_argmax(logits, V);
  int32_t best = morrt_argmax(logits, V);
  float mx = clean(logits[best]);
  if (isinf(mx)) /* all -inf, or some +inf: nothing to weigh */
    return best;
  double inv_t = 1.0 / cfg->temperature;
  int use_k = cfg->top_k > 0 && cfg->top_k < V;
  int use_p = cfg->top_p > 0 && cfg->top_p < 1;

  if (!use_k && !use_p) { /* plain temperature: no sorting, one pass */
    double total = 0;
    for (int32_t i = 0; i < V; i++)
      total += exp((clean(logits[i]) - mx) * inv_t);
    double r = morrt_rng_uniform(rng_state) * total, cum = 0;
    int32_t last = best;
    for (int32_t i = 0; i < V; i++) {
      double w = exp((clean(logits[i]) - mx) * inv_t);
      cum += w;
      if (w > 0)
        last = i;
      if (cum > r)
        return i;
    }
    return last;
  }

  int32_t n;
  cand *c;
  double total = 0;
  if (use_k) {
    c = malloc((size_t)cfg->top_k * sizeof *c);
    if (!c)
      return -1;
    n = top_k_cands(logits, V, cfg->top_k, c);
    for (int32_t i = 0; i < n; i++)
      total += exp((c[i].logit - mx) * inv_t);
  } else {
    /* A token with p < (1 - top_p) / (V - 1) cannot be in the nucleus (all
     * such tokens together hold less than 1 - top_p), so skip sorting it. */
    for (int32_t i = 0; i < V; i++)
      total += exp((clean(logits[i]) - mx) * inv_t);
    double floor_w = V > 1 ? (1.0 - cfg->top_p) / (V - 1) * total : 0;
    c = malloc((size_t)V * sizeof *c);
    if (!c)
      return -1;
    n = 0;
    for (int32_t i = 0; i < V; i++) {
      float l = clean(logits[i]);
      if (exp((l - mx) * inv_t) >= floor_w)
        c[n].logit = l, c[n].id = i, n++;
    }
    if (n == 0) /* cannot happen (the max has weight 1 >= floor), but be safe */
      c[n].logit = mx, c[n].id = best, n = 1;
    qsort(c, (size_t)n, sizeof *c, cmp_cand);
  }
  int32_t id = draw_sorted(c, n, mx, inv_t, use_p ? cfg->top_p : 1.0, total, rng_state);
  free(c);
  return id;
}
