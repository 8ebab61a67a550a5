/* config.c: reads a model description (a MoR model.json or a plain Hugging
 * Face Llama config.json), checks every key against docs/model-format.md,
 * applies the defaults, and maps unrolled layers to what they run. */
#include "frontend/model.h"
#include "frontend/json.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_RECURSIONS 64
#define MAX_LAYERS 65536.0       /* more unrolled layers than this is not a real model */
#define MAX_COUNT 2147483647.0   /* head counts must fit an int */
#define MAX_SIZE 9007199254740992.0 /* 2^53: exact in a JSON number */

/* Where we are: the file name for messages, the error to fill. */
typedef struct ctx {
  const char *file;
  mor_err *err;
} ctx;

static int fail_expected(ctx *x, const char *path, const char *what, const cJSON *got) {
  char g[96];
  mor_errf(x->err, "%s: %s: expected %s, got %s", x->file, path, what, mor_json_show(got, g, sizeof g));
  return -1;
}

static int fail_missing(ctx *x, const char *path, const char *what) {
  mor_errf(x->err, "%s: %s: required key is missing (expected %s)", x->file, path, what);
  return -1;
}

/* An integer in [lo, hi]. A missing key takes dflt unless required. */
static int get_int(ctx *x, const cJSON *obj, const char *key, const char *path, int required, int64_t dflt, double lo,
                   double hi, const char *what, int64_t *out) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
  if (!v) {
    if (required) return fail_missing(x, path, what);
    *out = dflt;
    return 0;
  }
  if (!mor_json_is_int(v) || v->valuedouble < lo || v->valuedouble > hi) return fail_expected(x, path, what, v);
  *out = (int64_t)v->valuedouble;
  return 0;
}

/* A finite number; positive when asked. */
static int get_num(ctx *x, const cJSON *obj, const char *key, const char *path, double dflt, int positive,
                   double *out) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
  if (!v) {
    *out = dflt;
    return 0;
  }
  const char *what = positive ? "a finite number > 0" : "a finite number";
  if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || (positive && !(v->valuedouble > 0)))
    return fail_expected(x, path, what, v);
  *out = v->valuedouble;
  return 0;
}

static int get_bool(ctx *x, const cJSON *obj, const char *key, const char *path, int dflt, int *out) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
  if (!v) {
    *out = dflt;
    return 0;
  }
  if (!cJSON_IsBool(v)) return fail_expected(x, path, "true or false", v);
  *out = cJSON_IsTrue(v) ? 1 : 0;
  return 0;
}

/* Words a message uses for a list of names: "\"a\", \"b\" or \"c\"". */
static void name_list(const char *const *names, int n, char *buf, size_t len) {
  size_t k = 0;
  buf[0] = 0;
  for (int i = 0; i < n && k < len; i++) {
    const char *sep = i == 0 ? "" : i == n - 1 ? " or " : ", ";
    k += (size_t)snprintf(buf + k, len - k, "%s\"%s\"", sep, names[i]);
  }
}

/* One of names (*out is its index into names). A missing key keeps *out. */
static int get_enum(ctx *x, const cJSON *obj, const char *key, const char *path, const char *const *names, int n,
                    const char *why, int *out) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
  if (!v) return 0;
  char what[256], list[200];
  name_list(names, n, list, sizeof list);
  snprintf(what, sizeof what, "%s%s", list, why ? why : "");
  if (!cJSON_IsString(v)) return fail_expected(x, path, what, v);
  for (int i = 0; i < n; i++)
    if (strcmp(v->valuestring, names[i]) == 0) {
      *out = i;
      return 0;
    }
  return fail_expected(x, path, what, v);
}

static int in_list(const char *s, const char *const *list) {
  for (int i = 0; list[i]; i++)
    if (strcmp(s, list[i]) == 0) return 1;
  return 0;
}

/* Keys morc reads at the top level. */
static const char *const top_keys[] = {
    "model_type", "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
    "num_key_value_heads", "head_dim", "rms_norm_eps", "rope_theta", "max_position_embeddings",
    "tie_word_embeddings", "hidden_act", "rope_scaling", "attention_bias", "mlp_bias", "mor", "weights",
    "tokenizer", NULL};
