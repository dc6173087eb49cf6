/* AdamW with decoupled weight decay and bias correction, as
 * torch.optim.AdamW (see glora/train.h for the update). */
#include "glora/train.h"
#include "glora/common.h"
#include "util/bigmem.h"

#include <math.h>
#include <stdlib.h>

int glora_adamw_create(glora_adamw_t **out, const glora_grads_t *g) {
    *out = NULL;
    glora_adamw_t *opt = calloc(1, sizeof *opt);
    size_t n2;
    if (!opt || glora_size_mul(g->n_floats ? g->n_floats : 1, 2, &n2)) {
        free(opt);
        return glora_error(GLORA_ENOMEM, "optimizer 'adamw': out of memory");
    }
    opt->n_floats = g->n_floats;
    opt->m = glora_big_zalloc(n2, sizeof(float));
    if (!opt->m) {
        free(opt);
        return glora_error(GLORA_ENOMEM, "optimizer 'adamw': out of memory for %zu floats", n2);
    }
    opt->v = opt->m + g->n_floats;
    *out = opt;
    return GLORA_OK;
}

void glora_adamw_free(glora_adamw_t *opt) {
    if (!opt) return;
    free(opt->m);
    free(opt);
}

/* The update's constants for one step. */
typedef struct {
    float b1, b2, eps, decay, step, inv_sqrt_bc2;
} adamw_k_t;

/* The update of n elements, one at a time. Every operation is a separate
 * IEEE float operation in the order written (no contraction: ISO C mode),
 * which the vector version repeats lane by lane. */
static void adamw_span(float *p, float *mi, float *vi, const float *gi, size_t n, const adamw_k_t *k) {
    const float b1 = k->b1, b2 = k->b2, eps = k->eps, decay = k->decay, step = k->step,
                inv_sqrt_bc2 = k->inv_sqrt_bc2;
    for (size_t j = 0; j < n; j++) {
        const float gk = gi[j];
        mi[j] = b1 * mi[j] + (1.0f - b1) * gk;
        vi[j] = b2 * vi[j] + (1.0f - b2) * gk * gk;
        const float denom = sqrtf(vi[j]) * inv_sqrt_bc2 + eps;
        p[j] = p[j] * decay - step * mi[j] / denom;
    }
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#include "nn/nn-impl.h" /* nn_use_avx512: GLORA_NN=plain runs the scalar loop too */
#define ADAMW_AVX512 1
/* adamw_span, 16 lanes at a time (the tail masked): the same operations in
 * the same order, no FMA, and vsqrtps / vdivps are correctly rounded like
 * sqrtss / divss, so every element gets the scalar version's bits. */
__attribute__((target("avx512f"))) static void adamw_span_avx512(float *p, float *mi, float *vi,
                                                                  const float *gi, size_t n,
                                                                  const adamw_k_t *k) {
    const __m512 b1 = _mm512_set1_ps(k->b1), c1 = _mm512_set1_ps(1.0f - k->b1);
    const __m512 b2 = _mm512_set1_ps(k->b2), c2 = _mm512_set1_ps(1.0f - k->b2);
    const __m512 eps = _mm512_set1_ps(k->eps), decay = _mm512_set1_ps(k->decay);
    const __m512 step = _mm512_set1_ps(k->step), isb = _mm512_set1_ps(k->inv_sqrt_bc2);
    for (size_t j = 0; j < n; j += 16) {
        const __mmask16 mk = n - j >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - j)) - 1);
        const __m512 g = _mm512_maskz_loadu_ps(mk, gi + j);
        __m512 m = _mm512_maskz_loadu_ps(mk, mi + j), v = _mm512_maskz_loadu_ps(mk, vi + j);
        const __m512 w = _mm512_maskz_loadu_ps(mk, p + j);
        m = _mm512_add_ps(_mm512_mul_ps(b1, m), _mm512_mul_ps(c1, g));
        v = _mm512_add_ps(_mm512_mul_ps(b2, v), _mm512_mul_ps(_mm512_mul_ps(c2, g), g));
        const __m512 denom = _mm512_add_ps(_mm512_mul_ps(_mm512_sqrt_ps(v), isb), eps);
        const __m512 out = _mm512_sub_ps(_mm512_mul_ps(w, decay), _mm512_div_ps(_mm512_mul_ps(step, m), denom));
        _mm512_mask_storeu_ps(mi + j, mk, m);
        _mm512_mask_storeu_ps(vi + j, mk, v);
        _mm512_mask_storeu_ps(p + j, mk, out);
    }
}
#endif

/* Elements per piece when a large tensor's update is split over threads. */
#define ADAMW_PIECE ((size_t)16384)

static void adamw_piece(float *p, float *mi, float *vi, const float *gi, size_t n, const adamw_k_t *k,
                        int simd) {
#ifdef ADAMW_AVX512
    if (simd) {
        adamw_span_avx512(p, mi, vi, gi, n, k);
        return;
    }
#endif
    (void)simd;
    adamw_span(p, mi, vi, gi, n, k);
}

void glora_adamw_step(glora_adamw_t *opt, glora_vit_t *m, const glora_grads_t *g,
                      const glora_adamw_cfg_t *cfg, double lr) {
    GLORA_ASSERT(opt->n_floats == g->n_floats);
    opt->t++;
    adamw_k_t k = {.b1 = (float)cfg->beta1, .b2 = (float)cfg->beta2, .eps = (float)cfg->eps,
                   .decay = (float)(1.0 - lr * cfg->weight_decay)};
    /* Bias corrections in double, folded into a step size and a divisor
     * of sqrt(v), as torch does: p -= (lr / bc1) m / (sqrt(v) / sqrt(bc2) + eps). */
    const double bc1 = 1.0 - pow(cfg->beta1, (double)opt->t);
    const double bc2 = 1.0 - pow(cfg->beta2, (double)opt->t);
    k.step = (float)(lr / bc1);
    k.inv_sqrt_bc2 = (float)(1.0 / sqrt(bc2));
#ifdef ADAMW_AVX512
    const int simd = nn_use_avx512();
#else
    const int simd = 0;
#endif
    for (int i = 0; i < m->n_params; i++) {
        const float *gi = g->g[i];
        if (!gi) continue;
        const size_t n = m->params[i].numel;
        float *p = m->mem + m->params[i].offset;
        float *mi = opt->m + g->off[i], *vi = opt->v + g->off[i];
        /* Elementwise: any split over threads gives the same bits. Small
         * tensors (most adapter tensors) skip the parallel region. */
        if (n < 4 * ADAMW_PIECE) {
            adamw_piece(p, mi, vi, gi, n, &k, simd);
            continue;
        }
        const long pieces = (long)((n + ADAMW_PIECE - 1) / ADAMW_PIECE);
#pragma omp parallel for schedule(static)
        for (long q = 0; q < pieces; q++) {
            const size_t lo = (size_t)q * ADAMW_PIECE, len = n - lo < ADAMW_PIECE ? n - lo : ADAMW_PIECE;
            adamw_piece(p + lo, mi + lo, vi + lo, gi + lo, len, &k, simd);
        }
    }
}
