/* test_ir.c: the IR text form (exact round trip, quoting of odd symbol
 * names), the builder, and one golden message per parse/verify error in
 * tests/bad/ir (each FILE.mor has FILE.expected beside it). */
#include <check.h>
#include <dirent.h>
#include <stdlib.h>
#include <string.h>

#include "ir/ir.h"

#ifndef BAD_IR_DIR
#error "BAD_IR_DIR must be defined"
#endif

static char *slurp(const char *dir, const char *name, size_t *len) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  mor_err e;
  char *s = mor_read_file(path, len, &e);
  ck_assert_msg(s != NULL, "%s", e.msg);
  return s;
}

static char *print_to_string(const mor_module *m) {
  mor_buf b = {0};
  mor_print_module(&b, m);
  return b.data;
}

/* parse + verify; NULL and e set on failure */
static mor_module *load(const char *text, size_t len, const char *name, mor_err *e) {
  mor_module *m = mor_parse_module(text, len, name, e);
  if (m && mor_verify_module(m, e) != 0) {
    mor_module_free(m);
    return NULL;
  }
  return m;
}

START_TEST(round_trip_is_exact) {
  size_t len;
  char *text = slurp(BAD_IR_DIR, "ok_small.mor", &len);
  mor_err e = {{0}};
  mor_module *m = load(text, len, "ok_small.mor", &e);
  ck_assert_msg(m != NULL, "%s", e.msg);
  char *p1 = print_to_string(m);
  mor_module *m2 = load(p1, strlen(p1), "printed.mor", &e);
  ck_assert_msg(m2 != NULL, "printed text does not parse: %s\n%s", e.msg, p1);
  char *p2 = print_to_string(m2);
  ck_assert_str_eq(p1, p2);
  /* the odd weight name is quoted with escapes, and values are renumbered */
  ck_assert_ptr_nonnull(strstr(p1, "weight @\"odd \\\"name\\\"\\n*/\" : f32[4]"));
  ck_assert_ptr_nonnull(strstr(p1, "%0: i32[T], %1: i32[T]"));
  ck_assert_ptr_nonnull(strstr(p1, "kv @kv.1 : f32[16, 1, 4] {layer = 0, depth = 1, alias = @kv.0}"));
  ck_assert_ptr_nonnull(strstr(p1, "eps = 1e-05"));
  ck_assert_ptr_nonnull(strstr(p1, "capacity = [1.0, 0.5]"));
  ck_assert_ptr_nonnull(strstr(p1, "caches = [@kv.0, @none]"));
  free(p1);
  free(p2);
  free(text);
  mor_module_free(m);
  mor_module_free(m2);
}
END_TEST

START_TEST(builder_builds_verified_ir) {
  mor_module *m = mor_module_new("built");
  int T = mor_add_sym(m, "T", 8);
  mor_dim d[2] = {mor_dsym(m, T), mor_dconst(3)};
  mor_dim wd[2] = {mor_dconst(5), mor_dconst(3)};
  mor_add_global(m, MOR_GLOBAL_WEIGHT, "w", mor_type_make(MOR_F32, 2, wd));
  mor_func *f = mor_add_func(m, "forward");
  mor_value *x = mor_block_add_arg(m, f->body, mor_type_make(MOR_F32, 2, d));
  mor_dim rd[2] = {mor_dsym(m, T), mor_dconst(5)};
  mor_type rt = mor_type_make(MOR_F32, 2, rd);
  f->n_results = 1;
  f->result_types = mor_alloc(m, sizeof(mor_type));
  f->result_types[0] = rt;
  mor_op *mm = mor_op_new(m, MOR_OP_MATMUL, 1, &x, 1, &rt);
  mor_op_set_sym(m, mm, "weight", "w");
  mor_block_append(f->body, mm);
  mor_block_append(f->body, mor_op_new(m, MOR_OP_RETURN, 1, mm->results, 0, NULL));
  mor_err e = {{0}};
  ck_assert_msg(mor_verify_module(m, &e) == 0, "%s", e.msg);
  char *p = print_to_string(m);
  ck_assert_ptr_nonnull(strstr(p, "%1 = matmul %0 {weight = @w} : f32[T, 5]"));
  /* a wrong result type is caught */
  mm->results[0]->type.dims[1] = mor_dconst(4);
  ck_assert_int_ne(mor_verify_module(m, &e), 0);
  ck_assert_ptr_nonnull(strstr(e.msg, "result 0 has type f32[T, 4], expected f32[T, 5]"));
  free(p);
  mor_module_free(m);
}
END_TEST

START_TEST(bad_inputs_give_their_messages) {
  DIR *d = opendir(BAD_IR_DIR);
  ck_assert_ptr_nonnull(d);
  struct dirent *ent;
  int checked = 0;
  while ((ent = readdir(d))) {
    size_t n = strlen(ent->d_name);
    if (n < 5 || strcmp(ent->d_name + n - 4, ".mor") || !strncmp(ent->d_name, "ok_", 3)) continue;
    char exp_name[512];
    snprintf(exp_name, sizeof exp_name, "%.*s.expected", (int)(n - 4), ent->d_name);
    size_t len, elen;
    char *text = slurp(BAD_IR_DIR, ent->d_name, &len);
    char *expected = slurp(BAD_IR_DIR, exp_name, &elen);
    while (elen && (expected[elen - 1] == '\n')) expected[--elen] = 0;
    mor_err e = {{0}};
    mor_module *m = load(text, len, ent->d_name, &e);
    ck_assert_msg(m == NULL, "%s: accepted but should fail", ent->d_name);
    ck_assert_msg(strstr(e.msg, expected) != NULL, "%s:\n expected: %s\n got: %s", ent->d_name, expected, e.msg);
    free(text);
    free(expected);
    checked++;
  }
  closedir(d);
  ck_assert_int_ge(checked, 10);
}
END_TEST

START_TEST(garbage_never_crashes) {
  /* every prefix of a valid module is either a valid module or an error */
  size_t len;
  char *text = slurp(BAD_IR_DIR, "ok_small.mor", &len);
  for (size_t cut = 0; cut < len; cut += 7) {
    mor_err e = {{0}};
    mor_module *m = load(text, cut, "cut.mor", &e);
    if (m) mor_module_free(m);
    else ck_assert_msg(strstr(e.msg, "error") != NULL, "cut at %zu: %s", cut, e.msg);
  }
  free(text);
}
END_TEST

int main(void) {
  Suite *s = suite_create("ir");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, round_trip_is_exact);
  tcase_add_test(tc, builder_builds_verified_ir);
  tcase_add_test(tc, bad_inputs_give_their_messages);
  tcase_add_test(tc, garbage_never_crashes);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? 1 : 0;
}
