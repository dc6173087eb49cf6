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
#include "kernel-avx512-tile.h"

#define MR AVX512_TILE_MR
#define NR 32

/* lda == 0: ap is a packed micro-panel (MR floats a k step); otherwise A
 * itself, row i at ap + i*lda. Both are constants in each inlined copy. */
static inline __attribute__((always_inline)) void
tile(size_t k, const float *ap, const size_t lda, const float *bp, size_t ldbp, float *c,
     size_t ldc, const int rows, size_t n, float alpha, float beta, const float *bias) {
    /* Columns past n: masked off in the loads of B (so B may be read in
     * place) and in the stores of C. */
    __mmask16 k0, k1;
    avx512_tile_masks(n, &k0, &k1);
    __m512 acc0[MR], acc1[MR];
    #pragma GCC unroll 12
    for (int i = 0; i < rows; i++) {
        acc0[i] = _mm512_setzero_ps();
        acc1[i] = _mm512_setzero_ps();
    }
    avx512_tile_prefetch_c(c, ldc, rows);
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
    avx512_tile_store(c, ldc, rows, k0, k1, acc0, acc1, alpha, beta, bias);
}

#define PACKED(R) tile(k, ap, 0, bp, ldbp, c, ldc, R, n, alpha, beta, bias)
#define DIRECT_A(R) tile(k, a, lda, bp, ldbp, c, ldc, R, n, alpha, beta, bias)

void sgemm_avx512_12x32(size_t k, const float *ap, const float *bp, size_t ldbp, float *c,
                        size_t ldc, size_t m, size_t n, float alpha, float beta,
                        const float *bias) {
    AVX512_TILE_ROWS(PACKED, m)
}

void sgemm_avx512_12x32_da(size_t k, const float *a, size_t lda, const float *bp, size_t ldbp,
                           float *c, size_t ldc, size_t m, size_t n, float alpha, float beta,
                           const float *bias) {
    AVX512_TILE_ROWS(DIRECT_A, m)
}
