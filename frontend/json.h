/* json.h: helpers the frontend shares for reading JSON with cJSON: parsing
 * with file:line:col errors, and wording "expected X, got Y" messages.
 * Internal to frontend/. */
#ifndef MOR_FRONTEND_JSON_H
#define MOR_FRONTEND_JSON_H
#include <stddef.h>
#include <cjson/cJSON.h>
#include "ir/util.h"

/* Parse len bytes of text (need not be NUL-terminated). On failure, NULL and
 * "<where>:<line>:<col>: malformed JSON (<what>)" plus the offending line
 * and a caret under the column. Only whitespace may follow the value. */
cJSON *mor_json_parse(const char *where, const char *text, size_t len, mor_err *err);

/* What a value is, for messages: "a string", "a number", "an array", ... */
const char *mor_json_kind(const cJSON *v);

/* The value as a message shows it after "got": 1.5, "text", an array, ...
 * Writes into buf (NUL-terminated) and returns it. */
const char *mor_json_show(const cJSON *v, char *buf, size_t n);

/* A number formatted as short as it round-trips (%.15g or %.17g). */
const char *mor_json_num(double d, char *buf, size_t n);

/* Integer-valued finite number with |v| <= 2^53 (exact in a double). */
int mor_json_is_int(const cJSON *v);

/* First key that appears twice among obj's children, or NULL. */
const char *mor_json_dup_key(const cJSON *obj);

#endif
