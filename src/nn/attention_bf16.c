/* The attention forward in bf16, for inference under `precision: bf16`:
 * Q K^T and P V as VDPBF16PS products (operands rounded to bf16 once, fp32
 * accumulation), the softmax in fp32. This file holds the definition,
 * written out as exact portable C (the emulation a CPU without AVX512_BF16
 * runs), and the dispatch; attention_bf16_avx512.c computes the same bits
 * with the instructions.
 *
 * One (batch, head) pair, head width hd, T tokens, queries i < nq:
 *
 *  - q_i and k_j rounded to bf16 (round to nearest even, denormals to zero:
 *    VCVTNEPS2BF16) in pairs along the head dimension, word p holding
 *    dimensions 2p (low half) and 2p + 1 (high half; zero past an odd hd).
 *  - s_ij = scale * S, S the VDPBF16PS lane (bgemm_dp_step) run over
 *    p = 0, 1, ... in order from +0; scale = 1 / sqrt(hd) as in fp32.
 *  - softmax in fp32: mx = max_j s_ij; e_j = nn_exp_neg(s_ij - mx) with
 *    fused multiply-adds (NN_MADD below); the sum as 16 lane partials,
 *    lane l adding e_j for j = l, l + 16, ... in order from +0, then
 *    the lanes as a tree (lane l += lane l + w for w = 8, 4, 2, 1; the sum
 *    is lane 0); p_ij = e_j * (1 / sum). att
 *    holds these fp32 p_ij.
 *  - p_ij rounded to bf16 once, pairs along the keys (word m: keys 2m and
 *    2m + 1, zero past an odd T), v likewise (word m of dimension d: v_2m,d
 *    and v_2m+1,d); o_id the VDPBF16PS lane over m = 0, 1, ... from +0.
 *
 * Every query's row goes through the same operations whatever the rows
 * around it, so results depend neither on the batch, the threads nor the
 * query rows asked for; and the hardware kernel and this file agree bit
 * for bit (tests/test_nn.c). */
#include "glora/nn.h"
#include "glora/common.h"
#include "glora/gemm.h"

#include <math.h>
#include <stdint.h>

/* Fused multiply-adds in exp, as the AVX-512 file compiles them. */
#define NN_MADD(a, b, c) fmaf((a), (b), (c))
#include "nn/nn-impl.h"
#include "nn/nn-math.h"
#include "gemm/gemm-impl.h"

/* Word p of a row of n floats as bf16 pairs (the missing partner zero). */
static inline uint32_t pair_at(const float *x, size_t stride, size_t n, size_t p) {
    const float lo = x[2 * p * stride];
    const float hi = 2 * p + 1 < n ? x[(2 * p + 1) * stride] : 0.0f;
    return bgemm_pair(lo, hi);
}

/* The softmax of one row of scores in place, as defined above. */
static void softmax_row_def(float *a, size_t T) {
    float mx = -INFINITY;
    for (size_t j = 0; j < T; j++) mx = a[j] > mx ? a[j] : mx;
    float lane[16] = {0};
    for (size_t j = 0; j < T; j++) {
        a[j] = nn_exp_neg(a[j] - mx);
        lane[j % 16] = lane[j % 16] + a[j];
    }
    for (int w = 8; w >= 1; w /= 2)
        for (int l = 0; l < w; l++) lane[l] = lane[l] + lane[l + w];
    const float sum = lane[0];
    const float inv = 1.0f / sum;
    for (size_t j = 0; j < T; j++) a[j] = a[j] * inv;
}

void nn_attn_bf16_pair_emulated(float *o0, float *a, const float *base, size_t T, size_t Cs,
                                size_t hd, float scale, size_t nq) {
    const size_t C3 = 3 * Cs, hp = (hd + 1) / 2, mp = (T + 1) / 2;
    const float *k0 = base + Cs, *v0 = base + 2 * Cs;
    for (size_t i = 0; i < nq; i++) {
        const float *q = base + i * C3;
        float *ai = a + i * T;
        for (size_t j = 0; j < T; j++) {
            float s = 0.0f;
            for (size_t p = 0; p < hp; p++)
                s = bgemm_dp_step(s, pair_at(q, 1, hd, p), pair_at(k0 + j * C3, 1, hd, p));
            ai[j] = s * scale;
        }
        softmax_row_def(ai, T);
        float *o = o0 + i * Cs;
        for (size_t d = 0; d < hd; d++) {
            float s = 0.0f;
            for (size_t m = 0; m < mp; m++)
                s = bgemm_dp_step(s, pair_at(ai, 1, T, m), pair_at(v0 + d, C3, T, m));
            o[d] = s;
        }
    }
}

/* The first Tq queries of every pair, as attention.c's attention_queries,
 * with the hardware kernel where hw is set and it takes the head width
 * (a pair whose buffers cannot be allocated runs the emulation: the same
 * bits). */
void nn_attention_forward_bf16_with(int hw, float *out, float *att, const float *qkv, size_t B,
                                    int T, int C, int NH, size_t Tq) {
    GLORA_ASSERT(NH > 0 && C % NH == 0 && Tq >= 1 && Tq <= (size_t)T);
    const size_t Ts = (size_t)T, Cs = (size_t)C, C3 = 3 * Cs, hd = Cs / (size_t)NH;
    const float scale = 1.0f / sqrtf((float)hd);
    const size_t pairs = B * (size_t)NH;
    const int fast = hw && nn_attn_bf16_avx512_fits(hd);
#pragma omp parallel for schedule(static) if (nn_parallel(pairs * Tq * (Ts + hd)))
    for (size_t bh = 0; bh < pairs; bh++) {
        const size_t b = bh / (size_t)NH, h = bh % (size_t)NH;
        float *o = out + b * Tq * Cs + h * hd;
        float *a = att + bh * Tq * Ts;
        const float *base = qkv + b * Ts * C3 + h * hd;
        if (!fast || nn_attn_bf16_pair_avx512(o, a, base, Ts, Cs, hd, scale, Tq))
            nn_attn_bf16_pair_emulated(o, a, base, Ts, Cs, hd, scale, Tq);
    }
}

/* The instructions run where the bf16 products run them: the CPU has
 * AVX-512 and AVX512_BF16 (the bf16 GEMM is not emulated) and GLORA_NN is
 * not "plain". */
static int use_hw(void) { return nn_use_avx512() && !glora_bgemm_emulated(); }

void glora_attention_forward_bf16(float *out, float *att, const float *qkv, size_t B, int T,
                                  int C, int NH) {
    nn_attention_forward_bf16_with(use_hw(), out, att, qkv, B, T, C, NH, (size_t)T);
}

void glora_attention_forward_first_bf16(float *out, float *att, const float *qkv, size_t B, int T,
                                        int C, int NH) {
    nn_attention_forward_bf16_with(use_hw(), out, att, qkv, B, T, C, NH, 1);
}
