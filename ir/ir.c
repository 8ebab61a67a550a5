/* ir.c: construction and editing of IR modules: the arena that owns them,
 * symbols, globals, functions, blocks, ops, values and attributes. */
#include "ir/ir.h"
#include <stdlib.h>
#include <string.h>

const mor_opinfo mor_ops[MOR_OP_COUNT] = {
#define X(id, name, nops, nres, nreg) {name, nops, nres, nreg},
#include "ir/ops.def"
#undef X
};

int mor_op_lookup(const char *name) {
  for (int i = 0; i < MOR_OP_COUNT; i++)
    if (strcmp(mor_ops[i].name, name) == 0) return i;
  return -1;
}

/* ---- arena ---------------------------------------------------------------- */
typedef struct mor_chunk {
  struct mor_chunk *next;
  size_t used, cap;
  _Alignas(16) unsigned char data[];
} mor_chunk;
struct mor_arena {
  mor_chunk *head;
};

void *mor_alloc(mor_module *m, size_t n) {
  n = (n + 15) & ~(size_t)15;
  mor_chunk *c = m->arena->head;
  if (!c || c->used + n > c->cap) {
    size_t cap = n > 65536 ? n : 65536;
    c = mor_xmalloc(sizeof *c + cap);
    c->cap = cap;
    c->used = 0;
    c->next = m->arena->head;
    m->arena->head = c;
  }
  void *p = c->data + c->used;
  c->used += n;
  memset(p, 0, n);
  return p;
}

char *mor_strdup(mor_module *m, const char *s) {
  size_t n = strlen(s) + 1;
  char *p = mor_alloc(m, n);
  memcpy(p, s, n);
  return p;
}

/* Growable arrays inside the module use plain realloc'd storage tracked here. */
static void *grow(void *p, int n, size_t elem) {
  /* capacity doubles at powers of two */
  if (n == 0 || (n & (n - 1)) == 0) return mor_xrealloc(p, (size_t)(n ? 2 * n : 4) * elem);
  return p;
}

mor_module *mor_module_new(const char *name) {
  mor_module *m = mor_xcalloc(1, sizeof *m);
  m->arena = mor_xcalloc(1, sizeof *m->arena);
  m->name = mor_strdup(m, name ? name : "module");
  return m;
}

void mor_module_free(mor_module *m) {
  if (!m) return;
  mor_chunk *c = m->arena->head;
  while (c) {
    mor_chunk *n = c->next;
    free(c);
    c = n;
  }
  free(m->arena);
  free(m->syms);
  free(m->globals);
  free(m->funcs);
  free(m->mattrs);
  free(m);
}

int mor_find_sym(const mor_module *m, const char *name) {
  for (int i = 0; i < m->n_syms; i++)
    if (strcmp(m->syms[i].name, name) == 0) return i;
  return -1;
}

int mor_add_sym(mor_module *m, const char *name, int64_t bound) {
  int i = mor_find_sym(m, name);
  if (i >= 0) return i;
  m->syms = grow(m->syms, m->n_syms, sizeof *m->syms);
  m->syms[m->n_syms].name = mor_strdup(m, name);
  m->syms[m->n_syms].bound = bound;
  return m->n_syms++;
}

int mor_new_sym(mor_module *m, const char *prefix, int64_t bound) {
  char name[128];
  for (int k = 0;; k++) {
    snprintf(name, sizeof name, "%s%d", prefix, k);
    if (mor_find_sym(m, name) < 0) return mor_add_sym(m, name, bound);
  }
}

mor_global *mor_add_global(mor_module *m, mor_global_kind kind, const char *name, mor_type type) {
  m->globals = grow(m->globals, m->n_globals, sizeof *m->globals);
  mor_global *g = &m->globals[m->n_globals++];
  memset(g, 0, sizeof *g);
  g->kind = kind;
  g->name = mor_strdup(m, name);
  g->type = type;
  g->layer = g->depth = -1;
  return g;
}

mor_global *mor_find_global(const mor_module *m, const char *name) {
  for (int i = 0; i < m->n_globals; i++)
    if (strcmp(m->globals[i].name, name) == 0) return &m->globals[i];
  return NULL;
}

