/* Backward pass of the whole ViT from the activations its forward pass kept
 * (glora_vit_acts_t with keep_all), layer by layer in reverse with the nn.h
 * kernels. An adapted linear layer runs on its merged weight W'; its
 * gradient dW'/db' goes to the frozen layer itself (full fine-tuning: W' is
 * W0 there) or through glora_adapter_backward to the GLoRA tensors. */
#include "glora/train.h"
#include "glora/common.h"
#include "glora/gemm.h"
#include "glora/nn.h"

#include <stdlib.h>
#include <string.h>

struct glora_vit_bwd {
    size_t max_batch;
    float *mem;
    float *dres;    /* (N, C) gradient of the residual stream */
    float *dln;     /* (N, C) gradient of a LayerNorm output */
    float *dattn;   /* (N, C) */
    float *dqkv;    /* (N, 3C) */
    float *datt;    /* (B, NH, T, T) scratch of attention backward */
    float *dfc1;    /* (N, H) */
    float *dgelu;   /* (N, H) */
    float *dw;      /* largest out x in: dL/dW' of one adapted layer */
    float *db;      /* largest out: dL/db' */
    float *scratch; /* largest out x in, for glora_adapter_backward */
    float *dpe;     /* (B, NP, C) */
    float *dcls;    /* (B, C) */
};

int glora_vit_bwd_create(glora_vit_bwd_t **out, const glora_vit_t *m, size_t max_batch) {
    *out = NULL;
    const glora_vit_arch_t *a = &m->arch;
    if (max_batch == 0 || max_batch > (1u << 24))
        return glora_error(GLORA_EINVAL, "backward 'vit': batch size %zu out of range", max_batch);
    const size_t B = max_batch, T = (size_t)a->tokens, C = (size_t)a->dim,
                 H = (size_t)a->mlp_hidden, NH = (size_t)a->heads, N = B * T;
    size_t largest = 0, largest_out = 0;
    for (int l = 0; l < glora_vit_layers(m); l++) {
        const float *w0, *b0;
        int o, i;
        glora_vit_layer(m, l, &w0, &b0, &o, &i);
        if ((size_t)o * i > largest) largest = (size_t)o * i;
        if ((size_t)o > largest_out) largest_out = (size_t)o;
    }
    size_t total = 3 * N * C + N * 3 * C + B * NH * T * T + 2 * N * H + 2 * largest + largest_out +
                   B * (size_t)a->num_patches * C + B * C;
    glora_vit_bwd_t *ws = calloc(1, sizeof *ws);
    if (!ws) return glora_error(GLORA_ENOMEM, "backward 'vit': out of memory");
    ws->max_batch = B;
    ws->mem = malloc(total * sizeof(float));
    if (!ws->mem) {
        free(ws);
        return glora_error(GLORA_ENOMEM, "backward 'vit': out of memory for batch %zu", B);
    }
    float *p = ws->mem;
#define TAKE(n) (p += (n), p - (n))
    ws->dres = TAKE(N * C);
    ws->dln = TAKE(N * C);
    ws->dattn = TAKE(N * C);
    ws->dqkv = TAKE(N * 3 * C);
    ws->datt = TAKE(B * NH * T * T);
    ws->dfc1 = TAKE(N * H);
    ws->dgelu = TAKE(N * H);
    ws->dw = TAKE(largest);
    ws->scratch = TAKE(largest);
    ws->db = TAKE(largest_out);
    ws->dpe = TAKE(B * (size_t)a->num_patches * C);
    ws->dcls = TAKE(B * C);
#undef TAKE
    GLORA_ASSERT((size_t)(p - ws->mem) == total);
    *out = ws;
    return GLORA_OK;
}

void glora_vit_bwd_free(glora_vit_bwd_t *ws) {
    if (!ws) return;
    free(ws->mem);
    free(ws);
}

static int cfg_uses_any(const glora_layer_cfg_t *c) {
    for (int t = 0; t < GLORA_NTENSORS; t++)
        if (c->t[t].kind != GLORA_NONE) return 1;
    return 0;
}

static int adapter_trains(const glora_adapter_t *d) {
    return d->Ad || d->Bd || d->Cd || d->D || d->E;
}

/* Backward of adapted layer l: y (N, out) = x (N, in) W'^T + b'.
 * dinp (may be NULL) is OVERWRITTEN with dL/dx (saves zeroing it first). */
