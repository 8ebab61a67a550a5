/* dot.c: `morc dump --dot`: the IR as a Graphviz graph. Each function is a
 * cluster; ops specialized for a depth (attribute depth = r) sit in a
 * cluster per depth, a recur region in a cluster of its own; fused kernels
 * are filled boxes, routing ops diamonds, calls 3-D boxes with a dashed edge
 * into the function they run (so the shared block is drawn once and every
 * depth points at it). Every name from a model file is escaped. */
#include <stdlib.h>
#include <string.h>

#include "tools/commands.h"

/* text inside a DOT double-quoted string */
static void esc(mor_buf *b, const char *s) {
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p == '"' || *p == '\\') {
      mor_buf_putc(b, '\\');
      mor_buf_putc(b, (char)*p);
    } else if (*p < 0x20 || *p == 0x7f) {
      mor_buf_putc(b, '?');
    } else if (*p >= 0x80) { /* a UTF-8 sequence as it is; '?' for a byte that is not UTF-8 */
      int n = mor_utf8_char((const char *)p, strnlen((const char *)p, 4));
      if (n) mor_buf_write(b, p, (size_t)n), p += n - 1;
      else mor_buf_putc(b, '?');
    } else {
      mor_buf_putc(b, (char)*p);
    }
  }
}

static void esc_type(mor_buf *b, const mor_module *m, const mor_type *t) {
  mor_buf tb = {0};
  mor_print_type(&tb, m, t);
  mor_buf_putc(&tb, 0);
  esc(b, tb.data);
  mor_buf_free(&tb);
}

static int is_fused(mor_opcode c) {
  return c == MOR_OP_NORM_MATMUL || c == MOR_OP_QKV || c == MOR_OP_GATE_UP || c == MOR_OP_MATMUL_ADD ||
         c == MOR_OP_MATMUL_STORE;
}

static int is_routing(mor_opcode c) {
  return c == MOR_OP_ROUTER || c == MOR_OP_SELECT || c == MOR_OP_TC_ROUTE || c == MOR_OP_WHERE;
}

typedef struct dotw {
  mor_buf *b;
  const mor_module *m;
  int f;           /* function index */
  int *node;       /* op -> node number, by the op's first result id or a counter */
} dotw;

static int n_ops_total;

static void op_node(dotw *D, const mor_op *op, int id) {
  mor_buf *b = D->b;
  mor_buf_printf(b, "    n%d_%d [label=\"", D->f, id);
  esc(b, mor_ops[op->code].name);
  const char *w = NULL;
  int nw = 0;
  const mor_attr *callee = mor_op_attr(op, "callee");
  if (callee && callee->kind == MOR_ATTR_SYM) {
    mor_buf_puts(b, " @");
    esc(b, callee->s);
  }
  if (op->code == MOR_OP_CONST) mor_buf_printf(b, " %lld", (long long)mor_op_int(op, "value", 0));
  static const char *attrs[] = {"weight", "norm", "wq", "wk", "wv", "wg", "wu"};
  for (size_t i = 0; i < sizeof attrs / sizeof *attrs; i++) {
    const mor_attr *a = mor_op_attr(op, attrs[i]);
    if (!a || a->kind != MOR_ATTR_SYM) continue;
    if (!w) w = a->s;
    nw++;
  }
  if (w) {
    mor_buf_puts(b, "\\n@");
    esc(b, w);
    if (nw > 1) mor_buf_printf(b, " (+%d)", nw - 1);
  }
  const mor_attr *c = mor_op_attr(op, "caches");
  if (c && c->kind == MOR_ATTR_SYMS) {
    mor_buf_puts(b, "\\ncaches");
    for (int i = 0; i < c->n && i < 4; i++) {
      mor_buf_puts(b, " @");
      esc(b, c->syms[i]);
    }
    if (c->n > 4) mor_buf_puts(b, " ...");
  }
  for (int i = 0; i < op->n_results; i++) {
    mor_buf_puts(b, i ? ", " : "\\n");
    esc_type(b, D->m, &op->results[i]->type);
  }
  mor_buf_puts(b, "\"");
  if (is_fused(op->code)) mor_buf_puts(b, ", shape=box, style=\"filled,bold\", fillcolor=\"#cfe2ff\"");
  else if (op->code == MOR_OP_CALL) mor_buf_puts(b, ", shape=box3d, style=filled, fillcolor=\"#ffe3b3\"");
  else if (is_routing(op->code)) mor_buf_puts(b, ", shape=diamond, style=filled, fillcolor=\"#e8f5e9\"");
  else if (op->code == MOR_OP_KV_WRITE || op->code == MOR_OP_ATTENTION) mor_buf_puts(b, ", shape=box, style=rounded");
  mor_buf_puts(b, "];\n");
}

