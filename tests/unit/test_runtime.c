/* test_runtime.c: Check suite for libmorrt: tokenizer against golden ids from
 * Hugging Face `tokenizers` (tests/data/tokenizer), the JSON reader's errors,
 * sampler determinism and support, .npy bytes and round trips, thread pool. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* sched_getcpu, CPU_* */
#endif
#include <check.h>
#include <dirent.h>
#include <math.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "runtime/json.h"
#include "runtime/npy.h"
#include "runtime/sampler.h"
#include "runtime/threadpool.h"
#include "runtime/tokenizer.h"
#include "runtime/unicode.h"

#ifndef MORRT_TEST_DATA
#define MORRT_TEST_DATA "tests/data"
#endif

static const char *data_dir(void) {
  const char *d = getenv("MORRT_TEST_DATA");
  return d && *d ? d : MORRT_TEST_DATA;
}

/* ---- golden cases ------------------------------------------------------------------- */

typedef struct tcase {
  char name[64];
  char *text, *decoded;
  size_t text_len, decoded_len;
  int32_t *ids;
  size_t n_ids;
} tcase;

/* Undo make_tokenizer.py's escaping of the quoted part of a line. */
static char *unescape(const char *line, size_t *out_len) {
  const char *a = strchr(line, '"'), *b = strrchr(line, '"');
  ck_assert_msg(a && b && b > a, "cases.txt: bad quoted string: %s", line);
  char *out = malloc((size_t)(b - a) + 1);
  size_t n = 0;
  for (const char *p = a + 1; p < b; p++) {
    if (*p != '\\') {
      out[n++] = *p;
      continue;
    }
    p++;
    switch (*p) {
    case 'n': out[n++] = '\n'; break;
    case 'r': out[n++] = '\r'; break;
    case 't': out[n++] = '\t'; break;
    case '\\': out[n++] = '\\'; break;
    case '"': out[n++] = '"'; break;
    case 'x': {
      char hex[3] = {p[1], p[2], 0};
      out[n++] = (char)strtol(hex, NULL, 16);
      p += 2;
      break;
    }
    default: ck_abort_msg("cases.txt: bad escape in %s", line);
    }
  }
  out[n] = 0;
  *out_len = n;
  return out;
}

static tcase *read_cases(const char *path, size_t *count) {
  FILE *f = fopen(path, "r");
  ck_assert_msg(f != NULL, "cannot open %s", path);
  tcase *cs = NULL;
  size_t n = 0;
  char *line = NULL;
  size_t cap = 0;
  ssize_t len;
  while ((len = getline(&line, &cap, f)) >= 0) {
    if (len > 0 && line[len - 1] == '\n')
      line[--len] = 0;
    if (strncmp(line, "name: ", 6) == 0) {
      cs = realloc(cs, (n + 1) * sizeof *cs);
      memset(&cs[n], 0, sizeof cs[n]);
      snprintf(cs[n].name, sizeof cs[n].name, "%s", line + 6);
      n++;
    } else if (strncmp(line, "text: ", 6) == 0) {
      cs[n - 1].text = unescape(line, &cs[n - 1].text_len);
    } else if (strncmp(line, "decoded: ", 9) == 0) {
      cs[n - 1].decoded = unescape(line, &cs[n - 1].decoded_len);
    } else if (strncmp(line, "ids:", 4) == 0) {
      tcase *c = &cs[n - 1];
      char *p = line + 4, *end;
      for (;;) {
        long v = strtol(p, &end, 10);
        if (end == p)
          break;
        c->ids = realloc(c->ids, (c->n_ids + 1) * sizeof *c->ids);
        c->ids[c->n_ids++] = (int32_t)v;
        p = end;
      }
    }
  }
  free(line);
  fclose(f);
  *count = n;
  return cs;
}

static void free_cases(tcase *cs, size_t n) {
  for (size_t i = 0; i < n; i++) {
    free(cs[i].text);
    free(cs[i].decoded);
    free(cs[i].ids);
  }
  free(cs);
}

static char *ids_str(const int32_t *ids, size_t n) {
  char *s = malloc(n * 12 + 1);
  size_t k = 0;
  s[0] = 0;
  for (size_t i = 0; i < n; i++)
    k += (size_t)sprintf(s + k, "%s%d", i ? " " : "", ids[i]);
  return s;
}

static const char *const tokenizer_dirs[] = {"tokenizer", "tokenizer/llama3", "tokenizer/qwen2", "tokenizer/smollm"};
#define N_TOKENIZER_DIRS (int)(sizeof tokenizer_dirs / sizeof tokenizer_dirs[0])

static morrt_tokenizer *load_dir(const char *sub, tcase **cs, size_t *n) {
  char path[1024], err[1024];
  snprintf(path, sizeof path, "%s/%s/tokenizer.json", data_dir(), sub);
  morrt_tokenizer *tok = morrt_tokenizer_load(path, err, sizeof err);
  ck_assert_msg(tok != NULL, "load %s: %s", path, err);
  snprintf(path, sizeof path, "%s/%s/cases.txt", data_dir(), sub);
  *cs = read_cases(path, n);
  ck_assert_msg(*n >= 30, "%s: only %zu cases", path, *n);
  return tok;
}

START_TEST(test_tokenizer_golden_ids) {
  tcase *cs;
  size_t n, bad = 0;
  morrt_tokenizer *tok = load_dir(tokenizer_dirs[_i], &cs, &n);
  for (size_t i = 0; i < n; i++) {
    int32_t *ids;
    size_t m;
    ck_assert_int_eq(morrt_tokenizer_encode(tok, cs[i].text, cs[i].text_len, &ids, &m), 0);
    if (m != cs[i].n_ids || (m && memcmp(ids, cs[i].ids, m * sizeof *ids) != 0)) {
      char *want = ids_str(cs[i].ids, cs[i].n_ids), *got = ids_str(ids, m);
      fprintf(stderr, "%s: case %s:\n  want %s\n  got  %s\n", tokenizer_dirs[_i], cs[i].name, want, got);
      free(want);
      free(got);
      bad++;
    }
    free(ids);
  }
  ck_assert_msg(bad == 0, "%s: %zu of %zu cases differ from tokenizers' ids", tokenizer_dirs[_i], bad, n);
  free_cases(cs, n);
  morrt_tokenizer_free(tok);
}
END_TEST

