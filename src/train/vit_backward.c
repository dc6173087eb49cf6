/* Training passes of the whole ViT: a forward pass that keeps a compact
 * tape, and the backward pass that reads it (see glora/train.h).
 *
 * Per adapted layer (glora/layer.h has the formulas):
 *  - configuration none (or no configuration): the frozen linear, whose own
 *    weight gradient is formed only when the backbone trains;
 *  - A a LoRA: the merged W' (from the linears), dX = G W', and the one
 *    out x in product dW' = G^T X that dAd, dAu need (glora_adapter_backward);
 *  - any other configuration: the row form - Y0 = X W0^T on the frozen
 *    weight, thin products for B, column sums for C, D, E, no dW'.
 *
 * The tape keeps per block only its output (N, C), the LayerNorm statistics
 * and one output per adapted layer: qkv (N, 3C), fc1 (N, H), proj and fc2
 * (N, C) each - the layer's Y, or its Y0 when A is a vector or scalar (Y is
 * rebuilt from Y0 exactly). LayerNorm outputs, attention probabilities and
 * output, the first residual sum and the GELU are recomputed per block in
 * backward by the same kernels, so they are the same bits as the forward's:
 * 10 N C floats per block at ViT-B/16 instead of 20.
 *
 * When memory allows (keep_level), the tape keeps more per block and
 * backward recomputes less: level 1 keeps the attention probabilities and
 * output (attention's forward then runs once a step, not twice), level 2
 * every activation of the block (no recomputation at all). A level is
 * taken when one shard's tape and backward workspace with it fit in half
 * of GLORA_TRAIN_LIVE_BYTES (two shards in flight stay within it): at
 * vit-tiny-28 level 2, at ViT-B/16 level 1 for shards up to 8 images and 0
 * above. Kept or recomputed, an activation is the same kernel's output on
 * the same input: the same bits at every level. */
#include "glora/train.h"
#include "glora/common.h"
#include "glora/gemm.h"
#include "glora/nn.h"
#include "util/bigmem.h"

#include <stdlib.h>
#include <string.h>

#define LN_EPS 1e-6f

typedef struct {
    float *out;                    /* (N, C) block output (the next block's input) */
    float *y[GLORA_SITES];         /* per site: Y, or Y0 when the configuration needs it */
    float *ln1_mean, *ln1_rstd, *ln2_mean, *ln2_rstd; /* (N) */
    /* The block's activations: its own buffers for those the keep level
     * keeps, else the tape's shared work buffers below (recomputed). */
    float *ln1, *qkv, *att, *attn, *res1, *ln2, *fc1, *gelu;
    const float *qkv_y, *fc1_y;    /* level 2: where the forward left qkv's and fc1's Y */
} tape_block_t;

struct glora_vit_tape {
    size_t max_batch;
    int keep;            /* keep level: 0, 1 (attention), 2 (every activation) */
    float *mem;
    float *patches;      /* (B, NP, Cin P P) */
    float *x0;           /* (N, C) tokens in */
    tape_block_t *blk;   /* depth */
    float *clsx;         /* (B, C) cls rows of the last block's output */
    float *cls;          /* (B, C) after the final norm */
    float *lnf_mean, *lnf_rstd; /* (B) */
    float *logits;       /* (B, classes) */
    float **bias;        /* per layer: b' of a row-form layer (out floats) */
    /* Work of one block, in forward and when backward recomputes it. */
    float *ln1, *ln2;    /* (N, C) */
    float *qkv;          /* (N, 3C) qkv's Y when the tape holds Y0 */
    float *att;          /* (B, NH, T, T) */
    float *attn;         /* (N, C) */
    float *res1;         /* (N, C) */
    float *fc1;          /* (N, H) fc1's Y when the tape holds Y0 */
    float *gelu;         /* (N, H) */
    float *y;            /* (N, C) proj's / fc2's Y when the tape holds Y0 */
    float *rows;         /* glora_adapter_rows_scratch of the largest layer */
};

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
    float *dw;      /* largest out x in: dL/dW' of a layer whose A is a LoRA */
    float *db;      /* largest out: dL/db' */
    float *scratch; /* largest out x in, for glora_adapter_backward */
    float *dpe;     /* (B, NP, C) */
    float *dcls;    /* (B, C) */
};

