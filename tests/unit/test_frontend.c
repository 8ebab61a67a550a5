/* test_frontend.c: Check suites for the frontend: valid models under every
 * naming scheme of docs/model-format.md, the layer map, defaults, warnings,
 * errors, and the golden bad-input files of tests/bad/frontend. */
#include <check.h>
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "frontend/model.h"

#ifndef MORC_BAD_DIR
#define MORC_BAD_DIR "tests/bad/frontend"
#endif

/* ---- a temporary directory per test ------------------------------------ */

static char tmp[512];

static void setup(void) {
  const char *base = getenv("TMPDIR");
  snprintf(tmp, sizeof tmp, "%s/morc-frontend-XXXXXX", base && *base ? base : "/tmp");
  ck_assert_ptr_nonnull(mkdtemp(tmp));
}

static int rm_one(const char *p, const struct stat *s, int flag, struct FTW *f) {
  (void)s, (void)flag, (void)f;
  return remove(p);
}

static void teardown(void) { nftw(tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS); }

static char *tpath(const char *name) { return mor_xasprintf("%s/%s", tmp, name); }

static void write_text(const char *name, const char *text) {
  char *p = tpath(name);
  FILE *f = fopen(p, "wb");
  ck_assert_ptr_nonnull(f);
  fputs(text, f);
  fclose(f);
  free(p);
}

/* ---- a small safetensors writer ---------------------------------------- */

typedef struct st_tensor {
  char name[192];
  const char *dtype; /* "F32", "F16", "BF16" */
  int rank;
  int64_t shape[2];
  int64_t numel;
  unsigned seed;
  float nan_at;      /* >= 0: element that is NaN */
} st_tensor;

typedef struct st_file {
  st_tensor t[512];
  int n;
} st_file;

static unsigned seed_of(const char *s) {
  unsigned h = 2166136261u;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 16777619u;
  return h % 1000;
}

/* Small values, exact in F32, F16 and BF16. */
static float value(unsigned seed, int64_t i) { return (float)((int)((seed * 31 + (unsigned)i * 7) % 17) - 8) / 8.0f; }

static st_tensor *st_add(st_file *f, const char *dtype, const char *name, const char *seed_name, int rank, int64_t d0,
                         int64_t d1) {
  ck_assert_int_lt(f->n, 512);
  st_tensor *t = &f->t[f->n++];
  snprintf(t->name, sizeof t->name, "%s", name);
  t->dtype = dtype;
  t->rank = rank;
  t->shape[0] = d0;
  t->shape[1] = d1;
  t->numel = rank == 2 ? d0 * d1 : rank == 1 ? d0 : 1;
  t->seed = seed_of(seed_name ? seed_name : name);
  t->nan_at = -1;
  return t;
}

static void st_write(const st_file *f, const char *name) {
  mor_buf h = {0}, d = {0};
  mor_buf_putc(&h, '{');
  for (int i = 0; i < f->n; i++) {
    const st_tensor *t = &f->t[i];
    size_t begin = d.len;
    for (int64_t e = 0; e < t->numel; e++) {
      float v = (float)e == t->nan_at ? NAN : value(t->seed, e);
      if (!strcmp(t->dtype, "F32")) {
        mor_buf_write(&d, &v, 4);
      } else {
        uint16_t u = !strcmp(t->dtype, "F16") ? mor_f32_to_f16(v) : mor_f32_to_bf16(v);
        mor_buf_write(&d, &u, 2);
      }
    }
    mor_buf_printf(&h, "%s\"%s\":{\"dtype\":\"%s\",\"shape\":[", i ? "," : "", t->name, t->dtype);
    for (int k = 0; k < t->rank; k++) mor_buf_printf(&h, "%s%lld", k ? "," : "", (long long)t->shape[k]);
    mor_buf_printf(&h, "],\"data_offsets\":[%zu,%zu]}", begin, d.len);
  }
  mor_buf_puts(&h, ",\"__metadata__\":{\"format\":\"pt\"}}");
  while (h.len % 8) mor_buf_putc(&h, ' ');
  char *p = tpath(name);
  FILE *out = fopen(p, "wb");
  ck_assert_ptr_nonnull(out);
  uint64_t n = h.len;
  uint8_t le[8];
  for (int i = 0; i < 8; i++) le[i] = (uint8_t)(n >> (8 * i));
  fwrite(le, 1, 8, out);
  fwrite(h.data, 1, h.len, out);
  if (d.len) fwrite(d.data, 1, d.len, out);
  fclose(out);
  free(p);
  mor_buf_free(&h);
  mor_buf_free(&d);
}

/* ---- tiny models -------------------------------------------------------- */

enum { V = 16, D = 8, F = 12, H = 2, KVH = 1, HD = 4 };

typedef struct spec {
  const char *model_type; /* "mor" (default) or "llama" */
  int L, nr;
  const char *sharing, *routing, *router; /* NULL: key left out */
  int tie, lm_head_when_tied, copies;
  const char *copy_dtype;                 /* dtype of shared copies; default F32 */
  const char *mor_extra, *top_extra;      /* more JSON members, each starting with ',' */
  int no_mor, no_weights_key;
} spec;

/* The nine tensors of a layer; seed_P names the layer whose values it copies. */
static void add_layer(st_file *f, const char *dtype, const char *P, const char *seed_P) {
  static const struct {
    const char *s;
    int rank;
    int64_t d0, d1;
  } parts[] = {
      {"self_attn.q_proj.weight", 2, H * HD, D}, {"self_attn.k_proj.weight", 2, KVH * HD, D},
      {"self_attn.v_proj.weight", 2, KVH * HD, D}, {"self_attn.o_proj.weight", 2, D, H * HD},
      {"mlp.gate_proj.weight", 2, F, D}, {"mlp.up_proj.weight", 2, F, D}, {"mlp.down_proj.weight", 2, D, F},
      {"input_layernorm.weight", 1, D, 0}, {"post_attention_layernorm.weight", 1, D, 0},
  };
  for (int i = 0; i < 9; i++) {
    char n[192], s[192];
    snprintf(n, sizeof n, "%s.%s", P, parts[i].s);
    snprintf(s, sizeof s, "%s.%s", seed_P, parts[i].s);
    st_add(f, dtype, n, s, parts[i].rank, parts[i].d0, parts[i].d1);
  }
}