mor_func *mor_add_func(mor_module *m, const char *name) {
  m->funcs = grow(m->funcs, m->n_funcs, sizeof *m->funcs);
  mor_func *f = mor_alloc(m, sizeof *f);
  f->name = mor_strdup(m, name);
  f->body = mor_block_new(m);
  m->funcs[m->n_funcs++] = f;
  return f;
}

mor_func *mor_find_func(const mor_module *m, const char *name) {
  for (int i = 0; i < m->n_funcs; i++)
    if (strcmp(m->funcs[i]->name, name) == 0) return m->funcs[i];
  return NULL;
}

/* ---- module attributes ------------------------------------------------------ */
static mor_attr *mattr_slot(mor_module *m, const char *name) {
  for (int i = 0; i < m->n_mattrs; i++)
    if (strcmp(m->mattrs[i].name, name) == 0) return &m->mattrs[i];
  m->mattrs = grow(m->mattrs, m->n_mattrs, sizeof *m->mattrs);
  mor_attr *a = &m->mattrs[m->n_mattrs++];
  memset(a, 0, sizeof *a);
  a->name = mor_strdup(m, name);
  return a;
}
void mor_set_mattr_int(mor_module *m, const char *name, int64_t v) {
  mor_attr *a = mattr_slot(m, name);
  a->kind = MOR_ATTR_INT;
  a->i = v;
}
void mor_set_mattr_float(mor_module *m, const char *name, double v) {
  mor_attr *a = mattr_slot(m, name);
  a->kind = MOR_ATTR_FLOAT;
  a->f = v;
}
void mor_set_mattr_str(mor_module *m, const char *name, const char *v) {
  mor_attr *a = mattr_slot(m, name);
  a->kind = MOR_ATTR_STR;
  a->s = mor_strdup(m, v);
}
const mor_attr *mor_get_mattr(const mor_module *m, const char *name) {
  for (int i = 0; i < m->n_mattrs; i++)
    if (strcmp(m->mattrs[i].name, name) == 0) return &m->mattrs[i];
  return NULL;
}
int64_t mor_mattr_int(const mor_module *m, const char *name, int64_t dflt) {
  const mor_attr *a = mor_get_mattr(m, name);
  if (!a) return dflt;
  if (a->kind == MOR_ATTR_INT) return a->i;
  if (a->kind == MOR_ATTR_FLOAT) return a->f > -0x1p63 && a->f < 0x1p63 ? (int64_t)a->f : dflt; /* NaN, inf: dflt */
  return dflt;
}

/* ---- types ------------------------------------------------------------------ */
mor_type mor_type_make(mor_dtype dt, int rank, const mor_dim *dims) {
  mor_type t;
  memset(&t, 0, sizeof t);
  t.dtype = dt;
  t.rank = rank;
  for (int i = 0; i < rank; i++) t.dims[i] = dims[i];
  return t;
}
mor_dim mor_dconst(int64_t n) {
  mor_dim d = {n, -1};
  return d;
}
mor_dim mor_dsym(const mor_module *m, int sym) {
  mor_dim d = {m->syms[sym].bound, sym};
  return d;
}
int mor_type_equal(const mor_type *a, const mor_type *b) {
  if (a->dtype != b->dtype || a->rank != b->rank) return 0;
  for (int i = 0; i < a->rank; i++)
    if (a->dims[i].sym != b->dims[i].sym || a->dims[i].n != b->dims[i].n) return 0;
  return 1;
}
int64_t mor_type_max_numel(const mor_type *t) {
  int64_t n = 1;
  for (int i = 0; i < t->rank; i++) n *= t->dims[i].n;
  return n;
}

/* ---- blocks, ops, values -------------------------------------------------------- */
mor_block *mor_block_new(mor_module *m) { return mor_alloc(m, sizeof(mor_block)); }

static mor_value *new_value(mor_module *m, mor_type t) {
  mor_value *v = mor_alloc(m, sizeof *v);
  v->id = m->next_value_id++;
  v->type = t;
  return v;
}

