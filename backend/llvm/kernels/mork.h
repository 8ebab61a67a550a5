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

/* ---- weight formats (runtime/morrt_abi.h MORRT_FMT_*) ----------------------------
 * A matmul weight W[N, K] is stored row-major in one of four formats, chosen
 * by `morc build --weights-dtype` and converted by libmorrt at bind time:
 *   f32, bf16, f16: N rows of K values;
 *   q8: N rows of S = K rounded up to 32 int8 values (zero padded), then
 *       N x S/32 f32 scales; value k of row n is q[n][k] * scale[n][k / 32].
 * Kernels take the format as an argument that generated code passes as a
 * constant, so every branch on it folds away after inlining. Values are
 * widened to f32 and accumulated in f32. */
typedef uint16_t mork_u16x8 __attribute__((vector_size(16)));
typedef uint32_t mork_u32x8 __attribute__((vector_size(32)));
typedef _Float16 mork_h8 __attribute__((vector_size(16)));
typedef int8_t mork_i8x8 __attribute__((vector_size(8)));

static inline int64_t mork_q8_stride(int64_t K) { return (K + MORRT_Q8_GROUP - 1) / MORRT_Q8_GROUP * MORRT_Q8_GROUP; }

/* 8 values of row n of W from column k (k + 8 <= K; for q8, k % 8 == 0) */
static inline mork_v8 mork_wld8(const void *restrict W, int64_t fmt, int64_t K, int64_t N, int64_t n, int64_t k) {
  if (fmt == MORRT_FMT_BF16) {
    mork_u16x8 h;
    __builtin_memcpy(&h, (const uint16_t *)W + n * K + k, sizeof h);
    mork_u32x8 u = __builtin_convertvector(h, mork_u32x8) << 16;
    mork_v8 v;
    __builtin_memcpy(&v, &u, sizeof v);
    return v;
  }
  if (fmt == MORRT_FMT_F16) {
    mork_h8 h;
    __builtin_memcpy(&h, (const uint16_t *)W + n * K + k, sizeof h);
    return __builtin_convertvector(h, mork_v8);
  }
  if (fmt == MORRT_FMT_Q8) {
    int64_t S = mork_q8_stride(K);
    mork_i8x8 q;
    __builtin_memcpy(&q, (const int8_t *)W + n * S + k, sizeof q);
    const float *sc = (const float *)((const char *)W + N * S);
    return __builtin_convertvector(q, mork_v8) * sc[n * (S / MORRT_Q8_GROUP) + k / MORRT_Q8_GROUP];
  }
  return mork_ld((const float *)W + n * K + k);
}

/* value k of row n of W */
static inline float mork_wld1(const void *restrict W, int64_t fmt, int64_t K, int64_t N, int64_t n, int64_t k) {
  if (fmt == MORRT_FMT_BF16 || fmt == MORRT_FMT_F16) {
    uint16_t h;
    __builtin_memcpy(&h, (const uint16_t *)W + n * K + k, sizeof h);
    if (fmt == MORRT_FMT_F16) {
      _Float16 f;
      __builtin_memcpy(&f, &h, sizeof f);
      return (float)f;
    }
    uint32_t u = (uint32_t)h << 16;
    float f;
    __builtin_memcpy(&f, &u, sizeof f);
    return f;
  }
  if (fmt == MORRT_FMT_Q8) {
    int64_t S = mork_q8_stride(K);
    const float *sc = (const float *)((const char *)W + N * S);
    return (float)((const int8_t *)W)[n * S + k] * sc[n * (S / MORRT_Q8_GROUP) + k / MORRT_Q8_GROUP];
  }
  return ((const float *)W)[n * K + k];
}

/* matmul tiling: an item is a block of MORK_MB rows by MORK_NT columns */
#ifndef MORK_MB
#define MORK_MB 64
#endif
#define MORK_NT 16

#endif