static void add_layer_n(st_file *f, const char *dtype, int l, int seed_l) {
  char P[64], S[64];
  snprintf(P, sizeof P, "model.layers.%d", l);
  snprintf(S, sizeof S, "model.layers.%d", seed_l);
  add_layer(f, dtype, P, S);
}

static void add_router(st_file *f, const spec *s, int l, int out) {
  char n[128];
  if (s->router && !strcmp(s->router, "mlp")) {
    snprintf(n, sizeof n, "model.layers.%d.mor_router.router.0.weight", l);
    st_add(f, "F32", n, NULL, 2, 2 * D, D);
    snprintf(n, sizeof n, "model.layers.%d.mor_router.router.2.weight", l);
    st_add(f, "F32", n, NULL, 2, out, 2 * D);
  } else {
    snprintf(n, sizeof n, "model.layers.%d.mor_router.router.weight", l);
    st_add(f, "F32", n, NULL, 2, out, D);
  }
}

static int is_middle(const spec *s) {
  const char *sh = s->sharing ? s->sharing : "middle_cycle";
  return !strcmp(sh, "middle_cycle") || !strcmp(sh, "middle_sequence");
}

/* Unrolled layer whose weights layer l uses first (routing none). */
static int first_use(const spec *s, int l) {
  const char *sh = s->model_type && !strcmp(s->model_type, "llama") ? "cycle" : s->sharing ? s->sharing : "middle_cycle";
  int L = s->L, nr = s->nr ? s->nr : 1;
  if (!strcmp(sh, "cycle")) return l % (L / nr);
  if (!strcmp(sh, "sequence")) return l / nr * nr;
  if (l == 0 || l == L - 1) return l;
  if (!strcmp(sh, "middle_cycle")) return 1 + (l - 1) % ((L - 2) / nr);
  return 1 + (l - 1) / nr * nr;
}

/* The weights of section 3 of the format, written out independently. */
static void model_tensors(const spec *s, st_file *f) {
  const char *cd = s->copy_dtype ? s->copy_dtype : "F32";
  int nr = s->nr ? s->nr : 1, L = s->L;
  st_add(f, "F32", "model.embed_tokens.weight", NULL, 2, V, D);
  st_add(f, "F32", "model.norm.weight", NULL, 1, D, 0);
  if (!s->tie) st_add(f, "F32", "lm_head.weight", NULL, 2, V, D);
  else if (s->lm_head_when_tied) st_add(f, "F32", "lm_head.weight", "model.embed_tokens.weight", 2, V, D);
  const char *routing = s->routing ? s->routing : "none";
  if (!strcmp(routing, "none")) {
    for (int l = 0; l < L; l++) {
      int first = first_use(s, l);
      if (first == l) add_layer_n(f, "F32", l, l);
      else if (s->copies) add_layer_n(f, cd, l, first);
    }
    return;
  }
  int middle = is_middle(s), base = middle ? 1 : 0, B = (middle ? L - 2 : L) / nr;
  int expert = !strcmp(routing, "expert_choice");
  if (middle) {
    add_layer_n(f, "F32", 0, 0);
    add_layer_n(f, "F32", expert ? nr + 1 : 2, expert ? nr + 1 : 2);
  }
  for (int j = 0; j < B; j++) {
    char P[96], S[96];
    if (expert) snprintf(S, sizeof S, "model.layers.%d.block.%d", base, j);
    else snprintf(S, sizeof S, "model.layers.%d.block_list.0.%d", base, j);
    add_layer(f, "F32", S, S);
    for (int r = 1; r < nr && s->copies; r++) {
      if (expert) snprintf(P, sizeof P, "model.layers.%d.block.%d", base + r, j);
      else snprintf(P, sizeof P, "model.layers.%d.block_list.%d.%d", base, r, j);
      add_layer(f, cd, P, S);
    }
  }
  if (expert)
    for (int r = 0; r < nr; r++) add_router(f, s, base + r, 1);
  else
    add_router(f, s, base, nr);
}

static char *model_json(const spec *s) {
  mor_buf b = {0};
  mor_buf_printf(&b,
                 "{\n  \"model_type\": \"%s\",\n  \"vocab_size\": %d,\n  \"hidden_size\": %d,\n"
                 "  \"intermediate_size\": %d,\n  \"num_hidden_layers\": %d,\n  \"num_attention_heads\": %d,\n"
                 "  \"num_key_value_heads\": %d,\n  \"rms_norm_eps\": 1e-5,\n  \"tie_word_embeddings\": %s",
                 s->model_type ? s->model_type : "mor", V, D, F, s->L, H, KVH, s->tie ? "true" : "false");
  if (!s->no_weights_key) mor_buf_puts(&b, ",\n  \"weights\": [\"model.safetensors\"]");
  if (s->top_extra) mor_buf_puts(&b, s->top_extra);
  if (!s->no_mor && !(s->model_type && !strcmp(s->model_type, "llama"))) {
    mor_buf_printf(&b, ",\n  \"mor\": {\"num_recursions\": %d", s->nr ? s->nr : 1);
    if (s->sharing) mor_buf_printf(&b, ", \"sharing\": \"%s\"", s->sharing);
    if (s->routing) mor_buf_printf(&b, ", \"routing\": \"%s\"", s->routing);
    if (s->router) mor_buf_printf(&b, ", \"router\": \"%s\"", s->router);
    if (s->mor_extra) mor_buf_puts(&b, s->mor_extra);
    mor_buf_puts(&b, "}");
  }
  mor_buf_puts(&b, "\n}\n");
  return b.data;
}

/* Write model.json and model.safetensors; return the json path. */
static char *gen(const spec *s) {
  char *j = model_json(s);
  write_text("model.json", j);
  free(j);
  st_file *f = mor_xcalloc(1, sizeof *f);
  model_tensors(s, f);
  st_write(f, "model.safetensors");
  free(f);
  return tpath("model.json");
}

