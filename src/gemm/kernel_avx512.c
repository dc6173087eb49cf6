/* sgemm_avx512_12x32: 12 rows x 32 columns of C in 24 zmm accumulators.
 * Each k step loads one row of the B micro-panel (two vectors) and
 * broadcasts the 12 values of the A micro-panel: 24 FMAs for 14 loads.
 * Rows short of 12 get their own unrolled instance (the M edge is common:
 * 17 tokens per image); columns short of 32 are masked.
 *
 * Compiled for AVX-512 by the pragma below, whatever the build's flags; the
 * dispatcher only calls in here after checking the CPU. */
#pragma GCC target("avx512f,avx512vl,avx512bw,avx512dq,fma")
#include <immintrin.h>

#include "gemm-impl.h"

#define MR 12
#define NR 32

/* lda == 0: ap is a packed micro-panel (MR floats a k step); otherwise A
 * itself, row i at ap + i*lda. Both are constants in each inlined copy. */
static inline __attribute__((always_inline)) void
tile(size_t k, const float *ap, const size_t lda, const float *bp, size_t ldbp, float *c,
     size_t ldc, const int rows, size_t n, float alpha, float beta, const float *bias) {
    /* Columns past n: masked off in the loads of B (so B may be read in
     * place) and in the stores of C. */
    __mmask16 k0 = n >= 16 ? 0xffff : (__mmask16)((1u << n) - 1);
    __mmask16 k1 = n >= 32 ? 0xffff : n > 16 ? (__mmask16)((1u << (n - 16)) - 1) : 0;
    __m512 acc0[MR], acc1[MR];
    #pragma GCC unroll 12
    for (int i = 0; i < rows; i++) {
        acc0[i] = _mm512_setzero_ps();
        acc1[i] = _mm512_setzero_ps();
    }
    /* The C tile is needed at the end: start fetching it now. */
    #pragma GCC unroll 12
    for (int i = 0; i < rows; i++) {
        _mm_prefetch((const char *)(c + (size_t)i * ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(c + (size_t)i * ldc + 16), _MM_HINT_T0);
    }
    #pragma GCC unroll 4
    for (size_t p = 0; p < k; p++, ap += lda ? 1 : MR, bp += ldbp) {
        /* B streams from L2: ask for it a few steps ahead. */
        _mm_prefetch((const char *)(bp + 8 * ldbp), _MM_HINT_T0);
        _mm_prefetch((const char *)(bp + 8 * ldbp + 16), _MM_HINT_T0);
        __m512 b0 = _mm512_maskz_loadu_ps(k0, bp);
        __m512 b1 = _mm512_maskz_loadu_ps(k1, bp + 16);
        #pragma GCC unroll 12
        for (int i = 0; i < rows; i++) {
            __m512 ai = _mm512_set1_ps(lda ? ap[(size_t)i * lda] : ap[i]);
            acc0[i] = _mm512_fmadd_ps(ai, b0, acc0[i]);
            acc1[i] = _mm512_fmadd_ps(ai, b1, acc1[i]);
        }
    }
    /* alpha * acc, then + beta * C (one fused rounding), then + bias (one
     * more): the operations of the plain product and a separate bias pass. */
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

#define TILE_CASES(AP, LDA)                                                                    \
    switch (m) {                                                                               \
    case 12: tile(k, AP, LDA, bp, ldbp, c, ldc, 12, n, alpha, beta, bias); break;              \
    case 11: tile(k, AP, LDA, bp, ldbp, c, ldc, 11, n, alpha, beta, bias); break;              \
    case 10: tile(k, AP, LDA, bp, ldbp, c, ldc, 10, n, alpha, beta, bias); break;              \
    case 9: tile(k, AP, LDA, bp, ldbp, c, ldc, 9, n, alpha, beta, bias); break;                \
    case 8: tile(k, AP, LDA, bp, ldbp, c, ldc, 8, n, alpha, beta, bias); break;                \
    case 7: tile(k, AP, LDA, bp, ldbp, c, ldc, 7, n, alpha, beta, bias); break;                \
    case 6: tile(k, AP, LDA, bp, ldbp, c, ldc, 6, n, alpha, beta, bias); break;                \
    case 5: tile(k, AP, LDA, bp, ldbp, c, ldc, 5, n, alpha, beta, bias); break;                \
    case 4: tile(k, AP, LDA, bp, ldbp, c, ldc, 4, n, alpha, beta, bias); break;                \
    case 3: tile(k, AP, LDA, bp, ldbp, c, ldc, 3, n, alpha, beta, bias); break;                \
    case 2: tile(k, AP, LDA, bp, ldbp, c, ldc, 2, n, alpha, beta, bias); break;                \
    case 1: tile(k, AP, LDA, bp, ldbp, c, ldc, 1, n, alpha, beta, bias); break;                \
    default: break;                                                                            \
    }

void sgemm_avx512_12x32(size_t k, const float *ap, const float *bp, size_t ldbp, float *c,
                        size_t ldc, size_t m, size_t n, float alpha, float beta,
                        const float *bias) {
    TILE_CASES(ap, 0)
}

void sgemm_avx512_12x32_da(size_t k, const float *a, size_t lda, const float *bp, size_t ldbp,
                           float *c, size_t ldc, size_t m, size_t n, float alpha, float beta,
                           const float *bias) {
    TILE_CASES(a, lda)
}
