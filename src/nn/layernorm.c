/* LayerNorm over the channels of each row (timm's nn.LayerNorm, biased
 * variance, eps inside the square root). */
#include "glora/nn.h"
#include "glora/common.h"

#include <math.h>

#include "nn/nn-impl.h"

/* One row; rows_avx512.c's on AVX-512 CPUs, else cloned per ISA
 * (nn-impl.h): three short passes over C floats that baseline SSE runs a
 * quarter as wide as AVX-512. */
NN_CLONES static void layernorm_row(float *o, float *mean, float *rstd, const float *x,
                                    const float *weight, const float *bias, size_t Cs, float eps) {
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (size_t c = 0; c < Cs; c++) s += x[c];
    const float m = s / (float)Cs;
    /* Two passes: the centred sum of squares does not cancel. */
    float v = 0.0f;
#pragma omp simd reduction(+ : v)
    for (size_t c = 0; c < Cs; c++) v += (x[c] - m) * (x[c] - m);
    const float r = 1.0f / sqrtf(v / (float)Cs + eps);
#pragma omp simd
    for (size_t c = 0; c < Cs; c++) o[c] = (x[c] - m) * r * weight[c] + bias[c];
    if (mean) *mean = m;
    if (rstd) *rstd = r;
}

void glora_layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                             const float *weight, const float *bias, size_t N, int C, float eps) {
    /* inp is (N, C), weight and bias are (C); out is (N, C); mean, rstd are (N) */
    const size_t Cs = (size_t)C;
    GLORA_ASSERT(C > 0 && weight && bias);
    const int avx512 = nn_use_avx512();
#pragma omp parallel for schedule(static) if (nn_parallel(N * Cs))
    for (size_t n = 0; n < N; n++) {
        float *mn = mean ? mean + n : NULL, *rs = rstd ? rstd + n : NULL;
        if (avx512)
            nn_layernorm_row_avx512(out + n * Cs, mn, rs, inp + n * Cs, weight, bias, Cs, eps);
        else
            layernorm_row(out + n * Cs, mn, rs, inp + n * Cs, weight, bias, Cs, eps);
    }
}

void glora_layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                              const float *inp, const float *weight, const float *mean,
                              const float *rstd, size_t N, int C) {
    /* dout, inp are (N, C); weight is (C); mean, rstd are (N);
     * dinp (N, C), dweight (C), dbias (C) accumulate */
    const size_t Cs = (size_t)C;
    GLORA_ASSERT(weight && mean && rstd);
    const size_t nblk = (Cs + NN_COL_BLOCK - 1) / NN_COL_BLOCK;
#pragma omp parallel if (nn_parallel(N * Cs))
    {
        if (dinp) {
#pragma omp for schedule(static) nowait
            for (size_t n = 0; n < N; n++) {
                const float *x = inp + n * Cs, *g = dout + n * Cs;
                const float m = mean[n], r = rstd[n];
                /* With xhat = (x - m) r and dxhat = g w:
                 * dx = r (dxhat - mean(dxhat) - xhat mean(dxhat xhat)). */
                float sg = 0.0f, sgx = 0.0f;
#pragma omp simd reduction(+ : sg, sgx)
                for (size_t c = 0; c < Cs; c++) {
                    const float dxh = g[c] * weight[c];
                    sg += dxh;
                    sgx += dxh * (x[c] - m) * r;
                }
                sg /= (float)C;
                sgx /= (float)C;
                float *d = dinp + n * Cs;
#pragma omp simd
                for (size_t c = 0; c < Cs; c++) {
                    const float dxh = g[c] * weight[c];
                    d[c] += (dxh - sg - (x[c] - m) * r * sgx) * r;
                }
            }
        }
        if (dweight || dbias) {
            /* Sums over rows: threads own column blocks, rows go in order. */
#pragma omp for schedule(static) nowait
            for (size_t blk = 0; blk < nblk; blk++) {
                const size_t c0 = blk * NN_COL_BLOCK;
                const size_t nc = Cs - c0 < NN_COL_BLOCK ? Cs - c0 : NN_COL_BLOCK;
                float aw[NN_COL_BLOCK] = {0}, ab[NN_COL_BLOCK] = {0};
                for (size_t n = 0; n < N; n++) {
                    const float *x = inp + n * Cs + c0, *g = dout + n * Cs + c0;
                    const float m = mean[n], r = rstd[n];
#pragma omp simd
                    for (size_t c = 0; c < nc; c++) {
                        aw[c] += g[c] * ((x[c] - m) * r);
                        ab[c] += g[c];
                    }
                }
                for (size_t c = 0; c < nc; c++) {
                    if (dweight) dweight[c0 + c] += aw[c];
                    if (dbias) dbias[c0 + c] += ab[c];
                }
            }
        }
    }
}
