/* The loop nest of the bf16 product, the same as gemm_blocked.c's for
 * fp32: op(B) packed whole (or packed once by the caller: a frozen or
 * merged weight), tiles of C dealt out to the threads, and in each tile
 * the k blocks in order, the tile's rows of op(A) rounded to bf16 and
 * packed per block into a buffer of its thread. Threads split the rows and
 * columns of C only, and the k blocks depend on k alone
 * (bgemm_block_pairs), so every element gets the same operations whatever
 * the team. */
#include "gemm-impl.h"

#include <stdlib.h>

#include "glora/common.h"
#include "util/parallel.h"

#define FMAS_PER_THREAD ((double)(1u << 22))
#define TILES_PER_THREAD 8
#define MIN_TILE_PANELS 4
#define KEEP_WORDS_MAX ((size_t)16 << 20) /* 64 MiB */

static _Thread_local uint32_t *kept_buf;
static _Thread_local size_t kept_words;

static uint32_t *get_buffer(size_t words) {
    if (words <= kept_words) return kept_buf;
    uint32_t *buf = aligned_alloc(64, words * sizeof(uint32_t));
    if (!buf || words > KEEP_WORDS_MAX) return buf;
    free(kept_buf);
    kept_buf = buf;
    kept_words = words;
    return buf;
}

static void put_buffer(uint32_t *buf) {
    if (buf != kept_buf) free(buf);
}

void bgemm_release(void) {
    free(kept_buf);
    kept_buf = NULL;
    kept_words = 0;
}

static size_t ceil_div(size_t a, size_t b) { return (a + b - 1) / b; }
static size_t min_size(size_t a, size_t b) { return a < b ? a : b; }

typedef struct {
    const bgemm_kernel_t *kern;
    glora_trans_t ta, tb;
    size_t m, n, k, kp;  /* kp: pairs along k */
    float alpha, beta;
    const float *a, *b, *bias;
    size_t lda, ldb, ldc;
    float *c;
    size_t kcp;          /* pairs in every k block but the last */
    size_t pm, pn, mt, nt;
    const uint32_t *bpack; /* pn panels of kp x nr words */
    uint32_t *bbuf;        /* where to pack them, when not given */
    uint32_t *apack;       /* per thread */
    size_t a_words;
} plan_t;

static void plan_tiles(plan_t *p, int threads) {
    const bgemm_kernel_t *kern = p->kern;
    p->pm = ceil_div(p->m, kern->mr);
    p->pn = ceil_div(p->n, kern->nr);
    p->mt = ceil_div(p->pm, kern->mc / kern->mr);
    p->nt = 1;
    if (threads <= 1) return;
    size_t want = (size_t)threads * TILES_PER_THREAD;
    while (p->mt * p->nt < want) {
        if (p->pm >= MIN_TILE_PANELS * (p->mt + 1))
            p->mt++;
        else if (p->mt * p->nt < 2 * (size_t)threads && p->pn >= p->nt + 1)
            p->nt++;
        else
            break;
    }
}

static void pack_b_panel(const plan_t *p, size_t jp) {
    const bgemm_kernel_t *kern = p->kern;
    size_t j0 = jp * kern->nr;
    const float *src = p->tb ? p->b + j0 * p->ldb : p->b + j0;
    kern->pack_b(p->tb, p->k, min_size(kern->nr, p->n - j0), src, p->ldb, kern->nr,
                 p->bbuf + jp * p->kp * kern->nr);
}

size_t bgemm_packed_b_words(const bgemm_kernel_t *kern, size_t k, size_t n) {
    size_t words;
    if (glora_size_mul(ceil_div(n, kern->nr) * kern->nr, (k + 1) / 2, &words)) return 0;
    return words;
}

