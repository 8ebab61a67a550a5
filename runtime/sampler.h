/* sampler.h: picks the next token from a row of logits: greedy, temperature,
 * top-k and top-p (nucleus), driven by a seeded 64-bit PRNG (SplitMix64)
 * whose sequence is the same on every platform. */
#ifndef MORRT_SAMPLER_H
#define MORRT_SAMPLER_H
#include <stdint.h>

typedef struct morrt_sampler_cfg {
  float temperature; /* <= 0 (or NaN): greedy, the argmax; else logits / temperature */
  int32_t top_k;     /* keep only the k most likely tokens; <= 0 or >= V: no limit */
  float top_p;       /* then keep the fewest most likely tokens whose probability
                        reaches top_p; <= 0 or >= 1: no limit */
} morrt_sampler_cfg;

/* The next 64-bit value of the generator; *state is any seed and advances. */
uint64_t morrt_rng_next(uint64_t *state);
/* A uniform double in [0, 1) (53 random bits); advances *state once. */
double morrt_rng_uniform(uint64_t *state);

/* Index of the largest logit (the first on ties; NaN counts as -inf; 0 if
 * all are -inf or NaN). V must be >= 1. */
int32_t morrt_argmax(const float *logits, int32_t V);

/* Sample one token id in [0, V) from logits[0..V). Order of filters:
 * temperature, top-k, top-p (as in Hugging Face generate). Greedy draws no
 * random number; any other setting draws exactly one, so a given seed gives
 * the same tokens everywhere (up to libm's exp() at exact ties of the
 * cumulative sum). Ties among equal logits are broken by lower index. cfg
 * NULL means greedy. Returns -1 if V < 1, or when out of memory. */
int32_t morrt_sample(const float *logits, int32_t V, const morrt_sampler_cfg *cfg, uint64_t *rng_state);

#endif
