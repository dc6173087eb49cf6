/* exp and the normal CDF in forms the compiler vectorises (libm's expf and
 * erfcf are scalar calls: 2 and 14 ns a value here, which made GELU cost as
 * much as the MLP's matrix products). Branch-free, so a "#pragma omp simd"
 * loop runs them four or more lanes at a time. Coefficients are this
 * project's own fits (weighted least squares on Chebyshev nodes against
 * mpmath). */
#ifndef GLORA_NN_MATH_H
#define GLORA_NN_MATH_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Float bits as an integer and back (the compiler turns these into plain
 * register moves). Clamps and selects below are done on the bits: GCC will
 * not if-convert a float comparison (it might trap), which would leave the
 * whole loop unvectorised. For floats of one sign the bit patterns order
 * like the values (for negative ones, in reverse). */
static inline uint32_t nn_f2u(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}
static inline float nn_u2f(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* a*b + c: one fused multiply-add where the code is compiled for FMA (the
 * AVX-512 kernels' files, whose target pragma precedes this header), else a
 * multiply and an add. -std=c11 turns off contraction, so without this the
 * polynomials below run as twice the instructions even on FMA hardware. */
/* The value functions below must inline into their loops: a call would
 * stop the loop from vectorising. */
#define NN_INLINE static inline __attribute__((always_inline))

/* A file may define NN_MADD itself before including this header
 * (attention_bf16.c: fused everywhere, to give the bits of the AVX-512
 * file on any CPU). */
#ifndef NN_MADD
#ifdef __FMA__
#define NN_MADD(a, b, c) __builtin_fmaf((a), (b), (c))
#else
#define NN_MADD(a, b, c) ((a) * (b) + (c))
#endif
#endif

/* exp(a + b) for a + b in [-87, 0], with a + b carried as two floats so
 * that an argument like -x*x/2 keeps bits its float sum would drop (at
 * x = -9 the sum alone would cost 2e-6 relative). Error <= 1e-7 relative
 * beyond that of the arguments. Range reduction: a + b = n ln2 + r with
 * |r| <= ln2/2, ln2 split in a short high part (n*hi exact) and the rest. */
NN_INLINE float nn_exp_parts(float a, float b) {
    const float log2e = 1.44269504088896341f;
    const float ln2_hi = 0.693359375f, ln2_lo = -2.12194440e-4f;
    const float round = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    const float n = NN_MADD(a + b, log2e, round) - round;
    const float r = ((a - n * ln2_hi) - n * ln2_lo) + b;
    float p = 1.381314476e-3f;
    p = NN_MADD(p, r, 8.369418792e-3f);
    p = NN_MADD(p, r, 4.166845605e-2f);
    p = NN_MADD(p, r, 1.666651517e-1f);
    p = NN_MADD(p, r, 4.999999404e-1f);
    p = NN_MADD(p, r, 1.0f);
    p = NN_MADD(p, r, 1.0f);
    const uint32_t bits = (uint32_t)((int32_t)n + 127) << 23; /* 2^n, n >= -126 */
    return p * nn_u2f(bits);
}

/* exp(a) for a <= 0; below -87 it returns exp(-87) ~ 1.6e-38 rather than a
 * denormal or 0 (softmax weights that small are zero to any sum). */
NN_INLINE float nn_exp_neg(float a) {
    const uint32_t ua = nn_f2u(a), lo = 0xc2ae0000u; /* -87.0f */
    return nn_exp_parts(nn_u2f(ua < lo ? ua : lo), 0.0f);
}

/* The standard normal CDF Phi(x) and density phi(x) together (GELU needs
 * both in backward): with ax = |x|, t = 1 / (1 + 0.35 ax),
 *     Phi(-ax) = t S(t) exp(-ax^2/2),  S a degree-8 polynomial,
 * which holds its relative accuracy (< 4e-7) deep into the left tail where
 * 0.5 (1 + erf(x/sqrt2)) would cancel. |x| is clamped at 12, where Phi is
 * 0 or 1 to float precision (Phi(-12) = 2e-33 stays a normal float). */
NN_INLINE float nn_normcdf_pdf(float x, float *pdf) {
    const float inv_sqrt_2pi = 0.398942280401432678f;
    const uint32_t ux = nn_f2u(x), uabs = ux & 0x7fffffffu, umax = 0x41400000u; /* 12.0f */
    const float ax = nn_u2f(uabs < umax ? uabs : umax);
    /* -ax^2/2 in two parts: ah keeps 12 significant bits so ah*ah is exact. */
    const float ah = nn_u2f(nn_f2u(ax) & 0xfffff000u);
    const float e = nn_exp_parts(-0.5f * ah * ah, -0.5f * (ax - ah) * (ax + ah));
    const float t = 1.0f / NN_MADD(0.35f, ax, 1.0f);
    float s = -2.909510210e-02f;
    s = NN_MADD(s, t, 1.437195688e-01f);
    s = NN_MADD(s, t, -2.551823258e-01f);
    s = NN_MADD(s, t, 1.585524082e-01f);
    s = NN_MADD(s, t, -2.267085947e-02f);
    s = NN_MADD(s, t, 1.053169370e-01f);
    s = NN_MADD(s, t, 1.198827550e-01f);
    s = NN_MADD(s, t, 1.398547441e-01f);
    s = NN_MADD(s, t, 1.396218240e-01f);
    const float tail = t * s * e; /* Phi(-ax) */
    const float head = 1.0f - tail;
    *pdf = inv_sqrt_2pi * e;
    const uint32_t neg = 0u - (ux >> 31); /* all ones when x < 0 */
    return nn_u2f((nn_f2u(tail) & neg) | (nn_f2u(head) & ~neg));
}

/* GELU's loops, compiled into each ISA's kernel (activation.c's clones,
 * rows_avx512.c): out = x Phi(x), and dinp += dout (Phi(x) + x phi(x)). */
static inline void nn_gelu_fwd_loop(float *out, const float *inp, size_t n) {
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        float pdf;
        out[i] = inp[i] * nn_normcdf_pdf(inp[i], &pdf);
    }
}

/* GELU and its derivative in one pass: out = gelu(x) as nn_gelu_fwd_loop,
 * deriv = Phi(x) + x phi(x), the factor nn_gelu_bwd_loop multiplies dout
 * by (rounded as there: no contraction in the plain builds' ISO C, none
 * written here). */
static inline void nn_gelu_fwd_deriv_loop(float *out, float *deriv, const float *inp, size_t n) {
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        float pdf;
        const float cdf = nn_normcdf_pdf(inp[i], &pdf);
        out[i] = inp[i] * cdf;
        deriv[i] = cdf + inp[i] * pdf;
    }
}

static inline void nn_gelu_bwd_loop(float *dinp, const float *inp, const float *dout, size_t n) {
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        float pdf;
        const float cdf = nn_normcdf_pdf(inp[i], &pdf);
        dinp[i] += dout[i] * (cdf + inp[i] * pdf);
    }
}

#endif
