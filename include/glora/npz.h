/*
 * glora/npz.h - reading NumPy .npz archives (and the .npy arrays in them).
 *
 * A .npz file (numpy.savez / savez_compressed) is a zip archive with one
 * .npy file per array; the array's key is the entry's name without ".npy".
 * Google's original ViT checkpoints (ViT-B_16.npz, ...) are such files.
 *
 * What glora_npz_open accepts (anything else is an error naming the file and,
 * where there is one, the entry):
 *   - a zip archive on one disk: the end-of-central-directory record in the
 *     last 65,557 bytes, its comment reaching exactly the end of the file;
 *     zip64 end records and zip64 extra fields (numpy writes them with
 *     force_zip64) are read; every offset and size is checked against the
 *     file size before anything is read or allocated from it;
 *   - entries stored (method 0) or deflated (method 8), not encrypted, each
 *     with a local header whose signature, name and method agree with the
 *     central directory, named "<key>.npy", no key twice;
 *   - .npy format 1.0, 2.0 or 3.0 with a header dict of exactly 'descr',
 *     'fortran_order' and 'shape'; descr one of <f2 <f4 <f8 >f2 >f4 >f8
 *     (| and = are read as the byte order of a little-endian host);
 *     fortran_order False; at most GLORA_NPZ_MAX_NDIM dimensions; and
 *     header + numel * itemsize equal to the entry's uncompressed size.
 * The CRC-32 of each entry is checked when its data is read.
 *
 * Memory: the central directory is read into memory (at most its size,
 * bounded by the file size); array data is read with pread in 1 MiB pieces
 * and converted to float32 straight into the caller's buffer, so reading an
 * array costs no copy of it beyond the destination. Deflated entries are
 * inflated in the same pieces.
 */
#ifndef GLORA_NPZ_H
#define GLORA_NPZ_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define GLORA_NPZ_MAX_NDIM 8

/* One array of an open archive. Valid until glora_npz_close. */
typedef struct {
    const char *name;   /* the key: the entry's name without ".npy" */
    char descr[4];      /* "<f4", ">f8", ...; '|' and '=' normalised to '<' */
    int itemsize;       /* 2, 4 or 8 */
    int ndim;
    int64_t shape[GLORA_NPZ_MAX_NDIM];
    size_t numel;       /* product of the shape (1 for a scalar) */
} glora_npz_array_t;

typedef struct glora_npz glora_npz_t;

/* Opens an archive and reads the central directory and every array's .npy
 * header. On failure *out is NULL and the message names the file (and the
 * entry). */
int glora_npz_open(glora_npz_t **out, const char *path);
void glora_npz_close(glora_npz_t *z); /* NULL-safe */

const char *glora_npz_path(const glora_npz_t *z);
size_t glora_npz_count(const glora_npz_t *z);
/* The i-th array in central-directory order. */
const glora_npz_array_t *glora_npz_array(const glora_npz_t *z, size_t i);
/* The array called name (without ".npy"), or NULL; no message is set. */
const glora_npz_array_t *glora_npz_find(const glora_npz_t *z, const char *name);

/* Reads array a as float32 into dst (n floats; n must equal a->numel), in
 * C order. Float16 and float64 are converted (float64 rounded to nearest).
 * Checks the entry's CRC-32. */
int glora_npz_read_f32(const glora_npz_t *z, const glora_npz_array_t *a, float *dst, size_t n);

/* True when the file at path starts with a zip local-file signature (what
 * an .npz starts with); 0 otherwise or when it cannot be read. */
int glora_npz_sniff(const char *path);

#ifdef __cplusplus
}
#endif
#endif