/* Standard Hugging Face keys that do not change the function: accepted silently. */
static const char *const hf_keys[] = {
    "_name_or_path", "architectures", "torch_dtype", "dtype", "bos_token_id", "eos_token_id", "pad_token_id",
    "sep_token_id", "unk_token_id", "decoder_start_token_id", "transformers_version", "use_cache",
    "initializer_range", "attention_dropout", "hidden_dropout", "embd_pdrop", "resid_pdrop", "pretraining_tp",
    "return_dict", "output_hidden_states", "output_attentions", "torchscript", "is_encoder_decoder", "is_decoder",
    "tokenizer_class", "auto_map", "id2label", "label2id", "problem_type", "chunk_size_feed_forward",
    "use_bfloat16", "tf_legacy_loss", "pruned_heads", "cross_attention_hidden_size", "add_cross_attention",
    "finetuning_task", "task_specific_params", "prefix", NULL};
static const char *const mor_keys[] = {
    "num_recursions", "sharing", "routing", "router", "router_activation", "alpha", "temperature", "capacity",
    "gating", "inference_routing", "threshold", "kv_cache", NULL};

/* Warn about keys morc does not know; reject a key given twice. */
static int check_keys(ctx *x, const cJSON *obj, const char *prefix, const char *const *known,
                      const char *const *silent) {
  const char *dup = mor_json_dup_key(obj);
  char name[128];
  if (dup) {
    mor_errf(x->err, "%s: %s%s: key appears twice", x->file, prefix, mor_esc(dup, name, sizeof name));
    return -1;
  }
  for (const cJSON *k = obj->child; k; k = k->next)
    if (!in_list(k->string, known) && !(silent && in_list(k->string, silent)))
      mor_warnf("%s: %s%s: unknown key, ignored", x->file, prefix, mor_esc(k->string, name, sizeof name));
  return 0;
}

/* a * b into *out, with an error naming the product when it overflows. */
static int mul_checked(ctx *x, uint64_t a, uint64_t b, uint64_t *out, const char *what) {
  if (mor_mul_overflow(a, b, out) == 0) return 0;
  mor_errf(x->err, "%s: %s: the product overflows 64 bits (%llu * %llu); the sizes are not plausible", x->file, what,
           (unsigned long long)a, (unsigned long long)b);
  return -1;
}

static int add_checked(ctx *x, uint64_t a, uint64_t b, uint64_t *out, const char *what) {
  if (!__builtin_add_overflow(a, b, out)) return 0;
  mor_errf(x->err, "%s: %s: the sum overflows 64 bits; the sizes are not plausible", x->file, what);
  return -1;
}

/* Every weight's element count, its bytes, and the total over the model fit
 * in 64 bits, so later size arithmetic cannot wrap. */
