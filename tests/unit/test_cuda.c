/* test_cuda.c: Check suite of the CUDA backend without a GPU: names in
 * comments are escaped, the launch plan survives serialization, the plan
 * reader refuses every truncation and corrupted counts without crashing,
 * an NVRTC failure names the kernel and shows the log, and the driver shim
 * reports a missing driver. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cuda/cuda_impl.h"
#include "frontend/lower.h"
#include "runtime/cuda_plan.h"
#include "runtime/cuda_rt.h"
#include "runtime/cuda_shim.h"

#ifndef MORC_EXAMPLES
#define MORC_EXAMPLES "examples"
#endif

static mor_module *load(const char *variant, mor_config **c, mor_weights **w) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s/model.json", MORC_EXAMPLES, variant);
  mor_err e;
  mor_module *m = mor_load_model(path, c, w, &e);
  ck_assert_msg(m != NULL, "%s", e.msg);
  return m;
}

START_TEST(comment_names) {
  char b[64];
  ck_assert_str_eq(mor_cuda_comment_name("model.layers.0.q_proj-w_1", b, sizeof b), "model.layers.0.q_proj-w_1");
  ck_assert_str_eq(mor_cuda_comment_name("a*/b", b, sizeof b), "a\\x2a\\x2fb");
  ck_assert_str_eq(mor_cuda_comment_name("\n#\"\\", b, sizeof b), "\\x0a\\x23\\x22\\x5c");
  ck_assert_str_eq(mor_cuda_comment_name("\xff", b, sizeof b), "\\xff");
  mor_cuda_comment_name("0123456789012345678901234567890123456789012345678901234567890123456789", b, 20);
  ck_assert_uint_lt(strlen(b), 20);
  ck_assert_ptr_nonnull(strstr(b, "..."));
}
END_TEST

START_TEST(plan_round_trip) {
  mor_config *c;
  mor_weights *w;
  mor_module *m = load("ec_linear_sigmoid_threshold", &c, &w);
  mor_cuda_opts o;
  mor_cuda_opts_default(&o);
  o.max_tokens = 64;
  mor_err e;
  mor_cuda_prog *p = mor_cuda_plan(m, &o, &e);
  ck_assert_msg(p != NULL, "%s", e.msg);
  mor_buf b = {0};
  mor_cuda_write_plan(p, "{\"tok\": 1}", 10, &b);
  char err[256];
  morcu_plan *q = morcu_plan_read(b.data, b.len, err, sizeof err);
  ck_assert_msg(q != NULL, "%s", err);
  mor_cuda_info info;
  mor_cuda_get_info(p, &info);
  ck_assert_int_eq(q->n_steps, info.n_steps);
  ck_assert_int_eq(q->n_kernels, info.n_kernels);
  ck_assert_int_eq(q->arena_bytes, info.arena_bytes);
  ck_assert_int_eq(q->max_tokens, 64);
  ck_assert_int_eq(q->vocab, 128);
  ck_assert_int_eq(q->n_weights, mor_cuda_n_weights(p));
  ck_assert_int_eq(q->routing, 1);
  ck_assert_int_eq(q->whole_sequence, 0);
  ck_assert_int_eq((int64_t)q->tokenizer_size, 10);
  for (int64_t i = 0; i < q->n_kernels; i++) ck_assert_str_eq(q->kernel_names[i], p->k[i].name);
  /* every truncation is refused with a message, never a crash */
  for (size_t n = 0; n < b.len; n++) {
    morcu_plan *t = morcu_plan_read(b.data, n, err, sizeof err);
    ck_assert_msg(t == NULL, "a plan cut to %zu of %zu bytes was accepted", n, b.len);
    ck_assert(err[0] != 0);
  }
  /* every 32-bit field set to a huge value: refused or still consistent, never a crash */
  for (size_t at = 8; at + 4 <= b.len; at += 4) {
    char *d = malloc(b.len);
    memcpy(d, b.data, b.len);
    memset(d + at, 0x7f, 4);
    morcu_plan *t = morcu_plan_read(d, b.len, err, sizeof err);
    morcu_plan_free(t);
    free(d);
  }
  morcu_plan_free(q);
  mor_buf_free(&b);
  mor_cuda_prog_free(p);
  mor_module_free(m);
  mor_weights_free(w);
  mor_config_free(c);
}
END_TEST

START_TEST(top_k_is_whole_sequence) {
  mor_config *c;
  mor_weights *w;
  mor_module *m = load("ec_mlp_sigmoid_topk", &c, &w);
  mor_err e;
  mor_cuda_prog *p = mor_cuda_plan(m, NULL, &e);
  ck_assert_msg(p != NULL, "%s", e.msg);
  ck_assert_int_eq(p->whole_sequence, 1);
  mor_cuda_prog_free(p);
  mor_module_free(m);
  mor_weights_free(w);
  mor_config_free(c);
}
END_TEST

