/* sgemm_portable_6x8: the micro-kernel every x86-64 (and any other) CPU
 * runs. Plain C over a 6 x 8 block of accumulators that the compiler keeps
 * in vector registers with the baseline instruction set. */
#include "gemm-impl.h"

#define MR 6
#define NR 8

void sgemm_portable_6x8(size_t k, const float *ap, const float *bp, size_t ldbp, float *c,
                        size_t ldc, size_t m, size_t n, float alpha, float beta,
                        const float *bias) {
    float acc[MR][NR] = {{0.0f}};
    for (size_t p = 0; p < k; p++, ap += MR, bp += ldbp) {
        for (int i = 0; i < MR; i++)
            for (int j = 0; j < NR; j++) acc[i][j] += ap[i] * bp[j];
    }
    for (size_t i = 0; i < m; i++) {
        float *ci = c + i * ldc;
        if (beta == 0.0f) {
            for (size_t j = 0; j < n; j++) ci[j] = alpha * acc[i][j];
        } else {
            for (size_t j = 0; j < n; j++) ci[j] = alpha * acc[i][j] + beta * ci[j];
        }
        for (size_t j = 0; bias && j < n; j++) ci[j] += bias[j];
    }
}
