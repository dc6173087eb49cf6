/* The bf16 attention forward of one (batch, head) pair with AVX512_BF16,
 * for head widths that are a multiple of 32 up to 128 (vit-tiny-28: 32,
 * ViT-B/16: 64). attention_bf16.c defines the result; this computes the
 * same bits:
 *
 *  - the pair's queries are rounded to bf16 pair words once (VCVTNE2PS2BF16
 *    on consecutive dimensions gives exactly the words of the definition);
 *    its keys likewise, each block of 16 keys transposed (kt[p][key]) so
 *    that one VDPBF16PS gives a query's 16 scores for one pair of
 *    dimensions: a tile of up to 12 queries x 2 key blocks in 24 registers;
 *  - V as words over pairs of keys (vw[m][d]), P's rows as words over
 *    pairs of keys; one VDPBF16PS adds the next pair of keys to 16 output
 *    dimensions: a tile of queries x hd / 16 vectors in up to 24 registers;
 *  - the softmax's exp is nn-math.h's (fused, this file is compiled for
 *    FMA), the sum in the definition's lane order.
 *
 * Compiled for AVX512_BF16 by the pragma below whatever the build's flags;
 * attention_bf16.c calls in here only after checking the CPU. */
#pragma GCC target("avx512f,avx512vl,avx512bw,avx512dq,avx512bf16,fma")
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "nn/nn-impl.h"
#include "nn/nn-math.h"
#include "nn/attention-avx512.h"
#include "util/transpose-avx512.h"

#define QG 12    /* queries per score tile */
#define MAX_NV 8 /* hd / 16 at most */

int nn_attn_bf16_avx512_fits(size_t hd) { return hd % 32 == 0 && hd >= 32 && hd <= 16 * MAX_NV; }

/* Scores of `rows` queries (words qw, ldq apart) against KB blocks of 16
 * keys (kt: hp rows of 16 words per block, blocks kstride words apart):
 * s[i][key] = scale * dp, stored under mask m for the last block. */
static inline __attribute__((always_inline)) void
scores_tile(float *s, size_t lds, const uint32_t *qw, size_t ldq, const uint32_t *kt,
            size_t kstride, size_t hp, __mmask16 mlast, __m512 vscale, const int rows,
            const int KB) {
    __m512 acc[QG][2];
#pragma GCC unroll 12
    for (int i = 0; i < rows; i++)
#pragma GCC unroll 2
        for (int b = 0; b < KB; b++) acc[i][b] = _mm512_setzero_ps();
    for (size_t p = 0; p < hp; p++) {
        __m512bh kp[2];
#pragma GCC unroll 2
        for (int b = 0; b < KB; b++)
            kp[b] = (__m512bh)_mm512_load_si512(kt + (size_t)b * kstride + p * 16);
#pragma GCC unroll 12
        for (int i = 0; i < rows; i++) {
            const __m512bh qi = (__m512bh)_mm512_set1_epi32((int)qw[(size_t)i * ldq + p]);
#pragma GCC unroll 2
            for (int b = 0; b < KB; b++) acc[i][b] = _mm512_dpbf16_ps(acc[i][b], qi, kp[b]);
        }
    }
#pragma GCC unroll 12
    for (int i = 0; i < rows; i++)
#pragma GCC unroll 2
        for (int b = 0; b < KB; b++) {
            const __mmask16 m = b == KB - 1 ? mlast : (__mmask16)0xffff;
            _mm512_mask_storeu_ps(s + (size_t)i * lds + (size_t)b * 16, m,
                                  _mm512_mul_ps(acc[i][b], vscale));
        }
}

static void scores_group(float *s, size_t lds, const uint32_t *qw, size_t ldq, const uint32_t *kt,
                         size_t kstride, size_t hp, __mmask16 mlast, __m512 vscale, int rows,
                         int kb) {
#define CASE(R)                                                                         \
    case R:                                                                             \
        if (kb == 2)                                                                    \
            scores_tile(s, lds, qw, ldq, kt, kstride, hp, mlast, vscale, R, 2);         \
        else                                                                            \
            scores_tile(s, lds, qw, ldq, kt, kstride, hp, mlast, vscale, R, 1);         \
        break;
    switch (rows) {
        CASE(1) CASE(2) CASE(3) CASE(4) CASE(5) CASE(6)
        CASE(7) CASE(8) CASE(9) CASE(10) CASE(11) CASE(12)
    default: break;
    }
#undef CASE
}

/* o_i = sum over key pairs m of pw_i[m] . vw[m] for `rows` queries, NV
 * vectors of 16 dimensions. */
