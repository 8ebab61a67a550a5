/* util.h: small helpers shared by the compiler: errors that say where and
 * what, checked allocation, growable byte buffers, f16/bf16 conversion. */
#ifndef MOR_UTIL_H
#define MOR_UTIL_H
#include <stddef.h>
#include <stdint.h>
#include <stdarg.h>

/* An error message, filled by the function that failed. The text carries
 * where (file, JSON path, tensor name, file:line:col) and what. */
typedef struct mor_err {
  char msg[2048];
} mor_err;

void mor_errf(mor_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prefix an existing message: "<prefix>: <old msg>". */
void mor_err_prefix(mor_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A name from an input file made safe to show in a message: printable
 * ASCII and well-formed UTF-8 kept; double quotes, backslashes, control
 * bytes, bytes that are not UTF-8 and bidi controls escaped as in IR text
 * (\" \\ \n \t \xHH); cut with "..." to fit n bytes. Returns buf. */
const char *mor_esc(const char *s, char *buf, size_t n);
/* Bytes of the character at s (n bytes available) when it is printable
 * ASCII (1) or a well-formed UTF-8 sequence (2..4); 0 for control bytes,
 * bidi controls (U+200E/F, U+202A-E, U+2066-9), stray bytes and a sequence
 * cut short. */
int mor_utf8_char(const char *s, size_t n);

/* Warnings go to stderr as "morc: warning: ..." unless silenced. */
extern int mor_quiet_warnings;
void mor_warnf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

void *mor_xmalloc(size_t n);
void *mor_xcalloc(size_t n, size_t sz);
void *mor_xrealloc(void *p, size_t n);
char *mor_xstrdup(const char *s);
char *mor_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Growable text/byte buffer. */
typedef struct mor_buf {
  char *data;
  size_t len, cap;
} mor_buf;
void mor_buf_putc(mor_buf *b, char c);
void mor_buf_puts(mor_buf *b, const char *s);
void mor_buf_write(mor_buf *b, const void *p, size_t n);
void mor_buf_printf(mor_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void mor_buf_free(mor_buf *b);
/* For generated C (and CUDA C) source: s as the body of a string literal,
 * printable ASCII kept and '"', '\\', '?' and every other byte as a 3-digit
 * octal escape (no trigraph, hex run or line break can form); and s as text
 * inside a comment, escaped as by mor_esc with every "*" "/" pair split. */
void mor_buf_c_string(mor_buf *b, const char *s);
void mor_buf_c_comment(mor_buf *b, const char *s);

/* Multiply/add sizes, returning -1 on 64-bit overflow. */
int mor_mul_overflow(uint64_t a, uint64_t b, uint64_t *out);

float mor_f16_to_f32(uint16_t h);
float mor_bf16_to_f32(uint16_t h);
uint16_t mor_f32_to_bf16(float f);
uint16_t mor_f32_to_f16(float f);

/* Read a whole file; NULL + error on failure. */
char *mor_read_file(const char *path, size_t *len, mor_err *err);
/* Write a file atomically: to "<path>.tmp.<pid>", then rename. */
int mor_write_file_atomic(const char *path, const void *data, size_t len, mor_err *err);
/* Directory part of a path ("." if none); caller frees. */
char *mor_dirname(const char *path);
/* Join dir and a relative path (absolute rel is returned as is); caller frees. */
char *mor_path_join(const char *dir, const char *rel);

#endif

#ifndef MOR_DTYPE_DEFINED
#define MOR_DTYPE_DEFINED
/* Element types, shared by the frontend, the IR and the backends. */
typedef enum mor_dtype { MOR_F32, MOR_F16, MOR_BF16, MOR_I32, MOR_I64, MOR_DTYPE_COUNT } mor_dtype;
const char *mor_dtype_name(mor_dtype t); /* "f32", "f16", "bf16", "i32", "i64" */
int mor_dtype_size(mor_dtype t);          /* bytes per element */
#endif
