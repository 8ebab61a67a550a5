/* test_llvm.c: the LLVM backend against the reference interpreter (the
 * oracle): every example model through the JIT, whole and in chunks, on the
 * high-level IR and after the -O2 pass pipeline; forward errors; and
 * the memory plan (no two buffers alive at once overlap). */
#include <check.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/llvm/llvm.h"
#include "backend/llvm/llvm_impl.h"
#include "backend/ref/ref.h"
#include "frontend/lower.h"
#include "passes/pm.h"

#ifndef MORC_EXAMPLES_DIR
#error MORC_EXAMPLES_DIR must be defined
#endif

static char *variants[64];
static int n_variants;

static void list_variants(void) {
  DIR *d = opendir(MORC_EXAMPLES_DIR);
  if (!d) return;
  struct dirent *e;
  while ((e = readdir(d)) && n_variants < 64) {
    if (e->d_name[0] == '.') continue;
    char *p = mor_xasprintf("%s/%s/model.json", MORC_EXAMPLES_DIR, e->d_name);
    FILE *f = fopen(p, "r");
    if (!f) {
      free(p);
      p = mor_xasprintf("%s/%s/config.json", MORC_EXAMPLES_DIR, e->d_name);
      f = fopen(p, "r");
    }
    if (f) {
      fclose(f);
      variants[n_variants++] = p;
    } else {
      free(p);
    }
  }
  closedir(d);
}

static mor_module *load(const char *path, const char *pipeline, mor_config **c, mor_weights **w) {
  mor_err e = {{0}};
  mor_module *m = mor_load_model(path, c, w, &e);
  ck_assert_msg(m != NULL, "%s: %s", path, e.msg);
  if (pipeline) {
    mor_pm_opts *po = mor_pm_opts_new();
    char *av[1] = {(char *)pipeline};
    int i = 0;
    ck_assert_int_eq(mor_pm_parse_arg(po, 1, av, &i, &e), 1);
    ck_assert_msg(mor_pm_run(m, po, stderr, &e) == 0, "%s %s: %s", path, pipeline, e.msg);
    mor_pm_opts_free(po);
  }
  return m;
}

/* Compare the JIT with the reference on tokens fed in the given chunks. */
static void differential(const char *path, const char *pipeline, int threads) {
  mor_config *c;
  mor_weights *w;
  mor_module *m = load(path, pipeline, &c, &w);
  mor_err e = {{0}};
  int64_t V = c->vocab_size, T = c->max_pos < 16 ? c->max_pos : 16;
  int32_t toks[16];
  for (int64_t i = 0; i < T; i++) toks[i] = (int32_t)((i * 37 + 11) % V);
  int topk = c->routing == MOR_ROUTE_EXPERT && c->infer_routing == MOR_INFER_TOPK;
  int64_t chunks_a[] = {T}, chunks_b[] = {T / 3, 1, 1, T - T / 3 - 2};
  const int64_t *plans[2] = {chunks_a, chunks_b};
  int nplans[2] = {1, 4};
  mor_ref *r = mor_ref_new(m, w, &e);
  ck_assert_msg(r != NULL, "%s: ref: %s", path, e.msg);
  mor_llvm_opts o;
  mor_llvm_opts_default(&o);
  o.threads = threads;
  mor_llvm_jit *j = mor_llvm_jit_new(m, w, &o, &e);
  ck_assert_msg(j != NULL, "%s: jit: %s", path, e.msg);
  float *l1 = malloc(sizeof(float) * (size_t)(T * V)), *l2 = malloc(sizeof(float) * (size_t)(T * V));
  int32_t d1[16], d2[16];
  mor_ref_seq *rs = mor_ref_seq_new(r);
  ck_assert_msg(mor_ref_forward(r, rs, toks, T, l1, d1, &e) == 0, "%s: ref forward: %s", path, e.msg);
  mor_ref_seq_free(rs);
  for (int p = 0; p < (topk ? 1 : 2); p++) {
    mor_llvm_seq *js = mor_llvm_seq_new(j);
    int64_t off = 0;
    for (int k = 0; k < nplans[p]; k++) {
      ck_assert_msg(mor_llvm_forward(j, js, toks + off, plans[p][k], l2 + off * V, d2 + off, &e) == 0,
                    "%s: jit forward: %s", path, e.msg);
      off += plans[p][k];
    }
    ck_assert_int_eq(mor_llvm_seq_len(js), T);
    double mx = 0, ml = 1;
    for (int64_t i = 0; i < T * V; i++) {
      if (fabs(l1[i]) > ml) ml = fabs(l1[i]);
      if (fabs(l1[i] - l2[i]) > mx) mx = fabs(l1[i] - l2[i]);
    }
    ck_assert_msg(mx <= 1e-4 * ml, "%s %s (%s): max|jit - ref| = %g > 1e-4 * %g", path, pipeline ? pipeline : "-O0",
                  p ? "chunked" : "whole", mx, ml);
    for (int64_t i = 0; i < T; i++)
      ck_assert_msg(d1[i] == d2[i], "%s: token %lld ran %d recursions in the JIT, %d in the reference", path,
                    (long long)i, d2[i], d1[i]);
    mor_llvm_seq_free(js);
  }
  free(l1);
  free(l2);
  mor_llvm_jit_free(j);
  mor_ref_free(r);
  mor_module_free(m);
  mor_weights_free(w);
  mor_config_free(c);
}