START_TEST(test_tokenizer_round_trip) {
  tcase *cs;
  size_t n;
  /* smollm adds prefix spaces and has an lstrip [MASK]: its decode is not
   * the input. The other variants must give back exactly the input. */
  int lossy = strstr(tokenizer_dirs[_i], "smollm") != NULL;
  morrt_tokenizer *tok = load_dir(tokenizer_dirs[_i], &cs, &n);
  for (size_t i = 0; i < n; i++) {
    int32_t *ids;
    size_t m, len;
    ck_assert_int_eq(morrt_tokenizer_encode(tok, cs[i].text, cs[i].text_len, &ids, &m), 0);
    char *out = morrt_tokenizer_decode(tok, ids, m, &len);
    ck_assert_ptr_nonnull(out);
    /* decode(encode(s)) == s, or for smollm what Hugging Face decodes. */
    int same_as_text = len == cs[i].text_len && memcmp(out, cs[i].text, len) == 0;
    int same_as_hf = len == cs[i].decoded_len && memcmp(out, cs[i].decoded, len) == 0;
    ck_assert_msg(same_as_hf, "%s: case %s: decode(encode(s)) = \"%s\", tokenizers decodes \"%s\"",
                  tokenizer_dirs[_i], cs[i].name, out, cs[i].decoded);
    if (!lossy)
      ck_assert_msg(same_as_text, "%s: case %s: decode(encode(s)) = \"%s\" != s", tokenizer_dirs[_i], cs[i].name,
                    out);
    /* Token by token (streaming) gives the same bytes. */
    size_t k = 0;
    for (size_t j = 0; j < m; j++) {
      const char *t = morrt_tokenizer_token(tok, ids[j]);
      size_t tl = morrt_tokenizer_token_len(tok, ids[j]);
      ck_assert_ptr_nonnull(t);
      ck_assert_msg(k + tl <= len && memcmp(out + k, t, tl) == 0, "case %s: token %zu", cs[i].name, j);
      k += tl;
    }
    ck_assert_uint_eq(k, len);
    free(out);
    free(ids);
  }
  free_cases(cs, n);
  morrt_tokenizer_free(tok);
}
END_TEST

START_TEST(test_tokenizer_api) {
  tcase *cs;
  size_t n;
  morrt_tokenizer *tok = load_dir("tokenizer", &cs, &n);
  ck_assert_int_eq(morrt_tokenizer_vocab_size(tok), 401); /* 400 + <think> */
  ck_assert_int_eq(morrt_tokenizer_find(tok, "<|endoftext|>"), 0);
  ck_assert_int_eq(morrt_tokenizer_find(tok, "<|pad|>"), 1);
  ck_assert_int_eq(morrt_tokenizer_find(tok, "<think>"), 400);
  ck_assert_int_eq(morrt_tokenizer_find(tok, "<nope>"), -1);
  ck_assert_int_ge(morrt_tokenizer_find(tok, " the"), 2);
  ck_assert_str_eq(morrt_tokenizer_token(tok, 0), "<|endoftext|>");
  ck_assert_str_eq(morrt_tokenizer_token(tok, morrt_tokenizer_find(tok, " the")), " the");
  ck_assert_ptr_null(morrt_tokenizer_token(tok, -1));
  ck_assert_ptr_null(morrt_tokenizer_token(tok, 401));
  ck_assert_uint_eq(morrt_tokenizer_token_len(tok, 401), 0);
  /* The byte 0 token holds a NUL: its length says so. */
  int32_t *ids;
  size_t m;
  ck_assert_int_eq(morrt_tokenizer_encode(tok, "\0", 1, &ids, &m), 0);
  ck_assert_uint_eq(m, 1);
  ck_assert_uint_eq(morrt_tokenizer_token_len(tok, ids[0]), 1);
  free(ids);
  /* Every id decodes; bad ids do not. */
  for (int32_t id = 0; id < morrt_tokenizer_vocab_size(tok); id++)
    ck_assert_ptr_nonnull(morrt_tokenizer_token(tok, id));
  int32_t bad[2] = {5, 9999};
  ck_assert_ptr_null(morrt_tokenizer_decode(tok, bad, 2, NULL));
  size_t len = 99;
  char *empty = morrt_tokenizer_decode(tok, NULL, 0, &len);
  ck_assert_ptr_nonnull(empty);
  ck_assert_uint_eq(len, 0);
  free(empty);
  /* Empty input gives no ids. */
  ck_assert_int_eq(morrt_tokenizer_encode(tok, "", 0, &ids, &m), 0);
  ck_assert_uint_eq(m, 0);
  free(ids);
  /* Invalid UTF-8 and long inputs still round-trip byte for byte. */
  char buf[5000];
  for (size_t i = 0; i < sizeof buf; i++)
    buf[i] = (char)((i * 7919u) % 251u + 1);
  ck_assert_int_eq(morrt_tokenizer_encode(tok, buf, sizeof buf, &ids, &m), 0);
  char *out = morrt_tokenizer_decode(tok, ids, m, &len);
  ck_assert_uint_eq(len, sizeof buf);
  ck_assert(memcmp(out, buf, len) == 0);
  free(out);
  free(ids);
  free_cases(cs, n);
  morrt_tokenizer_free(tok);
}
END_TEST

/* A tokenizer.json string with parts replaced, for the error tests. */
static const char *tok_json_fmt =
    "{\"added_tokens\": [], \"normalizer\": %s, \"pre_tokenizer\": %s, \"decoder\": %s,\n"
    " \"model\": {\"type\": %s, \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}, \"merges\": %s}}";

static void expect_load_error(const char *norm, const char *pre, const char *dec, const char *type,
                              const char *merges, const char *want) {
  char json[2048], err[1024];
  snprintf(json, sizeof json, tok_json_fmt, norm, pre, dec, type, merges);
  morrt_tokenizer *tok = morrt_tokenizer_load_mem(json, strlen(json), "t.json", err, sizeof err);
  if (!want) {
    ck_assert_msg(tok != NULL, "expected to load, got: %s", err);
    morrt_tokenizer_free(tok);
    return;
  }
  ck_assert_msg(tok == NULL, "expected an error containing \"%s\"", want);
  ck_assert_msg(strstr(err, want) != NULL, "error \"%s\" lacks \"%s\"", err, want);
  ck_assert_msg(strncmp(err, "t.json:", 7) == 0, "error \"%s\" does not name the file", err);
}