typedef struct loaded {
  mor_config *c;
  mor_weights *w;
  mor_resolved *r;
  mor_err err;
} loaded;

/* Config, weights, resolve; 0 when all three succeed. */
static int load_all(const char *path, loaded *m) {
  memset(m, 0, sizeof *m);
  m->c = mor_config_load(path, &m->err);
  if (!m->c) return -1;
  m->w = mor_weights_open(m->c, &m->err);
  if (!m->w) return -1;
  m->r = mor_resolve(m->c, m->w, &m->err);
  return m->r ? 0 : -1;
}

static void unload(loaded *m) {
  mor_resolved_free(m->r);
  mor_weights_free(m->w);
  mor_config_free(m->c);
}

/* Only the description: for errors that come before the weights. */
static void cfg_fails(const spec *s, const char *expect) {
  char *j = model_json(s);
  write_text("model.json", j);
  free(j);
  char *p = tpath("model.json");
  mor_err err;
  mor_config *c = mor_config_load(p, &err);
  free(p);
  ck_assert_msg(c == NULL, "load succeeded, expected: %s", expect);
  ck_assert_msg(strstr(err.msg, expect), "error \"%s\" lacks \"%s\"", err.msg, expect);
}

static loaded load_ok(const spec *s) {
  char *p = gen(s);
  loaded m;
  int rc = load_all(p, &m);
  free(p);
  ck_assert_msg(rc == 0, "load failed: %s", m.err.msg);
  return m;
}

#define NAME_IS(t, s) ck_assert_str_eq((t)->name, (s))

/* ---- valid models of each naming scheme -------------------------------- */

START_TEST(t_llama) {
  spec s = {.model_type = "llama", .L = 3};
  loaded m = load_ok(&s);
  ck_assert(m.c->is_llama);
  ck_assert_int_eq(m.c->n_r, 1);
  ck_assert_int_eq(m.c->n_block, 3);
  ck_assert_int_eq(m.c->n_prefix + m.c->n_suffix, 0);
  ck_assert_int_eq(m.c->sharing, MOR_SHARE_CYCLE);
  ck_assert_int_eq(m.c->routing, MOR_ROUTE_NONE);
  NAME_IS(m.r->block[2].wq, "model.layers.2.self_attn.q_proj.weight");
  NAME_IS(m.r->block[0].post_norm, "model.layers.0.post_attention_layernorm.weight");
  NAME_IS(m.r->lm_head, "lm_head.weight");
  NAME_IS(m.r->embed, "model.embed_tokens.weight");
  NAME_IS(m.r->final_norm, "model.norm.weight");
  ck_assert_int_eq(m.r->n_routers, 0);
  unload(&m);
}
END_TEST

START_TEST(t_none_cycle) {
  spec s = {.L = 4, .nr = 2, .sharing = "cycle", .routing = "none", .tie = 1, .copies = 1};
  loaded m = load_ok(&s);
  ck_assert_int_eq(m.c->n_block, 2);
  NAME_IS(m.r->block[0].wk, "model.layers.0.self_attn.k_proj.weight");
  NAME_IS(m.r->block[1].wd, "model.layers.1.mlp.down_proj.weight");
  ck_assert_ptr_eq(m.r->lm_head, m.r->embed);
  unload(&m);
  s.copies = 0; /* later unrolled copies are optional */
  m = load_ok(&s);
  unload(&m);
}
END_TEST

START_TEST(t_none_middle_cycle) {
  spec s = {.L = 6, .nr = 2, .sharing = "middle_cycle", .copies = 1};
  loaded m = load_ok(&s);
  ck_assert_int_eq(m.c->n_block, 2);
  ck_assert_int_eq(m.c->n_prefix, 1);
  ck_assert_int_eq(m.c->n_suffix, 1);
  NAME_IS(m.r->prefix.wv, "model.layers.0.self_attn.v_proj.weight");
  NAME_IS(m.r->suffix.wo, "model.layers.5.self_attn.o_proj.weight");
  NAME_IS(m.r->block[0].wg, "model.layers.1.mlp.gate_proj.weight");
  NAME_IS(m.r->block[1].wu, "model.layers.2.mlp.up_proj.weight");
  unload(&m);
}
END_TEST

START_TEST(t_none_sequence) {
  spec s = {.L = 6, .nr = 3, .sharing = "sequence", .copies = 1};
  loaded m = load_ok(&s);
  ck_assert_int_eq(m.c->n_block, 2);
  NAME_IS(m.r->block[0].input_norm, "model.layers.0.input_layernorm.weight");
  NAME_IS(m.r->block[1].input_norm, "model.layers.3.input_layernorm.weight");
  unload(&m);
  s.copies = 0;
  m = load_ok(&s);
  unload(&m);
}
END_TEST

START_TEST(t_none_middle_sequence) {
  spec s = {.L = 8, .nr = 3, .sharing = "middle_sequence", .copies = 1, .mor_extra = ", \"kv_cache\": \"recursive_sharing\""};
  loaded m = load_ok(&s);
  ck_assert_int_eq(m.c->n_block, 2);
  ck_assert_int_eq(m.c->kv_mode, MOR_KV_RECURSIVE_SHARING);
  NAME_IS(m.r->block[0].wq, "model.layers.1.self_attn.q_proj.weight");
  NAME_IS(m.r->block[1].wq, "model.layers.4.self_attn.q_proj.weight");
  NAME_IS(m.r->suffix.wq, "model.layers.7.self_attn.q_proj.weight");
  unload(&m);
}
END_TEST

START_TEST(t_expert_middle_cycle) {
  spec s = {.L = 8, .nr = 3, .sharing = "middle_cycle", .routing = "expert_choice", .copies = 1};
  loaded m = load_ok(&s);
  ck_assert_int_eq(m.c->n_block, 2);
  NAME_IS(m.r->prefix.wq, "model.layers.0.self_attn.q_proj.weight");
  NAME_IS(m.r->suffix.wq, "model.layers.4.self_attn.q_proj.weight");
  NAME_IS(m.r->block[1].wq, "model.layers.1.block.1.self_attn.q_proj.weight");
  ck_assert_int_eq(m.r->n_routers, 3);
  NAME_IS(m.r->router[0], "model.layers.1.mor_router.router.weight");
  NAME_IS(m.r->router[2], "model.layers.3.mor_router.router.weight");
  ck_assert_ptr_null(m.r->router2[0]);
  ck_assert_int_eq(m.r->router[1]->shape[0], 1);
  unload(&m);
  s.copies = 0;
  m = load_ok(&s);
  unload(&m);
}
END_TEST

