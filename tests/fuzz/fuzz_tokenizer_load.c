/* fuzz_tokenizer_load.c: tokenizer.json loading (morrt_tokenizer_load_mem).
 * A tokenizer that loads must encode and decode a few texts without
 * trouble, every id it produces below its vocab size; one that fails must
 * name the file. */
#include "tests/fuzz/fuzz.h"
#include "runtime/tokenizer.h"

static const char *const texts[] = {"Hello, world! It's 2025.", " \t\n  spaces  ", "<|endoftext|>x<s>", "caf\xc3\xa9 \xe4\xb8\xad\xe6\x96\x87 \xf0\x9f\x99\x82",
                                    "\xff\xfe broken \xc3", ""};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char err[512] = "";
  morrt_tokenizer *tok = morrt_tokenizer_load_mem((const char *)data, size, "fuzz.json", err, sizeof err);
  if (!tok) {
    fuzz_check_message(err, "fuzz.json");
    return 0;
  }
  int32_t V = morrt_tokenizer_vocab_size(tok);
  for (size_t t = 0; t < sizeof texts / sizeof texts[0]; t++) {
    int32_t *ids = NULL;
    size_t n = 0;
    FUZZ_CHECK(morrt_tokenizer_encode(tok, texts[t], strlen(texts[t]), &ids, &n) == 0, "encode failed");
    for (size_t i = 0; i < n; i++) FUZZ_CHECK(ids[i] >= 0 && ids[i] < V, "id %d outside [0, %d)", ids[i], V);
    size_t len = 0;
    char *back = morrt_tokenizer_decode(tok, ids, n, &len);
    free(back);
    free(ids);
  }
  morrt_tokenizer_free(tok);
  return 0;
}
