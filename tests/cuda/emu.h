/* emu.h: run morc's generated CUDA C on the CPU, for tests on machines
 * without a GPU. Compile a generated .cu as C++ with this header first:
 *
 *   g++ -std=c++17 -O1 -fPIC -shared -include tests/cuda/emu.h -x c++ k.cu -o k.so
 *
 * The result exports mor_emu_run() and one trampoline per kernel
 * (mor_emu_<kernel>, emitted under MORC_EMU by backend/cuda/emit.c); the
 * emulated driver (emu_driver.c) calls them. Every thread of a block is a
 * coroutine (ucontext) on its own stack; blocks run one after another
 * (or on several OS threads: parallel:N below).
 * MORC_EMU_SCHEDULE picks the order: "forward" (default: blocks and
 * threads in index order, each thread running to its next barrier),
 * "reverse", or "shuffle:SEED" (a new random thread order at every round
 * and a random block order). A kernel whose result depends on the order
 * has a race on a GPU too: a thread reading shared or global memory that
 * another thread writes between the same two barriers, code that relies on
 * warp lanes running in lockstep without __syncwarp, or blocks that assume
 * an order. tests/cuda/emu_schedules.sh requires identical bits.
 * __syncthreads waits for every live thread of the block, warp collectives
 * (__shfl*_sync, __ballot_sync, __syncwarp, mma) for the 32 lanes of the
 * warp; a thread that exits while others wait at a barrier it would have
 * to reach, or a mix of barriers that can never complete, aborts with a
 * message: those are bugs on a real GPU too. mma.sync m16n8k16 is
 * emulated from the fragment layout of the PTX ISA. This checks the
 * kernels' logic, indexing and the launch plan; it does not check the GPU
 * memory model, timing, or the real instruction's behaviour.
 *
 * Compiled with -DMOR_EMU_PARALLEL, the schedule "parallel:N" runs a
 * launch's blocks on N OS threads at once (each takes the next block that
 * is left; shared memory and the block's coroutines are thread-local), so
 * the protocols between blocks of one launch (the last block to take a
 * ticket commits a count or merges the partials of the others) run with
 * real concurrency. atomicAdd is a sequentially consistent read-modify-
 * write. Compiled with -fsanitize=thread as well (and libtsan preloaded
 * into the executable), ThreadSanitizer checks that whatever one block
 * reads of another block's writes in the same launch is ordered by those
 * atomics: a missing or misplaced ticket shows up as a data race. The
 * coroutines are announced to it as fibers that synchronize at each
 * switch (barriers and warp collectives). It does not check __threadfence:
 * ThreadSanitizer has no model of fences, and x86 orders stores anyway;
 * the tests/cuda/emu_parallel.sh test runs this. */
#ifndef MOR_EMU_H
#define MOR_EMU_H
#define MORC_EMU 1
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>

#include <algorithm>
#include <cmath>

#ifdef MOR_EMU_PARALLEL
#include <pthread.h>
#define EMU_TLS thread_local
#else
#define EMU_TLS
#endif
#if defined(__SANITIZE_THREAD__)
#define EMU_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define EMU_TSAN 1
#endif
#endif
#ifdef EMU_TSAN
extern "C" void *__tsan_get_current_fiber(void);
extern "C" void *__tsan_create_fiber(unsigned flags);
extern "C" void __tsan_switch_to_fiber(void *fiber, unsigned flags);
extern "C" void __tsan_func_exit(void);
#define EMU_FIBER(f) __tsan_switch_to_fiber((f), 0) /* 0: the switch synchronizes */
#else
#define EMU_FIBER(f)
#endif

struct dim3 {
  unsigned x, y, z;
};
struct float2 {
  float x, y;
};
struct float4 {
  float x, y, z, w;
};
struct uint4 {
  unsigned x, y, z, w;
};

