/* pm.c: the pass manager: the registry, pipelines (-passes=a,b,c and the
 * -O0..-O3 defaults) and the inspection flags (--print-before/after,
 * --print-after-all, --print-changed, --dump-dir, --time-passes,
 * --verify-each). */
#include "passes/pm.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "passes/passes.h"

static const mor_pass p_specialize = {"specialize-depths",
                                      "unroll recur: one copy per depth with its own router, caches and row bounds",
                                      mor_pass_specialize_depths};
static const mor_pass p_fuse = {"fuse-shared-block",
                                "fused kernels (norm/rope/kv-write/silu/residual/gate epilogues); outline the block",
                                mor_pass_fuse_shared_block};
static const mor_pass p_plan_kv = {"plan-kv", "KV cache layout: capacity in tokens and bytes, aliases, growth policy",
                                   mor_pass_plan_kv};
static const mor_pass p_plan_mem = {"plan-memory",
                                    "liveness at upper bounds and best-fit offsets of every tensor in one arena",
                                    mor_pass_plan_memory};
static const mor_pass p_dce = {"dce", "remove ops whose results are unused and that write nothing", mor_pass_dce};
static const mor_pass p_cse = {"cse", "merge identical pure ops", mor_pass_cse};

const mor_pass *const mor_passes[] = {&p_specialize, &p_fuse, &p_plan_kv, &p_plan_mem, &p_dce, &p_cse, NULL};

const mor_pass *mor_pass_find(const char *name) {
  for (int i = 0; mor_passes[i]; i++)
    if (!strcmp(mor_passes[i]->name, name)) return mor_passes[i];
  return NULL;
}

/* Default pipelines by optimization level. */
static const char *const opt_levels[4] = {
    "",
    "specialize-depths,plan-kv,plan-memory",
    "specialize-depths,fuse-shared-block,plan-kv,plan-memory",
    "specialize-depths,fuse-shared-block,plan-kv,plan-memory",
};

#define MAX_PIPE 64
struct mor_pm_opts {
  const mor_pass *pipe[MAX_PIPE];
  int n_pipe;
  int have_pipe;
  char **print_before, **print_after; /* pass names */
  int n_before, n_after;
  int print_after_all, print_changed, time_passes, verify_each, list;
  char *dump_dir;
};

mor_pm_opts *mor_pm_opts_new(void) {
  mor_pm_opts *o = mor_xcalloc(1, sizeof *o);
  const char *env = getenv("MORC_VERIFY_EACH");
  o->verify_each = env && *env && strcmp(env, "0") != 0;
  return o;
}

void mor_pm_opts_free(mor_pm_opts *o) {
  if (!o) return;
  for (int i = 0; i < o->n_before; i++) free(o->print_before[i]);
  for (int i = 0; i < o->n_after; i++) free(o->print_after[i]);
  free(o->print_before);
  free(o->print_after);
  free(o->dump_dir);
  free(o);
}

static int set_pipeline(mor_pm_opts *o, const char *spec, mor_err *err) {
  o->n_pipe = 0;
  o->have_pipe = 1;
  char *copy = mor_xstrdup(spec);
  int rc = 0;
  for (char *save = NULL, *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
    while (*tok == ' ') tok++;
    size_t n = strlen(tok);
    while (n && tok[n - 1] == ' ') tok[--n] = 0;
    if (!*tok) continue;
    const mor_pass *p = mor_pass_find(tok);
    if (!p) {
      mor_errf(err, "-passes: unknown pass '%s' (see --list-passes)", tok);
      rc = -1;
      break;
    }
    if (o->n_pipe == MAX_PIPE) {
      mor_errf(err, "-passes: more than %d passes", MAX_PIPE);
      rc = -1;
      break;
    }
    o->pipe[o->n_pipe++] = p;
  }
  free(copy);
  return rc;
}

static int add_name(char ***list, int *n, const char *name, const char *flag, mor_err *err) {
  if (!mor_pass_find(name)) {
    mor_errf(err, "%s: unknown pass '%s' (see --list-passes)", flag, name);
    return -1;
  }
  *list = mor_xrealloc(*list, sizeof(char *) * (size_t)(*n + 1));
  (*list)[(*n)++] = mor_xstrdup(name);
  return 0;
}

/* "--flag=value", "--flag value", and the same with one dash ("-passes=",
 * as in LLVM's opt). NULL with *matched set when the value is missing. */
