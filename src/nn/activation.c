/* Elementwise layers: exact GELU and the residual add. */
#include "glora/nn.h"

#include "nn/nn-impl.h"
#include "nn/nn-math.h"

/* The erf form, as timm's default nn.GELU (not the tanh approximation):
 * gelu(x) = x Phi(x) with Phi(x) = 0.5 (1 + erf(x / sqrt2)), evaluated by
 * nn_normcdf_pdf to a few float ulps, also in the left tail where
 * 1 + erf cancels. */
/* A few dozen flops per element: worth the widest vectors the CPU has. The
 * chunk kernels are rows_avx512.c's on AVX-512 CPUs, else cloned per ISA
 * (NN_CLONES); the OpenMP split stays outside them. */
#define GELU_CHUNK 4096

NN_CLONES static void gelu_fwd_plain(float *out, const float *inp, size_t n) {
    nn_gelu_fwd_loop(out, inp, n);
}

NN_CLONES static void gelu_bwd_plain(float *dinp, const float *inp, const float *dout, size_t n) {
    nn_gelu_bwd_loop(dinp, inp, dout, n);
}

void glora_gelu_forward(float *out, const float *inp, size_t n) {
    /* inp and out are (n) */
    const size_t chunks = (n + GELU_CHUNK - 1) / GELU_CHUNK;
    const int avx512 = nn_use_avx512();
#pragma omp parallel for schedule(static) if (nn_parallel(4 * n))
    for (size_t c = 0; c < chunks; c++) {
        size_t lo = c * GELU_CHUNK, len = n - lo < GELU_CHUNK ? n - lo : GELU_CHUNK;
        if (avx512)
            nn_gelu_fwd_avx512(out + lo, inp + lo, len);
        else
            gelu_fwd_plain(out + lo, inp + lo, len);
    }
}

void glora_gelu_forward_serial(float *out, const float *inp, size_t n) {
    /* inp and out are (n); the chunk kernel of glora_gelu_forward, elementwise */
    if (nn_use_avx512())
        nn_gelu_fwd_avx512(out, inp, n);
    else
        gelu_fwd_plain(out, inp, n);
}

void glora_gelu_backward(float *dinp, const float *inp, const float *dout, size_t n) {
    /* inp, dout, dinp are (n); d gelu/dx = Phi(x) + x phi(x) */
    if (!dinp) return;
    const size_t chunks = (n + GELU_CHUNK - 1) / GELU_CHUNK;
    const int avx512 = nn_use_avx512();
#pragma omp parallel for schedule(static) if (nn_parallel(4 * n))
    for (size_t c = 0; c < chunks; c++) {
        size_t lo = c * GELU_CHUNK, len = n - lo < GELU_CHUNK ? n - lo : GELU_CHUNK;
        if (avx512)
            nn_gelu_bwd_avx512(dinp + lo, inp + lo, dout + lo, len);
        else
            gelu_bwd_plain(dinp + lo, inp + lo, dout + lo, len);
    }
}

NN_CLONES static void gelu_fwd_deriv_plain(float *out, float *deriv, const float *inp, size_t n) {
    nn_gelu_fwd_deriv_loop(out, deriv, inp, n);
}

void glora_gelu_forward_deriv(float *out, float *deriv, const float *inp, size_t n) {
    /* inp, out, deriv are (n) */
    const size_t chunks = (n + GELU_CHUNK - 1) / GELU_CHUNK;
    const int avx512 = nn_use_avx512();
#pragma omp parallel for schedule(static) if (nn_parallel(4 * n))
    for (size_t c = 0; c < chunks; c++) {
        size_t lo = c * GELU_CHUNK, len = n - lo < GELU_CHUNK ? n - lo : GELU_CHUNK;
        if (avx512)
            nn_gelu_fwd_deriv_avx512(out + lo, deriv + lo, inp + lo, len);
        else
            gelu_fwd_deriv_plain(out + lo, deriv + lo, inp + lo, len);
    }
}

NN_CLONES static void gelu_bwd_deriv_chunk(float *d, const float *dout, size_t n) {
    /* 0 + the product: what glora_gelu_backward adds to a zeroed dinp (a
     * product of -0 becomes +0 there too) */
#pragma omp simd
    for (size_t i = 0; i < n; i++) d[i] = 0.0f + dout[i] * d[i];
}

void glora_gelu_backward_deriv(float *d, const float *dout, size_t n) {
    /* d, dout are (n); d holds the derivative in, the gradient out */
    const size_t chunks = (n + GELU_CHUNK - 1) / GELU_CHUNK;
#pragma omp parallel for schedule(static) if (nn_parallel(n / 32))
    for (size_t c = 0; c < chunks; c++) {
        size_t lo = c * GELU_CHUNK, len = n - lo < GELU_CHUNK ? n - lo : GELU_CHUNK;
        gelu_bwd_deriv_chunk(d + lo, dout + lo, len);
    }
}

NN_CLONES static void add_chunk(float *out, const float *a, const float *b, size_t n) {
#pragma omp simd
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

/* Memory-bound: a second thread only pays off on long vectors. */
void glora_add(float *out, const float *a, const float *b, size_t n) {
    /* a, b, out are (n); out may alias a or b */
    if (!nn_parallel(n / 32)) {
        add_chunk(out, a, b, n);
        return;
    }
    const size_t chunks = (n + GELU_CHUNK - 1) / GELU_CHUNK;
#pragma omp parallel for schedule(static)
    for (size_t c = 0; c < chunks; c++) {
        size_t lo = c * GELU_CHUNK, len = n - lo < GELU_CHUNK ? n - lo : GELU_CHUNK;
        add_chunk(out + lo, a + lo, b + lo, len);
    }
}
