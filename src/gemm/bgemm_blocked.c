/* The loop nest of the bf16 product, the same as gemm_blocked.c's for
 * fp32: op(B) packed whole (or packed once by the caller: a frozen or
 * merged weight), tiles of C dealt out to the threads, and in each tile
 * the k blocks in order, the tile's rows of op(A) rounded to bf16 and
 * packed per block into a buffer of its thread. Threads split the rows and
 * columns of C only, and the k blocks depend on k alone
 * (bgemm_block_pairs), so every element gets the same operations whatever
 * the team. */
#include "gemm-impl.h"
#include "gemm-loop.h"

#include <stdlib.h>

#include "glora/common.h"
#include "util/parallel.h"

/* The packing buffer, kept per calling thread (gemm-loop.h). */
static _Thread_local gemm_keep_t kept;

void bgemm_release(void) { gemm_keep_release(&kept); }

typedef struct {
    const bgemm_kernel_t *kern;
    glora_trans_t ta, tb;
    size_t m, n, k, kp;  /* kp: pairs along k */
    float alpha, beta;
    const float *a, *b, *bias;
    glora_gemm_rows_fn ep; /* on each finished block of rows, or NULL */
    size_t lda, ldb, ldc;
    float *c;
    size_t kcp;          /* pairs in every k block but the last */
    gemm_tiles_t t;        /* the tiles of C */
    const uint32_t *bpack; /* pn panels of kp x nr words */
    uint32_t *bbuf;        /* where to pack them, when not given */
    uint32_t *apack;       /* per thread */
    size_t a_words;
} plan_t;

static void pack_b_panel(const void *plan, size_t jp) {
    const plan_t *p = plan;
    const bgemm_kernel_t *kern = p->kern;
    size_t j0 = jp * kern->nr;
    const float *src = p->tb ? p->b + j0 * p->ldb : p->b + j0;
    kern->pack_b(p->tb, p->k, gemm_min_size(kern->nr, p->n - j0), src, p->ldb, kern->nr,
                 p->bbuf + jp * p->kp * kern->nr);
}

size_t bgemm_packed_b_words(const bgemm_kernel_t *kern, size_t k, size_t n) {
    size_t words;
    if (glora_size_mul(gemm_ceil_div(n, kern->nr) * kern->nr, (k + 1) / 2, &words)) return 0;
    return words;
}

/* Tile u of C, all k blocks in order (beta on the first, 1 afterwards),
 * with thread tid's A buffer. */
static void compute_tile(const void *plan, size_t u, int tid) {
    const plan_t *p = plan;
    const bgemm_kernel_t *kern = p->kern;
    const size_t mr = kern->mr, nr = kern->nr;
    size_t i0, i1, jp0, jp1;
    gemm_tile_span(&p->t, u, mr, p->m, &i0, &i1, &jp0, &jp1);
    uint32_t *abuf = p->apack + (size_t)tid * p->a_words;
    size_t panels_per_block = kern->nc / nr;
    const float *arows = p->ta ? p->a + i0 : p->a + i0 * p->lda;
    for (size_t pc = 0; pc < p->kp; pc += p->kcp) {
        size_t kcp = gemm_min_size(p->kcp, p->kp - pc);
        kern->pack_a(p->ta, i1 - i0, 2 * pc, gemm_min_size(2 * (pc + kcp), p->k), arows, p->lda, mr,
                     abuf);
        float beta = pc == 0 ? p->beta : 1.0f;
        const float *bias = p->bias && pc + kcp == p->kp ? p->bias : NULL;
        for (size_t jb = jp0; jb < jp1; jb += panels_per_block) {
            size_t jb1 = gemm_min_size(jb + panels_per_block, jp1);
            /* ir over micro-panels of A (in L1), jr over B panels (in L2). */
            for (size_t ir = i0; ir < i1; ir += mr) {
                const uint32_t *ap = abuf + (ir - i0) * kcp;
                for (size_t jp = jb; jp < jb1; jp++) {
                    size_t j0 = jp * nr;
                    kern->ukernel(kcp, ap, p->bpack + jp * p->kp * nr + pc * nr,
                                  p->c + ir * p->ldc + j0, p->ldc, gemm_min_size(mr, i1 - ir),
                                  gemm_min_size(nr, p->n - j0), p->alpha, beta,
                                  bias ? bias + j0 : NULL);
                }
            }
            if (p->ep && pc + kcp == p->kp) {
                size_t j0 = jb * nr, j1 = gemm_min_size(jb1 * nr, p->n);
                for (size_t i = i0; i < i1; i++)
                    p->ep(p->c + i * p->ldc + j0, p->c + i * p->ldc + j0, j1 - j0);
            }
        }
    }
}

int bgemm_blocked(const bgemm_kernel_t *kern, glora_trans_t ta, glora_trans_t tb, size_t m,
                  size_t n, size_t k, float alpha, const float *a, size_t lda, const float *b,
                  size_t ldb, const uint32_t *bpanels, float beta, const float *bias,
                  glora_gemm_rows_fn ep, float *c, size_t ldc) {
    plan_t p = {.kern = kern, .ta = ta, .tb = tb, .m = m, .n = n, .k = k, .kp = (k + 1) / 2,
                .alpha = alpha, .beta = beta, .a = a, .b = b, .bias = bias, .ep = ep, .lda = lda,
                .ldb = ldb, .ldc = ldc, .c = c};
    p.kcp = bgemm_block_pairs(k);
    int threads = gemm_choose_threads(m, n, k);
    gemm_plan_tiles(&p.t, m, n, kern->mr, kern->nr, kern->mc, threads);
    const size_t tiles = p.t.mt * p.t.nt;
    if ((size_t)threads > tiles) threads = (int)tiles;
    const int pack_b = bpanels == NULL;
    size_t bwords = 0, awords, total;
    if ((pack_b && !(bwords = bgemm_packed_b_words(kern, k, n))) ||
        glora_size_mul(gemm_ceil_div(p.t.pm, p.t.mt) * kern->mr, p.kcp, &p.a_words) ||
        glora_size_add(p.a_words, 15, &p.a_words) ||
        glora_size_mul(p.a_words & ~(size_t)15, (size_t)threads, &awords) ||
        glora_size_add(bwords + 15, awords, &total) || total > SIZE_MAX / sizeof(uint32_t))
        return -1;
    p.a_words &= ~(size_t)15;
    bwords = (bwords + 15) & ~(size_t)15;
    uint32_t *buf = gemm_keep_get(&kept, (bwords + awords) * sizeof(uint32_t));
    if (!buf) return -1;
    p.bbuf = buf;
    p.bpack = pack_b ? buf : bpanels;
    p.apack = buf + bwords;
    gemm_run_team(&p, threads, pack_b ? p.t.pn : 0, pack_b_panel, tiles, compute_tile);
    gemm_keep_put(&kept, buf);
    return 0;
}