START_TEST(t_expert_cycle) {
  spec s = {.L = 4, .nr = 2, .sharing = "cycle", .routing = "expert_choice", .copies = 1};
  loaded m = load_ok(&s);
  ck_assert_int_eq(m.c->n_block, 2);
  NAME_IS(m.r->block[1].wd, "model.layers.0.block.1.mlp.down_proj.weight");
  NAME_IS(m.r->router[0], "model.layers.0.mor_router.router.weight");
  NAME_IS(m.r->router[1], "model.layers.1.mor_router.router.weight");
  unload(&m);
}
END_TEST

START_TEST(t_token_middle_cycle) {
  spec s = {.L = 5, .nr = 3, .sharing = "middle_cycle", .routing = "token_choice", .copies = 1};
  loaded m = load_ok(&s);
  ck_assert_int_eq(m.c->n_block, 1);
  NAME_IS(m.r->suffix.wq, "model.layers.2.self_attn.q_proj.weight");
  NAME_IS(m.r->block[0].wq, "model.layers.1.block_list.0.0.self_attn.q_proj.weight");
  ck_assert_int_eq(m.r->n_routers, 1);
  NAME_IS(m.r->router[0], "model.layers.1.mor_router.router.weight");
  ck_assert_int_eq(m.r->router[0]->shape[0], 3);
  ck_assert_int_eq(m.r->router[0]->shape[1], D);
  unload(&m);
}
END_TEST

START_TEST(t_token_cycle) {
  spec s = {.L = 4, .nr = 2, .sharing = "cycle", .routing = "token_choice"};
  loaded m = load_ok(&s);
  NAME_IS(m.r->block[1].wq, "model.layers.0.block_list.0.1.self_attn.q_proj.weight");
  NAME_IS(m.r->router[0], "model.layers.0.mor_router.router.weight");
  unload(&m);
}
END_TEST

START_TEST(t_mlp_router) {
  spec s = {.L = 4, .nr = 2, .sharing = "middle_cycle", .routing = "expert_choice", .router = "mlp"};
  loaded m = load_ok(&s);
  ck_assert_int_eq(m.c->router, MOR_ROUTER_MLP);
  NAME_IS(m.r->router[1], "model.layers.2.mor_router.router.0.weight");
  NAME_IS(m.r->router2[1], "model.layers.2.mor_router.router.2.weight");
  ck_assert_int_eq(m.r->router2[1]->shape[0], 1);
  ck_assert_int_eq(m.r->router2[1]->shape[1], 2 * D);
  unload(&m);
  spec t = {.L = 4, .nr = 2, .sharing = "cycle", .routing = "token_choice", .router = "mlp"};
  m = load_ok(&t);
  NAME_IS(m.r->router2[0], "model.layers.0.mor_router.router.2.weight");
  ck_assert_int_eq(m.r->router2[0]->shape[0], 2);
  unload(&m);
}
END_TEST

START_TEST(t_copies_other_dtypes) {
  static const char *const dts[] = {"F16", "BF16"};
  for (int i = 0; i < 2; i++) {
    spec s = {.L = 4, .nr = 2, .sharing = "middle_cycle", .routing = "expert_choice", .copies = 1, .copy_dtype = dts[i]};
    loaded m = load_ok(&s);
    const mor_tensor *c = mor_weights_find(m.w, "model.layers.2.block.0.mlp.up_proj.weight");
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(c->dtype, i == 0 ? MOR_F16 : MOR_BF16);
    unload(&m);
    spec n = {.L = 4, .nr = 2, .sharing = "cycle", .copies = 1, .copy_dtype = dts[i]};
    m = load_ok(&n);
    unload(&m);
  }
}
END_TEST

START_TEST(t_tied_lm_head_present) {
  spec s = {.L = 4, .nr = 2, .sharing = "cycle", .routing = "token_choice", .tie = 1, .lm_head_when_tied = 1};
  loaded m = load_ok(&s);
  ck_assert_ptr_eq(m.r->lm_head, m.r->embed);
  unload(&m);
}
END_TEST

/* Two shards and an index, listed in weights or found by default. */
static void write_sharded(const spec *s, int with_weights_key) {
  st_file *all = mor_xcalloc(1, sizeof *all), *a = mor_xcalloc(1, sizeof *a), *b = mor_xcalloc(1, sizeof *b);
  model_tensors(s, all);
  mor_buf idx = {0};
  mor_buf_puts(&idx, "{\"metadata\": {\"total_size\": 1}, \"weight_map\": {");
  for (int i = 0; i < all->n; i++) {
    st_file *dst = i % 2 ? b : a;
    dst->t[dst->n++] = all->t[i];
    mor_buf_printf(&idx, "%s\"%s\": \"model-0000%d-of-00002.safetensors\"", i ? ", " : "", all->t[i].name, 1 + i % 2);
  }
  mor_buf_puts(&idx, "}}\n");
  st_write(a, "model-00001-of-00002.safetensors");
  st_write(b, "model-00002-of-00002.safetensors");
  write_text("model.safetensors.index.json", idx.data);
  mor_buf_free(&idx);
  spec j = *s;
  j.no_weights_key = 1;
  char *text = model_json(&j);
  if (with_weights_key) {
    char *w = strstr(text, "\"rms_norm_eps\"");
    char *t2 = mor_xasprintf("%.*s\"weights\": [\"model.safetensors.index.json\"],\n  %s", (int)(w - text), text, w);
    free(text);
    text = t2;
  }
  write_text("model.json", text);
  free(text);
  free(all);
  free(a);
  free(b);
}

