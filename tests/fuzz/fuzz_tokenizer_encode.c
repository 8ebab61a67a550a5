/* fuzz_tokenizer_encode.c: encoding arbitrary bytes with the byte-level BPE
 * test tokenizer (tests/data/tokenizer/tokenizer.json). Every id is below
 * the vocab size, and decoding gives back exactly the input bytes. */
#include "tests/fuzz/fuzz.h"
#include "runtime/tokenizer.h"

#ifndef MORC_FUZZ_TOKENIZER
#error "MORC_FUZZ_TOKENIZER must name the tokenizer.json to use"
#endif

static morrt_tokenizer *tok;

static void cleanup(void) { morrt_tokenizer_free(tok); }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!tok) {
    char err[512];
    tok = morrt_tokenizer_load(MORC_FUZZ_TOKENIZER, err, sizeof err);
    FUZZ_CHECK(tok, "%s", err);
    atexit(cleanup);
  }
  int32_t *ids = NULL;
  size_t n = 0;
  FUZZ_CHECK(morrt_tokenizer_encode(tok, (const char *)data, size, &ids, &n) == 0, "encode failed");
  int32_t V = morrt_tokenizer_vocab_size(tok);
  for (size_t i = 0; i < n; i++) FUZZ_CHECK(ids[i] >= 0 && ids[i] < V, "id %d outside [0, %d)", ids[i], V);
  size_t len = 0;
  char *back = morrt_tokenizer_decode(tok, ids, n, &len);
  FUZZ_CHECK(back, "decode failed");
  FUZZ_CHECK(len == size && memcmp(back, data, size) == 0, "decode(encode(x)) != x (%zu bytes in, %zu out)", size, len);
  free(back);
  free(ids);
  return 0;
}
