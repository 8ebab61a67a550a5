/* npy.h: NumPy .npy files (format version 1.0) for dumping activations and
 * token ids from compiled models, and reading float32 arrays back in tests and
 * tools. Writes go to a temporary file that is renamed into place, so a reader
 * never sees a half-written file. */
#ifndef MORRT_NPY_H
#define MORRT_NPY_H
#include <stddef.h>
#include <stdint.h>

#define MORRT_NPY_MAX_DIMS 8

typedef enum morrt_npy_dtype {
  MORRT_NPY_F32, /* '<f4' */
  MORRT_NPY_I32, /* '<i4' */
  MORRT_NPY_I64, /* '<i8' */
} morrt_npy_dtype;

/* Write an array of ndim (0..MORRT_NPY_MAX_DIMS) dimensions in C order. The
 * header is exactly what the .npy 1.0 spec asks for:
 *   "\x93NUMPY" 0x01 0x00 <uint16 LE header length>
 *   "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }" + spaces + "\n"
 * padded so the data starts at a multiple of 64 bytes. ('>' instead of '<'
 * on a big-endian host.) Returns 0, or -1 with a message in err. */
int morrt_npy_write(const char *path, morrt_npy_dtype dtype, const void *data, int ndim, const int64_t *shape,
                    char *err, size_t errlen);
/* Shorthands: a rows x cols float32 matrix; a 1-D int32 / int64 vector. */
int morrt_npy_write_f32(const char *path, const float *data, int64_t rows, int64_t cols, char *err, size_t errlen);
int morrt_npy_write_i32(const char *path, const int32_t *data, int64_t n, char *err, size_t errlen);
int morrt_npy_write_i64(const char *path, const int64_t *data, int64_t n, char *err, size_t errlen);

/* Read a float32 array ('<f4' or '>f4', C order; format 1.0, 2.0 or 3.0).
 * Returns a malloc'd buffer of the elements (free() it; never NULL on success
 * even for zero elements) and fills *ndim and shape[0..*ndim). On error
 * returns NULL with "path: message" in err. */
float *morrt_npy_read_f32(const char *path, int *ndim, int64_t shape[MORRT_NPY_MAX_DIMS], char *err, size_t errlen);

#endif
