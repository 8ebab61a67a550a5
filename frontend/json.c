/* json.c: JSON parsing with line:col errors and the wording of
 * "expected X, got Y" messages, shared by config.c and safetensors.c. */
#include "frontend/json.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/* Report a parse failure at byte offset pos of text. */
static void parse_error(const char *where, const char *text, size_t len, size_t pos, const char *what, mor_err *err) {
  if (pos > len) pos = len;
  int line = 1;
  size_t bol = 0;
  for (size_t i = 0; i < pos; i++)
    if (text[i] == '\n') {
      line++;
      bol = i + 1;
    }
  size_t eol = pos; /* not from bol: a '\r' before pos would end the line before the column */
  while (eol < len && text[eol] != '\n' && text[eol] != '\r') eol++;
  size_t col = pos - bol + 1;
  /* Show at most 100 characters of the line, around the column. */
  size_t from = bol, shown;
  if (col > 80) from = pos - 60;
  shown = eol - from;
  if (shown > 100) shown = 100;
  char unexpected[64];
  if (what) {
    snprintf(unexpected, sizeof unexpected, "%s", what);
  } else if (pos >= len || text[pos] == '\0') {
    snprintf(unexpected, sizeof unexpected, "unexpected end of input");
  } else if ((unsigned char)text[pos] >= 0x20 && (unsigned char)text[pos] < 0x7f) {
    snprintf(unexpected, sizeof unexpected, "unexpected '%c'", text[pos]);
  } else {
    snprintf(unexpected, sizeof unexpected, "unexpected byte 0x%02x", (unsigned char)text[pos]);
  }
  /* The line as shown: UTF-8 kept, control bytes as ' ', stray bytes as '?';
   * the caret counts characters. */
  char linebuf[128];
  size_t k = 0, caret = 0;
  for (size_t i = 0; i < shown && k + 5 < sizeof linebuf;) {
    unsigned char c = (unsigned char)text[from + i];
    int n = mor_utf8_char(text + from + i, shown - i);
    if (from + i < pos) caret++;
    if (n) {
      memcpy(linebuf + k, text + from + i, (size_t)n);
      k += (size_t)n;
      i += (size_t)n;
    } else {
      linebuf[k++] = c < 0x20 || c == 0x7f ? ' ' : '?';
      i++;
    }
  }
  linebuf[k] = 0;
  mor_errf(err, "%s:%d:%zu: malformed JSON (%s)\n  %s\n  %*s^", where, line, col, unexpected, linebuf, (int)caret, "");
}

/* A strict JSON syntax scan that runs only after cJSON failed, to find the
 * exact place and the reason (cJSON says neither precisely). */
typedef struct scan {
  const char *s;
  size_t n, i;
  char why[96];
} scan;

static void sc_ws(scan *c) {
  while (c->i < c->n && is_ws(c->s[c->i])) c->i++;
}

/* "got ','" or "got end of input" after an expectation. */
static int sc_fail(scan *c, const char *expected) {
  if (c->i >= c->n || c->s[c->i] == '\0')
    snprintf(c->why, sizeof c->why, "expected %s, got end of input", expected);
  else if ((unsigned char)c->s[c->i] >= 0x20 && (unsigned char)c->s[c->i] < 0x7f)
    snprintf(c->why, sizeof c->why, "expected %s, got '%c'", expected, c->s[c->i]);
  else
    snprintf(c->why, sizeof c->why, "expected %s, got byte 0x%02x", expected, (unsigned char)c->s[c->i]);
  return -1;
}

static int sc_string(scan *c) {
  c->i++; /* the opening quote */
  while (c->i < c->n) {
    unsigned char ch = (unsigned char)c->s[c->i];
    if (ch == '"') {
      c->i++;
      return 0;
    }
    if (ch < 0x20) return sc_fail(c, "a closing '\"' (control characters must be escaped)");
    if (ch == '\\') {
      c->i++;
      if (c->i >= c->n) break;
      char e = c->s[c->i];
      if (e == 'u') {
        for (int k = 1; k <= 4; k++) {
          char h = c->i + (size_t)k < c->n ? c->s[c->i + (size_t)k] : 0;
          if (!((h >= '0' && h <= '9') || (h >= 'a' && h <= 'f') || (h >= 'A' && h <= 'F'))) {
            c->i += (size_t)k;
            return sc_fail(c, "four hex digits after \\u");
          }
        }
        c->i += 4;
      } else if (!strchr("\"\\/bfnrt", e) || !e) {
        return sc_fail(c, "one of \"\\/bfnrtu after a backslash");
      }
    }
    c->i++;
  }
  return sc_fail(c, "a closing '\"'");
}

static int is_digit(char ch) { return ch >= '0' && ch <= '9'; }

static int sc_number(scan *c) {
  if (c->s[c->i] == '-') c->i++;
  if (c->i < c->n && c->s[c->i] == '0') {
    c->i++;
  } else {
    if (c->i >= c->n || !is_digit(c->s[c->i])) return sc_fail(c, "a digit");
    while (c->i < c->n && is_digit(c->s[c->i])) c->i++;
  }
  if (c->i < c->n && c->s[c->i] == '.') {
    c->i++;
    if (c->i >= c->n || !is_digit(c->s[c->i])) return sc_fail(c, "a digit after '.'");
    while (c->i < c->n && is_digit(c->s[c->i])) c->i++;
  }
  if (c->i < c->n && (c->s[c->i] == 'e' || c->s[c->i] == 'E')) {
    c->i++;
    if (c->i < c->n && (c->s[c->i] == '+' || c->s[c->i] == '-')) c->i++;
    if (c->i >= c->n || !is_digit(c->s[c->i])) return sc_fail(c, "a digit in the exponent");
    while (c->i < c->n && is_digit(c->s[c->i])) c->i++;
  }
  return 0;
}