START_TEST(jit_equals_ref) { differential(variants[_i], NULL, 1); }
END_TEST

START_TEST(jit_equals_ref_O2) { differential(variants[_i], "-O2", 2); }
END_TEST

/* Bad inputs to forward leave the sequence as it was. */
START_TEST(jit_forward_errors) {
  char *path = mor_xasprintf("%s/ec_linear_sigmoid_threshold/model.json", MORC_EXAMPLES_DIR);
  mor_config *c;
  mor_weights *w;
  mor_module *m = load(path, NULL, &c, &w);
  mor_err e = {{0}};
  mor_llvm_jit *j = mor_llvm_jit_new(m, w, NULL, &e);
  ck_assert_msg(j != NULL, "%s", e.msg);
  mor_llvm_seq *s = mor_llvm_seq_new(j);
  float *lg = malloc(sizeof(float) * (size_t)(c->vocab_size * c->max_pos));
  int32_t bad[2] = {1, (int32_t)c->vocab_size};
  ck_assert_int_eq(mor_llvm_forward(j, s, bad, 2, lg, NULL, &e), -1);
  ck_assert_msg(strstr(e.msg, "out of range") != NULL, "%s", e.msg);
  ck_assert_int_eq(mor_llvm_seq_len(s), 0);
  int32_t *many = calloc((size_t)c->max_pos + 1, sizeof *many);
  ck_assert_int_eq(mor_llvm_forward(j, s, many, c->max_pos + 1, NULL, NULL, &e), -1);
  ck_assert_msg(strstr(e.msg, "past the context") != NULL, "%s", e.msg);
  ck_assert_int_eq(mor_llvm_forward(j, s, many, c->max_pos, lg, NULL, &e), 0);
  ck_assert_int_eq(mor_llvm_forward(j, s, many, 1, lg, NULL, &e), -1);
  ck_assert_int_eq(mor_llvm_seq_len(s), c->max_pos);
  free(many);
  free(lg);
  mor_llvm_seq_free(s);
  mor_llvm_jit_free(j);
  mor_module_free(m);
  mor_weights_free(w);
  mor_config_free(c);
  free(path);
}
END_TEST

/* The memory plan never places two buffers alive at once on the same bytes. */
static void check_plan(const char *path, const char *pipeline) {
  mor_config *c;
  mor_weights *w;
  mor_module *m = load(path, pipeline, &c, &w);
  mor_err e = {{0}};
  for (int f = 0; f < m->n_funcs; f++) {
    mp_plan p;
    ck_assert_int_eq(mp_plan_func(&p, m, m->funcs[f], 0, &e), 0);
    for (int i = 0; i < p.n_bufs; i++) {
      const mp_buf *a = &p.bufs[i];
      ck_assert(a->off >= 0 && a->off % 64 == 0 && a->off + a->size <= p.frame_bytes);
      for (int k = i + 1; k < p.n_bufs; k++) {
        const mp_buf *b = &p.bufs[k];
        int live = a->start <= b->end && b->start <= a->end;
        int bytes = a->off < b->off + b->size && b->off < a->off + a->size;
        ck_assert_msg(!(live && bytes), "%s @%s: buffers %d and %d overlap", path, m->funcs[f]->name, i, k);
      }
    }
    mp_free(&p);
  }
  mor_module_free(m);
  mor_weights_free(w);
  mor_config_free(c);
}

START_TEST(memplan_no_overlap) {
  check_plan(variants[_i], NULL);
  check_plan(variants[_i], "-O2");
}
END_TEST

int main(void) {
  list_variants();
  Suite *s = suite_create("llvm");
  TCase *tc = tcase_create("jit");
  tcase_set_timeout(tc, 300);
  tcase_add_loop_test(tc, jit_equals_ref, 0, n_variants);
  tcase_add_loop_test(tc, jit_equals_ref_O2, 0, n_variants);
  tcase_add_test(tc, jit_forward_errors);
  tcase_add_loop_test(tc, memplan_no_overlap, 0, n_variants);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int nf = srunner_ntests_failed(sr);
  srunner_free(sr);
  for (int i = 0; i < n_variants; i++) free(variants[i]);
  if (n_variants < 20) {
    fprintf(stderr, "test_llvm: only %d example models found under %s\n", n_variants, MORC_EXAMPLES_DIR);
    return 1;
  }
  return nf ? 1 : 0;
}
