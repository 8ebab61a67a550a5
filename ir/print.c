/* print.c: the IR text form (docs/ir.md). Values are renumbered %0, %1, ...
 * in order of definition so that print(parse(print(m))) == print(m). */
#include "ir/ir.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int plain_sym_char(int c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
         c == '$' || c == '-';
}

static void print_quoted(mor_buf *b, const char *s) {
  mor_buf_putc(b, '"');
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p == '"' || *p == '\\') {
      mor_buf_putc(b, '\\');
      mor_buf_putc(b, (char)*p);
    } else if (*p == '\n') {
      mor_buf_puts(b, "\\n");
    } else if (*p == '\t') {
      mor_buf_puts(b, "\\t");
    } else if (*p < 0x20 || *p == 0x7f) {
      mor_buf_printf(b, "\\x%02x", *p);
    } else if (*p >= 0x80) { /* UTF-8 as it is; a byte that is not UTF-8 as \xHH (read back the same) */
      int n = mor_utf8_char((const char *)p, strnlen((const char *)p, 4));
      if (n) mor_buf_write(b, p, (size_t)n), p += n - 1;
      else mor_buf_printf(b, "\\x%02x", *p);
    } else {
      mor_buf_putc(b, (char)*p);
    }
  }
  mor_buf_putc(b, '"');
}

void mor_print_symname(mor_buf *b, const char *name) {
  int plain = name[0] != 0;
  for (const char *p = name; *p; p++)
    if (!plain_sym_char((unsigned char)*p)) plain = 0;
  mor_buf_putc(b, '@');
  if (plain) mor_buf_puts(b, name);
  else print_quoted(b, name);
}

const char *mor_symstr(const char *name, char *buf, size_t n) {
  mor_buf b = {0};
  mor_print_symname(&b, name);
  const char *s = b.data + 1; /* without the '@' */
  size_t len = b.len - 1;
  if (len < n) {
    memcpy(buf, s, len + 1);
  } else { /* cut between whole escapes and characters, then "..." and the closing quote */
    size_t k = 0;
    for (;;) {
      int u = (unsigned char)s[k] >= 0x80 ? mor_utf8_char(s + k, len - k) : 1;
      size_t t = s[k] == '\\' ? (s[k + 1] == 'x' ? 4 : 2) : u ? (size_t)u : 1;
      if (k + t + 5 > n) break;
      k += t;
    }
    snprintf(buf, n, "%.*s...%s", (int)k, s, s[0] == '"' ? "\"" : "");
  }
  mor_buf_free(&b);
  return buf;
}

/* Shortest decimal that reads back as the same double; always has '.' or 'e'. */
static void print_double(mor_buf *b, double v) {
  char s[64];
  if (isnan(v)) {
    mor_buf_puts(b, "nan");
    return;
  }
  if (isinf(v)) {
    mor_buf_puts(b, v < 0 ? "-inf" : "inf");
    return;
  }
  for (int prec = 1; prec <= 17; prec++) {
    snprintf(s, sizeof s, "%.*g", prec, v);
    if (strtod(s, NULL) == v) break;
  }
  mor_buf_puts(b, s);
  if (!strpbrk(s, ".e")) mor_buf_puts(b, ".0");
}

void mor_print_type(mor_buf *b, const mor_module *m, const mor_type *t) {
  mor_buf_printf(b, "%s[", mor_dtype_name(t->dtype));
  for (int i = 0; i < t->rank; i++) {
    if (i) mor_buf_puts(b, ", ");
    if (t->dims[i].sym >= 0) mor_buf_puts(b, m->syms[t->dims[i].sym].name);
    else mor_buf_printf(b, "%lld", (long long)t->dims[i].n);
  }
  mor_buf_putc(b, ']');
}

static void print_attr_value(mor_buf *b, const mor_attr *a) {
  switch (a->kind) {
  case MOR_ATTR_INT: mor_buf_printf(b, "%lld", (long long)a->i); break;
  case MOR_ATTR_FLOAT: print_double(b, a->f); break;
  case MOR_ATTR_STR: print_quoted(b, a->s); break;
  case MOR_ATTR_SYM: mor_print_symname(b, a->s); break;
  case MOR_ATTR_INTS:
  case MOR_ATTR_FLOATS:
  case MOR_ATTR_SYMS:
    mor_buf_putc(b, '[');
    for (int i = 0; i < a->n; i++) {
      if (i) mor_buf_puts(b, ", ");
      if (a->kind == MOR_ATTR_INTS) mor_buf_printf(b, "%lld", (long long)a->ints[i]);
      else if (a->kind == MOR_ATTR_FLOATS) print_double(b, a->floats[i]);
      else mor_print_symname(b, a->syms[i]);
    }
    mor_buf_putc(b, ']');
    break;
  }
}

static void print_attrs(mor_buf *b, int n, const mor_attr *attrs) {
  if (!n) return;
  mor_buf_puts(b, " {");
  for (int i = 0; i < n; i++) {
    if (i) mor_buf_puts(b, ", ");
    mor_buf_printf(b, "%s = ", attrs[i].name);
    print_attr_value(b, &attrs[i]);
  }
  mor_buf_putc(b, '}');
}