#define MOR_DEV static inline
#define MOR_NOINLINE static
#define MOR_KERNEL extern "C"
#define MOR_BOUNDS(n)
#define MOR_LDG(p) emu_ld(p)
#define MOR_LD(p) emu_ld(p)
#define MOR_UNROLL
/* blocks run one launch at a time: nothing to overlap or wait for */
#define MOR_PDL()
#define MOR_PDL_TRIGGER()
#define MOR_PDL_WAIT()
/* a prefetch reads one byte (an address outside the process faults here
 * too) and is shown to mor_emu_on_prefetch where a test has set it */
static void (*mor_emu_on_prefetch)(const void *p);
static inline void emu_prefetch(const void *p) {
  (void)*(const volatile char *)p;
  if (mor_emu_on_prefetch) mor_emu_on_prefetch(p);
}
#define MOR_PREFETCH_L2(p) emu_prefetch(p)
#define __shared__ static EMU_TLS
#define __global__
#define __device__

enum { EMU_RUN = 0, EMU_BAR_BLOCK = 1, EMU_BAR_WARP = 2, EMU_DONE = 3 };

/* Context switches: a few instructions on x86-64 (glibc's swapcontext makes
 * a system call each time, which made the emulation 100x slower), ucontext
 * elsewhere. */
#if defined(__x86_64__)
#define EMU_FAST_SWITCH 1
struct emu_regs {
  void *rsp;
};
extern "C" void mor_emu_switch(emu_regs *save, emu_regs *load);
__asm__(".text\n.globl mor_emu_switch\n.hidden mor_emu_switch\n.type mor_emu_switch,@function\n"
        "mor_emu_switch:\n"
        "  pushq %rbp\n  pushq %rbx\n  pushq %r12\n  pushq %r13\n  pushq %r14\n  pushq %r15\n"
        "  subq $8, %rsp\n  stmxcsr (%rsp)\n  fnstcw 4(%rsp)\n"
        "  movq %rsp, (%rdi)\n  movq (%rsi), %rsp\n"
        "  ldmxcsr (%rsp)\n  fldcw 4(%rsp)\n  addq $8, %rsp\n"
        "  popq %r15\n  popq %r14\n  popq %r13\n  popq %r12\n  popq %rbx\n  popq %rbp\n  ret\n"
        ".size mor_emu_switch, .-mor_emu_switch\n");
#endif

struct emu_thread {
#ifdef EMU_FAST_SWITCH
  emu_regs ctx;
#else
  ucontext_t ctx;
#endif
  dim3 tid;
  int lane, warp, state;
  int xphase; /* which of the two exchange buffers the next collective uses */
  void *stack;
  void *fiber; /* ThreadSanitizer's fiber of this coroutine (EMU_TSAN) */
};

struct emu_ctx {
  dim3 grid, block, bid;
  int n;                   /* threads in the block */
  emu_thread *th;          /* [1024] */
  emu_thread *cur;
#ifdef EMU_FAST_SWITCH
  emu_regs sched;
#else
  ucontext_t sched;
#endif
  void (*tramp)(void **);
  void **args;
  uint64_t xbuf[2][32][32][8]; /* two phases, per warp, per lane: exchanged words */
  int cap;
  void *sched_fiber; /* ThreadSanitizer's fiber of the scheduler (EMU_TSAN) */
};
static EMU_TLS emu_ctx mor_emu_E;

/* the schedule (MORC_EMU_SCHEDULE): 0 forward, 1 reverse, 2 shuffle,
 * 3 parallel (emu_par OS threads) */
