/* Packing of bf16 operands for the AVX512_BF16 tile (mr 12, nr 32) where
 * op() reads rows of the stored matrix along k: A not transposed (the
 * activations of a forward or input-gradient product) and B transposed
 * (a weight W, op(B) = W^T). VCVTNE2PS2BF16 rounds 32 floats of a row to
 * 16 pairs, and 16 x 16 blocks of pairs are transposed in registers into
 * the panel's pair rows. Other forms go to the portable packers, whose
 * results these equal bit for bit (VCVTNE2PS2BF16 rounds as
 * bgemm_bf16_bits: tests/test_bgemm). Called only where the CPU has
 * AVX512_BF16. */
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

void bgemm_avx512_pack_a(glora_trans_t ta, size_t mc, size_t k0, size_t k1, const float *a,
                         size_t lda, size_t mr, uint32_t *dst) {
    if (ta || mr != 12) {
        bgemm_pack_a_portable(ta, mc, k0, k1, a, lda, mr, dst);
        return;
    }
    const size_t kp = (k1 - k0 + 1) / 2;
    for (size_t i0 = 0; i0 < mc; i0 += 12, dst += kp * 12)
        pack_rows(a + i0 * lda, lda, mc - i0 < 12 ? mc - i0 : 12, k0, k1, dst, 12, 0x0fff);
}

void bgemm_avx512_pack_b(glora_trans_t tb, size_t k, size_t nc, const float *b, size_t ldb,
                         size_t nr, uint32_t *dst) {
    if (!tb || nr != 32) {
        bgemm_pack_b_portable(tb, k, nc, b, ldb, nr, dst);
        return;
    }
    const size_t kp = (k + 1) / 2;
    for (size_t j0 = 0; j0 < nc; j0 += 32, dst += kp * 32) {
        size_t cols = nc - j0 < 32 ? nc - j0 : 32;
        pack_rows(b + j0 * ldb, ldb, cols < 16 ? cols : 16, 0, k, dst, 32, 0xffff);
        pack_rows(b + (j0 + 16) * ldb, ldb, cols > 16 ? cols - 16 : 0, 0, k, dst + 16, 32,
                  0xffff);
    }
}
