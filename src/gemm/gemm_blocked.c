/* The outer loops of the blocked product. op(B) is packed once, whole,
 * into micro-panels shared by the team (each panel holds all of k, so a k
 * block of it is a contiguous run). Then the tiles of C are dealt out to
 * the threads, first come first served; a tile is a block of at most mc
 * rows and, when the team needs more tiles than the rows give, a share of
 * the columns. Each tile runs the pc loop over k blocks itself, in order:
 * it packs its rows of op(A) for the block into a buffer of its thread,
 * small enough to stay in L2, and sweeps its columns nc at a time (the B
 * block, kc x nc, stays in L2 too). Threads split rows and columns of C
 * only: every element is summed by one thread in the same order whatever
 * the team size, and a thread the machine delays just takes fewer tiles. */
#include "gemm-impl.h"
#include "gemm-loop.h"

#include <stdint.h>
#include <stdlib.h>

#include "glora/common.h"
#include "util/parallel.h"

/* Up to this many row micro-panels, a kernel that can read op(B) in place
 * (not transposed, rows contiguous) does so instead of packing it: with so
 * few rows to share it, packing B costs a sizeable part of the product
 * (M = 17, one vit-tiny-28 image, is the search's common case: +10-40%
 * there; from about 200 rows, packing wins). */
#define DIRECT_B_MAX_PANELS 8
/* Up to this depth a kernel that can read A in place (not transposed) does
 * so instead of packing it: a tile's rows of A then fit in L1 beside the B
 * panel that streams past them, so the kernel runs as fast as on a packed
 * panel, and the pass that packs A (the activations, of which a forward
 * pass makes one per layer) is saved. */
#define DIRECT_A_MAX_K 512
/* At any depth when op(B) is one micro-panel wide (n <= nr: the thin
 * products of GLoRA's LoRA terms, N x r with r <= 32): each k block of A
 * then meets a single B panel, so the kernel reads it once either way and
 * packing it is a pass over A (the activations or G, megabytes at ViT-B)
 * for nothing. The same tile code reads A in place or packed: the same
 * bits. */

/* The packing buffer, kept per calling thread (gemm-loop.h). */
static _Thread_local gemm_keep_t kept;

void glora_gemm_release(void) {
    bgemm_release();
    gemm_keep_release(&kept);
}

typedef struct {
    const sgemm_kernel_t *kern;
    glora_trans_t ta, tb;
    size_t m, n, k;
    float alpha, beta;
    const float *a, *b;
    size_t lda, ldb, ldc;
    float *c;
    size_t kc_max;   /* depth of every k block but the last */
    gemm_tiles_t t;  /* the tiles of C */
    int direct_b;    /* op(B) read in place rather than packed */
    int direct_a;    /* op(A) likewise */
    float *bpack;    /* pn panels of k x nr */
    float *apack;    /* per thread: a tile's rows for one k block */
    const float *bias; /* n, added after the last k block, or NULL */
    glora_gemm_rows_fn ep; /* on each finished block of rows, or NULL */
    size_t a_floats; /* floats of one thread's A buffer */
} plan_t;

static void pack_one_panel(const sgemm_kernel_t *kern, glora_trans_t tb, size_t k, size_t n,
                           const float *b, size_t ldb, size_t jp, float *bpack) {
    size_t j0 = jp * kern->nr;
    const float *src = tb ? b + j0 * ldb : b + j0;
    kern->pack_b(tb, k, gemm_min_size(kern->nr, n - j0), src, ldb, kern->nr, bpack + jp * k * kern->nr);
}

static void pack_b_panel(const void *plan, size_t jp) {
    const plan_t *p = plan;
    pack_one_panel(p->kern, p->tb, p->k, p->n, p->b, p->ldb, jp, p->bpack);
}

size_t sgemm_packed_b_floats(const sgemm_kernel_t *kern, size_t k, size_t n) {
    size_t floats;
    if (glora_size_mul(gemm_ceil_div(n, kern->nr) * kern->nr, k, &floats)) return 0;
    return floats;
}

void sgemm_pack_b_whole(const sgemm_kernel_t *kern, glora_trans_t tb, size_t k, size_t n,
                        const float *b, size_t ldb, float *dst) {
    for (size_t jp = 0; jp < gemm_ceil_div(n, kern->nr); jp++) pack_one_panel(kern, tb, k, n, b, ldb, jp, dst);
}

/* Tile u of C, all k blocks in order (beta on the first, 1 afterwards),
 * with thread tid's A buffer. */