static int emu_sched_mode = -1, emu_par = 1;
static uint64_t emu_rng = 0x9e3779b97f4a7c15ull;
static void emu_sched_init(void) {
  if (emu_sched_mode >= 0) return;
  const char *s = getenv("MORC_EMU_SCHEDULE");
  emu_sched_mode = 0;
  if (!s || !*s || !strcmp(s, "forward")) return;
  if (!strcmp(s, "reverse")) {
    emu_sched_mode = 1;
    return;
  }
  if (!strncmp(s, "shuffle:", 8) && s[8]) {
    char *end;
    unsigned long long seed = strtoull(s + 8, &end, 10);
    if (!*end) {
      emu_sched_mode = 2;
      emu_rng ^= seed * 0xbf58476d1ce4e5b9ull;
      return;
    }
  }
  if (!strncmp(s, "parallel:", 9)) {
    char *end;
    long n = strtol(s + 9, &end, 10);
#ifdef MOR_EMU_PARALLEL
    if (!*end && n >= 1 && n <= 64) {
      emu_sched_mode = 3;
      emu_par = (int)n;
      return;
    }
#else
    if (!*end && n >= 1 && n <= 64) {
      fprintf(stderr, "CUDA emulation: MORC_EMU_SCHEDULE=%s needs the kernels compiled with -DMOR_EMU_PARALLEL\n", s);
      exit(2);
    }
#endif
  }
  fprintf(stderr,
          "CUDA emulation: MORC_EMU_SCHEDULE must be forward, reverse, shuffle:SEED or parallel:N (1-64), not '%s'\n",
          s);
  exit(2);
}
static unsigned emu_rand(unsigned n) { /* splitmix64, uniform enough for a permutation */
  uint64_t z = (emu_rng += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return (unsigned)((z ^ (z >> 31)) % n);
}
/* order[0..n): the sequence in which to visit n items under the schedule */
static void emu_order(unsigned *order, unsigned n) {
  for (unsigned i = 0; i < n; i++) order[i] = emu_sched_mode == 1 ? n - 1 - i : i;
  if (emu_sched_mode == 2)
    for (unsigned i = n; i > 1; i--) {
      unsigned j = emu_rand(i), t = order[i - 1];
      order[i - 1] = order[j];
      order[j] = t;
    }
}

#define threadIdx (mor_emu_E.cur->tid)
#define blockIdx (mor_emu_E.bid)
#define blockDim (mor_emu_E.block)
#define gridDim (mor_emu_E.grid)

static void emu_die(const char *what) {
  fprintf(stderr, "CUDA emulation: %s (block %u,%u,%u thread %u)\n", what, mor_emu_E.bid.x, mor_emu_E.bid.y,
          mor_emu_E.bid.z, mor_emu_E.cur ? mor_emu_E.cur->tid.x : 0u);
  abort();
}

/* MOR_LDG / MOR_LD: a GPU load of a T must be aligned to sizeof(T) (a
 * float4 or uint4 to 16 bytes); a misaligned one faults there ("misaligned
 * address") and would go unnoticed on x86. */
template <class T> static inline T emu_ld(const T *p) {
  if ((uintptr_t)p % sizeof(T)) {
    char m[96];
    snprintf(m, sizeof m, "a %zu-byte load from %p, which is not %zu-byte aligned", sizeof(T), (const void *)p,
             sizeof(T));
    emu_die(m);
  }
  return *p;
}

/* block until the scheduler releases this thread from barrier kind k */
static void emu_wait(int k) {
  emu_thread *t = mor_emu_E.cur;
  t->state = k;
  EMU_FIBER(mor_emu_E.sched_fiber);
#ifdef EMU_FAST_SWITCH
  mor_emu_switch(&t->ctx, &mor_emu_E.sched);
#else
  swapcontext(&t->ctx, &mor_emu_E.sched);
#endif
}

static inline void __syncthreads(void) { emu_wait(EMU_BAR_BLOCK); }
static inline void __syncwarp(unsigned mask = 0xffffffffu) {
  (void)mask;
  emu_wait(EMU_BAR_WARP);
}
static inline void __threadfence(void) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

/* deposit n words, wait for the warp, copy all 32 lanes' words out. The
 * buffers alternate: a lane can be at most one collective ahead of another
 * (the next one waits for all), so the buffer it writes next is not the
 * one a slower lane still reads. */
static void emu_exchange(const uint64_t *mine, int n, uint64_t (*all)[8]) {
  emu_thread *t = mor_emu_E.cur;
  int ph = t->xphase;
  t->xphase ^= 1;
  memcpy(mor_emu_E.xbuf[ph][t->warp][t->lane], mine, sizeof(uint64_t) * (size_t)n);
  emu_wait(EMU_BAR_WARP);
  memcpy(all, mor_emu_E.xbuf[ph][t->warp], sizeof(uint64_t) * 8 * 32);
}

template <class T> static T emu_shfl_idx(T v, int src) {
  uint64_t w = 0, all[32][8];
  memcpy(&w, &v, sizeof v);
  emu_exchange(&w, 1, all);
  T r;
  memcpy(&r, &all[src & 31][0], sizeof r);
  return r;
}
template <class T> static inline T __shfl_xor_sync(unsigned mask, T v, int m) {
  (void)mask;
  return emu_shfl_idx(v, mor_emu_E.cur->lane ^ m);
}
template <class T> static inline T __shfl_sync(unsigned mask, T v, int src) {
  (void)mask;
  return emu_shfl_idx(v, src);
}
static inline unsigned __ballot_sync(unsigned mask, int pred) {
  (void)mask;
  uint64_t w = pred != 0, all[32][8];
  emu_exchange(&w, 1, all);
  unsigned b = 0;
  for (int i = 0; i < 32; i++)
    if (all[i][0]) b |= 1u << i;
  return b;
}
static inline int __popc(unsigned v) { return __builtin_popcount(v); }
static inline int atomicAdd(int *p, int v) { return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); }
static inline float __uint_as_float(unsigned u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}
static inline float __int_as_float(int u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}
static inline unsigned __float_as_uint(float f) {
  unsigned u;
  memcpy(&u, &f, 4);
  return u;
}