static void largest_layer(const glora_vit_t *m, size_t *wsize, size_t *out_max) {
    *wsize = 0;
    *out_max = 0;
    for (int l = 0; l < glora_vit_layers(m); l++) {
        int o, i;
        glora_arch_layer_shape(&m->arch, l, &o, &i);
        if ((size_t)o * i > *wsize) *wsize = (size_t)o * i;
        if ((size_t)o > *out_max) *out_max = (size_t)o;
    }
}

/* Floats a block's kept activations take at keep level lv (0, 1, 2). */
static size_t kept_floats(const glora_vit_t *m, size_t B, int lv) {
    const glora_vit_arch_t *a = &m->arch;
    const size_t T = (size_t)a->tokens, C = (size_t)a->dim, H = (size_t)a->mlp_hidden,
                 NH = (size_t)a->heads, N = B * T;
    if (lv <= 0) return 0;
    const size_t att = B * NH * T * T + N * C; /* probabilities, output */
    if (lv == 1) return att;
    return att + N * C + N * 3 * C + 2 * N * C + 2 * N * H; /* ln1, qkv, res1, ln2, fc1, gelu */
}

/* Floats of a tape for B images at keep level lv. */
static size_t tape_floats(const glora_vit_t *m, size_t B, int lv) {
    const glora_vit_arch_t *a = &m->arch;
    const size_t T = (size_t)a->tokens, C = (size_t)a->dim, H = (size_t)a->mlp_hidden,
                 NH = (size_t)a->heads, N = B * T, NP = (size_t)a->num_patches,
                 kk = (size_t)a->in_chans * a->patch * a->patch, depth = (size_t)a->depth;
    size_t wsize, out_max, bias_total = 0;
    largest_layer(m, &wsize, &out_max);
    for (int l = 0; l < glora_vit_layers(m); l++) {
        int o, i;
        glora_arch_layer_shape(a, l, &o, &i);
        bias_total += (size_t)o;
    }
    const size_t per_block = N * C + N * 3 * C + N * C + N * H + N * C + 4 * N;
    const size_t work = 2 * N * C + N * 3 * C + B * NH * T * T + 2 * N * C + 2 * N * H + N * C +
                        glora_adapter_rows_scratch(N, (int)out_max, m->rank > 0 ? m->rank : 1);
    return B * NP * kk + N * C + depth * (per_block + kept_floats(m, B, lv)) + 3 * B * C + 2 * B +
           B * (size_t)a->num_classes + bias_total + work;
}

/* Floats of a backward workspace for B images. */
static size_t bwd_floats(const glora_vit_t *m, size_t B) {
    const glora_vit_arch_t *a = &m->arch;
    const size_t T = (size_t)a->tokens, C = (size_t)a->dim, H = (size_t)a->mlp_hidden,
                 NH = (size_t)a->heads, N = B * T;
    size_t largest, largest_out;
    largest_layer(m, &largest, &largest_out);
    return 3 * N * C + N * 3 * C + B * NH * T * T + 2 * N * H + 2 * largest + largest_out +
           B * (size_t)a->num_patches * C + B * C;
}

/* The highest keep level whose shard (tape and backward workspace) takes
 * at most half of GLORA_TRAIN_LIVE_BYTES; GLORA_TRAIN_KEEP=0|1|2 in the
 * environment caps it (a diagnostic: tests compare the levels' bits). */