static const char *flag_value(const char *arg, const char *flag, int argc, char **argv, int *i, int *matched) {
  const char *name = flag + 2; /* flag is "--name" */
  const char *a = arg[0] == '-' && arg[1] == '-' ? arg + 2 : arg[0] == '-' ? arg + 1 : NULL;
  size_t n = strlen(name);
  if (!a || strncmp(a, name, n) != 0) return NULL;
  if (a[n] == '=') return *matched = 1, a + n + 1;
  if (a[n] == 0) {
    *matched = 1;
    return *i + 1 < argc ? argv[++*i] : NULL;
  }
  return NULL;
}

static int is_flag(const char *a, const char *flag) {
  if (!strcmp(a, flag)) return 1;
  return flag[0] == '-' && flag[1] == '-' && !strcmp(a, flag + 1);
}

int mor_pm_parse_arg(mor_pm_opts *o, int argc, char **argv, int *i, mor_err *err) {
  const char *a = argv[*i];
  int matched = 0;
  const char *v;
  if (a[0] == '-' && a[1] == 'O' && a[2] >= '0' && a[2] <= '3' && a[3] == 0) {
    if (set_pipeline(o, opt_levels[a[2] - '0'], err)) return -1;
    return 1;
  }
  if (a[0] == '-' && a[1] == 'O' && a[2]) {
    mor_errf(err, "unknown optimization level '%s' (-O0, -O1, -O2 or -O3)", a);
    return -1;
  }
  v = flag_value(a, "--passes", argc, argv, i, &matched);
  if (matched) {
    if (!v) return mor_errf(err, "%s needs a list of passes, e.g. -passes=specialize-depths,plan-kv", a), -1;
    return set_pipeline(o, v, err) ? -1 : 1;
  }
  v = flag_value(a, "--print-before", argc, argv, i, &matched);
  if (matched) {
    if (!v) return mor_errf(err, "%s needs a pass name", a), -1;
    return add_name(&o->print_before, &o->n_before, v, "--print-before", err) ? -1 : 1;
  }
  v = flag_value(a, "--print-after", argc, argv, i, &matched);
  if (matched) {
    if (!v) return mor_errf(err, "%s needs a pass name", a), -1;
    return add_name(&o->print_after, &o->n_after, v, "--print-after", err) ? -1 : 1;
  }
  v = flag_value(a, "--dump-dir", argc, argv, i, &matched);
  if (matched) {
    if (!v || !*v) return mor_errf(err, "%s needs a directory", a), -1;
    free(o->dump_dir);
    o->dump_dir = mor_xstrdup(v);
    return 1;
  }
  if (is_flag(a, "--print-after-all")) return o->print_after_all = 1, 1;
  if (is_flag(a, "--print-changed")) return o->print_changed = 1, 1;
  if (is_flag(a, "--time-passes")) return o->time_passes = 1, 1;
  if (is_flag(a, "--verify-each")) return o->verify_each = 1, 1;
  if (is_flag(a, "--no-verify-each")) return o->verify_each = 0, 1;
  if (is_flag(a, "--list-passes")) return o->list = 1, 1;
  return 0;
}

const char *mor_pm_help(void) {
  return "pass pipeline (see docs/passes.md):\n"
         "  -passes=P1,P2,...   run these passes in order (morc opt --list-passes)\n"
         "  -O0 | -O1 | -O2 | -O3\n"
         "                      default pipelines: -O0 none; -O1 specialize-depths,plan-kv,plan-memory;\n"
         "                      -O2 and -O3 specialize-depths,fuse-shared-block,plan-kv,plan-memory\n"
         "  --print-before=P    print the IR (to stderr) before each run of pass P (repeatable)\n"
         "  --print-after=P     print the IR (to stderr) after each run of pass P (repeatable)\n"
         "  --print-after-all   print the IR after every pass\n"
         "  --print-changed     with the print flags: print only when the pass changed the IR\n"
         "                      (alone: print after every pass that changed it)\n"
         "  --dump-dir=D        write every stage to D: 00-input.mor, 01-after-<pass>.mor, ...\n"
         "  --time-passes       print a table of pass, milliseconds and share of the total\n"
         "  --verify-each       verify the IR after every pass (default when MORC_VERIFY_EACH=1)\n"
         "  --no-verify-each    verify only after the whole pipeline\n";
}

int mor_pm_wants_list(const mor_pm_opts *o) { return o->list; }

void mor_pm_list(FILE *f) {
  fprintf(f, "passes (in -O2 order, then utilities):\n");
  for (int i = 0; mor_passes[i]; i++) fprintf(f, "  %-20s %s\n", mor_passes[i]->name, mor_passes[i]->description);
  fprintf(f, "\npipelines:\n");
  for (int l = 0; l < 4; l++) fprintf(f, "  -O%d  %s\n", l, *opt_levels[l] ? opt_levels[l] : "(none)");
}

