/* fuzz.h: what the libFuzzer harnesses of tests/fuzz share: the entry
 * point, and checks that every error message says where and is safe to
 * print (no control bytes but newlines, no bytes that are not UTF-8). */
#ifndef MORC_FUZZ_H
#define MORC_FUZZ_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A property the input broke: print why and abort, so libFuzzer keeps it. */
#define FUZZ_CHECK(cond, ...)                                                                                        \
  do {                                                                                                               \
    if (!(cond)) {                                                                                                   \
      fprintf(stderr, "fuzz check failed: %s: ", #cond);                                                             \
      fprintf(stderr, __VA_ARGS__);                                                                                  \
      fputc('\n', stderr);                                                                                           \
      abort();                                                                                                       \
    }                                                                                                                \
  } while (0)

/* An error message: not empty, starts with `where`, every byte printable or
 * a newline, and well-formed UTF-8. */
static inline void fuzz_check_message(const char *msg, const char *where) {
  FUZZ_CHECK(msg[0] != 0, "empty error message");
  FUZZ_CHECK(!where || strncmp(msg, where, strlen(where)) == 0, "message does not start with '%s': %s", where, msg);
  for (const unsigned char *p = (const unsigned char *)msg; *p; p++) {
    FUZZ_CHECK(*p >= 0x20 || *p == '\n', "control byte 0x%02x in message: %s", *p, msg);
    FUZZ_CHECK(*p != 0x7f, "DEL byte in message: %s", msg);
    if (*p >= 0x80) { /* a well-formed UTF-8 sequence */
      int n = *p >= 0xf0 ? 4 : *p >= 0xe0 ? 3 : *p >= 0xc0 ? 2 : 0;
      FUZZ_CHECK(n && *p <= 0xf4 && *p >= 0xc2, "byte 0x%02x is not UTF-8 in message: %s", *p, msg);
      for (int i = 1; i < n; i++) FUZZ_CHECK((p[i] & 0xc0) == 0x80, "broken UTF-8 sequence in message: %s", msg);
      p += n - 1;
    }
  }
}

/* data as a NUL-terminated string (caller frees). */
static inline char *fuzz_strndup(const uint8_t *data, size_t size) {
  char *s = malloc(size + 1);
  if (!s) abort();
  memcpy(s, data, size);
  s[size] = 0;
  return s;
}
#endif