static int keep_level(const glora_vit_t *m, size_t B) {
    int cap = 2;
    const char *e = getenv("GLORA_TRAIN_KEEP");
    if (e && e[0] >= '0' && e[0] <= '2' && !e[1]) cap = e[0] - '0';
    for (int lv = cap; lv > 0; lv--)
        if ((tape_floats(m, B, lv) + bwd_floats(m, B)) * sizeof(float) <= GLORA_TRAIN_LIVE_BYTES / 2)
            return lv;
    return 0;
}

size_t glora_vit_shard_bytes(const glora_vit_t *m, size_t max_batch) {
    return (tape_floats(m, max_batch, keep_level(m, max_batch)) + bwd_floats(m, max_batch)) *
           sizeof(float);
}

int glora_vit_tape_create(glora_vit_tape_t **out, const glora_vit_t *m, size_t max_batch) {
    *out = NULL;
    const glora_vit_arch_t *a = &m->arch;
    if (max_batch == 0 || max_batch > (1u << 24))
        return glora_error(GLORA_EINVAL, "tape 'vit': batch size %zu out of range", max_batch);
    const size_t B = max_batch, T = (size_t)a->tokens, C = (size_t)a->dim,
                 H = (size_t)a->mlp_hidden, NH = (size_t)a->heads, N = B * T,
                 NP = (size_t)a->num_patches, kk = (size_t)a->in_chans * a->patch * a->patch,
                 depth = (size_t)a->depth, L = (size_t)glora_vit_layers(m);
    size_t wsize, out_max;
    largest_layer(m, &wsize, &out_max);
    const int keep = keep_level(m, B);
    const size_t total = tape_floats(m, B, keep);
    glora_vit_tape_t *t = calloc(1, sizeof *t);
    if (!t) return glora_error(GLORA_ENOMEM, "tape 'vit': out of memory");
    t->max_batch = B;
    t->keep = keep;
    t->mem = glora_big_alloc(total, sizeof(float));
    t->blk = calloc(depth, sizeof *t->blk);
    t->bias = calloc(L, sizeof *t->bias);
    if (!t->mem || !t->blk || !t->bias) {
        glora_vit_tape_free(t);
        return glora_error(GLORA_ENOMEM, "tape 'vit': out of memory for batch %zu", B);
    }
    float *p = t->mem;
#define TAKE(n) (p += (n), p - (n))
    t->patches = TAKE(B * NP * kk);
    t->x0 = TAKE(N * C);
    for (size_t i = 0; i < depth; i++) {
        tape_block_t *b = &t->blk[i];
        b->out = TAKE(N * C);
        b->y[GLORA_SITE_QKV] = TAKE(N * 3 * C);
        b->y[GLORA_SITE_PROJ] = TAKE(N * C);
        b->y[GLORA_SITE_FC1] = TAKE(N * H);
        b->y[GLORA_SITE_FC2] = TAKE(N * C);
        b->ln1_mean = TAKE(N); b->ln1_rstd = TAKE(N);
        b->ln2_mean = TAKE(N); b->ln2_rstd = TAKE(N);
    }
    t->clsx = TAKE(B * C);
    t->cls = TAKE(B * C);
    t->lnf_mean = TAKE(B);
    t->lnf_rstd = TAKE(B);
    t->logits = TAKE(B * (size_t)a->num_classes);
    for (size_t l = 0; l < L; l++) {
        int o, i;
        glora_arch_layer_shape(a, (int)l, &o, &i);
        t->bias[l] = TAKE((size_t)o);
    }
    t->ln1 = TAKE(N * C);
    t->ln2 = TAKE(N * C);
    t->qkv = TAKE(N * 3 * C);
    t->att = TAKE(B * NH * T * T);
    t->attn = TAKE(N * C);
    t->res1 = TAKE(N * C);
    t->fc1 = TAKE(N * H);
    t->gelu = TAKE(N * H);
    t->y = TAKE(N * C);
    t->rows = TAKE(glora_adapter_rows_scratch(N, (int)out_max, m->rank > 0 ? m->rank : 1));
    for (size_t i = 0; i < depth; i++) {
        tape_block_t *b = &t->blk[i];
        b->att = keep >= 1 ? TAKE(B * NH * T * T) : t->att;
        b->attn = keep >= 1 ? TAKE(N * C) : t->attn;
        b->ln1 = keep >= 2 ? TAKE(N * C) : t->ln1;
        b->qkv = keep >= 2 ? TAKE(N * 3 * C) : t->qkv;
        b->res1 = keep >= 2 ? TAKE(N * C) : t->res1;
        b->ln2 = keep >= 2 ? TAKE(N * C) : t->ln2;
        b->fc1 = keep >= 2 ? TAKE(N * H) : t->fc1;
        b->gelu = keep >= 2 ? TAKE(N * H) : t->gelu;
    }
#undef TAKE
    GLORA_ASSERT((size_t)(p - t->mem) <= total);
    *out = t;
    return GLORA_OK;
}

