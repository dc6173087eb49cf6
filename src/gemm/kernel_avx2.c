/* sgemm_avx2_6x16: 6 rows x 16 columns of C in 12 ymm accumulators (of 16
 * registers: two for the B row, one for the broadcast A value). Short rows
 * get their own unrolled instance; short columns use masked loads/stores.
 *
 * Compiled for AVX2+FMA by the pragma below, whatever the build's flags;
 * the dispatcher only calls in here after checking the CPU. */
#pragma GCC target("avx2,fma")
#include <immintrin.h>

#include "gemm-impl.h"

#define MR 6
#define NR 16

static inline __attribute__((always_inline)) void
tile(size_t k, const float *ap, const float *bp, size_t ldbp, float *c, size_t ldc,
     const int rows,
     size_t n, float alpha, float beta, const float *bias) {
    __m256 acc0[MR], acc1[MR];
    #pragma GCC unroll 6
    for (int i = 0; i < rows; i++) {
        acc0[i] = _mm256_setzero_ps();
        acc1[i] = _mm256_setzero_ps();
    }
    for (size_t p = 0; p < k; p++, ap += MR, bp += ldbp) {
        __m256 b0 = _mm256_load_ps(bp);
        __m256 b1 = _mm256_load_ps(bp + 8);
        #pragma GCC unroll 6
        for (int i = 0; i < rows; i++) {
            __m256 ai = _mm256_broadcast_ss(ap + i);
            acc0[i] = _mm256_fmadd_ps(ai, b0, acc0[i]);
            acc1[i] = _mm256_fmadd_ps(ai, b1, acc1[i]);
        }
    }
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    int n0 = n >= 8 ? 8 : (int)n, n1 = n >= 16 ? 8 : n > 8 ? (int)n - 8 : 0;
    __m256i k0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(n0), lane);
    __m256i k1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(n1), lane);
    /* alpha * acc, then + beta * C (one fused rounding), then + bias (one
     * more): the operations of the plain product and a separate bias pass. */
    const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
    const __m256 bias0 = bias ? _mm256_maskload_ps(bias, k0) : _mm256_setzero_ps();
    const __m256 bias1 = bias ? _mm256_maskload_ps(bias + 8, k1) : _mm256_setzero_ps();
    #pragma GCC unroll 6
    for (int i = 0; i < rows; i++) {
        float *ci = c + (size_t)i * ldc;
        __m256 r0 = _mm256_mul_ps(va, acc0[i]), r1 = _mm256_mul_ps(va, acc1[i]);
        if (beta != 0.0f) {
            r0 = _mm256_fmadd_ps(vb, _mm256_maskload_ps(ci, k0), r0);
            r1 = _mm256_fmadd_ps(vb, _mm256_maskload_ps(ci + 8, k1), r1);
        }
        if (bias) {
            r0 = _mm256_add_ps(r0, bias0);
            r1 = _mm256_add_ps(r1, bias1);
        }
        _mm256_maskstore_ps(ci, k0, r0);
        _mm256_maskstore_ps(ci + 8, k1, r1);
    }
}

/* Packed B only (ldbp == NR): the loads assume aligned, zero-padded rows. */
void sgemm_avx2_6x16(size_t k, const float *ap, const float *bp, size_t ldbp, float *c,
                     size_t ldc, size_t m, size_t n, float alpha, float beta,
                     const float *bias) {
    switch (m) {
    case 6: tile(k, ap, bp, ldbp, c, ldc, 6, n, alpha, beta, bias); break;
    case 5: tile(k, ap, bp, ldbp, c, ldc, 5, n, alpha, beta, bias); break;
    case 4: tile(k, ap, bp, ldbp, c, ldc, 4, n, alpha, beta, bias); break;
    case 3: tile(k, ap, bp, ldbp, c, ldc, 3, n, alpha, beta, bias); break;
    case 2: tile(k, ap, bp, ldbp, c, ldc, 2, n, alpha, beta, bias); break;
    case 1: tile(k, ap, bp, ldbp, c, ldc, 1, n, alpha, beta, bias); break;
    default: break;
    }
}
