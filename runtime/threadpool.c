/* threadpool.c: workers wait for a generation counter to move (spinning a
 * little, then on a condvar), run their chunk, and count down; the last one
 * to finish wakes the caller if it went to sleep. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* sched_getaffinity, CPU_* */
#endif
#include "threadpool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* How long an idle thread polls before it sleeps: SPIN_NS of pause
 * instructions, with a sched_yield every YIELD_EVERY rounds (which hands the
 * core to a runnable thread when there are more threads than cores).
 * Long enough that workers do not sleep between the parallel calls of a
 * forward pass: a worker woken from sleep is often placed on the waking
 * caller's CPU, and one that is woken again every call stays there, so the
 * whole pass runs on one core (docs/performance.md, "The machine"). */
#define SPIN_NS 2000000
#define YIELD_EVERY 64

typedef void (*pool_fn)(void *ctx, int64_t begin, int64_t end, int tid);

typedef struct worker {
  struct morrt_pool *pool;
  int tid;
  pthread_t thread;
} worker;

struct morrt_pool {
  int n; /* threads including the caller */
  int pin;         /* pin thread i to the i-th CPU of cpus */
  cpu_set_t cpus;  /* the CPUs the process could run on when the pool was made */
  pthread_t creator; /* the thread that made the pool: pinned too, its CPU set restored at free */
  worker *workers; /* n - 1 of them */
  pthread_mutex_t mu;
  pthread_cond_t wake; /* workers sleep here waiting for gen to move */
  pthread_cond_t done; /* the caller sleeps here waiting for pending == 0 */
  atomic_uint_fast64_t gen;
  atomic_int pending;   /* workers still running the current job */
  atomic_int sleepers;  /* workers in (or about to enter) cond_wait(wake) */
  atomic_int caller_sleeping;
  atomic_int stop;
  /* the current job, written before gen is bumped */
  pool_fn fn;
  void *ctx;
  int64_t count;
};

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __asm__ __volatile__("pause");
#elif defined(__aarch64__) || defined(__arm__)
  __asm__ __volatile__("yield");
#endif
}

static int64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* one round of polling; 0 once SPIN_NS have passed since the first
 * sched_yield (the clock is read only every YIELD_EVERY rounds) */
static int spin_wait(int i, int64_t *t0) {
  cpu_relax();
  if (i % YIELD_EVERY != YIELD_EVERY - 1)
    return 1;
  sched_yield();
  int64_t t = now_ns();
  if (i == YIELD_EVERY - 1)
    *t0 = t;
  return t - *t0 < SPIN_NS;
}

static void run_chunk(struct morrt_pool *p, int tid) {
  int64_t n = p->count, T = p->n;
  /* n*tid/T without overflow for any n < 2^63 */
  int64_t b = n / T * tid + n % T * tid / T, e = n / T * (tid + 1) + n % T * (tid + 1) / T;
  if (b < e)
    p->fn(p->ctx, b, e, tid);
}

int morrt_cpu_count(void) {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
    return CPU_COUNT(&set);
  long c = sysconf(_SC_NPROCESSORS_ONLN);
  return c > 0 ? (int)(c > 1024 ? 1024 : c) : 1;
}

/* Pin the calling thread to the k-th CPU of `allowed`. */
static void pin_to(const cpu_set_t *allowed, int k) {
  for (int c = 0, seen = 0; c < CPU_SETSIZE; c++)
    if (CPU_ISSET(c, allowed) && seen++ == k) {
      cpu_set_t one;
      CPU_ZERO(&one);
      CPU_SET(c, &one);
      sched_setaffinity(0, sizeof one, &one); /* best effort: a refusal leaves the thread unpinned */
      return;
    }
}

static void *worker_main(void *arg) {
  worker *w = arg;
  struct morrt_pool *p = w->pool;
  if (p->pin)
    pin_to(&p->cpus, w->tid);
  uint_fast64_t seen = 0;
  for (;;) {
    uint_fast64_t g = atomic_load_explicit(&p->gen, memory_order_acquire);
    int64_t t0 = 0;
    for (int i = 0; g == seen && spin_wait(i, &t0); i++)
      g = atomic_load_explicit(&p->gen, memory_order_acquire);
    if (g == seen) {
      pthread_mutex_lock(&p->mu);
      atomic_fetch_add(&p->sleepers, 1); /* seq_cst: pairs with the caller's gen bump */
      while ((g = atomic_load(&p->gen)) == seen)
        pthread_cond_wait(&p->wake, &p->mu);
      atomic_fetch_sub(&p->sleepers, 1);
      pthread_mutex_unlock(&p->mu);
    }
    seen = g;
    if (atomic_load(&p->stop))
      return NULL;
    run_chunk(p, w->tid);
    /* seq_cst, like the caller's store to caller_sleeping, so one of us sees the other */
    if (atomic_fetch_sub(&p->pending, 1) == 1 && atomic_load(&p->caller_sleeping)) {
      pthread_mutex_lock(&p->mu);
      pthread_cond_signal(&p->done);
      pthread_mutex_unlock(&p->mu);
    }
  }
}

