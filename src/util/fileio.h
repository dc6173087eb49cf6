/*
 * util/fileio.h - whole-file reads, atomic writes and SHA-256 (internal to
 * glora: not installed).
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

/* Opens path for reading and returns the descriptor (>= 0), refusing with
 * a message anything but a regular file - a named pipe, a device, a
 * directory - without blocking on it. *size (if not NULL) gets its size. */
int glora_open_regular(const char *path, uint64_t *size);

/* Output directory lock: an exclusive flock on "<dir>/.glora.lock", which
 * holds the owner's pid and is removed on unlock (and released by the kernel
 * if the process dies). A second locker fails at once with "output directory
 * '<dir>' is in use by another glora (pid N)". */
#define GLORA_LOCK_NAME ".glora.lock"
typedef struct glora_dir_lock glora_dir_lock_t;
int glora_dir_lock(glora_dir_lock_t **out, const char *dir);
/* The same lock on any lock file (e.g. "<output>.lock" for a command that
 * writes one file); messages say "<what> '<name>' is in use ...". */
int glora_path_lock(glora_dir_lock_t **out, const char *lock_path, const char *what,
                    const char *name);
void glora_dir_unlock(glora_dir_lock_t *l); /* NULL-safe */

/* The lock of a command that writes one output file: glora_path_lock on
 * "<output>.lock" (on "<output>/.glora.lock" when output is an existing
 * directory), held until the process exits, which removes the lock file.
 * Then, for a file, the temporaries "<output>.tmp.XXXXXX" a killed writer of
 * the same output left are removed. A second glora writing the same output
 * meanwhile fails at once: "output '<output>' is in use by another glora
 * (pid N)". Locking an output this process already holds does nothing.
 * Under MPI only rank 0 locks (the job is one writer). */
int glora_output_lock(const char *output);

/* Removes the temporaries "<name>.tmp.XXXXXX" that atomic writes leave
 * behind when the process is killed, in dir and (depth levels of) its
 * subdirectories; symbolic links are not followed. Call it only while
 * holding dir's lock. *removed (if not NULL) gets the count. */
int glora_clean_temps(const char *dir, int depth, int *removed);
/* The same for one output file: removes "<path>.tmp.XXXXXX" beside it. */
int glora_clean_temps_of(const char *path, int *removed);

/* A JSON-lines log (e.g. training metrics). Appending opens path as it is;
 * otherwise the new log goes to a temporary beside path that replaces it
 * when its first line is written, so a run that fails before its first line
 * (disk full, killed) leaves the previous log intact. Each write is one or
 * more whole lines. Messages name the path and the system's reason. */
typedef struct glora_lines glora_lines_t;
int glora_lines_open(glora_lines_t **out, const char *path, int append);
int glora_lines_write(glora_lines_t *l, const char *line);
int glora_lines_close(glora_lines_t *l); /* NULL-safe; frees l */

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
