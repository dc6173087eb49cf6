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
#include "kernel-avx512-tile.h"

#define MR AVX512_TILE_MR
#define NR 32

static inline __attribute__((always_inline)) void
tile(size_t kp, const uint32_t *ap, const uint32_t *bp, float *c, size_t ldc, const int rows,
     size_t n, float alpha, float beta, const float *bias) {
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
    avx512_tile_store(c, ldc, rows, k0, k1, acc0, acc1, alpha, beta, bias);
}

#define TILE(R) tile(kp, ap, bp, c, ldc, R, n, alpha, beta, bias)

void bgemm_avx512bf16_12x32(size_t kp, const uint32_t *ap, const uint32_t *bp, float *c,
                            size_t ldc, size_t m, size_t n, float alpha, float beta,
                            const float *bias) {
    AVX512_TILE_ROWS(TILE, m)
}
