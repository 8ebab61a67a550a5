/* fuzz_passes.c: IR text that parses and verifies, through the -O2 pipeline
 * with verification after every pass: a pass may refuse the module (an
 * error), but must not crash or produce IR that does not verify (an
 * "internal error"). Seeds: the IR corpus (tests/fuzz/corpus/ir). */
#include "tests/fuzz/fuzz.h"
#include "ir/ir.h"
#include "passes/pm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  mor_err e = {{0}};
  mor_module *m = mor_parse_module((const char *)data, size, "fuzz.mor", &e);
  if (!m) return 0;
  if (mor_verify_module(m, &e) != 0) {
    mor_module_free(m);
    return 0;
  }
  mor_pm_opts *o = mor_pm_opts_new();
  char *argv[] = {"-O2", "--verify-each", NULL};
  for (int i = 0; i < 2; i++) FUZZ_CHECK(mor_pm_parse_arg(o, 2, argv, &i, &e) == 1, "%s", e.msg);
  FILE *devnull = fopen("/dev/null", "w");
  if (mor_pm_run(m, o, devnull, &e) != 0)
    FUZZ_CHECK(!strstr(e.msg, "internal error"), "%s", e.msg);
  fclose(devnull);
  mor_pm_opts_free(o);
  mor_module_free(m);
  return 0;
}
