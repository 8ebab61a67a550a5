/* parse.c: reads the IR text form (docs/ir.md) back into a module. Errors
 * are "file:line:col: error: message" followed by the source line and a
 * caret under the column. */
#include "ir/ir.h"
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef enum { T_EOF, T_IDENT, T_SYM, T_VAL, T_INT, T_FLOAT, T_STR, T_PUNCT } tokkind;

typedef struct tok {
  tokkind kind;
  const char *start;
  size_t len;
  int line, col;
  char *text;   /* decoded identifier / symbol / value name / string */
  int64_t i;
  double f;
  char punct[3];
} tok;

typedef struct named_value {
  char *name;
  mor_value *v;
  int depth; /* region nesting level where defined */
} named_value;

typedef struct parser {
  const char *src, *end, *p;
  const char *file;
  int line;
  const char *line_start;
  tok t;
  mor_module *m;
  mor_err *err;
  int failed;
  named_value *vals;
  int n_vals, cap_vals;
  int scope_depth;
} parser;

static void perror_at(parser *ps, int line, int col, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void perror_at(parser *ps, int line, int col, const char *fmt, ...) {
  if (ps->failed) return;
  ps->failed = 1;
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  /* find the source line */
  const char *ls = ps->src;
  for (int l = 1; l < line && ls < ps->end; ls++)
    if (*ls == '\n') l++;
  const char *le = ls;
  while (le < ps->end && *le != '\n') le++;
  int n = (int)(le - ls);
  if (n > 200) n = 200;
  mor_errf(ps->err, "%s:%d:%d: error: %s\n  %.*s\n  %*s^", ps->file, line, col, msg, n, ls, col - 1 > 0 ? col - 1 : 0, "");
}
#define FAIL(...)                                                                                                    \
  do {                                                                                                               \
    perror_at(ps, ps->t.line, ps->t.col, __VA_ARGS__);                                                               \
    return 0;                                                                                                        \
  } while (0)

static int sym_char(int c) { return isalnum(c) || c == '_' || c == '.' || c == '$' || c == '-'; }

static char *lex_string(parser *ps, const char **pp) {
  const char *p = *pp + 1;
  mor_buf b = {0};
  for (;;) {
    if (p >= ps->end || *p == '\n') {
      mor_buf_free(&b);
      return NULL;
    }
    if (*p == '"') break;
    if (*p == '\\') {
      p++;
      if (p >= ps->end) {
        mor_buf_free(&b);
        return NULL;
      }
      char c = *p;
      if (c == 'n') mor_buf_putc(&b, '\n');
      else if (c == 't') mor_buf_putc(&b, '\t');
      else if (c == '\\' || c == '"') mor_buf_putc(&b, c);
      else if (c == 'x' && p + 2 < ps->end && isxdigit((unsigned char)p[1]) && isxdigit((unsigned char)p[2])) {
        char hex[3] = {p[1], p[2], 0};
        mor_buf_putc(&b, (char)strtol(hex, NULL, 16));
        p += 2;
      } else {
        mor_buf_free(&b);
        return NULL;
      }
      p++;
      continue;
    }
    mor_buf_putc(&b, *p++);
  }
  *pp = p + 1;
  char *s = mor_strdup(ps->m, b.data ? b.data : "");
  mor_buf_free(&b);
  return s;
}

static int next(parser *ps) {
  const char *p = ps->p;
  for (;;) {
    while (p < ps->end && isspace((unsigned char)*p)) {
      if (*p == '\n') {
        ps->line++;
        ps->line_start = p + 1;
      }
      p++;
    }
    if (p + 1 < ps->end && p[0] == '/' && p[1] == '/') {
      while (p < ps->end && *p != '\n') p++;
      continue;
    }
    break;
  }
  tok *t = &ps->t;
  memset(t, 0, sizeof *t);
  t->start = p;
  t->line = ps->line;
  t->col = (int)(p - ps->line_start) + 1;
  if (p >= ps->end) {
    t->kind = T_EOF;
    ps->p = p;
    return 1;
  }
  char c = *p;
  if (c == '@' || c == '%') {
    const char *q = p + 1;
    if (c == '@' && q < ps->end && *q == '"') {
      t->text = lex_string(ps, &q);
      if (!t->text) {
        perror_at(ps, t->line, t->col, "unterminated or malformed quoted symbol name");
        return 0;
      }
    } else {
      while (q < ps->end && sym_char((unsigned char)*q)) q++;
      if (q == p + 1) {
        perror_at(ps, t->line, t->col, "expected a name after '%c'", c);
        return 0;
      }
      t->text = mor_alloc(ps->m, (size_t)(q - p));
      memcpy(t->text, p + 1, (size_t)(q - p - 1));
    }
    t->kind = c == '@' ? T_SYM : T_VAL;
    p = q;
  } else if (c == '"') {
    const char *q = p;
    t->text = lex_string(ps, &q);
    if (!t->text) {
      perror_at(ps, t->line, t->col, "unterminated or malformed string");
      return 0;
    }
    t->kind = T_STR;
    p = q;
  } else if (isdigit((unsigned char)c) || (c == '-' && p + 1 < ps->end && (isdigit((unsigned char)p[1]) || p[1] == 'i'))) {
    const char *q = p;
    if (*q == '-') q++;
    if (ps->end - q >= 3 && strncmp(q, "inf", 3) == 0) {
      t->kind = T_FLOAT;
      t->f = c == '-' ? -INFINITY : INFINITY;
      p = q + 3;
    } else {
      int is_float = 0;
      while (q < ps->end && (isdigit((unsigned char)*q) || *q == '.' || *q == 'e' || *q == 'E' ||
                             ((*q == '-' || *q == '+') && (q[-1] == 'e' || q[-1] == 'E')))) {
        if (*q == '.' || *q == 'e' || *q == 'E') is_float = 1;
        q++;
      }
      char buf[64];
      size_t n = (size_t)(q - p);
      if (n >= sizeof buf) {
        perror_at(ps, t->line, t->col, "number too long");
        return 0;
      }
      memcpy(buf, p, n);
      buf[n] = 0;
      char *endp;
      errno = 0;
      if (is_float) {
        t->kind = T_FLOAT;
        t->f = strtod(buf, &endp);
      } else {
        t->kind = T_INT;
        t->i = strtoll(buf, &endp, 10);
      }
      if (*endp || errno) {
        perror_at(ps, t->line, t->col, "malformed number '%s'", buf);
        return 0;
      }
      p = q;
    }
  } else if (isalpha((unsigned char)c) || c == '_') {
    const char *q = p;
    while (q < ps->end && (isalnum((unsigned char)*q) || *q == '_')) q++;
    t->text = mor_alloc(ps->m, (size_t)(q - p) + 1);
    memcpy(t->text, p, (size_t)(q - p));
    if (strcmp(t->text, "nan") == 0 || strcmp(t->text, "inf") == 0) {
      t->kind = T_FLOAT;
      t->f = t->text[0] == 'n' ? NAN : INFINITY;
    } else {
      t->kind = T_IDENT;
    }
    p = q;
  } else {
    t->kind = T_PUNCT;
    if ((c == '-' && p + 1 < ps->end && p[1] == '>') || (c == '<' && p + 1 < ps->end && p[1] == '=')) {
      t->punct[0] = c;
      t->punct[1] = p[1];
      p += 2;
    } else if (strchr("{}()[],:=^", c)) {
      t->punct[0] = c;
      p++;
    } else {
      perror_at(ps, t->line, t->col, "unexpected character '%c'", isprint((unsigned char)c) ? c : '?');
      return 0;
    }
  }
  t->len = (size_t)(p - t->start);
  ps->p = p;
  return 1;
}

static int is_punct(parser *ps, const char *s) { return ps->t.kind == T_PUNCT && strcmp(ps->t.punct, s) == 0; }
static int is_ident(parser *ps, const char *s) { return ps->t.kind == T_IDENT && strcmp(ps->t.text, s) == 0; }

static const char *tok_desc(parser *ps, char *buf, size_t n) {
  if (ps->t.kind == T_EOF) return "end of file";
  snprintf(buf, n, "'%.*s'", (int)(ps->t.len > 40 ? 40 : ps->t.len), ps->t.start);
  return buf;
}

static int expect(parser *ps, const char *punct) {
  char b[64];
  if (!is_punct(ps, punct)) FAIL("expected '%s', found %s", punct, tok_desc(ps, b, sizeof b));
  return next(ps);
}

/* ---- values in scope ---------------------------------------------------------- */
static mor_value *lookup_value(parser *ps, const char *name) {
  for (int i = ps->n_vals - 1; i >= 0; i--)
    if (strcmp(ps->vals[i].name, name) == 0) return ps->vals[i].v;
  return NULL;
}
static int define_value(parser *ps, const char *name, mor_value *v, int line, int col) {
  if (lookup_value(ps, name)) {
    perror_at(ps, line, col, "value %%%s is defined twice", name);
    return 0;
  }
  if (ps->n_vals == ps->cap_vals) {
    ps->cap_vals = ps->cap_vals ? ps->cap_vals * 2 : 64;
    ps->vals = mor_xrealloc(ps->vals, sizeof *ps->vals * (size_t)ps->cap_vals);
  }
  ps->vals[ps->n_vals].name = (char *)name;
  ps->vals[ps->n_vals].v = v;
  ps->vals[ps->n_vals].depth = ps->scope_depth;
  ps->n_vals++;
  return 1;
}

/* ---- types and attributes ------------------------------------------------------ */
static int parse_type(parser *ps, mor_type *t) {
  char b[64];
  if (ps->t.kind != T_IDENT) FAIL("expected a type such as f32[T, 64], found %s", tok_desc(ps, b, sizeof b));
  int dt = -1;
  for (int i = 0; i < MOR_DTYPE_COUNT; i++)
    if (strcmp(ps->t.text, mor_dtype_name((mor_dtype)i)) == 0) dt = i;
  if (dt < 0) FAIL("unknown element type '%s' (expected f32, f16, bf16, i32 or i64)", ps->t.text);
  memset(t, 0, sizeof *t);
  t->dtype = (mor_dtype)dt;
  if (!next(ps) || !expect(ps, "[")) return 0;
  while (!is_punct(ps, "]")) {
    if (t->rank == MOR_MAX_RANK) FAIL("a type has at most %d dimensions", MOR_MAX_RANK);
    if (t->rank && !expect(ps, ",")) return 0;
    if (ps->t.kind == T_INT) {
      if (ps->t.i < 0) FAIL("dimension must not be negative");
      t->dims[t->rank++] = mor_dconst(ps->t.i);
    } else if (ps->t.kind == T_IDENT) {
      int s = mor_find_sym(ps->m, ps->t.text);
      if (s < 0) FAIL("undeclared dimension symbol '%s' (declare it with 'sym %s <= N')", ps->t.text, ps->t.text);
      t->dims[t->rank++] = mor_dsym(ps->m, s);
    } else {
      FAIL("expected a dimension (a number or a symbol), found %s", tok_desc(ps, b, sizeof b));
    }
    if (!next(ps)) return 0;
  }
  return next(ps);
}

static int parse_attr_value(parser *ps, mor_attr *a) {
  char b[64];
  switch (ps->t.kind) {
  case T_INT: a->kind = MOR_ATTR_INT; a->i = ps->t.i; return next(ps);
  case T_FLOAT: a->kind = MOR_ATTR_FLOAT; a->f = ps->t.f; return next(ps);
  case T_STR: a->kind = MOR_ATTR_STR; a->s = ps->t.text; return next(ps);
  case T_SYM: a->kind = MOR_ATTR_SYM; a->s = ps->t.text; return next(ps);
  default: break;
  }
  if (!is_punct(ps, "[")) FAIL("expected an attribute value, found %s", tok_desc(ps, b, sizeof b));
  if (!next(ps)) return 0;
  /* list: kind from the first element; ints promote to floats */
  a->kind = MOR_ATTR_INTS;
  int cap = 0;
  while (!is_punct(ps, "]")) {
    if (a->n && !expect(ps, ",")) return 0;
    if (a->n == cap) {
      cap = cap ? cap * 2 : 8;
      int64_t *ni = mor_alloc(ps->m, sizeof(int64_t) * (size_t)cap);
      double *nf = mor_alloc(ps->m, sizeof(double) * (size_t)cap);
      char **ns = mor_alloc(ps->m, sizeof(char *) * (size_t)cap);
      if (a->n) {
        memcpy(ni, a->ints, sizeof(int64_t) * (size_t)a->n);
        memcpy(nf, a->floats, sizeof(double) * (size_t)a->n);
        memcpy(ns, a->syms, sizeof(char *) * (size_t)a->n);
      }
      a->ints = ni;
      a->floats = nf;
      a->syms = ns;
    }
    if (ps->t.kind == T_SYM) {
      if (a->n && a->kind != MOR_ATTR_SYMS) FAIL("list mixes symbols and numbers");
      a->kind = MOR_ATTR_SYMS;
      a->syms[a->n++] = ps->t.text;
    } else if (ps->t.kind == T_INT || ps->t.kind == T_FLOAT) {
      if (a->kind == MOR_ATTR_SYMS) FAIL("list mixes symbols and numbers");
      if (ps->t.kind == T_FLOAT && a->kind == MOR_ATTR_INTS) {
        for (int i = 0; i < a->n; i++) a->floats[i] = (double)a->ints[i];
        a->kind = MOR_ATTR_FLOATS;
      }
      a->ints[a->n] = ps->t.kind == T_INT ? ps->t.i : ps->t.f > -0x1p63 && ps->t.f < 0x1p63 ? (int64_t)ps->t.f : 0;
      a->floats[a->n] = ps->t.kind == T_INT ? (double)ps->t.i : ps->t.f;
      a->n++;
    } else {
      FAIL("expected a list element, found %s", tok_desc(ps, b, sizeof b));
    }
    if (!next(ps)) return 0;
  }
  return next(ps);
}

/* { name = value, ... } into a fresh array */
static int parse_attr_dict(parser *ps, mor_attr **out, int *n_out) {
  char b[64];
  if (!expect(ps, "{")) return 0;
  int n = 0, cap = 0;
  mor_attr *attrs = NULL;
  while (!is_punct(ps, "}")) {
    if (n && !expect(ps, ",")) return 0;
    if (ps->t.kind != T_IDENT) FAIL("expected an attribute name, found %s", tok_desc(ps, b, sizeof b));
    for (int i = 0; i < n; i++)
      if (strcmp(attrs[i].name, ps->t.text) == 0) FAIL("attribute '%s' given twice", ps->t.text);
    if (n == cap) {
      cap = cap ? cap * 2 : 8;
      mor_attr *na = mor_alloc(ps->m, sizeof(mor_attr) * (size_t)cap);
      if (n) memcpy(na, attrs, sizeof(mor_attr) * (size_t)n);
      attrs = na;
    }
    attrs[n].name = ps->t.text;
    if (!next(ps) || !expect(ps, "=") || !parse_attr_value(ps, &attrs[n])) return 0;
    n++;
  }
  *out = attrs;
  *n_out = n;
  return next(ps);
}

/* ---- ops and blocks --------------------------------------------------------------- */
static int parse_block_body(parser *ps, mor_block *blk);

static int parse_op(parser *ps, mor_block *blk) {
  char b[64];
  int line = ps->t.line, col = ps->t.col;
  /* results */
  char *rnames[64];
  int rlines[64], rcols[64], nres = 0;
  if (ps->t.kind == T_VAL) {
    for (;;) {
      if (ps->t.kind != T_VAL) FAIL("expected a result name such as %%3, found %s", tok_desc(ps, b, sizeof b));
      if (nres == 64) FAIL("too many results");
      rlines[nres] = ps->t.line;
      rcols[nres] = ps->t.col;
      rnames[nres++] = ps->t.text;
      if (!next(ps)) return 0;
      if (is_punct(ps, "=")) break;
      if (!expect(ps, ",")) return 0;
    }
    if (!next(ps)) return 0;
  }
  if (ps->t.kind != T_IDENT) FAIL("expected an operation name, found %s", tok_desc(ps, b, sizeof b));
  int code = mor_op_lookup(ps->t.text);
  if (code < 0) FAIL("unknown operation '%s'", ps->t.text);
  line = ps->t.line;
  col = ps->t.col;
  if (!next(ps)) return 0;
  /* operands */
  mor_value *ops[256];
  int nops = 0;
  if (ps->t.kind == T_VAL) {
    for (;;) {
      if (ps->t.kind != T_VAL) FAIL("expected an operand, found %s", tok_desc(ps, b, sizeof b));
      mor_value *v = lookup_value(ps, ps->t.text);
      if (!v) FAIL("use of undefined value %%%s", ps->t.text);
      if (nops == 256) FAIL("too many operands");
      ops[nops++] = v;
      if (!next(ps)) return 0;
      if (!is_punct(ps, ",")) break;
      if (!next(ps)) return 0;
    }
  }
  mor_attr *attrs = NULL;
  int nattrs = 0;
  /* attribute dict: '{' not followed by '^' (a region) */
  if (is_punct(ps, "{")) {
    const char *q = ps->p;
    while (q < ps->end && isspace((unsigned char)*q)) q++;
    if (q >= ps->end || *q != '^')
      if (!parse_attr_dict(ps, &attrs, &nattrs)) return 0;
  }
  mor_type rtypes[64];
  if (nres) {
    if (!expect(ps, ":")) return 0;
    for (int i = 0; i < nres; i++) {
      if (i && !expect(ps, ",")) return 0;
      if (!parse_type(ps, &rtypes[i])) return 0;
    }
  }
  const mor_opinfo *info = &mor_ops[code];
  if (info->n_results >= 0 && nres != info->n_results) {
    perror_at(ps, line, col, "'%s' has %d result%s, found %d", info->name, info->n_results,
              info->n_results == 1 ? "" : "s", nres);
    return 0;
  }
  if (info->n_operands >= 0 && nops != info->n_operands) {
    perror_at(ps, line, col, "'%s' takes %d operand%s, found %d", info->name, info->n_operands,
              info->n_operands == 1 ? "" : "s", nops);
    return 0;
  }
  mor_op *op = mor_op_new(ps->m, (mor_opcode)code, nops, ops, nres, rtypes);
  op->line = line;
  op->col = col;
  op->attrs = attrs;
  op->n_attrs = nattrs;
  if (info->n_regions > 0) {
    if (!is_punct(ps, "{")) FAIL("'%s' needs a region '{ ^(...): ... }'", info->name);
    if (!next(ps)) return 0;
    if (!is_punct(ps, "^")) FAIL("expected '^(' to start the region's arguments");
    if (!next(ps) || !expect(ps, "(")) return 0;
    op->region = mor_block_new(ps->m);
    op->region->parent_op = op;
    int saved = ps->n_vals;
    ps->scope_depth++;
    while (!is_punct(ps, ")")) {
      if (op->region->n_args && !expect(ps, ",")) return 0;
      if (ps->t.kind != T_VAL) FAIL("expected a region argument, found %s", tok_desc(ps, b, sizeof b));
      char *name = ps->t.text;
      int al = ps->t.line, ac = ps->t.col;
      mor_type at;
      if (!next(ps) || !expect(ps, ":") || !parse_type(ps, &at)) return 0;
      mor_value *v = mor_block_add_arg(ps->m, op->region, at);
      if (!define_value(ps, name, v, al, ac)) return 0;
    }
    if (!next(ps) || !expect(ps, ":")) return 0;
    if (!parse_block_body(ps, op->region)) return 0;
    if (!expect(ps, "}")) return 0;
    ps->n_vals = saved; /* region values are not visible after it */
    ps->scope_depth--;
  } else if (is_punct(ps, "{")) {
    FAIL("'%s' has no region", info->name);
  }
  for (int i = 0; i < nres; i++)
    if (!define_value(ps, rnames[i], op->results[i], rlines[i], rcols[i])) return 0;
  mor_block_append(blk, op);
  return 1;
}

/* ops until '}' (not consumed) */
static int parse_block_body(parser *ps, mor_block *blk) {
  while (!is_punct(ps, "}")) {
    if (ps->t.kind == T_EOF) FAIL("unterminated region: expected '}' before the end of the file");
    if (!parse_op(ps, blk)) return 0;
  }
  return 1;
}

static int parse_symname(parser *ps, char **out, const char *what) {
  char b[64];
  if (ps->t.kind != T_SYM) FAIL("expected %s (@name), found %s", what, tok_desc(ps, b, sizeof b));
  *out = ps->t.text;
  return next(ps);
}

static int parse_func(parser *ps) {
  char b[64];
  char *name;
  if (!next(ps) || !parse_symname(ps, &name, "a function name")) return 0;
  if (mor_find_func(ps->m, name)) FAIL("function @%s defined twice", MOR_SYM(name));
  mor_func *f = mor_add_func(ps->m, name);
  ps->n_vals = 0;
  if (!expect(ps, "(")) return 0;
  while (!is_punct(ps, ")")) {
    if (f->body->n_args && !expect(ps, ",")) return 0;
    if (ps->t.kind != T_VAL) FAIL("expected an argument such as %%0: i32[T], found %s", tok_desc(ps, b, sizeof b));
    char *an = ps->t.text;
    int al = ps->t.line, ac = ps->t.col;
    mor_type at;
    if (!next(ps) || !expect(ps, ":") || !parse_type(ps, &at)) return 0;
    if (!define_value(ps, an, mor_block_add_arg(ps->m, f->body, at), al, ac)) return 0;
  }
  if (!next(ps) || !expect(ps, "->") || !expect(ps, "(")) return 0;
  mor_type rt[64];
  int nr = 0;
  while (!is_punct(ps, ")")) {
    if (nr && !expect(ps, ",")) return 0;
    if (nr == 64) FAIL("too many results");
    if (!parse_type(ps, &rt[nr++])) return 0;
  }
  f->n_results = nr;
  f->result_types = mor_alloc(ps->m, sizeof(mor_type) * (size_t)(nr ? nr : 1));
  memcpy(f->result_types, rt, sizeof(mor_type) * (size_t)nr);
  if (!next(ps) || !expect(ps, "{")) return 0;
  if (!parse_block_body(ps, f->body)) return 0;
  return next(ps);
}

static int parse_global(parser *ps, mor_global_kind kind) {
  char *name;
  int line = ps->t.line, col = ps->t.col;
  if (!next(ps) || !parse_symname(ps, &name, "a global name")) return 0;
  if (mor_find_global(ps->m, name)) {
    perror_at(ps, line, col, "global @%s defined twice", MOR_SYM(name));
    return 0;
  }
  mor_type t;
  if (!expect(ps, ":") || !parse_type(ps, &t)) return 0;
  mor_global *g = mor_add_global(ps->m, kind, name, t);
  if (kind == MOR_GLOBAL_KV) {
    mor_attr *attrs;
    int n;
    if (!parse_attr_dict(ps, &attrs, &n)) return 0;
    g = mor_find_global(ps->m, name);
    for (int i = 0; i < n; i++) {
      if (strcmp(attrs[i].name, "layer") == 0 && attrs[i].kind == MOR_ATTR_INT) g->layer = attrs[i].i;
      else if (strcmp(attrs[i].name, "depth") == 0 && attrs[i].kind == MOR_ATTR_INT) g->depth = attrs[i].i;
      else if (strcmp(attrs[i].name, "alias") == 0 && attrs[i].kind == MOR_ATTR_SYM) g->alias = attrs[i].s;
      else if (strcmp(attrs[i].name, "policy") == 0 && attrs[i].kind == MOR_ATTR_STR) g->policy = attrs[i].s;
      else {
        perror_at(ps, line, col, "kv @%s: unknown or mistyped attribute '%s' (expected layer, depth, alias, policy)", MOR_SYM(name),
                  attrs[i].name);
        return 0;
      }
    }
  }
  return 1;
}

mor_module *mor_parse_module(const char *text, size_t len, const char *filename, mor_err *err) {
  parser ps0 = {0}, *ps = &ps0;
  ps->src = ps->p = ps->line_start = text;
  ps->end = text + len;
  ps->file = filename ? filename : "<input>";
  ps->line = 1;
  ps->err = err;
  ps->m = mor_module_new("module");
  ps->m->src_file = mor_strdup(ps->m, ps->file);
  char b[64];
  if (memchr(text, 0, len)) {
    mor_errf(err, "%s: error: the IR text contains a NUL byte", ps->file);
    goto fail;
  }
  if (!next(ps)) goto fail;
  if (!is_ident(ps, "module")) {
    perror_at(ps, ps->t.line, ps->t.col, "expected 'module', found %s", tok_desc(ps, b, sizeof b));
    goto fail;
  }
  if (!next(ps)) goto fail;
  if (ps->t.kind == T_SYM) {
    ps->m->name = ps->t.text;
    if (!next(ps)) goto fail;
  }
  if (is_ident(ps, "attributes")) {
    mor_attr *attrs;
    int n;
    if (!next(ps) || !parse_attr_dict(ps, &attrs, &n)) goto fail;
    for (int i = 0; i < n; i++) {
      if (attrs[i].kind == MOR_ATTR_INT) mor_set_mattr_int(ps->m, attrs[i].name, attrs[i].i);
      else if (attrs[i].kind == MOR_ATTR_FLOAT) mor_set_mattr_float(ps->m, attrs[i].name, attrs[i].f);
      else if (attrs[i].kind == MOR_ATTR_STR) mor_set_mattr_str(ps->m, attrs[i].name, attrs[i].s);
      else {
        perror_at(ps, ps->t.line, ps->t.col, "module attribute '%s' must be a number or a string", attrs[i].name);
        goto fail;
      }
    }
  }
  if (!expect(ps, "{")) goto fail;
  while (!is_punct(ps, "}")) {
    if (ps->t.kind == T_EOF) {
      perror_at(ps, ps->t.line, ps->t.col, "unterminated module: expected '}' before the end of the file");
      goto fail;
    }
    if (is_ident(ps, "sym")) {
      if (!next(ps)) goto fail;
      if (ps->t.kind != T_IDENT) {
        perror_at(ps, ps->t.line, ps->t.col, "expected a symbol name after 'sym'");
        goto fail;
      }
      char *name = ps->t.text;
      if (mor_find_sym(ps->m, name) >= 0) {
        perror_at(ps, ps->t.line, ps->t.col, "symbol '%s' declared twice", name);
        goto fail;
      }
      if (!next(ps) || !expect(ps, "<=")) goto fail;
      if (ps->t.kind != T_INT || ps->t.i < 1) {
        perror_at(ps, ps->t.line, ps->t.col, "expected a positive bound for symbol '%s'", name);
        goto fail;
      }
      mor_add_sym(ps->m, name, ps->t.i);
      if (!next(ps)) goto fail;
    } else if (is_ident(ps, "weight")) {
      if (!parse_global(ps, MOR_GLOBAL_WEIGHT)) goto fail;
    } else if (is_ident(ps, "kv")) {
      if (!parse_global(ps, MOR_GLOBAL_KV)) goto fail;
    } else if (is_ident(ps, "func")) {
      if (!parse_func(ps)) goto fail;
    } else {
      perror_at(ps, ps->t.line, ps->t.col, "expected 'sym', 'weight', 'kv', 'func' or '}', found %s",
                tok_desc(ps, b, sizeof b));
      goto fail;
    }
  }
  if (!next(ps)) goto fail;
  if (ps->t.kind != T_EOF) {
    perror_at(ps, ps->t.line, ps->t.col, "unexpected text after the module: %s", tok_desc(ps, b, sizeof b));
    goto fail;
  }
  free(ps->vals);
  return ps->m;
fail:
  free(ps->vals);
  mor_module_free(ps->m);
  return NULL;
}