static void compute_tile(const void *plan, size_t u, int tid) {
    const plan_t *p = plan;
    const sgemm_kernel_t *kern = p->kern;
    size_t mr = kern->mr, nr = kern->nr, k = p->k, i0, i1, jp0, jp1;
    gemm_tile_span(&p->t, u, mr, p->m, &i0, &i1, &jp0, &jp1);
    float *abuf = p->apack + (size_t)tid * p->a_floats;
    size_t panels_per_block = kern->nc / nr;
    for (size_t pc = 0; pc < k; pc += p->kc_max) {
        size_t kc = gemm_min_size(p->kc_max, k - pc);
        const float *src = p->ta ? p->a + pc * p->lda + i0 : p->a + i0 * p->lda + pc;
        if (!p->direct_a) kern->pack_a(p->ta, i1 - i0, kc, src, p->lda, mr, abuf);
        for (size_t jp = jp0; jp < jp1; jp += panels_per_block) {
            size_t j0 = jp * nr, j1 = gemm_min_size(gemm_min_size(jp + panels_per_block, jp1) * nr, p->n);
            const float *bp = p->direct_b ? p->b + pc * p->ldb + j0
                                          : p->bpack + jp * k * nr + pc * nr;
            sgemm_macro(kern, i1 - i0, j1 - j0, kc, p->alpha, p->direct_a ? src : abuf,
                        p->direct_a ? mr * p->lda : kc * mr, p->direct_a ? p->lda : 0, bp,
                        p->direct_b ? nr : k * nr, p->direct_b ? p->ldb : nr,
                        pc == 0 ? p->beta : 1.0f,
                        p->bias && pc + kc == k ? p->bias + j0 : NULL,
                        p->c + i0 * p->ldc + j0, p->ldc);
            if (p->ep && pc + kc == k)
                for (size_t i = i0; i < i1; i++) p->ep(p->c + i * p->ldc + j0, p->c + i * p->ldc + j0, j1 - j0);
        }
    }
}

/* bpanels: op(B) packed whole by the caller, or NULL to pack it here (or
 * read it in place). */
static int blocked(const sgemm_kernel_t *kern, glora_trans_t ta, glora_trans_t tb, size_t m,
                   size_t n, size_t k, float alpha, const float *a, size_t lda, const float *b,
                   size_t ldb, const float *bpanels, float beta, const float *bias,
                   glora_gemm_rows_fn ep, float *c, size_t ldc) {
    plan_t p = {.kern = kern, .ta = ta, .tb = tb, .m = m, .n = n, .k = k,
                .alpha = alpha, .beta = beta, .a = a, .b = b, .lda = lda,
                .ldb = ldb, .ldc = ldc, .c = c, .bias = bias, .ep = ep};
    /* Equal k blocks no deeper than kc, rather than full ones and a sliver;
     * they depend on k alone, never on the team. */
    p.kc_max = gemm_ceil_div(k, gemm_ceil_div(k, kern->kc));
    int threads = gemm_choose_threads(m, n, k);
    gemm_plan_tiles(&p.t, m, n, kern->mr, kern->nr, kern->mc, threads);
    p.direct_b = !bpanels && kern->direct_b && !tb && p.t.pm <= DIRECT_B_MAX_PANELS;
    p.direct_a = kern->ukernel_da && !ta && (k <= DIRECT_A_MAX_K || p.t.pn == 1);
    const int pack_b = !bpanels && !p.direct_b;
    const size_t tiles = p.t.mt * p.t.nt;
    if ((size_t)threads > tiles) threads = (int)tiles;

    /* One allocation: the B panels first, so each starts on a 64-byte
     * boundary (nr floats are a multiple of 64 bytes, or of 32 for the
     * portable kernel, which does not care); then an A buffer per thread. */
    size_t bfloats, afloats, total;
    if (glora_size_mul(pack_b ? p.t.pn * kern->nr : 0, k, &bfloats) ||
        glora_size_mul(gemm_ceil_div(p.t.pm, p.t.mt) * kern->mr, p.kc_max, &p.a_floats) ||
        glora_size_add(p.a_floats, 15, &p.a_floats) ||
        glora_size_mul(p.a_floats & ~(size_t)15, (size_t)threads, &afloats) ||
        glora_size_add(bfloats, afloats, &total) ||
        glora_size_add(total, 15, &total) ||
        total > SIZE_MAX / sizeof(float))
        return -1;
    p.a_floats &= ~(size_t)15;
    total &= ~(size_t)15;
    float *buf = gemm_keep_get(&kept, total * sizeof(float));
    if (!buf) return -1;
    p.bpack = bpanels ? (float *)bpanels : buf;
    p.apack = buf + bfloats;
    gemm_run_team(&p, threads, pack_b ? p.t.pn : 0, pack_b_panel, tiles, compute_tile);
    gemm_keep_put(&kept, buf);
    return 0;
}

int sgemm_blocked(const sgemm_kernel_t *kern, glora_trans_t ta, glora_trans_t tb,
                  size_t m, size_t n, size_t k, float alpha, const float *a,
                  size_t lda, const float *b, size_t ldb, float beta, const float *bias,
                  float *c, size_t ldc) {
    return blocked(kern, ta, tb, m, n, k, alpha, a, lda, b, ldb, NULL, beta, bias, NULL, c, ldc);
}

int sgemm_blocked_packed(const sgemm_kernel_t *kern, glora_trans_t ta, size_t m, size_t n,
                         size_t k, float alpha, const float *a, size_t lda,
                         const float *bpanels, float beta, const float *bias,
                         glora_gemm_rows_fn ep, float *c, size_t ldc) {
    return blocked(kern, ta, GLORA_NOTRANS, m, n, k, alpha, a, lda, NULL, 0, bpanels, beta, bias,
                   ep, c, ldc);
}