static void adapted_linear_backward(const glora_vit_t *m, const glora_vit_linears_t *lin,
                                    const glora_layer_cfg_t *cfg, int l, float *dinp,
                                    const float *dout, const float *inp, size_t N,
                                    glora_grads_t *g, glora_vit_bwd_t *ws) {
    const float *w0, *b0;
    int out, in;
    glora_vit_layer(m, l, &w0, &b0, &out, &in);
    const glora_layer_cfg_t *c = cfg ? &cfg[l] : NULL;
    glora_adapter_t *gad = g->adapters ? &g->adapters[l] : NULL;
    int through_adapter = c && gad && cfg_uses_any(c) && adapter_trains(gad);
    float *dweight = NULL, *dbias = NULL;
    if (through_adapter) {
        int need_w = c->t[GLORA_A].kind != GLORA_NONE || c->t[GLORA_B].kind != GLORA_NONE;
        if (need_w && (gad->Ad || gad->Bd)) dweight = ws->dw; /* written below, not accumulated */
        dbias = ws->db;
        memset(dbias, 0, (size_t)out * sizeof(float));
    } else {
        /* Not adapted (or adapter frozen): W' is the layer's own weight only
         * when no configuration is merged in; the grads module refuses
         * masks that would need otherwise. */
        const glora_vit_block_t *gb = &g->w.blk[l / GLORA_SITES];
        switch (l % GLORA_SITES) {
        case GLORA_SITE_QKV: dweight = gb->qkv_w; dbias = gb->qkv_b; break;
        case GLORA_SITE_PROJ: dweight = gb->proj_w; dbias = gb->proj_b; break;
        case GLORA_SITE_FC1: dweight = gb->fc1_w; dbias = gb->fc1_b; break;
        default: dweight = gb->fc2_w; dbias = gb->fc2_b; break;
        }
        GLORA_ASSERT(!(dweight || dbias) || !c || !cfg_uses_any(c));
    }
    if (dinp)
        glora_sgemm(GLORA_NOTRANS, GLORA_NOTRANS, N, (size_t)in, (size_t)out, 1.0f, dout, (size_t)out,
                    lin->w[l], (size_t)in, 0.0f, dinp, (size_t)in);
    if (through_adapter && dweight) {
        glora_sgemm(GLORA_TRANS, GLORA_NOTRANS, (size_t)out, (size_t)in, N, 1.0f, dout, (size_t)out, inp,
                    (size_t)in, 0.0f, dweight, (size_t)in);
        glora_linear_backward(NULL, NULL, dbias, dout, inp, lin->w[l], N, in, out);
    } else {
        glora_linear_backward(NULL, dweight, dbias, dout, inp, lin->w[l], N, in, out);
    }
    if (through_adapter)
        glora_adapter_backward(gad, dweight, dbias, w0, b0, &m->adapters[l], c, ws->scratch);
}

/* Does anything at or below block i (or the embeddings) train? */
static int trains_below(const glora_vit_t *m, const glora_grads_t *g, int i) {
    if (g->w.patch_w || g->w.patch_b || g->w.cls || g->w.pos) return 1;
    for (int b = 0; b <= i; b++) {
        const glora_vit_block_t *d = &g->w.blk[b];
        if (d->ln1_w || d->ln1_b || d->qkv_w || d->qkv_b || d->proj_w || d->proj_b ||
            d->ln2_w || d->ln2_b || d->fc1_w || d->fc1_b || d->fc2_w || d->fc2_b)
            return 1;
        for (int s = 0; g->adapters && s < GLORA_SITES; s++)
            if (adapter_trains(&g->adapters[b * GLORA_SITES + s])) return 1;
    }
    return 0;
}