static inline __attribute__((always_inline)) void
av_tile(float *o, size_t ldo, const uint32_t *pw, size_t ldp, const uint32_t *vw, size_t hd,
        size_t mp, const int rows, const int NV) {
    __m512 acc[12][4];
#pragma GCC unroll 12
    for (int i = 0; i < rows; i++)
#pragma GCC unroll 4
        for (int c = 0; c < NV; c++) acc[i][c] = _mm512_setzero_ps();
    for (size_t m = 0; m < mp; m++) {
        __m512bh vm[4];
#pragma GCC unroll 4
        for (int c = 0; c < NV; c++) vm[c] = (__m512bh)_mm512_load_si512(vw + m * hd + (size_t)c * 16);
#pragma GCC unroll 12
        for (int i = 0; i < rows; i++) {
            const __m512bh w = (__m512bh)_mm512_set1_epi32((int)pw[(size_t)i * ldp + m]);
#pragma GCC unroll 4
            for (int c = 0; c < NV; c++) acc[i][c] = _mm512_dpbf16_ps(acc[i][c], w, vm[c]);
        }
    }
#pragma GCC unroll 12
    for (int i = 0; i < rows; i++)
#pragma GCC unroll 4
        for (int c = 0; c < NV; c++) _mm512_storeu_ps(o + (size_t)i * ldo + (size_t)c * 16, acc[i][c]);
}

/* Rows per AV tile: rows x NV accumulators in at most 24 registers. */
static int av_rows_max(int nv) { return nv == 2 ? 12 : nv == 4 ? 6 : 4; }

static void av_group(float *o, size_t ldo, const uint32_t *pw, size_t ldp, const uint32_t *vw,
                     size_t hd, size_t mp, int rows, int nv) {
#define CASE(R, NV) case R: av_tile(o, ldo, pw, ldp, vw, hd, mp, R, NV); break;
    switch (nv) {
    case 2:
        switch (rows) {
            CASE(1, 2) CASE(2, 2) CASE(3, 2) CASE(4, 2) CASE(5, 2) CASE(6, 2)
            CASE(7, 2) CASE(8, 2) CASE(9, 2) CASE(10, 2) CASE(11, 2) CASE(12, 2)
        default: break;
        }
        break;
    case 4:
        switch (rows) {
            CASE(1, 4) CASE(2, 4) CASE(3, 4) CASE(4, 4) CASE(5, 4) CASE(6, 4)
        default: break;
        }
        break;
    default: /* 6 or 8 vectors: column slices of 4 (and 2), rows by 4 */
        for (int c0 = 0; c0 < nv; c0 += 4) {
            const int w = nv - c0 < 4 ? nv - c0 : 4;
            for (int r = 0; r < rows; r += 4) {
                const int rr = rows - r < 4 ? rows - r : 4;
                av_group(o + (size_t)r * ldo + (size_t)c0 * 16, ldo, pw + (size_t)r * ldp, ldp,
                         vw + (size_t)c0 * 16, hd, mp, rr, w == 4 ? 4 : 2);
            }
        }
        break;
    }
#undef CASE
}

/* The cache lines of one row of n floats, into L1. */
static inline void prefetch_row(const float *x, size_t n) {
    for (size_t i = 0; i < n; i += 16) _mm_prefetch((const char *)(x + i), _MM_HINT_T0);
}

/* n floats at x (n <= 32; the rest zero) as 16 bf16 pair words. */
static inline __m512i words32(const float *x, size_t n) {
    const __mmask16 m0 = n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1u);
    const __mmask16 m1 = n >= 32 ? (__mmask16)0xffff : n <= 16 ? 0 : (__mmask16)((1u << (n - 16)) - 1u);
    const __m512 lo = _mm512_maskz_loadu_ps(m0, x), hi = _mm512_maskz_loadu_ps(m1, x + 16);
    return (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
}

/* The softmax of one row in place (the definition's order:
 * nn_softmax_exp_row's numerators, their lanes summed as a tree), then its
 * probabilities as bf16 words over pairs of keys into pw. */
