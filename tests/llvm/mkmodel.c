/* mkmodel.c: writes a small MoR model (expert choice, middle_cycle, 3
 * recursions) with random weights whose vocabulary matches a given
 * tokenizer.json, so tests can drive built programs with --prompt text.
 * usage: mkmodel TOKENIZER.json OUT_DIR */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/safetensors.h"
#include "runtime/tokenizer.h"

enum { D = 32, F = 64, H = 4, KVH = 2, HD = 8, NR = 3, B = 1 };

static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static double uniform(void) {
  rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
  return ((double)(rng >> 11) + 0.5) / 9007199254740992.0;
}
static float normal(float sd) { return sd * (float)(sqrt(-2 * log(uniform())) * cos(6.283185307179586 * uniform())); }

static morrt_st_tensor ts[64];
static int nt;
static char names[64][96];

static void add(const char *name, int rank, int64_t a, int64_t b, float sd, float mean) {
  morrt_st_tensor *t = &ts[nt];
  snprintf(names[nt], sizeof names[nt], "%s", name);
  t->name = names[nt];
  t->dtype = 0;
  t->dtype_name = "F32";
  t->rank = rank;
  t->shape[0] = a;
  t->shape[1] = b;
  int64_t n = rank == 1 ? a : a * b;
  float *d = malloc(sizeof(float) * (size_t)n);
  for (int64_t i = 0; i < n; i++) d[i] = mean + normal(sd);
  t->data = d;
  t->nbytes = (uint64_t)n * 4;
  nt++;
}

static void layer(const char *p) {
  char n[96];
#define L(suffix, rank, a, b, sd, mean) (snprintf(n, sizeof n, "%s%s", p, suffix), add(n, rank, a, b, sd, mean))
  L("self_attn.q_proj.weight", 2, H * HD, D, 0.2f, 0);
  L("self_attn.k_proj.weight", 2, KVH * HD, D, 0.2f, 0);
  L("self_attn.v_proj.weight", 2, KVH * HD, D, 0.2f, 0);
  L("self_attn.o_proj.weight", 2, D, H * HD, 0.2f, 0);
  L("mlp.gate_proj.weight", 2, F, D, 0.2f, 0);
  L("mlp.up_proj.weight", 2, F, D, 0.2f, 0);
  L("mlp.down_proj.weight", 2, D, F, 0.2f, 0);
  L("input_layernorm.weight", 1, D, 0, 0.1f, 1);
  L("post_attention_layernorm.weight", 1, D, 0, 0.1f, 1);
#undef L
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: mkmodel TOKENIZER.json OUT_DIR\n");
    return 2;
  }
  char err[512];
  morrt_tokenizer *tok = morrt_tokenizer_load(argv[1], err, sizeof err);
  if (!tok) {
    fprintf(stderr, "mkmodel: %s\n", err);
    return 1;
  }
  int64_t V = morrt_tokenizer_vocab_size(tok);
  morrt_tokenizer_free(tok);
  add("model.embed_tokens.weight", 2, V, D, 0.5f, 0);
  add("model.norm.weight", 1, D, 0, 0.1f, 1);
  layer("model.layers.0.");
  layer("model.layers.4.");
  for (int j = 0; j < B; j++) {
    char p[64];
    snprintf(p, sizeof p, "model.layers.1.block.%d.", j);
    layer(p);
  }
  for (int r = 0; r < NR; r++) {
    char n[96];
    snprintf(n, sizeof n, "model.layers.%d.mor_router.router.weight", 1 + r);
    add(n, 2, 1, D, 0.3f, 0);
  }
  char path[4096];
  snprintf(path, sizeof path, "%s/model.safetensors", argv[2]);
  if (morrt_st_write(path, nt, ts, 0, NULL, err, sizeof err)) {
    fprintf(stderr, "mkmodel: %s\n", err);
    return 1;
  }
  /* the tokenizer beside the description */
  snprintf(path, sizeof path, "%s/tokenizer.json", argv[2]);
  FILE *in = fopen(argv[1], "rb"), *out = fopen(path, "wb");
  if (!in || !out) {
    fprintf(stderr, "mkmodel: cannot copy the tokenizer to %s\n", path);
    return 1;
  }
  char buf[65536];
  size_t k;
  while ((k = fread(buf, 1, sizeof buf, in)) > 0) fwrite(buf, 1, k, out);
  fclose(in);
  if (fclose(out)) return 1;
  snprintf(path, sizeof path, "%s/model.json", argv[2]);
  FILE *f = fopen(path, "w");
  if (!f) return 1;
  fprintf(f,
          "{\n  \"model_type\": \"mor\",\n  \"vocab_size\": %lld,\n  \"hidden_size\": %d,\n"
          "  \"intermediate_size\": %d,\n  \"num_hidden_layers\": %d,\n  \"num_attention_heads\": %d,\n"
          "  \"num_key_value_heads\": %d,\n  \"head_dim\": %d,\n  \"rms_norm_eps\": 1e-5,\n"
          "  \"max_position_embeddings\": 256,\n  \"tie_word_embeddings\": true,\n"
          "  \"mor\": {\"num_recursions\": %d, \"sharing\": \"middle_cycle\", \"routing\": \"expert_choice\","
          " \"threshold\": 0.5},\n"
          "  \"weights\": [\"model.safetensors\"],\n  \"tokenizer\": \"tokenizer.json\"\n}\n",
          (long long)V, D, F, 2 + NR * B, H, KVH, HD, NR);
  if (fclose(f)) return 1;
  for (int i = 0; i < nt; i++) free((void *)ts[i].data);
  return 0;
}
