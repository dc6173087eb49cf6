/*
 * gemm-loop.h - the parts of the outer loop nest that the fp32
 * (gemm_blocked.c) and bf16 (bgemm_blocked.c) products share: the packing
 * buffer kept per calling thread, the size of the team, the cut of C into
 * tiles, and the team that packs op(B)'s panels and then deals the tiles
 * out. Threads split rows and columns of C only (never k), so every element
 * is summed by one thread in the same order whatever the team.
 */
#ifndef GLORA_GEMM_LOOP_H
#define GLORA_GEMM_LOOP_H

#include <stddef.h>
#include <stdlib.h>

#include "util/bigmem.h"
#include "util/parallel.h"

/* Below this many multiply-adds per thread, starting a team costs more than
 * it saves (waking a worker takes microseconds, longer on a loaded box). */
#define GEMM_FMAS_PER_THREAD ((double)(1u << 22))
/* Tiles per thread when a team runs, so that dealing them out evens out
 * threads the machine slows down, and the last tile, which one thread
 * finishes alone, is short. Row tiles are cut no thinner than
 * GEMM_MIN_TILE_PANELS micro-panels, so each B block brought into L2 serves
 * a few of them. */
#define GEMM_TILES_PER_THREAD 8
#define GEMM_MIN_TILE_PANELS 4
/* Packing buffers above this are not kept. */
#define GEMM_KEEP_BYTES_MAX ((size_t)64 << 20)

static inline size_t gemm_ceil_div(size_t a, size_t b) { return (a + b - 1) / b; }
static inline size_t gemm_min_size(size_t a, size_t b) { return a < b ? a : b; }

/* A packing buffer kept by its thread between products: a fresh allocation
 * of megabytes costs page faults on every call (5% of a ViT-B layer), and
 * the search makes many small products on each of its threads. */
typedef struct {
    void *buf;
    size_t bytes;
} gemm_keep_t;

/* 64-byte aligned, at least `bytes`; NULL when out of memory. */
static inline void *gemm_keep_get(gemm_keep_t *k, size_t bytes) {
    if (bytes <= k->bytes) return k->buf;
    void *buf = glora_big_alloc(bytes, 1);
    if (!buf || bytes > GEMM_KEEP_BYTES_MAX) return buf;
    free(k->buf);
    k->buf = buf;
    k->bytes = bytes;
    return buf;
}

static inline void gemm_keep_put(gemm_keep_t *k, void *buf) {
    if (buf != k->buf) free(buf);
}

static inline void gemm_keep_release(gemm_keep_t *k) {
    free(k->buf);
    k->buf = NULL;
    k->bytes = 0;
}

/* Threads for an m x n x k product: 1 inside a parallel region. */
static inline int gemm_choose_threads(size_t m, size_t n, size_t k) {
    if (glora_in_parallel()) return 1;
    int nt = glora_max_threads();
    double by_work = (double)m * (double)n * (double)k / GEMM_FMAS_PER_THREAD;
    if (by_work < nt) nt = (int)by_work;
    return nt < 1 ? 1 : nt;
}

/* Tile i of mt covers micro-panel rows [i*pm/mt, (i+1)*pm/mt) (likewise
 * columns), so tiles differ by at most one micro-panel. */
typedef struct {
    size_t pm, pn; /* micro-panels along m and n */
    size_t mt, nt; /* tiles along m and n */
} gemm_tiles_t;

/* Row tiles no taller than mc; with a team, GEMM_TILES_PER_THREAD tiles per
 * thread where the rows allow, and if they give fewer than two per thread,
 * column tiles too (each packs the same rows of A again). */
static inline void gemm_plan_tiles(gemm_tiles_t *t, size_t m, size_t n, size_t mr, size_t nr,
                                   size_t mc, int threads) {
    t->pm = gemm_ceil_div(m, mr);
    t->pn = gemm_ceil_div(n, nr);
    t->mt = gemm_ceil_div(t->pm, mc / mr);
    t->nt = 1;
    if (threads <= 1) return;
    size_t want = (size_t)threads * GEMM_TILES_PER_THREAD;
    while (t->mt * t->nt < want) {
        if (t->pm >= GEMM_MIN_TILE_PANELS * (t->mt + 1))
            t->mt++;
        else if (t->mt * t->nt < 2 * (size_t)threads && t->pn >= t->nt + 1)
            t->nt++;
        else
            break;
    }
}

/* Tile u: rows [i0, i1) of C and B panels [jp0, jp1). */
static inline void gemm_tile_span(const gemm_tiles_t *t, size_t u, size_t mr, size_t m,
                                  size_t *i0, size_t *i1, size_t *jp0, size_t *jp1) {
    size_t ti = u / t->nt, tj = u % t->nt;
    *i0 = ti * t->pm / t->mt * mr;
    *i1 = gemm_min_size((ti + 1) * t->pm / t->mt * mr, m);
    *jp0 = tj * t->pn / t->nt;
    *jp1 = (tj + 1) * t->pn / t->nt;
}

/* Packs B panel jp; computes tile u on thread tid (its A buffer). */
typedef void (*gemm_panel_fn)(const void *plan, size_t jp);
typedef void (*gemm_tile_fn)(const void *plan, size_t u, int tid);

/* The panels of op(B) packed by the team (none when panels is 0), then the
 * tiles dealt out first come first served: a thread the machine delays
 * just takes fewer. */
static inline void gemm_run_team(const void *plan, int threads, size_t panels,
                                 gemm_panel_fn pack, size_t tiles, gemm_tile_fn tile) {
    if (threads > 1) {
        #pragma omp parallel num_threads(threads)
        {
            const int tid = glora_thread_id();
            #pragma omp for schedule(dynamic, 2)
            for (size_t jp = 0; jp < panels; jp++) pack(plan, jp);
            #pragma omp for schedule(dynamic, 1) nowait
            for (size_t u = 0; u < tiles; u++) tile(plan, u, tid);
        }
    } else {
        for (size_t jp = 0; jp < panels; jp++) pack(plan, jp);
        for (size_t u = 0; u < tiles; u++) tile(plan, u, 0);
    }
}

#endif