void glora_vit_backward(const glora_vit_t *m, const glora_vit_linears_t *lin,
                        const glora_layer_cfg_t *cfg, const glora_vit_acts_t *a,
                        const float *dlogits, size_t B, glora_grads_t *g,
                        glora_vit_bwd_t *ws) {
    const glora_vit_arch_t *ar = &m->arch;
    const int T = ar->tokens, C = ar->dim, H = ar->mlp_hidden, NH = ar->heads,
              NP = ar->num_patches, V = ar->num_classes, depth = ar->depth;
    const int kk = ar->in_chans * ar->patch * ar->patch;
    const size_t N = B * (size_t)T, NC = N * (size_t)C;
    GLORA_ASSERT(a->keep_all && B >= 1 && B <= a->max_batch && B <= ws->max_batch);

    /* Head on the cls token, then the final norm. */
    int below = trains_below(m, g, depth - 1);
    float *dcls = below ? ws->dcls : NULL;
    if (dcls) memset(dcls, 0, B * (size_t)C * sizeof(float));
    glora_linear_backward(dcls, g->w.head_w, g->w.head_b, dlogits, a->cls, m->w.head_w, B, C, V);
    if (!below && !g->w.norm_w && !g->w.norm_b) return;
    memset(ws->dln, 0, NC * sizeof(float));
    if (dcls) glora_cls_backward(ws->dln, dcls, B, T, C);
    const float *xlast = a->blk[depth - 1].res2;
    memset(ws->dres, 0, NC * sizeof(float));
    glora_layernorm_backward(below ? ws->dres : NULL, g->w.norm_w, g->w.norm_b, ws->dln, xlast,
                             m->w.norm_w, a->lnf_mean, a->lnf_rstd, N, C);
    if (!below) return;

    for (int i = depth - 1; i >= 0; i--) {
        const glora_vit_block_t *w = &m->w.blk[i];
        const glora_vit_block_t *gw = &g->w.blk[i];
        const glora_vit_block_acts_t *b = &a->blk[i];
        const float *xin = i > 0 ? a->blk[i - 1].res2 : a->x0;
        const int l = i * GLORA_SITES;
        /* ws->dres holds dL/d(res2); the residual passes it on unchanged to
         * res1, and each branch adds its own part. */
        adapted_linear_backward(m, lin, cfg, l + GLORA_SITE_FC2, ws->dgelu, ws->dres, b->gelu, N,
                                g, ws);
        memset(ws->dfc1, 0, N * (size_t)H * sizeof(float));
        glora_gelu_backward(ws->dfc1, b->fc1, ws->dgelu, N * (size_t)H);
        adapted_linear_backward(m, lin, cfg, l + GLORA_SITE_FC1, ws->dln, ws->dfc1, b->ln2, N, g, ws);
        glora_layernorm_backward(ws->dres, gw->ln2_w, gw->ln2_b, ws->dln, b->res1, w->ln2_w,
                                 b->ln2_mean, b->ln2_rstd, N, C);
        /* ws->dres is now dL/d(res1). */
        adapted_linear_backward(m, lin, cfg, l + GLORA_SITE_PROJ, ws->dattn, ws->dres, b->attn, N,
                                g, ws);
        memset(ws->dqkv, 0, NC * 3 * sizeof(float));
        glora_attention_backward(ws->dqkv, ws->datt, ws->dattn, b->qkv, b->att, B, T, C, NH);
        int more = i > 0 ? trains_below(m, g, i - 1) : trains_below(m, g, -1);
        /* With nothing below and norm1 frozen, dL/d(norm1 output) is not needed. */
        int need_dln1 = more || gw->ln1_w || gw->ln1_b;
        adapted_linear_backward(m, lin, cfg, l + GLORA_SITE_QKV, need_dln1 ? ws->dln : NULL, ws->dqkv,
                                b->ln1, N, g, ws);
        if (need_dln1)
            glora_layernorm_backward(more ? ws->dres : NULL, gw->ln1_w, gw->ln1_b, ws->dln, xin,
                                     w->ln1_w, b->ln1_mean, b->ln1_rstd, N, C);
        /* ws->dres is now dL/d(block input). */
        if (!more) return;
    }

    /* Tokens (cls + position), then the patch embedding (a conv as a linear
     * over the im2col patches; the image itself needs no gradient). */
    float *dpe = (g->w.patch_w || g->w.patch_b) ? ws->dpe : NULL;
    if (dpe) memset(dpe, 0, B * (size_t)NP * C * sizeof(float));
    glora_tokens_backward(dpe, g->w.cls, g->w.pos, ws->dres, B, NP, C);
    if (dpe)
        glora_linear_backward(NULL, g->w.patch_w, g->w.patch_b, dpe, a->patches, m->w.patch_w,
                              B * (size_t)NP, kk, C);
}
