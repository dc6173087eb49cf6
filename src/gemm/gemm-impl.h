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
 * last k block; then ep (or NULL) on each finished block of a tile's rows
 * (glora_sgemm_packed_ep). */
int sgemm_blocked_packed(const sgemm_kernel_t *kern, glora_trans_t ta, size_t m, size_t n,
                         size_t k, float alpha, const float *a, size_t lda,
                         const float *bpanels, float beta, const float *bias,
                         glora_gemm_rows_fn ep, float *c, size_t ldc);
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

/* ---- bf16 (bgemm_*.c, kernel_*_bf16.c) --------------------------------
 *
 * Packed bf16 operands are pairs along k in one 32-bit word: the low half
 * is k step 2p, the high half 2p + 1 (what VDPBF16PS multiplies). An A
 * micro-panel is kc pairs x mr words, a B micro-panel kc pairs x nr words;
 * rows or columns past the edge and the odd k's missing partner are zero.
 *
 * The depth of the k blocks is part of the result's definition (each
 * block's sum is merged into C with one rounding): every bf16 kernel uses
 * BGEMM_KC_PAIRS, so the hardware kernel, the emulation and the reference
 * give the same bits. */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#define BGEMM_KC_PAIRS 384

/* Round to nearest even; zero and denormals to signed zero; NaN quieted;
 * the VCVTNEPS2BF16 semantics. */