static void compute_tile(const plan_t *p, size_t u, uint32_t *abuf) {
    const bgemm_kernel_t *kern = p->kern;
    const size_t mr = kern->mr, nr = kern->nr;
    size_t ti = u / p->nt, tj = u % p->nt;
    size_t i0 = ti * p->pm / p->mt * mr, i1 = min_size((ti + 1) * p->pm / p->mt * mr, p->m);
    size_t jp0 = tj * p->pn / p->nt, jp1 = (tj + 1) * p->pn / p->nt;
    size_t panels_per_block = kern->nc / nr;
    const float *arows = p->ta ? p->a + i0 : p->a + i0 * p->lda;
    for (size_t pc = 0; pc < p->kp; pc += p->kcp) {
        size_t kcp = min_size(p->kcp, p->kp - pc);
        kern->pack_a(p->ta, i1 - i0, 2 * pc, min_size(2 * (pc + kcp), p->k), arows, p->lda, mr,
                     abuf);
        float beta = pc == 0 ? p->beta : 1.0f;
        const float *bias = p->bias && pc + kcp == p->kp ? p->bias : NULL;
        for (size_t jb = jp0; jb < jp1; jb += panels_per_block) {
            size_t jb1 = min_size(jb + panels_per_block, jp1);
            /* ir over micro-panels of A (in L1), jr over B panels (in L2). */
            for (size_t ir = i0; ir < i1; ir += mr) {
                const uint32_t *ap = abuf + (ir - i0) * kcp;
                for (size_t jp = jb; jp < jb1; jp++) {
                    size_t j0 = jp * nr;
                    kern->ukernel(kcp, ap, p->bpack + jp * p->kp * nr + pc * nr,
                                  p->c + ir * p->ldc + j0, p->ldc, min_size(mr, i1 - ir),
                                  min_size(nr, p->n - j0), p->alpha, beta,
                                  bias ? bias + j0 : NULL);
                }
            }
        }
    }
}

int bgemm_blocked(const bgemm_kernel_t *kern, glora_trans_t ta, glora_trans_t tb, size_t m,
                  size_t n, size_t k, float alpha, const float *a, size_t lda, const float *b,
                  size_t ldb, const uint32_t *bpanels, float beta, const float *bias, float *c,
                  size_t ldc) {
    plan_t p = {.kern = kern, .ta = ta, .tb = tb, .m = m, .n = n, .k = k, .kp = (k + 1) / 2,
                .alpha = alpha, .beta = beta, .a = a, .b = b, .bias = bias, .lda = lda,
                .ldb = ldb, .ldc = ldc, .c = c};
    p.kcp = bgemm_block_pairs(k);
    int threads = 1;
    if (!glora_in_parallel()) {
        threads = glora_max_threads();
        double by_work = (double)m * (double)n * (double)k / FMAS_PER_THREAD;
        if (by_work < threads) threads = by_work < 1.0 ? 1 : (int)by_work;
    }
    plan_tiles(&p, threads);
    if ((size_t)threads > p.mt * p.nt) threads = (int)(p.mt * p.nt);
    const int pack_b = bpanels == NULL;
    size_t bwords = 0, awords, total;
    if ((pack_b && !(bwords = bgemm_packed_b_words(kern, k, n))) ||
        glora_size_mul(ceil_div(p.pm, p.mt) * kern->mr, p.kcp, &p.a_words) ||
        glora_size_add(p.a_words, 15, &p.a_words) ||
        glora_size_mul(p.a_words & ~(size_t)15, (size_t)threads, &awords) ||
        glora_size_add(bwords + 15, awords, &total) || total > SIZE_MAX / sizeof(uint32_t))
        return -1;
    p.a_words &= ~(size_t)15;
    bwords = (bwords + 15) & ~(size_t)15;
    uint32_t *buf = get_buffer(bwords + awords);
    if (!buf) return -1;
    p.bbuf = buf;
    p.bpack = pack_b ? buf : bpanels;
    p.apack = buf + bwords;
    if (threads > 1) {
        #pragma omp parallel num_threads(threads)
        {
            uint32_t *abuf = p.apack + (size_t)glora_thread_id() * p.a_words;
            #pragma omp for schedule(dynamic, 2)
            for (size_t jp = 0; jp < (pack_b ? p.pn : 0); jp++) pack_b_panel(&p, jp);
            #pragma omp for schedule(dynamic, 1) nowait
            for (size_t u = 0; u < p.mt * p.nt; u++) compute_tile(&p, u, abuf);
        }
    } else {
        for (size_t jp = 0; jp < (pack_b ? p.pn : 0); jp++) pack_b_panel(&p, jp);
        for (size_t u = 0; u < p.mt * p.nt; u++) compute_tile(&p, u, p.apack);
    }
    put_buffer(buf);
    return 0;
}
