/* mork.h: the kernel library of the LLVM backend. These C functions are
 * compiled to LLVM bitcode at build time, embedded in morc and linked into
 * every generated module, where they are inlined into the per-op instance
 * functions with constant shapes (the Glow "libjit" approach).
 *
 * Conventions: every kernel that the thread pool may split takes a work
 * range [b, e) of items as its last two parameters (what an item is, is
 * said at each kernel); pointers are restrict; no kernel allocates, locks or
 * fails. Numerics follow backend/ref/ref.h closely (double accumulation
 * where the reference uses it on cheap paths; f32 in the hot loops). */
#ifndef MORK_H
#define MORK_H
#include <stddef.h>
#include <stdint.h>
#include "runtime/morrt_abi.h"

#define MORK __attribute__((visibility("default")))

/* 8 floats; unaligned loads and stores through memcpy. */
typedef float mork_v8 __attribute__((vector_size(32)));

static inline mork_v8 mork_ld(const float *p) {
  mork_v8 v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}
static inline float mork_hsum(mork_v8 v) {
  return ((v[0] + v[4]) + (v[1] + v[5])) + ((v[2] + v[6]) + (v[3] + v[7]));
}

/* matmul tiling: an item is a block of MORK_MB rows by MORK_NT columns */
#define MORK_MB 64
#define MORK_NT 16

#endif
