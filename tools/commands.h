/* commands.h: the morc subcommands (one file each under tools/) and the
 * helpers they share (driver.c). */
#ifndef MORC_COMMANDS_H
#define MORC_COMMANDS_H
#include "frontend/lower.h"
#include "frontend/model.h"
#include "ir/ir.h"

int morc_cmd_dump(int argc, char **argv);
int morc_cmd_run(int argc, char **argv);
int morc_cmd_opt(int argc, char **argv);    /* cmd_opt.c */
int morc_cmd_report(int argc, char **argv); /* cmd_report.c */
int morc_cmd_build(int argc, char **argv);  /* build.c */
int morc_build_cuda(int argc, char **argv); /* build_cuda.c: morc build --target cuda */

/* Pass-manager options of a command (cmd_opt.c): 1 when argv[*i] was one,
 * 0 when not, -1 after reporting a usage error (exit 2). */
struct mor_pm_opts;
int morc_pm_option(const char *cmd, struct mor_pm_opts *o, int argc, char **argv, int *i);
/* Graphviz DOT of the IR (dot.c): depths as clusters, fused kernels as
 * boxes, outlined functions as clusters their calls point into. */
void morc_write_dot(mor_buf *b, const mor_module *m);

/* The options of a command that take a value: argv[*i] is "NAME VALUE" or
 * "NAME=VALUE" (long names only) for one of the n names. Then the value is stored in *val,
 * *i moves to the last argument used, and 1 is returned; 0 when argv[*i]
 * is none of them; -1 after a usage error (no value) has been reported. */
typedef struct {
  const char *name;
  const char **val;
} morc_vopt;
int morc_value_option(const char *cmd, const morc_vopt *o, size_t n, int argc, char **argv, int *i);

/* "morc CMD: error: <fmt % arg>" + a pointer to --help; returns 2. */
int morc_die_usage(const char *cmd, const char *fmt, const char *arg);
/* "morc: error: <msg>"; returns 1, or 3 when the message says "internal error:". */
int morc_fail(mor_err *e);
int morc_ends_with(const char *s, const char *suffix);
/* Load IR text (.mor; cfg/w set to NULL) or a model description; verified. */
mor_module *morc_load_any(const char *path, mor_config **cfg, mor_weights **w, mor_err *e);
/* A file morc needs: `given` (the value of option `flag`; an error when it
 * does not exist), else $env, else `rel` relative to the directory of the
 * morc executable, else `built` (where the build put it; may be NULL).
 * Returns a malloc'd path, or NULL with e saying where it looked. */
char *morc_find_file(const char *given, const char *flag, const char *env, const char *rel, const char *built,
                     const char *what, mor_err *e);
/* To stdout when out is NULL, else atomically to the file. */
int morc_write_text_output(const char *out, const mor_buf *b, mor_err *e);
#endif
