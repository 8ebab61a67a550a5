/* attention.c: KV cache append and causal attention over a cache.
 * Caches are the sequence's morrt_kv records; `si` is the store index an op
 * resolved for its depth (-1: @none, the write is skipped). */
#include <math.h>
#include "kernels/mork.h"

/* Append M rows (K, V of width values each, and their positions). */
MORK void mork_kv_write(morrt_kv *kv, int64_t si, const float *restrict k, const float *restrict v,
                        const int32_t *restrict pos, int64_t M, int64_t width) {
  if (si < 0) return;
  morrt_kv *c = kv + si;
  int64_t n = c->n;
  if (n + M > c->capacity) M = c->capacity - n; /* the runtime checks positions first: cannot happen */
  for (int64_t i = 0; i < M; i++) c->pos[n + i] = pos[i];
  __builtin_memcpy(c->k + n * width, k, (size_t)(M * width) * sizeof(float));
  __builtin_memcpy(c->v + n * width, v, (size_t)(M * width) * sizeof(float));
  c->n = n + M;
}

/* Entries in store si (0 for @none): the runtime's cost estimate. */
MORK int64_t mork_kv_len(const morrt_kv *kv, int64_t si) { return si < 0 ? 0 : kv[si].n; }

/* items: (row m, head h) pairs, m * H + h. Online softmax in f32 over the
 * cache entries whose position <= the row's position; scale 1/sqrt(hd). */
MORK void mork_attention(const float *restrict q, const int32_t *restrict pos, const morrt_kv *kv, int64_t si,
                         float *restrict y, int64_t H, int64_t KVH, int64_t hd, int64_t b, int64_t e) {
  int64_t width = KVH * hd, group = H / KVH;
  float scale = (float)(1.0 / sqrt((double)hd));
  for (int64_t it = b; it < e; it++) {
    int64_t m = it / H, h = it % H;
    const float *qh = q + m * H * hd + h * hd;
    float *yr = y + m * H * hd + h * hd;
    for (int64_t d = 0; d < hd; d++) yr[d] = 0;
    if (si < 0) continue;
    const morrt_kv *c = kv + si;
    int64_t kvo = (h / group) * hd;
    int32_t p = pos[m];
    float mx = -INFINITY, sum = 0;
    for (int64_t j = 0; j < c->n; j++) {
      if (c->pos[j] > p) continue;
      const float *kr = c->k + j * width + kvo, *vr = c->v + j * width + kvo;
      float sc = 0;
      int64_t d = 0;
      if (hd >= 8) {
        mork_v8 a = {0};
        for (; d + 8 <= hd; d += 8) a += mork_ld(qh + d) * mork_ld(kr + d);
        sc = mork_hsum(a);
      }
      for (; d < hd; d++) sc += qh[d] * kr[d];
      sc *= scale;
      if (sc > mx) {
        float r = expf(mx - sc); /* 0 on the first entry */
        sum *= r;
        for (d = 0; d < hd; d++) yr[d] *= r;
        mx = sc;
      }
      float w = expf(sc - mx);
      sum += w;
      for (d = 0; d < hd; d++) yr[d] += w * vr[d];
    }
    if (sum > 0) {
      float inv = 1.0f / sum;
      for (int64_t d = 0; d < hd; d++) yr[d] *= inv;
    }
  }
}