typedef struct printer {
  mor_buf *b;
  const mor_module *m;
  int *num; /* value id -> printed number, -1 unnumbered */
  int next;
} printer;

static int vnum(printer *p, const mor_value *v) {
  if (v->id < 0 || v->id >= p->m->next_value_id) return -1;
  if (p->num[v->id] < 0) p->num[v->id] = p->next++;
  return p->num[v->id];
}

static void indent(mor_buf *b, int n) {
  for (int i = 0; i < n; i++) mor_buf_puts(b, "  ");
}

static void print_block(printer *p, const mor_block *blk, int ind);

static void print_op(printer *p, const mor_op *op, int ind) {
  mor_buf *b = p->b;
  indent(b, ind);
  for (int i = 0; i < op->n_results; i++) mor_buf_printf(b, "%s%%%d", i ? ", " : "", vnum(p, op->results[i]));
  if (op->n_results) mor_buf_puts(b, " = ");
  mor_buf_puts(b, mor_ops[op->code].name);
  for (int i = 0; i < op->n_operands; i++) {
    mor_buf_puts(b, i ? ", " : " ");
    if (p->num[op->operands[i]->id] < 0) mor_buf_puts(b, "%<undefined>");
    else mor_buf_printf(b, "%%%d", p->num[op->operands[i]->id]);
  }
  print_attrs(b, op->n_attrs, op->attrs);
  if (op->n_results) {
    mor_buf_puts(b, " : ");
    for (int i = 0; i < op->n_results; i++) {
      if (i) mor_buf_puts(b, ", ");
      mor_print_type(b, p->m, &op->results[i]->type);
    }
  }
  if (op->region) {
    mor_buf_puts(b, " {\n");
    indent(b, ind);
    mor_buf_puts(b, "^(");
    for (int i = 0; i < op->region->n_args; i++) {
      if (i) mor_buf_puts(b, ", ");
      mor_buf_printf(b, "%%%d: ", vnum(p, op->region->args[i]));
      mor_print_type(b, p->m, &op->region->args[i]->type);
    }
    mor_buf_puts(b, "):\n");
    print_block(p, op->region, ind + 1);
    indent(b, ind);
    mor_buf_putc(b, '}');
  }
  mor_buf_putc(b, '\n');
}

static void print_block(printer *p, const mor_block *blk, int ind) {
  for (const mor_op *op = blk->first; op; op = op->next) print_op(p, op, ind);
}

void mor_print_module(mor_buf *b, const mor_module *m) {
  printer p = {b, m, mor_xmalloc(sizeof(int) * (size_t)(m->next_value_id + 1)), 0};
  for (int i = 0; i <= m->next_value_id; i++) p.num[i] = -1;
  mor_buf_puts(b, "module ");
  mor_print_symname(b, m->name);
  if (m->n_mattrs) {
    mor_buf_puts(b, " attributes");
    print_attrs(b, m->n_mattrs, m->mattrs);
  }
  mor_buf_puts(b, " {\n");
  for (int i = 0; i < m->n_syms; i++)
    mor_buf_printf(b, "  sym %s <= %lld\n", m->syms[i].name, (long long)m->syms[i].bound);
  for (int i = 0; i < m->n_globals; i++) {
    const mor_global *g = &m->globals[i];
    mor_buf_puts(b, g->kind == MOR_GLOBAL_WEIGHT ? "  weight " : "  kv ");
    mor_print_symname(b, g->name);
    mor_buf_puts(b, " : ");
    mor_print_type(b, m, &g->type);
    if (g->kind == MOR_GLOBAL_KV) {
      mor_buf_printf(b, " {layer = %lld, depth = %lld", (long long)g->layer, (long long)g->depth);
      if (g->alias) {
        mor_buf_puts(b, ", alias = ");
        mor_print_symname(b, g->alias);
      }
      if (g->policy) {
        mor_buf_puts(b, ", policy = ");
        print_quoted(b, g->policy);
      }
      mor_buf_putc(b, '}');
    }
    mor_buf_putc(b, '\n');
  }
  for (int f = 0; f < m->n_funcs; f++) {
    const mor_func *fn = m->funcs[f];
    mor_buf_puts(b, "\n  func ");
    mor_print_symname(b, fn->name);
    mor_buf_putc(b, '(');
    for (int i = 0; i < fn->body->n_args; i++) {
      if (i) mor_buf_puts(b, ", ");
      mor_buf_printf(b, "%%%d: ", vnum(&p, fn->body->args[i]));
      mor_print_type(b, m, &fn->body->args[i]->type);
    }
    mor_buf_puts(b, ") -> (");
    for (int i = 0; i < fn->n_results; i++) {
      if (i) mor_buf_puts(b, ", ");
      mor_print_type(b, m, &fn->result_types[i]);
    }
    mor_buf_puts(b, ") {\n");
    print_block(&p, fn->body, 2);
    mor_buf_puts(b, "  }\n");
  }
  mor_buf_puts(b, "}\n");
  free(p.num);
}

int mor_write_module(FILE *f, const mor_module *m) {
  mor_buf b = {0};
  mor_print_module(&b, m);
  int ok = fwrite(b.data, 1, b.len, f) == b.len;
  mor_buf_free(&b);
  return ok ? 0 : -1;
}
