/* The bf16 products: the kernel table, dispatch, the reference and the
 * public entry points (glora/gemm.h). */
#include "gemm-impl.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "glora/common.h"
#include "util/parallel.h"
#include "util/cpu.h"

static int cpu_any(void) { return 1; }

static int cpu_avx512_bf16(void) {
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    return util_cpu_avx512() && __builtin_cpu_supports("avx512bf16");
#else
    return 0;
#endif
}

/* Best first. Every row shares the packed layout of its tile and the k
 * block depth BGEMM_KC_PAIRS (part of the result's definition); mc and nc
 * as for the fp32 kernels: the A panel (mr x kc pairs, 18 KiB) in L1, the
 * B block (kc pairs x nc, 384 KiB at nc 256) in L2. */
static const bgemm_kernel_t kernels[] = {
    {"avx512_bf16", "bgemm_avx512bf16_12x32", cpu_avx512_bf16, 0, 12, 32, 240, 256,
     bgemm_avx512bf16_12x32, bgemm_avx512_pack_a, bgemm_avx512_pack_b},
    {"emulated", "bgemm_emulated_12x32", cpu_any, 1, 12, 32, 240, 256, bgemm_emulated_12x32,
     bgemm_pack_a_portable, bgemm_pack_b_portable},
};
#define NKERNELS ((int)(sizeof kernels / sizeof kernels[0]))
enum { KERNEL_REF = NKERNELS };

static atomic_int current = -1;
static pthread_once_t env_once = PTHREAD_ONCE_INIT;

static int best(void) {
    for (int i = 0; i < NKERNELS; i++)
        if (kernels[i].cpu_ok()) return i;
    return KERNEL_REF;
}

static int lookup(const char *name) {
    if (!name) return glora_error(GLORA_EINVAL, "bf16 GEMM kernel '(null)': no name given");
    if (strcmp(name, "auto") == 0) return best();
    if (strcmp(name, "ref") == 0) return KERNEL_REF;
    for (int i = 0; i < NKERNELS; i++) {
        if (strcmp(name, kernels[i].name) != 0) continue;
        if (!kernels[i].cpu_ok())
            return glora_error(GLORA_EINVAL,
                               "bf16 GEMM kernel '%s': this CPU lacks its instructions", name);
        return i;
    }
    return glora_error(GLORA_EINVAL,
                       "bf16 GEMM kernel '%s': unknown (auto, avx512_bf16, emulated, ref)", name);
}

/* GLORA_BGEMM at first use; a bad name leaves "auto" (tests and benchmarks
 * set the kernel explicitly). */
static void apply_env(void) {
    const char *name = getenv("GLORA_BGEMM");
    int id = best();
    if (name && *name) {
        int found = lookup(name);
        if (found >= 0) id = found;
        else glora_error_clear();
    }
    atomic_store(&current, id);
}

static int current_id(void) {
    int id = atomic_load_explicit(&current, memory_order_relaxed);
    if (id >= 0) return id;
    pthread_once(&env_once, apply_env);
    return atomic_load(&current);
}

const bgemm_kernel_t *bgemm_current(void) {
    int id = current_id();
    return id < NKERNELS ? &kernels[id] : NULL;
}

int glora_bgemm_set_kernel(const char *name) {
    pthread_once(&env_once, apply_env);
    int id = lookup(name);
    if (id < 0) return id;
    atomic_store(&current, id);
    return GLORA_OK;
}

const char *glora_bgemm_kernel(void) {
    int id = current_id();
    return id == KERNEL_REF ? "ref" : kernels[id].name;
}

const char *glora_bgemm_ukernel(void) {
    int id = current_id();
    return id == KERNEL_REF ? "bgemm_ref" : kernels[id].ukernel_name;
}

int glora_bgemm_emulated(void) {
    int id = current_id();
    return id == KERNEL_REF || kernels[id].emulated;
}

const char *const glora_precision_names[] = {"fp32", "bf16", NULL};

