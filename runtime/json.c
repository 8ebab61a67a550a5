/* json.c: a strict, recursive-descent JSON reader. Values are built on a
 * scratch stack and copied, once complete, into a chunked arena owned by the
 * document, so freeing is one walk over the chunks. */
#include "json.h"

#include <errno.h>
#include <locale.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unicode.h"

/* ---- arena ----------------------------------------------------------------- */

typedef struct chunk {
  struct chunk *next;
  size_t used, cap;
  max_align_t data[]; /* cap bytes */
} chunk;

struct morrt_json_doc {
  chunk *chunks;
  morrt_json root;
};

static void *arena_alloc(morrt_json_doc *doc, size_t n) {
  n = (n + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
  if (n == 0)
    n = sizeof(max_align_t);
  chunk *c = doc->chunks;
  if (!c || c->cap - c->used < n) {
    size_t cap = n > (size_t)1 << 16 ? n : (size_t)1 << 16;
    if (cap > SIZE_MAX - sizeof(chunk))
      return NULL;
    c = malloc(sizeof(chunk) + cap);
    if (!c)
      return NULL;
    c->used = 0;
    c->cap = cap;
    c->next = doc->chunks;
    doc->chunks = c;
  }
  void *p = (char *)c->data + c->used;
  c->used += n;
  return p;
}

/* ---- parser state ---------------------------------------------------------- */

typedef struct key {
  const char *s;
  size_t len;
} key;

typedef struct parser {
  const unsigned char *start, *end, *p;
  const unsigned char *line_start;
  int line;
  int depth, max_depth;
  morrt_json_doc *doc;
  morrt_json *vals; /* scratch stack of finished child values */
  size_t nvals, capvals;
  key *keys; /* scratch stack of object keys */
  size_t nkeys, capkeys;
  char *err;
  size_t errlen;
} parser;

/* Print a byte for a message: 'x' if printable ASCII, else U+XXXX / byte 0xXX. */
static void describe_at(const parser *ps, const unsigned char *q, char *buf, size_t n) {
  if (q >= ps->end) {
    snprintf(buf, n, "end of input");
    return;
  }
  if (*q >= 0x20 && *q < 0x7F) {
    snprintf(buf, n, "'%c'", *q);
    return;
  }
  uint32_t cp;
  int l = morrt_utf8_decode(q, (size_t)(ps->end - q), &cp);
  if (cp == MORRT_UNICODE_BAD && l == 1)
    snprintf(buf, n, "byte 0x%02X", *q);
  else
    snprintf(buf, n, "U+%04X", (unsigned)cp);
}

/* Fill the error message for a problem at byte q (on the current line). */
static int fail_at(parser *ps, const unsigned char *q, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail_at(parser *ps, const unsigned char *q, const char *fmt, ...) {
  if (!ps->err || ps->errlen == 0)
    return -1;
  if (q > ps->end)
    q = ps->end;
  size_t col = (size_t)(q - ps->line_start) + 1;
  int k = snprintf(ps->err, ps->errlen, "%d:%zu: ", ps->line, col);
  if (k < 0 || (size_t)k >= ps->errlen)
    return -1;
  va_list ap;
  va_start(ap, fmt);
  int m = vsnprintf(ps->err + k, ps->errlen - (size_t)k, fmt, ap);
  va_end(ap);
  if (m < 0 || (size_t)(k + m) >= ps->errlen)
    return -1;
  size_t used = (size_t)(k + m);
  /* The source line (a window of it around q), then a caret under q. */
  const unsigned char *a = ps->line_start, *b = q;
  if (q - a > 40)
    a = q - 40;
  while (b < ps->end && *b != '\n' && *b != '\r' && b - q < 30)
    b++;
  char line[96], caret[64];
  size_t nl = 0, nc = 0;
  for (const unsigned char *r = a; r < b && nl + 1 < sizeof line; r++) {
    line[nl++] = (*r >= 0x20 && *r < 0x7F) ? (char)*r : (*r == '\t' ? ' ' : '?');
    if (r < q && nc + 2 < sizeof caret)
      caret[nc++] = ' ';
  }
  line[nl] = 0;
  caret[nc++] = '^';
  caret[nc] = 0;
  snprintf(ps->err + used, ps->errlen - used, "\n  %s\n  %s", line, caret);
  return -1;
}

static int oom(parser *ps) { return fail_at(ps, ps->p, "out of memory"); }

static void skip_ws(parser *ps) {
  const unsigned char *p = ps->p, *end = ps->end;
  while (p < end) {
    if (*p == ' ' || *p == '\t' || *p == '\r') {
      p++;
    } else if (*p == '\n') {
      p++;
      ps->line++;
      ps->line_start = p;
    } else {
      break;
    }
  }
  ps->p = p;
}

static int push_val(parser *ps, const morrt_json *v) {
  if (ps->nvals == ps->capvals) {
    size_t cap = ps->capvals ? ps->capvals * 2 : 64;
    morrt_json *nv = realloc(ps->vals, cap * sizeof *nv);
    if (!nv)
      return oom(ps);
    ps->vals = nv;
    ps->capvals = cap;
  }
  ps->vals[ps->nvals++] = *v;
  return 0;
}

static int push_key(parser *ps, const char *s, size_t len) {
  if (ps->nkeys == ps->capkeys) {
    size_t cap = ps->capkeys ? ps->capkeys * 2 : 64;
    key *nk = realloc(ps->keys, cap * sizeof *nk);
    if (!nk)
      return oom(ps);
    ps->keys = nk;
    ps->capkeys = cap;
  }
  ps->keys[ps->nkeys].s = s;
  ps->keys[ps->nkeys].len = len;
  ps->nkeys++;
  return 0;
}

/* ---- strings ----------------------------------------------------------------- */

static int hex4(const unsigned char *p, uint32_t *out) {
  uint32_t v = 0;
  for (int i = 0; i < 4; i++) {
    unsigned c = p[i], d;
    if (c >= '0' && c <= '9')
      d = c - '0';
    else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
      d = (c | 0x20) - 'a' + 10;
    else
      return -1;
    v = v << 4 | d;
  }
  *out = v;
  return 0;
}

/* ps->p is at the opening quote. Decodes into the arena. */
static int parse_string(parser *ps, const char **out, size_t *outlen) {
  const unsigned char *open = ps->p, *p = ps->p + 1, *end = ps->end;
  /* First pass: find the closing quote, so we know an upper bound on the size. */
  const unsigned char *q = p;
  while (q < end && *q != '"') {
    if (*q == '\\' && q + 1 < end)
      q++;
    q++;
  }
  if (q >= end)
    return fail_at(ps, open, "unterminated string");
  char *buf = arena_alloc(ps->doc, (size_t)(q - p) + 1);
  if (!buf)
    return oom(ps);
  size_t n = 0;
  while (p < q) {
    unsigned c = *p;
    if (c == '\\') {
      unsigned e = p[1];
      switch (e) {
      case '"': buf[n++] = '"'; p += 2; continue;
      case '\\': buf[n++] = '\\'; p += 2; continue;
      case '/': buf[n++] = '/'; p += 2; continue;
      case 'b': buf[n++] = '\b'; p += 2; continue;
      case 'f': buf[n++] = '\f'; p += 2; continue;
      case 'n': buf[n++] = '\n'; p += 2; continue;
      case 'r': buf[n++] = '\r'; p += 2; continue;
      case 't': buf[n++] = '\t'; p += 2; continue;
      case 'u': break;
      default: {
        char d[32];
        describe_at(ps, p + 1, d, sizeof d);
        return fail_at(ps, p, "invalid escape '\\' followed by %s in string", d);
      }
      }
      uint32_t cp, lo;
      if (q - p < 6 || hex4(p + 2, &cp) != 0)
        return fail_at(ps, p, "\\u must be followed by four hex digits");
      if (cp >= 0xDC00 && cp <= 0xDFFF)
        return fail_at(ps, p, "unpaired low surrogate \\u%04X in string", (unsigned)cp);
      if (cp >= 0xD800 && cp <= 0xDBFF) {
        if (q - p < 12 || p[6] != '\\' || p[7] != 'u' || hex4(p + 8, &lo) != 0 || lo < 0xDC00 || lo > 0xDFFF)
          return fail_at(ps, p, "high surrogate \\u%04X not followed by a \\u low surrogate", (unsigned)cp);
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        p += 12;
      } else {
        p += 6;
      }
      n += (size_t)morrt_utf8_encode(cp, (unsigned char *)buf + n);
    } else if (c < 0x20) {
      return fail_at(ps, p, "control character U+%04X in string (it must be escaped)", c);
    } else if (c < 0x80) {
      buf[n++] = (char)c;
      p++;
    } else {
      uint32_t cp;
      int l = morrt_utf8_decode(p, (size_t)(q - p), &cp);
      if (cp == MORRT_UNICODE_BAD && l == 1)
        return fail_at(ps, p, "invalid UTF-8 (byte 0x%02X) in string", c);
      memcpy(buf + n, p, (size_t)l);
      n += (size_t)l;
      p += l;
    }
  }
  buf[n] = 0;
  ps->p = q + 1;
  *out = buf;
  *outlen = n;
  return 0;
}

/* ---- numbers ----------------------------------------------------------------- */

static int is_digit(const unsigned char *p, const unsigned char *end) { return p < end && *p >= '0' && *p <= '9'; }

static int parse_number(parser *ps, double *out) {
  const unsigned char *start = ps->p, *p = ps->p, *end = ps->end;
  if (p < end && *p == '-')
    p++;
  if (!is_digit(p, end))
    return fail_at(ps, p, "expected a digit in number");
  if (*p == '0') {
    p++;
    if (is_digit(p, end))
      return fail_at(ps, start, "leading zeros are not allowed in numbers");
  } else {
    while (is_digit(p, end))
      p++;
  }
  if (p < end && *p == '.') {
    p++;
    if (!is_digit(p, end))
      return fail_at(ps, p, "expected a digit after the decimal point");
    while (is_digit(p, end))
      p++;
  }
  if (p < end && (*p == 'e' || *p == 'E')) {
    p++;
    if (p < end && (*p == '+' || *p == '-'))
      p++;
    if (!is_digit(p, end))
      return fail_at(ps, p, "expected a digit in the exponent");
    while (is_digit(p, end))
      p++;
  }
  /* Convert with strtod on a NUL-terminated copy, using the C locale's '.'
   * even if the program has set another LC_NUMERIC. */
  size_t n = (size_t)(p - start);
  char small[64], *tmp = n < sizeof small ? small : malloc(n + 1);
  if (!tmp)
    return oom(ps);
  memcpy(tmp, start, n);
  tmp[n] = 0;
  const char *dp = localeconv()->decimal_point;
  if (dp && dp[0] && dp[0] != '.' && dp[1] == 0) {
    char *dot = strchr(tmp, '.');
    if (dot)
      *dot = dp[0];
  }
  errno = 0;
  double v = strtod(tmp, NULL);
  int overflow = errno == ERANGE && (v > 1.0 || v < -1.0);
  if (tmp != small)
    free(tmp);
  if (overflow)
    return fail_at(ps, start, "number out of range of a double");
  ps->p = p;
  *out = v;
  return 0;
}

/* ---- values -------------------------------------------------------------------- */

static int parse_value(parser *ps, morrt_json *v);

static int expect_literal(parser *ps, const char *word) {
  size_t n = strlen(word);
  if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0)
    return fail_at(ps, ps->p, "invalid literal (expected '%s')", word);
  ps->p += n;
  return 0;
}

/* After an item of an array or object: 1 when another follows (the ','
 * eaten), 0 at the end (the closing bracket eaten), -1 on an error. */
static int next_item(parser *ps, char close, const char *what) {
  skip_ws(ps);
  if (ps->p < ps->end && *ps->p == ',') {
    ps->p++;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == close)
      return fail_at(ps, ps->p, "trailing comma before '%c'", close);
    return 1;
  }
  if (ps->p < ps->end && *ps->p == close) {
    ps->p++;
    return 0;
  }
  char d[32];
  describe_at(ps, ps->p, d, sizeof d);
  return fail_at(ps, ps->p, "expected ',' or '%c' in %s, found %s", close, what, d);
}