mor_value *mor_block_add_arg(mor_module *m, mor_block *b, mor_type t) {
  mor_value **args = mor_alloc(m, sizeof(mor_value *) * (size_t)(b->n_args + 1));
  if (b->n_args) memcpy(args, b->args, sizeof(mor_value *) * (size_t)b->n_args);
  mor_value *v = new_value(m, t);
  v->block = b;
  v->index = b->n_args;
  args[b->n_args++] = v;
  b->args = args;
  return v;
}

mor_op *mor_op_new(mor_module *m, mor_opcode code, int n_operands, mor_value *const *operands, int n_results,
                   const mor_type *result_types) {
  mor_op *op = mor_alloc(m, sizeof *op);
  op->code = code;
  op->n_operands = n_operands;
  op->operands = mor_alloc(m, sizeof(mor_value *) * (size_t)(n_operands ? n_operands : 1));
  for (int i = 0; i < n_operands; i++) op->operands[i] = operands[i];
  op->n_results = n_results;
  op->results = mor_alloc(m, sizeof(mor_value *) * (size_t)(n_results ? n_results : 1));
  for (int i = 0; i < n_results; i++) {
    op->results[i] = new_value(m, result_types[i]);
    op->results[i]->def = op;
    op->results[i]->index = i;
  }
  return op;
}

void mor_block_append(mor_block *b, mor_op *op) {
  op->parent = b;
  op->next = NULL;
  op->prev = b->last;
  if (b->last) b->last->next = op;
  else b->first = op;
  b->last = op;
}

void mor_insert_before(mor_op *pos, mor_op *op) {
  mor_block *b = pos->parent;
  op->parent = b;
  op->next = pos;
  op->prev = pos->prev;
  if (pos->prev) pos->prev->next = op;
  else b->first = op;
  pos->prev = op;
}

void mor_op_remove(mor_op *op) {
  mor_block *b = op->parent;
  if (!b) return;
  if (op->prev) op->prev->next = op->next;
  else b->first = op->next;
  if (op->next) op->next->prev = op->prev;
  else b->last = op->prev;
  op->prev = op->next = NULL;
  op->parent = NULL;
}

void mor_op_set_operand(mor_op *op, int i, mor_value *v) { op->operands[i] = v; }

void mor_replace_uses(mor_block *root, mor_value *from, mor_value *to) {
  for (mor_op *op = root->first; op; op = op->next) {
    for (int i = 0; i < op->n_operands; i++)
      if (op->operands[i] == from) op->operands[i] = to;
    if (op->region) mor_replace_uses(op->region, from, to);
  }
}

int mor_value_has_uses(mor_block *root, const mor_value *v) {
  for (mor_op *op = root->first; op; op = op->next) {
    for (int i = 0; i < op->n_operands; i++)
      if (op->operands[i] == v) return 1;
    if (op->region && mor_value_has_uses(op->region, v)) return 1;
  }
  return 0;
}

