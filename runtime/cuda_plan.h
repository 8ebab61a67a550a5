/* cuda_plan.h: the launch plan of a CUDA build, the contract between morc's
 * CUDA backend (backend/cuda, which writes it) and the CUDA runtime
 * (runtime/cuda_rt.c, which reads and runs it). A forward call is a flat
 * list of kernel launches; every pointer a kernel takes is described by a
 * (kind, value) pair that the runtime turns into a device address once, when
 * the buffers exist. Row counts that routing makes data dependent live in
 * device memory ("count slots"), so no launch waits for the host.
 *
 * Serialized form (little-endian, see morcu_plan_read): the magic
 * "MORCUPL1", then the fields of morcu_plan in declaration order; strings
 * are u32 length + bytes, blobs u64 length + bytes. A built executable is
 * the runner program, then the serialized plan, then the device-format
 * weights (4096-aligned), then a 32-byte trailer: "MORCUDA1", u64 offset
 * of the plan, u64 its length, u64 offset of the weights (offsets from the
 * start of the file). */
#ifndef MORCU_PLAN_H
#define MORCU_PLAN_H
#include <stddef.h>
#include <stdint.h>

#define MORCU_PLAN_MAGIC "MORCUPL1"
#define MORCU_TRAILER_MAGIC "MORCUDA1"
#define MORCU_TRAILER_SIZE 32

/* What a kernel parameter points at (every parameter is 8 bytes). */
typedef enum morcu_pkind {
  MORCU_P_NULL,   /* a null pointer */
  MORCU_P_IO,     /* io buffer + v bytes (token ids, positions, count slot 0) */
  MORCU_P_ARENA,  /* arena + v bytes */
  MORCU_P_WEIGHT, /* weight buffer + v bytes */
  MORCU_P_KVK,    /* K rows of KV store v (of the sequence) */
  MORCU_P_KVV,    /* V rows of KV store v */
  MORCU_P_KVPOS,  /* positions of KV store v */
  MORCU_P_KVN,    /* the entry count (int32) of KV store v */
  MORCU_P_CNT,    /* count slot v (int32 rows of a tensor) */
  MORCU_P_TICKET, /* ticket counter v (int32, kernels that commit once) */
  MORCU_P_I64,    /* the integer v */
  MORCU_P_F64,    /* the double whose bits are v */
  MORCU_P_KINDS
} morcu_pkind;

typedef struct morcu_param {
  uint32_t kind;
  uint64_t v;
} morcu_param;

/* A grid dimension is c + ceil(T / d) (d > 0) or c (d == 0), T being the
 * tokens of the forward call: every row count is at most T. */
typedef struct morcu_launch {
  int32_t kernel;      /* index into kernel_names, -1: none */
  int32_t grid_c[3], grid_d[3];
  int32_t block[3];
  int32_t smem;        /* dynamic shared memory bytes */
} morcu_launch;

/* A step runs the first of its variants (kernel >= 0) whose max_t >= T:
 * GEMMs and attention have kernels for decode-sized, medium and large calls. */
#define MORCU_VARIANTS 3
typedef struct morcu_step {
  morcu_launch var[MORCU_VARIANTS];
  int32_t max_t[MORCU_VARIANTS];
  int32_t first_param, n_params; /* into params */
  int32_t label;       /* index into labels: which IR op this step runs */
} morcu_step;

typedef struct morcu_weight {
  char *name;          /* the weight's name in the model (shown in messages) */
  uint32_t dtype;      /* device format: 0 f32, 2 bf16 (MORRT dtype codes) */
  uint64_t offset;     /* bytes into the weight buffer (256-aligned) */
  uint64_t bytes;
} morcu_weight;

typedef struct morcu_kv {
  char *name;          /* the IR global */
  int64_t capacity;    /* entries */
  int64_t width;       /* floats per K (and V) row: kv_heads * head_dim */
  int64_t layer, depth;
} morcu_kv;

typedef struct morcu_plan {
  /* the model */
  char *name;          /* shown in messages; sanitized by the writer */
  char *arch;          /* "sm_90" */
  int64_t vocab, hidden, max_pos, max_tokens, n_r, routing, whole_sequence;
  /* device memory */
  int64_t io_bytes, io_tokens, io_pos; /* io buffer size; offsets of tokens and positions */
  int64_t arena_bytes;
  int64_t weights_bytes;
  int64_t n_cnt;       /* count slots; slot 0 is T (in the io buffer at offset 0) */
  int64_t n_tickets;
  int64_t n_cnt_init;  /* constant slots: (slot, value) pairs set once */
  int64_t *cnt_init;   /* 2 * n_cnt_init */
  /* outputs of forward: logits f32 [T, vocab] and depths i32 [T] (arena offsets) */
  int64_t logits_off, depths_off;
  int64_t n_weights;
  morcu_weight *weights;
  int64_t n_kv;
  morcu_kv *kv;
  int64_t n_kernels;
  char **kernel_names;
  int64_t n_labels;
  char **labels;
  int64_t n_steps;
  morcu_step *steps;
  int64_t n_params;
  morcu_param *params;
  /* code */
  char *ptx;           /* NUL-terminated */
  uint64_t cubin_size;
  unsigned char *cubin; /* for arch; may be empty */
  char *tokenizer_json; /* NULL: none */
  uint64_t tokenizer_size;
} morcu_plan;

/* Parse a serialized plan (data must stay valid only during the call: the
 * plan owns copies). NULL + message in err when it is malformed. */
morcu_plan *morcu_plan_read(const void *data, size_t len, char *err, size_t errlen);
void morcu_plan_free(morcu_plan *p);

#endif
