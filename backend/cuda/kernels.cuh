/* kernels.cuh: the CUDA kernel library of morc's CUDA backend. morc embeds
 * this text at the top of every generated .cu; the generated part adds one
 * `extern "C" __global__` wrapper per kernel instance that calls a family
 * below with its shapes and modes as template arguments.
 *
 * Written in the subset that both NVRTC (no headers at all) and a host C++
 * compiler with tests/cuda/emu.h (the CPU emulation used by the tests)
 * accept: no includes, no dynamic shared memory, barriers reached by every
 * thread of a block or by none, warp collectives by all 32 lanes.
 *
 * Numerics follow the reference interpreter (backend/ref/ref.h) where it is
 * cheap: rmsnorm sums squares in double, RoPE angles and the router are in
 * double; GEMMs and attention accumulate in f32 (the BF16 tensor-core GEMM
 * rounds its activations to bf16). Every row count is read from device
 * memory (`rows`), grids are sized for the call's tokens, and blocks past
 * the count do nothing. */

#ifndef MORC_EMU
#define MOR_DEV __device__ __forceinline__
#define MOR_NOINLINE __device__ __noinline__
#define MOR_KERNEL extern "C" __global__
#define MOR_BOUNDS(n) __launch_bounds__(n)
#define MOR_LDG(p) __ldg(p)
#define MOR_LD(p) (*(p)) /* a vector load (the emulation checks its alignment) */
#define MOR_UNROLL _Pragma("unroll")
/* Programmatic dependent launch (sm_90): every kernel instance starts with
 * this. launch_dependents lets the next kernel of the stream be launched
 * once every block of this one has started, so its launch overlaps this
 * kernel's run; wait blocks until the previous kernel has completed and its
 * memory is visible, before this kernel reads anything. Without the launch
 * attribute (runtime --no-pdl, older GPUs) both are no-ops, and the order of
 * the stream is as always. A kernel whose family has a `pre` function runs
 * it between the two (MOR_PDL_TRIGGER, pre, MOR_PDL_WAIT): the GEMV
 * prefetches its weight rows into L2 while the kernel before still runs.
 * MOR_PREFETCH_L2 is a hint; sm_80 builds, which have no PDL, leave it out. */
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
#define MOR_PDL_TRIGGER() asm volatile("griddepcontrol.launch_dependents;" ::: "memory")
#define MOR_PDL_WAIT() asm volatile("griddepcontrol.wait;" ::: "memory")
#define MOR_PREFETCH_L2(p) asm volatile("prefetch.global.L2 [%0];" ::"l"(p))
#else
#define MOR_PDL_TRIGGER()
#define MOR_PDL_WAIT()
#define MOR_PREFETCH_L2(p)
#endif
#define MOR_PDL()  \
  do {                 \
    MOR_PDL_TRIGGER(); \
    MOR_PDL_WAIT();    \
  } while (0)
#endif

typedef unsigned short mor_bf16;
typedef long long mor_i64;
#define MOR_FULL 0xffffffffu
#define MOR_NEG_INF (__int_as_float(0xff800000))

/* ---- scalars ------------------------------------------------------------- */

