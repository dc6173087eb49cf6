/*
 * glora/safetensors.h - reading and writing safetensors files.
 *
 * glora keeps every tensor file (pretrained backbones, supernets, adapters,
 * merged models) in the safetensors format of Hugging Face, so the files load
 * in PyTorch with safetensors.torch.load_file and PyTorch's files load here.
 *
 * File layout, byte by byte (all integers little-endian):
 *
 *   offset 0       u64 N          length of the JSON header in bytes
 *   offset 8       N bytes        JSON header, UTF-8, one object; writers pad
 *                                 it with trailing spaces (0x20) so that
 *                                 8 + N is a multiple of 8
 *   offset 8 + N   data buffer    the tensors' bytes, to the end of the file
 *
 * The header maps each tensor name to its description, plus one optional
 * string-to-string map under the reserved key "__metadata__":
 *
 *   {"__metadata__": {"glora.kind": "backbone", ...},
 *    "blocks.0.attn.qkv.weight": {"dtype": "F32", "shape": [384, 128],
 *                                 "data_offsets": [0, 196608]},
 *    ...}
 *
 *   dtype         one of BOOL U8 I8 F8_E5M2 F8_E4M3 I16 U16 F16 BF16 I32 U32
 *                 F32 F64 I64 U64 (element sizes 1 1 1 1 1 2 2 2 2 4 4 4 8 8 8)
 *   shape         list of dimensions, row-major (C order); [] is a scalar
 *   data_offsets  [begin, end) of the tensor's bytes, relative to the start of
 *                 the data buffer (not of the file); elements little-endian
 *
 * What glora_st_open accepts (anything else is an error naming the file and,
 * where there is one, the tensor):
 *   - 8 <= file size; N <= file size - 8 and N <= 100,000,000 (the limit of
 *     the reference implementation);
 *   - the header is one JSON object with nothing but whitespace after it and
 *     no NUL byte in it;
 *   - each entry other than __metadata__ is an object with a known dtype, a
 *     shape of at most GLORA_ST_MAX_NDIM non-negative integers whose product
 *     (times the element size) does not overflow, and data_offsets of two
 *     integers with begin <= end <= size of the data buffer and
 *     end - begin = numel * element size;
 *   - the tensors, sorted by offset, are contiguous and cover the data buffer
 *     exactly: no gap, no overlap, nothing left over;
 *   - no name appears twice (JSON allows it; cJSON keeps both; we refuse);
 *   - __metadata__, when present, is an object of strings (or null).
 * JSON numbers are read as doubles: a dimension or offset must be an exact
 * integer no larger than 2^53.
 *
 * The order of tensors in the file is free: safetensors.torch.save_file sorts
 * them by dtype alignment, then by name; glora_st_write keeps the caller's
 * order. Readers look tensors up by name.
 *
 * A hostile file can neither crash the reader nor make it allocate from a
 * size field: the header is copied only after N was checked against the file
 * size, and the JSON is parsed only if a pre-scan shows that its parse tree
 * stays within a budget proportional to the file size (plus 16 MiB).  Tensor
 * data is memory-mapped, not copied.  (If another process truncates the file
 * while it is mapped, reading the lost pages raises SIGBUS: do not do that.)
 */
#ifndef GLORA_SAFETENSORS_H
#define GLORA_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define GLORA_ST_MAX_NDIM 8
#define GLORA_ST_MAX_HEADER 100000000u

typedef enum {
    GLORA_ST_BOOL,
    GLORA_ST_U8,
    GLORA_ST_I8,
    GLORA_ST_F8_E5M2,
    GLORA_ST_F8_E4M3,
    GLORA_ST_I16,
    GLORA_ST_U16,
    GLORA_ST_F16,
    GLORA_ST_BF16,
    GLORA_ST_I32,
    GLORA_ST_U32,
    GLORA_ST_F32,
    GLORA_ST_F64,
    GLORA_ST_I64,
    GLORA_ST_U64,
    GLORA_ST_NDTYPES
} glora_st_dtype_t;

/* "F32", "BF16", ... for a dtype; "?" for a value out of range. */
const char *glora_st_dtype_name(glora_st_dtype_t dtype);
/* Bytes per element (0 for a value out of range). */
size_t glora_st_dtype_size(glora_st_dtype_t dtype);