START_TEST(test_tokenizer_errors) {
  const char *bl = "{\"type\": \"ByteLevel\", \"add_prefix_space\": false}";
  expect_load_error("null", bl, bl, "\"BPE\"", "[\"a b\"]", NULL);
  expect_load_error("null", bl, bl, "\"BPE\"", "[[\"a\", \"b\"]]", NULL);
  expect_load_error("null", bl, bl, "\"WordPiece\"", "[]", "model.type \"WordPiece\" is not supported");
  expect_load_error("null", bl, bl, "\"Unigram\"", "[]", "not supported");
  expect_load_error("{\"type\": \"NFC\"}", bl, bl, "\"BPE\"", "[]", "normalizer \"NFC\" is not supported");
  expect_load_error("null", "{\"type\": \"Metaspace\"}", bl, "\"BPE\"", "[]", "pre-tokenizer \"Metaspace\"");
  expect_load_error("null", "null", bl, "\"BPE\"", "[]", "pre_tokenizer: missing");
  expect_load_error("null", "{\"type\": \"Digits\"}", bl, "\"BPE\"", "[]", "no ByteLevel step");
  expect_load_error("null",
                    "{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", \"pattern\": "
                    "{\"Regex\": \"\\\\s+\"}, \"behavior\": \"Isolated\", \"invert\": false}, " "{\"type\": \"ByteLevel\"}]}",
                    bl, "\"BPE\"", "[]", "pre_tokenizer.pretokenizers[0].pattern: regex \\s+ is not one");
  expect_load_error("null",
                    "{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", \"pattern\": "
                    "{\"String\": \" \"}, \"behavior\": \"Isolated\", \"invert\": false}]}",
                    bl, "\"BPE\"", "[]", "only {\"Regex\": ...} patterns");
  expect_load_error("null", bl, "null", "\"BPE\"", "[]", "decoder: missing");
  expect_load_error("null", bl, "{\"type\": \"WordPiece\"}", "\"BPE\"", "[]", "decoder \"WordPiece\" is not supported");
  expect_load_error("null", bl, bl, "\"BPE\"", "[\"a c\"]", "model.merges[0]: token \"c\" is not in model.vocab");
  expect_load_error("null", bl, bl, "\"BPE\"", "[\"b a\"]", "model.merges[0]: merged token \"ba\" is not in model.vocab");
  expect_load_error("null", bl, bl, "\"BPE\"", "[\"a b\", \"ab\"]", "model.merges[1]: expected \"left right\"");
  expect_load_error("null", bl, bl, "\"BPE\"", "[[\"a\"]]", "model.merges[0]: expected a string");
  expect_load_error("null", bl, bl, "\"BPE\"", "{}", "model.merges: expected an array");
  expect_load_error("null", bl, bl, "3", "[]", "model.type");

  char err[1024];
  const char *bad = "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": -1}, \"merges\": []}}";
  ck_assert_ptr_null(morrt_tokenizer_load_mem(bad, strlen(bad), "t.json", err, sizeof err));
  ck_assert_msg(strstr(err, "model.vocab[\"a\"]: expected an integer id") != NULL, "%s", err);
  const char *syntax = "{\"model\": {\n  \"type\": \"BPE\",,\n}}";
  ck_assert_ptr_null(morrt_tokenizer_load_mem(syntax, strlen(syntax), "t.json", err, sizeof err));
  ck_assert_msg(strncmp(err, "t.json:2:17: expected a string key", 34) == 0, "%s", err);
  ck_assert_ptr_null(morrt_tokenizer_load("/nonexistent/tokenizer.json", err, sizeof err));
  ck_assert_msg(strstr(err, "/nonexistent/tokenizer.json: cannot open") != NULL, "%s", err);
}
END_TEST

START_TEST(test_unicode_classes) {
  ck_assert(morrt_unicode_is_letter('a') && morrt_unicode_is_letter(0x65E5) && morrt_unicode_is_letter(0xAA));
  ck_assert(!morrt_unicode_is_letter('1') && !morrt_unicode_is_letter(0x301) && !morrt_unicode_is_letter(0x1F642));
  ck_assert(morrt_unicode_is_number('7') && morrt_unicode_is_number(0xB2) && morrt_unicode_is_number(0x2160));
  ck_assert(morrt_unicode_is_space(0x3000) && morrt_unicode_is_space(0x85) && !morrt_unicode_is_space(0x1C));
  ck_assert(!morrt_unicode_is_space(0x200B));
  uint32_t cp;
  ck_assert_int_eq(morrt_utf8_decode((const unsigned char *)"\xF0\x9F\x99\x82", 4, &cp), 4);
  ck_assert_uint_eq(cp, 0x1F642);
  ck_assert_int_eq(morrt_utf8_decode((const unsigned char *)"\xC0\xAF", 2, &cp), 1); /* overlong */
  ck_assert_uint_eq(cp, MORRT_UNICODE_BAD);
  ck_assert_int_eq(morrt_utf8_decode((const unsigned char *)"\xED\xA0\x80", 3, &cp), 1); /* surrogate */
  ck_assert_int_eq(morrt_utf8_decode((const unsigned char *)"\xE6\x97", 2, &cp), 1);     /* truncated */
}
END_TEST

/* ---- JSON ------------------------------------------------------------------------------ */

START_TEST(test_json_values) {
  char err[512];
  const char *s = "\xEF\xBB\xBF {\"a\": [1, -0.5, 2e3, 1E-2, 0, -0, 9007199254740993, true, false, null],\n"
                  " \"s\": \"q\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\u65e5\\ud83d\\ude42\\u0000x\", \"e\": {}, \"f\": [],\n"
                  " \"a\": \"dup\", \"deep\": [[[{\"k\": [\"v\"]}]]]}";
  morrt_json_doc *doc = morrt_json_parse(s, strlen(s), 0, err, sizeof err);
  ck_assert_msg(doc != NULL, "%s", err);
  const morrt_json *r = morrt_json_root(doc);
  ck_assert_int_eq(r->type, MORRT_JSON_OBJECT);
  ck_assert_uint_eq(r->len, 6);
  ck_assert_str_eq(morrt_json_str(morrt_json_get(r, "a")), "dup"); /* last duplicate wins */
  const morrt_json *a = &r->u.members[0].value;
  ck_assert_int_eq(a->type, MORRT_JSON_ARRAY);
  ck_assert_uint_eq(a->len, 10);
  ck_assert(morrt_json_at(a, 1)->u.number == -0.5);
  ck_assert(morrt_json_at(a, 2)->u.number == 2000.0);
  ck_assert(morrt_json_at(a, 3)->u.number == 0.01);
  long long v;
  ck_assert(morrt_json_int(morrt_json_at(a, 0), 0, 10, &v) && v == 1);
  ck_assert(!morrt_json_int(morrt_json_at(a, 1), -10, 10, &v));
  ck_assert(!morrt_json_int(morrt_json_at(a, 0), 2, 10, &v));
  ck_assert_int_eq(morrt_json_at(a, 7)->type, MORRT_JSON_BOOL);
  ck_assert_int_eq(morrt_json_at(a, 7)->u.boolean, 1);
  ck_assert_int_eq(morrt_json_at(a, 8)->u.boolean, 0);
  ck_assert_int_eq(morrt_json_at(a, 9)->type, MORRT_JSON_NULL);
  ck_assert_ptr_null(morrt_json_at(a, 10));
  ck_assert_int_eq(a->line, 1);
  ck_assert_int_eq(a->col, 8); /* the byte-order mark does not count */
  const morrt_json *str = morrt_json_get(r, "s");
  static const char want[] = "q\"\\/\b\f\n\r\t\xC3\xA9\xE6\x97\xA5\xF0\x9F\x99\x82\0x";
  ck_assert_uint_eq(str->len, sizeof want - 1);
  ck_assert(memcmp(str->u.string, want, sizeof want) == 0);
  ck_assert_int_eq(str->line, 2);
  ck_assert_uint_eq(morrt_json_get(r, "e")->len, 0);
  ck_assert_uint_eq(morrt_json_get(r, "f")->len, 0);
  const morrt_json *deep = morrt_json_get(r, "deep");
  ck_assert_str_eq(morrt_json_str(morrt_json_at(morrt_json_get(morrt_json_at(morrt_json_at(morrt_json_at(deep, 0), 0), 0), "k"), 0)), "v");
  ck_assert_ptr_null(morrt_json_get(r, "missing"));
  ck_assert_ptr_null(morrt_json_get(a, "a"));
  ck_assert_ptr_null(morrt_json_str(a));
  morrt_json_free(doc);

  /* Scalars at the top level; locale-independent numbers. */
  doc = morrt_json_parse(" 3.25 ", 6, 0, err, sizeof err);
  ck_assert(doc && morrt_json_root(doc)->u.number == 3.25);
  morrt_json_free(doc);
  doc = morrt_json_parse("\"\"", 2, 0, err, sizeof err);
  ck_assert(doc && morrt_json_root(doc)->len == 0 && morrt_json_root(doc)->u.string[0] == 0);
  morrt_json_free(doc);
  morrt_json_free(NULL);
}
END_TEST

