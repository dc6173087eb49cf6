/*
 * gemm-impl.h - internals of the blocked single-precision GEMM.
 *
 * The product is the BLIS loop nest, written for row-major C:
 *
 *   gemm_blocked.c  pack op(B) whole, shared by the team; deal the tiles
 *                   of C to threads; in each tile, the pc loop over k
 *                   blocks (never split across threads), packing the
 *                   tile's rows of op(A) per block, and the jc loop
 *   gemm_macro.c    one tile, k block and nc columns: ir over MR rows (the
 *                   A micro-panel stays in L1), jr over NR columns (the B
 *                   block, kc x nc, stays in L2)
 *   gemm_pack.c     portable packing; pack_avx512.c, the AVX-512 tile's
 *                   (packing is separate from compute)
 *   kernel_*.c      register-tiled micro-kernels, one per ISA
 *   gemm.c          the kernel table and dispatch; gemm_cblas.c OpenBLAS
 *
 * The register tile and the cache blocks of every ISA are in one table,
 * kernels[] in gemm.c.
 *
 * Every element of C is produced by the same sequence of operations
 * whatever tile, edge or thread it falls in: one accumulator per element,
 * summed over k in order inside each kc block, then merged into C
 * (beta on the first block, 1 afterwards). That is what makes results
 * bit-identical for any number of threads.
 */
#ifndef GLORA_GEMM_IMPL_H
#define GLORA_GEMM_IMPL_H

#include <stddef.h>

#include "glora/gemm.h"

/*
 * A micro-kernel computes one m x n tile of C (m <= MR, n <= NR):
 *     C = alpha * Ap * Bp + beta * C        (beta == 0: C is not read)
 * ap is a packed A micro-panel (k steps of MR floats, rows past m are
 * zero). bp holds k steps of B, ldbp floats apart: a packed micro-panel
 * (ldbp == NR, 64-byte aligned, columns past n zero), or, for a kernel
 * marked direct_b, B in place (any stride and alignment; columns past n
 * are not read). Only the m x n elements of C are touched. bias, when not
 * NULL, is added to every row of the result after alpha and beta (n floats;
 * the same bits as adding it afterwards).
 */
typedef void (*sgemm_ukernel_fn)(size_t k, const float *ap, const float *bp, size_t ldbp,
                                 float *c, size_t ldc, size_t m, size_t n,
                                 float alpha, float beta, const float *bias);
/*
 * The same, with op(A) = A (not transposed) read in place: row i of the
 * tile at a + i*lda, k steps contiguous. For short k the tile's rows stay
 * in L1 as well as a packed panel would, and packing them costs a pass
 * over A for every product (the activations, in a forward pass).
 */
typedef void (*sgemm_ukernel_da_fn)(size_t k, const float *a, size_t lda, const float *bp,
                                    size_t ldbp, float *c, size_t ldc, size_t m, size_t n,
                                    float alpha, float beta, const float *bias);

/*
 * Packs the mc x kc block of op(A) starting at a (already offset to the
 * block) into ceil(mc/mr) micro-panels of kc x mr floats, zero-padding the
 * last one.
 */
typedef void (*sgemm_pack_a_fn)(glora_trans_t ta, size_t mc, size_t kc,
                                const float *a, size_t lda, size_t mr, float *dst);
/*
 * Packs the kc x nc block of op(B) starting at b into ceil(nc/nr)
 * micro-panels of kc x nr floats, zero-padding the last one.
 */
typedef void (*sgemm_pack_b_fn)(glora_trans_t tb, size_t kc, size_t nc,
                                const float *b, size_t ldb, size_t nr, float *dst);

typedef struct {
    const char *name;        /* "avx512", "avx2", "portable" */
    const char *ukernel_name; /* ISA, type and tile, e.g. "sgemm_avx512_12x32" */
    int (*cpu_ok)(void);     /* non-zero when this CPU runs it */
    size_t mr, nr;           /* register tile: rows x columns of C */
    size_t mc, kc, nc;       /* cache blocks: rows, depth, columns */
    sgemm_ukernel_fn ukernel;
    sgemm_pack_a_fn pack_a;
    sgemm_pack_b_fn pack_b;
    int direct_b;            /* the micro-kernel also reads op(B) in place */
    sgemm_ukernel_da_fn ukernel_da; /* reads A in place, or NULL */
} sgemm_kernel_t;