MOR_DEV float mor_bf2f(mor_bf16 h) { return __uint_as_float(((unsigned)h) << 16); }
/* f32 -> bf16, round to nearest even; NaN stays NaN */
MOR_DEV unsigned mor_f2bf(float f) {
  unsigned u = __float_as_uint(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fc0u;
  return (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
}
MOR_DEV unsigned mor_pack2(float lo, float hi) { return mor_f2bf(lo) | (mor_f2bf(hi) << 16); }

/* element i of a weight stored as f32 (WT 0) or bf16 (WT 1) */
template <int WT> MOR_DEV float mor_ldw(const void *w, mor_i64 i) {
  return WT ? mor_bf2f(MOR_LDG((const mor_bf16 *)w + i)) : MOR_LDG((const float *)w + i);
}

MOR_DEV float mor_warp_sum(float v) {
  for (int o = 16; o; o >>= 1) v += __shfl_xor_sync(MOR_FULL, v, o);
  return v;
}
MOR_DEV double mor_warp_sumd(double v) {
  for (int o = 16; o; o >>= 1) v += __shfl_xor_sync(MOR_FULL, v, o);
  return v;
}
MOR_DEV float mor_warp_max(float v) {
  for (int o = 16; o; o >>= 1) v = fmaxf(v, __shfl_xor_sync(MOR_FULL, v, o));
  return v;
}

/* Sum of v over the block (every thread gets it). red: 33 floats of shared memory. */
MOR_DEV double mor_block_sumd(double v, double *red) {
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
  v = mor_warp_sumd(v);
  if (lane == 0) red[warp] = v;
  __syncthreads();
  if (threadIdx.x == 0) {
    double s = 0;
    for (int i = 0; i < nw; i++) s += red[i];
    red[32] = s;
  }
  __syncthreads();
  double s = red[32];
  __syncthreads();
  return s;
}

MOR_DEV float mor_silu_mul(float g, float u) { return g / (1.0f + expf(-g)) * u; }

/* 1 / sqrt(mean(x^2) + eps) of one row, as the reference rounds it */
MOR_DEV float mor_inv_rms(double ss, int K, double eps) { return (float)(1.0 / sqrt(ss / (double)K + eps)); }

/* cos and sin of RoPE pair i (of HD/2) at position p, in double, rounded */
template <int HD> MOR_DEV void mor_rope_cs(int p, double theta, int i, float *c, float *s) {
  double ang = (double)p * pow(theta, -2.0 * (double)i / (double)HD);
  *c = (float)cos(ang);
  *s = (float)sin(ang);
}

/* The last kernel block to get here stores `value` into *slot: used to
 * commit a KV store's new entry count once every block has read the old
 * one. Every thread of every block must call it. */
MOR_DEV void mor_commit(int *ticket, int *slot, int value) {
  __threadfence(); /* every thread's writes ordered before the ticket (fences are cheap here) */
  __syncthreads();
  if (threadIdx.x == 0) {
    __threadfence();
    unsigned total = gridDim.x * gridDim.y * gridDim.z;
    int t = atomicAdd(ticket, 1);
    if ((unsigned)t == total - 1) {
      *(volatile int *)slot = value;
      *(volatile int *)ticket = 0;
      __threadfence();
    }
  }
}

/* ---- embedding ------------------------------------------------------------ */

/* y[m] = E[ids[m]] (rows of D), decoded to f32. grid.x: rows, block: any. */
template <int WT, int D>
MOR_DEV void fam_embed(const void *E, const int *ids, const int *rows, float *y) {
  int m = blockIdx.x;
  if (m >= *rows) return;
  mor_i64 id = ids[m];
  for (int i = threadIdx.x; i < D; i += blockDim.x) y[(mor_i64)m * D + i] = mor_ldw<WT>(E, id * D + i);
}

/* ---- rmsnorm ---------------------------------------------------------------- */

/* y = w * (x * inv_rms(x)) per row. grid.x: rows, block: 256. */
template <int D>
MOR_DEV void fam_rmsnorm(const float *x, const int *rows, const float *w, double eps, float *y) {
  __shared__ double red[33];
  int m = blockIdx.x;
  if (m >= *rows) return;
  const float *xr = x + (mor_i64)m * D;
  double ss = 0;
  for (int i = threadIdx.x; i < D; i += blockDim.x) ss += (double)xr[i] * xr[i];
  float inv = mor_inv_rms(mor_block_sumd(ss, red), D, eps);
  for (int i = threadIdx.x; i < D; i += blockDim.x) y[(mor_i64)m * D + i] = w[i] * (xr[i] * inv);
}

/* ---- GEMM family -------------------------------------------------------------
 * y = epilogue(prologue(x[rows]) W^T) with
 *   W: one weight [N0, K], or segments [N0;N1;N2] stacked (QKV), or, PAIRED,
 *      two weights [N0, K] whose rows are interleaved (gate, up): GEMM column
 *      2f is gate row f and 2f+1 is up row f, so a pair of columns is
 *      (g, u) of one output column f;
 *   prologue (PRO): 0 x as is; 1 rmsnorm(x) with weight nw and eps;
 *   rows of x: xidx[m] when xidx is given (an indexed load), else m;
 *   epilogue (EPI), for GEMM column c and row m:
 *     0 store   y[m, c] = v                            (ld NT)
 *     1 silu    y[m, f] = silu(g) * u (PAIRED)          (ld N0)
 *     2 add     y[m, c] = r[ridx ? ridx[m] : m, c] + v
 *     3 set     y[oidx[m], c] = r[m, c] + v
 *     4 gate    y[t, c] = base[t, c] + alpha*s[t] * (r[m, c] + v), t = oidx[m]
 *     5 gate1   y[t, c] = base[t, c] + (r[m, c] + v)          (gating none)
 *     6 qkv     W = [Wq; Wk; Wv] with the rows of every head of Wq and Wk
 *               permuted (ROPE = head_dim) so that columns (2p, 2p+1) of a
 *               head are its RoPE pair (p, p + HD/2): the pair is rotated at
 *               the row's position pos[xidx ? xidx[m] : m] and q goes to
 *               y[m, H*HD], k and v to the KV store at entry n0 + m (n0: its
 *               count when the kernel started), the position to kpos; the
 *               last block commits the new count (with kvn; else q only)
 */

#define MOR_NT (PAIRED ? 2 * N0 : N0 + N1 + N2)

struct mor_epi {
  float *y;
  const float *r;
  const int *ridx, *oidx;
  const float *base, *s;
  float alpha;
  /* EPI 6 */
  const int *pos, *xidx;
  float *kk, *vv;
  int *kpos;
  int n0;
  mor_i64 cap;
  double theta;
};

/* row c of the stacked / interleaved weights (ROPE: the RoPE pair order of EPI 6) */
template <int WT, int K, int N0, int N1, int PAIRED, int ROPE>
MOR_DEV const void *mor_wrow(const void *w0, const void *w1, const void *w2, int c) {
  const int es = WT ? 2 : 4;
  if (PAIRED) return (const char *)((c & 1) ? w1 : w0) + (mor_i64)(c >> 1) * K * es;
  if (ROPE && c < N0 + N1) {
    int seg = c < N0, rel = seg ? c : c - N0, w = rel % (ROPE > 0 ? ROPE : 1);
    int row = rel - w + (w >> 1) + (w & 1) * (ROPE / 2);
    return (const char *)(seg ? w0 : w1) + (mor_i64)row * K * es;
  }
  if (c < N0) return (const char *)w0 + (mor_i64)c * K * es;
  if (c < N0 + N1) return (const char *)w1 + (mor_i64)(c - N0) * K * es;
  return (const char *)w2 + (mor_i64)(c - N0 - N1) * K * es;
}

/* one output element */
template <int EPI, int NT>
MOR_DEV void mor_epi1(const mor_epi &e, int m, int c, float v) {
  if (EPI == 0) {
    e.y[(mor_i64)m * NT + c] = v;
  } else if (EPI == 2) {
    mor_i64 rr = e.ridx ? e.ridx[m] : m;
    e.y[(mor_i64)m * NT + c] = e.r[rr * NT + c] + v;
  } else if (EPI == 3) {
    mor_i64 t = e.oidx[m];
    e.y[t * NT + c] = e.r[(mor_i64)m * NT + c] + v;
  } else if (EPI == 4 || EPI == 5) {
    mor_i64 t = e.oidx[m];
    float yy = e.r[(mor_i64)m * NT + c] + v;
    if (EPI == 4) {
      float g = e.alpha * e.s[t];
      e.y[t * NT + c] = e.base[t * NT + c] + g * yy;
    } else {
      e.y[t * NT + c] = e.base[t * NT + c] + yy;
    }
  }
}

/* columns c (even) and c + 1 (when c + 1 < NT) of row m */
template <int EPI, int NT, int N0, int N1 = 0, int ROPE = 0>
MOR_DEV void mor_epi2(const mor_epi &e, int m, int c, float v0, float v1) {
  if (EPI == 1) {
    e.y[(mor_i64)m * N0 + (c >> 1)] = mor_silu_mul(v0, v1);
  } else if (EPI == 6) {
    const int HD = ROPE > 0 ? ROPE : 2, W = N1;
    mor_i64 ent = (mor_i64)e.n0 + m;
    if (c >= N0 && ent >= e.cap) return;
    if (c < N0 + N1) {
      int rel = c < N0 ? c : c - N0, hh = rel / HD, pr = (rel % HD) >> 1;
      int p = e.pos[e.xidx ? e.xidx[m] : m];
      float cs, sn;
      mor_rope_cs<HD>(p, e.theta, pr, &cs, &sn);
      float a = v0 * cs - v1 * sn, b = v1 * cs + v0 * sn;
      float *dst = c < N0 ? e.y + (mor_i64)m * N0 + hh * HD : e.kk + ent * W + hh * HD;
      dst[pr] = a;
      dst[pr + HD / 2] = b;
      if (c == N0) e.kpos[ent] = p;
    } else {
      e.vv[ent * W + (c - N0 - N1)] = v0;
      if (c + 1 < NT) e.vv[ent * W + (c + 1 - N0 - N1)] = v1;
    }
  } else {
    mor_epi1<EPI, NT>(e, m, c, v0);
    if (c + 1 < NT) mor_epi1<EPI, NT>(e, m, c + 1, v1);
  }
}

#define MOR_GEMM_PARAMS                                                                                      \
  const float *x, const int *rows, const int *xidx, const void *w0, const void *w1, const void *w2,         \
      const float *nw, double eps, float *y, const float *r, const int *ridx, const int *oidx,               \
      const float *base, const float *s, double alpha, const int *pos, float *kk, float *vv, int *kpos,    \
      int *kvn, int *ticket, double theta, mor_i64 cap
#define MOR_GEMM_ARGS                                                                                        \
  x, rows, xidx, w0, w1, w2, nw, eps, y, r, ridx, oidx, base, s, alpha, pos, kk, vv, kpos, kvn, ticket, theta, cap
#define MOR_EPI_INIT(n0) {y, r, ridx, oidx, base, s, (float)alpha, pos, xidx, kk, vv, kpos, n0, cap, theta}

/* The GEMM families below are a body that may return early and a wrapper
 * that, for EPI 6 with a KV store, reads the store's count first and
 * commits the new count after every block is done with it. */
#define MOR_GEMM_WRAPPER(fam, body, TPL, TARGS)                                                               \
  template <TPL> MOR_DEV void fam(MOR_GEMM_PARAMS) {                                                          \
    int n0 = EPI == 6 && kvn ? *(volatile int *)kvn : 0;                                                      \
    body<TARGS>(MOR_GEMM_ARGS, n0);                                                                           \
    if (EPI == 6 && kvn) {                                                                                    \
      mor_i64 n1 = (mor_i64)n0 + *rows;                                                                       \
      mor_commit(ticket, kvn, (int)(n1 < cap ? n1 : cap));                                                    \
    }                                                                                                         \
  }

/* inv[i] = inverse rms of row (m0 + i) of the GEMM, i < BM; 4 threads a row.
 * Needs blockDim.x >= 4 * BM / rounds; call from every thread. */
template <int K, int BM>
MOR_DEV void mor_rows_inv(const float *x, const int *xidx, int m0, int M, double eps, float *inv) {
  int nth = blockDim.x;
  for (int base = 0; base < BM * 4; base += nth) {
    int e = base + (int)threadIdx.x;
    int rr = e >> 2, q = e & 3;
    int m = m0 + rr;
    double ss = 0;
    if (rr < BM && m < M) {
      const float *xr = x + (mor_i64)(xidx ? xidx[m] : m) * K;
      for (int k = q; k < K; k += 4) ss += (double)xr[k] * xr[k];
    }
    ss += __shfl_xor_sync(MOR_FULL, ss, 1);
    ss += __shfl_xor_sync(MOR_FULL, ss, 2);
    if (q == 0 && rr < BM) inv[rr] = m < M ? mor_inv_rms(ss, K, eps) : 0.0f;
  }
  __syncthreads();
}

/* SIMT GEMM, f32 math: 64x64 tile, 256 threads, 4x4 outputs each.
 * grid: (ceil(NT/64), ceil(T/64)). */
template <int WT, int K, int N0, int N1, int N2, int PAIRED, int PRO, int EPI, int ROPE>
MOR_DEV void mor_gemm_simt_body(MOR_GEMM_PARAMS, int n0) {
  const int BM = 64, BN = 64, BK = 16, NT = MOR_NT;
  __shared__ float As[BK][BM + 4];
  __shared__ float Bs[BK][BN + 4];
  __shared__ float inv[BM];
  int M = *rows, bm = blockIdx.y * BM, bn = blockIdx.x * BN;
  if (bm >= M) return;
  int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
  if (PRO) mor_rows_inv<K, BM>(x, xidx, bm, M, eps, inv);
  float acc[4][4];
  MOR_UNROLL for (int i = 0; i < 4; i++)
    MOR_UNROLL for (int j = 0; j < 4; j++) acc[i][j] = 0.0f;
  for (int k0 = 0; k0 < K; k0 += BK) {
    for (int i = 0; i < 4; i++) {
      int e = tid + i * 256, rr = e >> 4, kk = e & 15, m = bm + rr, k = k0 + kk;
      float a = 0.0f;
      if (m < M && k < K) {
        a = x[(mor_i64)(xidx ? xidx[m] : m) * K + k];
        if (PRO) a = nw[k] * (a * inv[rr]);
      }
      As[kk][rr] = a;
      int c = bn + rr;
      float b = 0.0f;
      if (c < NT && k < K) b = mor_ldw<WT>(mor_wrow<WT, K, N0, N1, PAIRED, ROPE>(w0, w1, w2, c), k);
      Bs[kk][rr] = b;
    }
    __syncthreads();
    for (int kk = 0; kk < BK; kk++) {
      float a[4], b[4];
      for (int i = 0; i < 4; i++) a[i] = As[kk][ty * 4 + i];
      for (int j = 0; j < 4; j++) b[j] = Bs[kk][tx * 4 + j];
      for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) acc[i][j] += a[i] * b[j];
    }
    __syncthreads();
  }
  mor_epi e = MOR_EPI_INIT(n0);
  MOR_UNROLL for (int i = 0; i < 4; i++) {
    int m = bm + ty * 4 + i;
    if (m >= M) continue;
    MOR_UNROLL for (int j = 0; j < 4; j += 2) {
      int c = bn + tx * 4 + j;
      if (c < NT) mor_epi2<EPI, NT, N0, N1, ROPE>(e, m, c, acc[i][j], acc[i][j + 1]);
    }
  }
}


#define MOR_T_SIMT int WT, int K, int N0, int N1, int N2, int PAIRED, int PRO, int EPI, int ROPE
#define MOR_A_SIMT WT, K, N0, N1, N2, PAIRED, PRO, EPI, ROPE
MOR_GEMM_WRAPPER(fam_gemm_simt, mor_gemm_simt_body, MOR_T_SIMT, MOR_A_SIMT)

/* mma.sync m16n8k16, bf16 inputs, f32 accumulators (sm_80+). Fragments as
 * in the PTX ISA: g = lane / 4, t = lane % 4;
 *   a0 (row g, k 2t..2t+1)  a1 (row g+8, k 2t..)  a2 (row g, k 2t+8..)  a3 (row g+8, k 2t+8..)
 *   b0 (col g, k 2t..2t+1)  b1 (col g, k 2t+8..)
 *   d0,d1 (row g, col 2t, 2t+1)  d2,d3 (row g+8, col 2t, 2t+1) */
#ifndef MORC_EMU
MOR_DEV void mor_mma_bf16(float *d, const unsigned *a, const unsigned *b) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
#endif

/* BF16 tensor-core GEMM: BM x BN tiles, BK 32, WM x WN warps (each a
 * (BM/WM) x (BN/WN) tile of m16n8k16 products). Activations are rounded to
 * bf16 as they are staged (after the rmsnorm prologue); bf16 weights only.
 * Two shared-memory buffers: the next k-tile is loaded into registers while
 * the current one is multiplied, then stored into the other buffer, so one
 * barrier per k-tile suffices. grid: (ceil(NT/BN), ceil(T/BM)). */
template <int BM, int BN, int WM, int WN, int K, int N0, int N1, int N2, int PAIRED, int PRO, int EPI, int ROPE>
MOR_DEV void mor_gemm_mma_body(MOR_GEMM_PARAMS, int n0) {
  const int BK = 32, LDS = BK / 2 + 4, NT = MOR_NT, NTH = WM * WN * 32;
  const int TM = BM / WM, TN = BN / WN, MI = TM / 16, NI = TN / 8;
  const int PA = BM * (BK / 2) / NTH, PB = BN * (BK / 2) / NTH; /* bf16 pairs each thread stages */
  __shared__ unsigned As[2][BM * LDS];
  __shared__ unsigned Bs[2][BN * LDS];
  __shared__ float inv[BM];
  int M = *rows, bm = blockIdx.y * BM, bn = blockIdx.x * BN;
  if (bm >= M) return;
  int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, wm = warp / WN, wn = warp % WN;
  int g = lane >> 2, t = lane & 3;
  if (PRO) mor_rows_inv<K, BM>(x, xidx, bm, M, eps, inv);
  /* staging: pair i of this thread is row (tid + i * NTH) / 16, pair (tid + i * NTH) % 16 */
  unsigned ra[PA], rb[PB];
  auto stage = [&](int k0) {
    MOR_UNROLL for (int i = 0; i < PA; i++) {
      int e = tid + i * NTH, rr = e >> 4, k = k0 + 2 * (e & 15), m = bm + rr;
      float a0 = 0.0f, a1 = 0.0f;
      if (m < M) {
        const float *xr = x + (mor_i64)(xidx ? xidx[m] : m) * K;
        if ((K & 1) == 0 && k < K) {
          float2 v = MOR_LD((const float2 *)(xr + k));
          a0 = v.x;
          a1 = v.y;
        } else {
          if (k < K) a0 = xr[k];
          if (k + 1 < K) a1 = xr[k + 1];
        }
        if (PRO) {
          if (k < K) a0 = nw[k] * (a0 * inv[rr]);
          if (k + 1 < K) a1 = nw[k + 1] * (a1 * inv[rr]);
        }
      }
      ra[i] = mor_pack2(a0, a1);
    }
    MOR_UNROLL for (int i = 0; i < PB; i++) {
      int e = tid + i * NTH, rr = e >> 4, k = k0 + 2 * (e & 15), c = bn + rr;
      unsigned bw = 0;
      if (c < NT) {
        const mor_bf16 *wr = (const mor_bf16 *)mor_wrow<1, K, N0, N1, PAIRED, ROPE>(w0, w1, w2, c);
        if ((K & 1) == 0 && k < K) {
          bw = MOR_LDG((const unsigned *)(wr + k));
        } else {
          unsigned lo = k < K ? MOR_LDG(wr + k) : 0u, hi = k + 1 < K ? MOR_LDG(wr + k + 1) : 0u;
          bw = lo | (hi << 16);
        }
      }
      rb[i] = bw;
    }
  };
  auto store = [&](int buf) {
    MOR_UNROLL for (int i = 0; i < PA; i++) {
      int e = tid + i * NTH;
      As[buf][(e >> 4) * LDS + (e & 15)] = ra[i];
    }
    MOR_UNROLL for (int i = 0; i < PB; i++) {
      int e = tid + i * NTH;
      Bs[buf][(e >> 4) * LDS + (e & 15)] = rb[i];
    }
  };
  float acc[MI][NI][4];
  MOR_UNROLL for (int i = 0; i < MI; i++)
    MOR_UNROLL for (int j = 0; j < NI; j++)
      MOR_UNROLL for (int q = 0; q < 4; q++) acc[i][j][q] = 0.0f;
  stage(0);
  store(0);
  __syncthreads();
  int buf = 0;
  for (int k0 = 0; k0 < K; k0 += BK) {
    bool more = k0 + BK < K;
    if (more) stage(k0 + BK);
    const unsigned *as = As[buf], *bs = Bs[buf];
    MOR_UNROLL for (int ks = 0; ks < 2; ks++) {
      int kw = ks * 8;
      unsigned af[MI][4], bfr[NI][2];
      MOR_UNROLL for (int mi = 0; mi < MI; mi++) {
        int rb0 = wm * TM + mi * 16;
        af[mi][0] = as[(rb0 + g) * LDS + kw + t];
        af[mi][1] = as[(rb0 + g + 8) * LDS + kw + t];
        af[mi][2] = as[(rb0 + g) * LDS + kw + t + 4];
        af[mi][3] = as[(rb0 + g + 8) * LDS + kw + t + 4];
      }
      MOR_UNROLL for (int ni = 0; ni < NI; ni++) {
        int cb = wn * TN + ni * 8;
        bfr[ni][0] = bs[(cb + g) * LDS + kw + t];
        bfr[ni][1] = bs[(cb + g) * LDS + kw + t + 4];
      }
      MOR_UNROLL for (int mi = 0; mi < MI; mi++)
        MOR_UNROLL for (int ni = 0; ni < NI; ni++) mor_mma_bf16(acc[mi][ni], af[mi], bfr[ni]);
    }
    if (more) store(buf ^ 1);
    __syncthreads();
    buf ^= 1;
  }
  mor_epi e = MOR_EPI_INIT(n0);
  MOR_UNROLL for (int mi = 0; mi < MI; mi++)
    MOR_UNROLL for (int ni = 0; ni < NI; ni++) {
      int m = bm + wm * TM + mi * 16 + g, c = bn + wn * TN + ni * 8 + 2 * t;
      if (c >= NT) continue;
      if (m < M) mor_epi2<EPI, NT, N0, N1, ROPE>(e, m, c, acc[mi][ni][0], acc[mi][ni][1]);
      if (m + 8 < M) mor_epi2<EPI, NT, N0, N1, ROPE>(e, m + 8, c, acc[mi][ni][2], acc[mi][ni][3]);
    }
}

#define MOR_T_MMA int BM, int BN, int WM, int WN, int K, int N0, int N1, int N2, int PAIRED, int PRO, int EPI, int ROPE
#define MOR_A_MMA BM, BN, WM, WN, K, N0, N1, N2, PAIRED, PRO, EPI, ROPE
MOR_GEMM_WRAPPER(fam_gemm_mma, mor_gemm_mma_body, MOR_T_MMA, MOR_A_MMA)

/* 8 consecutive weights of row wr from k (k % 8 == 0, row 16-byte aligned) */
template <int WT> MOR_DEV void mor_ld8w(const void *wr, int k, float *w) {
  if (WT) {
    uint4 u = MOR_LDG((const uint4 *)((const mor_bf16 *)wr + k));
    unsigned q[4] = {u.x, u.y, u.z, u.w};
    for (int i = 0; i < 4; i++) {
      w[2 * i] = __uint_as_float(q[i] << 16);
      w[2 * i + 1] = __uint_as_float(q[i] & 0xffff0000u);
    }
  } else {
    float4 a = MOR_LDG((const float4 *)((const float *)wr + k)), b = MOR_LDG((const float4 *)((const float *)wr + k + 4));
    w[0] = a.x, w[1] = a.y, w[2] = a.z, w[3] = a.w, w[4] = b.x, w[5] = b.y, w[6] = b.z, w[7] = b.w;
  }
}

/* GEMV for calls of few tokens (decode): every warp computes a pair of
 * GEMM columns (c, c + 1) for all M <= MMAX rows, streaming the weight
 * rows once with 16-byte loads. 256 threads; grid: ceil(NT / 16). */
template <int WT, int K, int N0, int N1, int N2, int PAIRED, int PRO, int EPI, int ROPE, int MMAX>
MOR_DEV void mor_gemv_body(MOR_GEMM_PARAMS, int n0) {
  const int NT = MOR_NT;
  __shared__ float inv[MMAX];
  __shared__ int src[MMAX];
  int M = *rows;
  if (M <= 0) return; /* no row routed here: do not read the weights */
  if (M > MMAX) M = MMAX; /* the host never launches this with more rows */
  int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  if (tid < MMAX) src[tid] = tid < M ? (xidx ? xidx[tid] : tid) : 0;
  __syncthreads();
  if (PRO) {
    for (int m = warp; m < MMAX; m += 8) {
      double ss = 0;
      if (m < M) {
        const float *xr = x + (mor_i64)src[m] * K;
        for (int k = lane; k < K; k += 32) ss += (double)xr[k] * xr[k];
      }
      ss = mor_warp_sumd(ss);
      if (lane == 0) inv[m] = m < M ? mor_inv_rms(ss, K, eps) : 0.0f;
    }
    __syncthreads();
  }
  int c = (blockIdx.x * 8 + warp) * 2;
  if (c >= NT) return; /* no block barrier follows */
  const void *r0 = mor_wrow<WT, K, N0, N1, PAIRED, ROPE>(w0, w1, w2, c);
  const void *r1 = c + 1 < NT ? mor_wrow<WT, K, N0, N1, PAIRED, ROPE>(w0, w1, w2, c + 1) : r0;
  float acc0[MMAX], acc1[MMAX];
  MOR_UNROLL for (int m = 0; m < MMAX; m++) acc0[m] = acc1[m] = 0.0f;
  if (K % 8 == 0) {
    MOR_UNROLL for (int k = lane * 8; k < K; k += 256) { /* K is a constant: all loads issued early */
      float wa[8], wb[8], nv[8];
      mor_ld8w<WT>(r0, k, wa);
      mor_ld8w<WT>(r1, k, wb);
      if (PRO) mor_ld8w<0>(nw, k, nv);
      MOR_UNROLL for (int m = 0; m < MMAX; m++) {
        if (m >= M) break;
        float xv[8];
        mor_ld8w<0>(x + (mor_i64)src[m] * K, k, xv);
        if (PRO)
          for (int i = 0; i < 8; i++) xv[i] = nv[i] * (xv[i] * inv[m]);
        float s0 = 0.0f, s1 = 0.0f;
        for (int i = 0; i < 8; i++) {
          s0 += xv[i] * wa[i];
          s1 += xv[i] * wb[i];
        }
        acc0[m] += s0;
        acc1[m] += s1;
      }
    }
  } else {
    for (int k = lane; k < K; k += 32) {
      float wa = mor_ldw<WT>(r0, k), wb = mor_ldw<WT>(r1, k);
      MOR_UNROLL for (int m = 0; m < MMAX; m++) {
        if (m >= M) break;
        float xv = x[(mor_i64)src[m] * K + k];
        if (PRO) xv = nw[k] * (xv * inv[m]);
        acc0[m] += xv * wa;
        acc1[m] += xv * wb;
      }
    }
  }
  mor_epi e = MOR_EPI_INIT(n0);
  MOR_UNROLL for (int m = 0; m < MMAX; m++) {
    if (m >= M) break; /* M is the same for the whole block */
    float v0 = mor_warp_sum(acc0[m]), v1 = mor_warp_sum(acc1[m]);
    if (lane == 0) mor_epi2<EPI, NT, N0, N1, ROPE>(e, m, c, v0, v1);
  }
}

#define MOR_T_GEMV int WT, int K, int N0, int N1, int N2, int PAIRED, int PRO, int EPI, int ROPE, int MMAX
#define MOR_A_GEMV WT, K, N0, N1, N2, PAIRED, PRO, EPI, ROPE, MMAX
MOR_GEMM_WRAPPER(fam_gemv, mor_gemv_body, MOR_T_GEMV, MOR_A_GEMV)

/* The GEMV's `pre` (before the PDL wait): each warp asks L2 for the
 * 128-byte lines of the two weight rows it will stream, so that a decode
 * step's weights flow from HBM while the kernel before still runs. It reads
 * only weights (written once, before any launch) and only inside the rows.
 * A step whose rows turn out to be routed elsewhere (no row left at this
 * depth) has then fetched its weights for nothing. */
template <MOR_T_GEMV> MOR_DEV void mor_gemv_prefetch(MOR_GEMM_PARAMS) {
  const int NT = MOR_NT, rb = K * (WT ? 2 : 4);
  int lane = threadIdx.x & 31, c = (blockIdx.x * 8 + (threadIdx.x >> 5)) * 2;
  for (int j = 0; j < 2 && c + j < NT; j++) {
    const char *r = (const char *)mor_wrow<WT, K, N0, N1, PAIRED, ROPE>(w0, w1, w2, c + j);
    for (int off = lane * 128; off < rb; off += 32 * 128) MOR_PREFETCH_L2(r + off);
    if (lane == 31) MOR_PREFETCH_L2(r + rb - 1); /* the last line when the row is not 128-byte aligned */
  }
}

/* ---- RoPE and KV caches --------------------------------------------------- */

/* y = rope(x) for H heads of HD per row at pos[m]. grid.x: rows, block 128. */
template <int H, int HD>
MOR_DEV void fam_rope(const float *x, const int *rows, const int *pos, double theta, float *y) {
  __shared__ float cs[HD / 2], sn[HD / 2];
  int m = blockIdx.x;
  if (m >= *rows) return;
  int p = pos[m];
  for (int i = threadIdx.x; i < HD / 2; i += blockDim.x) mor_rope_cs<HD>(p, theta, i, &cs[i], &sn[i]);
  __syncthreads();
  const float *xr = x + (mor_i64)m * H * HD;
  float *yr = y + (mor_i64)m * H * HD;
  for (int e = threadIdx.x; e < H * (HD / 2); e += blockDim.x) {
    int h = e / (HD / 2), i = e % (HD / 2);
    float x1 = xr[h * HD + i], x2 = xr[h * HD + i + HD / 2];
    yr[h * HD + i] = x1 * cs[i] - x2 * sn[i];
    yr[h * HD + i + HD / 2] = x2 * cs[i] + x1 * sn[i];
  }
}

/* Append rows (k, v, pos) to a KV store at its current count, then commit
 * the new count. grid.x: T (blocks past the rows only take their ticket). */
template <int W>
MOR_DEV void fam_kv_append(const float *k, const float *v, const int *rows, const int *pos, float *kk, float *vv,
                           int *kpos, int *kvn, int *ticket, mor_i64 cap) {
  int M = *rows, m = blockIdx.x;
  int n0 = *(volatile int *)kvn;
  mor_i64 e = (mor_i64)n0 + m;
  if (m < M && e < cap) {
    for (int i = threadIdx.x; i < W; i += blockDim.x) {
      kk[e * W + i] = k[(mor_i64)m * W + i];
      vv[e * W + i] = v[(mor_i64)m * W + i];
    }
    if (threadIdx.x == 0) kpos[e] = pos[m];
  }
  mor_commit(ticket, kvn, n0 + M < cap ? n0 + M : (int)cap);
}

/* One step of a warp's flash-style attention: the 32 cache entries from j0
 * (those below `end` at positions <= p), lane's entry scored against qs,
 * the running max mrun and sum l rescaled, and the entries' V rows (KV
 * group g) added into the lane's DPL values of o (value lane + 32 i). */
template <int HD, int W, int DPL>
MOR_DEV void mor_attn_step(const float *qs, const float *kk, const float *vv, const int *kpos, int g, int p, int j0,
                           int end, int lane, float scale, float &mrun, float &l, float *o) {
  int e = j0 + lane;
  bool valid = e < end && kpos[e] <= p;
  float sc = MOR_NEG_INF;
  if (valid) {
    const float *kr = kk + (mor_i64)e * W + g * HD;
    float d = 0.0f;
    for (int i = 0; i < HD; i++) d += qs[i] * kr[i];
    sc = d * scale;
  }
  float mnew = fmaxf(mrun, mor_warp_max(sc));
  if (mnew == MOR_NEG_INF) return; /* warp-uniform */
  float corr = expf(mrun - mnew);
  float pj = valid ? expf(sc - mnew) : 0.0f;
  l = l * corr + mor_warp_sum(pj);
  for (int i = 0; i < DPL; i++) o[i] *= corr;
  int cnt = end - j0 < 32 ? end - j0 : 32;
  for (int j = 0; j < cnt; j++) {
    float pv = __shfl_sync(MOR_FULL, pj, j);
    const float *vr = vv + (mor_i64)(j0 + j) * W + g * HD;
    for (int i = 0; i < DPL; i++) {
      int d = lane + 32 * i;
      if (d < HD) o[i] += pv * vr[d];
    }
  }
  mrun = mnew;
}

/* ---- attention ---------------------------------------------------------------
 * y[m, head h] = softmax(q k^T / sqrt(HD)) v over the entries of the KV store
 * whose position <= pos[m]. Entries are appended in position order, so they
 * are a prefix found by binary search; each is still masked by position.
 * 8 warps: RB query rows x S splits of the entries (flash-style online
 * softmax per warp, splits merged at the end). grid: (ceil(T / RB), H). */
template <int H, int GROUP, int HD, int RB, int S>
MOR_DEV void fam_attention(const float *q, const int *rows, const int *pos, const float *kk, const float *vv,
                           const int *kpos, const int *kvn, float *y, float *part, int *tickets) {
  (void)part;
  (void)tickets;
  const int KVH = H / GROUP, W = KVH * HD, DPL = (HD + 31) / 32;
  __shared__ float qs[8][HD];
  __shared__ float so[8][HD];
  __shared__ float sm[8], sl[8];
  int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  int rr = warp % RB, sp = warp / RB;
  int m = blockIdx.x * RB + rr, h = blockIdx.y, g = h / GROUP;
  int M = *rows;
  bool act = m < M;
  int p = act ? pos[m] : -1;
  int n = *kvn;
  if (act)
    for (int d = lane; d < HD; d += 32) qs[warp][d] = q[(mor_i64)m * H * HD + h * HD + d];
  __syncwarp();
  int lo = 0, hi = act ? n : 0;
  while (lo < hi) {
    int mid = (lo + hi) >> 1;
    if (kpos[mid] <= p) lo = mid + 1;
    else hi = mid;
  }
  int limit = lo;
  const float scale = (float)(1.0 / sqrt((double)HD));
  float mrun = MOR_NEG_INF, l = 0.0f, o[DPL];
  for (int i = 0; i < DPL; i++) o[i] = 0.0f;
  for (int j0 = sp * 32; j0 < limit; j0 += S * 32)
    mor_attn_step<HD, W, DPL>(qs[warp], kk, vv, kpos, g, p, j0, limit, lane, scale, mrun, l, o);
  if (S == 1) {
    if (act)
      for (int i = 0; i < DPL; i++) {
        int d = lane + 32 * i;
        if (d < HD) y[(mor_i64)m * H * HD + h * HD + d] = l > 0.0f ? o[i] / l : 0.0f;
      }
    return;
  }
  if (lane == 0) {
    sm[warp] = mrun;
    sl[warp] = l;
  }
  for (int i = 0; i < DPL; i++) {
    int d = lane + 32 * i;
    if (d < HD) so[warp][d] = o[i];
  }
  __syncthreads();
  if (sp == 0 && act) {
    float mx = MOR_NEG_INF;
    for (int k = 0; k < S; k++) mx = fmaxf(mx, sm[rr + k * RB]);
    float L = 0.0f, f[S];
    for (int k = 0; k < S; k++) {
      f[k] = sm[rr + k * RB] == MOR_NEG_INF ? 0.0f : expf(sm[rr + k * RB] - mx);
      L += sl[rr + k * RB] * f[k];
    }
    for (int d = lane; d < HD; d += 32) {
      float acc = 0.0f;
      for (int k = 0; k < S; k++) acc += so[rr + k * RB][d] * f[k];
      y[(mor_i64)m * H * HD + h * HD + d] = L > 0.0f ? acc / L : 0.0f;
    }
  }
}

/* Attention for decode-sized calls (split-KV, "flash decoding"): block
 * (row m, head h, split z) takes its share of the row's visible entries,
 * 8 warps each an online softmax over 32-entry tiles, merged in the block;
 * the block's (max, sum, o) goes to part, and the last of the NS blocks of
 * (m, h) to finish (a ticket) merges the NS partials into y. Spreads even
 * one token's attention over H * NS blocks. grid: (T, H, NS), 256 threads. */
template <int H, int GROUP, int HD, int NS>
MOR_DEV void fam_attention_dec(const float *q, const int *rows, const int *pos, const float *kk, const float *vv,
                               const int *kpos, const int *kvn, float *y, float *part, int *tickets) {
  const int KVH = H / GROUP, W = KVH * HD, DPL = (HD + 31) / 32, PS = HD + 2;
  __shared__ float qs[HD];
  __shared__ float so[8][HD];
  __shared__ float sm[8], sl[8];
  __shared__ int last;
  int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  int m = blockIdx.x, h = blockIdx.y, z = blockIdx.z, g = h / GROUP;
  if (m >= *rows) return; /* the whole block, and every split of this row alike */
  int p = pos[m], n = *kvn;
  for (int d = tid; d < HD; d += blockDim.x) qs[d] = q[(mor_i64)m * H * HD + h * HD + d];
  int lo = 0, hi = n;
  while (lo < hi) {
    int mid = (lo + hi) >> 1;
    if (kpos[mid] <= p) lo = mid + 1;
    else hi = mid;
  }
  int limit = lo, chunk = (limit + NS - 1) / NS, e0 = z * chunk, e1 = e0 + chunk < limit ? e0 + chunk : limit;
  __syncthreads();
  const float scale = (float)(1.0 / sqrt((double)HD));
  float mrun = MOR_NEG_INF, l = 0.0f, o[DPL];
  for (int i = 0; i < DPL; i++) o[i] = 0.0f;
  for (int j0 = e0 + warp * 32; j0 < e1; j0 += 8 * 32)
    mor_attn_step<HD, W, DPL>(qs, kk, vv, kpos, g, p, j0, e1, lane, scale, mrun, l, o);
  if (lane == 0) {
    sm[warp] = mrun;
    sl[warp] = l;
  }
  for (int i = 0; i < DPL; i++) {
    int d = lane + 32 * i;
    if (d < HD) so[warp][d] = o[i];
  }
  __syncthreads();
  /* merge the 8 warps into this split's partial */
  float *pp = part + ((mor_i64)(m * H + h) * NS + z) * PS;
  float mx = MOR_NEG_INF;
  for (int w = 0; w < 8; w++) mx = fmaxf(mx, sm[w]);
  /* the partial: o[0..HD), then the sum and the max of the scores */
  for (int d = tid; d < HD + 2; d += blockDim.x) {
    if (d == HD + 1) {
      pp[d] = mx;
      continue;
    }
    float acc = 0.0f;
    for (int w = 0; w < 8; w++) {
      float f = sm[w] == MOR_NEG_INF ? 0.0f : expf(sm[w] - mx);
      acc += (d < HD ? so[w][d] : sl[w]) * f;
    }
    pp[d] = acc;
  }
  __threadfence(); /* the partial is visible before this block's ticket */
  __syncthreads();
  if (tid == 0) {
    __threadfence();
    int t = atomicAdd(&tickets[m * H + h], 1);
    last = t == NS - 1;
  }
  __syncthreads();
  if (!last) return;
  __threadfence();
  const volatile float *pv0 = part + (mor_i64)(m * H + h) * NS * PS;
  float gm = MOR_NEG_INF;
  for (int k = 0; k < NS; k++) gm = fmaxf(gm, pv0[k * PS + HD + 1]);
  float L = 0.0f;
  for (int k = 0; k < NS; k++) {
    float mk = pv0[k * PS + HD + 1];
    L += mk == MOR_NEG_INF ? 0.0f : pv0[k * PS + HD] * expf(mk - gm);
  }
  for (int d = tid; d < HD; d += blockDim.x) {
    float acc = 0.0f;
    for (int k = 0; k < NS; k++) {
      float mk = pv0[k * PS + HD + 1];
      if (mk != MOR_NEG_INF) acc += pv0[k * PS + d] * expf(mk - gm);
    }
    y[(mor_i64)m * H * HD + h * HD + d] = L > 0.0f ? acc / L : 0.0f;
  }
  if (tid == 0) tickets[m * H + h] = 0;
}

/* Flash attention on BF16 tensor cores (FlashAttention-2 style) for
 * prefill-sized calls: a block is 4 warps and 64 query rows (16 a warp) of
 * one head; K and V tiles of 64 cache entries are staged in shared memory as
 * bf16 (V transposed); S = Q K^T and O += P V are m16n8k16 products, the
 * online softmax runs in f32 on S's fragments, and P goes from S's
 * accumulator layout straight into the A operand of P V. Query rows are in
 * position order, so the block reads the entries up to its last row's
 * position; each entry is still masked per row. HD % 16 == 0, HD <= 128.
 * grid: (ceil(T / 64), H), 128 threads. */
template <int H, int GROUP, int HD>
MOR_DEV void fam_attention_mma(const float *q, const int *rows, const int *pos, const float *kk, const float *vv,
                               const int *kpos, const int *kvn, float *y, float *part, int *tickets) {
  (void)part;
  (void)tickets;
  const int KVH = H / GROUP, W = KVH * HD, BQ = 64, BKV = 64, KC = HD / 16, NO = HD / 8;
  const int LDK = HD / 2 + 4, LDV = BKV / 2 + 4;
  __shared__ unsigned Ks[BKV * LDK];
  __shared__ unsigned Vt[HD * LDV];
  __shared__ int kp_s[BKV];
  int M = *rows, q0 = blockIdx.x * BQ, h = blockIdx.y, gh = h / GROUP;
  if (q0 >= M) return;
  int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, g = lane >> 2, t = lane & 3;
  int r0 = q0 + warp * 16 + g, r1 = r0 + 8;
  int p0 = r0 < M ? pos[r0] : -1, p1 = r1 < M ? pos[r1] : -1;
  int pmax = pos[q0 + BQ - 1 < M - 1 ? q0 + BQ - 1 : M - 1];
  int lo = 0, hi = *kvn;
  while (lo < hi) {
    int mid = (lo + hi) >> 1;
    if (kpos[mid] <= pmax) lo = mid + 1;
    else hi = mid;
  }
  int limit = lo;
  const float scale = (float)(1.0 / sqrt((double)HD));
  const float *qr0 = q + (mor_i64)r0 * H * HD + h * HD, *qr1 = q + (mor_i64)r1 * H * HD + h * HD;
  unsigned qa[KC][4];
  MOR_UNROLL for (int kc = 0; kc < KC; kc++) {
    int d = 16 * kc + 2 * t;
    qa[kc][0] = r0 < M ? mor_pack2(qr0[d], qr0[d + 1]) : 0u;
    qa[kc][1] = r1 < M ? mor_pack2(qr1[d], qr1[d + 1]) : 0u;
    qa[kc][2] = r0 < M ? mor_pack2(qr0[d + 8], qr0[d + 9]) : 0u;
    qa[kc][3] = r1 < M ? mor_pack2(qr1[d + 8], qr1[d + 9]) : 0u;
  }
  float o[NO][4];
  MOR_UNROLL for (int i = 0; i < NO; i++)
    MOR_UNROLL for (int k = 0; k < 4; k++) o[i][k] = 0.0f;
  float m0 = MOR_NEG_INF, m1 = MOR_NEG_INF, l0 = 0.0f, l1 = 0.0f;
  for (int j0 = 0; j0 < limit; j0 += BKV) {
    __syncthreads(); /* the previous tile has been used */
    for (int e = tid; e < BKV * (HD / 2); e += blockDim.x) {
      int row = e / (HD / 2), wd = e % (HD / 2), ent = j0 + row;
      float a = 0.0f, b = 0.0f;
      if (ent < limit) {
        const float *src = kk + (mor_i64)ent * W + gh * HD + 2 * wd;
        a = src[0];
        b = src[1];
      }
      Ks[row * LDK + wd] = mor_pack2(a, b);
    }
    for (int e = tid; e < HD * (BKV / 2); e += blockDim.x) {
      int d = e % HD, ep = e / HD, ent = j0 + 2 * ep;
      float a = ent < limit ? vv[(mor_i64)ent * W + gh * HD + d] : 0.0f;
      float b = ent + 1 < limit ? vv[(mor_i64)(ent + 1) * W + gh * HD + d] : 0.0f;
      Vt[d * LDV + ep] = mor_pack2(a, b);
    }
    for (int e = tid; e < BKV; e += blockDim.x) kp_s[e] = j0 + e < limit ? kpos[j0 + e] : 0x7fffffff;
    __syncthreads();
    float sf[BKV / 8][4];
    MOR_UNROLL for (int ni = 0; ni < BKV / 8; ni++) {
      MOR_UNROLL for (int k = 0; k < 4; k++) sf[ni][k] = 0.0f;
      MOR_UNROLL for (int kc = 0; kc < KC; kc++) {
        unsigned b[2] = {Ks[(ni * 8 + g) * LDK + kc * 8 + t], Ks[(ni * 8 + g) * LDK + kc * 8 + t + 4]};
        mor_mma_bf16(sf[ni], qa[kc], b);
      }
    }
    float mx0 = MOR_NEG_INF, mx1 = MOR_NEG_INF;
    MOR_UNROLL for (int ni = 0; ni < BKV / 8; ni++)
      MOR_UNROLL for (int k = 0; k < 4; k++) {
        int ent = ni * 8 + 2 * t + (k & 1);
        float v = sf[ni][k] * scale;
        if (kp_s[ent] > (k < 2 ? p0 : p1)) v = MOR_NEG_INF;
        sf[ni][k] = v;
        if (k < 2) mx0 = fmaxf(mx0, v);
        else mx1 = fmaxf(mx1, v);
      }
    mx0 = fmaxf(mx0, __shfl_xor_sync(MOR_FULL, mx0, 1));
    mx0 = fmaxf(mx0, __shfl_xor_sync(MOR_FULL, mx0, 2));
    mx1 = fmaxf(mx1, __shfl_xor_sync(MOR_FULL, mx1, 1));
    mx1 = fmaxf(mx1, __shfl_xor_sync(MOR_FULL, mx1, 2));
    float mn0 = fmaxf(m0, mx0), mn1 = fmaxf(m1, mx1);
    float b0 = mn0 == MOR_NEG_INF ? 0.0f : mn0, b1 = mn1 == MOR_NEG_INF ? 0.0f : mn1;
    float c0 = expf(m0 - b0), c1 = expf(m1 - b1), rs0 = 0.0f, rs1 = 0.0f;
    MOR_UNROLL for (int ni = 0; ni < BKV / 8; ni++) {
      sf[ni][0] = expf(sf[ni][0] - b0);
      sf[ni][1] = expf(sf[ni][1] - b0);
      sf[ni][2] = expf(sf[ni][2] - b1);
      sf[ni][3] = expf(sf[ni][3] - b1);
      rs0 += sf[ni][0] + sf[ni][1];
      rs1 += sf[ni][2] + sf[ni][3];
    }
    rs0 += __shfl_xor_sync(MOR_FULL, rs0, 1);
    rs0 += __shfl_xor_sync(MOR_FULL, rs0, 2);
    rs1 += __shfl_xor_sync(MOR_FULL, rs1, 1);
    rs1 += __shfl_xor_sync(MOR_FULL, rs1, 2);
    l0 = l0 * c0 + rs0;
    l1 = l1 * c1 + rs1;
    m0 = mn0;
    m1 = mn1;
    MOR_UNROLL for (int nd = 0; nd < NO; nd++) {
      o[nd][0] *= c0;
      o[nd][1] *= c0;
      o[nd][2] *= c1;
      o[nd][3] *= c1;
    }
    MOR_UNROLL for (int kc = 0; kc < BKV / 16; kc++) {
      unsigned pa[4] = {mor_pack2(sf[2 * kc][0], sf[2 * kc][1]), mor_pack2(sf[2 * kc][2], sf[2 * kc][3]),
                        mor_pack2(sf[2 * kc + 1][0], sf[2 * kc + 1][1]), mor_pack2(sf[2 * kc + 1][2], sf[2 * kc + 1][3])};
      MOR_UNROLL for (int nd = 0; nd < NO; nd++) {
        unsigned b[2] = {Vt[(nd * 8 + g) * LDV + kc * 8 + t], Vt[(nd * 8 + g) * LDV + kc * 8 + t + 4]};
        mor_mma_bf16(o[nd], pa, b);
      }
    }
  }
  MOR_UNROLL for (int nd = 0; nd < NO; nd++) {
    int d = nd * 8 + 2 * t;
    if (r0 < M) {
      float *yr = y + (mor_i64)r0 * H * HD + h * HD + d;
      yr[0] = l0 > 0.0f ? o[nd][0] / l0 : 0.0f;
      yr[1] = l0 > 0.0f ? o[nd][1] / l0 : 0.0f;
    }
    if (r1 < M) {
      float *yr = y + (mor_i64)r1 * H * HD + h * HD + d;
      yr[0] = l1 > 0.0f ? o[nd][2] / l1 : 0.0f;
      yr[1] = l1 > 0.0f ? o[nd][3] / l1 : 0.0f;
    }
  }
}

/* ---- element-wise and row kernels ----------------------------------------- */

/* y = silu(g) * u over rows of F. grid: (T, ceil(F / 1024)), block 256. */
MOR_DEV void fam_silu_mul(const float *g, const float *u, const int *rows, mor_i64 F, float *y) {
  int m = blockIdx.x;
  if (m >= *rows) return;
  for (mor_i64 i = (mor_i64)blockIdx.y * 1024 + threadIdx.x; i < F && i < (mor_i64)(blockIdx.y + 1) * 1024;
       i += blockDim.x)
    y[(mor_i64)m * F + i] = mor_silu_mul(g[(mor_i64)m * F + i], u[(mor_i64)m * F + i]);
}

/* y = a + b over rows of L elements of type E (0 f32, 1 i32, 2 i64). grid (T, ceil(L/1024)). */
template <int E>
MOR_DEV void fam_add(const void *a, const void *b, const int *rows, mor_i64 L, void *y) {
  int m = blockIdx.x;
  if (m >= *rows) return;
  for (mor_i64 i = (mor_i64)blockIdx.y * 1024 + threadIdx.x; i < L && i < (mor_i64)(blockIdx.y + 1) * 1024;
       i += blockDim.x) {
    mor_i64 j = (mor_i64)m * L + i;
    if (E == 0) ((float *)y)[j] = ((const float *)a)[j] + ((const float *)b)[j];
    else if (E == 1) ((int *)y)[j] = (int)((unsigned)((const int *)a)[j] + (unsigned)((const int *)b)[j]);
    else
      ((mor_i64 *)y)[j] =
          (mor_i64)((unsigned long long)((const mor_i64 *)a)[j] + (unsigned long long)((const mor_i64 *)b)[j]);
  }
}

/* y[i] = x[idx ? idx[i] : i] for rows of L 4-byte words (copy when idx is null).
 * grid (T, ceil(L/1024)). */
MOR_DEV void fam_gather(const unsigned *x, const int *idx, const int *rows, mor_i64 L, unsigned *y) {
  int m = blockIdx.x;
  if (m >= *rows) return;
  mor_i64 src = idx ? idx[m] : m;
  for (mor_i64 i = (mor_i64)blockIdx.y * 1024 + threadIdx.x; i < L && i < (mor_i64)(blockIdx.y + 1) * 1024;
       i += blockDim.x)
    y[(mor_i64)m * L + i] = x[src * L + i];
}

/* out[idx[i]] = yv[i] for rows of L words. grid (T, ceil(L/1024)). */
MOR_DEV void fam_scatter(const int *idx, const int *rows, const unsigned *yv, mor_i64 L, unsigned *out) {
  int m = blockIdx.x;
  if (m >= *rows) return;
  mor_i64 t = idx[m];
  for (mor_i64 i = (mor_i64)blockIdx.y * 1024 + threadIdx.x; i < L && i < (mor_i64)(blockIdx.y + 1) * 1024;
       i += blockDim.x)
    out[t * L + i] = yv[(mor_i64)m * L + i];
}

/* out[t] = base[t] + g * y[i], t = idx[i], g = alpha * s[t] (WEIGHTED) or 1.
 * grid (T, ceil(D/1024)). */
template <int WEIGHTED>
MOR_DEV void fam_gate_add(const float *base, const float *yv, const float *s, const int *idx, const int *rows,
                          mor_i64 D, double alpha, float *out) {
  int m = blockIdx.x;
  if (m >= *rows) return;
  mor_i64 t = idx[m];
  float gsc = WEIGHTED ? (float)alpha * s[t] : 1.0f;
  for (mor_i64 i = (mor_i64)blockIdx.y * 1024 + threadIdx.x; i < D && i < (mor_i64)(blockIdx.y + 1) * 1024;
       i += blockDim.x) {
    if (WEIGHTED) out[t * D + i] = base[t * D + i] + gsc * yv[(mor_i64)m * D + i];
    else out[t * D + i] = base[t * D + i] + yv[(mor_i64)m * D + i];
  }
}

/* out[idx[i]] += 1. grid ceil(T/256), block 256. */
MOR_DEV void fam_count_add(const int *idx, const int *rows, int *out) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < *rows) atomicAdd(&out[idx[i]], 1);
}