static inline float emu_bf(unsigned h) { return __uint_as_float((h & 0xffffu) << 16); }

/* mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 d += a b, fragments as the PTX ISA lays them out */
static inline void mor_mma_bf16(float *d, const unsigned *a, const unsigned *b) {
  uint64_t mine[8] = {a[0], a[1], a[2], a[3], b[0], b[1], 0, 0}, all[32][8];
  emu_exchange(mine, 6, all);
  float A[16][16], B[8][16]; /* A[row][k], B[col][k] */
  for (int l = 0; l < 32; l++) {
    int g = l >> 2, t = l & 3;
    for (int r = 0; r < 4; r++) {
      int row = g + 8 * (r & 1), k = 2 * t + 8 * (r >> 1);
      A[row][k] = emu_bf((unsigned)all[l][r]);
      A[row][k + 1] = emu_bf((unsigned)all[l][r] >> 16);
    }
    for (int r = 0; r < 2; r++) {
      int k = 2 * t + 8 * r;
      B[g][k] = emu_bf((unsigned)all[l][4 + r]);
      B[g][k + 1] = emu_bf((unsigned)all[l][4 + r] >> 16);
    }
  }
  int lane = mor_emu_E.cur->lane, g = lane >> 2, t = lane & 3;
  for (int r = 0; r < 4; r++) {
    int row = g + 8 * (r >> 1), col = 2 * t + (r & 1);
    float s = d[r];
    for (int k = 0; k < 16; k++) s += A[row][k] * B[col][k];
    d[r] = s;
  }
}

#ifdef EMU_FAST_SWITCH
static void emu_entry(void) {
  emu_thread *t = mor_emu_E.cur;
  mor_emu_E.tramp(mor_emu_E.args);
  t->state = EMU_DONE;
#ifdef EMU_TSAN
  __tsan_func_exit(); /* emu_entry never returns: leave its frame so that the fiber can be reused */
#endif
  EMU_FIBER(mor_emu_E.sched_fiber);
  mor_emu_switch(&t->ctx, &mor_emu_E.sched); /* never resumed */
  abort();
}
#else
static void emu_entry(int i) {
  emu_thread *t = &mor_emu_E.th[i];
  mor_emu_E.tramp(mor_emu_E.args);
  t->state = EMU_DONE;
  EMU_FIBER(mor_emu_E.sched_fiber);
  /* returning resumes uc_link: the scheduler */
}
#endif

