/*
 * glora/fileio.h - whole-file reads, atomic writes and SHA-256.
 *
 * Every file glora writes goes through glora_write_atomic: the bytes go to a
 * temporary file in the same directory, are fsynced, and the temporary is
 * renamed over the target (and the directory fsynced), so a crash leaves
 * either the old file or the new one, never a half-written one.
 */
#ifndef GLORA_FILEIO_H
#define GLORA_FILEIO_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Writes n bytes to path atomically. Status and message on failure. */
int glora_write_atomic(const char *path, const void *data, size_t n);

/* Streaming form for large files: open, write pieces, then commit (fsync +
 * rename) or abort (remove the temporary). */
typedef struct glora_atomic_file glora_atomic_file_t;
int glora_atomic_open(glora_atomic_file_t **out, const char *path);
int glora_atomic_write(glora_atomic_file_t *f, const void *data, size_t n);
int glora_atomic_commit(glora_atomic_file_t *f);   /* frees f */
void glora_atomic_abort(glora_atomic_file_t *f);   /* frees f; NULL-safe */

/* Reads a whole file into a malloc'd buffer with a terminating NUL byte
 * (not counted in *n). Refuses files larger than max_bytes. */
int glora_read_file(const char *path, size_t max_bytes, char **data, size_t *n);

/* Creates a directory and its parents (like mkdir -p). */
int glora_mkdir_p(const char *path);

/* SHA-256. */
typedef struct {
    uint32_t h[8];
    uint64_t nbytes;
    uint8_t buf[64];
    size_t nbuf;
} glora_sha256_t;
void glora_sha256_init(glora_sha256_t *s);
void glora_sha256_update(glora_sha256_t *s, const void *data, size_t n);
void glora_sha256_final(glora_sha256_t *s, uint8_t digest[32]);
/* Hex digest (64 chars + NUL) of a buffer / of a whole file. */
void glora_sha256_hex(const void *data, size_t n, char hex[65]);
int glora_sha256_file(const char *path, char hex[65]);

#ifdef __cplusplus
}
#endif
#endif
