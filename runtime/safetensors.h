/* safetensors.h: the runtime's safetensors reader and writer (libc only):
 * mmap a file (or a sharded model.safetensors.index.json, or bytes already
 * in memory such as weights embedded in an executable), check every header
 * entry, and find tensors by name. The writer makes the single file that
 * `morc build` puts beside (or inside) a compiled model. */
#ifndef MORRT_SAFETENSORS_H
#define MORRT_SAFETENSORS_H
#include <stddef.h>
#include <stdint.h>

/* dtype codes: MORRT_F32/F16/BF16 of morrt_abi.h; other dtypes are -1 */
typedef struct morrt_st_tensor {
  const char *name;
  int dtype;
  const char *dtype_name; /* as written in the file: "F32", "I64", ... */
  int rank;
  int64_t shape[8];
  const void *data;
  uint64_t nbytes;
} morrt_st_tensor;

typedef struct morrt_st morrt_st;

/* path: a .safetensors file or a model.safetensors.index.json. Errors name
 * the file: "w.safetensors: tensor 'a.b': data_offsets ... past the end". */
morrt_st *morrt_st_open(const char *path, char *err, size_t errlen);
/* Bytes already in memory (not copied; they must outlive the result). */
morrt_st *morrt_st_from_memory(const void *data, size_t len, const char *name, char *err, size_t errlen);
void morrt_st_free(morrt_st *st);
int morrt_st_count(const morrt_st *st);
const morrt_st_tensor *morrt_st_at(const morrt_st *st, int i);
const morrt_st_tensor *morrt_st_find(const morrt_st *st, const char *name);
const char *morrt_st_path(const morrt_st *st);

/* Write the tensors (their data as given) into one safetensors file, each
 * tensor's data 64-byte aligned in the file; metadata pairs may be NULL.
 * Written to a temporary file and renamed. Returns 0 or -1 with err. */
int morrt_st_write(const char *path, int n, const morrt_st_tensor *t, int n_meta, const char *const *meta_kv, char *err,
                   size_t errlen);

const char *morrt_dtype_str(int dtype); /* "F32", "F16", "BF16", "?" */
int morrt_dtype_bytes(int dtype);       /* 4, 2, 2, 0 */

#endif
