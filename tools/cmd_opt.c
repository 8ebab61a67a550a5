/* cmd_opt.c: `morc opt FILE.mor -passes=...`: read IR text (or a model),
 * run a pass pipeline with the inspection flags, print IR text. Also the
 * helper that lets every command take the pass-manager options. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "passes/pm.h"
#include "tools/commands.h"

static const char *usage_opt =
    "usage: morc opt FILE [-passes=P1,P2,... | -O<n>] [-o OUT] [inspection flags]\n"
    "       morc opt --list-passes\n"
    "\n"
    "Read IR text (FILE.mor, or - for standard input; a model.json / config.json is lowered\n"
    "first), run the pass pipeline and print the resulting IR text. Without a pipeline the\n"
    "IR is parsed, verified and printed again (a round trip).\n"
    "\n"
    "options:\n"
    "  -o OUT              write to OUT instead of standard output\n"
    "  --list-passes       list the passes and the -O pipelines\n"
    "  -h, --help          show this help\n"
    "\n";

int morc_pm_option(const char *cmd, struct mor_pm_opts *o, int argc, char **argv, int *i) {
  mor_err e = {{0}};
  int rc = mor_pm_parse_arg(o, argc, argv, i, &e);
  if (rc < 0) {
    morc_die_usage(cmd, "%s", e.msg);
    return -1;
  }
  return rc;
}

static mor_module *load_stdin(mor_err *e) {
  mor_buf b = {0};
  char chunk[65536];
  size_t n;
  while ((n = fread(chunk, 1, sizeof chunk, stdin)) > 0) mor_buf_write(&b, chunk, n);
  mor_module *m = mor_parse_module(b.data ? b.data : "", b.len, "<stdin>", e);
  mor_buf_free(&b);
  if (m && mor_verify_module(m, e) != 0) {
    mor_module_free(m);
    return NULL;
  }
  return m;
}

int morc_cmd_opt(int argc, char **argv) {
  const char *file = NULL, *out = NULL;
  mor_pm_opts *pm = mor_pm_opts_new();
  int rc;
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      fputs(usage_opt, stdout);
      fputs(mor_pm_help(), stdout);
      mor_pm_opts_free(pm);
      return 0;
    } else if ((rc = morc_value_option("opt", &(morc_vopt){"-o", &out}, 1, argc, argv, &i)) != 0 ||
               (rc = morc_pm_option("opt", pm, argc, argv, &i)) != 0) {
      if (rc < 0) return mor_pm_opts_free(pm), 2;
    } else if (a[0] == '-' && a[1]) {
      return mor_pm_opts_free(pm), morc_die_usage("opt", "unknown option '%s'", a);
    } else if (file) {
      return mor_pm_opts_free(pm), morc_die_usage("opt", "unexpected argument '%s' (one FILE only)", a);
    } else {
      file = a;
    }
  }
  if (mor_pm_wants_list(pm)) {
    mor_pm_list(stdout);
    mor_pm_opts_free(pm);
    return 0;
  }
  if (!file) return mor_pm_opts_free(pm), morc_die_usage("opt", "%s", "missing FILE");
  mor_err e = {{0}};
  mor_config *cfg = NULL;
  mor_weights *w = NULL;
  mor_module *m = !strcmp(file, "-") ? load_stdin(&e) : morc_load_any(file, &cfg, &w, &e);
  if (!m) {
    mor_pm_opts_free(pm);
    return morc_fail(&e);
  }
  rc = 0;
  if (mor_pm_run(m, pm, stderr, &e) != 0) {
    rc = morc_fail(&e);
  } else {
    mor_buf b = {0};
    mor_print_module(&b, m);
    if (morc_write_text_output(out, &b, &e) != 0) rc = morc_fail(&e);
    mor_buf_free(&b);
  }
  mor_pm_opts_free(pm);
  mor_module_free(m);
  mor_weights_free(w);
  mor_config_free(cfg);
  return rc;
}