static int check_products(ctx *x, mor_config *c) {
  uint64_t V = (uint64_t)c->vocab_size, D = (uint64_t)c->hidden_size, F = (uint64_t)c->intermediate_size;
  uint64_t H = (uint64_t)c->num_heads, KVH = (uint64_t)c->num_kv_heads, hd = (uint64_t)c->head_dim;
  uint64_t qd, kvd, embed, q, kv, mlp, d2, r1, r2, routers, layer = 0, total, t;
  if (mul_checked(x, H, hd, &qd, "num_attention_heads * head_dim") ||
      mul_checked(x, KVH, hd, &kvd, "num_key_value_heads * head_dim") ||
      mul_checked(x, V, D, &embed, "vocab_size * hidden_size") ||
      mul_checked(x, qd, D, &q, "num_attention_heads * head_dim * hidden_size") ||
      mul_checked(x, kvd, D, &kv, "num_key_value_heads * head_dim * hidden_size") ||
      mul_checked(x, F, D, &mlp, "intermediate_size * hidden_size") ||
      mul_checked(x, 2, D, &d2, "2 * hidden_size (MLP router)") ||
      mul_checked(x, d2, D, &r1, "2 * hidden_size * hidden_size (MLP router)") ||
      mul_checked(x, d2, (uint64_t)c->n_r, &r2, "num_recursions * 2 * hidden_size (MLP router)") ||
      add_checked(x, r1, r2, &r1, "the weights of one MLP router") ||
      mul_checked(x, r1, (uint64_t)c->n_r, &routers, "the routers' weights"))
    return -1;
  /* one layer: q and o, k and v, gate, up and down, two norms */
  uint64_t parts[] = {q, q, kv, kv, mlp, mlp, mlp, D, D};
  for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
    if (add_checked(x, layer, parts[i], &layer, "the weights of one layer")) return -1;
  if (mul_checked(x, layer, (uint64_t)c->num_layers, &total, "num_hidden_layers * the weights of one layer") ||
      add_checked(x, total, embed, &total, "the weights of the model") ||
      add_checked(x, total, embed, &total, "the weights of the model") ||
      add_checked(x, total, routers, &total, "the weights of the model") ||
      mul_checked(x, total, 4, &t, "the bytes of the model's weights in f32"))
    return -1;
  return 0;
}

/* The top-level sizes of the Llama part. */
static int load_sizes(ctx *x, const cJSON *root, mor_config *c) {
  const char *pos_int = "a positive integer";
  if (get_int(x, root, "vocab_size", "vocab_size", 1, 0, 1, MAX_SIZE, pos_int, &c->vocab_size) ||
      get_int(x, root, "hidden_size", "hidden_size", 1, 0, 1, MAX_SIZE, pos_int, &c->hidden_size) ||
      get_int(x, root, "intermediate_size", "intermediate_size", 1, 0, 1, MAX_SIZE, pos_int, &c->intermediate_size) ||
      get_int(x, root, "num_hidden_layers", "num_hidden_layers", 1, 0, 1, MAX_LAYERS, "an integer in [1, 65536]",
              &c->num_layers) ||
      get_int(x, root, "num_attention_heads", "num_attention_heads", 1, 0, 1, MAX_COUNT,
              "a positive integer below 2^31", &c->num_heads))
    return -1;
  /* HF writes null for "not given" here. */
  const cJSON *kvh = cJSON_GetObjectItemCaseSensitive(root, "num_key_value_heads");
  if (!kvh || cJSON_IsNull(kvh)) {
    c->num_kv_heads = c->num_heads;
  } else {
    if (!mor_json_is_int(kvh) || kvh->valuedouble < 1 || kvh->valuedouble > MAX_COUNT)
      return fail_expected(x, "num_key_value_heads", "a positive integer", kvh);
    c->num_kv_heads = (int64_t)kvh->valuedouble;
    if (c->num_heads % c->num_kv_heads != 0) {
      char what[128];
      snprintf(what, sizeof what, "a divisor of num_attention_heads (%lld)", (long long)c->num_heads);
      return fail_expected(x, "num_key_value_heads", what, kvh);
    }
  }
  const cJSON *hd = cJSON_GetObjectItemCaseSensitive(root, "head_dim");
  if (!hd || cJSON_IsNull(hd)) {
    if (c->hidden_size % c->num_heads != 0) {
      mor_errf(x->err,
               "%s: head_dim: not given, and hidden_size (%lld) is not divisible by num_attention_heads (%lld); "
               "give head_dim explicitly",
               x->file, (long long)c->hidden_size, (long long)c->num_heads);
      return -1;
    }
    c->head_dim = c->hidden_size / c->num_heads;
  } else {
    if (!mor_json_is_int(hd) || hd->valuedouble < 1 || hd->valuedouble > MAX_SIZE)
      return fail_expected(x, "head_dim", "a positive integer", hd);
    c->head_dim = (int64_t)hd->valuedouble;
  }
  if (c->head_dim % 2 != 0) {
    mor_errf(x->err, "%s: head_dim: expected an even number (RoPE rotates pairs of elements), got %lld", x->file,
             (long long)c->head_dim);
    return -1;
  }
  if (get_num(x, root, "rms_norm_eps", "rms_norm_eps", 1e-6, 1, &c->rms_norm_eps) ||
      get_num(x, root, "rope_theta", "rope_theta", 10000.0, 1, &c->rope_theta) ||
      get_int(x, root, "max_position_embeddings", "max_position_embeddings", 0, 2048, 1, MAX_SIZE, pos_int,
              &c->max_pos) ||
      get_bool(x, root, "tie_word_embeddings", "tie_word_embeddings", 0, &c->tie_word_embeddings))
    return -1;
  const cJSON *act = cJSON_GetObjectItemCaseSensitive(root, "hidden_act");
  if (act && !(cJSON_IsString(act) && strcmp(act->valuestring, "silu") == 0))
    return fail_expected(x, "hidden_act", "\"silu\" (the only activation of v1)", act);
  const cJSON *rs = cJSON_GetObjectItemCaseSensitive(root, "rope_scaling");
  if (rs && !cJSON_IsNull(rs)) return fail_expected(x, "rope_scaling", "null (RoPE scaling is not part of v1)", rs);
  static const char *const bias_keys[] = {"attention_bias", "mlp_bias"};
  for (int i = 0; i < 2; i++) {
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(root, bias_keys[i]);
    if (b && !cJSON_IsFalse(b)) return fail_expected(x, bias_keys[i], "false (biases are not part of v1)", b);
  }
  return 0;
}

