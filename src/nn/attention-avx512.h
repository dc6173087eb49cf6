/* Pieces both AVX-512 attention kernels use (attention_avx512.c, fp32, and
 * attention_bf16_avx512.c): the split of a pair's queries into register
 * groups and the exponential pass of a row's softmax. Include after the
 * file's `#pragma GCC target` and nn/nn-math.h: the functions compile for
 * the including file's target and its NN_MADD, so each file keeps its own
 * bits. */
#ifndef GLORA_NN_ATTENTION_AVX512_H
#define GLORA_NN_ATTENTION_AVX512_H

#include <immintrin.h>
#include <math.h>
#include <stddef.h>

/* Groups of at most `max` rows, as even as possible (17 = 9 + 8). */
static inline size_t nn_attn_group_rows(size_t n, size_t max) {
    size_t groups = (n + max - 1) / max;
    return (n + groups - 1) / groups;
}

/* The softmax's numerators of one row of n scores, in place: a[j] =
 * exp(a[j] - max a); returns their 16 lane-wise partial sums (the caller
 * reduces them in its own fixed order). The maximum is 16 lane-wise
 * partial results reduced in a fixed order. The exponentials (nn-math.h's)
 * run on an aligned copy of up to 16 vectors of the row at a time, padded
 * to whole vectors (the padding's lanes are dropped): every load then
 * reads exactly what one earlier vector store wrote. Exponentiating a
 * whole block of rows at once needs fewer vectors, but then each row of 17
 * scores is read back across two stores, and the profile showed those
 * loads waiting (store forwarding). */
#define NN_SM_PIECE 256

static inline __m512 nn_softmax_exp_row(float *a, size_t n) {
    float buf[NN_SM_PIECE] __attribute__((aligned(64)));
    const size_t full = n / 16 * 16;
    const __mmask16 tm = (__mmask16)((1u << (n % 16)) - 1u);
    __m512 vmx = _mm512_set1_ps(-INFINITY);
    for (size_t j = 0; j < full; j += 16) vmx = _mm512_max_ps(vmx, _mm512_loadu_ps(a + j));
    if (tm) vmx = _mm512_mask_max_ps(vmx, tm, vmx, _mm512_maskz_loadu_ps(tm, a + full));
    vmx = _mm512_set1_ps(_mm512_reduce_max_ps(vmx));
    __m512 vs = _mm512_setzero_ps();
    for (size_t p0 = 0; p0 < n; p0 += NN_SM_PIECE) {
        const size_t len = n - p0 < NN_SM_PIECE ? n - p0 : NN_SM_PIECE, padded = (len + 15) / 16 * 16;
        for (size_t j = 0; j < padded; j += 16) {
            const __mmask16 m = j + 16 <= len ? (__mmask16)0xffff : tm;
            _mm512_store_ps(buf + j, _mm512_sub_ps(_mm512_maskz_loadu_ps(m, a + p0 + j), vmx));
        }
#pragma omp simd aligned(buf : 64)
        for (size_t j = 0; j < padded; j++) buf[j] = nn_exp_neg(buf[j]);
        for (size_t j = 0; j < padded; j += 16) {
            const __mmask16 m = j + 16 <= len ? (__mmask16)0xffff : tm;
            const __m512 e = _mm512_maskz_mov_ps(m, _mm512_load_ps(buf + j));
            vs = _mm512_add_ps(vs, e);
            _mm512_mask_storeu_ps(a + p0 + j, m, e);
        }
    }
    return vs;
}

#endif
