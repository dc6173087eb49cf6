/* bgemm_emulated_12x32: the bf16 micro-kernel in portable C, for CPUs
 * without AVX512_BF16. Each element of the tile follows one VDPBF16PS lane
 * exactly (bgemm_dp_step), pair after pair, and ends as the AVX-512
 * kernel's tile does, so its bits equal the hardware kernel's. Slow (a few
 * scalar operations per multiply-add) but exact. */
#include "gemm-impl.h"

#define MR 12
#define NR 32

void bgemm_emulated_12x32(size_t kp, const uint32_t *ap, const uint32_t *bp, float *c,
                          size_t ldc, size_t m, size_t n, float alpha, float beta,
                          const float *bias) {
    float acc[MR][NR];
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++) acc[i][j] = 0.0f;
    for (size_t p = 0; p < kp; p++, ap += MR, bp += NR)
        for (size_t i = 0; i < m; i++)
            for (size_t j = 0; j < n; j++) acc[i][j] = bgemm_dp_step(acc[i][j], ap[i], bp[j]);
    for (size_t i = 0; i < m; i++) {
        float *ci = c + i * ldc;
        for (size_t j = 0; j < n; j++) {
            float r = alpha * acc[i][j];
            if (beta != 0.0f) r = fmaf(beta, ci[j], r);
            if (bias) r = r + bias[j];
            ci[j] = r;
        }
    }
}