/* The mor object. Missing keys take the defaults of model-format.md. */
static int load_mor(ctx *x, const cJSON *m, mor_config *c) {
  static const char *const sharing[] = {"cycle", "middle_cycle", "sequence", "middle_sequence"};
  static const char *const routing[] = {"none", "expert_choice", "token_choice"};
  static const char *const router[] = {"linear", "mlp"};
  static const char *const acts_all[] = {"sigmoid", "tanh", "softmax"};
  static const char *const gating[] = {"weighted", "none"};
  static const char *const infer[] = {"threshold", "top_k"};
  static const char *const kv[] = {"recursion_wise", "recursive_sharing"};
  int v;
  if (check_keys(x, m, "mor.", mor_keys, NULL)) return -1;
  int64_t nr;
  char what[160];
  int64_t hi = c->num_layers < MAX_RECURSIONS ? c->num_layers : MAX_RECURSIONS;
  snprintf(what, sizeof what, "an integer in [1, %lld] (at most 64 and at most num_hidden_layers)", (long long)hi);
  if (get_int(x, m, "num_recursions", "mor.num_recursions", 0, 1, 1, (double)hi, what, &nr)) return -1;
  c->n_r = (int)nr;
  v = MOR_SHARE_MIDDLE_CYCLE;
  if (get_enum(x, m, "sharing", "mor.sharing", sharing, 4, NULL, &v)) return -1;
  c->sharing = (mor_sharing)v;
  v = MOR_ROUTE_NONE;
  if (get_enum(x, m, "routing", "mor.routing", routing, 3, NULL, &v)) return -1;
  c->routing = (mor_routing)v;
  v = MOR_ROUTER_LINEAR;
  if (get_enum(x, m, "router", "mor.router", router, 2, NULL, &v)) return -1;
  c->router = (mor_router_kind)v;

  if (c->routing != MOR_ROUTE_NONE && c->sharing != MOR_SHARE_CYCLE && c->sharing != MOR_SHARE_MIDDLE_CYCLE) {
    mor_errf(x->err, "%s: mor.sharing: expected \"cycle\" or \"middle_cycle\" with routing \"%s\", got \"%s\"",
             x->file, routing[c->routing], sharing[c->sharing]);
    return -1;
  }

  /* router_activation: which ones are valid depends on the routing */
  if (c->routing == MOR_ROUTE_EXPERT) {
    static const char *const acts[] = {"sigmoid", "tanh"};
    v = 0;
    if (get_enum(x, m, "router_activation", "mor.router_activation", acts, 2, " with routing \"expert_choice\"", &v))
      return -1;
    c->router_act = v == 0 ? MOR_ACT_SIGMOID : MOR_ACT_TANH;
  } else if (c->routing == MOR_ROUTE_TOKEN) {
    static const char *const acts[] = {"softmax", "sigmoid"};
    v = 0;
    if (get_enum(x, m, "router_activation", "mor.router_activation", acts, 2, " with routing \"token_choice\"", &v))
      return -1;
    c->router_act = v == 0 ? MOR_ACT_SOFTMAX : MOR_ACT_SIGMOID;
  } else {
    v = 0;
    if (get_enum(x, m, "router_activation", "mor.router_activation", acts_all, 3, NULL, &v)) return -1;
    c->router_act = (mor_router_act)v;
  }

  double alpha_dflt = (c->routing == MOR_ROUTE_TOKEN && c->router_act == MOR_ACT_SOFTMAX) ? 1.0 : 0.1;
  if (get_num(x, m, "alpha", "mor.alpha", alpha_dflt, 0, &c->alpha) ||
      get_num(x, m, "temperature", "mor.temperature", 1.0, 1, &c->temperature))
    return -1;

  /* capacity: expert_choice only */
  c->capacity = mor_xmalloc(sizeof(double) * (size_t)c->n_r);
  for (int r = 0; r < c->n_r; r++)
    c->capacity[r] = c->routing == MOR_ROUTE_EXPERT ? (double)(c->n_r - r) / c->n_r : 1.0;
  const cJSON *cap = cJSON_GetObjectItemCaseSensitive(m, "capacity");
  if (cap && c->routing != MOR_ROUTE_EXPERT) {
    mor_warnf("%s: mor.capacity: only used with routing \"expert_choice\", ignored with routing \"%s\"", x->file,
              routing[c->routing]);
  } else if (cap) {
    if (!cJSON_IsArray(cap)) return fail_expected(x, "mor.capacity", "an array of numbers in (0, 1]", cap);
    int n = cJSON_GetArraySize(cap);
    if (n != c->n_r) {
      mor_errf(x->err, "%s: mor.capacity: expected %d entries (one per recursion, num_recursions is %d), got %d",
               x->file, c->n_r, c->n_r, n);
      return -1;
    }
    int r = 0;
    for (const cJSON *e = cap->child; e; e = e->next, r++) {
      char path[64];
      snprintf(path, sizeof path, "mor.capacity[%d]", r);
      if (!cJSON_IsNumber(e) || !(e->valuedouble > 0 && e->valuedouble <= 1))
        return fail_expected(x, path, "a number in (0, 1]", e);
      if (r > 0 && e->valuedouble > c->capacity[r - 1]) {
        char prev[40];
        snprintf(what, sizeof what, "a number <= mor.capacity[%d] (%s; capacities are non-increasing)", r - 1,
                 mor_json_num(c->capacity[r - 1], prev, sizeof prev));
        return fail_expected(x, path, what, e);
      }
      c->capacity[r] = e->valuedouble;
    }
  }

  v = MOR_GATE_WEIGHTED;
  if (get_enum(x, m, "gating", "mor.gating", gating, 2, NULL, &v)) return -1;
  c->gating = (mor_gating)v;
  v = MOR_INFER_THRESHOLD;
  if (get_enum(x, m, "inference_routing", "mor.inference_routing", infer, 2, NULL, &v)) return -1;
  c->infer_routing = (mor_infer_routing)v;
  if (c->infer_routing == MOR_INFER_TOPK && c->routing != MOR_ROUTE_EXPERT) {
    mor_errf(x->err, "%s: mor.inference_routing: \"top_k\" needs routing \"expert_choice\", got routing \"%s\"",
             x->file, routing[c->routing]);
    return -1;
  }
  double thr_dflt = (c->routing == MOR_ROUTE_EXPERT && c->router_act == MOR_ACT_TANH) ? 0.0 : 0.5;
  if (get_num(x, m, "threshold", "mor.threshold", thr_dflt, 0, &c->threshold)) return -1;
  v = MOR_KV_RECURSION_WISE;
  if (get_enum(x, m, "kv_cache", "mor.kv_cache", kv, 2, NULL, &v)) return -1;
  c->kv_mode = (mor_kv_mode)v;
  return 0;
}

