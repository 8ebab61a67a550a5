/* threadpool.h: a persistent pthread pool for the compiled model's parallel
 * loops: morrt_pool_run splits [0, n) into one contiguous chunk per thread,
 * runs them (the calling thread takes chunk 0) and returns when all are done.
 * Idle workers spin for about 2 ms, then sleep on a condition variable. */
#ifndef MORRT_THREADPOOL_H
#define MORRT_THREADPOOL_H
#include <stdint.h>

typedef struct morrt_pool morrt_pool;

/* CPUs this process may run on (its affinity mask; taskset and cgroup
 * cpusets narrow it), at least 1. */
int morrt_cpu_count(void);

/* Pin each thread of the pool, the creating thread included, to a CPU of its
 * own. Done only when the pool has exactly one thread per CPU the process
 * may run on (then none can be placed on another's core: on Linux a worker
 * woken from sleep is often put on the waking thread's CPU); the
 * environment variable MORRT_PIN=0 or 1 overrides the flag. morrt_pool_free,
 * called from the thread that made the pool, gives it its CPU set back. */
#define MORRT_POOL_PIN 1

/* nthreads counts the caller too; <= 0 means morrt_cpu_count(). flags: 0 or
 * MORRT_POOL_PIN. Returns NULL when threads cannot be created. */
morrt_pool *morrt_pool_create(int nthreads, int flags);

/* 1 when the pool's threads were pinned */
int morrt_pool_pinned(const morrt_pool *pool);

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