/* y[t] = t (I 1) or the value (I 0: f32, 2: i32). grid ceil(T/256). */
template <int I>
MOR_DEV void fam_fill(const int *rows, double value, void *y) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= *rows) return;
  if (I == 1) ((int *)y)[i] = i;
  else if (I == 2) ((int *)y)[i] = (int)value;
  else ((float *)y)[i] = (float)value;
}

/* token choice: d = argmax alpha*p (ties to the lower index; a NaN best is
 * replaced by a number), w = alpha*p[d]. grid ceil(T/256). */
template <int R>
MOR_DEV void fam_tc_route(const float *p, const int *rows, double alpha, int *d, float *w) {
  int t = blockIdx.x * blockDim.x + threadIdx.x;
  if (t >= *rows) return;
  float af = (float)alpha;
  const float *pr = p + (mor_i64)t * R;
  int best = 0;
  float bv = af * pr[0];
  for (int k = 1; k < R; k++) {
    float v = af * pr[k];
    if (v > bv || (bv != bv && v == v)) best = k, bv = v;
  }
  d[t] = best;
  w[t] = bv;
}

/* One step of a stable block-wide compaction: threads with f set write val
 * at out[*base + rank]; *base advances by the count. sh: 33 ints. */
MOR_DEV void mor_compact_step(bool f, int val, int *out, int *base, int *sh) {
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
  unsigned bal = __ballot_sync(MOR_FULL, f);
  if (lane == 0) sh[warp] = __popc(bal);
  __syncthreads();
  if (threadIdx.x == 0) {
    int acc = 0;
    for (int i = 0; i < nw; i++) {
      int c = sh[i];
      sh[i] = acc;
      acc += c;
    }
    sh[32] = acc;
  }
  __syncthreads();
  if (f) out[*base + sh[warp] + __popc(bal & ((1u << lane) - 1u))] = val;
  int tot = sh[32];
  __syncthreads();
  *base += tot;
}

