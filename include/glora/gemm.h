/*
 * glora/gemm.h - single-precision matrix products.
 *
 * All matrices are row-major. glora_sgemm computes
 *     C = alpha * op(A) * op(B) + beta * C
 * with op(A) m x k, op(B) k x n, C m x n. When ta is GLORA_TRANS, A is stored
 * k x m (lda >= m); otherwise m x k (lda >= k). Likewise B: TRANS means n x k
 * storage. beta == 0 overwrites C (NaNs in C do not propagate). As in BLAS,
 * alpha == 0 or k == 0 gives C = beta * C without reading A or B, and
 * m == 0 or n == 0 does nothing. Leading dimensions too small for the
 * shape are bugs (assertion).
 *
 * A ViT needs three forms: y = x * W^T (NT), dx = dy * W (NN) and
 * dW += dy^T * x (TN).
 *
 * Determinism: a kernel splits work over blocks of rows and columns of C only,
 * never over k, so each element of C is summed in the same order whatever the
 * number of threads. Inside an enclosing parallel region the product runs on
 * the calling thread alone.
 */
#ifndef GLORA_GEMM_H
#define GLORA_GEMM_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { GLORA_NOTRANS = 0, GLORA_TRANS = 1 } glora_trans_t;

void glora_sgemm(glora_trans_t ta, glora_trans_t tb, size_t m, size_t n, size_t k,
                 float alpha, const float *a, size_t lda, const float *b, size_t ldb,
                 float beta, float *c, size_t ldc);

/* op(B) packed once for many products with the same right-hand side (a
 * layer's merged weight, used for every batch of images a candidate sees):
 * glora_sgemm_b_pack packs it in the layout of the kernel in use,
 * glora_sgemm_packed multiplies by it. The struct does not own b, which must
 * stay unchanged while the packed form is used (a kernel without packed
 * panels, or one chosen after packing, reads b itself). Start from a zeroed
 * struct; packing again reuses its buffer when big enough;
 * glora_sgemm_b_free(NULL) is a no-op. Results are the same bits as
 * glora_sgemm's on the same operands. */
typedef struct {
    const float *b;
    size_t ldb, k, n;
    glora_trans_t tb;
    int kernel;      /* the kernel the panels are for; -1: none */
    float *panels;
    size_t cap;      /* floats allocated at panels */
} glora_sgemm_b_t;

/* GLORA_OK, or GLORA_ENOMEM (with a message) when the panels cannot be
 * allocated; pb then still works, unpacked. */
int glora_sgemm_b_pack(glora_sgemm_b_t *pb, glora_trans_t tb, size_t k, size_t n,
                       const float *b, size_t ldb);
void glora_sgemm_b_free(glora_sgemm_b_t *pb);
/* C (m x n) = alpha * op(A) * op(B)[:, j0 .. j0+n) + beta * C with op(B) as
 * packed in pb, then, when bias is not NULL, C[i][j] += bias[j] on every row
 * (the bias of a linear layer, added while the tile is still in L1; the same
 * bits as adding it afterwards). A column range that starts off the packed
 * panels' boundaries is computed from b. */
void glora_sgemm_packed(glora_trans_t ta, size_t m, size_t j0, size_t n, float alpha,
                        const float *a, size_t lda, const glora_sgemm_b_t *pb, float beta,
                        const float *bias, float *c, size_t ldc);

/* glora_sgemm, then C[i][j] += bias[j] on every row (bias n floats, or NULL),
 * the bias added while each tile is still in registers: the same bits as
 * adding it afterwards. */
void glora_sgemm_bias(glora_trans_t ta, glora_trans_t tb, size_t m, size_t n, size_t k,
                      float alpha, const float *a, size_t lda, const float *b, size_t ldb,
                      float beta, const float *bias, float *c, size_t ldc);

/* glora_sgemm keeps its packing buffer (up to 64 MiB) per calling thread
 * between calls, so that repeated products do not pay for fresh pages.
 * This frees the calling thread's buffer. */
void glora_gemm_release(void);

/* The naive triple loop: always correct, the fallback and the reference. */
void glora_sgemm_ref(glora_trans_t ta, glora_trans_t tb, size_t m, size_t n, size_t k,
                     float alpha, const float *a, size_t lda, const float *b, size_t ldb,
                     float beta, float *c, size_t ldc);

/* Kernel selection. Names: "auto" (best this CPU runs), "avx512", "avx2",
 * "portable", "ref", and "cblas" when built --with-blas. Returns GLORA_OK, or
 * GLORA_EINVAL (with a message) for an unknown name or one this CPU or build
 * cannot run. The GLORA_GEMM environment variable, when set, is applied at
 * first use. */
int glora_gemm_set_kernel(const char *name);
/* Name of the kernel glora_sgemm uses now (after "auto" is resolved). */
const char *glora_gemm_kernel(void);
/* Its micro-kernel, named by ISA, type and tile, e.g. "sgemm_avx512_12x32". */
const char *glora_gemm_ukernel(void);
/* GLORA_OK, or the error (with a message naming GLORA_GEMM) when GLORA_GEMM
 * names a kernel that cannot be used; "auto" is then in force. Lets a tool
 * report a bad setting instead of silently ignoring it. */
int glora_gemm_check_env(void);

#ifdef __cplusplus
}
#endif
#endif
