/*
 * kernel-avx512-tile.h - the parts of a 12x32 AVX-512 register tile that
 * the fp32 (kernel_avx512.c) and bf16 (kernel_avx512_bf16.c) micro-kernels
 * share: the column masks, the early fetch of C, and the finish that writes
 * 12 x 32 fp32 accumulators to C. Include it after the file's
 * `#pragma GCC target` (AVX-512F and FMA at least) and <immintrin.h>.
 */
#ifndef GLORA_KERNEL_AVX512_TILE_H
#define GLORA_KERNEL_AVX512_TILE_H

#include <stddef.h>

#define AVX512_TILE_MR 12

/* Masks of the tile's two 16-column halves for n <= 32 live columns. */
static inline __attribute__((always_inline)) void avx512_tile_masks(size_t n, __mmask16 *k0,
                                                                    __mmask16 *k1) {
    *k0 = n >= 16 ? 0xffff : (__mmask16)((1u << n) - 1);
    *k1 = n >= 32 ? 0xffff : n > 16 ? (__mmask16)((1u << (n - 16)) - 1) : 0;
}

/* The C tile is needed at the end: start fetching its rows now. */
static inline __attribute__((always_inline)) void avx512_tile_prefetch_c(const float *c,
                                                                         size_t ldc,
                                                                         const int rows) {
    #pragma GCC unroll 12
    for (int i = 0; i < rows; i++) {
        _mm_prefetch((const char *)(c + (size_t)i * ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(c + (size_t)i * ldc + 16), _MM_HINT_T0);
    }
}

/* C (rows x n, masked by k0/k1) = alpha * acc, then + beta * C in one fused
 * rounding (C not read when beta is 0), then + bias (one more rounding):
 * the operations of the plain product followed by a separate bias pass. */
static inline __attribute__((always_inline)) void
avx512_tile_store(float *c, size_t ldc, const int rows, __mmask16 k0, __mmask16 k1,
                  const __m512 acc0[AVX512_TILE_MR], const __m512 acc1[AVX512_TILE_MR],
                  float alpha, float beta, const float *bias) {
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

/* Runs CALL(rows) with rows = m as a constant, 1..12: each row count gets
 * its own unrolled instance of the tile (the M edge is common). */
#define AVX512_TILE_ROWS(CALL, m)                                                              \
    switch (m) {                                                                               \
    case 12: CALL(12); break;                                                                  \
    case 11: CALL(11); break;                                                                  \
    case 10: CALL(10); break;                                                                  \
    case 9: CALL(9); break;                                                                    \
    case 8: CALL(8); break;                                                                    \
    case 7: CALL(7); break;                                                                    \
    case 6: CALL(6); break;                                                                    \
    case 5: CALL(5); break;                                                                    \
    case 4: CALL(4); break;                                                                    \
    case 3: CALL(3); break;                                                                    \
    case 2: CALL(2); break;                                                                    \
    case 1: CALL(1); break;                                                                    \
    default: break;                                                                            \
    }

#endif