const char *glora_precision_name(glora_precision_t p) { return p == GLORA_BF16 ? "bf16" : "fp32"; }

int glora_precision_parse(const char *name, const char *what, glora_precision_t *out) {
    if (name && strcmp(name, "fp32") == 0) *out = GLORA_FP32;
    else if (name && strcmp(name, "bf16") == 0) *out = GLORA_BF16;
    else
        return glora_error(GLORA_EINVAL, "%s: precision '%s' is not fp32 or bf16",
                           what ? what : "precision", name ? name : "(null)");
    return GLORA_OK;
}

float glora_bf16_round(float x) {
    uint32_t u = (uint32_t)bgemm_bf16_bits(x) << 16;
    float r;
    memcpy(&r, &u, sizeof r);
    return r;
}

void glora_bgemm_ref(glora_trans_t ta, glora_trans_t tb, size_t m, size_t n, size_t k,
                     float alpha, const float *a, size_t lda, const float *b, size_t ldb,
                     float beta, const float *bias, float *c, size_t ldc) {
    const size_t kp = (k + 1) / 2, kcp = bgemm_block_pairs(k);
    #pragma omp parallel for schedule(static) if (m * n * k > 65536 && !glora_in_parallel())
    for (size_t i = 0; i < m; i++) {
        for (size_t j = 0; j < n; j++) {
            float *cij = &c[i * ldc + j];
            for (size_t pc = 0; pc < kp; pc += kcp) {
                float acc = 0.0f;
                for (size_t p = pc; p < pc + kcp && p < kp; p++) {
                    size_t s = 2 * p;
                    float a0 = ta ? a[s * lda + i] : a[i * lda + s];
                    float b0 = tb ? b[j * ldb + s] : b[s * ldb + j];
                    float a1 = 0.0f, b1 = 0.0f;
                    if (s + 1 < k) {
                        a1 = ta ? a[(s + 1) * lda + i] : a[i * lda + s + 1];
                        b1 = tb ? b[j * ldb + s + 1] : b[(s + 1) * ldb + j];
                    }
                    acc = bgemm_dp_step(acc, bgemm_pair(a0, a1), bgemm_pair(b0, b1));
                }
                float be = pc == 0 ? beta : 1.0f, r = alpha * acc;
                if (be != 0.0f) r = fmaf(be, *cij, r);
                if (bias && pc + kcp >= kp) r = r + bias[j];
                *cij = r;
            }
        }
    }
}

/* C = beta * C (+ bias): the product when alpha or k is zero. */
static void scale_c(size_t m, size_t n, float beta, const float *bias, float *c, size_t ldc) {
    for (size_t i = 0; i < m; i++) {
        float *ci = c + i * ldc;
        for (size_t j = 0; j < n; j++) {
            if (beta == 0.0f) ci[j] = 0.0f;
            else if (beta != 1.0f) ci[j] *= beta;
            if (bias) ci[j] += bias[j];
        }
    }
}

void glora_bgemm_bias(glora_trans_t ta, glora_trans_t tb, size_t m, size_t n, size_t k,
                      float alpha, const float *a, size_t lda, const float *b, size_t ldb,
                      float beta, const float *bias, float *c, size_t ldc) {
    if (m == 0 || n == 0) return;
    GLORA_ASSERT(c && ldc >= n);
    if (k == 0 || alpha == 0.0f) {
        scale_c(m, n, beta, bias, c, ldc);
        return;
    }
    GLORA_ASSERT(a && lda >= (ta ? m : k));
    GLORA_ASSERT(b && ldb >= (tb ? k : n));
    const bgemm_kernel_t *kern = bgemm_current();
    if (kern && bgemm_blocked(kern, ta, tb, m, n, k, alpha, a, lda, b, ldb, NULL, beta, bias, NULL,
                              c, ldc) == 0)
        return;
    glora_bgemm_ref(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, bias, c, ldc);
}

