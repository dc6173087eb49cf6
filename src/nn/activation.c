/* Elementwise layers: exact GELU and the residual add. */
#include "glora/nn.h"

#include "nn/nn-impl.h"
#include "nn/nn-math.h"

/* The erf form, as timm's default nn.GELU (not the tanh approximation):
 * gelu(x) = x Phi(x) with Phi(x) = 0.5 (1 + erf(x / sqrt2)), evaluated by
 * nn_normcdf_pdf to a few float ulps, also in the left tail where
 * 1 + erf cancels. */
void glora_gelu_forward(float *out, const float *inp, size_t n) {
    /* inp and out are (n) */
#pragma omp parallel for simd schedule(static) if (nn_parallel(4 * n))
    for (size_t i = 0; i < n; i++) {
        float pdf;
        out[i] = inp[i] * nn_normcdf_pdf(inp[i], &pdf);
    }
}

void glora_gelu_backward(float *dinp, const float *inp, const float *dout, size_t n) {
    /* inp, dout, dinp are (n); d gelu/dx = Phi(x) + x phi(x) */
    if (!dinp) return;
#pragma omp parallel for simd schedule(static) if (nn_parallel(4 * n))
    for (size_t i = 0; i < n; i++) {
        float pdf;
        const float cdf = nn_normcdf_pdf(inp[i], &pdf);
        dinp[i] += dout[i] * (cdf + inp[i] * pdf);
    }
}

/* Memory-bound: a second thread only pays off on long vectors. */
void glora_add(float *out, const float *a, const float *b, size_t n) {
    /* a, b, out are (n); out may alias a or b */
#pragma omp parallel for simd schedule(static) if (nn_parallel(n / 32))
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}