/* The loop nest (gemm_blocked.c). Returns 0, or -1 when its buffers
 * cannot be allocated (C is then untouched). Needs m, n, k > 0. */
int sgemm_blocked(const sgemm_kernel_t *kern, glora_trans_t ta, glora_trans_t tb,
                  size_t m, size_t n, size_t k, float alpha, const float *a,
                  size_t lda, const float *b, size_t ldb, float beta, const float *bias,
                  float *c, size_t ldc);
/* The same with op(B) already packed by sgemm_pack_b_whole (bpanels: its
 * first panel used), and bias (n, or NULL) added to every row of C after the
 * last k block. */
int sgemm_blocked_packed(const sgemm_kernel_t *kern, glora_trans_t ta, size_t m, size_t n,
                         size_t k, float alpha, const float *a, size_t lda,
                         const float *bpanels, float beta, const float *bias, float *c,
                         size_t ldc);
/* Floats of op(B) (k x n) packed whole: ceil(n / nr) panels of k x nr. */
size_t sgemm_packed_b_floats(const sgemm_kernel_t *kern, size_t k, size_t n);
void sgemm_pack_b_whole(const sgemm_kernel_t *kern, glora_trans_t tb, size_t k, size_t n,
                        const float *b, size_t ldb, float *dst);

/* One mc x nc tile of C for one k block (gemm_macro.c): apack and bpack
 * point at the block's part of the first A and B micro-panels; the next
 * panels are a_stride and b_stride floats further on; ldbp as for the
 * micro-kernel. lda_direct > 0: apack is A itself, rows lda_direct apart,
 * for the kernel's ukernel_da. */
void sgemm_macro(const sgemm_kernel_t *kern, size_t mc, size_t nc, size_t kc,
                 float alpha, const float *apack, size_t a_stride, size_t lda_direct,
                 const float *bpack, size_t b_stride, size_t ldbp, float beta,
                 const float *bias, float *c, size_t ldc);

/* Portable packing (gemm_pack.c), valid for any mr and nr. */
void sgemm_pack_a_portable(glora_trans_t ta, size_t mc, size_t kc, const float *a,
                           size_t lda, size_t mr, float *dst);
void sgemm_pack_b_portable(glora_trans_t tb, size_t kc, size_t nc, const float *b,
                           size_t ldb, size_t nr, float *dst);

/* Micro-kernels and ISA-specific packing. */
void sgemm_portable_6x8(size_t k, const float *ap, const float *bp, size_t ldbp, float *c,
                        size_t ldc, size_t m, size_t n, float alpha, float beta,
                        const float *bias);
void sgemm_avx2_6x16(size_t k, const float *ap, const float *bp, size_t ldbp, float *c,
                     size_t ldc, size_t m, size_t n, float alpha, float beta, const float *bias);
void sgemm_avx512_12x32(size_t k, const float *ap, const float *bp, size_t ldbp, float *c,
                        size_t ldc, size_t m, size_t n, float alpha, float beta,
                        const float *bias);
void sgemm_avx512_12x32_da(size_t k, const float *a, size_t lda, const float *bp, size_t ldbp,
                           float *c, size_t ldc, size_t m, size_t n, float alpha, float beta,
                           const float *bias);
void sgemm_avx512_pack_a(glora_trans_t ta, size_t mc, size_t kc, const float *a,
                         size_t lda, size_t mr, float *dst);
void sgemm_avx512_pack_b(glora_trans_t tb, size_t kc, size_t nc, const float *b,
                         size_t ldb, size_t nr, float *dst);

/* The cblas backend (gemm_cblas.c). Returns 0, or -1 when it cannot
 * take the product (not built in, or a size beyond its int arguments). */
int sgemm_cblas(glora_trans_t ta, glora_trans_t tb, size_t m, size_t n, size_t k,
                 float alpha, const float *a, size_t lda, const float *b, size_t ldb,
                 float beta, float *c, size_t ldc);

#endif