/* Publish the job: bump gen, and wake sleepers if any. */
static void publish(struct morrt_pool *p) {
  atomic_fetch_add(&p->gen, 1); /* seq_cst (release for the job fields) */
  if (atomic_load(&p->sleepers) > 0) {
    pthread_mutex_lock(&p->mu);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
  }
}

static int pin_wanted(int flags) {
  const char *e = getenv("MORRT_PIN");
  if (e && (!strcmp(e, "0") || !strcmp(e, "1")))
    return e[0] == '1';
  return (flags & MORRT_POOL_PIN) != 0;
}

morrt_pool *morrt_pool_create(int nthreads, int flags) {
  if (nthreads <= 0)
    nthreads = morrt_cpu_count();
  struct morrt_pool *p = calloc(1, sizeof *p);
  if (!p)
    return NULL;
  p->n = nthreads;
  /* pinning only when the pool has one thread per CPU it may use: then no
   * two of its threads can end up sharing a core */
  if (nthreads > 1 && pin_wanted(flags) && sched_getaffinity(0, sizeof p->cpus, &p->cpus) == 0 &&
      CPU_COUNT(&p->cpus) == nthreads)
    p->pin = 1;
  atomic_init(&p->gen, 0);
  atomic_init(&p->pending, 0);
  atomic_init(&p->sleepers, 0);
  atomic_init(&p->caller_sleeping, 0);
  atomic_init(&p->stop, 0);
  if (pthread_mutex_init(&p->mu, NULL) != 0) {
    free(p);
    return NULL;
  }
  if (pthread_cond_init(&p->wake, NULL) != 0 || pthread_cond_init(&p->done, NULL) != 0) {
    pthread_mutex_destroy(&p->mu);
    free(p);
    return NULL;
  }
  p->workers = calloc((size_t)nthreads, sizeof *p->workers);
  if (!p->workers) {
    morrt_pool_free(p);
    return NULL;
  }
  for (int i = 1; i < nthreads; i++) {
    worker *w = &p->workers[i - 1];
    w->pool = p;
    w->tid = i;
    if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
      p->n = i; /* free() joins the ones that did start */
      morrt_pool_free(p);
      return NULL;
    }
  }
  if (p->pin) { /* after the workers were made: they start from the process's CPU set */
    p->creator = pthread_self();
    pin_to(&p->cpus, 0);
  }
  return p;
}

int morrt_pool_pinned(const morrt_pool *p) { return p ? p->pin : 0; }

void morrt_pool_run(morrt_pool *p, pool_fn fn, void *ctx, int64_t n) {
  if (n <= 0)
    return;
  if (!p || p->n == 1) {
    fn(ctx, 0, n, 0);
    return;
  }
  p->fn = fn;
  p->ctx = ctx;
  p->count = n;
  atomic_store_explicit(&p->pending, p->n - 1, memory_order_relaxed);
  publish(p);
  run_chunk(p, 0);
  int64_t t0 = 0;
  for (int i = 0; atomic_load_explicit(&p->pending, memory_order_acquire) != 0 && spin_wait(i, &t0); i++) {
  }
  if (atomic_load_explicit(&p->pending, memory_order_acquire) != 0) {
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->caller_sleeping, 1);
    while (atomic_load(&p->pending) != 0)
      pthread_cond_wait(&p->done, &p->mu);
    atomic_store(&p->caller_sleeping, 0);
    pthread_mutex_unlock(&p->mu);
  }
}

int morrt_pool_size(const morrt_pool *p) { return p ? p->n : 0; }

void morrt_pool_free(morrt_pool *p) {
  if (!p)
    return;
  if (p->workers) {
    atomic_store(&p->stop, 1);
    publish(p);
    for (int i = 1; i < p->n; i++)
      pthread_join(p->workers[i - 1].thread, NULL);
    free(p->workers);
  }
  if (p->pin && pthread_equal(p->creator, pthread_self()))
    sched_setaffinity(0, sizeof p->cpus, &p->cpus);
  pthread_cond_destroy(&p->wake);
  pthread_cond_destroy(&p->done);
  pthread_mutex_destroy(&p->mu);
  free(p);
}
