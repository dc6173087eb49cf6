/* Kernel table and dispatch: which kernel glora_sgemm uses, chosen once by
 * CPU detection ("auto"), by GLORA_GEMM at first use, or by
 * glora_gemm_set_kernel. */
#include "config.h"
#include "gemm-impl.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "glora/common.h"
#include "util/cpu.h"

static int cpu_any(void) { return 1; }

/* The native kernels, best first: register tile mr x nr and cache blocks.
 * kc: the A micro-panel (mr x kc) stays in L1 while B streams past it;
 * nc: the B block (kc x nc) stays in L2; mc: rows of a tile, whose packed
 * A block (mc x kc) stays in L2 beside it. (2 MiB L2, 48 KiB L1d for the
 * AVX-512 figures, tuned on a Sapphire Rapids class Xeon.) */
static const sgemm_kernel_t kernels[] = {
    {"avx512", "sgemm_avx512_12x32", util_cpu_avx512, 12, 32, 240, 384, 512,
     sgemm_avx512_12x32, sgemm_avx512_pack_a, sgemm_avx512_pack_b, 1, sgemm_avx512_12x32_da},
    {"avx2", "sgemm_avx2_6x16", util_cpu_avx2, 6, 16, 144, 256, 512,
     sgemm_avx2_6x16, sgemm_pack_a_portable, sgemm_pack_b_portable, 0, NULL},
    {"portable", "sgemm_portable_6x8", cpu_any, 6, 8, 120, 256, 512,
     sgemm_portable_6x8, sgemm_pack_a_portable, sgemm_pack_b_portable, 0, NULL},
};
#define NKERNELS ((int)(sizeof kernels / sizeof kernels[0]))
enum { KERNEL_REF = NKERNELS, KERNEL_CBLAS };

static atomic_int current = -1;
static int env_status = GLORA_OK;
static char env_message[256];
static pthread_once_t env_once = PTHREAD_ONCE_INIT;

static int best_native(void) {
    for (int i = 0; i < NKERNELS; i++)
        if (kernels[i].cpu_ok()) return i;
    return KERNEL_REF; /* unreachable: the portable kernel runs anywhere */
}

/* Resolves a name to a kernel index, or sets the error and returns < 0. */
static int lookup(const char *name) {
    if (!name) return glora_error(GLORA_EINVAL, "GEMM kernel '(null)': no name given");
    if (strcmp(name, "auto") == 0) return best_native();
    if (strcmp(name, "ref") == 0) return KERNEL_REF;
    if (strcmp(name, "cblas") == 0) {
#ifdef GLORA_HAVE_CBLAS
        return KERNEL_CBLAS;
#else
        glora_error(GLORA_EINVAL, "GEMM kernel '%s': not built in", name);
        glora_error_hint("configure with --with-blas=openblas");
        return GLORA_EINVAL;
#endif
    }
    for (int i = 0; i < NKERNELS; i++) {
        if (strcmp(name, kernels[i].name) != 0) continue;
        if (!kernels[i].cpu_ok())
            return glora_error(GLORA_EINVAL, "GEMM kernel '%s': this CPU lacks its instructions",
                               name);
        return i;
    }
    return glora_error(GLORA_EINVAL,
                       "GEMM kernel '%s': unknown (auto, avx512, avx2, portable, ref, cblas)",
                       name);
}

static void apply_env(void) {
    const char *name = getenv("GLORA_GEMM");
    int id = best_native();
    if (name && *name) {
        int found = lookup(name);
        if (found >= 0) {
            id = found;
        } else {
            env_status = found;
            snprintf(env_message, sizeof env_message, "GLORA_GEMM: %s", glora_errmsg());
            glora_error_clear();
        }
    }
    atomic_store(&current, id);
}

static int current_kernel(void) {
    int id = atomic_load_explicit(&current, memory_order_relaxed);
    if (id >= 0) return id;
    pthread_once(&env_once, apply_env);
    return atomic_load(&current);
}

int glora_gemm_set_kernel(const char *name) {
    pthread_once(&env_once, apply_env);
    int id = lookup(name);
    if (id < 0) return id;
    atomic_store(&current, id);
    return GLORA_OK;
}

const char *glora_gemm_kernel(void) {
    int id = current_kernel();
    if (id == KERNEL_REF) return "ref";
    if (id == KERNEL_CBLAS) return "cblas";
    return kernels[id].name;
}

const char *glora_gemm_ukernel(void) {
    int id = current_kernel();
    if (id == KERNEL_REF) return "sgemm_ref";
    if (id == KERNEL_CBLAS) return "cblas_sgemm";
    return kernels[id].ukernel_name;
}

int glora_gemm_check_env(void) {
    pthread_once(&env_once, apply_env);
    if (env_status == GLORA_OK) return GLORA_OK;
    return glora_error(env_status, "%s", env_message);
}

/* C = beta * C, the whole product when alpha or k is zero (A and B are then
 * not read, as in BLAS). */
static void scale_c(size_t m, size_t n, float beta, float *c, size_t ldc) {
    if (beta == 1.0f) return;
    for (size_t i = 0; i < m; i++) {
        float *ci = c + i * ldc;
        if (beta == 0.0f)
            memset(ci, 0, n * sizeof *ci);
        else
            for (size_t j = 0; j < n; j++) ci[j] *= beta;
    }
}

/* C += bias on every row, after the product. */
static void add_rows(size_t m, size_t n, const float *bias, float *c, size_t ldc) {
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++) c[i * ldc + j] += bias[j];
}