void glora_vit_tape_free(glora_vit_tape_t *t) {
    if (!t) return;
    free(t->mem);
    free(t->blk);
    free(t->bias);
    free(t);
}

const float *glora_vit_tape_logits(const glora_vit_tape_t *t) { return t->logits; }

int glora_vit_bwd_create(glora_vit_bwd_t **out, const glora_vit_t *m, size_t max_batch) {
    *out = NULL;
    const glora_vit_arch_t *a = &m->arch;
    if (max_batch == 0 || max_batch > (1u << 24))
        return glora_error(GLORA_EINVAL, "backward 'vit': batch size %zu out of range", max_batch);
    const size_t B = max_batch, T = (size_t)a->tokens, C = (size_t)a->dim,
                 H = (size_t)a->mlp_hidden, NH = (size_t)a->heads, N = B * T;
    size_t largest, largest_out;
    largest_layer(m, &largest, &largest_out);
    const size_t total = bwd_floats(m, B);
    glora_vit_bwd_t *ws = calloc(1, sizeof *ws);
    if (!ws) return glora_error(GLORA_ENOMEM, "backward 'vit': out of memory");
    ws->max_batch = B;
    ws->mem = glora_big_alloc(total, sizeof(float));
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

/* Layer l's configuration when it changes the layer, else NULL. */
static const glora_layer_cfg_t *layer_cfg(const glora_layer_cfg_t *cfg, int l) {
    return cfg && cfg_uses_any(&cfg[l]) ? &cfg[l] : NULL;
}

void glora_vit_train_linears_set(glora_vit_linears_t *lin, const glora_vit_t *m,
                                 const glora_layer_cfg_t *cfg) {
    if (!cfg) {
        glora_vit_linears_set(lin, m, NULL);
        return;
    }
    /* Only layers whose A is a LoRA run merged; the rest read W0. The
     * merged ones go one after another from the start of lin's buffer, so
     * a step touches the pages its LoRA layers need, not (over a run, as
     * each layer's turn comes) the whole buffer: 340 MB at ViT-B/16. The
     * same merge: the same bits wherever it lands. */
    GLORA_ASSERT(!lin->packed);
    size_t off = 0;
    for (int l = 0; l < glora_vit_layers(m); l++) {
        const float *w0, *b0;
        int o, i;
        glora_vit_layer(m, l, &w0, &b0, &o, &i);
        if (glora_adapter_rowform(&cfg[l])) {
            lin->w[l] = w0;
            lin->b[l] = b0;
            continue;
        }
        GLORA_ASSERT(m->rank > 0 && glora_layer_max_rank(&cfg[l]) <= m->rank);
        float *w = lin->mem + off, *b = w + (size_t)o * i;
        glora_adapter_merge(w, b, w0, b0, &m->adapters[l], &cfg[l], lin->scratch);
        lin->w[l] = w;
        lin->b[l] = b;
        off += (size_t)o * i + (size_t)o;
    }
}

/* Forward of adapted layer l on N rows of x into the tape slot; returns
 * where Y is: the slot, or ybuf when the slot keeps Y0. */
static const float *layer_forward(const glora_vit_t *m, const glora_vit_linears_t *lin,
                                  const glora_layer_cfg_t *cfg, glora_vit_tape_t *t, int l,
                                  const float *x, size_t N, float *slot, float *ybuf) {
    const glora_layer_cfg_t *c = layer_cfg(cfg, l);
    const float *w0, *b0;
    int out, in;
    glora_vit_layer(m, l, &w0, &b0, &out, &in);
    if (!c || !glora_adapter_rowform(c)) {
        glora_gemm_bias(lin->precision, GLORA_NOTRANS, GLORA_TRANS, N, (size_t)out, (size_t)in, 1.0f,
                        x, (size_t)in, lin->w[l], (size_t)in, 0.0f, lin->b[l], slot, (size_t)out);
        return slot;
    }
    if (glora_adapter_needs_y0(c)) {
        glora_adapter_forward_rows(ybuf, slot, x, N, w0, t->bias[l], &m->adapters[l], c, t->rows,
                                   lin->precision);
        return ybuf;
    }
    glora_adapter_forward_rows(slot, NULL, x, N, w0, t->bias[l], &m->adapters[l], c, t->rows,
                               lin->precision);
    return slot;
}

/* Y of layer l again, for backward: the slot, or rebuilt from its Y0. */
static const float *layer_y(const glora_vit_t *m, const glora_layer_cfg_t *cfg, glora_vit_tape_t *t,
                            int l, const float *x, size_t N, const float *slot, float *ybuf) {
    const glora_layer_cfg_t *c = layer_cfg(cfg, l);
    if (!c || !glora_adapter_needs_y0(c)) return slot;
    glora_adapter_finish_rows(ybuf, slot, x, N, t->bias[l], &m->adapters[l], c, t->rows);
    return ybuf;
}

/* The block's activations backward needs, recomputed from the tape (the
 * same kernels on the same inputs: the same bits as the forward's) into
 * the block's buffers (tape_block_t: shared work, or its own for what the
 * keep level keeps, which is not recomputed); *qkv_y and *fc1_y say where
 * qkv's and fc1's Y are. With fwd, this IS the forward (and the tape is
 * written). */
static void block_pass(const glora_vit_t *m, const glora_vit_linears_t *lin,
                       const glora_layer_cfg_t *cfg, glora_vit_tape_t *t, int i, const float *xin,
                       size_t B, int fwd, const float **qkv_y, const float **fc1_y,
                       float *gelu_deriv) {
    const glora_vit_arch_t *a = &m->arch;
    const int T = a->tokens, C = a->dim, H = a->mlp_hidden, NH = a->heads;
    const size_t N = B * (size_t)T;
    const glora_vit_block_t *w = &m->w.blk[i];
    tape_block_t *b = &t->blk[i];
    const int l = i * GLORA_SITES;
    if (!fwd && t->keep >= 2) {
        *qkv_y = b->qkv_y;
        *fc1_y = b->fc1_y;
        return;
    }
    glora_layernorm_forward(b->ln1, fwd ? b->ln1_mean : NULL, fwd ? b->ln1_rstd : NULL, xin, w->ln1_w,
                            w->ln1_b, N, C, LN_EPS);
    const float *qkv = fwd ? layer_forward(m, lin, cfg, t, l + GLORA_SITE_QKV, b->ln1, N,
                                           b->y[GLORA_SITE_QKV], b->qkv)
                           : layer_y(m, cfg, t, l + GLORA_SITE_QKV, b->ln1, N, b->y[GLORA_SITE_QKV],
                                     b->qkv);
    if (fwd || t->keep < 1) glora_attention_forward(b->attn, b->att, qkv, B, T, C, NH);
    const float *yp = fwd ? layer_forward(m, lin, cfg, t, l + GLORA_SITE_PROJ, b->attn, N,
                                          b->y[GLORA_SITE_PROJ], t->y)
                          : layer_y(m, cfg, t, l + GLORA_SITE_PROJ, b->attn, N, b->y[GLORA_SITE_PROJ],
                                    t->y);
    glora_add(b->res1, yp, xin, N * (size_t)C);
    glora_layernorm_forward(b->ln2, fwd ? b->ln2_mean : NULL, fwd ? b->ln2_rstd : NULL, b->res1,
                            w->ln2_w, w->ln2_b, N, C, LN_EPS);
    const float *f1 = fwd ? layer_forward(m, lin, cfg, t, l + GLORA_SITE_FC1, b->ln2, N,
                                          b->y[GLORA_SITE_FC1], b->fc1)
                          : layer_y(m, cfg, t, l + GLORA_SITE_FC1, b->ln2, N, b->y[GLORA_SITE_FC1],
                                    b->fc1);
    if (gelu_deriv)
        glora_gelu_forward_deriv(b->gelu, gelu_deriv, f1, N * (size_t)H);
    else
        glora_gelu_forward(b->gelu, f1, N * (size_t)H);
    *qkv_y = qkv;
    *fc1_y = f1;
    if (!fwd) return;
    b->qkv_y = qkv;
    b->fc1_y = f1;
    const float *y2 = layer_forward(m, lin, cfg, t, l + GLORA_SITE_FC2, b->gelu, N,
                                    b->y[GLORA_SITE_FC2], t->y);
    glora_add(b->out, b->res1, y2, N * (size_t)C);
}

void glora_vit_train_forward(const glora_vit_t *m, const glora_vit_linears_t *lin,
                             const glora_layer_cfg_t *cfg, glora_vit_tape_t *t, const float *x,
                             size_t B) {
    const glora_vit_arch_t *a = &m->arch;
    const int C = a->dim, T = a->tokens, NP = a->num_patches, kk = a->in_chans * a->patch * a->patch;
    GLORA_ASSERT(B >= 1 && B <= t->max_batch);
    for (int l = 0; cfg && l < glora_vit_layers(m); l++) {
        const glora_layer_cfg_t *c = layer_cfg(cfg, l);
        if (!c || !glora_adapter_rowform(c)) continue;
        const float *w0, *b0;
        int o, i;
        glora_vit_layer(m, l, &w0, &b0, &o, &i);
        glora_adapter_bias(t->bias[l], w0, b0, &m->adapters[l], c);
    }
    glora_im2col(t->patches, x, B, a->in_chans, a->img_size, a->img_size, a->patch);
    /* The patch projections go to ln1 (free until block 0 runs). */
    glora_gemm_bias(lin->precision, GLORA_NOTRANS, GLORA_TRANS, B * NP, (size_t)C, (size_t)kk, 1.0f,
                    t->patches, (size_t)kk, m->w.patch_w, (size_t)kk, 0.0f, m->w.patch_b, t->ln1,
                    (size_t)C);
    glora_tokens_forward(t->x0, t->ln1, m->w.cls, m->w.pos, B, NP, C);
    const float *xin = t->x0, *qkv_y, *fc1_y;
    for (int i = 0; i < a->depth; i++) {
        block_pass(m, lin, cfg, t, i, xin, B, 1, &qkv_y, &fc1_y, NULL);
        xin = t->blk[i].out;
    }
    /* The head reads the cls token only; LayerNorm is per row, so its cls
     * rows alone are the same bits. */
    glora_cls_forward(t->clsx, xin, B, T, C);
    glora_layernorm_forward(t->cls, t->lnf_mean, t->lnf_rstd, t->clsx, m->w.norm_w, m->w.norm_b, B, C,
                            LN_EPS);
    glora_linear_forward(t->logits, t->cls, m->w.head_w, m->w.head_b, B, C, a->num_classes);
}

static int adapter_trains(const glora_adapter_t *d) {
    return d->Ad || d->Bd || d->Cd || d->D || d->E;
}

/* Backward of adapted layer l: dout = dL/dY (N, out), inp = X (N, in),
 * y0 = the tape's slot (Y0 when the configuration needs it). dinp (may be
 * NULL) is OVERWRITTEN with dL/dX. */
static void adapted_linear_backward(const glora_vit_t *m, const glora_vit_linears_t *lin,
                                    const glora_layer_cfg_t *cfg, int l, float *dinp,
                                    const float *dout, const float *inp, const float *y0, size_t N,
                                    glora_grads_t *g, glora_vit_bwd_t *ws, glora_vit_tape_t *t) {
    const float *w0, *b0;
    int out, in;
    glora_vit_layer(m, l, &w0, &b0, &out, &in);
    const glora_layer_cfg_t *c = layer_cfg(cfg, l);
    glora_adapter_t *gad = g->adapters && adapter_trains(&g->adapters[l]) ? &g->adapters[l] : NULL;
    if (c && glora_adapter_rowform(c)) {
        glora_adapter_backward_rows(gad, dinp, dout, inp, glora_adapter_needs_y0(c) ? y0 : NULL, N,
                                    w0, b0, &m->adapters[l], c, t->rows, lin->precision);
        return;
    }
    if (dinp)
        glora_gemm_bias(lin->precision, GLORA_NOTRANS, GLORA_NOTRANS, N, (size_t)in, (size_t)out, 1.0f,
                        dout, (size_t)out, lin->w[l], (size_t)in, 0.0f, NULL, dinp, (size_t)in);
    if (c) {
        /* A is a LoRA: dW' = G^T X in full (at the run's precision),
         * dL/db' = column sums of G. */
        if (!gad) return;
        glora_adapter_backward_merged(gad, ws->dw, ws->db, dout, inp, N, w0, b0, &m->adapters[l], c,
                                      ws->scratch, lin->precision);
        return;
    }
    /* No configuration: the frozen layer itself, trained only in full
     * fine-tuning (the grads module refuses a trainable weight together
     * with its adapter). */
    const glora_vit_block_t *gb = &g->w.blk[l / GLORA_SITES];
    float *dweight, *dbias;
    switch (l % GLORA_SITES) {
    case GLORA_SITE_QKV: dweight = gb->qkv_w; dbias = gb->qkv_b; break;
    case GLORA_SITE_PROJ: dweight = gb->proj_w; dbias = gb->proj_b; break;
    case GLORA_SITE_FC1: dweight = gb->fc1_w; dbias = gb->fc1_b; break;
    default: dweight = gb->fc2_w; dbias = gb->fc2_b; break;
    }
    glora_linear_backward(NULL, dweight, dbias, dout, inp, lin->w[l], N, in, out);
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
                        const glora_layer_cfg_t *cfg, glora_vit_tape_t *t,
                        const float *dlogits, size_t B, glora_grads_t *g,
                        glora_vit_bwd_t *ws) {
    const glora_vit_arch_t *ar = &m->arch;
    const int T = ar->tokens, C = ar->dim, H = ar->mlp_hidden, NH = ar->heads,
              NP = ar->num_patches, V = ar->num_classes, depth = ar->depth;
    const int kk = ar->in_chans * ar->patch * ar->patch;
    const size_t N = B * (size_t)T, NC = N * (size_t)C;
    GLORA_ASSERT(B >= 1 && B <= t->max_batch && B <= ws->max_batch);

    /* Head on the cls token, then the final norm (cls rows only: the other
     * rows' gradient is exactly zero). */
    int below = trains_below(m, g, depth - 1);
    if (!below && !g->w.norm_w && !g->w.norm_b) {
        glora_linear_backward(NULL, g->w.head_w, g->w.head_b, dlogits, t->cls, m->w.head_w, B, C, V);
        return;
    }
    float *dcls = ws->dcls;
    memset(dcls, 0, B * (size_t)C * sizeof(float));
    glora_linear_backward(dcls, g->w.head_w, g->w.head_b, dlogits, t->cls, m->w.head_w, B, C, V);
    float *dclsx = ws->dln; /* (B, C) */
    memset(dclsx, 0, B * (size_t)C * sizeof(float));
    glora_layernorm_backward(below ? dclsx : NULL, g->w.norm_w, g->w.norm_b, dcls, t->clsx,
                             m->w.norm_w, t->lnf_mean, t->lnf_rstd, B, C);
    if (!below) return;
    memset(ws->dres, 0, NC * sizeof(float));
    glora_cls_backward(ws->dres, dclsx, B, T, C);

    for (int i = depth - 1; i >= 0; i--) {
        const glora_vit_block_t *w = &m->w.blk[i];
        const glora_vit_block_t *gw = &g->w.blk[i];
        const tape_block_t *b = &t->blk[i];
        const float *xin = i > 0 ? t->blk[i - 1].out : t->x0;
        const int l = i * GLORA_SITES;
        const float *qkv, *fc1;
        /* Where the block is recomputed (keep level below 2), GELU's
         * derivative comes with it, into dfc1 (free until GELU's backward). */
        const int deriv = t->keep < 2;
        block_pass(m, lin, cfg, t, i, xin, B, 0, &qkv, &fc1, deriv ? ws->dfc1 : NULL);
        /* ws->dres holds dL/d(block output); the residual passes it on
         * unchanged to res1, and each branch adds its own part. */
        adapted_linear_backward(m, lin, cfg, l + GLORA_SITE_FC2, ws->dgelu, ws->dres, b->gelu,
                                b->y[GLORA_SITE_FC2], N, g, ws, t);
        if (deriv) {
            glora_gelu_backward_deriv(ws->dfc1, ws->dgelu, N * (size_t)H);
        } else {
            memset(ws->dfc1, 0, N * (size_t)H * sizeof(float));
            glora_gelu_backward(ws->dfc1, fc1, ws->dgelu, N * (size_t)H);
        }
        adapted_linear_backward(m, lin, cfg, l + GLORA_SITE_FC1, ws->dln, ws->dfc1, b->ln2,
                                b->y[GLORA_SITE_FC1], N, g, ws, t);
        glora_layernorm_backward(ws->dres, gw->ln2_w, gw->ln2_b, ws->dln, b->res1, w->ln2_w,
                                 b->ln2_mean, b->ln2_rstd, N, C);
        /* ws->dres is now dL/d(res1). */
        adapted_linear_backward(m, lin, cfg, l + GLORA_SITE_PROJ, ws->dattn, ws->dres, b->attn,
                                b->y[GLORA_SITE_PROJ], N, g, ws, t);
        memset(ws->dqkv, 0, NC * 3 * sizeof(float));
        /* bf16 training: the same gradient with fused multiply-adds. */
        (lin->precision == GLORA_BF16 ? glora_attention_backward_fma : glora_attention_backward)(
            ws->dqkv, ws->datt, ws->dattn, qkv, b->att, B, T, C, NH);
        int more = i > 0 ? trains_below(m, g, i - 1) : trains_below(m, g, -1);
        /* With nothing below and norm1 frozen, dL/d(norm1 output) is not needed. */
        int need_dln1 = more || gw->ln1_w || gw->ln1_b;
        adapted_linear_backward(m, lin, cfg, l + GLORA_SITE_QKV, need_dln1 ? ws->dln : NULL, ws->dqkv,
                                b->ln1, b->y[GLORA_SITE_QKV], N, g, ws, t);
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
        glora_linear_backward(NULL, g->w.patch_w, g->w.patch_b, dpe, t->patches, m->w.patch_w,
                              B * (size_t)NP, kk, C);
}
