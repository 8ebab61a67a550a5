/* memlimit.h: the memory a `morc run` needs, estimated from the IR before
 * anything big is allocated, and checked against a cap (physical memory, or
 * --max-memory). */
#ifndef MORC_MEMLIMIT_H
#define MORC_MEMLIMIT_H
#include <stdint.h>
#include "ir/ir.h"

typedef struct morc_mem {
  uint64_t weights;     /* every weight decoded to f32 (as the reference interpreter holds them) */
  uint64_t kv;          /* K and V of every cache (not aliases) for the run's tokens */
  uint64_t activations; /* the memory plan's arenas when plan-memory ran, else 4x the largest value */
  uint64_t total;       /* the three, plus the logits the driver keeps */
} morc_mem;

/* Sizes saturate at UINT64_MAX instead of wrapping. */
morc_mem morc_mem_estimate(const mor_module *m, int64_t ntokens);
/* Physical memory (sysconf), or UINT64_MAX when unknown. */
uint64_t morc_phys_mem(void);
/* 0 when the estimate fits cap; else -1 and "MODEL: this run needs about
 * ... (weights ..., KV caches ..., activations ...), more than ...". */
int morc_mem_check(const char *model, const mor_module *m, int64_t ntokens, uint64_t cap, int cap_given,
                   mor_err *e);
/* "1.5 GiB", "12.0 KiB", "512 bytes" */
const char *morc_bytes_str(uint64_t b, char *buf, size_t n);
#endif