static int parse_array(parser *ps, morrt_json *v) {
  size_t base = ps->nvals;
  ps->p++; /* '[' */
  skip_ws(ps);
  if (ps->p < ps->end && *ps->p == ']') {
    ps->p++;
    v->len = 0;
    v->u.items = NULL;
    return 0;
  }
  for (;;) {
    morrt_json item;
    skip_ws(ps);
    if (parse_value(ps, &item) || push_val(ps, &item))
      return -1;
    int more = next_item(ps, ']', "array");
    if (more < 0)
      return -1;
    if (!more)
      break;
  }
  size_t n = ps->nvals - base;
  morrt_json *items = arena_alloc(ps->doc, n * sizeof *items);
  if (!items)
    return oom(ps);
  memcpy(items, ps->vals + base, n * sizeof *items);
  ps->nvals = base;
  v->len = n;
  v->u.items = items;
  return 0;
}

static int parse_object(parser *ps, morrt_json *v) {
  size_t vbase = ps->nvals, kbase = ps->nkeys;
  ps->p++; /* '{' */
  skip_ws(ps);
  if (ps->p < ps->end && *ps->p == '}') {
    ps->p++;
    v->len = 0;
    v->u.members = NULL;
    return 0;
  }
  for (;;) {
    skip_ws(ps);
    if (ps->p >= ps->end || *ps->p != '"') {
      char d[32];
      describe_at(ps, ps->p, d, sizeof d);
      return fail_at(ps, ps->p, "expected a string key in object, found %s", d);
    }
    const char *k;
    size_t klen;
    if (parse_string(ps, &k, &klen) || push_key(ps, k, klen))
      return -1;
    skip_ws(ps);
    if (ps->p >= ps->end || *ps->p != ':') {
      char d[32];
      describe_at(ps, ps->p, d, sizeof d);
      return fail_at(ps, ps->p, "expected ':' after object key, found %s", d);
    }
    ps->p++;
    skip_ws(ps);
    morrt_json item;
    if (parse_value(ps, &item) || push_val(ps, &item))
      return -1;
    int more = next_item(ps, '}', "object");
    if (more < 0)
      return -1;
    if (!more)
      break;
  }
  size_t n = ps->nvals - vbase;
  morrt_json_member *m = arena_alloc(ps->doc, n * sizeof *m);
  if (!m)
    return oom(ps);
  for (size_t i = 0; i < n; i++) {
    m[i].key = ps->keys[kbase + i].s;
    m[i].key_len = ps->keys[kbase + i].len;
    m[i].value = ps->vals[vbase + i];
  }
  ps->nvals = vbase;
  ps->nkeys = kbase;
  v->len = n;
  v->u.members = m;
  return 0;
}