/* ---- attributes ------------------------------------------------------------------ */
static mor_attr *attr_slot(mor_module *m, mor_op *op, const char *name) {
  for (int i = 0; i < op->n_attrs; i++)
    if (strcmp(op->attrs[i].name, name) == 0) {
      mor_attr *a = &op->attrs[i];
      memset(a, 0, sizeof *a);
      a->name = mor_strdup(m, name);
      return a;
    }
  mor_attr *attrs = mor_alloc(m, sizeof(mor_attr) * (size_t)(op->n_attrs + 1));
  if (op->n_attrs) memcpy(attrs, op->attrs, sizeof(mor_attr) * (size_t)op->n_attrs);
  op->attrs = attrs;
  mor_attr *a = &op->attrs[op->n_attrs++];
  a->name = mor_strdup(m, name);
  return a;
}
void mor_op_set_int(mor_module *m, mor_op *op, const char *name, int64_t v) {
  mor_attr *a = attr_slot(m, op, name);
  a->kind = MOR_ATTR_INT;
  a->i = v;
}
void mor_op_set_float(mor_module *m, mor_op *op, const char *name, double v) {
  mor_attr *a = attr_slot(m, op, name);
  a->kind = MOR_ATTR_FLOAT;
  a->f = v;
}
void mor_op_set_str(mor_module *m, mor_op *op, const char *name, const char *v) {
  mor_attr *a = attr_slot(m, op, name);
  a->kind = MOR_ATTR_STR;
  a->s = mor_strdup(m, v);
}
void mor_op_set_sym(mor_module *m, mor_op *op, const char *name, const char *sym) {
  mor_attr *a = attr_slot(m, op, name);
  a->kind = MOR_ATTR_SYM;
  a->s = mor_strdup(m, sym);
}
void mor_op_set_ints(mor_module *m, mor_op *op, const char *name, int n, const int64_t *v) {
  mor_attr *a = attr_slot(m, op, name);
  a->kind = MOR_ATTR_INTS;
  a->n = n;
  a->ints = mor_alloc(m, sizeof(int64_t) * (size_t)(n ? n : 1));
  for (int i = 0; i < n; i++) a->ints[i] = v[i];
}
void mor_op_set_floats(mor_module *m, mor_op *op, const char *name, int n, const double *v) {
  mor_attr *a = attr_slot(m, op, name);
  a->kind = MOR_ATTR_FLOATS;
  a->n = n;
  a->floats = mor_alloc(m, sizeof(double) * (size_t)(n ? n : 1));
  for (int i = 0; i < n; i++) a->floats[i] = v[i];
}
void mor_op_set_syms(mor_module *m, mor_op *op, const char *name, int n, char *const *v) {
  mor_attr *a = attr_slot(m, op, name);
  a->kind = MOR_ATTR_SYMS;
  a->n = n;
  a->syms = mor_alloc(m, sizeof(char *) * (size_t)(n ? n : 1));
  for (int i = 0; i < n; i++) a->syms[i] = mor_strdup(m, v[i]);
}
void mor_attr_copy(mor_module *m, mor_attr *dst, const mor_attr *src) {
  *dst = *src;
  dst->name = mor_strdup(m, src->name);
  if (src->s) dst->s = mor_strdup(m, src->s);
  if (src->kind == MOR_ATTR_INTS) {
    dst->ints = mor_alloc(m, sizeof(int64_t) * (size_t)(src->n ? src->n : 1));
    memcpy(dst->ints, src->ints, sizeof(int64_t) * (size_t)src->n);
  } else if (src->kind == MOR_ATTR_FLOATS) {
    dst->floats = mor_alloc(m, sizeof(double) * (size_t)(src->n ? src->n : 1));
    memcpy(dst->floats, src->floats, sizeof(double) * (size_t)src->n);
  } else if (src->kind == MOR_ATTR_SYMS) {
    dst->syms = mor_alloc(m, sizeof(char *) * (size_t)(src->n ? src->n : 1));
    for (int i = 0; i < src->n; i++) dst->syms[i] = mor_strdup(m, src->syms[i]);
  }
}
const mor_attr *mor_op_attr(const mor_op *op, const char *name) {
  for (int i = 0; i < op->n_attrs; i++)
    if (strcmp(op->attrs[i].name, name) == 0) return &op->attrs[i];
  return NULL;
}
int64_t mor_op_int(const mor_op *op, const char *name, int64_t dflt) {
  const mor_attr *a = mor_op_attr(op, name);
  if (!a) return dflt;
  if (a->kind == MOR_ATTR_INT) return a->i;
  if (a->kind == MOR_ATTR_FLOAT) return a->f > -0x1p63 && a->f < 0x1p63 ? (int64_t)a->f : dflt; /* NaN, inf: dflt */
  return dflt;
}
double mor_op_float(const mor_op *op, const char *name, double dflt) {
  const mor_attr *a = mor_op_attr(op, name);
  if (!a) return dflt;
  if (a->kind == MOR_ATTR_FLOAT) return a->f;
  if (a->kind == MOR_ATTR_INT) return (double)a->i;
  return dflt;
}
const char *mor_op_str(const mor_op *op, const char *name) {
  const mor_attr *a = mor_op_attr(op, name);
  if (!a || (a->kind != MOR_ATTR_STR && a->kind != MOR_ATTR_SYM)) return NULL;
  return a->s;
}
