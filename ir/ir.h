/* ir.h: the morc IR. A module holds symbols (bounded dimensions), globals
 * (weights and KV caches) and functions; a function is one block of SSA
 * ops; `recur` ops carry a region (one block) that is the shared block.
 * See docs/ir.md for the text form and ir/ops.def for every op. */
#ifndef MOR_IR_H
#define MOR_IR_H
#include <stdint.h>
#include <stdio.h>
#include "ir/util.h"

#define MOR_MAX_RANK 4

typedef enum mor_opcode {
#define X(id, name, nops, nres, nreg) MOR_OP_##id,
#include "ir/ops.def"
#undef X
  MOR_OP_COUNT
} mor_opcode;

typedef struct mor_opinfo {
  const char *name;
  int n_operands, n_results, n_regions; /* -1: variadic */
} mor_opinfo;
extern const mor_opinfo mor_ops[MOR_OP_COUNT];
int mor_op_lookup(const char *name); /* opcode or -1 */

/* A dimension: a constant (sym < 0, n = size) or a module symbol (sym >= 0,
 * n = the symbol's upper bound, kept in sync with the symbol table). */
typedef struct mor_dim {
  int64_t n;
  int sym;
} mor_dim;

typedef struct mor_type {
  mor_dtype dtype;
  int rank;
  mor_dim dims[MOR_MAX_RANK];
} mor_type;

typedef struct mor_sym {
  char *name;
  int64_t bound;
} mor_sym;

typedef enum { MOR_GLOBAL_WEIGHT, MOR_GLOBAL_KV } mor_global_kind;

/* weight: the tensor of that name in the weight files (dtype as stored).
 * kv: one KV cache, type f32[capacity, kv_heads, head_dim] (K and V each),
 * for unrolled layer `layer` at recursion `depth`; `alias` names the cache
 * whose storage it shares (recursive KV sharing) or is NULL. */
typedef struct mor_global {
  mor_global_kind kind;
  char *name;
  mor_type type;
  int64_t layer, depth;
  char *alias;
  char *policy;   /* kv: growth policy set by plan-kv ("reserve" or "grow"), or NULL */
} mor_global;

typedef enum { MOR_ATTR_INT, MOR_ATTR_FLOAT, MOR_ATTR_STR, MOR_ATTR_SYM, MOR_ATTR_INTS, MOR_ATTR_FLOATS, MOR_ATTR_SYMS } mor_attr_kind;

typedef struct mor_attr {
  char *name;
  mor_attr_kind kind;
  int64_t i;
  double f;
  char *s;     /* STR and SYM (symbol name without '@') */
  int n;       /* list length */
  int64_t *ints;
  double *floats;
  char **syms; /* SYMS: names; "none" means no symbol (@none) */
} mor_attr;

struct mor_op;
struct mor_block;

typedef struct mor_value {
  int id;                 /* unique in the module */
  mor_type type;
  struct mor_op *def;     /* defining op, or NULL for a block argument */
  struct mor_block *block;/* block of a block argument */
  int index;              /* result index or argument index */
} mor_value;

typedef struct mor_op {
  mor_opcode code;
  int n_operands;
  mor_value **operands;
  int n_results;
  mor_value **results;
  int n_attrs;
  mor_attr *attrs;
  struct mor_block *region;   /* recur: the body; else NULL */
  struct mor_block *parent;
  struct mor_op *prev, *next;
  int line, col;              /* source position when parsed, else 0 */
} mor_op;

typedef struct mor_block {
  int n_args;
  mor_value **args;
  mor_op *first, *last;
  mor_op *parent_op;          /* the op owning this region, NULL for a function body */
} mor_block;

typedef struct mor_func {
  char *name;
  mor_block *body;
  int n_results;
  mor_type *result_types;
} mor_func;

typedef struct mor_module {
  char *name;
  char *src_file;             /* for error messages of parsed modules */
  int n_mattrs;
  mor_attr *mattrs;           /* module attributes: vocab_size, hidden_size, ... */
  int n_syms;
  mor_sym *syms;
  int n_globals;
  mor_global *globals;
  int n_funcs;
  mor_func **funcs;
  int next_value_id;
  struct mor_arena *arena;    /* owns every op, value, block, attr and string */
} mor_module;

/* ---- module ------------------------------------------------------------ */
mor_module *mor_module_new(const char *name);
void mor_module_free(mor_module *m);
void *mor_alloc(mor_module *m, size_t n);          /* zeroed, freed with the module */
char *mor_strdup(mor_module *m, const char *s);
int mor_add_sym(mor_module *m, const char *name, int64_t bound); /* index; reuses an existing name */
int mor_find_sym(const mor_module *m, const char *name);
/* A fresh symbol "<prefix><k>" not yet used. */
int mor_new_sym(mor_module *m, const char *prefix, int64_t bound);
mor_global *mor_add_global(mor_module *m, mor_global_kind kind, const char *name, mor_type type);
mor_global *mor_find_global(const mor_module *m, const char *name);
mor_func *mor_add_func(mor_module *m, const char *name);
mor_func *mor_find_func(const mor_module *m, const char *name);