typedef struct bad_json {
  const char *text, *want;
} bad_json;

static const bad_json bad_jsons[] = {
    {"", "1:1: expected a JSON value, found end of input"},
    {"   \n  ", "2:3: expected a JSON value, found end of input"},
    {"{\"a\": 1,}", "1:9: trailing comma before '}'"},
    {"[1, 2,]", "1:7: trailing comma before ']'"},
    {"[1 2]", "1:4: expected ',' or ']' in array, found '2'"},
    {"{\"a\" 1}", "1:6: expected ':' after object key, found '1'"},
    {"{1: 2}", "1:2: expected a string key in object, found '1'"},
    {"{\"a\": 1", "1:8: expected ',' or '}' in object, found end of input"},
    {"[", "1:2: expected a JSON value, found end of input"},
    {"\"abc", "1:1: unterminated string"},
    {"\"a\\", "1:1: unterminated string"},
    {"\"a\tb\"", "1:3: control character U+0009 in string"},
    {"\"a\nb\"", "1:3: control character U+000A in string"},
    {"\"\\x\"", "1:2: invalid escape '\\' followed by 'x'"},
    {"\"\\u12\"", "1:2: \\u must be followed by four hex digits"},
    {"\"\\u12g4\"", "1:2: \\u must be followed by four hex digits"},
    {"\"\\ud800\"", "1:2: high surrogate \\uD800 not followed by a \\u low surrogate"},
    {"\"\\ud800\\u0041\"", "high surrogate"},
    {"\"\\udc00\"", "1:2: unpaired low surrogate \\uDC00"},
    {"\"\xff\"", "1:2: invalid UTF-8 (byte 0xFF) in string"},
    {"\"\xc0\xaf\"", "1:2: invalid UTF-8 (byte 0xC0)"},
    {"\"\xed\xa0\x80\"", "invalid UTF-8"},
    {"\"\xe6\x97\"", "invalid UTF-8"},
    {"01", "1:1: leading zeros are not allowed"},
    {"-", "1:2: expected a digit in number"},
    {"1.", "1:3: expected a digit after the decimal point"},
    {".5", "1:1: expected a JSON value, found '.'"},
    {"+1", "1:1: expected a JSON value, found '+'"},
    {"1e", "1:3: expected a digit in the exponent"},
    {"1e+", "1:4: expected a digit in the exponent"},
    {"1e999", "1:1: number out of range of a double"},
    {"-1e400", "number out of range"},
    {"NaN", "1:1: expected a JSON value, found 'N'"},
    {"Infinity", "expected a JSON value"},
    {"tru", "1:1: invalid literal (expected 'true')"},
    {"nul", "invalid literal (expected 'null')"},
    {"falsey", "1:6: unexpected 'y' after the JSON value"},
    {"[]]", "1:3: unexpected ']' after the JSON value"},
    {"{} {}", "1:4: unexpected '{'"},
    {"// comment\n1", "1:1: expected a JSON value, found '/'"},
    {"{'a': 1}", "1:2: expected a string key in object, found '''"},
    {"[\x01]", "1:2: expected a JSON value, found U+0001"},
    {"[\x80]", "1:2: expected a JSON value, found byte 0x80"},
    {"\xc3\xa9", "1:1: expected a JSON value, found U+00E9"},
    {"{\n  \"a\": [1,\n    tru]\n}", "3:5: invalid literal"},
};

START_TEST(test_json_errors) {
  char err[512];
  for (size_t i = 0; i < sizeof bad_jsons / sizeof bad_jsons[0]; i++) {
    const bad_json *b = &bad_jsons[i];
    err[0] = 0;
    morrt_json_doc *doc = morrt_json_parse(b->text, strlen(b->text), 0, err, sizeof err);
    ck_assert_msg(doc == NULL, "input %zu (%s) should fail", i, b->text);
    ck_assert_msg(strstr(err, b->want) != NULL, "input %zu: error \"%s\" lacks \"%s\"", i, err, b->want);
  }
  /* A NUL byte inside the text is just a bad character, not the end. */
  ck_assert_ptr_null(morrt_json_parse("[1,\0 2]", 7, 0, err, sizeof err));
  ck_assert_msg(strstr(err, "1:4: expected a JSON value, found U+0000") != NULL, "%s", err);
  /* The message shows the line and a caret. */
  const char *t = "{\"key\": [1, 2,, 3]}";
  ck_assert_ptr_null(morrt_json_parse(t, strlen(t), 0, err, sizeof err));
  ck_assert_str_eq(err, "1:15: expected a JSON value, found ','\n  {\"key\": [1, 2,, 3]}\n                ^");
  /* Tiny and absent error buffers are fine. */
  char small[8];
  ck_assert_ptr_null(morrt_json_parse("[1,]", 4, 0, small, sizeof small));
  ck_assert_uint_lt(strlen(small), sizeof small);
  ck_assert_ptr_null(morrt_json_parse("[1,]", 4, 0, NULL, 0));
  ck_assert_ptr_null(morrt_json_parse(NULL, 0, 0, err, sizeof err));
}
END_TEST

START_TEST(test_json_depth) {
  char err[512];
  size_t n = 100000;
  char *s = malloc(2 * n);
  memset(s, '[', n);
  memset(s + n, ']', n);
  ck_assert_ptr_null(morrt_json_parse(s, 2 * n, 0, err, sizeof err));
  ck_assert_msg(strstr(err, "1:257: nesting deeper than 256 levels") != NULL, "%s", err);
  ck_assert_ptr_null(morrt_json_parse(s, 2 * n, 1000000, err, sizeof err)); /* clamped, no stack overflow */
  ck_assert_msg(strstr(err, "nesting deeper than 4096 levels") != NULL, "%s", err);
  morrt_json_doc *doc = morrt_json_parse(s + n - 256, 512, 0, err, sizeof err);
  ck_assert_msg(doc != NULL, "256 levels should parse: %s", err);
  morrt_json_free(doc);
  ck_assert_ptr_null(morrt_json_parse(s + n - 3, 6, 2, err, sizeof err));
  free(s);
}
END_TEST

