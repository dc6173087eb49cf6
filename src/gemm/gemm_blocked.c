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

#include <stdint.h>
#include <stdlib.h>

#include "glora/common.h"
#include "util/parallel.h"

/* Below this many multiply-adds per thread, starting a team costs more than
 * it saves (waking a worker takes microseconds, longer on a loaded box). */
#define FMAS_PER_THREAD ((double)(1u << 22))
/* Tiles per thread when a team runs, so that dealing them out evens out
 * threads the machine slows down, and the last tile, which one thread
 * finishes alone, is short. Row tiles are cut no thinner than MIN_TILE_PANELS
 * micro-panels, so each B block brought into L2 serves a few of them. */
#define TILES_PER_THREAD 8
#define MIN_TILE_PANELS 4
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

/* The packing buffer is kept per calling thread between products: a fresh
 * allocation of megabytes costs page faults on every call (5% of a ViT-B
 * layer), and the search makes many small products on each of its
 * threads. Buffers above the limit are not kept. */
#define KEEP_FLOATS_MAX ((size_t)16 << 20) /* 64 MiB */
static _Thread_local float *kept_buf;
static _Thread_local size_t kept_floats;

static float *get_buffer(size_t floats) {
    if (floats <= kept_floats) return kept_buf;
    float *buf = aligned_alloc(64, floats * sizeof(float));
    if (!buf || floats > KEEP_FLOATS_MAX) return buf;
    free(kept_buf);
    kept_buf = buf;
    kept_floats = floats;
    return buf;
}

static void put_buffer(float *buf) {
    if (buf != kept_buf) free(buf);
}

void glora_gemm_release(void) {
    bgemm_release();
    free(kept_buf);
    kept_buf = NULL;
    kept_floats = 0;
}

static size_t ceil_div(size_t a, size_t b) { return (a + b - 1) / b; }
static size_t min_size(size_t a, size_t b) { return a < b ? a : b; }

/* Tile i of mt covers micro-panel rows [i*pm/mt, (i+1)*pm/mt) (likewise
 * columns), so tiles differ by at most one micro-panel. */
typedef struct {
    const sgemm_kernel_t *kern;
    glora_trans_t ta, tb;
    size_t m, n, k;
    float alpha, beta;
    const float *a, *b;
    size_t lda, ldb, ldc;
    float *c;
    size_t kc_max;   /* depth of every k block but the last */
    size_t pm, pn;   /* micro-panels along m and n */
    size_t mt, nt;   /* tiles along m and n */
    int direct_b;    /* op(B) read in place rather than packed */
    int direct_a;    /* op(A) likewise */
    float *bpack;    /* pn panels of k x nr */
    float *apack;    /* per thread: a tile's rows for one k block */
    const float *bias; /* n, added after the last k block, or NULL */
    size_t a_floats; /* floats of one thread's A buffer */
} plan_t;

static int choose_threads(size_t m, size_t n, size_t k) {
    if (glora_in_parallel()) return 1;
    int nt = glora_max_threads();
    double by_work = (double)m * (double)n * (double)k / FMAS_PER_THREAD;
    if (by_work < nt) nt = (int)by_work;
    return nt < 1 ? 1 : nt;
}

/* Row tiles no taller than mc; with a team, TILES_PER_THREAD tiles per
 * thread where the rows allow, and if they give fewer than two per thread,
 * column tiles too (each packs the same rows of A again). */
