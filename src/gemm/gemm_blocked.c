/* The outer loops of the blocked product: the pc loop over k, the packing
 * of op(B) shared by the team, and the dealing of (ic, jc) tiles of C to
 * threads. Threads split rows and columns of C only; each element is summed
 * by one thread in the same order whatever the team size. */
#include "gemm-impl.h"

#include <stdint.h>
#include <stdlib.h>

#include "glora/common.h"
#include "glora/parallel.h"

/* Below this many multiply-adds per thread, starting a team costs more than
 * it saves (a warm OpenMP team takes a few microseconds to start). */
#define FMAS_PER_THREAD ((double)(1u << 20))

static size_t ceil_div(size_t a, size_t b) { return (a + b - 1) / b; }
static size_t min_size(size_t a, size_t b) { return a < b ? a : b; }

/* How C is cut into tiles and op(B) into kc blocks for one product. Tile i
 * of mt covers micro-panel rows [i*pm/mt, (i+1)*pm/mt) (likewise columns),
 * so tiles differ by at most one micro-panel and threads stay balanced. */
typedef struct {
    const sgemm_kernel_t *kern;
    glora_trans_t ta, tb;
    size_t m, n, k;
    float alpha, beta;
    const float *a, *b;
    size_t lda, ldb, ldc;
    float *c;
    size_t kc_max;      /* depth of every k block but the last */
    size_t pm, pn;      /* micro-panels along m and n */
    size_t mt, nt;      /* tiles along m and n */
    size_t a_stride;    /* floats of one thread's packed A block */
    float *bpack;       /* kc x round_up(n, nr), shared */
    float *apack;       /* one A block per thread */
} plan_t;

static int choose_threads(size_t m, size_t n, size_t k) {
    if (glora_in_parallel()) return 1;
    int nt = glora_max_threads();
    double by_work = (double)m * (double)n * (double)k / FMAS_PER_THREAD;
    if (by_work < nt) nt = (int)by_work;
    return nt < 1 ? 1 : nt;
}

/* Tiles no larger than the cache blocks, in a number the team divides.
 * Rows are split first: each row tile packs its own A block, so splitting
 * columns instead makes every thread pack the same rows of A again. */
static void plan_tiles(plan_t *p, int threads) {
    const sgemm_kernel_t *kern = p->kern;
    p->pm = ceil_div(p->m, kern->mr);
    p->pn = ceil_div(p->n, kern->nr);
    p->mt = ceil_div(p->m, kern->mc);
    p->nt = ceil_div(p->n, kern->nc);
    size_t t = (size_t)threads;
    if (t > 1 && (p->mt * p->nt) % t != 0) {
        if (p->pm >= 4 * t || p->pn < t)
            p->mt = ceil_div(p->mt, t) * t;
        else
            p->nt = ceil_div(p->nt, t) * t;
    }
    if (p->mt > p->pm) p->mt = p->pm;
    if (p->nt > p->pn) p->nt = p->pn;
}

static void pack_b_panel(const plan_t *p, size_t pc, size_t kc, size_t jp) {
    const sgemm_kernel_t *kern = p->kern;
    size_t j0 = jp * kern->nr;
    size_t cols = min_size(kern->nr, p->n - j0);
    const float *src = p->tb ? p->b + j0 * p->ldb + pc : p->b + pc * p->ldb + j0;
    kern->pack_b(p->tb, kc, cols, src, p->ldb, kern->nr, p->bpack + j0 * kc);
}

/* One tile of C for the k block at pc. *packed_row remembers which row
 * tile apack holds, so consecutive tiles of one row reuse it. */