START_TEST(test_json_fuzz) {
  /* Mutations of a valid document: every outcome is a tree or an error. */
  const char *base = "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\\u00e9\": 0, \"\\ud83d\\ude42\": 1},"
                     " \"merges\": [[\"a\", \"b\"], \"c d\"], \"x\": [1.5e-3, -0, true, false, null]}}";
  size_t n = strlen(base);
  char *buf = malloc(n + 8);
  uint64_t rng = 42;
  char err[512];
  const char alphabet[] = "{}[]\":,\\/u0123456789abcdefABCDEF+-.eE tfn\n\t\x01\x80\xc3\xbf\xed\xff";
  for (int iter = 0; iter < 20000; iter++) {
    memcpy(buf, base, n);
    size_t len = n;
    int edits = 1 + (int)(morrt_rng_next(&rng) % 4);
    for (int e = 0; e < edits; e++) {
      size_t pos = (size_t)(morrt_rng_next(&rng) % len);
      switch (morrt_rng_next(&rng) % 3) {
      case 0: buf[pos] = alphabet[morrt_rng_next(&rng) % (sizeof alphabet - 1)]; break;
      case 1: len = pos; break;
      default: memmove(buf + pos, buf + pos + 1, len - pos - 1), len--; break;
      }
      if (len == 0)
        break;
    }
    err[0] = 0;
    morrt_json_doc *doc = morrt_json_parse(buf, len, 0, err, sizeof err);
    ck_assert(doc != NULL || err[0] != 0);
    morrt_json_free(doc);
    /* The tokenizer loader must not crash on it either. */
    morrt_tokenizer *tok = morrt_tokenizer_load_mem(buf, len, "fuzz.json", err, sizeof err);
    ck_assert(tok == NULL && err[0] != 0);
  }
  free(buf);
}
END_TEST

/* ---- sampler -------------------------------------------------------------------------- */

START_TEST(test_rng_known_answers) {
  uint64_t s = 0; /* SplitMix64 reference values */
  ck_assert(morrt_rng_next(&s) == 0xE220A8397B1DCDAFull);
  ck_assert(morrt_rng_next(&s) == 0x6E789E6AA1B965F4ull);
  ck_assert(morrt_rng_next(&s) == 0x06C45D188009454Full);
  s = 7;
  for (int i = 0; i < 1000; i++) {
    double u = morrt_rng_uniform(&s);
    ck_assert(u >= 0.0 && u < 1.0);
  }
}
END_TEST

static void random_logits(float *l, int32_t V, uint64_t seed) {
  for (int32_t i = 0; i < V; i++)
    l[i] = (float)(morrt_rng_uniform(&seed) * 10.0 - 5.0);
}

START_TEST(test_sampler_greedy_and_determinism) {
  enum { V = 1000 };
  float l[V];
  for (int trial = 0; trial < 50; trial++) {
    random_logits(l, V, (uint64_t)trial);
    int32_t want = 0;
    for (int32_t i = 1; i < V; i++)
      if (l[i] > l[want])
        want = i;
    uint64_t rng = 1;
    morrt_sampler_cfg greedy = {0.0f, 0, 1.0f};
    ck_assert_int_eq(morrt_sample(l, V, &greedy, &rng), want);
    ck_assert_int_eq(morrt_sample(l, V, NULL, &rng), want);
    ck_assert(rng == 1); /* greedy draws nothing */
  }
  /* Ties go to the lower index; NaN never wins. */
  float t[5] = {1.0f, 3.0f, NAN, 3.0f, -INFINITY};
  ck_assert_int_eq(morrt_argmax(t, 5), 1);
  float nans[3] = {NAN, NAN, NAN};
  ck_assert_int_eq(morrt_argmax(nans, 3), 0);
  morrt_sampler_cfg hot = {1.0f, 0, 1.0f};
  uint64_t rng = 3;
  for (int i = 0; i < 100; i++) {
    int32_t id = morrt_sample(t, 5, &hot, &rng);
    ck_assert(id == 0 || id == 1 || id == 3);
  }
  ck_assert_int_eq(morrt_sample(t, 0, &hot, &rng), -1);
  ck_assert_int_eq(morrt_sample(t, 1, &hot, &rng), 0);

  /* Same seed, same tokens; another seed, other tokens. */
  random_logits(l, V, 99);
  morrt_sampler_cfg cfgs[] = {{0.8f, 0, 1.0f}, {0.8f, 40, 1.0f}, {0.8f, 0, 0.9f}, {1.3f, 50, 0.95f}};
  for (size_t c = 0; c < sizeof cfgs / sizeof cfgs[0]; c++) {
    uint64_t a = 12345, b = 12345, d = 54321;
    int differ = 0;
    for (int i = 0; i < 500; i++) {
      int32_t x = morrt_sample(l, V, &cfgs[c], &a), y = morrt_sample(l, V, &cfgs[c], &b);
      int32_t z = morrt_sample(l, V, &cfgs[c], &d);
      ck_assert_int_eq(x, y);
      ck_assert(x >= 0 && x < V);
      differ |= x != z;
    }
    ck_assert_msg(differ, "cfg %zu: seeds 12345 and 54321 gave the same 500 tokens", c);
  }
  /* A fixed seed gives fixed tokens on every platform (uniform draws are
   * bit-exact; these logits leave no draw near a boundary). */
  float fixed[4] = {0.0f, 1.0f, 2.0f, 3.0f};
  morrt_sampler_cfg t1 = {1.0f, 0, 1.0f};
  uint64_t seed = 2024;
  int32_t seq[12];
  for (int i = 0; i < 12; i++)
    seq[i] = morrt_sample(fixed, 4, &t1, &seed);
  uint64_t s2 = 2024;
  for (int i = 0; i < 12; i++) {
    double u = morrt_rng_uniform(&s2), w[4], tot = 0, cum = 0;
    for (int k = 0; k < 4; k++)
      tot += w[k] = exp(fixed[k] - 3.0);
    int32_t want = 3;
    for (int k = 0; k < 4; k++)
      if ((cum += w[k]) > u * tot) {
        want = k;
        break;
      }
    ck_assert_int_eq(seq[i], want);
  }
}
END_TEST

/* Sample N times and return the counts per id. */
static void histogram(const float *l, int32_t V, const morrt_sampler_cfg *cfg, int N, int *count) {
  uint64_t rng = 777;
  memset(count, 0, (size_t)V * sizeof *count);
  for (int i = 0; i < N; i++) {
    int32_t id = morrt_sample(l, V, cfg, &rng);
    ck_assert(id >= 0 && id < V);
    count[id]++;
  }
}