void glora_gemm_bias(glora_precision_t prec, glora_trans_t ta, glora_trans_t tb, size_t m,
                     size_t n, size_t k, float alpha, const float *a, size_t lda,
                     const float *b, size_t ldb, float beta, const float *bias, float *c,
                     size_t ldc) {
    if (prec == GLORA_BF16)
        glora_bgemm_bias(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, bias, c, ldc);
    else
        glora_sgemm_bias(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, bias, c, ldc);
}

/* Called by glora_gemm_b_pack for GLORA_BF16: the panels of the current
 * bf16 kernel in pb->panels (as words), pb->kernel its index. */
int bgemm_b_pack(glora_sgemm_b_t *pb) {
    int id = current_id();
    if (id >= NKERNELS || pb->k == 0 || pb->n == 0) return GLORA_OK;
    const bgemm_kernel_t *kern = &kernels[id];
    size_t words = bgemm_packed_b_words(kern, pb->k, pb->n);
    if (words == 0 || words > SIZE_MAX / sizeof(uint32_t))
        return glora_error(GLORA_ENOMEM, "GEMM 'pack': %zu x %zu operand too large", pb->k, pb->n);
    if (words > pb->cap) {
        free(pb->panels);
        pb->cap = 0;
        pb->panels = aligned_alloc(64, (words * sizeof(uint32_t) + 63) & ~(size_t)63);
        if (!pb->panels)
            return glora_error(GLORA_ENOMEM, "GEMM 'pack': out of memory for %zu words", words);
        pb->cap = words;
    }
    uint32_t *dst = (uint32_t *)(void *)pb->panels;
    const size_t kp = (pb->k + 1) / 2;
    for (size_t j0 = 0; j0 < pb->n; j0 += kern->nr) {
        const float *src = pb->tb ? pb->b + j0 * pb->ldb : pb->b + j0;
        size_t cols = pb->n - j0 < kern->nr ? pb->n - j0 : kern->nr;
        kern->pack_b(pb->tb, pb->k, cols, src, pb->ldb, kern->nr, dst + j0 * kp);
    }
    pb->kernel = id;
    return GLORA_OK;
}

/* glora_sgemm_packed for a bf16 pb. */
void bgemm_packed(glora_trans_t ta, size_t m, size_t j0, size_t n, float alpha, const float *a,
                  size_t lda, const glora_sgemm_b_t *pb, float beta, const float *bias,
                  glora_gemm_rows_fn ep, float *c, size_t ldc) {
    const size_t k = pb->k;
    const int id = pb->kernel;
    if (k > 0 && alpha != 0.0f && id >= 0 && id < NKERNELS && id == current_id() &&
        j0 % kernels[id].nr == 0) {
        GLORA_ASSERT(c && ldc >= n && a && lda >= (ta ? m : k));
        const uint32_t *panels = (const uint32_t *)(const void *)pb->panels + j0 * ((k + 1) / 2);
        if (bgemm_blocked(&kernels[id], ta, GLORA_NOTRANS, m, n, k, alpha, a, lda, NULL, 0,
                          panels, beta, bias, ep, c, ldc) == 0)
            return;
    }
    /* The product from b itself (a b let go after glora_gemm_b_panels_only
     * gets here only out of memory). */
    GLORA_ASSERT(pb->b || k == 0 || alpha == 0.0f);
    const float *b = !pb->b ? NULL : pb->tb ? pb->b + j0 * pb->ldb : pb->b + j0;
    glora_bgemm_bias(ta, pb->tb, m, n, k, alpha, a, lda, b, pb->ldb, beta, bias, c, ldc);
    for (size_t i = 0; ep && i < m; i++) ep(c + i * ldc, c + i * ldc, n);
}

/* glora_gemm_b_panels_only for a bf16 pb. */
int bgemm_panels_only(const glora_sgemm_b_t *pb, size_t j0) {
    const int id = pb->kernel;
    return id >= 0 && id < NKERNELS && id == current_id() && pb->panels &&
           j0 % kernels[id].nr == 0;
}
