/* passes.h: the passes (one file each, registered in pm.c) and the IR
 * utilities they share (util.c): cloning, type inference, dead-code and
 * common-subexpression elimination, symbol clean-up. See docs/passes.md. */
#ifndef MOR_PASSES_H
#define MOR_PASSES_H
#include "ir/ir.h"

/* ---- the passes (signature of mor_pass.run) ----------------------------- */
int mor_pass_specialize_depths(mor_module *m, int *changed, mor_err *err);
int mor_pass_fuse_shared_block(mor_module *m, int *changed, mor_err *err);
int mor_pass_plan_kv(mor_module *m, int *changed, mor_err *err);
int mor_pass_plan_memory(mor_module *m, int *changed, mor_err *err);
int mor_pass_dce(mor_module *m, int *changed, mor_err *err);
int mor_pass_cse(mor_module *m, int *changed, mor_err *err);

/* ---- utilities (util.c) -------------------------------------------------- */
/* Ops that write state or end a block: kv_write, qkv with caches, call,
 * yield, return, recur whose region has such ops. Never removed by DCE. */
int mor_op_has_effects(const mor_op *op);
/* Remove ops without effects whose results are unused (nested regions
 * included, to a fixed point). Returns the number removed. */
int mor_dce_block(mor_block *b);
/* Merge identical pure ops (same code, operands, attributes except the
 * `depth` annotation, result types) within each block. Returns merges. */
int mor_cse_block(mor_block *b);
/* Recompute the result types of ops whose types follow from their
 * operands (everything except select, where, recur results and function
 * results), in program order, nested regions included. */
int mor_infer_types(mor_module *m, mor_block *b, mor_err *err);
/* The derived result types of op (1), or 0 when op's types are its own
 * (select, where, recur). */
int mor_derive_types(const mor_module *m, const mor_op *op, mor_type *out);
/* Drop symbols no type mentions; keeps the order of the others. */
void mor_compact_syms(mor_module *m);
/* Clone op (not its region's ops' uses outside) with operands mapped
 * through map[id] (NULL entries keep the operand); results are fresh and
 * recorded in map. map has m->next_value_id entries at the time of the
 * call for every id it may be asked about. Regions are cloned too. */
mor_op *mor_clone_op(mor_module *m, const mor_op *op, mor_value **map, int map_len);
/* Number of uses of v in the block (nested regions included). */
int mor_count_uses(const mor_block *root, const mor_value *v);
/* The function whose body (or a nested region of it) holds op. */
mor_block *mor_root_block(mor_op *op);
/* A weight referenced by op through any weight attribute, in a fixed order
 * (weight, norm, wq, wk, wv, wg, wu, weights..., weights2...); k-th one, or
 * NULL when there are fewer. */
const char *mor_op_weight(const mor_op *op, int k);
/* Remove the attribute `name` from op, if present. */
void mor_op_del_attr(mor_op *op, const char *name);
/* Compare two attributes for equality (kind and value). */
int mor_attr_equal(const mor_attr *a, const mor_attr *b);

#endif
