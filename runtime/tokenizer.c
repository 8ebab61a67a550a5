/* tokenizer.c: byte-level BPE from a Hugging Face tokenizer.json. Encoding is
 * added-token matching -> pre-tokenizer steps (prefix space, GPT-2 / Llama-3
 * regex split written by hand, digit split) -> BPE merges by rank per piece. */
#include "tokenizer.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "unicode.h"

/* ---- GPT-2 byte <-> unicode mapping -------------------------------------------
 * Byte-level BPE spells every byte as one printable code point: the printable
 * Latin-1 bytes stand for themselves, the other 68 map to U+0100..U+0143 in
 * byte order. Vocab strings are in that spelling; we store them as bytes. */

#define BYTE_CP_LIMIT 0x144

static void byte_maps(uint32_t byte_to_cp[256], int cp_to_byte[BYTE_CP_LIMIT]) {
  uint32_t extra = 0;
  for (int i = 0; i < BYTE_CP_LIMIT; i++)
    cp_to_byte[i] = -1;
  for (int b = 0; b < 256; b++) {
    int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    byte_to_cp[b] = printable ? (uint32_t)b : 256 + extra++;
    cp_to_byte[byte_to_cp[b]] = b;
  }
}

/* ---- tables -------------------------------------------------------------------- */

static uint64_t hash_bytes(const char *s, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++)
    h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
  return h ^ (h >> 29);
}

static uint64_t hash_u64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  return x ^ (x >> 33);
}

typedef struct vslot { /* byte string -> id */
  size_t off;          /* into tok->pool */
  uint32_t len;
  int32_t id; /* -1: empty */
} vslot;

typedef struct mslot { /* (left id, right id) -> merge */
  uint64_t key;        /* left << 32 | right; UINT64_MAX: empty */
  int32_t rank, merged;
} mslot;

typedef struct added_token {
  size_t off; /* content, into tok->pool */
  uint32_t len;
  int32_t id;
  unsigned char special, normalized, lstrip, rstrip, single_word;
} added_token;

typedef enum step_kind {
  STEP_PREFIX_SPACE, /* ByteLevel add_prefix_space */
  STEP_SPLIT_GPT2,   /* ByteLevel use_regex, or Split with the GPT-2 regex */
  STEP_SPLIT_LLAMA3, /* Split with the Llama-3 (digits=3) or Qwen2 (digits=1) regex */
  STEP_DIGITS,       /* Digits pre-tokenizer */
} step_kind;

typedef struct step {
  step_kind kind;
  int arg; /* LLAMA3: max digits per number piece; DIGITS: individual_digits */
} step;

#define MAX_STEPS 16
#define MAX_ID ((1 << 24) - 1) /* ids are dense in practice; this bounds the id table */

struct morrt_tokenizer {
  char *pool; /* all token strings, NUL-terminated */
  size_t pool_len, pool_cap;
  int32_t n_ids;      /* vocab size: max id + 1 */
  size_t *id_off;     /* per id: its decoded bytes in pool, or SIZE_MAX */
  uint32_t *id_len;
  vslot *vocab;       /* open addressing, power-of-two capacity */
  size_t vocab_cap;
  mslot *merges;
  size_t merges_cap;
  int32_t byte_id[256]; /* id of each single byte, or -1 */
  added_token *added;
  size_t n_added;
  step steps[MAX_STEPS];
  int n_steps;
  int ignore_merges;
  unsigned char added_first[2][256]; /* [normalized][byte]: some added token starts with it */
  int32_t unk_id; /* -1: none */
  int fuse_unk;
};

/* ---- loading helpers ------------------------------------------------------------ */

typedef struct loader {
  morrt_tokenizer *tok;
  const char *name;
  char *err;
  size_t errlen;
  uint32_t byte_to_cp[256];
  int cp_to_byte[BYTE_CP_LIMIT];
} loader;

/* Make a message safe to print, in place (names and regexes from the file
 * end up in it): control bytes but newlines, and bytes that are not UTF-8,
 * become '?'. */
static void clean_msg(char *s) {
  for (unsigned char *p = (unsigned char *)s; *p;) {
    int n = *p < 0x80 ? 1 : *p >= 0xc2 && *p <= 0xdf ? 2 : *p >= 0xe0 && *p <= 0xef ? 3 : *p >= 0xf0 && *p <= 0xf4 ? 4 : 0;
    for (int i = 1; i < n; i++)
      if ((p[i] & 0xc0) != 0x80)
        n = 0;
    if (n == 3 && ((p[0] == 0xe0 && p[1] < 0xa0) || (p[0] == 0xed && p[1] >= 0xa0)))
      n = 0; /* overlong, surrogate */
    if (n == 4 && ((p[0] == 0xf0 && p[1] < 0x90) || (p[0] == 0xf4 && p[1] >= 0x90)))
      n = 0; /* overlong, past U+10FFFF */
    if (n == 1 && ((*p < 0x20 && *p != '\n') || *p == 0x7f))
      n = 0;
    if (n == 0)
      *p++ = '?';
    else
      p += n;
  }
}

