/* tokenizer.h: byte-level BPE tokenizers loaded from a Hugging Face
 * tokenizer.json (GPT-2, SmolLM, Llama 3, Qwen2-style): text -> token ids ->
 * bytes, with no dependency beyond libc. See docs/tokenizer.md for what is
 * supported and how the pre-tokenizer regexes are reproduced by hand.
 *
 * Typical use:
 *   char err[512];
 *   morrt_tokenizer *tok = morrt_tokenizer_load("tokenizer.json", err, sizeof err);
 *   if (!tok) { fprintf(stderr, "%s\n", err); exit(1); }
 *   int32_t *ids; size_t n;
 *   morrt_tokenizer_encode(tok, text, strlen(text), &ids, &n);
 *   ...                          // generate, printing morrt_tokenizer_token(tok, id)
 *   free(ids);
 *   morrt_tokenizer_free(tok);
 *
 * A loaded tokenizer is read-only: any number of threads may encode and
 * decode with it at once. */
#ifndef MORRT_TOKENIZER_H
#define MORRT_TOKENIZER_H
#include <stddef.h>
#include <stdint.h>

typedef struct morrt_tokenizer morrt_tokenizer;

/* Load a tokenizer.json. On failure returns NULL and writes a message that
 * names the file and the JSON path (e.g. "t.json: model.merges[3]: ...")
 * into err. Anything this runtime cannot reproduce exactly (a WordPiece or
 * Unigram model, a normalizer, an unknown Split regex, ...) is an error. */
morrt_tokenizer *morrt_tokenizer_load(const char *path, char *err, size_t errlen);
/* The same from a tokenizer.json already in memory; name is used in messages. */
morrt_tokenizer *morrt_tokenizer_load_mem(const char *json, size_t len, const char *name, char *err,
                                          size_t errlen);
void morrt_tokenizer_free(morrt_tokenizer *tok);

/* Encode text[0..len) (any bytes; UTF-8 expected) into a malloc'd array of
 * ids (*ids, *n; free() it; *ids may be NULL when *n == 0). Added/special
 * tokens written literally in the text become their ids. No BOS/EOS is added
 * (the post_processor is not applied): prepend one yourself if the model
 * wants it. Returns 0, or -1 when out of memory. */
int morrt_tokenizer_encode(const morrt_tokenizer *tok, const char *text, size_t len, int32_t **ids,
                           size_t *n);

/* Decode ids into a malloc'd NUL-terminated byte string (its length, which
 * excludes the NUL, in *outlen if non-NULL). Special tokens are kept (as
 * their text). Returns NULL for an id that has no token, or out of memory. */
char *morrt_tokenizer_decode(const morrt_tokenizer *tok, const int32_t *ids, size_t n, size_t *outlen);

/* The bytes one token decodes to (NUL-terminated; a token can be part of a
 * UTF-8 sequence, or hold a NUL byte: see morrt_tokenizer_token_len). NULL for
 * an id with no token. Valid until morrt_tokenizer_free. */
const char *morrt_tokenizer_token(const morrt_tokenizer *tok, int32_t id);
size_t morrt_tokenizer_token_len(const morrt_tokenizer *tok, int32_t id);

/* One more than the largest id (vocab and added tokens). */
int32_t morrt_tokenizer_vocab_size(const morrt_tokenizer *tok);

/* The id of the token whose text is exactly s (added tokens first, e.g.
 * "<|endoftext|>", then the vocab by decoded bytes), or -1. */
int32_t morrt_tokenizer_find(const morrt_tokenizer *tok, const char *s);

#endif
