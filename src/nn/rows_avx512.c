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

void nn_gelu_fwd_deriv_avx512(float *out, float *deriv, const float *inp, size_t n) {
    nn_gelu_fwd_deriv_loop(out, deriv, inp, n);
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

/* Up to 64 columns of nn_col_dots_avx512, their sums in registers (four
 * vectors a sum, written out one by one so that GCC keeps them there; the
 * masks cover the block's width). Bits: each lane is acc + rounded
 * product (VMULPS, then VADDPS), rows in order. */
#define COL4(X) X(0) X(1) X(2) X(3)
static void col_dots_64(float *ga, const float *y0, float *gb, const float *s, float *gc,
                        const float *g, size_t N, size_t ld, size_t j0, size_t nj) {
#define MASK(v) const __mmask16 m##v = nj <= 16 * v ? 0 : nj - 16 * v >= 16 ? (__mmask16)0xffff \
                                                                           : tail_mask(nj - 16 * v);
    COL4(MASK)
#undef MASK
#define ZERO(v) __m512 a##v = _mm512_setzero_ps(), b##v = a##v, c##v = a##v;
    COL4(ZERO)
#undef ZERO
    for (size_t n = 0; n < N; n++) {
        const float *gn = g + n * ld + j0;
#define LOADG(v) const __m512 g##v = _mm512_maskz_loadu_ps(m##v, gn + 16 * v);
        COL4(LOADG)
#undef LOADG
        if (ga) {
            const float *yn = y0 + n * ld + j0;
#define ACCA(v) a##v = _mm512_add_ps(a##v, _mm512_mul_ps(g##v, _mm512_maskz_loadu_ps(m##v, yn + 16 * v)));
            COL4(ACCA)
#undef ACCA
        }
        if (gb) {
            const __m512 sn = _mm512_set1_ps(s[n]);
#define ACCB(v) b##v = _mm512_add_ps(b##v, _mm512_mul_ps(g##v, sn));
            COL4(ACCB)
#undef ACCB
        }
        if (gc) {
#define ACCC(v) c##v = _mm512_add_ps(c##v, g##v);
            COL4(ACCC)
#undef ACCC
        }
    }
#define OUT(v)                                                                                  \
    if (m##v) {                                                                                 \
        const size_t o = j0 + 16 * v;                                                           \
        if (ga) _mm512_mask_storeu_ps(ga + o, m##v, _mm512_add_ps(_mm512_maskz_loadu_ps(m##v, ga + o), a##v)); \
        if (gb) _mm512_mask_storeu_ps(gb + o, m##v, _mm512_add_ps(_mm512_maskz_loadu_ps(m##v, gb + o), b##v)); \
        if (gc) _mm512_mask_storeu_ps(gc + o, m##v, _mm512_add_ps(_mm512_maskz_loadu_ps(m##v, gc + o), c##v)); \
    }
    COL4(OUT)
#undef OUT
}
#undef COL4

void nn_col_dots_avx512(float *ga, const float *y0, float *gb, const float *s, float *gc,
                        const float *g, size_t N, size_t ld, size_t j0, size_t nj) {
    for (size_t j = 0; j < nj; j += 64)
        col_dots_64(ga, y0, gb, s, gc, g, N, ld, j0 + j, nj - j < 64 ? nj - j : 64);
}