static int lfail(loader *ld, const morrt_json *at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int lfail(loader *ld, const morrt_json *at, const char *fmt, ...) {
  if (!ld->err || ld->errlen == 0)
    return -1;
  int k;
  if (at)
    k = snprintf(ld->err, ld->errlen, "%s:%d:%d: ", ld->name, at->line, at->col);
  else
    k = snprintf(ld->err, ld->errlen, "%s: ", ld->name);
  if (k < 0 || (size_t)k >= ld->errlen)
    return -1;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(ld->err + k, ld->errlen - (size_t)k, fmt, ap);
  va_end(ap);
  clean_msg(ld->err);
  return -1;
}

/* Append bytes (plus a NUL) to the pool; returns the offset or SIZE_MAX. */
static size_t pool_add(morrt_tokenizer *tok, const char *s, size_t n) {
  if (tok->pool_cap - tok->pool_len < n + 1) {
    size_t cap = tok->pool_cap ? tok->pool_cap : 4096;
    while (cap - tok->pool_len < n + 1) {
      if (cap > SIZE_MAX / 2)
        return SIZE_MAX;
      cap *= 2;
    }
    char *np = realloc(tok->pool, cap);
    if (!np)
      return SIZE_MAX;
    tok->pool = np;
    tok->pool_cap = cap;
  }
  size_t off = tok->pool_len;
  memcpy(tok->pool + off, s, n);
  tok->pool[off + n] = 0;
  tok->pool_len += n + 1;
  return off;
}

/* Convert a byte-level spelled string to bytes in out (capacity >= n).
 * Returns the byte count, or -1 if some character is not in the mapping. */
static long unmap_bytes(const loader *ld, const char *s, size_t n, char *out) {
  size_t i = 0, k = 0;
  while (i < n) {
    uint32_t cp;
    int l = morrt_utf8_decode((const unsigned char *)s + i, n - i, &cp);
    if (cp >= BYTE_CP_LIMIT || ld->cp_to_byte[cp] < 0)
      return -1;
    out[k++] = (char)ld->cp_to_byte[cp];
    i += (size_t)l;
  }
  return (long)k;
}

static vslot *vocab_find(const morrt_tokenizer *tok, const char *s, size_t n) {
  if (!tok->vocab_cap)
    return NULL;
  size_t mask = tok->vocab_cap - 1, i = (size_t)hash_bytes(s, n) & mask;
  for (;;) {
    vslot *v = &tok->vocab[i];
    if (v->id < 0)
      return v;
    if (v->len == n && memcmp(tok->pool + v->off, s, n) == 0)
      return v;
    i = (i + 1) & mask;
  }
}

static int32_t vocab_get(const morrt_tokenizer *tok, const char *s, size_t n) {
  const vslot *v = vocab_find(tok, s, n);
  return v ? v->id : -1;
}

static const mslot *merge_find(const morrt_tokenizer *tok, int32_t a, int32_t b) {
  uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
  size_t mask = tok->merges_cap - 1, i = (size_t)hash_u64(key) & mask;
  for (;;) {
    const mslot *m = &tok->merges[i];
    if (m->key == key || m->key == UINT64_MAX)
      return m;
    i = (i + 1) & mask;
  }
}

static size_t pow2_at_least(size_t n) {
  size_t c = 16;
  while (c < n)
    c *= 2;
  return c;
}

/* Record the decoded bytes of an id (the last definition wins). */
static int set_id_bytes(loader *ld, int32_t id, size_t off, uint32_t len) {
  morrt_tokenizer *tok = ld->tok;
  if (id >= tok->n_ids) {
    size_t n = (size_t)id + 1, cap = pow2_at_least(n);
    size_t *no = realloc(tok->id_off, cap * sizeof *no);
    if (!no)
      return -1;
    tok->id_off = no;
    uint32_t *nl = realloc(tok->id_len, cap * sizeof *nl);
    if (!nl)
      return -1;
    tok->id_len = nl;
    for (size_t i = (size_t)tok->n_ids; i < cap; i++)
      tok->id_off[i] = SIZE_MAX, tok->id_len[i] = 0;
    tok->n_ids = (int32_t)n;
  }
  tok->id_off[id] = off;
  tok->id_len[id] = len;
  return 0;
}

/* ---- loading: model ---------------------------------------------------------------- */

static int load_vocab(loader *ld, const morrt_json *vocab) {
  morrt_tokenizer *tok = ld->tok;
  if (!vocab || vocab->type != MORRT_JSON_OBJECT)
    return lfail(ld, vocab, "model.vocab: expected an object of token -> id");
  tok->vocab_cap = pow2_at_least(vocab->len * 2 + 1);
  tok->vocab = malloc(tok->vocab_cap * sizeof *tok->vocab);
  size_t tmpcap = 256;
  char *tmp = malloc(tmpcap);
  if (!tok->vocab || !tmp) {
    free(tmp);
    return lfail(ld, NULL, "out of memory");
  }
  for (size_t i = 0; i < tok->vocab_cap; i++)
    tok->vocab[i].id = -1;
  for (size_t i = 0; i < vocab->len; i++) {
    const morrt_json_member *m = &vocab->u.members[i];
    long long id;
    if (!morrt_json_int(&m->value, 0, MAX_ID, &id)) {
      free(tmp);
      return lfail(ld, &m->value, "model.vocab[\"%s\"]: expected an integer id in [0, %d]", m->key, MAX_ID);
    }
    if (m->key_len > UINT32_MAX / 2) {
      free(tmp);
      return lfail(ld, &m->value, "model.vocab: token too long");
    }
    if (m->key_len > tmpcap) {
      free(tmp);
      tmpcap = m->key_len;
      tmp = malloc(tmpcap);
      if (!tmp)
        return lfail(ld, NULL, "out of memory");
    }
    long nb = unmap_bytes(ld, m->key, m->key_len, tmp);
    size_t off;
    uint32_t len;
    if (nb >= 0) {
      off = pool_add(tok, tmp, (size_t)nb);
      len = (uint32_t)nb;
    } else {
      /* Not in byte-level spelling: BPE can never produce it; its text is
       * its bytes (as the Hugging Face ByteLevel decoder does). */
      off = pool_add(tok, m->key, m->key_len);
      len = (uint32_t)m->key_len;
    }
    if (off == SIZE_MAX || set_id_bytes(ld, (int32_t)id, off, len) != 0) {
      free(tmp);
      return lfail(ld, NULL, "out of memory");
    }
    if (nb >= 0) {
      vslot *v = vocab_find(tok, tok->pool + off, len);
      v->off = off;
      v->len = len;
      v->id = (int32_t)id;
    }
  }
  free(tmp);
  for (int b = 0; b < 256; b++) {
    char c = (char)b;
    tok->byte_id[b] = vocab_get(tok, &c, 1);
  }
  return 0;
}

/* Look up one side of a merge (byte-level spelling). Returns the id, -1 when
 * the string is not in byte-level spelling (the merge can never apply), or
 * -2 (error reported) when it is missing from the vocab. */
static int32_t merge_side(loader *ld, const morrt_json *at, size_t idx, const char *what, const char *s, size_t n,
                          char *tmp) {
  long nb = unmap_bytes(ld, s, n, tmp);
  if (nb < 0)
    return -1;
  int32_t id = vocab_get(ld->tok, tmp, (size_t)nb);
  if (id < 0) {
    lfail(ld, at, "model.merges[%zu]: %s \"%.*s\" is not in model.vocab", idx, what, (int)(n > 200 ? 200 : n), s);
    return -2;
  }
  return id;
}

static int load_merges(loader *ld, const morrt_json *merges) {
  static const morrt_json no_merges = {.type = MORRT_JSON_ARRAY};
  morrt_tokenizer *tok = ld->tok;
  if (!merges)
    merges = &no_merges;
  if (merges->type != MORRT_JSON_ARRAY)
    return lfail(ld, merges, "model.merges: expected an array");
  tok->merges_cap = pow2_at_least(merges->len * 2 + 1);
  tok->merges = malloc(tok->merges_cap * sizeof *tok->merges);
  if (!tok->merges)
    return lfail(ld, NULL, "out of memory");
  for (size_t i = 0; i < tok->merges_cap; i++)
    tok->merges[i].key = UINT64_MAX;
  char *tmp = NULL, *joined = NULL;
  size_t tmpcap = 0;
  int rc = -1;
  for (size_t i = 0; i < merges->len; i++) {
    const morrt_json *m = &merges->u.items[i];
    const char *a, *b;
    size_t na, nb;
    if (m->type == MORRT_JSON_STRING) {
      const char *sp = memchr(m->u.string, ' ', m->len);
      if (!sp || memchr(sp + 1, ' ', m->len - (size_t)(sp + 1 - m->u.string))) {
        lfail(ld, m, "model.merges[%zu]: expected \"left right\" (two tokens split by one space)", i);
        goto out;
      }
      a = m->u.string, na = (size_t)(sp - a);
      b = sp + 1, nb = m->len - na - 1;
    } else if (m->type == MORRT_JSON_ARRAY && m->len == 2 && m->u.items[0].type == MORRT_JSON_STRING &&
               m->u.items[1].type == MORRT_JSON_STRING) {
      a = m->u.items[0].u.string, na = m->u.items[0].len;
      b = m->u.items[1].u.string, nb = m->u.items[1].len;
    } else {
      lfail(ld, m, "model.merges[%zu]: expected a string \"a b\" or an array [\"a\", \"b\"]", i);
      goto out;
    }
    if (na + nb + 1 > tmpcap) {
      tmpcap = 2 * (na + nb + 1);
      free(tmp);
      free(joined);
      tmp = malloc(tmpcap);
      joined = malloc(tmpcap);
      if (!tmp || !joined) {
        lfail(ld, NULL, "out of memory");
        goto out;
      }
    }
    int32_t ia = merge_side(ld, m, i, "token", a, na, tmp);
    if (ia == -2)
      goto out;
    int32_t ib = merge_side(ld, m, i, "token", b, nb, tmp);
    if (ib == -2)
      goto out;
    if (ia < 0 || ib < 0)
      continue;
    memcpy(joined, a, na);
    memcpy(joined + na, b, nb);
    int32_t im = merge_side(ld, m, i, "merged token", joined, na + nb, tmp);
    if (im < 0)
      goto out; /* (-1 cannot happen: both sides are in byte-level spelling) */
    mslot *s = (mslot *)merge_find(tok, ia, ib);
    s->key = (uint64_t)(uint32_t)ia << 32 | (uint32_t)ib;
    s->rank = (int32_t)(i > INT32_MAX ? INT32_MAX : i); /* a repeated pair: the later rank wins, as in HF */
    s->merged = im;
  }
  rc = 0;
out:
  free(tmp);
  free(joined);
  return rc;
}

static int get_bool(loader *ld, const morrt_json *obj, const char *key, int dflt, const char *where, int *out) {
  const morrt_json *v = morrt_json_get(obj, key);
  *out = dflt;
  if (!v || v->type == MORRT_JSON_NULL)
    return 0;
  if (v->type != MORRT_JSON_BOOL)
    return lfail(ld, v, "%s.%s: expected true or false", where, key);
  *out = v->u.boolean;
  return 0;
}

/* A key that must be absent, null, or an empty string. */
static int must_be_unset(loader *ld, const morrt_json *obj, const char *key, const char *where, const char *why) {
  const morrt_json *v = morrt_json_get(obj, key);
  if (!v || v->type == MORRT_JSON_NULL || (v->type == MORRT_JSON_STRING && v->len == 0))
    return 0;
  return lfail(ld, v, "%s.%s is not supported (%s)", where, key, why);
}

static int load_model(loader *ld, const morrt_json *model) {
  morrt_tokenizer *tok = ld->tok;
  if (!model || model->type != MORRT_JSON_OBJECT)
    return lfail(ld, model, "model: expected an object");
  const morrt_json *type = morrt_json_get(model, "type");
  const char *t = morrt_json_str(type);
  if (type && (!t || strcmp(t, "BPE") != 0))
    return lfail(ld, type, "model.type \"%s\" is not supported (only byte-level \"BPE\")", t ? t : "?");
  if (!type && !morrt_json_get(model, "merges"))
    return lfail(ld, model, "model: no \"type\" and no \"merges\": not a BPE model");
  if (must_be_unset(ld, model, "continuing_subword_prefix", "model", "only byte-level BPE") ||
      must_be_unset(ld, model, "end_of_word_suffix", "model", "only byte-level BPE"))
    return -1;
  if (get_bool(ld, model, "ignore_merges", 0, "model", &tok->ignore_merges) ||
      get_bool(ld, model, "fuse_unk", 0, "model", &tok->fuse_unk))
    return -1;
  int byte_fallback;
  if (get_bool(ld, model, "byte_fallback", 0, "model", &byte_fallback))
    return -1;
  if (load_vocab(ld, morrt_json_get(model, "vocab")) || load_merges(ld, morrt_json_get(model, "merges")))
    return -1;
  tok->unk_id = -1;
  const morrt_json *unk = morrt_json_get(model, "unk_token");
  if (unk && unk->type != MORRT_JSON_NULL) {
    if (unk->type != MORRT_JSON_STRING)
      return lfail(ld, unk, "model.unk_token: expected a string or null");
    char *tmp = malloc(unk->len + 1);
    if (!tmp)
      return lfail(ld, NULL, "out of memory");
    long nb = unmap_bytes(ld, unk->u.string, unk->len, tmp);
    /* The unk token usually is not in byte-level spelling: find it by id scan. */
    for (int32_t id = 0; id < tok->n_ids && tok->unk_id < 0; id++)
      if (tok->id_off[id] != SIZE_MAX &&
          ((tok->id_len[id] == unk->len && memcmp(tok->pool + tok->id_off[id], unk->u.string, unk->len) == 0) ||
           (nb >= 0 && tok->id_len[id] == (uint32_t)nb && memcmp(tok->pool + tok->id_off[id], tmp, (size_t)nb) == 0)))
        tok->unk_id = id;
    free(tmp);
  }
  if (byte_fallback)
    for (int b = 0; b < 256; b++)
      if (tok->byte_id[b] < 0)
        return lfail(ld, morrt_json_get(model, "byte_fallback"),
                     "model.byte_fallback with bytes missing from the vocab is not supported "
                     "(that is SentencePiece-style BPE, not byte-level)");
  return 0;
}

/* ---- loading: added tokens ----------------------------------------------------------- */

static int load_added(loader *ld, const morrt_json *arr) {
  morrt_tokenizer *tok = ld->tok;
  if (!arr || arr->type == MORRT_JSON_NULL)
    return 0;
  if (arr->type != MORRT_JSON_ARRAY)
    return lfail(ld, arr, "added_tokens: expected an array");
  tok->added = calloc(arr->len ? arr->len : 1, sizeof *tok->added);
  if (!tok->added)
    return lfail(ld, NULL, "out of memory");
  for (size_t i = 0; i < arr->len; i++) {
    const morrt_json *a = &arr->u.items[i];
    char where[48];
    snprintf(where, sizeof where, "added_tokens[%zu]", i);
    if (a->type != MORRT_JSON_OBJECT)
      return lfail(ld, a, "%s: expected an object", where);
    const morrt_json *content = morrt_json_get(a, "content");
    long long id;
    if (!content || content->type != MORRT_JSON_STRING)
      return lfail(ld, content ? content : a, "%s.content: expected a string", where);
    if (!morrt_json_int(morrt_json_get(a, "id"), 0, MAX_ID, &id))
      return lfail(ld, a, "%s.id: expected an integer id in [0, %d]", where, MAX_ID);
    if (content->len > UINT32_MAX / 2)
      return lfail(ld, content, "%s.content: too long", where);
    int special, normalized, lstrip, rstrip, single_word;
    if (get_bool(ld, a, "special", 0, where, &special) || get_bool(ld, a, "normalized", !special, where, &normalized) ||
        get_bool(ld, a, "lstrip", 0, where, &lstrip) || get_bool(ld, a, "rstrip", 0, where, &rstrip) ||
        get_bool(ld, a, "single_word", 0, where, &single_word))
      return -1;
    size_t off = pool_add(tok, content->u.string, content->len);
    if (off == SIZE_MAX || set_id_bytes(ld, (int32_t)id, off, (uint32_t)content->len) != 0)
      return lfail(ld, NULL, "out of memory");
    if (content->len == 0)
      continue; /* can never match */
    added_token *t = &tok->added[tok->n_added++];
    t->off = off;
    t->len = (uint32_t)content->len;
    t->id = (int32_t)id;
    t->special = (unsigned char)special;
    t->normalized = (unsigned char)normalized;
    t->lstrip = (unsigned char)lstrip;
    t->rstrip = (unsigned char)rstrip;
    t->single_word = (unsigned char)single_word;
    tok->added_first[normalized ? 1 : 0][(unsigned char)content->u.string[0]] = 1;
  }
  return 0;
}

/* ---- loading: normalizer, pre-tokenizer, decoder ---------------------------------------- */

static const char GPT2_PATTERN[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
static const char LLAMA3_PATTERN[] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
                                     "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char QWEN2_PATTERN[] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
                                    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

static int add_step(loader *ld, const morrt_json *at, step_kind kind, int arg) {
  morrt_tokenizer *tok = ld->tok;
  if (tok->n_steps == MAX_STEPS)
    return lfail(ld, at, "pre_tokenizer: more than %d steps", MAX_STEPS);
  tok->steps[tok->n_steps].kind = kind;
  tok->steps[tok->n_steps].arg = arg;
  tok->n_steps++;
  return 0;
}

static int load_pre(loader *ld, const morrt_json *pt, const char *where, int *saw_byte_level) {
  if (!pt || pt->type != MORRT_JSON_OBJECT)
    return lfail(ld, pt, "%s: expected an object", where);
  const char *type = morrt_json_str(morrt_json_get(pt, "type"));
  if (!type)
    return lfail(ld, pt, "%s.type: expected a string", where);
  if (strcmp(type, "Sequence") == 0) {
    const morrt_json *list = morrt_json_get(pt, "pretokenizers");
    if (!list || list->type != MORRT_JSON_ARRAY)
      return lfail(ld, list ? list : pt, "%s.pretokenizers: expected an array", where);
    for (size_t i = 0; i < list->len; i++) {
      char sub[96];
      snprintf(sub, sizeof sub, "%s.pretokenizers[%zu]", where, i);
      if (load_pre(ld, &list->u.items[i], sub, saw_byte_level))
        return -1;
    }
    return 0;
  }
  if (strcmp(type, "ByteLevel") == 0) {
    int prefix, use_regex;
    if (get_bool(ld, pt, "add_prefix_space", 1, where, &prefix) || get_bool(ld, pt, "use_regex", 1, where, &use_regex))
      return -1;
    *saw_byte_level = 1;
    if (prefix && add_step(ld, pt, STEP_PREFIX_SPACE, 0))
      return -1;
    if (use_regex && add_step(ld, pt, STEP_SPLIT_GPT2, 0))
      return -1;
    return 0;
  }
  if (strcmp(type, "Digits") == 0) {
    int individual;
    if (get_bool(ld, pt, "individual_digits", 0, where, &individual))
      return -1;
    return add_step(ld, pt, STEP_DIGITS, individual);
  }
  if (strcmp(type, "Split") == 0) {
    const morrt_json *pat = morrt_json_get(pt, "pattern");
    const char *re = morrt_json_str(morrt_json_get(pat, "Regex"));
    const char *behavior = morrt_json_str(morrt_json_get(pt, "behavior"));
    int invert;
    if (get_bool(ld, pt, "invert", 0, where, &invert))
      return -1;
    if (!re)
      return lfail(ld, pat ? pat : pt, "%s.pattern: only {\"Regex\": ...} patterns are supported", where);
    if (!behavior || strcmp(behavior, "Isolated") != 0 || invert)
      return lfail(ld, pt, "%s: only behavior \"Isolated\" with invert false is supported", where);
    if (strcmp(re, GPT2_PATTERN) == 0)
      return add_step(ld, pt, STEP_SPLIT_GPT2, 0);
    if (strcmp(re, LLAMA3_PATTERN) == 0)
      return add_step(ld, pt, STEP_SPLIT_LLAMA3, 3);
    if (strcmp(re, QWEN2_PATTERN) == 0)
      return add_step(ld, pt, STEP_SPLIT_LLAMA3, 1);
    return lfail(ld, pat, "%s.pattern: regex %.300s is not one this runtime implements (GPT-2, Llama-3, Qwen2)",
                 where, re);
  }
  return lfail(ld, pt, "%s: pre-tokenizer \"%s\" is not supported (ByteLevel, Split, Digits, Sequence)", where, type);
}

static int load_decoder(loader *ld, const morrt_json *d, const char *where) {
  if (!d || d->type == MORRT_JSON_NULL)
    return lfail(ld, d, "%s: missing (a ByteLevel decoder is required)", where);
  const char *type = morrt_json_str(morrt_json_get(d, "type"));
  if (type && strcmp(type, "ByteLevel") == 0)
    return 0;
  if (type && strcmp(type, "Sequence") == 0) {
    const morrt_json *list = morrt_json_get(d, "decoders");
    if (!list || list->type != MORRT_JSON_ARRAY || list->len == 0)
      return lfail(ld, list ? list : d, "%s.decoders: expected a non-empty array", where);
    for (size_t i = 0; i < list->len; i++) {
      char sub[96];
      snprintf(sub, sizeof sub, "%s.decoders[%zu]", where, i);
      if (load_decoder(ld, &list->u.items[i], sub))
        return -1;
    }
    return 0;
  }
  return lfail(ld, d, "%s: decoder \"%s\" is not supported (only ByteLevel)", where, type ? type : "?");
}

static int load_normalizer(loader *ld, const morrt_json *n) {
  if (!n || n->type == MORRT_JSON_NULL)
    return 0;
  const char *type = morrt_json_str(morrt_json_get(n, "type"));
  const morrt_json *list = morrt_json_get(n, "normalizers");
  if (type && strcmp(type, "Sequence") == 0 && list && list->type == MORRT_JSON_ARRAY && list->len == 0)
    return 0;
  return lfail(ld, n, "normalizer \"%s\" is not supported (only null)", type ? type : "?");
}

morrt_tokenizer *morrt_tokenizer_load_mem(const char *json, size_t len, const char *name, char *err,
                                          size_t errlen) {
  if (err && errlen)
    err[0] = 0;
  loader ld = {.name = name ? name : "tokenizer.json", .err = err, .errlen = errlen};
  byte_maps(ld.byte_to_cp, ld.cp_to_byte);
  char msg[1024];
  morrt_json_doc *doc = morrt_json_parse(json, len, 0, msg, sizeof msg);
  if (!doc) {
    if (err && errlen)
      snprintf(err, errlen, "%s:%s", ld.name, msg);
    if (err && errlen)
      clean_msg(err);
    return NULL;
  }
  ld.tok = calloc(1, sizeof *ld.tok);
  if (!ld.tok) {
    morrt_json_free(doc);
    lfail(&ld, NULL, "out of memory");
    return NULL;
  }
  const morrt_json *root = morrt_json_root(doc);
  int saw_byte_level = 0;
  int rc = -1;
  if (root->type != MORRT_JSON_OBJECT) {
    lfail(&ld, root, "expected a JSON object at the top level");
    goto out;
  }
  const morrt_json *pre = morrt_json_get(root, "pre_tokenizer");
  if (load_model(&ld, morrt_json_get(root, "model")) || load_added(&ld, morrt_json_get(root, "added_tokens")) ||
      load_normalizer(&ld, morrt_json_get(root, "normalizer")))
    goto out;
  if (!pre || pre->type == MORRT_JSON_NULL) {
    lfail(&ld, pre, "pre_tokenizer: missing (a ByteLevel pre-tokenizer is required)");
    goto out;
  }
  if (load_pre(&ld, pre, "pre_tokenizer", &saw_byte_level))
    goto out;
  if (!saw_byte_level) {
    lfail(&ld, pre, "pre_tokenizer: no ByteLevel step, so this is not a byte-level BPE tokenizer");
    goto out;
  }
  if (load_decoder(&ld, morrt_json_get(root, "decoder"), "decoder"))
    goto out;
  rc = 0;
out:
  morrt_json_free(doc);
  if (rc != 0) {
    morrt_tokenizer_free(ld.tok);
    return NULL;
  }
  return ld.tok;
}

morrt_tokenizer *morrt_tokenizer_load(const char *path, char *err, size_t errlen) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    if (err && errlen)
      snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    return NULL;
  }
  char *buf = NULL;
  size_t len = 0, cap = 0;
  int bad = 0;
  for (;;) {
    if (len == cap) {
      size_t ncap = cap ? cap * 2 : (size_t)1 << 20;
      char *nb = ncap > cap ? realloc(buf, ncap) : NULL;
      if (!nb) {
        bad = 1;
        break;
      }
      buf = nb;
      cap = ncap;
    }
    size_t got = fread(buf + len, 1, cap - len, f);
    len += got;
    if (got == 0) {
      bad = ferror(f);
      break;
    }
  }
  fclose(f);
  if (bad) {
    free(buf);
    if (err && errlen)
      snprintf(err, errlen, "%s: cannot read the file", path);
    return NULL;
  }
  morrt_tokenizer *tok = morrt_tokenizer_load_mem(buf, len, path, err, errlen);
  free(buf);
  return tok;
}