/* rows t with d[t] >= depth (GE) or == depth, ascending. One block of 256. */
template <int GE>
MOR_DEV void fam_where(const int *d, const int *rows, mor_i64 depth, int *out, int *out_rows) {
  __shared__ int sh[33];
  int T = *rows, base = 0;
  for (int c0 = 0; c0 < T; c0 += blockDim.x) {
    int t = c0 + threadIdx.x;
    bool f = t < T && (GE ? d[t] >= depth : d[t] == depth);
    mor_compact_step(f, t, out, &base, sh);
  }
  if (threadIdx.x == 0) *out_rows = base;
}

/* expert-choice select (model-format.md section 4), one block of 256:
 * TOPK 0 threshold: active rows with capacity >= 1 or s >= threshold;
 * TOPK 1: the k = max(1, floor(capacity * T)) (at most A) highest alpha*s
 * of the active rows, ties to the lower row. Output ascending. */
template <int TOPK>
MOR_DEV void fam_select(const float *s, const int *s_rows, const int *active, const int *act_rows, double cap,
                        double thr, double alpha, int *out, int *out_rows) {
  __shared__ int sh[33];
  int A = *act_rows, T = *s_rows, base = 0;
  mor_i64 k = 0;
  if (TOPK) {
    k = (mor_i64)floor(cap * (double)T);
    if (k < 1) k = 1;
    if (k > A) k = A;
  }
  float af = (float)alpha;
  for (int c0 = 0; c0 < A; c0 += blockDim.x) {
    int i = c0 + threadIdx.x;
    bool f = false;
    int row = i < A ? active[i] : 0;
    if (i < A) {
      if (!TOPK) {
        f = cap >= 1.0 || (double)s[row] >= thr;
      } else {
        float key = af * s[row];
        if (key != key) key = MOR_NEG_INF;
        mor_i64 rank = 0;
        for (int j = 0; j < A; j++) {
          int rj = active[j];
          float kj = af * s[rj];
          if (kj != kj) kj = MOR_NEG_INF;
          rank += kj > key || (kj == key && rj < row);
        }
        f = rank < k;
      }
    }
    mor_compact_step(f, row, out, &base, sh);
  }
  if (threadIdx.x == 0) *out_rows = base;
}