static void emu_run_block(void) {
  emu_ctx *E = &mor_emu_E;
  const size_t stack = 256 * 1024;
#ifdef EMU_TSAN
  E->sched_fiber = __tsan_get_current_fiber();
#endif
  for (int i = 0; i < E->n; i++) {
    emu_thread *t = &E->th[i];
#ifdef EMU_TSAN
    if (!t->fiber) t->fiber = __tsan_create_fiber(0); /* reused: emu_entry leaves its frame */
#endif
    if (!t->stack) {
      t->stack = mmap(NULL, stack, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (t->stack == MAP_FAILED) emu_die("out of memory for thread stacks");
    }
#ifdef EMU_FAST_SWITCH
    {
      /* a frame that mor_emu_switch pops: fp control words, six callee-saved
       * registers, then "returns" into emu_entry with rsp = 8 mod 16 */
      uint64_t *top = (uint64_t *)((char *)t->stack + stack - 64);
      top = (uint64_t *)((uintptr_t)top & ~(uintptr_t)15);
      top -= 1; /* emu_entry's "return address" slot: rsp = 8 mod 16 at its entry */
      *--top = (uint64_t)(uintptr_t)emu_entry;
      for (int r = 0; r < 6; r++) *--top = 0;
      *--top = 0x037f00001f80ull; /* mxcsr 0x1f80, x87 control word 0x37f */
      t->ctx.rsp = top;
    }
#else
    getcontext(&t->ctx);
    t->ctx.uc_stack.ss_sp = t->stack;
    t->ctx.uc_stack.ss_size = stack;
    t->ctx.uc_link = &E->sched;
    makecontext(&t->ctx, (void (*)(void))emu_entry, 1, i);
#endif
    t->tid.x = (unsigned)(i % E->block.x);
    t->tid.y = (unsigned)(i / E->block.x % E->block.y);
    t->tid.z = (unsigned)(i / (E->block.x * E->block.y));
    t->lane = i & 31;
    t->warp = i >> 5;
    t->xphase = 0;
    t->state = EMU_RUN;
  }
  unsigned order[1024];
  for (;;) {
    int ran = 0;
    emu_order(order, (unsigned)E->n);
    for (int k = 0; k < E->n; k++) {
      emu_thread *t = &E->th[order[k]];
      if (t->state != EMU_RUN) continue;
      E->cur = t;
      EMU_FIBER(t->fiber);
#ifdef EMU_FAST_SWITCH
      mor_emu_switch(&E->sched, &t->ctx);
#else
      swapcontext(&E->sched, &t->ctx);
#endif
      E->cur = NULL;
      ran = 1;
    }
    if (ran) continue;
    int done = 0, atblock = 0;
    for (int i = 0; i < E->n; i++) done += E->th[i].state == EMU_DONE, atblock += E->th[i].state == EMU_BAR_BLOCK;
    if (done == E->n) return;
    /* release warps whose live lanes all wait at a warp collective */
    int released = 0;
    for (int w = 0; w * 32 < E->n; w++) {
      int live = 0, at = 0;
      for (int i = w * 32; i < E->n && i < w * 32 + 32; i++) {
        live += E->th[i].state != EMU_DONE;
        at += E->th[i].state == EMU_BAR_WARP;
      }
      if (at && at == live) {
        if (live != 32 && live != E->n - w * 32) emu_die("a warp collective with lanes that have exited");
        for (int i = w * 32; i < E->n && i < w * 32 + 32; i++)
          if (E->th[i].state == EMU_BAR_WARP) E->th[i].state = EMU_RUN;
        released = 1;
      }
    }
    if (released) continue;
    if (atblock == E->n - done) {
      if (done) emu_die("__syncthreads with threads of the block that have exited");
      for (int i = 0; i < E->n; i++) E->th[i].state = EMU_RUN;
      continue;
    }
    emu_die("deadlock: threads wait at different barriers");
  }
}

static void emu_setup(void (*tramp)(void **), dim3 grid, dim3 block, void **args) {
  emu_ctx *E = &mor_emu_E;
  if (!E->th) E->th = (emu_thread *)calloc(1024, sizeof(emu_thread));
  if (!E->th) emu_die("out of memory for threads");
  E->grid = grid;
  E->block = block;
  E->n = (int)(block.x * block.y * block.z);
  E->tramp = tramp;
  E->args = args;
}

#ifdef MOR_EMU_PARALLEL
/* parallel:N: N - 1 workers and the launching thread take blocks from a
 * shared counter until none is left; the launch returns when all are done. */
static struct {
  pthread_mutex_t mu;
  pthread_cond_t go, idle;
  int workers, busy;
  unsigned gen;
  void (*tramp)(void **);
  void **args;
  dim3 grid, block;
  uint64_t nb, next;
} emu_pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0, 0, 0, {}, {},
              0, 0};