void morrt_tokenizer_free(morrt_tokenizer *tok) {
  if (!tok)
    return;
  free(tok->pool);
  free(tok->id_off);
  free(tok->id_len);
  free(tok->vocab);
  free(tok->merges);
  free(tok->added);
  free(tok);
}

/* ---- pre-token splitting ------------------------------------------------------------------ */

/* A piece of text: [off, off+len) of the encoder's work buffer. */
typedef struct piece {
  size_t off, len;
} piece;

typedef struct encoder {
  const morrt_tokenizer *tok;
  char *buf; /* the text of every piece */
  size_t buf_len, buf_cap;
  piece *pieces, *next; /* current and next step's pieces */
  size_t n_pieces, n_next, cap_pieces, cap_next;
  int32_t *ids;
  size_t n_ids, cap_ids;
  /* BPE scratch */
  int32_t *sym_id, *sym_prev, *sym_next;
  uint32_t *sym_len;
  size_t cap_sym;
  struct heap_ent {
    int32_t rank, pos, merged;
  } *heap;
  size_t n_heap, cap_heap;
  int oom;
} encoder;

/* Make room for need elements in p (capacity *cap); on failure sets *oom and
 * returns p unchanged. */
static void *grow(void *p, size_t *cap, size_t need, size_t elem, int *oom) {
  if (need <= *cap || *oom)
    return p;
  size_t c = *cap ? *cap : 16;
  while (c < need)
    c *= 2;
  void *np = c <= SIZE_MAX / elem ? realloc(p, c * elem) : NULL;
  if (!np) {
    *oom = 1;
    return p;
  }
  *cap = c;
  return np;
}

