/* mkweights.c: writes a model.json and a model.safetensors of random f32
 * weights in the shapes of a paper configuration, for the benchmark only.
 * usage: mkweights OUT_DIR KIND LAYERS D HEADS KV_HEADS FFN VOCAB CONTEXT
 * KIND: vanilla (1 recursion, no routing), recursive (middle_cycle, 3
 * recursions, no routing), mor (middle_cycle, 3 recursions, expert_choice,
 * threshold inference), mor_topk (the same with top_k inference routing, at
 * the default capacities). The tensors are streamed, never held whole. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  char name[128];
  int rank;
  long long a, b;
  int ones; /* a norm weight: all 1 */
} tensor;

static tensor ts[1024];
static int nt;

static void add(const char *name, int rank, long long a, long long b, int ones) {
  tensor *t = &ts[nt++];
  snprintf(t->name, sizeof t->name, "%s", name);
  t->rank = rank, t->a = a, t->b = b, t->ones = ones;
}

static long long D, H, KVH, F, HD;

static void layer(const char *p) {
  char n[128];
#define L(s, r, a, b, o) (snprintf(n, sizeof n, "%s%s", p, s), add(n, r, a, b, o))
  L("input_layernorm.weight", 1, D, 0, 1);
  L("self_attn.q_proj.weight", 2, H * HD, D, 0);
  L("self_attn.k_proj.weight", 2, KVH * HD, D, 0);
  L("self_attn.v_proj.weight", 2, KVH * HD, D, 0);
  L("self_attn.o_proj.weight", 2, D, H * HD, 0);
  L("post_attention_layernorm.weight", 1, D, 0, 1);
  L("mlp.gate_proj.weight", 2, F, D, 0);
  L("mlp.up_proj.weight", 2, F, D, 0);
  L("mlp.down_proj.weight", 2, D, F, 0);
#undef L
}

static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static float uniform_sym(float a) { /* uniform in [-a, a) */
  rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
  return a * (float)((double)(rng >> 40) / 8388608.0 - 1.0);
}

int main(int argc, char **argv) {
  if (argc != 10) {
    fprintf(stderr, "usage: mkweights OUT_DIR vanilla|recursive|mor|mor_topk LAYERS D HEADS KV_HEADS FFN VOCAB CONTEXT\n");
    return 2;
  }
  const char *dir = argv[1], *kind = argv[2];
  long long L = atoll(argv[3]), V = atoll(argv[8]), ctx = atoll(argv[9]);
  D = atoll(argv[4]), H = atoll(argv[5]), KVH = atoll(argv[6]), F = atoll(argv[7]), HD = D / H;
  int vanilla = !strcmp(kind, "vanilla"), mor = !strncmp(kind, "mor", 3);
  int nr = vanilla ? 1 : 3;
  char p[128];
  add("model.embed_tokens.weight", 2, V, D, 0);
  add("model.norm.weight", 1, D, 0, 1);
  if (vanilla) {
    for (long long i = 0; i < L; i++) snprintf(p, sizeof p, "model.layers.%lld.", i), layer(p);
  } else {
    long long B = (L - 2) / nr;
    if ((L - 2) % nr) {
      fprintf(stderr, "mkweights: LAYERS - 2 must be a multiple of 3\n");
      return 2;
    }
    layer("model.layers.0.");
    for (long long j = 0; j < B; j++) {
      if (mor) snprintf(p, sizeof p, "model.layers.1.block.%lld.", j);
      else snprintf(p, sizeof p, "model.layers.%lld.", 1 + j);
      layer(p);
    }
    if (mor)
      for (int r = 0; r < nr; r++) snprintf(p, sizeof p, "model.layers.%d.mor_router.router.weight", 1 + r), add(p, 2, 1, D, 0);
    /* the last layer: numbered after the shared block (1 + N_r with routing) */
    snprintf(p, sizeof p, "model.layers.%lld.", mor ? 1 + nr : L - 1), layer(p);
  }
  /* header */
  size_t cap = 1 << 20, len = 0;
  char *hdr = malloc(cap);
  len += (size_t)snprintf(hdr + len, cap - len, "{");
  unsigned long long off = 0;
  for (int i = 0; i < nt; i++) {
    unsigned long long n = (unsigned long long)(ts[i].rank == 1 ? ts[i].a : ts[i].a * ts[i].b) * 4;
    if (ts[i].rank == 1)
      len += (size_t)snprintf(hdr + len, cap - len, "%s\"%s\":{\"dtype\":\"F32\",\"shape\":[%lld],\"data_offsets\":[%llu,%llu]}",
                              i ? "," : "", ts[i].name, ts[i].a, off, off + n);
    else
      len += (size_t)snprintf(hdr + len, cap - len,
                              "%s\"%s\":{\"dtype\":\"F32\",\"shape\":[%lld,%lld],\"data_offsets\":[%llu,%llu]}", i ? "," : "",
                              ts[i].name, ts[i].a, ts[i].b, off, off + n);
    off += n;
  }
  len += (size_t)snprintf(hdr + len, cap - len, "}");
  while ((len + 8) % 64) hdr[len++] = ' '; /* data 64-byte aligned */
  char path[4096];
  snprintf(path, sizeof path, "%s/model.safetensors", dir);
  FILE *f = fopen(path, "wb");
  if (!f) {
    perror(path);
    return 1;
  }
  uint64_t hl = len;
  fwrite(&hl, 8, 1, f);
  fwrite(hdr, 1, len, f);
  free(hdr);
  enum { CH = 1 << 16 };
  static float buf[CH];
  for (int i = 0; i < nt; i++) {
    long long n = ts[i].rank == 1 ? ts[i].a : ts[i].a * ts[i].b;
    /* sd 0.02 like the paper's init; routers larger so their scores spread */
    float a = strstr(ts[i].name, "router") ? 1.0f : 0.0346f;
    while (n > 0) {
      long long c = n < CH ? n : CH;
      for (long long k = 0; k < c; k++) buf[k] = ts[i].ones ? 1.0f : uniform_sym(a);
      fwrite(buf, 4, (size_t)c, f);
      n -= c;
    }
  }
  if (fclose(f)) {
    perror(path);
    return 1;
  }
  snprintf(path, sizeof path, "%s/model.json", dir);
  f = fopen(path, "w");
  if (!f) return 1;
  fprintf(f,
          "{\n  \"model_type\": \"mor\",\n  \"vocab_size\": %lld,\n  \"hidden_size\": %lld,\n"
          "  \"intermediate_size\": %lld,\n  \"num_hidden_layers\": %lld,\n  \"num_attention_heads\": %lld,\n"
          "  \"num_key_value_heads\": %lld,\n  \"head_dim\": %lld,\n  \"rms_norm_eps\": 1e-5,\n"
          "  \"max_position_embeddings\": %lld,\n  \"tie_word_embeddings\": true,\n"
          "  \"mor\": {\"num_recursions\": %d, \"sharing\": \"%s\", \"routing\": \"%s\"%s},\n"
          "  \"weights\": [\"model.safetensors\"]\n}\n",
          V, D, F, L, H, KVH, HD, ctx, nr, vanilla ? "cycle" : "middle_cycle", mor ? "expert_choice" : "none",
          !strcmp(kind, "mor_topk") ? ", \"inference_routing\": \"top_k\"" : "");
  return fclose(f) ? 1 : 0;
}