static int parse_value(parser *ps, morrt_json *v) {
  memset(v, 0, sizeof *v);
  v->line = ps->line;
  v->col = (int)(ps->p - ps->line_start) + 1;
  if (ps->p >= ps->end)
    return fail_at(ps, ps->p, "expected a JSON value, found end of input");
  int rc;
  switch (*ps->p) {
  case '{':
  case '[':
    if (ps->depth >= ps->max_depth)
      return fail_at(ps, ps->p, "nesting deeper than %d levels", ps->max_depth);
    ps->depth++;
    if (*ps->p == '{') {
      v->type = MORRT_JSON_OBJECT;
      rc = parse_object(ps, v);
    } else {
      v->type = MORRT_JSON_ARRAY;
      rc = parse_array(ps, v);
    }
    ps->depth--;
    return rc;
  case '"':
    v->type = MORRT_JSON_STRING;
    return parse_string(ps, &v->u.string, &v->len);
  case 't':
    v->type = MORRT_JSON_BOOL;
    v->u.boolean = 1;
    return expect_literal(ps, "true");
  case 'f':
    v->type = MORRT_JSON_BOOL;
    v->u.boolean = 0;
    return expect_literal(ps, "false");
  case 'n':
    v->type = MORRT_JSON_NULL;
    return expect_literal(ps, "null");
  default:
    if (*ps->p == '-' || (*ps->p >= '0' && *ps->p <= '9')) {
      v->type = MORRT_JSON_NUMBER;
      return parse_number(ps, &v->u.number);
    }
    char d[32];
    describe_at(ps, ps->p, d, sizeof d);
    return fail_at(ps, ps->p, "expected a JSON value, found %s", d);
  }
}