void mor_set_mattr_int(mor_module *m, const char *name, int64_t v);
void mor_set_mattr_float(mor_module *m, const char *name, double v);
void mor_set_mattr_str(mor_module *m, const char *name, const char *v);
const mor_attr *mor_get_mattr(const mor_module *m, const char *name);
int64_t mor_mattr_int(const mor_module *m, const char *name, int64_t dflt);

/* ---- types ------------------------------------------------------------- */
mor_type mor_type_make(mor_dtype dt, int rank, const mor_dim *dims);
mor_dim mor_dconst(int64_t n);
mor_dim mor_dsym(const mor_module *m, int sym);
int mor_type_equal(const mor_type *a, const mor_type *b);
int64_t mor_type_max_numel(const mor_type *t);     /* at upper bounds */
void mor_print_type(mor_buf *b, const mor_module *m, const mor_type *t);

/* ---- blocks, ops, values ---------------------------------------------- */
mor_block *mor_block_new(mor_module *m);
mor_value *mor_block_add_arg(mor_module *m, mor_block *b, mor_type t);
/* Create an op (not yet in a block) with results of the given types. */
mor_op *mor_op_new(mor_module *m, mor_opcode code, int n_operands, mor_value *const *operands,
                   int n_results, const mor_type *result_types);
void mor_block_append(mor_block *b, mor_op *op);
void mor_insert_before(mor_op *pos, mor_op *op);
void mor_op_remove(mor_op *op);                   /* unlink from its block */
void mor_op_set_operand(mor_op *op, int i, mor_value *v);
/* Replace every use of `from` in the function (nested regions included). */
void mor_replace_uses(mor_block *root, mor_value *from, mor_value *to);
int mor_value_has_uses(mor_block *root, const mor_value *v);

/* Attributes on ops. Setters replace an attribute of the same name. */
void mor_op_set_int(mor_module *m, mor_op *op, const char *name, int64_t v);
void mor_op_set_float(mor_module *m, mor_op *op, const char *name, double v);
void mor_op_set_str(mor_module *m, mor_op *op, const char *name, const char *v);
void mor_op_set_sym(mor_module *m, mor_op *op, const char *name, const char *sym);
void mor_op_set_ints(mor_module *m, mor_op *op, const char *name, int n, const int64_t *v);
void mor_op_set_floats(mor_module *m, mor_op *op, const char *name, int n, const double *v);
void mor_op_set_syms(mor_module *m, mor_op *op, const char *name, int n, char *const *v);
const mor_attr *mor_op_attr(const mor_op *op, const char *name);
int64_t mor_op_int(const mor_op *op, const char *name, int64_t dflt);
double mor_op_float(const mor_op *op, const char *name, double dflt);
const char *mor_op_str(const mor_op *op, const char *name); /* STR or SYM; NULL if absent */
void mor_attr_copy(mor_module *m, mor_attr *dst, const mor_attr *src);

/* ---- text form ---------------------------------------------------------- */
/* Print the module in the text form of docs/ir.md. Value names are
 * renumbered %0, %1, ... in order of definition. */
void mor_print_module(mor_buf *b, const mor_module *m);
int mor_write_module(FILE *f, const mor_module *m);
/* Quote a symbol name when it has characters beyond [A-Za-z0-9_.$-]. */
void mor_print_symname(mor_buf *b, const char *name);
/* The same without the '@', into buf (cut with "..." to fit n); for
 * messages, where MOR_SYM(name) gives a buffer that lives to the end of the
 * enclosing block: mor_errf(e, "weight @%s ...", MOR_SYM(g->name)). */
const char *mor_symstr(const char *name, char *buf, size_t n);
#define MOR_SYM(name) mor_symstr((name), (char[200]){0}, 200)
/* Parse the text form; errors are "file:line:col: error: ...". */
mor_module *mor_parse_module(const char *text, size_t len, const char *filename, mor_err *err);

/* ---- verifier ------------------------------------------------------------ */
/* Check types, shapes, SSA dominance and region rules. Errors point at the
 * op: "file:line:col: error: ..." for parsed modules, else "@func: op #k". */
int mor_verify_module(const mor_module *m, mor_err *err);
/* Result types of `call @callee(args)`: the callee's result types with the
 * symbols of its parameter types replaced by the arguments' dims. -1 + err
 * when the arguments do not fit the parameters. */
int mor_call_result_types(const mor_module *m, const mor_func *callee, int n_args, mor_value *const *args,
                          mor_type *out, mor_err *err);

#endif
