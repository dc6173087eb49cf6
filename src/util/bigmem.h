/*
 * util/bigmem.h - working buffers that live for a whole run (internal to
 * glora: not installed).
 *
 * Training touches its activation tape, backward workspace, gradients,
 * optimiser state and merged weights on its first step. On a Linux VM a
 * first touch of a 4 KB page costs tens of microseconds (measured here: 32 MB
 * took 270 ms, 8192 faults, against 4 ms on 2 MB pages), which every rank
 * and every thread pays at once: a fixed cost that no number of ranks
 * shrinks. Buffers from glora_big_alloc are 2 MB aligned and advised for
 * transparent huge pages (MADV_HUGEPAGE, which takes effect when the system
 * setting is "madvise" or "always"); small ones are only 64-byte aligned.
 * Free them with free(). Contents are as malloc's (glora_big_zalloc: zero).
 */
#ifndef GLORA_BIGMEM_H
#define GLORA_BIGMEM_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* n * size bytes (NULL on overflow or when out of memory). */
void *glora_big_alloc(size_t n, size_t size);
/* The same, zeroed. */
void *glora_big_zalloc(size_t n, size_t size);

#ifdef __cplusplus
}
#endif
#endif
