/* threadpool.h: a persistent pthread pool for the compiled model's parallel
 * loops: morrt_pool_run splits [0, n) into one contiguous chunk per thread,
 * runs them (the calling thread takes chunk 0) and returns when all are done.
 * Idle workers spin briefly, then sleep on a condition variable. */
#ifndef MORRT_THREADPOOL_H
#define MORRT_THREADPOOL_H
#include <stdint.h>

typedef struct morrt_pool morrt_pool;

/* nthreads counts the caller too; <= 0 means the number of online CPUs.
 * Returns NULL when threads cannot be created. */
morrt_pool *morrt_pool_create(int nthreads);

/* Call fn(ctx, begin, end, tid) for the chunks of [0, n), tid in
 * [0, nthreads), chunk tid = [n*tid/T, n*(tid+1)/T); empty chunks are not
 * called. Returns after every call has returned. One run at a time per pool:
 * do not call morrt_pool_run on the same pool from two threads at once or
 * from inside fn. n <= 0 does nothing; a NULL pool runs fn(ctx, 0, n, 0)
 * on the calling thread. */
void morrt_pool_run(morrt_pool *pool, void (*fn)(void *ctx, int64_t begin, int64_t end, int tid), void *ctx,
                    int64_t n);

int morrt_pool_size(const morrt_pool *pool);

/* Stop and join the workers. NULL is fine. */
void morrt_pool_free(morrt_pool *pool);

#endif
