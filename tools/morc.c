/* morc.c: the driver. `morc dump | run | opt | report | build`: parses the
 * command line, loads the model, runs the pipeline and the chosen backend.
 * Exit codes: 0 success, 1 bad input, 2 bad usage, 3 internal error. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/commands.h"

#define MORC_VERSION "0.1.0"

static const char *usage_main =
    "usage: morc <command> [options]\n"
    "\n"
    "morc compiles Mixture-of-Recursions (and plain Llama) models.\n"
    "\n"
    "commands:\n"
    "  dump MODEL          print the IR of a model (model.json, config.json or .mor IR text)\n"
    "  run MODEL           run a model on token ids and write its logits\n"
    "  opt FILE.mor        run a pass pipeline on IR text and print IR text (--list-passes)\n"
    "  report MODEL        parameters, FLOPs per depth, KV cache plan and memory plan\n"
    "  build MODEL -o NAME compile to a native executable, library, bundle or .o/.s/.ll (LLVM)\n"
    "\n"
    "options:\n"
    "  -h, --help          show this help (also: morc <command> --help)\n"
    "  --version           print the version\n"
    "\n"
    "Exit codes: 0 success, 1 bad input (model, weights, IR, tokens), 2 bad usage, 3 internal error.\n"
    "See docs/cli.md for the full reference.\n";

int main(int argc, char **argv) {
  if (argc < 2) {
    fputs(usage_main, stderr);
    return 2;
  }
  const char *cmd = argv[1];
  if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
    fputs(usage_main, stdout);
    return 0;
  }
  if (!strcmp(cmd, "--version")) {
    printf("morc %s\n", MORC_VERSION);
    return 0;
  }
  if (!strcmp(cmd, "dump")) return morc_cmd_dump(argc - 2, argv + 2);
  if (!strcmp(cmd, "run")) return morc_cmd_run(argc - 2, argv + 2);
  if (!strcmp(cmd, "opt")) return morc_cmd_opt(argc - 2, argv + 2);
  if (!strcmp(cmd, "report")) return morc_cmd_report(argc - 2, argv + 2);
  if (!strcmp(cmd, "build")) return morc_cmd_build(argc - 2, argv + 2);
  fprintf(stderr, "morc: error: unknown command '%s'\n\n%s", cmd, usage_main);
  return 2;
}
