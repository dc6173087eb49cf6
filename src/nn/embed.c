/* The ends of the network that are not matrix products: patches of the input
 * image, the token sequence (cls token + position embedding) and the cls
 * token picked out for the head. */
#include "glora/nn.h"
#include "glora/common.h"

#include <string.h>

#include "nn/nn-impl.h"

/* Patches as the rows of a matrix, so that the stride-P conv of the patch
 * embedding is one linear layer. */
void glora_im2col(float *patches, const float *img, size_t B, int cin, int h, int w, int p) {
    /* img is (B, cin, h, w); patches is (B, NP, cin*p*p), NP = (h/p)*(w/p) */
    GLORA_ASSERT(cin > 0 && p > 0 && h >= p && w >= p);
    const int gh = h / p, gw = w / p;
    const size_t np = (size_t)gh * (size_t)gw;
    const size_t K = (size_t)cin * (size_t)p * (size_t)p;
    const size_t rows = B * np;
#pragma omp parallel for schedule(static) if (nn_parallel(rows * K))
    for (size_t r = 0; r < rows; r++) {
        const size_t b = r / np, i = r % np;
        const size_t y0 = (i / (size_t)gw) * (size_t)p, x0 = (i % (size_t)gw) * (size_t)p;
        float *dst = patches + r * K;
        for (int ci = 0; ci < cin; ci++) {
            const float *plane = img + (b * (size_t)cin + (size_t)ci) * (size_t)h * (size_t)w;
            for (int ky = 0; ky < p; ky++) {
                memcpy(dst, plane + (y0 + (size_t)ky) * (size_t)w + x0, (size_t)p * sizeof(float));
                dst += p;
            }
        }
    }
}

void glora_tokens_forward(float *x, const float *pe, const float *cls, const float *pos,
                          size_t B, int np, int C) {
    /* x is (B, T, C), T = np+1; pe is (B, np, C); cls is (C); pos is (T, C) */
    const size_t T = (size_t)np + 1, Cs = (size_t)C;
    const size_t rows = B * T;
#pragma omp parallel for schedule(static) if (nn_parallel(rows * Cs))
    for (size_t r = 0; r < rows; r++) {
        const size_t b = r / T, t = r % T;
        const float *src = t == 0 ? cls : pe + (b * (size_t)np + t - 1) * Cs;
        const float *pt = pos + t * Cs;
        float *xt = x + r * Cs;
#pragma omp simd
        for (size_t c = 0; c < Cs; c++) xt[c] = src[c] + pt[c];
    }
}

/* dpos and dcls sum over the batch: each (token, channel) element is summed
 * by one thread in batch order. */
void glora_tokens_backward(float *dpe, float *dcls, float *dpos, const float *dx,
                           size_t B, int np, int C) {
    /* dx is (B, T, C), T = np+1; dpe is (B, np, C); dcls is (C); dpos is (T, C) */
    const size_t T = (size_t)np + 1, Cs = (size_t)C;
#pragma omp parallel if (nn_parallel(B * T * Cs))
    {
        if (dpe) {
#pragma omp for schedule(static) nowait
            for (size_t r = 0; r < B * (size_t)np; r++) {
                const size_t b = r / (size_t)np, i = r % (size_t)np;
                const float *src = dx + (b * T + 1 + i) * Cs;
                float *dst = dpe + r * Cs;
#pragma omp simd
                for (size_t c = 0; c < Cs; c++) dst[c] += src[c];
            }
        }
        /* Token 0 feeds both dpos[0] and dcls; the same batch-order sum
         * serves both. */
        if (dpos || dcls) {
#pragma omp for schedule(static) nowait
            for (size_t t = 0; t < T; t++) {
                if (!dpos && t > 0) continue;
                for (size_t c0 = 0; c0 < Cs; c0 += NN_COL_BLOCK) {
                    const size_t nc = Cs - c0 < NN_COL_BLOCK ? Cs - c0 : NN_COL_BLOCK;
                    float acc[NN_COL_BLOCK] = {0};
                    for (size_t b = 0; b < B; b++) {
                        const float *src = dx + (b * T + t) * Cs + c0;
#pragma omp simd
                        for (size_t c = 0; c < nc; c++) acc[c] += src[c];
                    }
                    if (dpos)
                        for (size_t c = 0; c < nc; c++) dpos[t * Cs + c0 + c] += acc[c];
                    if (t == 0 && dcls)
                        for (size_t c = 0; c < nc; c++) dcls[c0 + c] += acc[c];
                }
            }
        }
    }
}

void glora_cls_forward(float *out, const float *x, size_t B, int T, int C) {
    /* x is (B, T, C); out is (B, C) */
    for (size_t b = 0; b < B; b++)
        memcpy(out + b * (size_t)C, x + b * (size_t)T * (size_t)C, (size_t)C * sizeof(float));
}

void glora_cls_backward(float *dx, const float *dout, size_t B, int T, int C) {
    /* dout is (B, C); dx is (B, T, C), only token 0 receives gradient */
    if (!dx) return;
    for (size_t b = 0; b < B; b++) {
        float *d = dx + b * (size_t)T * (size_t)C;
        const float *g = dout + b * (size_t)C;
#pragma omp simd
        for (int c = 0; c < C; c++) d[c] += g[c];
    }
}