/* Split the unrolled layers into prefix, block and suffix. */
static int derive_layers(ctx *x, mor_config *c) {
  static const char *const names[] = {"cycle", "middle_cycle", "sequence", "middle_sequence"};
  int middle = c->sharing == MOR_SHARE_MIDDLE_CYCLE || c->sharing == MOR_SHARE_MIDDLE_SEQUENCE;
  int64_t L = c->num_layers, inner = middle ? L - 2 : L;
  c->n_prefix = c->n_suffix = middle ? 1 : 0;
  if (inner <= 0) {
    mor_errf(x->err,
             "%s: num_hidden_layers: %lld layers with sharing \"%s\" leave an empty shared block "
             "(the first and last layers are unique; expected at least %d layers)",
             x->file, (long long)L, names[c->sharing], 2 + c->n_r);
    return -1;
  }
  if (inner % c->n_r != 0) {
    mor_errf(x->err, "%s: num_hidden_layers: expected %s divisible by mor.num_recursions (%d) with sharing \"%s\", got %lld",
             x->file, middle ? "num_hidden_layers - 2" : "a number", c->n_r, names[c->sharing], (long long)inner);
    return -1;
  }
  c->n_block = (int)(inner / c->n_r);
  return 0;
}

/* dir/rel, or rel alone when dir is "." (messages then show the name as given). */
static char *join(const char *dir, const char *rel) {
  return strcmp(dir, ".") ? mor_path_join(dir, rel) : mor_xstrdup(rel);
}