static void emu_take_blocks(void) {
  emu_setup(emu_pool.tramp, emu_pool.grid, emu_pool.block, emu_pool.args);
  emu_ctx *E = &mor_emu_E;
  dim3 g = E->grid;
  for (;;) {
    uint64_t b = __atomic_fetch_add(&emu_pool.next, 1, __ATOMIC_RELAXED);
    if (b >= emu_pool.nb) return;
    E->bid = dim3{(unsigned)(b % g.x), (unsigned)(b / g.x % g.y), (unsigned)(b / ((uint64_t)g.x * g.y))};
    emu_run_block();
  }
}

static void *emu_worker(void *) {
  unsigned seen = 0;
  pthread_mutex_lock(&emu_pool.mu);
  for (;;) {
    while (emu_pool.gen == seen) pthread_cond_wait(&emu_pool.go, &emu_pool.mu);
    seen = emu_pool.gen;
    pthread_mutex_unlock(&emu_pool.mu);
    emu_take_blocks();
    pthread_mutex_lock(&emu_pool.mu);
    if (--emu_pool.busy == 0) pthread_cond_signal(&emu_pool.idle);
  }
  return NULL;
}

static int emu_run_parallel(void (*tramp)(void **), dim3 grid, dim3 block, void **args) {
  pthread_mutex_lock(&emu_pool.mu);
  while (emu_pool.workers < emu_par - 1) {
    pthread_t t;
    if (pthread_create(&t, NULL, emu_worker, NULL)) emu_die("cannot start a worker thread");
    pthread_detach(t);
    emu_pool.workers++;
  }
  emu_pool.tramp = tramp;
  emu_pool.grid = grid;
  emu_pool.block = block;
  emu_pool.args = args;
  emu_pool.nb = (uint64_t)grid.x * grid.y * grid.z;
  emu_pool.next = 0;
  emu_pool.busy = emu_pool.workers;
  emu_pool.gen++;
  pthread_cond_broadcast(&emu_pool.go);
  pthread_mutex_unlock(&emu_pool.mu);
  emu_take_blocks();
  pthread_mutex_lock(&emu_pool.mu);
  while (emu_pool.busy) pthread_cond_wait(&emu_pool.idle, &emu_pool.mu);
  pthread_mutex_unlock(&emu_pool.mu);
  return 0;
}
#endif

/* Run one kernel launch: every block in the schedule's order, the threads as coroutines. */
extern "C" int mor_emu_run(void (*tramp)(void **), unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
                           unsigned bz, void **args) {
  unsigned n = bx * by * bz;
  if (n < 1 || n > 1024 || n % 32) return -1;
  emu_sched_init();
#ifdef MOR_EMU_PARALLEL
  if (emu_sched_mode == 3) return emu_run_parallel(tramp, dim3{gx, gy, gz}, dim3{bx, by, bz}, args);
#endif
  emu_setup(tramp, dim3{gx, gy, gz}, dim3{bx, by, bz}, args);
  emu_ctx *E = &mor_emu_E;
  uint64_t nb = (uint64_t)gx * gy * gz;
  if (emu_sched_mode == 0 || nb > (1u << 24)) {
    for (unsigned z = 0; z < gz; z++)
      for (unsigned y = 0; y < gy; y++)
        for (unsigned x = 0; x < gx; x++) {
          E->bid = dim3{x, y, z};
          emu_run_block();
        }
    return 0;
  }
  unsigned *order = (unsigned *)malloc(sizeof(unsigned) * nb);
  if (!order) return -1;
  emu_order(order, (unsigned)nb);
  for (uint64_t k = 0; k < nb; k++) {
    unsigned b = order[k];
    E->bid = dim3{b % gx, b / gx % gy, b / (gx * gy)};
    emu_run_block();
  }
  free(order);
  return 0;
}

#endif