START_TEST(test_sampler_support) {
  enum { N = 40000 };
  /* p = 0.5, 0.2, 0.15, 0.1, 0.05 */
  const double p[5] = {0.5, 0.2, 0.15, 0.1, 0.05};
  float l[5];
  for (int i = 0; i < 5; i++)
    l[i] = (float)log(p[i]);
  int count[64];

  /* Temperature 1, no limits: the frequencies follow p. */
  morrt_sampler_cfg plain = {1.0f, 0, 1.0f};
  histogram(l, 5, &plain, N, count);
  for (int i = 0; i < 5; i++)
    ck_assert_msg(fabs(count[i] / (double)N - p[i]) < 0.01, "id %d: %d", i, count[i]);

  /* Temperature 2: p^(1/2), renormalized. */
  morrt_sampler_cfg warm = {2.0f, 0, 1.0f};
  histogram(l, 5, &warm, N, count);
  double z = 0;
  for (int i = 0; i < 5; i++)
    z += sqrt(p[i]);
  for (int i = 0; i < 5; i++)
    ck_assert_msg(fabs(count[i] / (double)N - sqrt(p[i]) / z) < 0.01, "T=2 id %d: %d", i, count[i]);

  /* top_k = 2: only ids 0 and 1, in ratio 5:2. */
  morrt_sampler_cfg k2 = {1.0f, 2, 1.0f};
  histogram(l, 5, &k2, N, count);
  ck_assert_int_eq(count[2] + count[3] + count[4], 0);
  ck_assert(fabs(count[0] / (double)N - 5.0 / 7.0) < 0.01);

  /* top_p = 0.8: the nucleus is {0, 1, 2} (0.5, 0.7, 0.85). */
  morrt_sampler_cfg p8 = {1.0f, 0, 0.8f};
  histogram(l, 5, &p8, N, count);
  ck_assert_int_eq(count[3] + count[4], 0);
  for (int i = 0; i < 3; i++)
    ck_assert_msg(fabs(count[i] / (double)N - p[i] / 0.85) < 0.01, "top_p id %d: %d", i, count[i]);

  /* top_p = 0.45: only the most likely token. */
  morrt_sampler_cfg p45 = {1.0f, 0, 0.45f};
  histogram(l, 5, &p45, N, count);
  ck_assert_int_eq(count[0], N);

  /* top_k then top_p: k = 3 renormalizes to 0.588, 0.235, 0.176; p = 0.7
   * keeps {0, 1}. */
  morrt_sampler_cfg kp = {1.0f, 3, 0.7f};
  histogram(l, 5, &kp, N, count);
  ck_assert_int_eq(count[2] + count[3] + count[4], 0);
  ck_assert(fabs(count[0] / (double)N - 5.0 / 7.0) < 0.01);

  /* A large vocab with shuffled logits: top-k keeps exactly the k best. */
  enum { V = 64 };
  float big[V];
  for (int i = 0; i < V; i++)
    big[i] = (float)((i * 37) % V) * 0.05f; /* a permutation of 0..63, scaled */
  morrt_sampler_cfg k5 = {1.0f, 5, 1.0f};
  histogram(big, V, &k5, 20000, count);
  for (int i = 0; i < V; i++) {
    int rank = V - 1 - (i * 37) % V; /* 0 = best */
    if (rank >= 5)
      ck_assert_msg(count[i] == 0, "id %d (rank %d) sampled %d times", i, rank, count[i]);
    else
      ck_assert_msg(count[i] > 2000, "id %d (rank %d) sampled only %d times", i, rank, count[i]);
  }
  /* Top-p over that vocab: whatever is sampled is among the heaviest tokens
   * whose mass reaches p. */
  morrt_sampler_cfg p5 = {1.0f, 0, 0.5f};
  histogram(big, V, &p5, 20000, count);
  double w[V], tot = 0;
  for (int i = 0; i < V; i++)
    tot += w[i] = exp(big[i]);
  int kept = 0;
  double cum = 0;
  for (int r = 0; r < V && cum < 0.5 * tot; r++) { /* walk from the best down */
    for (int i = 0; i < V; i++)
      if (V - 1 - (i * 37) % V == r)
        cum += w[i];
    kept++;
  }
  for (int i = 0; i < V; i++) {
    int rank = V - 1 - (i * 37) % V;
    if (rank >= kept)
      ck_assert_msg(count[i] == 0, "top_p: id %d (rank %d >= %d) sampled", i, rank, kept);
    else
      ck_assert_msg(count[i] > 0, "top_p: id %d (rank %d < %d) never sampled", i, rank, kept);
  }
}
END_TEST

/* ---- npy ------------------------------------------------------------------------------- */

static char tmpdir[256];

static void make_tmpdir(void) {
  const char *base = getenv("TMPDIR");
  snprintf(tmpdir, sizeof tmpdir, "%s/morrt_test_XXXXXX", base && *base ? base : "/tmp");
  ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void remove_tmpdir(void) {
  DIR *d = opendir(tmpdir);
  if (!d)
    return;
  struct dirent *e;
  char p[512];
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
      snprintf(p, sizeof p, "%s/%s", tmpdir, e->d_name);
      unlink(p);
    }
  }
  closedir(d);
  rmdir(tmpdir);
}

static unsigned char *slurp(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  ck_assert_ptr_nonnull(f);
  unsigned char *b = malloc(1 << 20);
  *n = fread(b, 1, 1 << 20, f);
  fclose(f);
  return b;
}

static void spit(const char *path, const void *data, size_t n) {
  FILE *f = fopen(path, "wb");
  ck_assert_ptr_nonnull(f);
  ck_assert_uint_eq(fwrite(data, 1, n, f), n);
  fclose(f);
}

/* The bytes the .npy 1.0 spec prescribes for a header dict; returns where
 * the data starts. */
static size_t check_header(const unsigned char *b, size_t n, const char *dict) {
  size_t dl = strlen(dict);
  size_t total = (10 + dl + 1 + 63) / 64 * 64;
  ck_assert_uint_ge(n, total);
  ck_assert(memcmp(b, "\x93NUMPY\x01\x00", 8) == 0);
  ck_assert_uint_eq((size_t)b[8] | (size_t)b[9] << 8, total - 10); /* HEADER_LEN, little-endian */
  ck_assert_msg(memcmp(b + 10, dict, dl) == 0, "header is \"%.*s\"", (int)dl, (const char *)b + 10);
  for (size_t i = 10 + dl; i < total - 1; i++)
    ck_assert_int_eq(b[i], ' ');
  ck_assert_int_eq(b[total - 1], '\n');
  ck_assert_uint_eq(total % 64, 0);
  return total;
}

static int count_tmp_files(void) {
  DIR *d = opendir(tmpdir);
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL)
    n += strstr(e->d_name, ".tmp.") != NULL;
  closedir(d);
  return n;
}

