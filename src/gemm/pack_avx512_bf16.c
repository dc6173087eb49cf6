/* Packing of bf16 operands for the AVX512_BF16 tile (mr 12, nr 32), every
 * form of op():
 *
 * - where op() reads rows of the stored matrix along k (A not transposed:
 *   the activations of a forward or input-gradient product; B transposed:
 *   a weight W, op(B) = W^T), VCVTNE2PS2BF16 rounds 32 floats of a row to
 *   16 pairs, and 16 x 16 blocks of pairs are transposed in registers into
 *   the panel's pair rows;
 * - where the stored rows are k steps (B not transposed: W in dX = G W;
 *   A transposed: G^T in dW = G^T X), two consecutive rows are rounded
 *   together (one VCVTNE2PS2BF16 for 16 columns of both) and their halves
 *   interleaved by one VPERMW into 16 pair words, stored as they are.
 *
 * Tiles other than 12 x 32 go to the portable packers, whose results
 * these equal bit for bit (VCVTNE2PS2BF16 rounds as bgemm_bf16_bits:
 * tests/test_bgemm). Called only where the CPU has AVX512_BF16. */
#pragma GCC target("avx512f,avx512vl,avx512bw,avx512dq,avx512bf16,fma")
#include <immintrin.h>

#include "gemm-impl.h"
#include "util/transpose-avx512.h"

static inline __mmask16 first_lanes(size_t count) {
    return count >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << count) - 1);
}

/* rows (<= 16) rows of src, ld apart, k steps [k0, k1): pair p of row r
 * goes to dst[p * stride + r] for the lanes in `store` (16 x 16 pairs at a
 * time; rows past `rows` are zero). */
static void pack_rows(const float *src, size_t ld, size_t rows, size_t k0, size_t k1,
                      uint32_t *dst, size_t stride, __mmask16 store) {
    for (size_t s = k0, p0 = 0; s < k1; s += 32, p0 += 16) {
        size_t rem = k1 - s;
        __mmask16 lo = first_lanes(rem), hi = first_lanes(rem > 16 ? rem - 16 : 0);
        __m512 r[16];
        for (size_t i = 0; i < 16; i++) {
            if (i < rows) {
                const float *x = src + i * ld + s;
                __m512bh v = _mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(hi, x + 16),
                                                 _mm512_maskz_loadu_ps(lo, x));
                r[i] = _mm512_castsi512_ps((__m512i)v);
            } else {
                r[i] = _mm512_setzero_ps();
            }
        }
        glora_transpose16_avx512(r);
        size_t count = (rem + 1) / 2 < 16 ? (rem + 1) / 2 : 16;
        for (size_t q = 0; q < count; q++)
            _mm512_mask_storeu_ps((float *)(dst + (p0 + q) * stride), store, r[q]);
    }
}

/* 16 pair words: word j = (bf16(lo[j]), bf16(hi[j])) for the lanes in m,
 * zero elsewhere; hi NULL: the odd k's missing partner, zero. */
static inline __m512i pair_words(const float *lo, const float *hi, __mmask16 m) {
    /* Word 2j <- element j (lo's), word 2j + 1 <- element 16 + j (hi's). */
    const __m512i idx = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9,
                                         24, 8, 23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1,
                                         16, 0);
    __m512 l = _mm512_maskz_loadu_ps(m, lo);
    __m512 h = hi ? _mm512_maskz_loadu_ps(m, hi) : _mm512_setzero_ps();
    __m512bh v = _mm512_cvtne2ps_pbh(h, l); /* elements 0-15: l, 16-31: h */
    return _mm512_permutexvar_epi16(idx, (__m512i)v);
}

/* op(A)^T stored: rows [0, mc) of op(A) are columns of a (at its origin
 * column), k step s at a + s * lda. Pair by pair, each pair of rows of a
 * read once across all the micro-panels. */
static void pack_a_trans(size_t mc, size_t k0, size_t k1, const float *a, size_t lda,
                         uint32_t *dst) {
    const size_t kp = (k1 - k0 + 1) / 2;
    for (size_t p = 0; p < kp; p++) {
        const float *r0 = a + (k0 + 2 * p) * lda;
        const float *r1 = k0 + 2 * p + 1 < k1 ? r0 + lda : NULL;
        uint32_t *d = dst + p * 12;
        for (size_t i0 = 0; i0 < mc; i0 += 12, d += kp * 12) {
            __mmask16 m = first_lanes(mc - i0 < 12 ? mc - i0 : 12);
            _mm512_mask_storeu_epi32(d, 0x0fff, pair_words(r0 + i0, r1 ? r1 + i0 : NULL, m));
        }
    }
}

void bgemm_avx512_pack_a(glora_trans_t ta, size_t mc, size_t k0, size_t k1, const float *a,
                         size_t lda, size_t mr, uint32_t *dst) {
    if (mr != 12) {
        bgemm_pack_a_portable(ta, mc, k0, k1, a, lda, mr, dst);
        return;
    }
    if (ta) {
        pack_a_trans(mc, k0, k1, a, lda, dst);
        return;
    }
    const size_t kp = (k1 - k0 + 1) / 2;
    for (size_t i0 = 0; i0 < mc; i0 += 12, dst += kp * 12)
        pack_rows(a + i0 * lda, lda, mc - i0 < 12 ? mc - i0 : 12, k0, k1, dst, 12, 0x0fff);
}

void bgemm_avx512_pack_b(glora_trans_t tb, size_t k, size_t nc, const float *b, size_t ldb,
                         size_t nr, uint32_t *dst) {
    if (nr != 32) {
        bgemm_pack_b_portable(tb, k, nc, b, ldb, nr, dst);
        return;
    }
    const size_t kp = (k + 1) / 2;
    if (!tb) {
        /* op(B) = b: k step s is row s of b; 32 columns a panel. */
        for (size_t j0 = 0; j0 < nc; j0 += 32, dst += kp * 32) {
            size_t cols = nc - j0 < 32 ? nc - j0 : 32;
            __mmask16 m0 = first_lanes(cols), m1 = first_lanes(cols > 16 ? cols - 16 : 0);
            for (size_t p = 0; p < kp; p++) {
                const float *r0 = b + 2 * p * ldb + j0;
                const float *r1 = 2 * p + 1 < k ? r0 + ldb : NULL;
                _mm512_storeu_si512(dst + p * 32, pair_words(r0, r1, m0));
                _mm512_storeu_si512(dst + p * 32 + 16,
                                    pair_words(r0 + 16, r1 ? r1 + 16 : NULL, m1));
            }
        }
        return;
    }
    for (size_t j0 = 0; j0 < nc; j0 += 32, dst += kp * 32) {
        size_t cols = nc - j0 < 32 ? nc - j0 : 32;
        pack_rows(b + j0 * ldb, ldb, cols < 16 ? cols : 16, 0, k, dst, 32, 0xffff);
        pack_rows(b + (j0 + 16) * ldb, ldb, cols > 16 ? cols - 16 : 0, 0, k, dst + 16, 32,
                  0xffff);
    }
}
