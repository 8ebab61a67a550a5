/* test_limits.c: the memory estimate of `morc run` (tools/memlimit.c), the
 * refusal with the numbers against --max-memory and against physical
 * memory, and the --max-memory size syntax (tools/cli.c). */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "ir/ir.h"
#include "tools/cli.h"
#include "tools/memlimit.h"

static mor_module *parse(const char *text) {
  mor_err e = {{0}};
  mor_module *m = mor_parse_module(text, strlen(text), "t.mor", &e);
  ck_assert_msg(m && mor_verify_module(m, &e) == 0, "%s", e.msg);
  return m;
}

/* weights 8x4 + 4 (f32) and 6x4 stored as bf16; two caches of 16 x [1, 4], one an alias */
static const char *small =
    "module @s attributes {vocab_size = 8, max_position_embeddings = 16} {\n"
    "  sym T <= 16\n"
    "  weight @emb : f32[8, 4]\n"
    "  weight @n : f32[4]\n"
    "  weight @h : bf16[6, 4]\n"
    "  kv @kv.0 : f32[16, 1, 4] {layer = 0, depth = 0}\n"
    "  kv @kv.1 : f32[16, 1, 4] {layer = 0, depth = 1, alias = @kv.0}\n"
    "  func @forward(%t: i32[T], %p: i32[T]) -> (f32[T, 4], i32[T]) {\n"
    "    %x = embed %t {weight = @emb} : f32[T, 4]\n"
    "    %y = rmsnorm %x {weight = @n, eps = 1e-05} : f32[T, 4]\n"
    "    return %y, %t\n"
    "  }\n"
    "}\n";

START_TEST(estimate_counts_weights_kv_activations) {
  mor_module *m = parse(small);
  morc_mem r = morc_mem_estimate(m, 3);
  ck_assert_uint_eq(r.weights, (8 * 4 + 4 + 6 * 4) * 4); /* bf16 decoded to f32 */
  ck_assert_uint_eq(r.kv, 16 * (4 * 8 + 4));            /* 16 rows (growth starts there), the alias adds none */
  ck_assert_uint_eq(r.activations, 2 * 3 * 4 * 4);      /* the two values of [3, 4] f32 */
  ck_assert_uint_eq(r.total, r.weights + r.kv + r.activations + 3 * 8 * 4);
  mor_module_free(m);
}
END_TEST

START_TEST(refused_with_the_numbers) {
  mor_module *m = parse(small);
  mor_err e = {{0}};
  ck_assert_int_eq(morc_mem_check("m.json", m, 3, 1 << 20, 1, &e), 0);
  ck_assert_int_eq(morc_mem_check("m.json", m, 3, 100, 1, &e), -1);
  ck_assert_str_eq(e.msg, "m.json: this run needs about 1008 bytes of memory (weights 240 bytes as f32, KV caches 576 bytes "
                          "for 3 tokens, activations 96 bytes), more than the 100 bytes that --max-memory allows");
  mor_module_free(m);
}
END_TEST

START_TEST(physical_memory_is_the_default_cap) {
  /* 4 TiB of weights: more than any test machine has */
  mor_module *m = parse("module @big attributes {vocab_size = 8} {\n  weight @w : bf16[1048576, 1048576]\n"
                        "  func @forward() -> () {\n    return\n  }\n}\n");
  uint64_t phys = morc_phys_mem();
  ck_assert(phys > 0);
  mor_err e = {{0}};
  ck_assert_int_eq(morc_mem_check("big.json", m, 1, phys, 0, &e), -1);
  ck_assert_msg(strstr(e.msg, "big.json: this run needs about 4.0 TiB of memory (weights 4.0 TiB as f32"), "%s", e.msg);
  ck_assert_msg(strstr(e.msg, "of physical memory (--max-memory sets another cap)"), "%s", e.msg);
  mor_module_free(m);
}
END_TEST

START_TEST(sizes_saturate) {
  mor_module *m = parse("module @huge attributes {vocab_size = 8} {\n"
                        "  weight @a : f32[4294967296, 4294967296]\n  weight @b : f32[4294967296, 4294967296]\n"
                        "  func @forward() -> () {\n    return\n  }\n}\n");
  morc_mem r = morc_mem_estimate(m, 1);
  ck_assert_uint_eq(r.weights, UINT64_MAX);
  ck_assert_uint_eq(r.total, UINT64_MAX);
  mor_module_free(m);
}
END_TEST

START_TEST(size_syntax) {
  static const struct {
    const char *s;
    uint64_t bytes;
  } good[] = {{"1", 1}, {"512M", 512u << 20}, {"16G", 16ull << 30}, {"16GiB", 16ull << 30}, {"16gb", 16ull << 30},
              {"1.5T", 3ull << 39}, {"2k", 2048}, {"100B", 100}, {"0.5K", 512}};
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
    uint64_t b = 0;
    mor_err e = {{0}};
    ck_assert_msg(mor_cli_parse_size(good[i].s, "--max-memory", &b, &e) == 0, "%s: %s", good[i].s, e.msg);
    ck_assert_msg(b == good[i].bytes, "%s: %llu", good[i].s, (unsigned long long)b);
  }
  static const struct {
    const char *s, *msg;
  } bad[] = {{"", "--max-memory: expected a size such as 16G, 512M or 1.5T, found ''"},
             {"G", "--max-memory: expected a size such as 16G, 512M or 1.5T, found 'G'"},
             {"12Q", "--max-memory: expected a size such as 16G, 512M or 1.5T, found '12Q'"},
             {"-1G", "--max-memory: expected a size such as 16G, 512M or 1.5T, found '-1G'"},
             {"1G\n", "--max-memory: expected a size such as 16G, 512M or 1.5T, found '1G\\n'"},
             {"0", "--max-memory: '0' is not a positive number of bytes"},
             {"99999999999T", "--max-memory: '99999999999T' is more than 2^64 bytes"}};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    uint64_t b = 0;
    mor_err e = {{0}};
    ck_assert_int_eq(mor_cli_parse_size(bad[i].s, "--max-memory", &b, &e), -1);
    ck_assert_str_eq(e.msg, bad[i].msg);
  }
}
END_TEST

int main(void) {
  Suite *s = suite_create("limits");
  TCase *tc = tcase_create("memory");
  tcase_add_test(tc, estimate_counts_weights_kv_activations);
  tcase_add_test(tc, refused_with_the_numbers);
  tcase_add_test(tc, physical_memory_is_the_default_cap);
  tcase_add_test(tc, sizes_saturate);
  tcase_add_test(tc, size_syntax);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? 1 : 0;
}
