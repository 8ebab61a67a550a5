/* examples/capi/main.c: a compiled model used from C through libmorrt.
 *
 * Build a bundle (object + header + weights) and link it with libmorrt.a:
 *   morc build examples/ec_linear_sigmoid_threshold/model.json --emit=bundle --name demo -o /tmp/capi/demo
 *   cc -I. -I/tmp/capi examples/capi/main.c /tmp/capi/demo.o build/lib/libmorrt.a -lm -lpthread -ldl \
 *      -o /tmp/capi/capi
 *   /tmp/capi/capi /tmp/capi/demo.safetensors 1,5,9,17 8
 *
 * It decodes greedily from the prompt, printing each new token id and the
 * recursions the model spent on it, then runs two sequences side by side
 * (each with its own KV caches) and checks they agree with the first. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "demo.h" /* from morc build --emit=bundle --name demo: declares demo_model */
#include "runtime/morrt.h"
#include "runtime/sampler.h"

static int parse_ids(const char *s, int32_t *ids, int max) {
  int n = 0;
  while (*s && n < max) {
    ids[n++] = (int32_t)strtol(s, (char **)&s, 10);
    if (*s == ',') s++;
  }
  return n;
}

/* Prompt, then n greedy tokens; out gets them, dep their recursions. */
static int generate(morrt_model *m, morrt_seq *s, const int32_t *prompt, int T, int n, int32_t *out, int32_t *dep) {
  char err[512];
  int64_t V = morrt_model_desc(m)->vocab_size;
  float *logits = malloc(sizeof(float) * (size_t)(T * V));
  if (morrt_forward(m, s, prompt, T, logits, NULL, err, sizeof err)) {
    fprintf(stderr, "capi: %s\n", err);
    free(logits);
    return -1;
  }
  const float *row = logits + (int64_t)(T - 1) * V;
  for (int i = 0; i < n; i++) {
    out[i] = morrt_argmax(row, (int32_t)V);
    if (morrt_forward(m, s, &out[i], 1, logits, &dep[i], err, sizeof err)) {
      fprintf(stderr, "capi: %s\n", err);
      free(logits);
      return -1;
    }
    row = logits;
  }
  free(logits);
  return 0;
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s WEIGHTS.safetensors IDS N\n", argv[0]);
    return 2;
  }
  int32_t prompt[256], out[256], dep[256];
  int T = parse_ids(argv[2], prompt, 256), n = atoi(argv[3]);
  if (T < 1 || n < 0 || n > 256) return 2;
  char err[512];
  morrt_options opt = {.threads = 2, .weights = argv[1]};
  morrt_model *m = morrt_model_open(&demo_model, &opt, err, sizeof err);
  if (!m) {
    fprintf(stderr, "capi: %s\n", err);
    return 1;
  }
  const morrt_desc *d = morrt_model_desc(m);
  printf("model %s: vocab %lld, context %lld, %lld recursions, arena %lld bytes\n", d->name, (long long)d->vocab_size,
         (long long)d->max_pos, (long long)d->num_recursions, (long long)DEMO_ARENA_BYTES);
  morrt_seq *s = morrt_seq_new(m);
  if (generate(m, s, prompt, T, n, out, dep)) return 1;
  printf("tokens:");
  for (int i = 0; i < n; i++) printf(" %d", out[i]);
  printf("\nrecursions:");
  for (int i = 0; i < n; i++) printf(" %d", dep[i]);
  printf("\nKV bytes in use: %lld\n", (long long)morrt_seq_kv_bytes(s));

  /* two sequences, stepped together with morrt_forward_batch */
  morrt_seq *a = morrt_seq_new(m), *b = morrt_seq_new(m);
  morrt_seq *seqs[2] = {a, b};
  int64_t V = d->vocab_size;
  float *la = malloc(sizeof(float) * (size_t)(T * V)), *lb = malloc(sizeof(float) * (size_t)(T * V));
  const int32_t *toks[2] = {prompt, prompt};
  int64_t lens[2] = {T, T};
  float *lgs[2] = {la, lb};
  if (morrt_forward_batch(m, 2, seqs, toks, lens, lgs, NULL, err, sizeof err)) {
    fprintf(stderr, "capi: %s\n", err);
    return 1;
  }
  int32_t next[2] = {morrt_argmax(la + (T - 1) * V, (int32_t)V), morrt_argmax(lb + (T - 1) * V, (int32_t)V)};
  int same = next[0] == out[0] && next[1] == out[0];
  for (int i = 1; i < n && same; i++) {
    const int32_t *one[2] = {&next[0], &next[1]};
    int64_t ones[2] = {1, 1};
    if (morrt_forward_batch(m, 2, seqs, one, ones, lgs, NULL, err, sizeof err)) {
      fprintf(stderr, "capi: %s\n", err);
      return 1;
    }
    next[0] = morrt_argmax(la, (int32_t)V);
    next[1] = morrt_argmax(lb, (int32_t)V);
    same = next[0] == out[i] && next[1] == out[i];
  }
  printf("two sequences side by side: %s\n", same ? "same tokens" : "DIFFERENT");
  free(la);
  free(lb);
  morrt_seq_free(a);
  morrt_seq_free(b);
  morrt_seq_free(s);
  morrt_model_free(m);
  return same ? 0 : 1;
}