static int file_exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0;
}

/* weights (default: model.safetensors or its shard index) and tokenizer. */
static int load_files(ctx *x, const cJSON *root, mor_config *c) {
  const cJSON *w = cJSON_GetObjectItemCaseSensitive(root, "weights");
  if (w) {
    if (!cJSON_IsArray(w) || cJSON_GetArraySize(w) == 0)
      return fail_expected(x, "weights", "a non-empty array of file names", w);
    int n = cJSON_GetArraySize(w), i = 0;
    c->weight_files = mor_xcalloc((size_t)n, sizeof(char *));
    for (const cJSON *e = w->child; e; e = e->next, i++) {
      char path[64];
      snprintf(path, sizeof path, "weights[%d]", i);
      if (!cJSON_IsString(e) || !e->valuestring[0]) return fail_expected(x, path, "a file name", e);
      c->weight_files[c->n_weight_files++] = join(c->dir, e->valuestring);
    }
  } else {
    char *single = join(c->dir, "model.safetensors");
    char *index = join(c->dir, "model.safetensors.index.json");
    c->weight_files = mor_xcalloc(1, sizeof(char *));
    c->n_weight_files = 1;
    if (!file_exists(single) && file_exists(index)) {
      c->weight_files[0] = index;
      free(single);
    } else {
      c->weight_files[0] = single;
      free(index);
    }
  }
  const cJSON *t = cJSON_GetObjectItemCaseSensitive(root, "tokenizer");
  if (t && !cJSON_IsNull(t)) {
    if (!cJSON_IsString(t) || !t->valuestring[0]) return fail_expected(x, "tokenizer", "a file name", t);
    c->tokenizer = join(c->dir, t->valuestring);
  }
  return 0;
}