static void emit_next(encoder *e, size_t off, size_t len) {
  if (len == 0 || e->oom)
    return;
  e->next = grow(e->next, &e->cap_next, e->n_next + 1, sizeof *e->next, &e->oom);
  if (e->oom)
    return;
  e->next[e->n_next].off = off;
  e->next[e->n_next].len = len;
  e->n_next++;
}

static uint32_t cp_at(const unsigned char *s, size_t i, size_t end, int *len) {
  uint32_t cp;
  *len = morrt_utf8_decode(s + i, end - i, &cp);
  return cp;
}

enum { CLS_LETTER, CLS_NUMBER, CLS_SPACE, CLS_OTHER };

static int cls(uint32_t cp) {
  if (morrt_unicode_is_letter(cp))
    return CLS_LETTER;
  if (morrt_unicode_is_number(cp))
    return CLS_NUMBER;
  if (morrt_unicode_is_space(cp))
    return CLS_SPACE;
  return CLS_OTHER;
}

/* End of the run of class c starting at i (at most max code points). */
static size_t run_of(const unsigned char *s, size_t i, size_t end, int c, size_t max) {
  int l;
  for (size_t k = 0; i < end && k < max; k++) {
    uint32_t cp = cp_at(s, i, end, &l);
    if (cls(cp) != c)
      break;
    i += (size_t)l;
  }
  return i;
}