/* One tensor of an open file. Valid until glora_st_close. */
typedef struct {
    const char *name;
    glora_st_dtype_t dtype;
    int ndim;
    int64_t shape[GLORA_ST_MAX_NDIM];
    size_t numel;          /* product of the shape (1 for a scalar) */
    size_t nbytes;         /* numel * dtype size */
    size_t offset;         /* begin of its bytes in the data buffer */
    const void *data;      /* its bytes, little-endian, in the mapping; aligned
                              to 8 only if the writer padded the header (glora
                              and the Python library do): read through
                              glora_st_read_f32 or memcpy */
} glora_st_tensor_t;

typedef struct glora_st glora_st_t;

/* Opens and validates a safetensors file; the data is memory-mapped
 * read-only. On success *out owns the mapping; free it with glora_st_close.
 * On failure *out is NULL and the message names the file (and tensor). */
int glora_st_open(glora_st_t **out, const char *path);

/* The same over bytes already in memory (n bytes at data). The caller keeps
 * data alive and unchanged until glora_st_close; nothing is copied except the
 * header. name is used in messages in place of a path. */
int glora_st_open_buffer(glora_st_t **out, const void *data, size_t n,
                         const char *name);

/* Unmaps and frees; NULL-safe. */
void glora_st_close(glora_st_t *st);

/* The path (or name) the file was opened with. */
const char *glora_st_path(const glora_st_t *st);

/* Number of tensors, and the i-th in the order of their data in the file. */
size_t glora_st_count(const glora_st_t *st);
const glora_st_tensor_t *glora_st_tensor(const glora_st_t *st, size_t i);

/* The tensor called name, or NULL (no message is set). */
const glora_st_tensor_t *glora_st_find(const glora_st_t *st, const char *name);

/* Metadata: value of key, or NULL when absent. Keys can be listed with
 * glora_st_meta_count / glora_st_meta_at (in header order). */
const char *glora_st_meta(const glora_st_t *st, const char *key);
size_t glora_st_meta_count(const glora_st_t *st);
void glora_st_meta_at(const glora_st_t *st, size_t i, const char **key,
                      const char **value);

/* Converts tensor t of st to float32 into dst, which holds n floats; n must
 * equal t->numel. F32 is copied; F16 and BF16 are widened exactly (subnormals,
 * infinities and NaNs included); F64 is rounded to nearest; integer and BOOL
 * tensors are converted by value (integers above 2^24 round). F8 dtypes are
 * refused with a message naming the tensor and the file. */
int glora_st_read_f32(const glora_st_t *st, const glora_st_tensor_t *t,
                      float *dst, size_t n);

/* Tells the kernel that the mapped pages of t's bytes are not needed any
 * more (madvise MADV_DONTNEED): a loader that has copied a tensor calls it
 * so that the process does not keep the whole file's pages resident beside
 * its copy. t->data stays valid (the pages are read again if touched). A
 * no-op for glora_st_open_buffer. */
void glora_st_release(const glora_st_t *st, const glora_st_tensor_t *t);

/* Looks up name and checks its shape: ndim dimensions equal to shape[]
 * (an entry of -1 in shape matches any size). On success *out (if not NULL)
 * is the tensor. Errors read
 *   tensor 'blocks.0.attn.qkv.weight' in 'x.safetensors': missing
 *   tensor 'blocks.0.attn.qkv.weight' in 'x.safetensors': shape [384, 128]
 *       expected, found [384, 64]                        (on one line) */
int glora_st_expect(const glora_st_t *st, const char *name, int ndim,
                    const int64_t *shape, const glora_st_tensor_t **out);

/* glora_st_expect followed by glora_st_read_f32 into dst (which holds the
 * product of shape floats; no -1 allowed in shape here). */
int glora_st_load_f32(const glora_st_t *st, const char *name, int ndim,
                      const int64_t *shape, float *dst);

/* One tensor to write: float32 data in row-major order, numel = product of
 * shape (1 when ndim is 0). The data is only read. */
typedef struct {
    const char *name;
    int ndim;
    const int64_t *shape;
    const float *data;
} glora_st_entry_t;

/* Writes entries[0..n) as F32 tensors, in that order, with the metadata
 * meta[0..2*n_meta) given as key, value, key, value... (meta may be NULL when
 * n_meta is 0). The header is compact JSON with __metadata__ first (when
 * n_meta > 0), padded with spaces to a multiple of 8. The file is written to
 * a temporary beside path, fsynced and renamed over path: on failure path is
 * untouched and no temporary is left. Names must be non-empty, unique and not
 * "__metadata__"; metadata keys must be unique. */
int glora_st_write(const char *path, const glora_st_entry_t *entries, size_t n,
                   const char *const *meta, size_t n_meta);

#ifdef __cplusplus
}
#endif
#endif
