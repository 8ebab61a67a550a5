/* driver.c: helpers shared by the morc commands: usage errors, error
 * reporting, loading a model or IR file, writing outputs atomically. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tools/commands.h"

int morc_die_usage(const char *cmd, const char *fmt, const char *arg) {
  fprintf(stderr, "morc%s%s: error: ", cmd ? " " : "", cmd ? cmd : "");
  fprintf(stderr, fmt, arg);
  fprintf(stderr, "\n(see 'morc %s%s--help')\n", cmd ? cmd : "", cmd ? " " : "");
  return 2;
}

int morc_value_option(const char *cmd, const morc_vopt *o, size_t n, int argc, char **argv, int *i) {
  const char *a = argv[*i];
  for (size_t j = 0; j < n; j++) {
    size_t l = strlen(o[j].name);
    if (strncmp(a, o[j].name, l) != 0) continue;
    if (a[l] == '=' && a[1] == '-') { /* --name=value; not -o=value */
      *o[j].val = a + l + 1;
      return 1;
    }
    if (a[l]) continue;
    if (*i + 1 >= argc) return morc_die_usage(cmd, "%s needs a value", a), -1;
    *o[j].val = argv[++*i];
    return 1;
  }
  return 0;
}

/* Exit code 3 for a message that says "internal error:" before any quoted
 * name or '@' (so a name from an input file cannot make it one), else 1. */
int morc_fail(mor_err *e) {
  fprintf(stderr, "morc: error: %s\n", e->msg);
  const char *ie = strstr(e->msg, "internal error:");
  return ie && !memchr(e->msg, '\'', (size_t)(ie - e->msg)) && !memchr(e->msg, '"', (size_t)(ie - e->msg)) &&
                 !memchr(e->msg, '@', (size_t)(ie - e->msg))
             ? 3
             : 1;
}

int morc_ends_with(const char *s, const char *suf) {
  size_t a = strlen(s), b = strlen(suf);
  return a >= b && strcmp(s + a - b, suf) == 0;
}

/* Load MODEL: IR text (.mor) or a model description. w/cfg are NULL for IR. */
mor_module *morc_load_any(const char *path, mor_config **cfg, mor_weights **w, mor_err *e) {
  *cfg = NULL;
  *w = NULL;
  if (morc_ends_with(path, ".mor")) {
    size_t len;
    char *text = mor_read_file(path, &len, e);
    if (!text) return NULL;
    mor_module *m = mor_parse_module(text, len, path, e);
    free(text);
    if (m && mor_verify_module(m, e) != 0) {
      mor_module_free(m);
      return NULL;
    }
    return m;
  }
  mor_module *m = mor_load_model(path, cfg, w, e);
  if (m && mor_verify_module(m, e) != 0) {
    mor_err_prefix(e, "internal error: the lowered IR does not verify");
    mor_module_free(m);
    mor_weights_free(*w);
    mor_config_free(*cfg);
    *w = NULL;
    *cfg = NULL;
    return NULL;
  }
  return m;
}

int morc_write_text_output(const char *out, const mor_buf *b, mor_err *e) {
  if (!out) {
    fwrite(b->data, 1, b->len, stdout);
    return 0;
  }
  return mor_write_file_atomic(out, b->data, b->len, e);
}


static int file_exists(const char *p) {
  struct stat sb;
  return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

char *morc_find_file(const char *given, const char *flag, const char *env, const char *rel, const char *built,
                     const char *what, mor_err *e) {
  if (given) {
    if (file_exists(given)) return mor_xstrdup(given);
    mor_errf(e, "%s %s: no such file", flag, given);
    return NULL;
  }
  const char *ev = getenv(env);
  if (ev && file_exists(ev)) return mor_xstrdup(ev);
  char exe[PATH_MAX];
  ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (k > 0) {
    exe[k] = 0;
    char *dir = mor_dirname(exe);
    char *p = mor_xasprintf("%s/%s", dir, rel);
    free(dir);
    if (file_exists(p)) return p;
    free(p);
  }
  if (built && file_exists(built)) return mor_xstrdup(built);
  mor_errf(e, "cannot find %s (looked for %s beside morc); pass %s FILE or set %s", what, rel, flag, env);
  return NULL;
}
