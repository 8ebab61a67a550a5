/* model.h: the model description (model.json / HF config.json), the
 * safetensors weight files, and the resolution of weight names to the
 * layers of the unrolled model (see docs/model-format.md). */
#ifndef MOR_MODEL_H
#define MOR_MODEL_H
#include <stdint.h>
#include "ir/util.h"

typedef enum { MOR_SHARE_CYCLE, MOR_SHARE_MIDDLE_CYCLE, MOR_SHARE_SEQUENCE, MOR_SHARE_MIDDLE_SEQUENCE } mor_sharing;
typedef enum { MOR_ROUTE_NONE, MOR_ROUTE_EXPERT, MOR_ROUTE_TOKEN } mor_routing;
typedef enum { MOR_ROUTER_LINEAR, MOR_ROUTER_MLP } mor_router_kind;
typedef enum { MOR_ACT_SIGMOID, MOR_ACT_TANH, MOR_ACT_SOFTMAX } mor_router_act;
typedef enum { MOR_GATE_WEIGHTED, MOR_GATE_NONE } mor_gating;
typedef enum { MOR_INFER_THRESHOLD, MOR_INFER_TOPK } mor_infer_routing;
typedef enum { MOR_KV_RECURSION_WISE, MOR_KV_RECURSIVE_SHARING } mor_kv_mode;

/* A parsed and fully validated model description. All defaults applied. */
typedef struct mor_config {
  char *json_path;        /* the description file as given */
  char *dir;              /* its directory */
  int is_llama;           /* model_type "llama" (no mor object) */
  int64_t vocab_size, hidden_size, intermediate_size, num_layers;
  int64_t num_heads, num_kv_heads, head_dim, max_pos;
  double rms_norm_eps, rope_theta;
  int tie_word_embeddings;
  /* mor object (a llama config: n_r 1, cycle, routing none) */
  int n_r;
  mor_sharing sharing;
  mor_routing routing;
  mor_router_kind router;
  mor_router_act router_act;
  double alpha, temperature;
  double *capacity;       /* n_r entries (expert_choice; else all 1.0) */
  mor_gating gating;
  mor_infer_routing infer_routing;
  double threshold;
  mor_kv_mode kv_mode;
  /* files, as absolute-or-relative-to-cwd paths (already joined with dir) */
  int n_weight_files;
  char **weight_files;    /* may be one model.safetensors.index.json, resolved by mor_weights_open */
  char *tokenizer;        /* NULL when none */
  /* derived */
  int n_prefix, n_suffix; /* 0 or 1 each */
  int n_block;            /* B: shared block layers (cycle) or unique middle layers (sequence) */
} mor_config;

/* Parse and validate. Errors name the file and JSON path, e.g.
 * "m.json: mor.capacity[2]: expected a number in (0, 1], got 1.5". */
mor_config *mor_config_load(const char *path, mor_err *err);
/* The same from len bytes of text already in memory (need not be
 * NUL-terminated); path names the file in messages and locates the weights. */
mor_config *mor_config_parse(const char *path, const char *text, size_t len, mor_err *err);
void mor_config_free(mor_config *c);

/* Layer map: unrolled layer l (0..num_layers-1) -> what it runs. */
typedef enum { MOR_LAYER_PREFIX, MOR_LAYER_BLOCK, MOR_LAYER_SUFFIX } mor_layer_role;
typedef struct mor_layer_use {
  mor_layer_role role;
  int index;              /* block layer j (cycle) or unique middle layer u (sequence); 0 for prefix/suffix */
  int depth;              /* recursion r (cycle: which pass over the block; sequence: which repetition) */
} mor_layer_use;
mor_layer_use mor_config_layer(const mor_config *c, int64_t l);

/* One tensor in a safetensors file (data points into the mmapped file). */
typedef struct mor_tensor {
  char *name;
  mor_dtype dtype;        /* F32, F16 or BF16 */
  int rank;
  int64_t shape[4];
  int64_t numel;
  const void *data;
  uint64_t nbytes;
  const char *file;       /* path of the file that holds it */
} mor_tensor;

typedef struct mor_weights {
  int n_files;
  char **files;
  void **maps;
  uint64_t *map_sizes;
  int n_tensors;
  mor_tensor *tensors;    /* sorted by name */
} mor_weights;

/* mmap every weight file of the description (following a sharded
 * model.safetensors.index.json), parse and check every header: offsets,
 * sizes, overlaps, dtypes, shapes. */
mor_weights *mor_weights_open(const mor_config *c, mor_err *err);
/* Open a single safetensors file (used by tools and tests). */
mor_weights *mor_safetensors_open(const char *path, mor_err *err);
const mor_tensor *mor_weights_find(const mor_weights *w, const char *name);
void mor_weights_free(mor_weights *w);
/* Element i of a tensor as f32 (F32/F16/BF16). */
float mor_tensor_get(const mor_tensor *t, int64_t i);

/* The weights of one decoder layer. */
typedef struct mor_layer_weights {
  const mor_tensor *input_norm, *wq, *wk, *wv, *wo, *post_norm, *wg, *wu, *wd;
} mor_layer_weights;

/* Weights resolved against the description (section 3 of model-format.md):
 * every tensor present, shaped right, no unexpected tensor, and copies of
 * shared layers identical to the first copy. */
typedef struct mor_resolved {
  const mor_tensor *embed, *final_norm, *lm_head; /* lm_head == embed when tied */
  mor_layer_weights prefix, suffix;               /* valid when n_prefix / n_suffix */
  mor_layer_weights *block;                       /* n_block entries */
  /* routers: expert_choice has n_r (one per depth), token_choice has 1.
   * linear: router[i] is [1,D] (expert) or [n_r,D] (token), router2 NULL.
   * mlp: router[i] is the first layer [2D,D], router2[i] the second [out,2D]. */
  int n_routers;
  const mor_tensor **router, **router2;
} mor_resolved;

mor_resolved *mor_resolve(const mor_config *c, const mor_weights *w, mor_err *err);
void mor_resolved_free(mor_resolved *r);

#endif
