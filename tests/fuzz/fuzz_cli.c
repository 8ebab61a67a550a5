/* fuzz_cli.c: the driver's value parsing (tools/cli.h): the --tokens list,
 * the --chunks list and its check against the token count, the token check
 * against vocab and context, and --max-memory sizes. The input is split at
 * newlines into those three values. */
#include "tests/fuzz/fuzz.h"
#include "tools/cli.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *s = fuzz_strndup(data, size);
  if (strlen(s) != size) { /* an argv string has no NUL inside */
    free(s);
    return 0;
  }
  char *tokens = s, *chunks = NULL, *mem = NULL;
  char *nl = strchr(tokens, '\n');
  if (nl) {
    *nl = 0;
    chunks = nl + 1;
    if ((nl = strchr(chunks, '\n'))) {
      *nl = 0;
      mem = nl + 1;
    }
  }
  mor_err e = {{0}};
  int64_t *toks = NULL, *ch = NULL;
  size_t nt = 0, nc = 0;
  if (mor_cli_parse_ints(tokens, "--tokens", &toks, &nt, &e) == 0) {
    for (size_t i = 0; i < nt; i++) FUZZ_CHECK(toks[i] >= 0, "negative id");
    if (mor_cli_check_tokens(toks, nt, 100, 50, &e) == 0) {
      FUZZ_CHECK(nt <= 50, "too many tokens accepted");
      for (size_t i = 0; i < nt; i++) FUZZ_CHECK(toks[i] < 100, "id %lld accepted", (long long)toks[i]);
    } else {
      fuzz_check_message(e.msg, "--tokens: ");
    }
    if (chunks) {
      if (mor_cli_parse_ints(chunks, "--chunks", &ch, &nc, &e) == 0) {
        if (mor_cli_check_chunks(ch, nc, nt, &e) == 0) {
          size_t sum = 0;
          for (size_t i = 0; i < nc; i++) {
            FUZZ_CHECK(ch[i] >= 1, "empty chunk accepted");
            sum += (size_t)ch[i];
          }
          FUZZ_CHECK(sum == nt, "chunks add up to %zu, not %zu", sum, nt);
        } else {
          fuzz_check_message(e.msg, "--chunks: ");
        }
      } else {
        fuzz_check_message(e.msg, "--chunks: ");
      }
    }
  } else {
    fuzz_check_message(e.msg, "--tokens: ");
  }
  if (mem) {
    uint64_t bytes = 0;
    if (mor_cli_parse_size(mem, "--max-memory", &bytes, &e) != 0) fuzz_check_message(e.msg, "--max-memory: ");
  }
  free(toks);
  free(ch);
  free(s);
  return 0;
}
