/* morrt.h: libmorrt, the runtime that models compiled by `morc build` link
 * against. It binds a compiled model to its weights (mmap'ed safetensors,
 * checked against the names, shapes and dtypes the model was compiled for),
 * owns the scratch arena and the thread pool, gives each sequence its own
 * KV caches, and runs forward calls. It depends on libc, libm, pthreads and
 * libdl only.
 *
 * A compiled model is a `morrt_desc` (runtime/morrt_abi.h) exported by the
 * generated object: `<name>_model`, declared by the header that
 * `morc build --emit=bundle -o <name>` writes. Typical use:
 *
 *   #include "runtime/morrt.h"
 *   #include "runtime/sampler.h"
 *   #include "mymodel.h"                    // extern const morrt_desc mymodel_model;
 *
 *   char err[512];
 *   morrt_options opt = {.threads = 0, .weights = "mymodel.safetensors"};
 *   morrt_model *m = morrt_model_open(&mymodel_model, &opt, err, sizeof err);
 *   if (!m) { fprintf(stderr, "%s\n", err); return 1; }
 *   morrt_seq *s = morrt_seq_new(m);
 *   int64_t V = morrt_model_desc(m)->vocab_size;
 *   float *logits = malloc(sizeof(float) * T * V);
 *   if (morrt_forward(m, s, prompt, T, logits, NULL, err, sizeof err)) ...   // prefill
 *   int32_t next = morrt_argmax(logits + (T - 1) * V, (int32_t)V);
 *   morrt_forward(m, s, &next, 1, logits, NULL, err, sizeof err);            // decode
 *   morrt_seq_free(s);
 *   morrt_model_free(m);
 *
 * Threads: one forward call runs at a time per model (calls on the same
 * model from several threads are serialized); its kernels are split among
 * the model's pool. Sequences are independent: any number may be open. */
#ifndef MORRT_H
#define MORRT_H
#include <stddef.h>
#include <stdint.h>
#include "runtime/morrt_abi.h"
#include "runtime/tokenizer.h"

typedef struct morrt_model morrt_model;
typedef struct morrt_seq morrt_seq;

typedef struct morrt_options {
  int threads;         /* threads of the pool, the caller included; 0: one per CPU this process
                          may run on (its affinity mask) */
  const char *weights; /* a .safetensors file or model.safetensors.index.json; NULL: the
                          weights embedded in the model, else desc->weights_file beside
                          the running executable */
  int pin;             /* 1: pin the pool's threads, the thread that opens the model included, one
                          per CPU, when the pool has one thread per CPU the process may run on
                          (MORRT_PIN=0 or 1 in the environment overrides); 0: leave them to the
                          scheduler */
} morrt_options;

/* Open the weights and bind them. Errors (returned NULL, message in err):
 * weights not found, unreadable or malformed, a tensor missing or of
 * another shape or dtype than the model was compiled for, out of memory. */
morrt_model *morrt_model_open(const morrt_desc *desc, const morrt_options *opt, char *err, size_t errlen);

/* Bind tensors that are already in memory (morc's JIT uses this). Each
 * entry's data must outlive the model; dtype codes as morrt_abi.h. */
typedef struct morrt_tensor_ref {
  const char *name;
  int64_t dtype, rank, shape[4];
  const void *data;
} morrt_tensor_ref;
morrt_model *morrt_model_bind(const morrt_desc *desc, const morrt_tensor_ref *tensors, int64_t n,
                              const morrt_options *opt, char *err, size_t errlen);

void morrt_model_free(morrt_model *m);
const morrt_desc *morrt_model_desc(const morrt_model *m);
const char *morrt_model_weights_path(const morrt_model *m); /* where the weights came from */
int morrt_model_threads(const morrt_model *m);
int morrt_model_pinned(const morrt_model *m); /* 1: the pool's threads are pinned (morrt_options.pin) */

/* The tokenizer embedded in the model (morc build embeds the model's
 * tokenizer.json), or NULL: with err "" when the model has none, else the
 * load error. Free it with morrt_tokenizer_free. */
morrt_tokenizer *morrt_model_tokenizer(const morrt_model *m, char *err, size_t errlen);

/* A sequence: its own KV caches (mapped lazily: only used pages cost memory). */
morrt_seq *morrt_seq_new(morrt_model *m);
void morrt_seq_free(morrt_seq *s);
void morrt_seq_reset(morrt_seq *s);               /* forget every position */
int64_t morrt_seq_len(const morrt_seq *s);        /* positions consumed */
int64_t morrt_seq_kv_bytes(const morrt_seq *s);   /* KV bytes in use (K, V and positions) */
/* Tokens run so far by depth reached: counts[d] for d = 0..num_recursions. */
const int64_t *morrt_seq_depth_counts(const morrt_seq *s);

/* One forward call: T tokens at positions len .. len+T-1 of the sequence.
 * Writes logits [T, vocab] and depths [T] (the recursions each token ran);
 * either may be NULL. Calls longer than desc->max_tokens are split (models
 * with top_k routing, which score whole sequences, must fit in one). Errors
 * (-1, message in err, the sequence unchanged): an id outside [0, vocab),
 * positions past max_position_embeddings, a top_k-routed model called on a
 * sequence that already has positions, T < 1. */
int morrt_forward(morrt_model *m, morrt_seq *s, const int32_t *tokens, int64_t T, float *logits, int32_t *depths,
                  char *err, size_t errlen);

/* Several sequences, one call each, in order. Returns 0, or -1 with
 * "sequence k: ..." in err (sequences before k have advanced). Continuous
 * depth-wise batching across sequences will come behind this entry point. */
int morrt_forward_batch(morrt_model *m, int n, morrt_seq *const *seqs, const int32_t *const *tokens, const int64_t *T,
                        float *const *logits, int32_t *const *depths, char *err, size_t errlen);

#endif
