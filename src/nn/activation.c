/* Elementwise layers: exact GELU and the residual add. */
#include "glora/nn.h"

#include <math.h>

#include "nn/nn-impl.h"

#define INV_SQRT2 0.70710678118654752440f
#define INV_SQRT_2PI 0.39894228040143267794f

/* The erf form, as timm's default nn.GELU (not the tanh approximation).
 * Phi(x) = 0.5 (1 + erf(x/sqrt2)) is computed as 0.5 erfc(-x/sqrt2): the
 * same function, without the cancellation of 1 + erf for negative x that
 * would leave only a few correct bits in gelu(-5). */
void glora_gelu_forward(float *out, const float *inp, size_t n) {
    /* inp and out are (n) */
#pragma omp parallel for schedule(static) if (nn_parallel(16 * n))
    for (size_t i = 0; i < n; i++) {
        const float x = inp[i];
        out[i] = 0.5f * x * erfcf(-x * INV_SQRT2);
    }
}

void glora_gelu_backward(float *dinp, const float *inp, const float *dout, size_t n) {
    /* inp, dout, dinp are (n); d gelu/dx = Phi(x) + x phi(x) */
    if (!dinp) return;
#pragma omp parallel for schedule(static) if (nn_parallel(16 * n))
    for (size_t i = 0; i < n; i++) {
        const float x = inp[i];
        const float cdf = 0.5f * erfcf(-x * INV_SQRT2);
        const float pdf = INV_SQRT_2PI * expf(-0.5f * x * x);
        dinp[i] += dout[i] * (cdf + x * pdf);
    }
}

void glora_add(float *out, const float *a, const float *b, size_t n) {
    /* a, b, out are (n); out may alias a or b */
#pragma omp parallel for simd schedule(static) if (nn_parallel(n))
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}