static void compute_tile(const plan_t *p, size_t pc, size_t kc, size_t u,
                         float *apack, size_t *packed_row) {
    const sgemm_kernel_t *kern = p->kern;
    size_t ti = u / p->nt, tj = u % p->nt;
    size_t i0 = ti * p->pm / p->mt * kern->mr;
    size_t i1 = min_size((ti + 1) * p->pm / p->mt * kern->mr, p->m);
    size_t j0 = tj * p->pn / p->nt * kern->nr;
    size_t j1 = min_size((tj + 1) * p->pn / p->nt * kern->nr, p->n);
    if (*packed_row != ti) {
        const float *src = p->ta ? p->a + pc * p->lda + i0 : p->a + i0 * p->lda + pc;
        kern->pack_a(p->ta, i1 - i0, kc, src, p->lda, kern->mr, apack);
        *packed_row = ti;
    }
    sgemm_macro(kern, i1 - i0, j1 - j0, kc, p->alpha, apack, p->bpack + j0 * kc,
                pc == 0 ? p->beta : 1.0f, p->c + i0 * p->ldc + j0, p->ldc);
}

static void run_serial(const plan_t *p) {
    for (size_t pc = 0; pc < p->k; pc += p->kc_max) {
        size_t kc = min_size(p->kc_max, p->k - pc);
        for (size_t jp = 0; jp < p->pn; jp++) pack_b_panel(p, pc, kc, jp);
        size_t packed_row = SIZE_MAX;
        for (size_t u = 0; u < p->mt * p->nt; u++)
            compute_tile(p, pc, kc, u, p->apack, &packed_row);
    }
}

static void run_parallel(const plan_t *p, int threads) {
    #pragma omp parallel num_threads(threads)
    {
        float *apack = p->apack + (size_t)glora_thread_id() * p->a_stride;
        for (size_t pc = 0; pc < p->k; pc += p->kc_max) {
            size_t kc = min_size(p->kc_max, p->k - pc);
            #pragma omp for schedule(static)
            for (size_t jp = 0; jp < p->pn; jp++) pack_b_panel(p, pc, kc, jp);
            size_t packed_row = SIZE_MAX;
            #pragma omp for schedule(static)
            for (size_t u = 0; u < p->mt * p->nt; u++)
                compute_tile(p, pc, kc, u, apack, &packed_row);
        }
    }
}

int sgemm_blocked(const sgemm_kernel_t *kern, glora_trans_t ta, glora_trans_t tb,
                  size_t m, size_t n, size_t k, float alpha, const float *a,
                  size_t lda, const float *b, size_t ldb, float beta, float *c,
                  size_t ldc) {
    plan_t p = {.kern = kern, .ta = ta, .tb = tb, .m = m, .n = n, .k = k,
                .alpha = alpha, .beta = beta, .a = a, .b = b, .lda = lda,
                .ldb = ldb, .ldc = ldc, .c = c};
    /* Equal k blocks no deeper than kc, rather than full ones and a sliver;
     * they depend on k alone, never on the team. */
    p.kc_max = ceil_div(k, ceil_div(k, kern->kc));
    int threads = choose_threads(m, n, k);
    plan_tiles(&p, threads);
    if ((size_t)threads > p.mt * p.nt) threads = (int)(p.mt * p.nt);

    /* One allocation: the shared B panel, then one A block per thread, each
     * rounded to 64 bytes. */
    size_t rows = ceil_div(p.pm, p.mt) * kern->mr;
    size_t bfloats, afloats, total;
    if (glora_size_mul(p.kc_max, p.pn * kern->nr, &bfloats) ||
        glora_size_mul(p.kc_max, rows, &p.a_stride) ||
        glora_size_mul(ceil_div(p.a_stride, 16) * 16, (size_t)threads, &afloats) ||
        glora_size_add(ceil_div(bfloats, 16) * 16, afloats, &total) ||
        total > SIZE_MAX / sizeof(float))
        return -1;
    p.a_stride = ceil_div(p.a_stride, 16) * 16;
    float *buf = aligned_alloc(64, total * sizeof(float));
    if (!buf) return -1;
    p.bpack = buf;
    p.apack = buf + ceil_div(bfloats, 16) * 16;

    if (threads > 1)
        run_parallel(&p, threads);
    else
        run_serial(&p);
    free(buf);
    return 0;
}
