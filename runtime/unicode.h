/* unicode.h: the little Unicode the runtime needs: decoding UTF-8 one code
 * point at a time (never failing: a bad byte reads as one U+FFFD of length 1)
 * and the letter / number / white-space classes of the pre-token splitters. */
#ifndef MORRT_UNICODE_H
#define MORRT_UNICODE_H
#include <stddef.h>
#include <stdint.h>

#define MORRT_UNICODE_BAD 0xFFFDu /* what an ill-formed byte decodes to */

/* Decode the code point at s[0..n) (n >= 1) into *cp and return its length in
 * bytes (1..4). Ill-formed input (stray continuation bytes, overlong forms,
 * surrogates, values above U+10FFFF, truncated sequences) gives
 * MORRT_UNICODE_BAD and length 1, so every byte is consumed exactly once. */
int morrt_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp);

/* Encode cp (<= U+10FFFF) as UTF-8 into out[0..4); returns the length. */
int morrt_utf8_encode(uint32_t cp, unsigned char *out);

/* The classes are those of the Hugging Face tokenizers library (see
 * gen_unicode.py), which uses a newer Unicode than many systems. */
/* General category L* (Lu Ll Lt Lm Lo): regex \p{L} in Oniguruma. */
int morrt_unicode_is_letter(uint32_t cp);
/* General category N* (Nd Nl No): regex \p{N} in Oniguruma. */
int morrt_unicode_is_number(uint32_t cp);
/* Rust's char::is_numeric (also Nd Nl No, possibly of a newer Unicode than
 * \p{N}): what the Digits pre-tokenizer splits on. */
int morrt_unicode_is_numeric(uint32_t cp);
/* The White_Space property: regex \s in Oniguruma, Rust's is_whitespace. */
int morrt_unicode_is_space(uint32_t cp);

/* Where the tables come from, e.g. "tokenizers 0.23.3". */
const char *morrt_unicode_source(void);

#endif
