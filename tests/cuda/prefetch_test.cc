/* prefetch_test.cc: the decode GEMV's weight prefetch (mor_gemv_prefetch in
 * backend/cuda/kernels.cuh, run before the PDL wait) asks for exactly the
 * 128-byte lines that hold the weights of the GEMM: every line of every
 * weight matrix, nothing before or after them. The family is run on the
 * CPU emulation (tests/cuda/emu.h) with the grid the plan gives a GEMV
 * (ceil(columns / 16) blocks of 256 threads); each prefetched address is
 * recorded. The expected lines come from the matrices' extents, not from
 * the kernel's row mapping: the GEMM's columns use every row of w0, w1 and
 * w2 once, whatever order (RoPE pairs, gate/up interleaving) maps them. */
#include "tests/cuda/emu.h"

#include "backend/cuda/kernels.cuh"

#include <set>
#include <vector>

static std::vector<uintptr_t> seen;
static void record(const void *p) { seen.push_back((uintptr_t)p); }

struct region {
  uintptr_t lo, hi; /* [lo, hi) */
};

template <int WT, int K, int N0, int N1, int N2, int PAIRED, int ROPE> struct cfg {
  static const void *w[3];
  static void tramp(void **) {
    mor_gemv_prefetch<WT, K, N0, N1, N2, PAIRED, 0, 0, ROPE, 8>(NULL, NULL, NULL, w[0], w[1], w[2], NULL, 0.0, NULL,
                                                                NULL, NULL, NULL, NULL, NULL, 0.0, NULL, NULL, NULL,
                                                                NULL, NULL, NULL, 0.0, 0);
  }
};
template <int WT, int K, int N0, int N1, int N2, int PAIRED, int ROPE>
const void *cfg<WT, K, N0, N1, N2, PAIRED, ROPE>::w[3];

static int failures;

/* shift: bytes from a 128-byte boundary to each matrix (rows are 16-byte aligned) */
template <int WT, int K, int N0, int N1, int N2, int PAIRED, int ROPE> static void check(const char *name, int shift) {
  typedef cfg<WT, K, N0, N1, N2, PAIRED, ROPE> C;
  const size_t es = WT ? 2 : 4, rb = (size_t)K * es;
  const int rows[3] = {N0, PAIRED ? N0 : N1, PAIRED ? 0 : N2};
  const int NT = PAIRED ? 2 * N0 : N0 + N1 + N2;
  std::vector<region> reg;
  std::vector<char *> mem;
  for (int i = 0; i < 3; i++) {
    char *m = (char *)aligned_alloc(128, ((rows[i] * rb + shift + 127) / 128 + 1) * 128);
    mem.push_back(m);
    C::w[i] = rows[i] ? m + shift : NULL;
    if (rows[i]) reg.push_back({(uintptr_t)(m + shift), (uintptr_t)(m + shift + rows[i] * rb)});
  }
  std::set<uintptr_t> want, got;
  for (const region &r : reg)
    for (uintptr_t a = r.lo & ~(uintptr_t)127; a < r.hi; a += 128) want.insert(a);
  seen.clear();
  mor_emu_on_prefetch = record;
  if (mor_emu_run(C::tramp, (unsigned)((NT + 15) / 16), 1, 1, 256, 1, 1, NULL)) {
    printf("FAIL %s: the emulation refused the launch\n", name);
    failures++;
    return;
  }
  mor_emu_on_prefetch = NULL;
  int outside = 0;
  for (uintptr_t a : seen) {
    bool in = false;
    for (const region &r : reg) in = in || (a >= r.lo && a < r.hi);
    if (!in && outside++ < 3) printf("  %s: prefetch of %#lx lies outside every weight matrix\n", name, (unsigned long)a);
    got.insert(a & ~(uintptr_t)127);
  }
  int missing = 0, extra = 0;
  for (uintptr_t a : want) missing += !got.count(a);
  for (uintptr_t a : got) extra += !want.count(a);
  if (outside || missing || extra) {
    printf("FAIL %s (matrices %d bytes past a line): %d prefetches outside the weights, %d of %zu lines not "
           "prefetched, %d lines that hold no weight\n",
           name, shift, outside, missing, want.size(), extra);
    failures++;
  } else {
    printf("ok: %s (matrices %d bytes past a line): %zu prefetches cover the %zu lines\n", name, shift, seen.size(),
           want.size());
  }
  for (char *m : mem) free(m);
}

int main(void) {
  for (int shift = 0; shift <= 112; shift += 48) {
    /* the 360M-class model's decode GEMVs, bf16 */
    check<1, 960, 960, 320, 320, 0, 64>("qkv, RoPE pair order, bf16", shift);
    check<1, 960, 2560, 0, 0, 1, 0>("gate/up interleaved, bf16", shift);
    check<1, 2560, 960, 0, 0, 0, 0>("down, K 2560, bf16", shift);
    /* f32 weights; an odd column count (the last warp has one column) */
    check<0, 128, 101, 0, 0, 0, 0>("f32, 101 columns", shift);
    /* rows of 144 bytes: lines shared by two rows; K not a multiple of 8 */
    check<1, 72, 33, 0, 0, 0, 0>("bf16, 144-byte rows", shift);
    check<0, 36, 7, 5, 0, 0, 0>("f32, K 36, two matrices", shift);
  }
  return failures != 0;
}