START_TEST(bad_arch) {
  mor_config *c;
  mor_weights *w;
  mor_module *m = load("ec_defaults", &c, &w);
  mor_cuda_opts o;
  mor_cuda_opts_default(&o);
  o.arch = "sm_70";
  mor_err e;
  ck_assert_ptr_null(mor_cuda_plan(m, &o, &e));
  ck_assert_ptr_nonnull(strstr(e.msg, "sm_70"));
  o.arch = "compute_90\"; rm -rf /";
  ck_assert_ptr_null(mor_cuda_plan(m, &o, &e));
  ck_assert_ptr_nonnull(strstr(e.msg, "compute_90\\\"; rm")); /* the quote is shown escaped */
  mor_module_free(m);
  mor_weights_free(w);
  mor_config_free(c);
}
END_TEST

START_TEST(nvrtc_failure_names_the_kernel) {
  mor_config *c;
  mor_weights *w;
  mor_module *m = load("ec_defaults", &c, &w);
  mor_err e;
  mor_cuda_prog *p = mor_cuda_plan(m, NULL, &e);
  ck_assert_msg(p != NULL, "%s", e.msg);
  /* break the wrapper of the first kernel instance */
  char *at = strstr(p->src.data, "fam_embed<");
  ck_assert_ptr_nonnull(at);
  memcpy(at, "fam_embeX", 9);
  ck_assert_int_ne(mor_cuda_nvrtc(p, &e), 0);
  ck_assert_msg(strstr(e.msg, "mor_k0_embed") != NULL, "no kernel name in: %s", e.msg);
  ck_assert_msg(strstr(e.msg, "fam_embeX") != NULL, "no program log in: %s", e.msg);
  mor_cuda_prog_free(p);
  mor_module_free(m);
  mor_weights_free(w);
  mor_config_free(c);
}
END_TEST

START_TEST(no_driver) {
  setenv("MORRT_CUDA_DRIVER", "/nonexistent/libcuda.so.1", 1);
  char err[512];
  ck_assert_ptr_null(morrt_cu_load(err, sizeof err));
  ck_assert_ptr_nonnull(strstr(err, "no CUDA driver or GPU found"));
  morcu_plan p;
  memset(&p, 0, sizeof p);
  morrt_cuda *cu;
  ck_assert_int_eq(morrt_cuda_open(&p, NULL, 0, 1, &cu, err, sizeof err), MORRT_CUDA_NO_GPU);
  ck_assert_ptr_nonnull(strstr(err, "no CUDA driver or GPU found"));
  unsetenv("MORRT_CUDA_DRIVER");
}
END_TEST

/* tests/unit/cuda_layout.c: the shim's constants and structs against cuda.h, at compile time */
int morrt_test_cuda_layout_checked(void);
START_TEST(shim_layout_matches_cuda_h) { ck_assert_int_ge(morrt_test_cuda_layout_checked(), 12000); }
END_TEST

/* error codes are named even when the driver cannot name them (a stub library) */
START_TEST(error_names) {
  char b[256];
  ck_assert_str_eq(morrt_cu_errstr(NULL, 700, b, sizeof b),
                   "CUDA_ERROR_ILLEGAL_ADDRESS (a kernel accessed an illegal address)");
  ck_assert_ptr_nonnull(strstr(morrt_cu_errstr(NULL, 34, b, sizeof b), "CUDA_ERROR_STUB_LIBRARY (the CUDA toolkit's stub"));
  ck_assert_str_eq(morrt_cu_errstr(NULL, 12345, b, sizeof b), "CUDA error 12345 (no description)");
}
END_TEST

/* The toolkit's stub libcuda.so exports every entry point of the installed
 * CUDA's driver API: the shim must find each versioned name there, and a run
 * on the stub must say what it loaded. */
START_TEST(stub_driver) {
  const char *stub = MORC_CUDA_STUB;
  FILE *f = fopen(stub, "rb");
  if (!f) {
    printf("note: %s not found: stub_driver skipped\n", stub);
    return;
  }
  fclose(f);
  setenv("MORRT_CUDA_DRIVER", stub, 1);
  char err[512] = "";
  morrt_cu *cu = morrt_cu_load(err, sizeof err);
  ck_assert_msg(cu != NULL, "the shim did not load the stub: %s", err);
  morrt_cu_unload(cu);
  morcu_plan p;
  memset(&p, 0, sizeof p);
  morrt_cuda *rt;
  ck_assert_int_eq(morrt_cuda_open(&p, NULL, 0, 1, &rt, err, sizeof err), MORRT_CUDA_NO_GPU);
  ck_assert_msg(strstr(err, "no CUDA driver or GPU found") && strstr(err, "CUDA_ERROR_STUB_LIBRARY"), "%s", err);
  unsetenv("MORRT_CUDA_DRIVER");
}
END_TEST

int main(void) {
  Suite *s = suite_create("cuda");
  TCase *t = tcase_create("backend");
  tcase_set_timeout(t, 300);
  tcase_add_test(t, comment_names);
  tcase_add_test(t, plan_round_trip);
  tcase_add_test(t, top_k_is_whole_sequence);
  tcase_add_test(t, bad_arch);
  tcase_add_test(t, nvrtc_failure_names_the_kernel);
  tcase_add_test(t, no_driver);
  tcase_add_test(t, error_names);
  tcase_add_test(t, shim_layout_matches_cuda_h);
  tcase_add_test(t, stub_driver);
  suite_add_tcase(s, t);
  SRunner *r = srunner_create(s);
  srunner_run_all(r, CK_NORMAL);
  int failed = srunner_ntests_failed(r);
  srunner_free(r);
  return failed ? 1 : 0;
}