/* 's 't 're 've 'm 'll 'd at i: their length, or 0. */
static size_t contraction(const unsigned char *s, size_t i, size_t end, int nocase) {
  if (s[i] != '\'' || i + 1 >= end)
    return 0;
  unsigned c1 = s[i + 1], c2 = i + 2 < end ? s[i + 2] : 0;
  if (nocase) {
    c1 = (c1 >= 'A' && c1 <= 'Z') ? c1 + 32 : c1;
    c2 = (c2 >= 'A' && c2 <= 'Z') ? c2 + 32 : c2;
  }
  if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd')
    return 2;
  if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l'))
    return 3;
  return 0;
}

/* Whitespace at i (a run [i, k)): the end of `\s+(?!\S)|\s+`. */
static size_t space_run_end(const unsigned char *s, size_t i, size_t end) {
  size_t k = i, last = i;
  int l;
  while (k < end && cls(cp_at(s, k, end, &l)) == CLS_SPACE) {
    last = k;
    k += (size_t)l;
  }
  if (k == end || last == i)
    return k;  /* \s+ to the end, or a single space before a non-space */
  return last; /* leave the last space to lead the next piece */
}

/* One match of 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ at i. */
static size_t gpt2_match(const unsigned char *s, size_t i, size_t end) {
  size_t n = contraction(s, i, end, 0);
  if (n)
    return i + n;
  int l;
  size_t j = (s[i] == ' ' && i + 1 < end) ? i + 1 : i;
  int c = cls(cp_at(s, j, end, &l));
  if (c != CLS_SPACE)
    return run_of(s, j, end, c, SIZE_MAX);
  return space_run_end(s, i, end);
}