START_TEST(test_npy) {
  make_tmpdir();
  char path[512], err[512];
  snprintf(path, sizeof path, "%s/a.npy", tmpdir);
  float m[2][3] = {{1.0f, -2.5f, 3.25f}, {0.0f, 1e-30f, -INFINITY}};
  ck_assert_int_eq(morrt_npy_write_f32(path, &m[0][0], 2, 3, err, sizeof err), 0);
  size_t n;
  unsigned char *b = slurp(path, &n);
  size_t h = check_header(b, n, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }");
  ck_assert_uint_eq(h, 128); /* 10 + 60 + 1 rounded up to 64 */
  ck_assert_uint_eq(n, h + sizeof m);
  ck_assert(memcmp(b + h, m, sizeof m) == 0);
  free(b);
  int nd;
  int64_t shape[MORRT_NPY_MAX_DIMS];
  float *r = morrt_npy_read_f32(path, &nd, shape, err, sizeof err);
  ck_assert_msg(r != NULL, "%s", err);
  ck_assert_int_eq(nd, 2);
  ck_assert(shape[0] == 2 && shape[1] == 3);
  ck_assert(memcmp(r, m, sizeof m) == 0);
  free(r);

  /* Overwrite in place with a bigger array; no temp files remain. */
  float big[300][7];
  for (int i = 0; i < 300; i++)
    for (int j = 0; j < 7; j++)
      big[i][j] = (float)(i * 7 + j) * 0.5f;
  ck_assert_int_eq(morrt_npy_write_f32(path, &big[0][0], 300, 7, err, sizeof err), 0);
  r = morrt_npy_read_f32(path, &nd, shape, err, sizeof err);
  ck_assert(r && nd == 2 && shape[0] == 300 && shape[1] == 7 && memcmp(r, big, sizeof big) == 0);
  free(r);
  ck_assert_int_eq(count_tmp_files(), 0);

  /* Int vectors. */
  int32_t iv[5] = {1, -2, 3, 2147483647, -2147483647 - 1};
  snprintf(path, sizeof path, "%s/i.npy", tmpdir);
  ck_assert_int_eq(morrt_npy_write_i32(path, iv, 5, err, sizeof err), 0);
  b = slurp(path, &n);
  h = check_header(b, n, "{'descr': '<i4', 'fortran_order': False, 'shape': (5,), }");
  ck_assert(n == h + sizeof iv && memcmp(b + h, iv, sizeof iv) == 0);
  free(b);
  int64_t lv[3] = {1, -1, (int64_t)1 << 40};
  ck_assert_int_eq(morrt_npy_write_i64(path, lv, 3, err, sizeof err), 0);
  b = slurp(path, &n);
  h = check_header(b, n, "{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }");
  ck_assert(n == h + sizeof lv && memcmp(b + h, lv, sizeof lv) == 0);
  free(b);
  /* Reading an int array as float32 is an error. */
  ck_assert_ptr_null(morrt_npy_read_f32(path, &nd, shape, err, sizeof err));
  ck_assert_msg(strstr(err, "dtype '<i8' is not float32") != NULL, "%s", err);

  /* 0-d, empty and 3-d shapes. */
  float one = 4.5f;
  snprintf(path, sizeof path, "%s/s.npy", tmpdir);
  ck_assert_int_eq(morrt_npy_write(path, MORRT_NPY_F32, &one, 0, NULL, err, sizeof err), 0);
  b = slurp(path, &n);
  check_header(b, n, "{'descr': '<f4', 'fortran_order': False, 'shape': (), }");
  free(b);
  r = morrt_npy_read_f32(path, &nd, shape, err, sizeof err);
  ck_assert(r && nd == 0 && r[0] == 4.5f);
  free(r);
  ck_assert_int_eq(morrt_npy_write_f32(path, NULL, 0, 4, err, sizeof err), 0);
  r = morrt_npy_read_f32(path, &nd, shape, err, sizeof err);
  ck_assert(r && nd == 2 && shape[0] == 0 && shape[1] == 4);
  free(r);
  int64_t s3[3] = {2, 1, 2};
  float c3[4] = {1, 2, 3, 4};
  ck_assert_int_eq(morrt_npy_write(path, MORRT_NPY_F32, c3, 3, s3, err, sizeof err), 0);
  b = slurp(path, &n);
  check_header(b, n, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 1, 2), }");
  free(b);

  /* Hand-made files: version 2.0 and a big-endian, numpy-1.x style header. */
  static const char v2dict[] = "{'descr': '>f4', 'fortran_order': False, 'shape': (3,), }";
  unsigned char f2[128];
  size_t hl = 128 - 12 - 12;
  memcpy(f2, "\x93NUMPY\x02\x00", 8);
  f2[8] = (unsigned char)hl, f2[9] = 0, f2[10] = 0, f2[11] = 0;
  memset(f2 + 12, ' ', hl);
  memcpy(f2 + 12, v2dict, sizeof v2dict - 1);
  f2[12 + hl - 1] = '\n';
  const unsigned char be[12] = {0x3F, 0x80, 0, 0, 0xC0, 0x20, 0, 0, 0x7F, 0x80, 0, 0}; /* 1, -2.5, inf */
  memcpy(f2 + 12 + hl, be, 12);
  snprintf(path, sizeof path, "%s/v2.npy", tmpdir);
  spit(path, f2, sizeof f2);
  r = morrt_npy_read_f32(path, &nd, shape, err, sizeof err);
  ck_assert_msg(r != NULL, "%s", err);
  ck_assert(nd == 1 && shape[0] == 3 && r[0] == 1.0f && r[1] == -2.5f && isinf(r[2]));
  free(r);

  /* Broken files give errors. */
  spit(path, "not numpy at all", 16);
  ck_assert_ptr_null(morrt_npy_read_f32(path, &nd, shape, err, sizeof err));
  ck_assert_msg(strstr(err, "bad magic") != NULL, "%s", err);
  snprintf(path, sizeof path, "%s/a.npy", tmpdir);
  b = slurp(path, &n);
  spit(path, b, n - 4);
  free(b);
  ck_assert_ptr_null(morrt_npy_read_f32(path, &nd, shape, err, sizeof err));
  ck_assert_msg(strstr(err, "truncated data") != NULL, "%s", err);
  ck_assert_ptr_null(morrt_npy_read_f32("/nonexistent.npy", &nd, shape, err, sizeof err));
  ck_assert_int_eq(morrt_npy_write_f32("/nonexistent/dir/x.npy", c3, 2, 2, err, sizeof err), -1);
  ck_assert_msg(strstr(err, "/nonexistent/dir/x.npy: cannot create") != NULL, "%s", err);
  ck_assert_int_eq(count_tmp_files(), 0);
  remove_tmpdir();
}
END_TEST

/* ---- thread pool ------------------------------------------------------------------------ */

typedef struct cover {
  atomic_int *hits;
  int64_t n;
  int nthreads;
  atomic_int bad;
} cover;

