/* fuzz_ir.c: IR text parsing and verification (mor_parse_module,
 * mor_verify_module). A module that parses and verifies must print to text
 * that parses and verifies again and prints the same (the round trip of
 * docs/ir.md); errors must be "fuzz.mor:LINE:COL: error: ..." or name the
 * function. */
#include "tests/fuzz/fuzz.h"
#include "ir/ir.h"

static char *print(const mor_module *m) {
  mor_buf b = {0};
  mor_print_module(&b, m);
  return b.data;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  mor_err e = {{0}};
  mor_module *m = mor_parse_module((const char *)data, size, "fuzz.mor", &e);
  if (!m) {
    fuzz_check_message(e.msg, "fuzz.mor");
    return 0;
  }
  if (mor_verify_module(m, &e) != 0) {
    fuzz_check_message(e.msg, NULL);
    mor_module_free(m);
    return 0;
  }
  char *p1 = print(m);
  mor_module *m2 = mor_parse_module(p1, strlen(p1), "printed.mor", &e);
  FUZZ_CHECK(m2, "the printed module does not parse: %s\n%s", e.msg, p1);
  FUZZ_CHECK(mor_verify_module(m2, &e) == 0, "the printed module does not verify: %s\n%s", e.msg, p1);
  char *p2 = print(m2);
  FUZZ_CHECK(strcmp(p1, p2) == 0, "print(parse(print(m))) != print(m):\n%s\n----\n%s", p1, p2);
  free(p1);
  free(p2);
  mor_module_free(m2);
  mor_module_free(m);
  return 0;
}