/* One match of the Llama-3 regex at i (digits = 3), or Qwen2's (digits = 1):
 * (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
 *  ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+ */
static size_t llama3_match(const unsigned char *s, size_t i, size_t end, int digits) {
  size_t n = contraction(s, i, end, 1);
  if (n)
    return i + n;
  int l0, l1;
  uint32_t cp0 = cp_at(s, i, end, &l0);
  int c0 = cls(cp0);
  if (c0 == CLS_LETTER)
    return run_of(s, i, end, CLS_LETTER, SIZE_MAX);
  if (c0 != CLS_NUMBER && cp0 != '\r' && cp0 != '\n' && i + (size_t)l0 < end &&
      cls(cp_at(s, i + (size_t)l0, end, &l1)) == CLS_LETTER)
    return run_of(s, i + (size_t)l0, end, CLS_LETTER, SIZE_MAX);
  if (c0 == CLS_NUMBER)
    return run_of(s, i, end, CLS_NUMBER, (size_t)digits);
  size_t j = (cp0 == ' ' && i + 1 < end) ? i + 1 : i;
  if (cls(cp_at(s, j, end, &l1)) == CLS_OTHER) {
    size_t k = run_of(s, j, end, CLS_OTHER, SIZE_MAX);
    while (k < end && (s[k] == '\r' || s[k] == '\n'))
      k++;
    return k;
  }
  /* c0 is white space here. \s*[\r\n]+ ends just after the run's last newline. */
  size_t k = i, after_nl = 0;
  int l;
  while (k < end) {
    uint32_t cp = cp_at(s, k, end, &l);
    if (cls(cp) != CLS_SPACE)
      break;
    k += (size_t)l;
    if (cp == '\r' || cp == '\n')
      after_nl = k;
  }
  if (after_nl)
    return after_nl;
  return space_run_end(s, i, end);
}

static void split_piece(encoder *e, const step *st, piece p) {
  const unsigned char *s = (const unsigned char *)e->buf;
  size_t i = p.off, end = p.off + p.len;
  if (st->kind == STEP_DIGITS) {
    while (i < end) {
      int l;
      int digit = morrt_unicode_is_numeric(cp_at(s, i, end, &l));
      size_t k = i + (size_t)l;
      while (k < end && morrt_unicode_is_numeric(cp_at(s, k, end, &l)) == digit && (!digit || !st->arg))
        k += (size_t)l;
      emit_next(e, i, k - i);
      i = k;
    }
    return;
  }
  while (i < end) {
    size_t k = st->kind == STEP_SPLIT_GPT2 ? gpt2_match(s, i, end) : llama3_match(s, i, end, st->arg);
    if (k <= i) { /* cannot happen; never loop forever */
      int l;
      cp_at(s, i, end, &l);
      k = i + (size_t)l;
    }
    emit_next(e, i, k - i);
    i = k;
  }
}

