/* bgemm_avx512bf16_12x32: 12 rows x 32 columns of C in 24 zmm accumulators,
 * with VDPBF16PS: each step takes one pair of k. It loads the B panel's
 * pair row (two vectors of 16 pairs) and broadcasts each of the 12 rows'
 * A pair: 24 VDPBF16PS (768 multiply-adds) for 14 loads, twice the work of
 * an fp32 FMA step for the same registers. Rows short of 12 get their own
 * unrolled instance; columns short of 32 are zero in the packed panel and
 * masked in the stores of C.
 *
 * Compiled for AVX512_BF16 by the pragma below whatever the build's flags;
 * the dispatcher calls in here only after checking the CPU. */
#pragma GCC target("avx512f,avx512vl,avx512bw,avx512dq,avx512bf16,fma")
#include <immintrin.h>

#include "gemm-impl.h"

#define MR 12
#define NR 32

static inline __attribute__((always_inline)) void
tile(size_t kp, const uint32_t *ap, const uint32_t *bp, float *c, size_t ldc, const int rows,
     size_t n, float alpha, float beta, const float *bias) {
    __mmask16 k0 = n >= 16 ? 0xffff : (__mmask16)((1u << n) - 1);
    __mmask16 k1 = n >= 32 ? 0xffff : n > 16 ? (__mmask16)((1u << (n - 16)) - 1) : 0;
    __m512 acc0[MR], acc1[MR];
    #pragma GCC unroll 12
    for (int i = 0; i < rows; i++) {
        acc0[i] = _mm512_setzero_ps();
        acc1[i] = _mm512_setzero_ps();
    }
    #pragma GCC unroll 12
    for (int i = 0; i < rows; i++) {
        _mm_prefetch((const char *)(c + (size_t)i * ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(c + (size_t)i * ldc + 16), _MM_HINT_T0);
    }
    #pragma GCC unroll 4
    for (size_t p = 0; p < kp; p++, ap += MR, bp += NR) {
        _mm_prefetch((const char *)(bp + 8 * NR), _MM_HINT_T0);
        _mm_prefetch((const char *)(bp + 8 * NR + 16), _MM_HINT_T0);
        __m512bh b0 = (__m512bh)_mm512_loadu_si512(bp);
        __m512bh b1 = (__m512bh)_mm512_loadu_si512(bp + 16);
        #pragma GCC unroll 12
        for (int i = 0; i < rows; i++) {
            __m512bh ai = (__m512bh)_mm512_set1_epi32((int)ap[i]);
            acc0[i] = _mm512_dpbf16_ps(acc0[i], ai, b0);
            acc1[i] = _mm512_dpbf16_ps(acc1[i], ai, b1);
        }
    }
    const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    const __m512 bias0 = bias ? _mm512_maskz_loadu_ps(k0, bias) : _mm512_setzero_ps();
    const __m512 bias1 = bias ? _mm512_maskz_loadu_ps(k1, bias + 16) : _mm512_setzero_ps();
    #pragma GCC unroll 12
    for (int i = 0; i < rows; i++) {
        float *ci = c + (size_t)i * ldc;
        __m512 r0 = _mm512_mul_ps(va, acc0[i]), r1 = _mm512_mul_ps(va, acc1[i]);
        if (beta != 0.0f) {
            r0 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(k0, ci), r0);
            r1 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(k1, ci + 16), r1);
        }
        if (bias) {
            r0 = _mm512_add_ps(r0, bias0);
            r1 = _mm512_add_ps(r1, bias1);
        }
        _mm512_mask_storeu_ps(ci, k0, r0);
        _mm512_mask_storeu_ps(ci + 16, k1, r1);
    }
}

void bgemm_avx512bf16_12x32(size_t kp, const uint32_t *ap, const uint32_t *bp, float *c,
                            size_t ldc, size_t m, size_t n, float alpha, float beta,
                            const float *bias) {
    switch (m) {
    case 12: tile(kp, ap, bp, c, ldc, 12, n, alpha, beta, bias); break;
    case 11: tile(kp, ap, bp, c, ldc, 11, n, alpha, beta, bias); break;
    case 10: tile(kp, ap, bp, c, ldc, 10, n, alpha, beta, bias); break;
    case 9: tile(kp, ap, bp, c, ldc, 9, n, alpha, beta, bias); break;
    case 8: tile(kp, ap, bp, c, ldc, 8, n, alpha, beta, bias); break;
    case 7: tile(kp, ap, bp, c, ldc, 7, n, alpha, beta, bias); break;
    case 6: tile(kp, ap, bp, c, ldc, 6, n, alpha, beta, bias); break;
    case 5: tile(kp, ap, bp, c, ldc, 5, n, alpha, beta, bias); break;
    case 4: tile(kp, ap, bp, c, ldc, 4, n, alpha, beta, bias); break;
    case 3: tile(kp, ap, bp, c, ldc, 3, n, alpha, beta, bias); break;
    case 2: tile(kp, ap, bp, c, ldc, 2, n, alpha, beta, bias); break;
    case 1: tile(kp, ap, bp, c, ldc, 1, n, alpha, beta, bias); break;
    default: break;
    }
}