static int in_list(char **list, int n, const char *name) {
  for (int i = 0; i < n; i++)
    if (!strcmp(list[i], name)) return 1;
  return 0;
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static char *print_text(const mor_module *m) {
  mor_buf b = {0};
  mor_print_module(&b, m);
  mor_buf_putc(&b, 0);
  return b.data;
}

static int mkdir_p(const char *dir, mor_err *err) {
  char *p = mor_xstrdup(dir);
  for (char *s = p + 1; *s; s++) {
    if (*s != '/') continue;
    *s = 0;
    if (mkdir(p, 0777) != 0 && errno != EEXIST) {
      mor_errf(err, "--dump-dir: cannot create %s: %s", p, strerror(errno));
      free(p);
      return -1;
    }
    *s = '/';
  }
  int rc = 0;
  if (mkdir(p, 0777) != 0 && errno != EEXIST) {
    mor_errf(err, "--dump-dir: cannot create %s: %s", p, strerror(errno));
    rc = -1;
  }
  free(p);
  return rc;
}

static int dump_stage(const mor_pm_opts *o, int k, const char *what, const char *text, mor_err *err) {
  char name[256];
  snprintf(name, sizeof name, "%02d-%s.mor", k, what);
  char *path = mor_path_join(o->dump_dir, name);
  int rc = mor_write_file_atomic(path, text, strlen(text), err);
  free(path);
  return rc;
}

static void banner(FILE *out, const char *when, const char *pass, const char *text) {
  fprintf(out, "// -----// IR Dump %s %s //----- //\n%s\n", when, pass, text);
}

int mor_pm_run(mor_module *m, const mor_pm_opts *o, FILE *out, mor_err *err) {
  int n = o->have_pipe ? o->n_pipe : 0;
  int need_text = o->print_changed || o->dump_dir || o->n_before || o->n_after || o->print_after_all;
  double *ms = mor_xcalloc((size_t)n + 1, sizeof *ms);
  char *text = need_text ? print_text(m) : NULL;
  int rc = 0;
  if (o->dump_dir) {
    if (mkdir_p(o->dump_dir, err) || dump_stage(o, 0, "input", text, err)) {
      rc = -1;
      goto done;
    }
  }
  for (int i = 0; i < n; i++) {
    const mor_pass *p = o->pipe[i];
    int before = in_list(o->print_before, o->n_before, p->name);
    int after = o->print_after_all || in_list(o->print_after, o->n_after, p->name);
    if (before && !o->print_changed) banner(out, "Before", p->name, text);
    int changed = 0;
    double t0 = now_ms();
    if (p->run(m, &changed, err) != 0) {
      mor_err_prefix(err, "pass %s", p->name);
      rc = -1;
      goto done;
    }
    ms[i] = now_ms() - t0;
    if (o->verify_each && mor_verify_module(m, err) != 0) {
      mor_err_prefix(err, "internal error: the IR after pass %s does not verify", p->name);
      rc = -1;
      goto done;
    }
    if (need_text) {
      char *next = print_text(m);
      int differs = strcmp(next, text) != 0;
      if (before && o->print_changed && differs) banner(out, "Before", p->name, text);
      if (o->print_changed && !o->print_after_all && !o->n_after && !o->n_before) after = 1;
      if (after && (!o->print_changed || differs)) banner(out, "After", p->name, next);
      if (o->dump_dir) {
        char what[128];
        snprintf(what, sizeof what, "after-%s", p->name);
        if (dump_stage(o, i + 1, what, next, err)) {
          free(next);
          rc = -1;
          goto done;
        }
      }
      free(text);
      text = next;
    }
  }
  if (n && !o->verify_each && mor_verify_module(m, err) != 0) {
    mor_err_prefix(err, "internal error: the IR after the pipeline does not verify");
    rc = -1;
    goto done;
  }
  if (o->time_passes) {
    double total = 0;
    for (int i = 0; i < n; i++) total += ms[i];
    fprintf(out, "===-------------------------------------------------------------------------===\n");
    fprintf(out, "                          morc pass execution timing\n");
    fprintf(out, "===-------------------------------------------------------------------------===\n");
    fprintf(out, "  %-24s %10s %8s\n", "pass", "ms", "share");
    for (int i = 0; i < n; i++)
      fprintf(out, "  %-24s %10.3f %7.1f%%\n", o->pipe[i]->name, ms[i], total > 0 ? 100.0 * ms[i] / total : 0.0);
    fprintf(out, "  %-24s %10.3f %7.1f%%\n", "total", total, total > 0 ? 100.0 : 0.0);
  }
done:
  free(text);
  free(ms);
  return rc;
}