/* Router dots, one block (256) per row, double accumulation as the
 * reference: z[o] = (float)sum_k (x[k] / temperature) W[o, k] (DIV) or
 * x[k] W[o, k]; then ACT: 1 gelu (erf), 2 sigmoid, 3 tanh, 4 softmax over
 * the OUT outputs. y is [rows, OUT]. grid.x: T. */
template <int D, int OUT, int ACT, int DIV>
MOR_DEV void fam_rowdot(const float *x, const int *rows, const float *W, double temp, float *y) {
  __shared__ float z[ACT == 4 ? OUT : 1]; /* softmax only */
  int m = blockIdx.x;
  if (m >= *rows) return;
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  float tf = (float)temp;
  const float *xr = x + (mor_i64)m * D;
  for (int o = warp; o < OUT; o += nw) {
    double acc = 0;
    for (int k = lane; k < D; k += 32) {
      float xs = DIV ? xr[k] / tf : xr[k];
      acc += (double)xs * W[(mor_i64)o * D + k];
    }
    acc = mor_warp_sumd(acc);
    float zf = (float)acc;
    if (lane == 0) {
      double a = zf;
      if (ACT == 4) z[o] = zf;
      else if (ACT == 1) y[(mor_i64)m * OUT + o] = (float)(0.5 * a * (1.0 + erf(a / sqrt(2.0))));
      else if (ACT == 2) y[(mor_i64)m * OUT + o] = (float)(1.0 / (1.0 + exp(-a)));
      else if (ACT == 3) y[(mor_i64)m * OUT + o] = (float)tanh(a);
      else y[(mor_i64)m * OUT + o] = zf;
    }
  }
  if (ACT == 4) {
    __syncthreads();
    if (threadIdx.x == 0) {
      double mx = (double)MOR_NEG_INF, sum = 0;
      for (int o = 0; o < OUT; o++)
        if ((double)z[o] > mx) mx = z[o];
      for (int o = 0; o < OUT; o++) sum += exp((double)z[o] - mx);
      for (int o = 0; o < OUT; o++) y[(mor_i64)m * OUT + o] = (float)(exp((double)z[o] - mx) / sum);
    }
  }
}
