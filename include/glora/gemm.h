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

/* Arithmetic of the products with a frozen operand. GLORA_FP32 is
 * glora_sgemm. GLORA_BF16 rounds both operands to bfloat16 (round to
 * nearest even; zeros and denormals to signed zero, as VCVTNEPS2BF16 does)
 * and multiplies them as VDPBF16PS does: k taken in pairs (an odd k padded
 * with a zero), each pair accumulated into an fp32 sum as two fused
 * multiply-adds, the odd element's first, rounded to nearest even with
 * denormal results flushed to zero; output fp32. */
typedef enum { GLORA_FP32 = 0, GLORA_BF16 = 1 } glora_precision_t;

/* "fp32" or "bf16". */
const char *glora_precision_name(glora_precision_t p);
/* {"fp32", "bf16", NULL}: the values of a precision key. */
extern const char *const glora_precision_names[];
/* GLORA_OK, or GLORA_EINVAL (with a message naming what) for a name other
 * than fp32 or bf16. */
int glora_precision_parse(const char *name, const char *what, glora_precision_t *out);

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
    glora_precision_t precision; /* GLORA_BF16: panels are bf16 pairs */
} glora_sgemm_b_t;

/* GLORA_OK, or GLORA_ENOMEM (with a message) when the panels cannot be
 * allocated; pb then still works, unpacked. */
int glora_sgemm_b_pack(glora_sgemm_b_t *pb, glora_trans_t tb, size_t k, size_t n,
                       const float *b, size_t ldb);
void glora_sgemm_b_free(glora_sgemm_b_t *pb);
/* The same for either precision: with GLORA_BF16, op(B) is rounded to bf16
 * once, here, and every glora_sgemm_packed with pb is a bf16 product (the
 * same bits as glora_bgemm_bias's). */
int glora_gemm_b_pack(glora_sgemm_b_t *pb, glora_precision_t prec, glora_trans_t tb, size_t k,
                      size_t n, const float *b, size_t ldb);
/* Non-zero when glora_sgemm_packed with pb from column j0 multiplies by the
 * packed panels alone, never reading b: they were packed by the kernel in
 * use (of pb's precision) and j0 is on a panel boundary. A kernel without
 * panels ("ref", "cblas"), a failed allocation or another kernel chosen
 * since packing give 0. While it holds for j0 = 0, the caller may let b go
 * and set pb->b to NULL: products then read the panels alone (one whose A
 * buffer cannot be allocated stops on an assertion instead of reading b). */
int glora_gemm_b_panels_only(const glora_sgemm_b_t *pb, size_t j0);
/* C (m x n) = alpha * op(A) * op(B)[:, j0 .. j0+n) + beta * C with op(B) as
 * packed in pb, then, when bias is not NULL, C[i][j] += bias[j] on every row
 * (the bias of a linear layer, added while the tile is still in L1; the same
 * bits as adding it afterwards). A column range that starts off the packed
 * panels' boundaries is computed from b. */
void glora_sgemm_packed(glora_trans_t ta, size_t m, size_t j0, size_t n, float alpha,
                        const float *a, size_t lda, const glora_sgemm_b_t *pb, float beta,
                        const float *bias, float *c, size_t ldc);
/* An elementwise function of finished rows of C, out[i] = f(in[i]) for i
 * in [0, n) (out == in), e.g. glora_gelu_forward. */
typedef void (*glora_gemm_rows_fn)(float *out, const float *in, size_t n);
/* glora_sgemm_packed, then C = ep(C): ep runs on each block of a tile's
 * rows as soon as the block's last k block is done, while it is still in
 * cache, rather than in a pass of its own over C afterwards; for an
 * elementwise ep, the same bits. ep NULL: glora_sgemm_packed. */
void glora_sgemm_packed_ep(glora_trans_t ta, size_t m, size_t j0, size_t n, float alpha,
                           const float *a, size_t lda, const glora_sgemm_b_t *pb, float beta,
                           const float *bias, glora_gemm_rows_fn ep, float *c, size_t ldc);

/* glora_sgemm, then C[i][j] += bias[j] on every row (bias n floats, or NULL),
 * the bias added while each tile is still in registers: the same bits as
 * adding it afterwards. */
void glora_sgemm_bias(glora_trans_t ta, glora_trans_t tb, size_t m, size_t n, size_t k,
                      float alpha, const float *a, size_t lda, const float *b, size_t ldb,
                      float beta, const float *bias, float *c, size_t ldc);

/* The bf16 product (see glora_precision_t): C = alpha * op(A) * op(B) +
 * beta * C, then + bias on every row, A and B rounded to bf16 as they are
 * packed, fp32 accumulation and output. The sum over k runs in blocks whose
 * depth depends on k alone, each block's sum merged into C as glora_sgemm
 * does (alpha * sum + beta * C, one fused rounding). The same bits for any
 * thread count, and on a CPU without AVX512_BF16 (exact emulation). */
void glora_bgemm_bias(glora_trans_t ta, glora_trans_t tb, size_t m, size_t n, size_t k,
                      float alpha, const float *a, size_t lda, const float *b, size_t ldb,
                      float beta, const float *bias, float *c, size_t ldc);
/* glora_sgemm or glora_bgemm_bias by precision. */
void glora_gemm_bias(glora_precision_t prec, glora_trans_t ta, glora_trans_t tb, size_t m,
                     size_t n, size_t k, float alpha, const float *a, size_t lda,
                     const float *b, size_t ldb, float beta, const float *bias, float *c,
                     size_t ldc);
/* The bf16 product's definition, element by element with no buffers: the
 * reference the kernels must match bit for bit, and the fallback. */
void glora_bgemm_ref(glora_trans_t ta, glora_trans_t tb, size_t m, size_t n, size_t k,
                     float alpha, const float *a, size_t lda, const float *b, size_t ldb,
                     float beta, const float *bias, float *c, size_t ldc);
/* x rounded to bf16 as the bf16 products round their operands, returned
 * as the float it stands for. */
float glora_bf16_round(float x);
/* bf16 kernel selection: "auto" (the AVX512_BF16 kernel where the CPU has
 * it, otherwise the emulation), "avx512_bf16", "emulated" (exact software,
 * any CPU), "ref". GLORA_OK or GLORA_EINVAL (with a message). GLORA_BGEMM,
 * when set, is applied at first use. */
int glora_bgemm_set_kernel(const char *name);
const char *glora_bgemm_kernel(void);
/* Its micro-kernel's name, e.g. "bgemm_avx512bf16_12x32". */
const char *glora_bgemm_ukernel(void);
/* Non-zero when bf16 products run without AVX512_BF16 (emulated or the
 * reference): correct, much slower. A tool says so in one line. */
int glora_bgemm_emulated(void);

/* This machine's multiply-add peak in GFLOP/s on glora_max_threads()
 * threads, measured for about `seconds`: independent 512-bit FMA (fp32) or
 * VDPBF16PS (bf16) chains in registers. GLORA_EINVAL (with a message) when
 * the CPU lacks AVX-512 (fp32) or AVX512_BF16 (bf16). */
int glora_gemm_peak(glora_precision_t prec, double seconds, double *gflops);

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