START_TEST(t_sharded) {
  spec s = {.L = 4, .nr = 2, .sharing = "middle_cycle", .routing = "expert_choice", .copies = 1};
  for (int k = 0; k < 2; k++) {
    write_sharded(&s, k);
    char *p = tpath("model.json");
    loaded m;
    int rc = load_all(p, &m);
    free(p);
    ck_assert_msg(rc == 0, "%s", m.err.msg);
    ck_assert_int_eq(m.w->n_files, 2);
    ck_assert_ptr_nonnull(strstr(m.c->weight_files[0], "model.safetensors.index.json"));
    ck_assert_ptr_nonnull(strstr(m.r->embed->file, "model-00001-of-00002.safetensors"));
    ck_assert_ptr_nonnull(strstr(m.r->final_norm->file, "model-00002-of-00002.safetensors"));
    unload(&m);
  }
}
END_TEST

START_TEST(t_default_weights) {
  spec s = {.model_type = "llama", .L = 2, .no_weights_key = 1};
  loaded m = load_ok(&s);
  ck_assert_int_eq(m.c->n_weight_files, 1);
  char *want = tpath("model.safetensors");
  ck_assert_str_eq(m.c->weight_files[0], want);
  free(want);
  unload(&m);
}
END_TEST

START_TEST(t_safetensors_direct) {
  st_file *f = mor_xcalloc(1, sizeof *f);
  st_add(f, "F32", "b.f32", "x", 2, 3, 4);
  st_add(f, "F16", "a.f16", "x", 1, 12, 0);
  st_add(f, "BF16", "c.bf16", "x", 2, 2, 6);
  st_add(f, "F32", "d.empty", NULL, 2, 0, 5);
  st_add(f, "F32", "e.scalar", "x", 0, 0, 0);
  st_write(f, "w.safetensors");
  free(f);
  char *p = tpath("w.safetensors");
  mor_err err;
  mor_weights *w = mor_safetensors_open(p, &err);
  ck_assert_msg(w != NULL, "%s", err.msg);
  ck_assert_int_eq(w->n_tensors, 5);
  NAME_IS(&w->tensors[0], "a.f16"); /* sorted by name */
  NAME_IS(&w->tensors[4], "e.scalar");
  const mor_tensor *a = mor_weights_find(w, "a.f16"), *b = mor_weights_find(w, "b.f32"),
                   *c = mor_weights_find(w, "c.bf16"), *d = mor_weights_find(w, "d.empty"),
                   *e = mor_weights_find(w, "e.scalar");
  ck_assert_ptr_nonnull(a);
  ck_assert_ptr_null(mor_weights_find(w, "zzz"));
  ck_assert_int_eq(b->rank, 2);
  ck_assert_int_eq(b->numel, 12);
  ck_assert_int_eq(b->nbytes, 48);
  ck_assert_int_eq(a->nbytes, 24);
  ck_assert_int_eq(d->numel, 0);
  ck_assert_int_eq(e->rank, 0);
  ck_assert_int_eq(e->numel, 1);
  ck_assert_str_eq(a->file, p);
  unsigned sd = seed_of("x");
  for (int i = 0; i < 12; i++) {
    ck_assert_float_eq(mor_tensor_get(a, i), value(sd, i));
    ck_assert_float_eq(mor_tensor_get(b, i), value(sd, i));
    ck_assert_float_eq(mor_tensor_get(c, i), value(sd, i));
  }
  mor_weights_free(w);
  free(p);
}
END_TEST

/* ---- the layer map ------------------------------------------------------ */

static mor_config *cfg_text(const char *mor_json, int L) {
  char *t = mor_xasprintf("{\"model_type\": \"mor\", \"vocab_size\": 16, \"hidden_size\": 8, \"intermediate_size\": 12,"
                          " \"num_hidden_layers\": %d, \"num_attention_heads\": 2%s%s}",
                          L, mor_json ? ", \"mor\": " : "", mor_json ? mor_json : "");
  write_text("c.json", t);
  free(t);
  char *p = tpath("c.json");
  mor_err err;
  mor_config *c = mor_config_load(p, &err);
  free(p);
  ck_assert_msg(c != NULL, "%s", err.msg);
  return c;
}

static void expect_use(const mor_config *c, int64_t l, mor_layer_role role, int index, int depth) {
  mor_layer_use u = mor_config_layer(c, l);
  ck_assert_msg(u.role == role && u.index == index && u.depth == depth,
                "layer %lld: got role %d index %d depth %d, want %d %d %d", (long long)l, u.role, u.index, u.depth, role,
                index, depth);
}

START_TEST(t_layer_map) {
  mor_config *c = cfg_text("{\"num_recursions\": 3, \"sharing\": \"cycle\"}", 6);
  ck_assert_int_eq(c->n_block, 2);
  for (int l = 0; l < 6; l++) expect_use(c, l, MOR_LAYER_BLOCK, l % 2, l / 2);
  expect_use(c, 6, MOR_LAYER_BLOCK, -1, -1);
  expect_use(c, -1, MOR_LAYER_BLOCK, -1, -1);
  mor_config_free(c);

  c = cfg_text("{\"num_recursions\": 3, \"sharing\": \"middle_cycle\"}", 8);
  expect_use(c, 0, MOR_LAYER_PREFIX, 0, 0);
  expect_use(c, 7, MOR_LAYER_SUFFIX, 0, 0);
  for (int l = 1; l < 7; l++) expect_use(c, l, MOR_LAYER_BLOCK, (l - 1) % 2, (l - 1) / 2);
  mor_config_free(c);

  c = cfg_text("{\"num_recursions\": 3, \"sharing\": \"sequence\"}", 6);
  for (int l = 0; l < 6; l++) expect_use(c, l, MOR_LAYER_BLOCK, l / 3, l % 3);
  mor_config_free(c);

  c = cfg_text("{\"num_recursions\": 3, \"sharing\": \"middle_sequence\"}", 8);
  ck_assert_int_eq(c->n_block, 2);
  expect_use(c, 0, MOR_LAYER_PREFIX, 0, 0);
  expect_use(c, 7, MOR_LAYER_SUFFIX, 0, 0);
  for (int l = 1; l < 7; l++) expect_use(c, l, MOR_LAYER_BLOCK, (l - 1) / 3, (l - 1) % 3);
  mor_config_free(c);
}
END_TEST