static void run_step(encoder *e, const step *st) {
  e->n_next = 0;
  for (size_t i = 0; i < e->n_pieces && !e->oom; i++) {
    piece p = e->pieces[i];
    if (st->kind == STEP_PREFIX_SPACE) {
      if (e->buf[p.off] == ' ') {
        emit_next(e, p.off, p.len);
        continue;
      }
      e->buf = grow(e->buf, &e->buf_cap, e->buf_len + p.len + 1, 1, &e->oom);
      if (e->oom)
        return;
      size_t off = e->buf_len;
      e->buf[off] = ' ';
      memcpy(e->buf + off + 1, e->buf + p.off, p.len);
      e->buf_len += p.len + 1;
      emit_next(e, off, p.len + 1);
    } else {
      split_piece(e, st, p);
    }
  }
  piece *t = e->pieces;
  e->pieces = e->next;
  e->next = t;
  size_t tc = e->cap_pieces;
  e->cap_pieces = e->cap_next;
  e->cap_next = tc;
  e->n_pieces = e->n_next;
}

/* ---- BPE ------------------------------------------------------------------------------- */

static void push_id(encoder *e, int32_t id) {
  if (e->oom)
    return;
  e->ids = grow(e->ids, &e->cap_ids, e->n_ids + 1, sizeof *e->ids, &e->oom);
  if (e->oom)
    return;
  e->ids[e->n_ids++] = id;
}

static int heap_less(const struct heap_ent *a, const struct heap_ent *b) {
  return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

static void heap_push(encoder *e, int32_t rank, int32_t pos, int32_t merged) {
  e->heap = grow(e->heap, &e->cap_heap, e->n_heap + 1, sizeof *e->heap, &e->oom);
  if (e->oom)
    return;
  size_t i = e->n_heap++;
  struct heap_ent x = {rank, pos, merged};
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (!heap_less(&x, &e->heap[parent]))
      break;
    e->heap[i] = e->heap[parent];
    i = parent;
  }
  e->heap[i] = x;
}

static struct heap_ent heap_pop(encoder *e) {
  struct heap_ent top = e->heap[0], x = e->heap[--e->n_heap];
  size_t i = 0, n = e->n_heap;
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= n)
      break;
    if (c + 1 < n && heap_less(&e->heap[c + 1], &e->heap[c]))
      c++;
    if (!heap_less(&e->heap[c], &x))
      break;
    e->heap[i] = e->heap[c];
    i = c;
  }
  if (n)
    e->heap[i] = x;
  return top;
}

static void queue_pair(encoder *e, int32_t pos) {
  int32_t nx = e->sym_next[pos];
  if (nx < 0 || e->sym_id[pos] < 0 || e->sym_id[nx] < 0)
    return;
  const mslot *m = merge_find(e->tok, e->sym_id[pos], e->sym_id[nx]);
  if (m->key != UINT64_MAX)
    heap_push(e, m->rank, pos, m->merged);
}

/* BPE one piece of bytes and append its ids. Merges are applied lowest rank
 * first (leftmost on ties), as the Hugging Face implementation does. */
static void bpe_piece(encoder *e, const char *s, size_t n) {
  const morrt_tokenizer *tok = e->tok;
  if (tok->ignore_merges) {
    int32_t id = vocab_get(tok, s, n);
    if (id >= 0) {
      push_id(e, id);
      return;
    }
  }
  if (n > INT32_MAX / 2) {
    e->oom = 1;
    return;
  }
  if (n > e->cap_sym) {
    size_t c1 = e->cap_sym, c2 = e->cap_sym, c3 = e->cap_sym, c4 = e->cap_sym;
    e->sym_id = grow(e->sym_id, &c1, n, sizeof *e->sym_id, &e->oom);
    e->sym_prev = grow(e->sym_prev, &c2, n, sizeof *e->sym_prev, &e->oom);
    e->sym_next = grow(e->sym_next, &c3, n, sizeof *e->sym_next, &e->oom);
    e->sym_len = grow(e->sym_len, &c4, n, sizeof *e->sym_len, &e->oom);
    if (e->oom)
      return; /* the arrays that did grow are freed at the end of encode */
    e->cap_sym = c1;
  }
  /* One symbol per byte (a byte missing from the vocab becomes unk, fused if
   * fuse_unk, or is dropped when there is no unk token). */
  int32_t m = 0;
  for (size_t i = 0; i < n; i++) {
    int32_t id = tok->byte_id[(unsigned char)s[i]];
    if (id < 0) {
      if (tok->unk_id < 0)
        continue;
      id = tok->unk_id;
      if (tok->fuse_unk && m > 0 && e->sym_id[m - 1] == tok->unk_id) {
        e->sym_len[m - 1]++;
        continue;
      }
    }
    e->sym_id[m] = id;
    e->sym_len[m] = 1;
    e->sym_prev[m] = m - 1;
    e->sym_next[m] = m + 1;
    m++;
  }
  if (m == 0)
    return;
  e->sym_next[m - 1] = -1;
  e->n_heap = 0;
  for (int32_t i = 0; i + 1 < m; i++)
    queue_pair(e, i);
  while (e->n_heap > 0 && !e->oom) {
    struct heap_ent top = heap_pop(e);
    int32_t a = top.pos, b = e->sym_next[a];
    if (e->sym_len[a] == 0 || b < 0)
      continue; /* stale: a was merged away, or is now last */
    const mslot *ms = merge_find(tok, e->sym_id[a], e->sym_id[b]);
    if (ms->key == UINT64_MAX || ms->merged != top.merged || ms->rank != top.rank)
      continue; /* stale: a's right neighbour changed */
    e->sym_id[a] = top.merged;
    e->sym_len[a] += e->sym_len[b];
    e->sym_len[b] = 0;
    e->sym_next[a] = e->sym_next[b];
    if (e->sym_next[b] >= 0)
      e->sym_prev[e->sym_next[b]] = a;
    if (e->sym_prev[a] >= 0)
      queue_pair(e, e->sym_prev[a]);
    queue_pair(e, a);
  }
  for (int32_t i = 0; i >= 0; i = e->sym_next[i])
    push_id(e, e->sym_id[i]);
}

