/* Run-long working buffers on transparent huge pages (see util/bigmem.h). */
#include "util/bigmem.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef __linux__
#include <sys/mman.h>
#endif

#define HUGE_PAGE ((size_t)2 << 20)
/* Below this, a huge page would mostly hold nothing: cache-line aligned only. */
#define HUGE_MIN ((size_t)256 << 10)
#define CACHE_LINE ((size_t)64)

void *glora_big_alloc(size_t n, size_t size) {
    if (size && n > SIZE_MAX / size) return NULL;
    size_t bytes = n * size;
    if (bytes > SIZE_MAX - HUGE_PAGE) return NULL;
    if (bytes < HUGE_MIN)
        return aligned_alloc(CACHE_LINE, bytes ? (bytes + CACHE_LINE - 1) & ~(CACHE_LINE - 1) : CACHE_LINE);
    /* aligned_alloc wants a multiple of the alignment: the tail of the last
     * huge page is the buffer's too, so the advice covers only this buffer. */
    bytes = (bytes + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
    void *p = aligned_alloc(HUGE_PAGE, bytes);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    /* Advice only: without huge pages the buffer works the same. */
    if (p) (void)madvise(p, bytes, MADV_HUGEPAGE);
#endif
    return p;
}

void *glora_big_zalloc(size_t n, size_t size) {
    void *p = glora_big_alloc(n, size);
    if (p) memset(p, 0, n * size);
    return p;
}