/* node ids: value id -> producing node (op ids are the position in a walk) */
typedef struct walk {
  int next;
  int *prod;      /* value id -> node id, -1 for function/region arguments (their own nodes) */
  const mor_op **ops;
  int *ids;
  int n;
} walk;

static void number_ops(walk *W, const mor_block *blk) {
  for (const mor_op *op = blk->first; op; op = op->next) {
    int id = W->next++;
    W->ops[W->n] = op;
    W->ids[W->n++] = id;
    for (int i = 0; i < op->n_results; i++) W->prod[op->results[i]->id] = id;
    if (op->region) {
      for (int i = 0; i < op->region->n_args; i++) W->prod[op->region->args[i]->id] = -2 - op->region->args[i]->id;
      number_ops(W, op->region);
    }
  }
}

static void count_ops(const mor_block *blk) {
  for (const mor_op *op = blk->first; op; op = op->next) {
    n_ops_total++;
    if (op->region) count_ops(op->region);
  }
}

static void emit_block(dotw *D, walk *W, const mor_block *blk, int *k) {
  /* group top-level ops of this block by their depth annotation */
  int64_t cur = -1;
  for (const mor_op *op = blk->first; op; op = op->next) {
    int id = W->ids[(*k)++];
    int64_t d = mor_op_attr(op, "depth") ? mor_op_int(op, "depth", -1) : -1;
    if (d != cur) {
      if (cur >= 0) mor_buf_puts(D->b, "    }\n");
      if (d >= 0)
        mor_buf_printf(D->b,
                       "    subgraph cluster_f%d_d%lld_%d { label=\"depth %lld\"; style=dashed; color=\"#888888\";\n",
                       D->f, (long long)d, id, (long long)d);
      cur = d;
    }
    op_node(D, op, id);
    if (op->region) {
      mor_buf_printf(D->b, "    subgraph cluster_f%d_r%d { label=\"recur n=%lld: the shared block, depth = ", D->f,
                     id, (long long)mor_op_int(op, "n", 0));
      mor_buf_printf(D->b, "0..%lld\"; style=filled; fillcolor=\"#f4f4f4\";\n", (long long)mor_op_int(op, "n", 1) - 1);
      for (int i = 0; i < op->region->n_args; i++) {
        mor_buf_printf(D->b, "    a%d_%d [shape=plaintext, label=\"%s: ", D->f, op->region->args[i]->id,
                       i == 0 ? "depth" : "carried");
        esc_type(D->b, D->m, &op->region->args[i]->type);
        mor_buf_puts(D->b, "\"];\n");
      }
      emit_block(D, W, op->region, k);
      mor_buf_puts(D->b, "    }\n");
    }
  }
  if (cur >= 0) mor_buf_puts(D->b, "    }\n");
}

static void emit_edges(dotw *D, walk *W) {
  for (int k = 0; k < W->n; k++) {
    const mor_op *op = W->ops[k];
    for (int i = 0; i < op->n_operands; i++) {
      const mor_value *v = op->operands[i];
      int p = W->prod[v->id];
      if (p >= 0) mor_buf_printf(D->b, "  n%d_%d -> n%d_%d", D->f, p, D->f, W->ids[k]);
      else mor_buf_printf(D->b, "  a%d_%d -> n%d_%d", D->f, v->id, D->f, W->ids[k]);
      mor_buf_puts(D->b, " [label=\"");
      esc_type(D->b, D->m, &v->type);
      mor_buf_puts(D->b, "\", fontsize=8];\n");
    }
  }
}