/* ---- defaults ----------------------------------------------------------- */

START_TEST(t_defaults_llama) {
  write_text("config.json", "{\"model_type\": \"llama\", \"vocab_size\": 16, \"hidden_size\": 8, "
                            "\"intermediate_size\": 12, \"num_hidden_layers\": 2, \"num_attention_heads\": 2, "
                            "\"num_key_value_heads\": null, \"head_dim\": null, \"rope_scaling\": null, "
                            "\"tokenizer\": \"tok/tokenizer.json\"}");
  char *p = tpath("config.json");
  mor_err err;
  mor_config *c = mor_config_load(p, &err);
  ck_assert_msg(c != NULL, "%s", err.msg);
  ck_assert_str_eq(c->json_path, p);
  ck_assert_str_eq(c->dir, tmp);
  ck_assert_double_eq(c->rms_norm_eps, 1e-6);
  ck_assert_double_eq(c->rope_theta, 10000.0);
  ck_assert_int_eq(c->max_pos, 2048);
  ck_assert_int_eq(c->tie_word_embeddings, 0);
  ck_assert_int_eq(c->num_kv_heads, 2);
  ck_assert_int_eq(c->head_dim, 4);
  ck_assert_int_eq(c->n_r, 1);
  ck_assert_int_eq(c->n_block, 2);
  ck_assert_double_eq(c->capacity[0], 1.0);
  char *tok = tpath("tok/tokenizer.json");
  ck_assert_str_eq(c->tokenizer, tok);
  free(tok);
  mor_config_free(c);
  free(p);
}
END_TEST

START_TEST(t_defaults_mor) {
  mor_config *c = cfg_text("{\"routing\": \"expert_choice\", \"num_recursions\": 3}", 5);
  ck_assert_int_eq(c->is_llama, 0);
  ck_assert_int_eq(c->sharing, MOR_SHARE_MIDDLE_CYCLE);
  ck_assert_int_eq(c->router, MOR_ROUTER_LINEAR);
  ck_assert_int_eq(c->router_act, MOR_ACT_SIGMOID);
  ck_assert_double_eq(c->alpha, 0.1);
  ck_assert_double_eq(c->temperature, 1.0);
  ck_assert_double_eq(c->capacity[0], 1.0);
  ck_assert_double_eq(c->capacity[1], 2.0 / 3.0);
  ck_assert_double_eq(c->capacity[2], 1.0 / 3.0);
  ck_assert_int_eq(c->gating, MOR_GATE_WEIGHTED);
  ck_assert_int_eq(c->infer_routing, MOR_INFER_THRESHOLD);
  ck_assert_double_eq(c->threshold, 0.5);
  ck_assert_int_eq(c->kv_mode, MOR_KV_RECURSION_WISE);
  ck_assert_int_eq(c->tokenizer == NULL, 1);
  mor_config_free(c);

  c = cfg_text("{\"routing\": \"expert_choice\", \"num_recursions\": 2, \"router_activation\": \"tanh\", "
               "\"inference_routing\": \"top_k\", \"gating\": \"none\"}", 4);
  ck_assert_int_eq(c->router_act, MOR_ACT_TANH);
  ck_assert_double_eq(c->threshold, 0.0);
  ck_assert_int_eq(c->infer_routing, MOR_INFER_TOPK);
  ck_assert_int_eq(c->gating, MOR_GATE_NONE);
  mor_config_free(c);

  c = cfg_text("{\"routing\": \"token_choice\", \"num_recursions\": 2}", 4);
  ck_assert_int_eq(c->router_act, MOR_ACT_SOFTMAX);
  ck_assert_double_eq(c->alpha, 1.0);
  ck_assert_double_eq(c->capacity[1], 1.0);
  mor_config_free(c);

  c = cfg_text("{\"routing\": \"token_choice\", \"num_recursions\": 2, \"router_activation\": \"sigmoid\", "
               "\"alpha\": -3, \"temperature\": 0.5}", 4);
  ck_assert_int_eq(c->router_act, MOR_ACT_SIGMOID);
  ck_assert_double_eq(c->alpha, -3.0);
  ck_assert_double_eq(c->temperature, 0.5);
  mor_config_free(c);

  c = cfg_text(NULL, 3); /* a mor model without a mor object: every default */
  ck_assert_int_eq(c->n_r, 1);
  ck_assert_int_eq(c->sharing, MOR_SHARE_MIDDLE_CYCLE);
  ck_assert_int_eq(c->n_block, 1);
  mor_config_free(c);

  /* no model_type: a mor object makes it a MoR model */
  write_text("n.json", "{\"vocab_size\": 16, \"hidden_size\": 8, \"intermediate_size\": 12, "
                       "\"num_hidden_layers\": 4, \"num_attention_heads\": 2, \"mor\": {\"num_recursions\": 2}}");
  char *p = tpath("n.json");
  mor_err err;
  c = mor_config_load(p, &err);
  free(p);
  ck_assert_msg(c != NULL, "%s", err.msg);
  ck_assert_int_eq(c->is_llama, 0);
  ck_assert_int_eq(c->n_r, 2);
  mor_config_free(c);
}
END_TEST

/* ---- warnings ----------------------------------------------------------- */

static int saved_fd = -1;
static void capture_begin(void) {
  fflush(stderr);
  saved_fd = dup(2);
  char *p = tpath("stderr.txt");
  int fd = open(p, O_CREAT | O_TRUNC | O_WRONLY, 0600);
  free(p);
  dup2(fd, 2);
  close(fd);
}
static char *capture_end(void) {
  fflush(stderr);
  dup2(saved_fd, 2);
  close(saved_fd);
  char *p = tpath("stderr.txt");
  char *s = mor_read_file(p, NULL, NULL);
  free(p);
  return s;
}

