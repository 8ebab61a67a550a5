/* lower.h: lowering a validated model (config + resolved weights) to the
 * high-level IR: one `forward` function with a `recur` region for the
 * shared block and explicit routing ops. */
#ifndef MOR_LOWER_H
#define MOR_LOWER_H
#include "frontend/model.h"
#include "ir/ir.h"

/* Build the module. The symbol T (tokens of one forward call) is bounded by
 * max_position_embeddings; KV caches hold max_position_embeddings tokens. */
mor_module *mor_lower(const mor_config *c, const mor_resolved *r, mor_err *err);

/* Convenience: load the description, open and resolve the weights, lower.
 * On success *cfg and *w are set (the caller frees them); r is freed. */
mor_module *mor_load_model(const char *path, mor_config **cfg, mor_weights **w, mor_err *err);

#endif