void morc_write_dot(mor_buf *b, const mor_module *m) {
  mor_buf_puts(b, "digraph \"");
  esc(b, m->name);
  mor_buf_puts(b, "\" {\n  compound=true;\n  rankdir=TB;\n  newrank=true;\n");
  mor_buf_puts(b, "  node [fontname=\"Helvetica\", fontsize=10];\n  edge [fontname=\"Helvetica\", color=\"#555555\"];\n");
  int *first_node = mor_xcalloc((size_t)m->n_funcs + 1, sizeof(int));
  for (int f = 0; f < m->n_funcs; f++) {
    const mor_func *fn = m->funcs[f];
    n_ops_total = 0;
    count_ops(fn->body);
    walk W = {0};
    W.prod = mor_xmalloc(sizeof(int) * (size_t)(m->next_value_id + 1));
    for (int i = 0; i <= m->next_value_id; i++) W.prod[i] = -1;
    W.ops = mor_xcalloc((size_t)n_ops_total + 1, sizeof *W.ops);
    W.ids = mor_xcalloc((size_t)n_ops_total + 1, sizeof *W.ids);
    for (int i = 0; i < fn->body->n_args; i++) W.prod[fn->body->args[i]->id] = -2;
    number_ops(&W, fn->body);
    dotw D = {b, m, f, NULL};
    mor_buf_printf(b, "  subgraph cluster_f%d {\n    label=\"@", f);
    esc(b, fn->name);
    mor_buf_puts(b, "\"; fontsize=14; style=rounded;\n");
    for (int i = 0; i < fn->body->n_args; i++) {
      mor_buf_printf(b, "    a%d_%d [shape=plaintext, label=\"arg %d: ", f, fn->body->args[i]->id, i);
      esc_type(b, m, &fn->body->args[i]->type);
      mor_buf_puts(b, "\"];\n");
    }
    int k = 0;
    emit_block(&D, &W, fn->body, &k);
    mor_buf_puts(b, "  }\n");
    emit_edges(&D, &W);
    first_node[f] = W.n ? W.ids[0] : -1;
    free(W.prod);
    free(W.ops);
    free(W.ids);
  }
  /* calls point into the function they run */
  for (int f = 0; f < m->n_funcs; f++) {
    int id = 0;
    /* walk again in the same order to recover node ids */
    const mor_block *blocks[64];
    const mor_op *at[64];
    int sp = 0;
    blocks[sp] = m->funcs[f]->body;
    at[sp] = m->funcs[f]->body->first;
    while (sp >= 0) {
      const mor_op *op = at[sp];
      if (!op) {
        sp--;
        continue;
      }
      at[sp] = op->next;
      int my = id++;
      if (op->code == MOR_OP_CALL) {
        const char *c = mor_op_str(op, "callee");
        const mor_func *callee = c ? mor_find_func(m, c) : NULL;
        int cf = -1;
        for (int g = 0; g < m->n_funcs; g++)
          if (m->funcs[g] == callee) cf = g;
        if (cf >= 0 && first_node[cf] >= 0)
          mor_buf_printf(b,
                         "  n%d_%d -> n%d_%d [lhead=cluster_f%d, style=dashed, color=\"#d9822b\", label=\"calls\", "
                         "fontsize=8, constraint=false];\n",
                         f, my, cf, first_node[cf], cf);
      }
      if (op->region && sp + 1 < 64) {
        sp++;
        blocks[sp] = op->region;
        at[sp] = op->region->first;
      }
    }
    (void)blocks;
  }
  free(first_node);
  mor_buf_puts(b, "}\n");
}