START_TEST(t_warnings) {
  spec s = {.L = 4, .nr = 2, .sharing = "cycle", .routing = "token_choice",
            .top_extra = ",\n  \"architectures\": [\"LlamaForCausalLM\"], \"torch_dtype\": \"bfloat16\", "
                         "\"bos_token_id\": 1, \"eos_token_id\": 2, \"pad_token_id\": null, \"use_cache\": true, "
                         "\"transformers_version\": \"4.44.0\", \"initializer_range\": 0.02, \"attention_bias\": false, "
                         "\"attention_dropout\": 0.0, \"mlp_bias\": false, \"pretraining_tp\": 1, "
                         "\"rope_scaling\": null, \"hidden_act\": \"silu\", \"frobnicate\": 3",
            .mor_extra = ", \"capacity\": [1.0, 0.5], \"sparkle\": true"};
  capture_begin();
  loaded m = load_ok(&s);
  char *out = capture_end();
  ck_assert_msg(strstr(out, "model.json: frobnicate: unknown key, ignored"), "%s", out);
  ck_assert_msg(strstr(out, "model.json: mor.sparkle: unknown key, ignored"), "%s", out);
  ck_assert_msg(strstr(out, "mor.capacity: only used with routing \"expert_choice\""), "%s", out);
  ck_assert_msg(!strstr(out, "architectures") && !strstr(out, "torch_dtype") && !strstr(out, "bos_token_id"), "%s", out);
  int lines = 0;
  for (char *q = out; *q; q++) lines += *q == '\n';
  ck_assert_int_eq(lines, 3);
  free(out);
  unload(&m);
}
END_TEST

START_TEST(t_nan_warning) {
  spec s = {.L = 4, .nr = 2, .sharing = "middle_cycle", .routing = "expert_choice", .tie = 1, .copies = 1};
  char *j = model_json(&s);
  write_text("model.json", j);
  free(j);
  st_file *f = mor_xcalloc(1, sizeof *f);
  model_tensors(&s, f);
  for (int i = 0; i < f->n; i++)
    if (strstr(f->t[i].name, "mlp.up_proj.weight") && strstr(f->t[i].name, ".block.0.")) f->t[i].nan_at = 3;
  st_write(f, "model.safetensors");
  free(f);
  char *p = tpath("model.json");
  capture_begin();
  loaded m;
  int rc = load_all(p, &m);
  char *out = capture_end();
  free(p);
  ck_assert_msg(rc == 0, "%s", m.err.msg);
  ck_assert_msg(strstr(out, "tensor 'model.layers.1.block.0.mlp.up_proj.weight': 1 of 96 values are NaN or infinite"),
                "%s", out);
  int n = 0;
  for (char *q = out; (q = strstr(q, "NaN or infinite")); q++) n++;
  ck_assert_msg(n == 1, "warned %d times: %s", n, out);
  free(out);
  unload(&m);
}
END_TEST

/* ---- errors made at run time -------------------------------------------- */

START_TEST(t_err_no_file) {
  mor_err err;
  char *p = tpath("nope.json");
  ck_assert_ptr_null(mor_config_load(p, &err));
  ck_assert_ptr_nonnull(strstr(err.msg, "nope.json: cannot open"));
  free(p);
  spec s = {.model_type = "llama", .L = 2};
  char *j = model_json(&s);
  write_text("model.json", j);
  free(j);
  p = tpath("model.json");
  loaded m;
  ck_assert_int_ne(load_all(p, &m), 0);
  ck_assert_msg(strstr(m.err.msg, "model.safetensors: cannot open"), "%s", m.err.msg);
  unload(&m);
  free(p);
}
END_TEST

START_TEST(t_err_header_absurd) {
  /* a sparse file: 8-byte length 150 MB, file 200 MB */
  char *p = tpath("big.safetensors");
  int fd = open(p, O_CREAT | O_TRUNC | O_WRONLY, 0600);
  ck_assert_int_ge(fd, 0);
  uint64_t n = 150000000;
  uint8_t le[8];
  for (int i = 0; i < 8; i++) le[i] = (uint8_t)(n >> (8 * i));
  ck_assert_int_eq(write(fd, le, 8), 8);
  ck_assert_int_eq(ftruncate(fd, 200000000), 0);
  close(fd);
  mor_err err;
  ck_assert_ptr_null(mor_safetensors_open(p, &err));
  ck_assert_msg(strstr(err.msg, "header length 150000000 is more than the format's limit"), "%s", err.msg);
  free(p);
}
END_TEST

START_TEST(t_err_bf16_copy_differs) {
  /* a copy (stored as BF16) with a NaN where the first copy has a number */
  spec s = {.L = 4, .nr = 2, .sharing = "middle_cycle", .routing = "expert_choice", .copies = 1, .copy_dtype = "BF16"};
  char *j = model_json(&s);
  write_text("model.json", j);
  free(j);
  st_file *f = mor_xcalloc(1, sizeof *f);
  model_tensors(&s, f);
  for (int i = 0; i < f->n; i++)
    if (!strcmp(f->t[i].name, "model.layers.2.block.0.input_layernorm.weight")) f->t[i].nan_at = 0;
  st_write(f, "model.safetensors");
  free(f);
  char *p = tpath("model.json");
  loaded m;
  ck_assert_int_ne(load_all(p, &m), 0);
  ck_assert_msg(strstr(m.err.msg, "tensor 'model.layers.2.block.0.input_layernorm.weight' is a copy of the shared "
                                  "weight 'model.layers.1.block.0.input_layernorm.weight'"),
                "%s", m.err.msg);
  ck_assert_msg(strstr(m.err.msg, "element [0] is nan"), "%s", m.err.msg);
  unload(&m);
  free(p);
}
END_TEST