/* ---- public API ---------------------------------------------------------------- */

morrt_json_doc *morrt_json_parse(const char *text, size_t len, int max_depth, char *err, size_t errlen) {
  static const unsigned char empty[1] = {0};
  if (err && errlen)
    err[0] = 0;
  parser ps;
  memset(&ps, 0, sizeof ps);
  ps.start = text ? (const unsigned char *)text : empty;
  ps.end = ps.start + (text ? len : 0);
  ps.p = ps.line_start = ps.start;
  ps.line = 1;
  ps.max_depth = max_depth > 0 ? max_depth : MORRT_JSON_DEFAULT_DEPTH;
  if (ps.max_depth > MORRT_JSON_MAX_DEPTH)
    ps.max_depth = MORRT_JSON_MAX_DEPTH;
  ps.err = err;
  ps.errlen = errlen;
  ps.doc = calloc(1, sizeof *ps.doc);
  if (!ps.doc) {
    if (err && errlen)
      snprintf(err, errlen, "out of memory");
    return NULL;
  }
  if (ps.end - ps.p >= 3 && memcmp(ps.p, "\xEF\xBB\xBF", 3) == 0)
    ps.p += 3, ps.line_start = ps.p;
  skip_ws(&ps);
  int rc = parse_value(&ps, &ps.doc->root);
  if (rc == 0) {
    skip_ws(&ps);
    if (ps.p < ps.end) {
      char d[32];
      describe_at(&ps, ps.p, d, sizeof d);
      rc = fail_at(&ps, ps.p, "unexpected %s after the JSON value", d);
    }
  }
  free(ps.vals);
  free(ps.keys);
  if (rc != 0) {
    morrt_json_free(ps.doc);
    return NULL;
  }
  return ps.doc;
}

