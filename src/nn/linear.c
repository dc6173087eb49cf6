/* The linear layer: all its arithmetic is glora_sgemm except the bias. */
#include "glora/nn.h"
#include "glora/gemm.h"
#include "glora/common.h"

#include "nn/nn-impl.h"

void glora_linear_forward(float *out, const float *inp, const float *weight, const float *bias,
                          size_t N, int IC, int OC) {
    /* inp is (N, IC), weight is (OC, IC), bias is (OC) or NULL; out is (N, OC) */
    const size_t ic = (size_t)IC, oc = (size_t)OC;
    glora_sgemm_bias(GLORA_NOTRANS, GLORA_TRANS, N, oc, ic, 1.0f, inp, ic, weight, ic, 0.0f, bias,
                     out, oc);
}

void glora_linear_forward_packed(float *out, const float *inp, const glora_sgemm_b_t *weight,
                                 const float *bias, size_t N, int IC, int OC) {
    /* inp is (N, IC), weight packs W^T of a (OC, IC) weight; out is (N, OC) */
    const size_t ic = (size_t)IC, oc = (size_t)OC;
    GLORA_ASSERT(weight->k == ic && weight->n == oc);
    glora_sgemm_packed(GLORA_NOTRANS, N, 0, oc, 1.0f, inp, ic, weight, 0.0f, bias, out, oc);
}

void glora_linear_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                           const float *inp, const float *weight, size_t N, int IC, int OC) {
    /* dout is (N, OC), inp is (N, IC), weight is (OC, IC);
     * dinp (N, IC) += dout * weight; dweight (OC, IC) += dout^T * inp;
     * dbias (OC) += column sums of dout */
    const size_t ic = (size_t)IC, oc = (size_t)OC;
    if (dinp)
        glora_sgemm(GLORA_NOTRANS, GLORA_NOTRANS, N, ic, oc, 1.0f, dout, oc, weight, ic, 1.0f,
                    dinp, ic);
    if (dweight)
        glora_sgemm(GLORA_TRANS, GLORA_NOTRANS, oc, ic, N, 1.0f, dout, oc, inp, ic, 1.0f,
                    dweight, ic);
    if (!dbias) return;
    /* Threads own blocks of columns and add rows in row order. */
    const size_t nblk = (oc + NN_COL_BLOCK - 1) / NN_COL_BLOCK;
#pragma omp parallel for schedule(static) if (nn_parallel(N * oc) && nblk > 1)
    for (size_t blk = 0; blk < nblk; blk++) {
        const size_t j0 = blk * NN_COL_BLOCK;
        const size_t nj = oc - j0 < NN_COL_BLOCK ? oc - j0 : NN_COL_BLOCK;
        float acc[NN_COL_BLOCK] = {0};
        for (size_t n = 0; n < N; n++) {
            const float *g = dout + n * oc + j0;
#pragma omp simd
            for (size_t j = 0; j < nj; j++) acc[j] += g[j];
        }
        for (size_t j = 0; j < nj; j++) dbias[j0 + j] += acc[j];
    }
}