void glora_sgemm_bias(glora_trans_t ta, glora_trans_t tb, size_t m, size_t n, size_t k,
                      float alpha, const float *a, size_t lda, const float *b, size_t ldb,
                      float beta, const float *bias, float *c, size_t ldc) {
    if (m == 0 || n == 0) return;
    GLORA_ASSERT(c && ldc >= n);
    if (k == 0 || alpha == 0.0f) {
        scale_c(m, n, beta, c, ldc);
        if (bias) add_rows(m, n, bias, c, ldc);
        return;
    }
    GLORA_ASSERT(a && lda >= (ta ? m : k));
    GLORA_ASSERT(b && ldb >= (tb ? k : n));
    int id = current_kernel();
    if (id < NKERNELS &&
        sgemm_blocked(&kernels[id], ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, bias, c, ldc) == 0)
        return;
    /* OpenBLAS, or the reference, which needs no buffers: it is also the way
     * out when the packed panels cannot be allocated. */
    if (!(id == KERNEL_CBLAS &&
          sgemm_cblas(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc) == 0))
        glora_sgemm_ref(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    if (bias) add_rows(m, n, bias, c, ldc);
}

void glora_sgemm(glora_trans_t ta, glora_trans_t tb, size_t m, size_t n, size_t k,
                 float alpha, const float *a, size_t lda, const float *b, size_t ldb,
                 float beta, float *c, size_t ldc) {
    glora_sgemm_bias(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, NULL, c, ldc);
}

int glora_sgemm_b_pack(glora_sgemm_b_t *pb, glora_trans_t tb, size_t k, size_t n,
                       const float *b, size_t ldb) {
    return glora_gemm_b_pack(pb, GLORA_FP32, tb, k, n, b, ldb);
}

int glora_gemm_b_pack(glora_sgemm_b_t *pb, glora_precision_t prec, glora_trans_t tb, size_t k,
                      size_t n, const float *b, size_t ldb) {
    GLORA_ASSERT(pb && b && ldb >= (tb ? k : n));
    pb->b = b;
    pb->ldb = ldb;
    pb->tb = tb;
    pb->k = k;
    pb->n = n;
    pb->kernel = -1;
    pb->precision = prec;
    if (prec == GLORA_BF16) return bgemm_b_pack(pb);
    int id = current_kernel();
    if (id >= NKERNELS || k == 0 || n == 0) return GLORA_OK; /* products read b */
    size_t floats = sgemm_packed_b_floats(&kernels[id], k, n);
    if (floats == 0 || floats > SIZE_MAX / sizeof(float))
        return glora_error(GLORA_ENOMEM, "GEMM 'pack': %zu x %zu operand too large", k, n);
    if (floats > pb->cap) {
        free(pb->panels);
        pb->cap = 0;
        pb->panels = aligned_alloc(64, (floats * sizeof(float) + 63) & ~(size_t)63);
        if (!pb->panels)
            return glora_error(GLORA_ENOMEM, "GEMM 'pack': out of memory for %zu floats", floats);
        pb->cap = floats;
    }
    sgemm_pack_b_whole(&kernels[id], tb, k, n, b, ldb, pb->panels);
    pb->kernel = id;
    return GLORA_OK;
}

void glora_sgemm_b_free(glora_sgemm_b_t *pb) {
    if (!pb) return;
    free(pb->panels);
    pb->panels = NULL;
    pb->cap = 0;
    pb->kernel = -1;
}

void glora_sgemm_packed(glora_trans_t ta, size_t m, size_t j0, size_t n, float alpha,
                        const float *a, size_t lda, const glora_sgemm_b_t *pb, float beta,
                        const float *bias, float *c, size_t ldc) {
    glora_sgemm_packed_ep(ta, m, j0, n, alpha, a, lda, pb, beta, bias, NULL, c, ldc);
}

void glora_sgemm_packed_ep(glora_trans_t ta, size_t m, size_t j0, size_t n, float alpha,
                           const float *a, size_t lda, const glora_sgemm_b_t *pb, float beta,
                           const float *bias, glora_gemm_rows_fn ep, float *c, size_t ldc) {
    const size_t k = pb->k;
    GLORA_ASSERT(j0 <= pb->n && n <= pb->n - j0);
    if (m == 0 || n == 0) return;
    if (pb->precision == GLORA_BF16) {
        bgemm_packed(ta, m, j0, n, alpha, a, lda, pb, beta, bias, ep, c, ldc);
        return;
    }
    const int id = pb->kernel;
    if (k > 0 && alpha != 0.0f && id >= 0 && id == current_kernel() && j0 % kernels[id].nr == 0) {
        GLORA_ASSERT(c && ldc >= n && a && lda >= (ta ? m : k));
        const float *panels = pb->panels + j0 / kernels[id].nr * k * kernels[id].nr;
        if (sgemm_blocked_packed(&kernels[id], ta, m, n, k, alpha, a, lda, panels, beta, bias, ep,
                                 c, ldc) == 0)
            return;
    }
    /* No usable panels (or no buffer for A): the product from b itself (a
     * b let go after glora_gemm_b_panels_only gets here only out of memory). */
    GLORA_ASSERT(pb->b || k == 0 || alpha == 0.0f);
    const float *b = !pb->b ? NULL : pb->tb ? pb->b + j0 * pb->ldb : pb->b + j0;
    glora_sgemm_bias(ta, pb->tb, m, n, k, alpha, a, lda, b, pb->ldb, beta, bias, c, ldc);
    for (size_t i = 0; ep && i < m; i++) ep(c + i * ldc, c + i * ldc, n);
}

int glora_gemm_b_panels_only(const glora_sgemm_b_t *pb, size_t j0) {
    if (pb->precision == GLORA_BF16) return bgemm_panels_only(pb, j0);
    const int id = pb->kernel;
    return id >= 0 && id < NKERNELS && id == current_kernel() && pb->panels &&
           j0 % kernels[id].nr == 0;
}