morrt_json_doc *morrt_json_parse_file(const char *path, int max_depth, char *err, size_t errlen) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    if (err && errlen)
      snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    return NULL;
  }
  char *buf = NULL;
  size_t len = 0, cap = 0;
  for (;;) {
    if (len == cap) {
      size_t ncap = cap ? cap * 2 : (size_t)1 << 16;
      char *nb = ncap > cap ? realloc(buf, ncap) : NULL;
      if (!nb) {
        free(buf);
        fclose(f);
        if (err && errlen)
          snprintf(err, errlen, "%s: out of memory", path);
        return NULL;
      }
      buf = nb;
      cap = ncap;
    }
    size_t got = fread(buf + len, 1, cap - len, f);
    len += got;
    if (got == 0)
      break;
  }
  int bad = ferror(f);
  fclose(f);
  if (bad) {
    free(buf);
    if (err && errlen)
      snprintf(err, errlen, "%s: read error", path);
    return NULL;
  }
  char msg[1024];
  morrt_json_doc *doc = morrt_json_parse(buf, len, max_depth, msg, sizeof msg);
  free(buf);
  if (!doc && err && errlen)
    snprintf(err, errlen, "%s:%s", path, msg);
  return doc;
}

const morrt_json *morrt_json_root(const morrt_json_doc *doc) { return doc ? &doc->root : NULL; }

void morrt_json_free(morrt_json_doc *doc) {
  if (!doc)
    return;
  chunk *c = doc->chunks;
  while (c) {
    chunk *next = c->next;
    free(c);
    c = next;
  }
  free(doc);
}

const morrt_json *morrt_json_get(const morrt_json *obj, const char *k) {
  if (!obj || obj->type != MORRT_JSON_OBJECT || !k)
    return NULL;
  size_t klen = strlen(k);
  for (size_t i = obj->len; i-- > 0;) {
    const morrt_json_member *m = &obj->u.members[i];
    if (m->key_len == klen && memcmp(m->key, k, klen) == 0)
      return &m->value;
  }
  return NULL;
}

const morrt_json *morrt_json_at(const morrt_json *arr, size_t i) {
  if (!arr || arr->type != MORRT_JSON_ARRAY || i >= arr->len)
    return NULL;
  return &arr->u.items[i];
}

const char *morrt_json_str(const morrt_json *v) {
  return v && v->type == MORRT_JSON_STRING ? v->u.string : NULL;
}

int morrt_json_int(const morrt_json *v, long long lo, long long hi, long long *out) {
  if (!v || v->type != MORRT_JSON_NUMBER)
    return 0;
  double d = v->u.number;
  if (!(d >= -9007199254740992.0 && d <= 9007199254740992.0) || d != (double)(long long)d)
    return 0;
  long long x = (long long)d;
  if (x < lo || x > hi)
    return 0;
  *out = x;
  return 1;
}

const char *morrt_json_type_name(morrt_json_type t) {
  switch (t) {
  case MORRT_JSON_NULL: return "null";
  case MORRT_JSON_BOOL: return "boolean";
  case MORRT_JSON_NUMBER: return "number";
  case MORRT_JSON_STRING: return "string";
  case MORRT_JSON_ARRAY: return "array";
  case MORRT_JSON_OBJECT: return "object";
  }
  return "?";
}