static int load(ctx *x, const cJSON *root, mor_config *c) {
  if (!cJSON_IsObject(root)) {
    char g[96];
    mor_errf(x->err, "%s: expected a JSON object at the top level, got %s", x->file, mor_json_show(root, g, sizeof g));
    return -1;
  }
  if (check_keys(x, root, "", top_keys, hf_keys)) return -1;
  const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
  const cJSON *mor = cJSON_GetObjectItemCaseSensitive(root, "mor");
  if (mt) {
    if (!cJSON_IsString(mt) || (strcmp(mt->valuestring, "mor") && strcmp(mt->valuestring, "llama")))
      return fail_expected(x, "model_type", "\"mor\" or \"llama\"", mt);
    c->is_llama = strcmp(mt->valuestring, "llama") == 0;
  } else {
    c->is_llama = mor == NULL; /* no model_type: a mor object makes it a MoR model */
  }
  if (c->is_llama && mor) {
    mor_errf(x->err, "%s: mor: a \"llama\" model has no mor object (set model_type to \"mor\" for a MoR model)", x->file);
    return -1;
  }
  if (mor && !cJSON_IsObject(mor)) return fail_expected(x, "mor", "an object", mor);
  if (load_sizes(x, root, c)) return -1;
  if (c->is_llama) {
    /* A Llama: cycle sharing with one recursion, no routing. */
    c->n_r = 1;
    c->sharing = MOR_SHARE_CYCLE;
    c->routing = MOR_ROUTE_NONE;
    c->router = MOR_ROUTER_LINEAR;
    c->router_act = MOR_ACT_SIGMOID;
    c->alpha = 0.1;
    c->temperature = 1.0;
    c->capacity = mor_xmalloc(sizeof(double));
    c->capacity[0] = 1.0;
    c->gating = MOR_GATE_WEIGHTED;
    c->infer_routing = MOR_INFER_THRESHOLD;
    c->threshold = 0.5;
    c->kv_mode = MOR_KV_RECURSION_WISE;
  } else {
    /* A mor model without a mor object takes every default. */
    cJSON *empty = mor ? NULL : cJSON_CreateObject();
    int rc = load_mor(x, mor ? mor : empty, c);
    cJSON_Delete(empty);
    if (rc) return -1;
  }
  if (derive_layers(x, c) || check_products(x, c) || load_files(x, root, c)) return -1;
  return 0;
}

mor_config *mor_config_load(const char *path, mor_err *err) {
  size_t len;
  char *text = mor_read_file(path, &len, err);
  if (!text) return NULL;
  mor_config *c = mor_config_parse(path, text, len, err);
  free(text);
  return c;
}

mor_config *mor_config_parse(const char *path, const char *text, size_t len, mor_err *err) {
  cJSON *root = mor_json_parse(path, text, len, err);
  if (!root) return NULL;
  mor_config *c = mor_xcalloc(1, sizeof *c);
  c->json_path = mor_xstrdup(path);
  c->dir = mor_dirname(path);
  ctx x = {path, err};
  int rc = load(&x, root, c);
  cJSON_Delete(root);
  if (rc) {
    mor_config_free(c);
    return NULL;
  }
  return c;
}

void mor_config_free(mor_config *c) {
  if (!c) return;
  free(c->json_path);
  free(c->dir);
  free(c->capacity);
  for (int i = 0; i < c->n_weight_files; i++) free(c->weight_files[i]);
  free(c->weight_files);
  free(c->tokenizer);
  free(c);
}

mor_layer_use mor_config_layer(const mor_config *c, int64_t l) {
  mor_layer_use u = {MOR_LAYER_BLOCK, -1, -1};
  if (l < 0 || l >= c->num_layers) return u; /* out of range: index -1 */
  int middle = c->sharing == MOR_SHARE_MIDDLE_CYCLE || c->sharing == MOR_SHARE_MIDDLE_SEQUENCE;
  if (middle && l == 0) return (mor_layer_use){MOR_LAYER_PREFIX, 0, 0};
  if (middle && l == c->num_layers - 1) return (mor_layer_use){MOR_LAYER_SUFFIX, 0, 0};
  int64_t k = middle ? l - 1 : l;
  if (c->sharing == MOR_SHARE_CYCLE || c->sharing == MOR_SHARE_MIDDLE_CYCLE) {
    u.index = (int)(k % c->n_block);
    u.depth = (int)(k / c->n_block);
  } else {
    u.index = (int)(k / c->n_r);
    u.depth = (int)(k % c->n_r);
  }
  return u;
}
