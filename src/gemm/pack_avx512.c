/* Packing for the AVX-512 kernel's tile (mr 12, nr 32). Where op() needs a
 * transposition (A not transposed, B transposed: the forward y = x W^T),
 * 16 x 16 blocks are transposed in registers, about a quarter of a cycle
 * per float instead of one strided store each. Other tiles go to the
 * portable packers. */
#pragma GCC target("avx512f,avx512vl,avx512bw,avx512dq,fma")
#include <immintrin.h>

#include "gemm-impl.h"
#include "util/transpose-avx512.h"

static inline __mmask16 first_lanes(size_t count) {
    return count >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << count) - 1);
}

void sgemm_avx512_pack_a(glora_trans_t ta, size_t mc, size_t kc, const float *a,
                         size_t lda, size_t mr, float *dst) {
    if (mr != 12) {
        sgemm_pack_a_portable(ta, mc, kc, a, lda, mr, dst);
        return;
    }
    const __mmask16 row12 = 0x0fff;
    if (ta) {
        /* Each k step of op(A) is a contiguous run of rows: read it once,
         * in order, and deal it out to the panels (reading one panel's 12
         * floats per row instead fetches every cache line again for the
         * next panel, at a stride). Four k steps of a panel are 48 floats:
         * three whole vectors, stored without masks or line splits. */
        const __m512i take01 = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11,
                                                 16, 17, 18, 19);
        const __m512i take12 = _mm512_setr_epi32(4, 5, 6, 7, 8, 9, 10, 11, 16, 17, 18,
                                                 19, 20, 21, 22, 23);
        const __m512i take23 = _mm512_setr_epi32(8, 9, 10, 11, 16, 17, 18, 19, 20, 21,
                                                 22, 23, 24, 25, 26, 27);
        size_t p = 0;
        for (; p + 4 <= kc; p += 4) {
            const float *src = a + p * lda;
            float *d = dst + p * 12;
            for (size_t i0 = 0; i0 < mc; i0 += 12, d += kc * 12) {
                __mmask16 valid = first_lanes(mc - i0 < 12 ? mc - i0 : 12);
                __m512 r0 = _mm512_maskz_loadu_ps(valid, src + i0);
                __m512 r1 = _mm512_maskz_loadu_ps(valid, src + lda + i0);
                __m512 r2 = _mm512_maskz_loadu_ps(valid, src + 2 * lda + i0);
                __m512 r3 = _mm512_maskz_loadu_ps(valid, src + 3 * lda + i0);
                _mm512_storeu_ps(d, _mm512_permutex2var_ps(r0, take01, r1));
                _mm512_storeu_ps(d + 16, _mm512_permutex2var_ps(r1, take12, r2));
                _mm512_storeu_ps(d + 32, _mm512_permutex2var_ps(r2, take23, r3));
            }
        }
        for (; p < kc; p++) {
            const float *src = a + p * lda;
            float *d = dst + p * 12;
            for (size_t i0 = 0; i0 < mc; i0 += 12, d += kc * 12) {
                __mmask16 valid = first_lanes(mc - i0 < 12 ? mc - i0 : 12);
                _mm512_mask_storeu_ps(d, row12, _mm512_maskz_loadu_ps(valid, src + i0));
            }
        }
        return;
    }
    for (size_t i0 = 0; i0 < mc; i0 += 12, dst += kc * 12) {
        size_t rows = mc - i0 < 12 ? mc - i0 : 12;
        const float *src = a + i0 * lda;
        for (size_t p0 = 0; p0 < kc; p0 += 16) {
            __mmask16 steps = first_lanes(kc - p0);
            __m512 r[16];
            for (size_t i = 0; i < 16; i++)
                r[i] = i < rows ? _mm512_maskz_loadu_ps(steps, src + i * lda + p0)
                                : _mm512_setzero_ps();
            glora_transpose16_avx512(r);
            size_t count = kc - p0 < 16 ? kc - p0 : 16;
            for (size_t q = 0; q < count; q++)
                _mm512_mask_storeu_ps(dst + (p0 + q) * 12, row12, r[q]);
        }
    }
}

void sgemm_avx512_pack_b(glora_trans_t tb, size_t kc, size_t nc, const float *b,
                         size_t ldb, size_t nr, float *dst) {
    if (nr != 32) {
        sgemm_pack_b_portable(tb, kc, nc, b, ldb, nr, dst);
        return;
    }
    for (size_t j0 = 0; j0 < nc; j0 += 32, dst += kc * 32) {
        size_t cols = nc - j0 < 32 ? nc - j0 : 32;
        if (!tb) {
            __mmask16 lo = first_lanes(cols), hi = first_lanes(cols > 16 ? cols - 16 : 0);
            const float *src = b + j0;
            for (size_t p = 0; p < kc; p++, src += ldb) {
                _mm512_store_ps(dst + p * 32, _mm512_maskz_loadu_ps(lo, src));
                _mm512_store_ps(dst + p * 32 + 16, _mm512_maskz_loadu_ps(hi, src + 16));
            }
            continue;
        }
        /* op(B) column j is row j of the stored n x k matrix: transpose
         * 16 columns x 16 k steps at a time. */
        for (size_t half = 0; half < 2; half++) {
            const float *src = b + (j0 + half * 16) * ldb;
            size_t here = cols > half * 16 ? cols - half * 16 : 0;
            if (here > 16) here = 16;
            for (size_t p0 = 0; p0 < kc; p0 += 16) {
                __mmask16 steps = first_lanes(kc - p0);
                __m512 r[16];
                for (size_t j = 0; j < 16; j++)
                    r[j] = j < here ? _mm512_maskz_loadu_ps(steps, src + j * ldb + p0)
                                    : _mm512_setzero_ps();
                glora_transpose16_avx512(r);
                size_t count = kc - p0 < 16 ? kc - p0 : 16;
                for (size_t q = 0; q < count; q++)
                    _mm512_store_ps(dst + (p0 + q) * 32 + half * 16, r[q]);
            }
        }
    }
}
