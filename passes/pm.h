/* pm.h: the pass manager: a registry of passes, pipelines (-passes=a,b,
 * -O0..-O3) and the inspection flags (--print-after=P, --dump-dir=D, ...). */
#ifndef MOR_PM_H
#define MOR_PM_H
#include "ir/ir.h"

typedef struct mor_pass {
  const char *name;
  const char *description;           /* one line, for --list-passes */
  /* Transform m in place; return 0, or -1 with err set. *changed = 1 when the IR changed. */
  int (*run)(mor_module *m, int *changed, mor_err *err);
} mor_pass;

/* All registered passes, NULL-terminated. */
extern const mor_pass *const mor_passes[];
const mor_pass *mor_pass_find(const char *name);

typedef struct mor_pm_opts mor_pm_opts;
mor_pm_opts *mor_pm_opts_new(void);
void mor_pm_opts_free(mor_pm_opts *o);
/* Try to consume the pass-manager option at argv[*i] (-passes=..., -O<n>,
 * --print-before=, --print-after=, --print-after-all, --print-changed,
 * --dump-dir=, --time-passes, --verify-each, --no-verify-each, --list-passes).
 * Returns 1 when consumed (advancing *i past any separate value), 0 when the
 * option is not a pass-manager option, -1 on a bad value (err set). */
int mor_pm_parse_arg(mor_pm_opts *o, int argc, char **argv, int *i, mor_err *err);
/* Text for the options block of --help. */
const char *mor_pm_help(void);
/* 1 when --list-passes was given (the caller prints mor_pm_list and exits). */
int mor_pm_wants_list(const mor_pm_opts *o);
void mor_pm_list(FILE *f);
/* Run the selected pipeline (none when no -passes/-O given) on m, with the
 * inspection flags; printing goes to `out`. */
int mor_pm_run(mor_module *m, const mor_pm_opts *o, FILE *out, mor_err *err);
#endif
