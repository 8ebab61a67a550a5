/* json.h: a small strict JSON (RFC 8259) reader for the runtime, with no
 * dependency beyond libc. It builds a read-only tree in one arena; errors say
 * line:col and show the line with a caret under the offending byte. */
#ifndef MORRT_JSON_H
#define MORRT_JSON_H
#include <stddef.h>

/* What the reader accepts: exactly RFC 8259 (no comments, no trailing commas,
 * no NaN/Infinity, no leading zeros or '+', no raw control characters in
 * strings, strings must be valid UTF-8, \u escapes must pair surrogates),
 * plus an optional UTF-8 byte-order mark at the very start. Numbers that
 * overflow a double are rejected. Nesting deeper than the depth limit is an
 * error, so no input can exhaust the stack. Any byte sequence is safe to pass. */

#define MORRT_JSON_DEFAULT_DEPTH 256
#define MORRT_JSON_MAX_DEPTH 4096 /* larger requests are clamped (the reader recurses) */

typedef enum morrt_json_type {
  MORRT_JSON_NULL,
  MORRT_JSON_BOOL,
  MORRT_JSON_NUMBER,
  MORRT_JSON_STRING,
  MORRT_JSON_ARRAY,
  MORRT_JSON_OBJECT,
} morrt_json_type;

typedef struct morrt_json morrt_json;
typedef struct morrt_json_member morrt_json_member;

struct morrt_json {
  morrt_json_type type;
  int line, col;                /* where the value starts, 1-based (col counts bytes) */
  size_t len;                   /* STRING: bytes (not counting the NUL); ARRAY/OBJECT: count */
  union {
    int boolean;                /* BOOL */
    double number;              /* NUMBER */
    const char *string;         /* STRING: NUL-terminated, may hold \0 (from \u0000): use len */
    const morrt_json *items;    /* ARRAY: len values */
    const morrt_json_member *members; /* OBJECT: len members, in document order */
  } u;
};

struct morrt_json_member {
  const char *key; /* NUL-terminated */
  size_t key_len;
  morrt_json value;
};

typedef struct morrt_json_doc morrt_json_doc;

/* Parse text[0..len). max_depth <= 0 means MORRT_JSON_DEFAULT_DEPTH. On error
 * returns NULL and writes "line:col: message" (plus the source line and a
 * caret) into err (if errlen > 0). */
morrt_json_doc *morrt_json_parse(const char *text, size_t len, int max_depth, char *err, size_t errlen);
/* Read and parse a file; errors read "path:line:col: message". */
morrt_json_doc *morrt_json_parse_file(const char *path, int max_depth, char *err, size_t errlen);
const morrt_json *morrt_json_root(const morrt_json_doc *doc);
void morrt_json_free(morrt_json_doc *doc);

/* Object member by key (NUL-terminated; for a repeated key the last one wins),
 * or NULL when obj is NULL, not an object, or has no such key. */
const morrt_json *morrt_json_get(const morrt_json *obj, const char *key);
/* Array element i, or NULL when arr is NULL, not an array, or i is out of range. */
const morrt_json *morrt_json_at(const morrt_json *arr, size_t i);
/* The string of a STRING value, or NULL for anything else (including NULL). */
const char *morrt_json_str(const morrt_json *v);
/* 1 if v is a NUMBER holding an integer in [lo, hi] (stored in *out), else 0. */
int morrt_json_int(const morrt_json *v, long long lo, long long hi, long long *out);
/* "null", "boolean", "number", "string", "array", "object". */
const char *morrt_json_type_name(morrt_json_type t);

#endif
