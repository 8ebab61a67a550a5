/* unicode.c: UTF-8 decoding and the \p{L}, \p{N}, \s classes used by the
 * tokenizer's hand-written GPT-2 / Llama-3 pre-token splitters. The non-ASCII
 * tables are generated (unicode_tables.inc, by gen_unicode.py). */
#include "unicode.h"

typedef struct morrt_cp_range {
  uint32_t lo, hi; /* inclusive */
} morrt_cp_range;

#include "unicode_tables.inc"

int morrt_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp) {
  unsigned c = s[0];
  if (c < 0x80) {
    *cp = c;
    return 1;
  }
  int len;
  uint32_t v, min;
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2, v = c & 0x1F, min = 0x80;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3, v = c & 0x0F, min = 0x800;
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4, v = c & 0x07, min = 0x10000;
  } else {
    *cp = MORRT_UNICODE_BAD;
    return 1;
  }
  if ((size_t)len > n) {
    *cp = MORRT_UNICODE_BAD;
    return 1;
  }
  for (int i = 1; i < len; i++) {
    if ((s[i] & 0xC0) != 0x80) {
      *cp = MORRT_UNICODE_BAD;
      return 1;
    }
    v = (v << 6) | (s[i] & 0x3F);
  }
  if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) {
    *cp = MORRT_UNICODE_BAD;
    return 1;
  }
  *cp = v;
  return len;
}

int morrt_utf8_encode(uint32_t cp, unsigned char *out) {
  if (cp < 0x80) {
    out[0] = (unsigned char)cp;
    return 1;
  }
  if (cp < 0x800) {
    out[0] = (unsigned char)(0xC0 | (cp >> 6));
    out[1] = (unsigned char)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    out[0] = (unsigned char)(0xE0 | (cp >> 12));
    out[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    out[2] = (unsigned char)(0x80 | (cp & 0x3F));
    return 3;
  }
  out[0] = (unsigned char)(0xF0 | (cp >> 18));
  out[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
  out[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
  out[3] = (unsigned char)(0x80 | (cp & 0x3F));
  return 4;
}

static int in_ranges(const morrt_cp_range *r, size_t n, uint32_t cp) {
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (cp < r[mid].lo)
      hi = mid;
    else if (cp > r[mid].hi)
      lo = mid + 1;
    else
      return 1;
  }
  return 0;
}

int morrt_unicode_is_letter(uint32_t cp) {
  if (cp < 0x80)
    return (cp | 0x20) >= 'a' && (cp | 0x20) <= 'z';
  return in_ranges(letter_ranges, sizeof letter_ranges / sizeof letter_ranges[0], cp);
}

int morrt_unicode_is_number(uint32_t cp) {
  if (cp < 0x80)
    return cp >= '0' && cp <= '9';
  return in_ranges(number_ranges, sizeof number_ranges / sizeof number_ranges[0], cp);
}

int morrt_unicode_is_numeric(uint32_t cp) {
  if (cp < 0x80)
    return cp >= '0' && cp <= '9';
  return in_ranges(numeric_ranges, sizeof numeric_ranges / sizeof numeric_ranges[0], cp);
}

int morrt_unicode_is_space(uint32_t cp) {
  if (cp < 0x80)
    return cp == ' ' || (cp >= '\t' && cp <= '\r');
  switch (cp) {
  case 0x85: case 0xA0: case 0x1680: case 0x2028: case 0x2029:
  case 0x202F: case 0x205F: case 0x3000:
    return 1;
  default:
    return cp >= 0x2000 && cp <= 0x200A;
  }
}

const char *morrt_unicode_source(void) { return MORRT_UNICODE_SOURCE; }
