/* Softmax cross-entropy with label smoothing, as PyTorch's
 * CrossEntropyLoss(label_smoothing=s): the target distribution is
 * (1-s) one-hot + s/V uniform, so
 *     loss = -(1-s) log p_y - (s/V) sum_v log p_v. */
#include "glora/nn.h"
#include "glora/common.h"

#include <math.h>

#include "nn/nn-impl.h"

void glora_xent_forward(float *losses, float *probs, const float *logits, const int *targets,
                        size_t B, int V, float smoothing) {
    /* logits is (B, V), targets is (B) in [0, V); losses is (B), probs is (B, V) */
    const size_t Vs = (size_t)V;
    GLORA_ASSERT(V > 0);
#pragma omp parallel for schedule(static) if (nn_parallel(8 * B * Vs))
    for (size_t b = 0; b < B; b++) {
        const float *z = logits + b * Vs;
        float *p = probs + b * Vs;
        const int y = targets[b];
        GLORA_ASSERT(y >= 0 && y < V);
        float mx = z[0];
        for (size_t v = 1; v < Vs; v++)
            if (z[v] > mx) mx = z[v];
        float sum = 0.0f, zsum = 0.0f;
        for (size_t v = 0; v < Vs; v++) {
            p[v] = expf(z[v] - mx);
            sum += p[v];
            zsum += z[v] - mx;
        }
        const float lse = logf(sum); /* log p_v = z_v - mx - lse */
        const float inv = 1.0f / sum;
        for (size_t v = 0; v < Vs; v++) p[v] *= inv;
        const float nll = lse - (z[y] - mx);
        const float mean_nlp = lse - zsum / (float)V; /* -(1/V) sum_v log p_v */
        losses[b] = (1.0f - smoothing) * nll + smoothing * mean_nlp;
    }
}

void glora_xent_backward(float *dlogits, const float *probs, const int *targets,
                         size_t B, int V, float smoothing, float scale) {
    /* probs is (B, V), targets is (B); dlogits (B, V) accumulates */
    if (!dlogits) return;
    const size_t Vs = (size_t)V;
    const float off = smoothing / (float)V, on = 1.0f - smoothing + off;
    for (size_t b = 0; b < B; b++) {
        const float *p = probs + b * Vs;
        float *d = dlogits + b * Vs;
        const size_t y = (size_t)targets[b];
        for (size_t v = 0; v < Vs; v++) d[v] += scale * (p[v] - (v == y ? on : off));
    }
}