static void plan_tiles(plan_t *p, int threads) {
    const sgemm_kernel_t *kern = p->kern;
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

static void pack_one_panel(const sgemm_kernel_t *kern, glora_trans_t tb, size_t k, size_t n,
                           const float *b, size_t ldb, size_t jp, float *bpack) {
    size_t j0 = jp * kern->nr;
    const float *src = tb ? b + j0 * ldb : b + j0;
    kern->pack_b(tb, k, min_size(kern->nr, n - j0), src, ldb, kern->nr, bpack + jp * k * kern->nr);
}

static void pack_b_panel(const plan_t *p, size_t jp) {
    pack_one_panel(p->kern, p->tb, p->k, p->n, p->b, p->ldb, jp, p->bpack);
}

size_t sgemm_packed_b_floats(const sgemm_kernel_t *kern, size_t k, size_t n) {
    size_t floats;
    if (glora_size_mul(ceil_div(n, kern->nr) * kern->nr, k, &floats)) return 0;
    return floats;
}

void sgemm_pack_b_whole(const sgemm_kernel_t *kern, glora_trans_t tb, size_t k, size_t n,
                        const float *b, size_t ldb, float *dst) {
    for (size_t jp = 0; jp < ceil_div(n, kern->nr); jp++) pack_one_panel(kern, tb, k, n, b, ldb, jp, dst);
}

/* Tile u of C, all k blocks in order (beta on the first, 1 afterwards),
 * with abuf as the thread's A buffer. */
static void compute_tile(const plan_t *p, size_t u, float *abuf) {
    const sgemm_kernel_t *kern = p->kern;
    size_t mr = kern->mr, nr = kern->nr, k = p->k;
    size_t ti = u / p->nt, tj = u % p->nt;
    size_t i0 = ti * p->pm / p->mt * mr, i1 = min_size((ti + 1) * p->pm / p->mt * mr, p->m);
    size_t jp0 = tj * p->pn / p->nt, jp1 = (tj + 1) * p->pn / p->nt;
    size_t panels_per_block = kern->nc / nr;
    for (size_t pc = 0; pc < k; pc += p->kc_max) {
        size_t kc = min_size(p->kc_max, k - pc);
        const float *src = p->ta ? p->a + pc * p->lda + i0 : p->a + i0 * p->lda + pc;
        if (!p->direct_a) kern->pack_a(p->ta, i1 - i0, kc, src, p->lda, mr, abuf);
        for (size_t jp = jp0; jp < jp1; jp += panels_per_block) {
            size_t j0 = jp * nr, j1 = min_size(min_size(jp + panels_per_block, jp1) * nr, p->n);
            const float *bp = p->direct_b ? p->b + pc * p->ldb + j0
                                          : p->bpack + jp * k * nr + pc * nr;
            sgemm_macro(kern, i1 - i0, j1 - j0, kc, p->alpha, p->direct_a ? src : abuf,
                        p->direct_a ? mr * p->lda : kc * mr, p->direct_a ? p->lda : 0, bp,
                        p->direct_b ? nr : k * nr, p->direct_b ? p->ldb : nr,
                        pc == 0 ? p->beta : 1.0f,
                        p->bias && pc + kc == k ? p->bias + j0 : NULL,
                        p->c + i0 * p->ldc + j0, p->ldc);
        }
    }
}

static void run_serial(const plan_t *p, int pack_b) {
    if (pack_b)
        for (size_t jp = 0; jp < p->pn; jp++) pack_b_panel(p, jp);
    for (size_t u = 0; u < p->mt * p->nt; u++) compute_tile(p, u, p->apack);
}

static void run_parallel(const plan_t *p, int threads, int pack_b) {
    #pragma omp parallel num_threads(threads)
    {
        float *abuf = p->apack + (size_t)glora_thread_id() * p->a_floats;
        #pragma omp for schedule(dynamic, 2)
        for (size_t jp = 0; jp < (pack_b ? p->pn : 0); jp++) pack_b_panel(p, jp);
        #pragma omp for schedule(dynamic, 1) nowait
        for (size_t u = 0; u < p->mt * p->nt; u++) compute_tile(p, u, abuf);
    }
}

/* bpanels: op(B) packed whole by the caller, or NULL to pack it here (or
 * read it in place). */
static int blocked(const sgemm_kernel_t *kern, glora_trans_t ta, glora_trans_t tb, size_t m,
                   size_t n, size_t k, float alpha, const float *a, size_t lda, const float *b,
                   size_t ldb, const float *bpanels, float beta, const float *bias, float *c,
                   size_t ldc) {
    plan_t p = {.kern = kern, .ta = ta, .tb = tb, .m = m, .n = n, .k = k,
                .alpha = alpha, .beta = beta, .a = a, .b = b, .lda = lda,
                .ldb = ldb, .ldc = ldc, .c = c, .bias = bias};
    /* Equal k blocks no deeper than kc, rather than full ones and a sliver;
     * they depend on k alone, never on the team. */
    p.kc_max = ceil_div(k, ceil_div(k, kern->kc));
    int threads = choose_threads(m, n, k);
    plan_tiles(&p, threads);
    p.direct_b = !bpanels && kern->direct_b && !tb && p.pm <= DIRECT_B_MAX_PANELS;
    p.direct_a = kern->ukernel_da && !ta && k <= DIRECT_A_MAX_K;
    const int pack_b = !bpanels && !p.direct_b;
    if ((size_t)threads > p.mt * p.nt) threads = (int)(p.mt * p.nt);

    /* One allocation: the B panels first, so each starts on a 64-byte
     * boundary (nr floats are a multiple of 64 bytes, or of 32 for the
     * portable kernel, which does not care); then an A buffer per thread. */
    size_t bfloats, afloats, total;
    if (glora_size_mul(pack_b ? p.pn * kern->nr : 0, k, &bfloats) ||
        glora_size_mul(ceil_div(p.pm, p.mt) * kern->mr, p.kc_max, &p.a_floats) ||
        glora_size_add(p.a_floats, 15, &p.a_floats) ||
        glora_size_mul(p.a_floats & ~(size_t)15, (size_t)threads, &afloats) ||
        glora_size_add(bfloats, afloats, &total) ||
        glora_size_add(total, 15, &total) ||
        total > SIZE_MAX / sizeof(float))
        return -1;
    p.a_floats &= ~(size_t)15;
    total &= ~(size_t)15;
    float *buf = get_buffer(total);
    if (!buf) return -1;
    p.bpack = bpanels ? (float *)bpanels : buf;
    p.apack = buf + bfloats;

    if (threads > 1)
        run_parallel(&p, threads, pack_b);
    else
        run_serial(&p, pack_b);
    put_buffer(buf);
    return 0;
}

int sgemm_blocked(const sgemm_kernel_t *kern, glora_trans_t ta, glora_trans_t tb,
                  size_t m, size_t n, size_t k, float alpha, const float *a,
                  size_t lda, const float *b, size_t ldb, float beta, const float *bias,
                  float *c, size_t ldc) {
    return blocked(kern, ta, tb, m, n, k, alpha, a, lda, b, ldb, NULL, beta, bias, c, ldc);
}

int sgemm_blocked_packed(const sgemm_kernel_t *kern, glora_trans_t ta, size_t m, size_t n,
                         size_t k, float alpha, const float *a, size_t lda,
                         const float *bpanels, float beta, const float *bias, float *c,
                         size_t ldc) {
    return blocked(kern, ta, GLORA_NOTRANS, m, n, k, alpha, a, lda, NULL, 0, bpanels, beta, bias,
                   c, ldc);
}