START_TEST(t_err_in_c) {
  spec s = {.L = 4, .nr = 2, .sharing = "cycle", .routing = "expert_choice"};
  s.mor_extra = ", \"capacity\": [1.0, 1.5]";
  cfg_fails(&s, "model.json: mor.capacity[1]: expected a number in (0, 1], got 1.5");
  s.mor_extra = ", \"capacity\": [0.5, 0.75]";
  cfg_fails(&s, "mor.capacity[1]: expected a number <= mor.capacity[0] (0.5; capacities are non-increasing), got 0.75");
  s.mor_extra = ", \"threshold\": \"high\"";
  cfg_fails(&s, "mor.threshold: expected a finite number, got \"high\"");
  s.mor_extra = ", \"gating\": \"soft\"";
  cfg_fails(&s, "mor.gating: expected \"weighted\" or \"none\", got \"soft\"");
  s.mor_extra = ", \"router\": \"deep\"";
  cfg_fails(&s, "mor.router: expected \"linear\" or \"mlp\", got \"deep\"");
  s.mor_extra = NULL;
  s.top_extra = ", \"rope_theta\": 0";
  cfg_fails(&s, "rope_theta: expected a finite number > 0, got 0");
  s.top_extra = ", \"max_position_embeddings\": -1";
  cfg_fails(&s, "max_position_embeddings: expected a positive integer, got -1");
  s.top_extra = ", \"tokenizer\": 7";
  cfg_fails(&s, "tokenizer: expected a file name, got 7");
  s.top_extra = NULL;
  s.L = 100000;
  cfg_fails(&s, "num_hidden_layers: expected an integer in [1, 65536], got 100000");
  spec t = {.L = 4, .nr = 2, .sharing = "sequence", .routing = "token_choice"};
  cfg_fails(&t, "mor.sharing: expected \"cycle\" or \"middle_cycle\" with routing \"token_choice\", got \"sequence\"");
  spec u = {.L = 4, .nr = 2, .sharing = "cycle", .routing = "none", .mor_extra = ", \"inference_routing\": \"top_k\""};
  cfg_fails(&u, "mor.inference_routing: \"top_k\" needs routing \"expert_choice\", got routing \"none\"");
}
END_TEST

/* ---- golden bad inputs -------------------------------------------------- */

static char **cases;
static int n_cases;

static int name_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void find_cases(void) {
  DIR *d = opendir(MORC_BAD_DIR);
  if (!d) return;
  struct dirent *e;
  while ((e = readdir(d))) {
    size_t n = strlen(e->d_name);
    if (n > 9 && !strcmp(e->d_name + n - 9, ".expected")) {
      cases = mor_xrealloc(cases, sizeof(char *) * (size_t)(n_cases + 1));
      cases[n_cases++] = mor_xasprintf("%.*s", (int)(n - 9), e->d_name);
    }
  }
  closedir(d);
  qsort(cases, (size_t)n_cases, sizeof(char *), name_cmp);
}

START_TEST(t_golden_valid) {
  loaded m;
  int rc = load_all(MORC_BAD_DIR "/valid.json", &m);
  ck_assert_msg(rc == 0, "the base of the bad inputs must load: %s", m.err.msg);
  unload(&m);
}
END_TEST

START_TEST(t_golden_count) { ck_assert_int_ge(n_cases, 40); }
END_TEST

START_TEST(t_golden) {
  const char *name = cases[_i];
  char *json = mor_xasprintf("%s/%s.json", MORC_BAD_DIR, name);
  char *expf = mor_xasprintf("%s/%s.expected", MORC_BAD_DIR, name);
  mor_err err;
  size_t len;
  char *expect = mor_read_file(expf, &len, &err);
  ck_assert_msg(expect != NULL, "%s", err.msg);
  while (len && (expect[len - 1] == '\n' || expect[len - 1] == '\r')) expect[--len] = 0;
  ck_assert_msg(len > 0, "%s: empty", expf);
  int old = mor_quiet_warnings;
  mor_quiet_warnings = 1;
  loaded m;
  int rc = load_all(json, &m);
  mor_quiet_warnings = old;
  ck_assert_msg(rc != 0, "%s: loaded, but expected the error: %s", name, expect);
  ck_assert_msg(strstr(m.err.msg, expect), "%s:\n  error:    %s\n  expected: %s", name, m.err.msg, expect);
  unload(&m);
  free(expect);
  free(json);
  free(expf);
}
END_TEST

static Suite *unit_suite(void) {
  Suite *s = suite_create("frontend");
  TCase *tc = tcase_create("valid");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, t_llama);
  tcase_add_test(tc, t_none_cycle);
  tcase_add_test(tc, t_none_middle_cycle);
  tcase_add_test(tc, t_none_sequence);
  tcase_add_test(tc, t_none_middle_sequence);
  tcase_add_test(tc, t_expert_middle_cycle);
  tcase_add_test(tc, t_expert_cycle);
  tcase_add_test(tc, t_token_middle_cycle);
  tcase_add_test(tc, t_token_cycle);
  tcase_add_test(tc, t_mlp_router);
  tcase_add_test(tc, t_copies_other_dtypes);
  tcase_add_test(tc, t_tied_lm_head_present);
  tcase_add_test(tc, t_sharded);
  tcase_add_test(tc, t_default_weights);
  tcase_add_test(tc, t_safetensors_direct);
  tcase_add_test(tc, t_layer_map);
  tcase_add_test(tc, t_defaults_llama);
  tcase_add_test(tc, t_defaults_mor);
  suite_add_tcase(s, tc);
  tc = tcase_create("diagnostics");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, t_warnings);
  tcase_add_test(tc, t_nan_warning);
  tcase_add_test(tc, t_err_no_file);
  tcase_add_test(tc, t_err_header_absurd);
  tcase_add_test(tc, t_err_bf16_copy_differs);
  tcase_add_test(tc, t_err_in_c);
  suite_add_tcase(s, tc);
  return s;
}

static Suite *bad_suite(void) {
  Suite *s = suite_create("frontend-bad");
  TCase *tc = tcase_create("golden");
  find_cases();
  tcase_add_test(tc, t_golden_valid);
  tcase_add_test(tc, t_golden_count);
  tcase_add_loop_test(tc, t_golden, 0, n_cases);
  suite_add_tcase(s, tc);
  return s;
}

/* Usage: test_frontend [unit|bad] (default: both). */
int main(int argc, char **argv) {
  const char *which = argc > 1 ? argv[1] : "all";
  SRunner *sr = srunner_create(NULL);
  if (strcmp(which, "bad")) srunner_add_suite(sr, unit_suite());
  if (strcmp(which, "unit")) srunner_add_suite(sr, bad_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  for (int i = 0; i < n_cases; i++) free(cases[i]);
  free(cases);
  return failed ? 1 : 0;
}
