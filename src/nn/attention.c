/* Multi-head self-attention core: softmax(q k^T / sqrt(hd)) v per (batch,
 * head) pair. Sequences are short (17 tokens for vit-tiny-28, 197 for
 * ViT-B/16) and heads narrow, so plain loops over one pair at a time, with
 * every row of q, k and v read in place from qkv, beat gathering heads into
 * matrices for GEMM calls. Pairs are independent and write disjoint parts of
 * the outputs, which is what the threads split. */
#include "glora/nn.h"
#include "glora/common.h"

#include <math.h>

#include "nn/nn-impl.h"
#include "nn/nn-math.h"

static inline float dot(const float *a, const float *b, size_t n) {
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (size_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

static inline void axpy(float *y, float a, const float *x, size_t n) {
#pragma omp simd
    for (size_t i = 0; i < n; i++) y[i] += a * x[i];
}

/* Softmax of one row of n scores in place, given their maximum (inlined
 * into each clone, so each keeps the instructions of its own ISA). */
static inline void softmax_from_max(float *a, size_t n, float mx) {
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (size_t j = 0; j < n; j++) {
        const float e = nn_exp_neg(a[j] - mx);
        a[j] = e;
        sum += e;
    }
    const float inv = 1.0f / sum;
#pragma omp simd
    for (size_t j = 0; j < n; j++) a[j] *= inv;
}

/* One (batch, head) pair: softmax(q k^T scale) v for every query token.
 * base points at q of token 0 of this pair; rows are C3 apart. Cloned per
 * ISA (nn-impl.h) so the short dot products use the widest vectors. */
NN_CLONES static void attn_fwd_pair(float *o0, float *a, const float *base, size_t Ts, size_t Cs,
                                    size_t hd, float scale, size_t nq) {
    const size_t C3 = 3 * Cs;
    for (size_t i = 0; i < nq; i++) {
        const float *q = base + i * C3;
        float *ai = a + i * Ts;
        float mx = -INFINITY;
        for (size_t j = 0; j < Ts; j++) {
            const float s = dot(q, base + j * C3 + Cs, hd) * scale;
            ai[j] = s;
            if (s > mx) mx = s;
        }
        softmax_from_max(ai, Ts, mx);
        float *o = o0 + i * Cs;
        for (size_t d = 0; d < hd; d++) o[d] = 0.0f;
        for (size_t j = 0; j < Ts; j++) axpy(o, ai[j], base + j * C3 + 2 * Cs, hd);
    }
}

/* The first Tq queries of every (batch, head) pair (all T, or the cls token
 * alone); out is (B, Tq, C), att is (B, NH, Tq, T). */
static void attention_queries(float *out, float *att, const float *qkv, size_t B, int T, int C,
                              int NH, size_t Tq) {
    GLORA_ASSERT(NH > 0 && C % NH == 0 && Tq >= 1 && Tq <= (size_t)T);
    const size_t Ts = (size_t)T, Cs = (size_t)C, C3 = 3 * Cs, hd = Cs / (size_t)NH;
    const float scale = 1.0f / sqrtf((float)hd);
    const size_t pairs = B * (size_t)NH;
    const int fast = nn_use_avx512() && nn_attn_avx512_fits(hd);
#pragma omp parallel for schedule(static) if (nn_parallel(pairs * Tq * (Ts + hd)))
    for (size_t bh = 0; bh < pairs; bh++) {
        const size_t b = bh / (size_t)NH, h = bh % (size_t)NH;
        float *o = out + b * Tq * Cs + h * hd;
        float *a = att + bh * Tq * Ts;
        const float *base = qkv + b * Ts * C3 + h * hd;
        if (fast)
            nn_attn_fwd_pair_avx512(o, a, base, Ts, Cs, hd, scale, Tq);
        else
            attn_fwd_pair(o, a, base, Ts, Cs, hd, scale, Tq);
    }
}

void glora_attention_forward(float *out, float *att, const float *qkv,
                             size_t B, int T, int C, int NH) {
    /* qkv is (B, T, 3C) = (B, T, 3, NH, hd); out is (B, T, C) = (B, T, NH, hd);
     * att is (B, NH, T, T) */
    attention_queries(out, att, qkv, B, T, C, NH, (size_t)T);
}

void glora_attention_forward_first(float *out, float *att, const float *qkv,
                                   size_t B, int T, int C, int NH) {
    /* qkv is (B, T, 3C); out is (B, C): token 0's output; att is (B, NH, 1, T) */
    attention_queries(out, att, qkv, B, T, C, NH, 1);
}

/* Backward of one (batch, head) pair; g0 is dout of token 0 of the pair. */
NN_CLONES static void attn_bwd_pair(float *dbase, float *da, const float *g0, const float *base,
                                    const float *a, size_t Ts, size_t Cs, size_t hd, float scale) {
    const size_t C3 = 3 * Cs;
    for (size_t i = 0; i < Ts; i++) {
        const float *g = g0 + i * Cs;
        const float *ai = a + i * Ts;
        float *dai = da + i * Ts;
        /* Through out_i = sum_j a_ij v_j. */
        for (size_t j = 0; j < Ts; j++) {
            dai[j] = dot(g, base + j * C3 + 2 * Cs, hd);
            axpy(dbase + j * C3 + 2 * Cs, ai[j], g, hd);
        }
        /* Through the softmax: ds_ij = a_ij (da_ij - sum_k a_ik da_ik). */
        float s = 0.0f;
#pragma omp simd reduction(+ : s)
        for (size_t j = 0; j < Ts; j++) s += ai[j] * dai[j];
#pragma omp simd
        for (size_t j = 0; j < Ts; j++) dai[j] = ai[j] * (dai[j] - s) * scale;
        /* Through s_ij = q_i . k_j (scale folded in above). */
        const float *q = base + i * C3;
        float *dq = dbase + i * C3;
        for (size_t j = 0; j < Ts; j++) {
            axpy(dq, dai[j], base + j * C3 + Cs, hd);
            axpy(dbase + j * C3 + Cs, dai[j], q, hd);
        }
    }
}

/* The fused definition (glora_attention_backward_fma) in plain C: each
 * product-and-sum of attn_bwd_pair one fmaf, dp_ij one chain from +0 over
 * d = l, l + 16, l + 32, ... for l = 0..15 in turn (the AVX-512 kernel's
 * lanes), the softmax step as attn_bwd_pair's; every element of dq, dk,
 * dv its terms in attn_bwd_pair's order. */
NN_CLONES static void attn_bwd_pair_fused(float *dbase, float *da, const float *g0,
                                          const float *base, const float *a, size_t Ts, size_t Cs,
                                          size_t hd, float scale) {
    const size_t C3 = 3 * Cs;
    for (size_t i = 0; i < Ts; i++) {
        const float *g = g0 + i * Cs;
        const float *ai = a + i * Ts;
        float *dai = da + i * Ts;
        for (size_t j = 0; j < Ts; j++) {
            const float *v = base + j * C3 + 2 * Cs;
            float p = 0.0f;
            for (size_t l = 0; l < 16 && l < hd; l++)
                for (size_t d = l; d < hd; d += 16) p = fmaf(g[d], v[d], p);
            dai[j] = p;
            float *dv = dbase + j * C3 + 2 * Cs;
            for (size_t d = 0; d < hd; d++) dv[d] = fmaf(ai[j], g[d], dv[d]);
        }
        float s = 0.0f;
#pragma omp simd reduction(+ : s)
        for (size_t j = 0; j < Ts; j++) s += ai[j] * dai[j];
#pragma omp simd
        for (size_t j = 0; j < Ts; j++) dai[j] = ai[j] * (dai[j] - s) * scale;
        const float *q = base + i * C3;
        float *dq = dbase + i * C3;
        for (size_t j = 0; j < Ts; j++) {
            const float *k = base + j * C3 + Cs;
            float *dk = dbase + j * C3 + Cs;
            for (size_t d = 0; d < hd; d++) dq[d] = fmaf(dai[j], k[d], dq[d]);
            for (size_t d = 0; d < hd; d++) dk[d] = fmaf(dai[j], q[d], dk[d]);
        }
    }
}

void nn_attention_backward_with(int avx512, int fused, float *dqkv, float *datt, const float *dout,
                                const float *qkv, const float *att, size_t B, int T, int C, int NH) {
    /* dout is (B, T, C); qkv is (B, T, 3C); att and datt are (B, NH, T, T);
     * dqkv (B, T, 3C) accumulates */
    if (!dqkv) return;
    GLORA_ASSERT(NH > 0 && C % NH == 0);
    const size_t Ts = (size_t)T, Cs = (size_t)C, C3 = 3 * Cs, hd = Cs / (size_t)NH;
    const float scale = 1.0f / sqrtf((float)hd);
    const size_t pairs = B * (size_t)NH;
    const int fast = avx512 && nn_attn_avx512_fits(hd);
#pragma omp parallel for schedule(static) if (nn_parallel(pairs * Ts * (Ts + hd)))
    for (size_t bh = 0; bh < pairs; bh++) {
        const size_t b = bh / (size_t)NH, h = bh % (size_t)NH;
        float *dbase = dqkv + b * Ts * C3 + h * hd, *da = datt + bh * Ts * Ts;
        const float *g0 = dout + b * Ts * Cs + h * hd, *base = qkv + b * Ts * C3 + h * hd,
                    *a = att + bh * Ts * Ts;
        if (fast)
            nn_attn_bwd_pair_avx512(dbase, da, g0, base, a, Ts, Cs, hd, scale, fused);
        else if (fused)
            attn_bwd_pair_fused(dbase, da, g0, base, a, Ts, Cs, hd, scale);
        else
            attn_bwd_pair(dbase, da, g0, base, a, Ts, Cs, hd, scale);
    }
}

void glora_attention_backward(float *dqkv, float *datt, const float *dout,
                              const float *qkv, const float *att,
                              size_t B, int T, int C, int NH) {
    nn_attention_backward_with(nn_use_avx512(), 0, dqkv, datt, dout, qkv, att, B, T, C, NH);
}

void glora_attention_backward_fma(float *dqkv, float *datt, const float *dout,
                                  const float *qkv, const float *att,
                                  size_t B, int T, int C, int NH) {
    nn_attention_backward_with(nn_use_avx512(), 1, dqkv, datt, dout, qkv, att, B, T, C, NH);
}
