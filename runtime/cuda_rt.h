/* cuda_rt.h: the CUDA runtime of executables built with `morc build
 * --target cuda`: it loads the driver (cuda_shim.h), the kernels (the cubin
 * when it matches the GPU, else the PTX through the driver's JIT), uploads
 * the weights once, and runs forward calls by walking the launch plan
 * (cuda_plan.h) on one stream; a one-token call is captured once into a
 * CUDA graph and replayed. The KV stores belong to a sequence.
 *
 *   morrt_cuda *c; char err[512];
 *   if (morrt_cuda_open(plan, weights, 0, MORRT_CUDA_GRAPHS, &c, err, sizeof err)) ... // MORRT_CUDA_NO_GPU: no driver/GPU
 *   morrt_cuda_seq *s = morrt_cuda_seq_new(c, err, sizeof err);
 *   morrt_cuda_forward(c, s, prompt, n, logits, 0, depths, err, sizeof err);  // prefill
 *   morrt_cuda_forward(c, s, &next, 1, logits, 0, NULL, err, sizeof err);     // decode
 *   morrt_cuda_seq_free(s); morrt_cuda_close(c);
 *
 * One forward call at a time per morrt_cuda (they share the arena). */
#ifndef MORRT_CUDA_RT_H
#define MORRT_CUDA_RT_H
#include <stdint.h>
#include <stdio.h>
#include "runtime/cuda_plan.h"

#define MORRT_CUDA_OK 0
#define MORRT_CUDA_NO_GPU 1 /* no driver library, no device, or cuInit failed */
#define MORRT_CUDA_ERROR 2  /* anything else (message in err) */

typedef struct morrt_cuda morrt_cuda;
typedef struct morrt_cuda_seq morrt_cuda_seq;

/* flags of morrt_cuda_open */
#define MORRT_CUDA_GRAPHS 1     /* capture the one-token call into a CUDA graph */
#define MORRT_CUDA_SYNC_STEPS 2 /* wait after every launch, so an error names the step and kernel that
                                   caused it (debugging; no graph) */
#define MORRT_CUDA_PDL 4        /* programmatic dependent launch: each kernel is launched while the one
                                   before it runs and waits for it on the GPU (sm_90 builds on sm_90+
                                   GPUs; morrt_cuda_dev.pdl says whether it is on) */

/* plan and weights (plan->weights_bytes bytes) must outlive the call only. */
int morrt_cuda_open(const morcu_plan *plan, const void *weights, int device, int flags, morrt_cuda **out, char *err,
                    size_t errlen);
void morrt_cuda_close(morrt_cuda *c);

morrt_cuda_seq *morrt_cuda_seq_new(morrt_cuda *c, char *err, size_t errlen);
void morrt_cuda_seq_free(morrt_cuda_seq *s);
int64_t morrt_cuda_seq_len(const morrt_cuda_seq *s);

/* One forward call of T tokens at positions len..len+T-1. logits: [T, V]
 * floats, or only the last row's V when last_only (NULL: none); depths: [T]
 * (NULL: none). Returns 0; MORRT_CUDA_NO_GPU (1) with err for bad input:
 * ids out of range, positions past the context, more tokens than a call
 * takes, top_k routing after cached positions; MORRT_CUDA_ERROR (2) for a
 * CUDA error. */
int morrt_cuda_forward(morrt_cuda *c, morrt_cuda_seq *s, const int32_t *tokens, int64_t T, float *logits,
                       int last_only, int32_t *depths, char *err, size_t errlen);

/* Debugging: after every step of every later forward call (waiting for
 * it, no graph), append the device state to f: the arena, the control
 * block, the KV counts and the used rows of every KV store of the
 * sequence, with the step's number, label and kernel. tests/cuda/stepcmp.c
 * compares two such dumps (a GPU's and the CPU emulation's) and names the
 * first step that differs. Format (little-endian):
 *   record  = "MORSTEP1" i64 call, i64 step, i64 T, char[160] "label | kernel", i64 nsec, nsec x section
 *   section = i64 tag (0 arena, 1 control, 2 KV counts, 3+3i K of store i, 4+3i V, 5+3i positions),
 *             i64 bytes, bytes
 * f == NULL turns it off. */
void morrt_cuda_set_dump(morrt_cuda *c, FILE *f);

/* Facts about the device. */
typedef struct morrt_cuda_dev {
  char name[128];
  int cc_major, cc_minor, sms;
  double mem_gbps;      /* peak DRAM bandwidth from the memory clock and bus width */
  int loaded_cubin;     /* 1: the embedded cubin, 0: the PTX (JIT) */
  int driver_version;
  int pdl;              /* 1: kernels are launched with programmatic dependent launch */
  int64_t device_bytes; /* weights + arena + io + control allocated at open */
} morrt_cuda_dev;
void morrt_cuda_device(const morrt_cuda *c, morrt_cuda_dev *d);

/* Device memory bandwidth measured by copying `bytes` between two device
 * buffers `reps` times (read + write counted): GB/s, or -1 with err. */
double morrt_cuda_copy_gbps(morrt_cuda *c, size_t bytes, int reps, char *err, size_t errlen);

/* KV entries of store i of a sequence (copied back from the device; -1 on error). */
int64_t morrt_cuda_seq_kv_len(morrt_cuda *c, morrt_cuda_seq *s, int64_t i);

#endif