static void softmax_row(float *a, size_t T, uint32_t *pw) {
    const __m512 vs = nn_softmax_exp_row(a, T);
    /* The lanes' tree: l + (l + 8), then + 4, + 2, + 1. */
    const __m256 s8 = _mm256_add_ps(_mm512_castps512_ps256(vs), _mm512_extractf32x8_ps(vs, 1));
    const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
    const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    const float sum = _mm_cvtss_f32(_mm_add_ss(s2, _mm_movehdup_ps(s2)));
    const __m512 inv = _mm512_set1_ps(1.0f / sum);
    /* p = e * inv, and the words of each 32 of them. */
    for (size_t j = 0; j < T; j += 32) {
        const size_t n = T - j < 32 ? T - j : 32;
        const __mmask16 m0 = n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1u);
        const __mmask16 m1 = n >= 32 ? (__mmask16)0xffff : n <= 16 ? 0 : (__mmask16)((1u << (n - 16)) - 1u);
        const __m512 lo = _mm512_mul_ps(_mm512_maskz_loadu_ps(m0, a + j), inv);
        const __m512 hi = _mm512_mul_ps(_mm512_maskz_loadu_ps(m1, a + j + 16), inv);
        _mm512_mask_storeu_ps(a + j, m0, lo);
        _mm512_mask_storeu_ps(a + j + 16, m1, hi);
        _mm512_storeu_si512(pw + j / 2, (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
    }
}

int nn_attn_bf16_pair_avx512(float *o0, float *a, const float *base, size_t T, size_t Cs,
                             size_t hd, float scale, size_t nq) {
    if (T == 0 || nq == 0) return 0;
    const size_t C3 = 3 * Cs, hp = hd / 2, nblk = (T + 15) / 16, mp = (T + 1) / 2;
    const size_t ldp = (T + 31) / 32 * 16; /* words of a row of P: whole vectors */
    const int nv = (int)(hd / 16);
    const size_t kstride = hp * 16;
    const size_t words = nblk * kstride + mp * hd + nq * hp + QG * ldp;
    uint32_t *buf = aligned_alloc(64, (words * sizeof *buf + 63) / 64 * 64);
    if (!buf) return -1;
    uint32_t *kt = buf, *vw = kt + nblk * kstride, *qw = vw + mp * hd, *pw = qw + nq * hp;
    const float *k0 = base + Cs, *v0 = base + 2 * Cs;

    /* Keys: per block of 16, the words of each key (rows) transposed. The
     * rows are 3 Cs apart (9 KB at ViT-B/16), which the hardware does not
     * prefetch: the next block's, and the values' first rows, are asked
     * for here. */
    for (size_t jb = 0; jb < nblk; jb++) {
        const size_t j0 = jb * 16, nk = T - j0 < 16 ? T - j0 : 16;
        for (size_t j = j0 + 16; j < j0 + 32; j++)
            prefetch_row(j < T ? k0 + j * C3 : v0 + (j - T) % T * C3, hd);
        for (size_t c = 0; c < hp / 16; c++) {
            __m512 r[16];
            for (size_t j = 0; j < 16; j++)
                r[j] = j < nk ? (__m512)words32(k0 + (j0 + j) * C3 + c * 32, 32) : _mm512_setzero_ps();
            glora_transpose16_avx512(r);
            for (int p = 0; p < 16; p++) _mm512_store_ps((float *)(kt + jb * kstride + (c * 16 + p) * 16), r[p]);
        }
    }
    /* Values: word m of dimension d pairs keys 2m and 2m + 1. */
    for (size_t m = 0; m < mp; m++) {
        const float *va = v0 + 2 * m * C3, *vb = va + C3;
        if (2 * m + 16 < T) prefetch_row(v0 + (2 * m + 16) * C3, hd);
        if (2 * m + 17 < T) prefetch_row(v0 + (2 * m + 17) * C3, hd);
        const int odd = 2 * m + 1 >= T;
        for (int c = 0; c < nv; c++) {
            const __m512i lo = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(va + c * 16)));
            const __m512i hi = odd ? _mm512_setzero_si512()
                                   : _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(vb + c * 16)));
            _mm512_store_si512(vw + m * hd + (size_t)c * 16, _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16)));
        }
    }
    /* Queries. */
    for (size_t i = 0; i < nq; i++) {
        if (i + 8 < nq) prefetch_row(base + (i + 8) * C3, hd);
        for (size_t c = 0; c < hp / 16; c++)
            _mm512_storeu_si512(qw + i * hp + c * 16, words32(base + i * C3 + c * 32, 32));
    }

    /* Scores, 12 queries x 2 blocks of keys a tile. */
    const __m512 vscale = _mm512_set1_ps(scale);
    const size_t qg = nn_attn_group_rows(nq, QG);
    const __mmask16 tail = T % 16 ? (__mmask16)((1u << (T % 16)) - 1u) : (__mmask16)0xffff;
    for (size_t jb = 0; jb < nblk; jb += 2) {
        const int kb = jb + 1 < nblk ? 2 : 1;
        const __mmask16 ml = jb + (size_t)kb == nblk ? tail : (__mmask16)0xffff;
        for (size_t i = 0; i < nq; i += qg) {
            const size_t rows = nq - i < qg ? nq - i : qg;
            scores_group(a + i * T + jb * 16, T, qw + i * hp, hp, kt + jb * kstride, kstride, hp, ml,
                         vscale, (int)rows, kb);
        }
    }
    /* Softmax and P V, a group of rows at a time (their words in pw). */
    const size_t ag = nn_attn_group_rows(nq, (size_t)av_rows_max(nv));
    for (size_t i = 0; i < nq; i += ag) {
        const size_t rows = nq - i < ag ? nq - i : ag;
        for (size_t r = 0; r < rows; r++) softmax_row(a + (i + r) * T, T, pw + r * ldp);
        av_group(o0 + i * Cs, Cs, pw, ldp, vw, hd, mp, (int)rows, nv);
    }
    free(buf);
    return 0;
}