static void cover_fn(void *ctx, int64_t b, int64_t e, int tid) {
  cover *c = ctx;
  int64_t T = c->nthreads;
  /* chunk tid is [n*tid/T, n*(tid+1)/T) */
  if (tid < 0 || tid >= c->nthreads || b != c->n * tid / T || e != c->n * (tid + 1) / T || b >= e)
    atomic_fetch_add(&c->bad, 1);
  for (int64_t i = b; i < e; i++)
    atomic_fetch_add(&c->hits[i], 1);
}

START_TEST(test_pool_coverage) {
  static const int threads[] = {1, 2, 3, 4, 7, 8, 16};
  static const int64_t sizes[] = {0, 1, 2, 3, 5, 7, 8, 15, 16, 17, 100, 1000, 4097};
  for (size_t t = 0; t < sizeof threads / sizeof threads[0]; t++) {
    morrt_pool *pool = morrt_pool_create(threads[t], 0);
    ck_assert_ptr_nonnull(pool);
    ck_assert_int_eq(morrt_pool_size(pool), threads[t]);
    for (int rep = 0; rep < 30; rep++) {
      for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        int64_t n = sizes[s];
        cover c = {calloc((size_t)n + 1, sizeof(atomic_int)), n, threads[t], 0};
        morrt_pool_run(pool, cover_fn, &c, n);
        for (int64_t i = 0; i < n; i++)
          ck_assert_msg(atomic_load(&c.hits[i]) == 1, "T=%d n=%lld: index %lld hit %d times", threads[t],
                        (long long)n, (long long)i, atomic_load(&c.hits[i]));
        ck_assert_int_eq(atomic_load(&c.bad), 0);
        free(c.hits);
      }
      if (rep % 10 == 9) { /* let the workers fall asleep, so the condvar path runs too */
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
      }
    }
    morrt_pool_free(pool);
  }
  morrt_pool *dflt = morrt_pool_create(0, 0);
  ck_assert_int_ge(morrt_pool_size(dflt), 1);
  morrt_pool_free(dflt);
  morrt_pool_free(NULL);
}
END_TEST

static void sum_fn(void *ctx, int64_t b, int64_t e, int tid) {
  (void)tid;
  atomic_llong *sum = ctx;
  long long s = 0;
  for (int64_t i = b; i < e; i++)
    s += i;
  atomic_fetch_add(sum, s);
}

START_TEST(test_pool_many_runs) {
  /* Many back-to-back small jobs (the decode-loop pattern). */
  morrt_pool *pool = morrt_pool_create(4, 0);
  for (int i = 0; i < 20000; i++) {
    atomic_llong sum = 0;
    int64_t n = 1 + i % 97;
    morrt_pool_run(pool, sum_fn, &sum, n);
    ck_assert_int_eq(atomic_load(&sum), n * (n - 1) / 2);
  }
  morrt_pool_free(pool);
}
END_TEST

static void cpu_fn(void *ctx, int64_t b, int64_t e, int tid) {
  (void)b, (void)e;
  ((int *)ctx)[tid] = sched_getcpu();
}

/* MORRT_POOL_PIN: one thread per CPU, each on its own; only when the pool
 * has exactly one thread per CPU; MORRT_PIN=0 turns it off; the creator's
 * CPU set comes back at free. */
START_TEST(test_pool_pin) {
  int n = morrt_cpu_count();
  cpu_set_t before, during, after;
  ck_assert_int_eq(sched_getaffinity(0, sizeof before, &before), 0);
  ck_assert_int_eq(CPU_COUNT(&before), n);
  unsetenv("MORRT_PIN");
  morrt_pool *p = morrt_pool_create(n, MORRT_POOL_PIN);
  ck_assert_ptr_nonnull(p);
  if (n == 1) { /* a one-thread pool has nothing to pin */
    ck_assert_int_eq(morrt_pool_pinned(p), 0);
    morrt_pool_free(p);
    return;
  }
  ck_assert_int_eq(morrt_pool_pinned(p), 1);
  ck_assert_int_eq(sched_getaffinity(0, sizeof during, &during), 0);
  ck_assert_int_eq(CPU_COUNT(&during), 1);
  int cpu[1024];
  for (int rep = 0; rep < 3; rep++) {
    for (int i = 0; i < n; i++) cpu[i] = -1;
    morrt_pool_run(p, cpu_fn, cpu, n);
    for (int i = 0; i < n; i++) {
      ck_assert_msg(cpu[i] >= 0 && CPU_ISSET(cpu[i], &before), "thread %d ran on CPU %d", i, cpu[i]);
      for (int j = 0; j < i; j++) ck_assert_msg(cpu[i] != cpu[j], "threads %d and %d share CPU %d", j, i, cpu[i]);
    }
  }
  morrt_pool_free(p);
  ck_assert_int_eq(sched_getaffinity(0, sizeof after, &after), 0);
  ck_assert(CPU_EQUAL(&before, &after));
  /* more threads than CPUs: not pinned; nor with MORRT_PIN=0 */
  p = morrt_pool_create(n + 1, MORRT_POOL_PIN);
  ck_assert_int_eq(morrt_pool_pinned(p), 0);
  morrt_pool_free(p);
  setenv("MORRT_PIN", "0", 1);
  p = morrt_pool_create(n, MORRT_POOL_PIN);
  ck_assert_int_eq(morrt_pool_pinned(p), 0);
  morrt_pool_free(p);
  unsetenv("MORRT_PIN");
  ck_assert_int_eq(sched_getaffinity(0, sizeof after, &after), 0);
  ck_assert(CPU_EQUAL(&before, &after));
}
END_TEST

/* ---- suite ---------------------------------------------------------------------------- */

static Suite *runtime_suite(void) {
  Suite *s = suite_create("runtime");
  TCase *tc = tcase_create("tokenizer");
  tcase_set_timeout(tc, 60);
  tcase_add_loop_test(tc, test_tokenizer_golden_ids, 0, N_TOKENIZER_DIRS);
  tcase_add_loop_test(tc, test_tokenizer_round_trip, 0, N_TOKENIZER_DIRS);
  tcase_add_test(tc, test_tokenizer_api);
  tcase_add_test(tc, test_tokenizer_errors);
  tcase_add_test(tc, test_unicode_classes);
  suite_add_tcase(s, tc);
  tc = tcase_create("json");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_json_values);
  tcase_add_test(tc, test_json_errors);
  tcase_add_test(tc, test_json_depth);
  tcase_add_test(tc, test_json_fuzz);
  suite_add_tcase(s, tc);
  tc = tcase_create("sampler");
  tcase_add_test(tc, test_rng_known_answers);
  tcase_add_test(tc, test_sampler_greedy_and_determinism);
  tcase_add_test(tc, test_sampler_support);
  suite_add_tcase(s, tc);
  tc = tcase_create("npy");
  tcase_add_test(tc, test_npy);
  suite_add_tcase(s, tc);
  tc = tcase_create("threadpool");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_pool_coverage);
  tcase_add_test(tc, test_pool_many_runs);
  tcase_add_test(tc, test_pool_pin);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(runtime_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? 0 : 1;
}
