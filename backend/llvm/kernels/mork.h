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

/* the 8 horizontal sums of a0..a7, as one vector (lane i: hsum(ai)) */
static inline mork_v8 mork_hsum8(mork_v8 a0, mork_v8 a1, mork_v8 a2, mork_v8 a3, mork_v8 a4, mork_v8 a5, mork_v8 a6,
                            mork_v8 a7) {
  mork_v8 b0 = __builtin_shufflevector(a0, a1, 0, 8, 1, 9, 4, 12, 5, 13) +
               __builtin_shufflevector(a0, a1, 2, 10, 3, 11, 6, 14, 7, 15);
  mork_v8 b1 = __builtin_shufflevector(a2, a3, 0, 8, 1, 9, 4, 12, 5, 13) +
               __builtin_shufflevector(a2, a3, 2, 10, 3, 11, 6, 14, 7, 15);
  mork_v8 b2 = __builtin_shufflevector(a4, a5, 0, 8, 1, 9, 4, 12, 5, 13) +
               __builtin_shufflevector(a4, a5, 2, 10, 3, 11, 6, 14, 7, 15);
  mork_v8 b3 = __builtin_shufflevector(a6, a7, 0, 8, 1, 9, 4, 12, 5, 13) +
               __builtin_shufflevector(a6, a7, 2, 10, 3, 11, 6, 14, 7, 15);
  /* b0 = [a0 a1 a0 a1 | a0 a1 a0 a1] partial pairs; combine pairs */
  mork_v8 c0 = __builtin_shufflevector(b0, b1, 0, 1, 8, 9, 4, 5, 12, 13) +
               __builtin_shufflevector(b0, b1, 2, 3, 10, 11, 6, 7, 14, 15);
  mork_v8 c1 = __builtin_shufflevector(b2, b3, 0, 1, 8, 9, 4, 5, 12, 13) +
               __builtin_shufflevector(b2, b3, 2, 3, 10, 11, 6, 7, 14, 15);
  /* c0 = [a0 a1 a2 a3 | a0 a1 a2 a3] halves; add the 128-bit halves */
  return __builtin_shufflevector(c0, c1, 0, 1, 2, 3, 8, 9, 10, 11) +
         __builtin_shufflevector(c0, c1, 4, 5, 6, 7, 12, 13, 14, 15);
}

/* e^x for x in [-87, 0] (below: e^-87), 8 at a time: Cephes' expf
 * (x = n ln2 + r, |r| <= ln2/2, a degree-6 polynomial in r, times 2^n),
 * within 2 ulp of expf. */
typedef int32_t mork_i8 __attribute__((vector_size(32)));
static inline mork_v8 mork_exp8(mork_v8 x) {
  const mork_v8 lo = {-87.0f, -87.0f, -87.0f, -87.0f, -87.0f, -87.0f, -87.0f, -87.0f};
  mork_i8 below = x < lo, xi, li;
  __builtin_memcpy(&xi, &x, sizeof x);
  __builtin_memcpy(&li, &lo, sizeof lo);
  xi = (xi & ~below) | (li & below);
  __builtin_memcpy(&x, &xi, sizeof x);
  const float magic = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
  mork_v8 n = (x * 1.44269504088896341f + magic) - magic;
  mork_v8 r = x - n * 0.693359375f - n * -2.12194440e-4f;
  mork_v8 p = r * 1.9875691500e-4f + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + r + 1.0f;
  mork_i8 e = (__builtin_convertvector(n, mork_i8) + 127) << 23;
  mork_v8 s;
  __builtin_memcpy(&s, &e, sizeof s);
  return p * s;
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
#define MORK_MB 128
#endif
#define MORK_NT 16

#endif