static inline uint16_t bgemm_bf16_bits(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    if ((u & 0x7f800000u) == 0) return (uint16_t)((u >> 16) & 0x8000u);
    if ((u & 0x7f800000u) == 0x7f800000u)
        return (uint16_t)((u >> 16) | ((u & 0x7fffffu) ? 0x40u : 0u));
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

static inline uint32_t bgemm_pair(float lo, float hi) {
    return (uint32_t)bgemm_bf16_bits(lo) | (uint32_t)bgemm_bf16_bits(hi) << 16;
}

/* Equal k blocks of at most BGEMM_KC_PAIRS pairs, depending on k alone. */
static inline size_t bgemm_block_pairs(size_t k) {
    size_t kp = (k + 1) / 2, nb = (kp + BGEMM_KC_PAIRS - 1) / BGEMM_KC_PAIRS;
    return nb ? (kp + nb - 1) / nb : 0;
}

/* Micro-kernel: the m x n tile (m <= mr, n <= nr) of C = alpha * Ap * Bp +
 * beta * C (+ bias) over kp pairs; ap a packed A micro-panel, bp a packed B
 * micro-panel's block (kp x nr words). The finish is sgemm's: alpha * sum,
 * then beta * C in one fused rounding, then + bias. */
typedef void (*bgemm_ukernel_fn)(size_t kp, const uint32_t *ap, const uint32_t *bp, float *c,
                                 size_t ldc, size_t m, size_t n, float alpha, float beta,
                                 const float *bias);
/* Packs rows [0, mc) x k steps [k0, k1) of op(A) (a at its origin) into
 * micro-panels of (k1 - k0 + 1) / 2 pairs x mr words. */
typedef void (*bgemm_pack_a_fn)(glora_trans_t ta, size_t mc, size_t k0, size_t k1,
                                const float *a, size_t lda, size_t mr, uint32_t *dst);
/* Packs all k steps of columns [0, nc) of op(B) (b at the first column)
 * into micro-panels of (k + 1) / 2 pairs x nr words. */
typedef void (*bgemm_pack_b_fn)(glora_trans_t tb, size_t k, size_t nc, const float *b,
                                size_t ldb, size_t nr, uint32_t *dst);

typedef struct {
    const char *name;          /* "avx512_bf16", "emulated" */
    const char *ukernel_name;  /* e.g. "bgemm_avx512bf16_12x32" */
    int (*cpu_ok)(void);
    int emulated;              /* no bf16 hardware */
    size_t mr, nr;             /* register tile */
    size_t mc, nc;             /* cache blocks (rows, columns); depth BGEMM_KC_PAIRS */
    bgemm_ukernel_fn ukernel;
    bgemm_pack_a_fn pack_a;
    bgemm_pack_b_fn pack_b;
} bgemm_kernel_t;

/* The loop nest (bgemm_blocked.c): bpanels is op(B) packed whole by
 * kern->pack_b, or NULL to pack it here; ep (or NULL) as in
 * glora_sgemm_packed_ep. 0, or -1 when buffers cannot be allocated (C
 * untouched). m, n, k > 0. */
int bgemm_blocked(const bgemm_kernel_t *kern, glora_trans_t ta, glora_trans_t tb, size_t m,
                  size_t n, size_t k, float alpha, const float *a, size_t lda, const float *b,
                  size_t ldb, const uint32_t *bpanels, float beta, const float *bias,
                  glora_gemm_rows_fn ep, float *c, size_t ldc);
/* glora_gemm_b_pack and glora_sgemm_packed for bf16 (bgemm.c); pb's
 * fields b, ldb, tb, k, n are set. */
int bgemm_b_pack(glora_sgemm_b_t *pb);
void bgemm_packed(glora_trans_t ta, size_t m, size_t j0, size_t n, float alpha, const float *a,
                  size_t lda, const glora_sgemm_b_t *pb, float beta, const float *bias,
                  glora_gemm_rows_fn ep, float *c, size_t ldc);
/* glora_gemm_b_panels_only for a bf16 pb (bgemm.c). */
int bgemm_panels_only(const glora_sgemm_b_t *pb, size_t j0);
/* Frees the calling thread's kept bf16 packing buffer. */
void bgemm_release(void);
/* The bf16 kernel in use (bgemm.c), or NULL for the reference. */
const bgemm_kernel_t *bgemm_current(void);
/* Words of op(B) (k x n) packed whole. 0 on overflow. */
size_t bgemm_packed_b_words(const bgemm_kernel_t *kern, size_t k, size_t n);

void bgemm_pack_a_portable(glora_trans_t ta, size_t mc, size_t k0, size_t k1, const float *a,
                           size_t lda, size_t mr, uint32_t *dst);
void bgemm_pack_b_portable(glora_trans_t tb, size_t k, size_t nc, const float *b, size_t ldb,
                           size_t nr, uint32_t *dst);
void bgemm_avx512_pack_a(glora_trans_t ta, size_t mc, size_t k0, size_t k1, const float *a,
                         size_t lda, size_t mr, uint32_t *dst);
void bgemm_avx512_pack_b(glora_trans_t tb, size_t k, size_t nc, const float *b, size_t ldb,
                         size_t nr, uint32_t *dst);
void bgemm_emulated_12x32(size_t kp, const uint32_t *ap, const uint32_t *bp, float *c,
                          size_t ldc, size_t m, size_t n, float alpha, float beta,
                          const float *bias);
void bgemm_avx512bf16_12x32(size_t kp, const uint32_t *ap, const uint32_t *bp, float *c,
                            size_t ldc, size_t m, size_t n, float alpha, float beta,
                            const float *bias);

/* One VDPBF16PS lane, exactly: acc + hi products, then + lo products, each
 * a fused multiply-add rounded to nearest even with a denormal result
 * flushed to signed zero (inputs: packed bf16, never denormal, and acc,
 * never denormal either). A product of two bf16 values has at most 16
 * significant bits, so where it is a normal float it is exact and a plain
 * add gives the fused result; elsewhere (underflow, overflow) fmaf does. */
static inline float bgemm_emulated_fma(float a, float b, float acc) {
    float p = a * b, r;
    if (fabsf(p) >= FLT_MIN && fabsf(p) <= FLT_MAX)
        r = acc + p;
    else
        r = fmaf(a, b, acc);
    return fabsf(r) < FLT_MIN ? copysignf(0.0f, r) : r;
}
static inline float bgemm_dp_step(float acc, uint32_t a, uint32_t b) {
    float ah, bh, al, bl;
    uint32_t u;
    u = a & 0xffff0000u; memcpy(&ah, &u, 4);
    u = b & 0xffff0000u; memcpy(&bh, &u, 4);
    u = a << 16; memcpy(&al, &u, 4);
    u = b << 16; memcpy(&bl, &u, 4);
    acc = bgemm_emulated_fma(ah, bh, acc);
    return bgemm_emulated_fma(al, bl, acc);
}

/* The cblas backend (gemm_cblas.c). Returns 0, or -1 when it cannot
 * take the product (not built in, or a size beyond its int arguments). */
int sgemm_cblas(glora_trans_t ta, glora_trans_t tb, size_t m, size_t n, size_t k,
                 float alpha, const float *a, size_t lda, const float *b, size_t ldb,
                 float beta, float *c, size_t ldc);

#endif