/* Pre-tokenize text[0..len) (one stretch between added tokens) and BPE it. */
static void encode_text(encoder *e, const char *text, size_t len) {
  if (len == 0)
    return;
  e->buf_len = 0;
  e->buf = grow(e->buf, &e->buf_cap, len, 1, &e->oom);
  e->pieces = grow(e->pieces, &e->cap_pieces, 1, sizeof *e->pieces, &e->oom);
  if (e->oom)
    return;
  memcpy(e->buf, text, len);
  e->buf_len = len;
  e->pieces[0].off = 0;
  e->pieces[0].len = len;
  e->n_pieces = 1;
  for (int i = 0; i < e->tok->n_steps && !e->oom; i++)
    run_step(e, &e->tok->steps[i]);
  for (size_t i = 0; i < e->n_pieces && !e->oom; i++)
    bpe_piece(e, e->buf + e->pieces[i].off, e->pieces[i].len);
}

/* ---- added tokens ------------------------------------------------------------------------ */

static int word_char_before(const unsigned char *s, size_t start, size_t i) {
  if (i == start)
    return 0;
  size_t k = i - 1;
  while (k > start && (s[k] & 0xC0) == 0x80)
    k--;
  uint32_t cp;
  morrt_utf8_decode(s + k, i - k, &cp);
  int c = cls(cp);
  return c == CLS_LETTER || c == CLS_NUMBER || cp == '_';
}

static int word_char_at(const unsigned char *s, size_t i, size_t end) {
  if (i >= end)
    return 0;
  int l;
  uint32_t cp = cp_at(s, i, end, &l);
  int c = cls(cp);
  return c == CLS_LETTER || c == CLS_NUMBER || cp == '_';
}

/* Split text[0..len) on the added tokens with normalized == pass (pass 0
 * first, then pass 1 on what is left, as Hugging Face does), leftmost-longest. */
static void encode_added(encoder *e, const char *text, size_t len, int pass) {
  const morrt_tokenizer *tok = e->tok;
  const unsigned char *s = (const unsigned char *)text;
  if (pass == 2) {
    encode_text(e, text, len);
    return;
  }
  size_t i = 0, done = 0; /* text[done..i) is not yet emitted */
  while (i < len && !e->oom) {
    const added_token *best = NULL;
    if (!tok->added_first[pass][s[i]]) {
      i++;
      continue;
    }
    for (size_t k = 0; k < tok->n_added; k++) {
      const added_token *t = &tok->added[k];
      if (t->normalized != pass || t->len > len - i || (best && t->len <= best->len))
        continue;
      if (memcmp(tok->pool + t->off, text + i, t->len) == 0)
        best = t;
    }
    if (!best) {
      i++;
      continue;
    }
    size_t start = i, stop = i + best->len;
    if (best->single_word && (word_char_before(s, 0, start) || word_char_at(s, stop, len))) {
      i = stop; /* the match is rejected, and its text stays text */
      continue;
    }
    if (best->lstrip) {
      while (start > done) {
        size_t k = start - 1;
        while (k > done && (s[k] & 0xC0) == 0x80)
          k--;
        uint32_t cp;
        morrt_utf8_decode(s + k, start - k, &cp);
        if (!morrt_unicode_is_space(cp))
          break;
        start = k;
      }
    }
    if (best->rstrip) {
      int l;
      while (stop < len && morrt_unicode_is_space(cp_at(s, stop, len, &l)))
        stop += (size_t)l;
    }
    encode_added(e, text + done, start - done, pass + 1);
    push_id(e, best->id);
    i = done = stop;
  }
  encode_added(e, text + done, len - done, pass + 1);
}

int morrt_tokenizer_encode(const morrt_tokenizer *tok, const char *text, size_t len, int32_t **ids, size_t *n) {
  *ids = NULL;
  *n = 0;
  if (!tok)
    return -1;
  encoder e;
  memset(&e, 0, sizeof e);
  e.tok = tok;
  if (text && len)
    encode_added(&e, text, len, 0);
  free(e.buf);
  free(e.pieces);
  free(e.next);
  free(e.sym_id);
  free(e.sym_prev);
  free(e.sym_next);
  free(e.sym_len);
  free(e.heap);
  if (e.oom) {
    free(e.ids);
    return -1;
  }
  *ids = e.ids;
  *n = e.n_ids;
  return 0;
}

/* ---- decoding ------------------------------------------------------------------------------- */

char *morrt_tokenizer_decode(const morrt_tokenizer *tok, const int32_t *ids, size_t n, size_t *outlen) {
  if (outlen)
    *outlen = 0;
  if (!tok)
    return NULL;
  size_t total = 0;
  for (size_t i = 0; i < n; i++) {
    if (ids[i] < 0 || ids[i] >= tok->n_ids || tok->id_off[ids[i]] == SIZE_MAX)
      return NULL;
    total += tok->id_len[ids[i]];
  }
  char *out = malloc(total + 1);
  if (!out)
    return NULL;
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    memcpy(out + k, tok->pool + tok->id_off[ids[i]], tok->id_len[ids[i]]);
    k += tok->id_len[ids[i]];
  }
  out[k] = 0;
  if (outlen)
    *outlen = k;
  return out;
}

const char *morrt_tokenizer_token(const morrt_tokenizer *tok, int32_t id) {
  if (!tok || id < 0 || id >= tok->n_ids || tok->id_off[id] == SIZE_MAX)
    return NULL;
  return tok->pool + tok->id_off[id];
}

size_t morrt_tokenizer_token_len(const morrt_tokenizer *tok, int32_t id) {
  if (!tok || id < 0 || id >= tok->n_ids || tok->id_off[id] == SIZE_MAX)
    return 0;
  return tok->id_len[id];
}

int32_t morrt_tokenizer_vocab_size(const morrt_tokenizer *tok) { return tok ? tok->n_ids : 0; }

int32_t morrt_tokenizer_find(const morrt_tokenizer *tok, const char *s) {
  if (!tok || !s)
    return -1;
  size_t n = strlen(s);
  for (size_t k = 0; k < tok->n_added; k++)
    if (tok->added[k].len == n && memcmp(tok->pool + tok->added[k].off, s, n) == 0)
      return tok->added[k].id;
  return vocab_get(tok, s, n);
}