static int sc_value(scan *c, int depth) {
  sc_ws(c);
  if (depth > CJSON_NESTING_LIMIT) {
    snprintf(c->why, sizeof c->why, "nested more than %d deep", CJSON_NESTING_LIMIT);
    return -1;
  }
  if (c->i >= c->n) return sc_fail(c, "a value");
  char ch = c->s[c->i];
  if (ch == '"') return sc_string(c);
  if (ch == '-' || is_digit(ch)) return sc_number(c);
  static const char *const lits[] = {"true", "false", "null"};
  for (int k = 0; k < 3; k++) {
    size_t m = strlen(lits[k]);
    if (ch == lits[k][0]) {
      if (c->n - c->i >= m && !memcmp(c->s + c->i, lits[k], m)) {
        c->i += m;
        return 0;
      }
      return sc_fail(c, "a value");
    }
  }
  if (ch == '[') {
    c->i++;
    sc_ws(c);
    if (c->i < c->n && c->s[c->i] == ']') {
      c->i++;
      return 0;
    }
    for (;;) {
      if (sc_value(c, depth + 1)) return -1;
      sc_ws(c);
      if (c->i < c->n && c->s[c->i] == ']') {
        c->i++;
        return 0;
      }
      if (c->i >= c->n || c->s[c->i] != ',') return sc_fail(c, "',' or ']'");
      c->i++;
    }
  }
  if (ch == '{') {
    c->i++;
    sc_ws(c);
    if (c->i < c->n && c->s[c->i] == '}') {
      c->i++;
      return 0;
    }
    for (;;) {
      sc_ws(c);
      if (c->i >= c->n || c->s[c->i] != '"') return sc_fail(c, "a key in double quotes");
      if (sc_string(c)) return -1;
      sc_ws(c);
      if (c->i >= c->n || c->s[c->i] != ':') return sc_fail(c, "':' after the key");
      c->i++;
      if (sc_value(c, depth + 1)) return -1;
      sc_ws(c);
      if (c->i < c->n && c->s[c->i] == '}') {
        c->i++;
        return 0;
      }
      if (c->i >= c->n || c->s[c->i] != ',') return sc_fail(c, "',' or '}'");
      c->i++;
    }
  }
  return sc_fail(c, "a value");
}

cJSON *mor_json_parse(const char *where, const char *text, size_t len, mor_err *err) {
  const char *end = NULL;
  cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
  if (!root) {
    scan c = {text, len, 0, ""};
    if (sc_value(&c, 0) == 0) { /* the scan found no error: trust cJSON's position */
      size_t pos = end && end >= text ? (size_t)(end - text) : 0;
      parse_error(where, text, len, pos, NULL, err);
    } else {
      parse_error(where, text, len, c.i, c.why, err);
    }
    return NULL;
  }
  size_t pos = end && end >= text ? (size_t)(end - text) : len;
  while (pos < len && is_ws(text[pos])) pos++;
  if (pos < len) {
    parse_error(where, text, len, pos, "unexpected text after the JSON value", err);
    cJSON_Delete(root);
    return NULL;
  }
  return root;
}

const char *mor_json_kind(const cJSON *v) {
  if (!v) return "nothing";
  if (cJSON_IsNull(v)) return "null";
  if (cJSON_IsBool(v)) return "a boolean";
  if (cJSON_IsNumber(v)) return "a number";
  if (cJSON_IsString(v)) return "a string";
  if (cJSON_IsArray(v)) return "an array";
  if (cJSON_IsObject(v)) return "an object";
  return "an invalid value";
}

const char *mor_json_num(double d, char *buf, size_t n) {
  snprintf(buf, n, "%.15g", d);
  if (isfinite(d) && strtod(buf, NULL) != d) snprintf(buf, n, "%.17g", d);
  return buf;
}

const char *mor_json_show(const cJSON *v, char *buf, size_t n) {
  if (v && cJSON_IsNumber(v)) return mor_json_num(v->valuedouble, buf, n);
  if (v && cJSON_IsBool(v)) {
    snprintf(buf, n, "%s", cJSON_IsTrue(v) ? "true" : "false");
  } else if (v && cJSON_IsString(v)) {
    char s[44]; /* long strings are cut with "..."; quotes and control bytes escaped */
    snprintf(buf, n, "\"%s\"", mor_esc(v->valuestring, s, sizeof s));
  } else {
    snprintf(buf, n, "%s", mor_json_kind(v));
  }
  return buf;
}

int mor_json_is_int(const cJSON *v) {
  if (!v || !cJSON_IsNumber(v)) return 0;
  double d = v->valuedouble;
  return isfinite(d) && d == floor(d) && fabs(d) <= 9007199254740992.0;
}

const char *mor_json_dup_key(const cJSON *obj) {
  for (const cJSON *a = obj ? obj->child : NULL; a; a = a->next)
    for (const cJSON *b = a->next; b; b = b->next)
      if (a->string && b->string && strcmp(a->string, b->string) == 0) return a->string;
  return NULL;
}
