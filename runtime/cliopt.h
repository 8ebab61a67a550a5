/* cliopt.h: the "--name=value" form of options, for the command lines of
 * the programs morc build writes (runtime/main.c, runtime/cuda/runner.c). */
#ifndef MORRT_CLIOPT_H
#define MORRT_CLIOPT_H
#include <stddef.h>
#include <string.h>

/* The option name of argument a: a itself, or, for "--name=value" with a
 * name shorter than n, the name copied into buf and *val set to the value
 * (*val is left alone otherwise). */
static inline const char *morrt_opt_name(const char *a, char *buf, size_t n, const char **val) {
  const char *eq = a[0] == '-' && a[1] == '-' ? strchr(a, '=') : NULL;
  if (!eq || (size_t)(eq - a) >= n) return a;
  memcpy(buf, a, (size_t)(eq - a));
  buf[eq - a] = 0;
  *val = eq + 1;
  return buf;
}
#endif
