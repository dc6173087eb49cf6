/* Which tensors train, and their gradient buffers (see glora/train.h). */
#include "glora/train.h"
#include "glora/common.h"
#include "util/bigmem.h"

#include <fnmatch.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static int role_word(const char *w) {
    if (strcmp(w, "backbone") == 0) return GLORA_ROLE_BACKBONE;
    if (strcmp(w, "head") == 0) return GLORA_ROLE_HEAD;
    if (strcmp(w, "adapter") == 0 || strcmp(w, "glora") == 0) return GLORA_ROLE_ADAPTER;
    if (strcmp(w, "all") == 0) return GLORA_ROLE_ALL;
    return 0;
}

int glora_train_select(const glora_vit_t *m, const char *patterns, unsigned char *mask) {
    memset(mask, 0, (size_t)m->n_params);
    const char *p = patterns ? patterns : "";
    while (*p) {
        while (*p == ',' || *p == ' ') p++;
        if (!*p) break;
        size_t len = strcspn(p, ", ");
        char pat[128];
        if (len >= sizeof pat)
            return glora_error(GLORA_EINVAL, "trainable pattern '%.*s': too long", (int)len, p);
        memcpy(pat, p, len);
        pat[len] = '\0';
        p += len;
        int role = role_word(pat), hits = 0;
        for (int i = 0; i < m->n_params; i++) {
            int hit = role ? (m->params[i].role & role) != 0
                           : fnmatch(pat, m->params[i].name, 0) == 0;
            if (hit) {
                mask[i] = 1;
                hits++;
            }
        }
        if (hits == 0) {
            int rc = glora_error(GLORA_EINVAL, "trainable pattern '%s': matches no tensor of the model", pat);
            glora_error_hint("patterns are role words (backbone, head, adapter) or globs over "
                             "tensor names such as 'blocks.*.mlp.*' or 'head.*'");
            return rc;
        }
    }
    return GLORA_OK;
}

/* Index of the parameter whose data starts at p (-1 if none). */
static int param_at(const glora_vit_t *m, const float *p) {
    if (!p) return -1;
    size_t off = (size_t)(p - m->mem);
    for (int i = 0; i < m->n_params; i++)
        if (m->params[i].offset == off) return i;
    return -1;
}

static float *view(const glora_vit_t *m, const glora_grads_t *g, const float *p) {
    int i = param_at(m, p);
    GLORA_ASSERT(i >= 0);
    return g->g[i];
}

int glora_grads_create(glora_grads_t **out, const glora_vit_t *m, const unsigned char *trainable) {
    *out = NULL;
    glora_grads_t *g = calloc(1, sizeof *g);
    if (!g) return glora_error(GLORA_ENOMEM, "gradients 'model': out of memory");
    g->n_params = m->n_params;
    g->g = calloc((size_t)m->n_params, sizeof *g->g);
    g->off = calloc((size_t)m->n_params, sizeof *g->off);
    g->w.blk = calloc((size_t)m->arch.depth, sizeof *g->w.blk);
    if (m->adapters) g->adapters = calloc((size_t)glora_vit_layers(m), sizeof *g->adapters);
    if (!g->g || !g->off || !g->w.blk || (m->adapters && !g->adapters)) {
        glora_grads_free(g);
        return glora_error(GLORA_ENOMEM, "gradients 'model': out of memory");
    }
    size_t total = 0;
    for (int i = 0; i < m->n_params; i++) {
        if (!trainable[i]) continue;
        g->off[i] = total;
        total += m->params[i].numel;
    }
    g->n_floats = total;
    g->mem = glora_big_zalloc(total ? total : 1, sizeof(float));
    if (!g->mem) {
        glora_grads_free(g);
        return glora_error(GLORA_ENOMEM, "gradients 'model': out of memory for %zu floats", total);
    }
    for (int i = 0; i < m->n_params; i++)
        if (trainable[i]) g->g[i] = g->mem + g->off[i];

    g->w.patch_w = view(m, g, m->w.patch_w);
    g->w.patch_b = view(m, g, m->w.patch_b);
    g->w.cls = view(m, g, m->w.cls);
    g->w.pos = view(m, g, m->w.pos);
    g->w.norm_w = view(m, g, m->w.norm_w);
    g->w.norm_b = view(m, g, m->w.norm_b);
    g->w.head_w = view(m, g, m->w.head_w);
    g->w.head_b = view(m, g, m->w.head_b);
    for (int b = 0; b < m->arch.depth; b++) {
        const glora_vit_block_t *s = &m->w.blk[b];
        glora_vit_block_t *d = &g->w.blk[b];
        d->ln1_w = view(m, g, s->ln1_w); d->ln1_b = view(m, g, s->ln1_b);
        d->qkv_w = view(m, g, s->qkv_w); d->qkv_b = view(m, g, s->qkv_b);
        d->proj_w = view(m, g, s->proj_w); d->proj_b = view(m, g, s->proj_b);
        d->ln2_w = view(m, g, s->ln2_w); d->ln2_b = view(m, g, s->ln2_b);
        d->fc1_w = view(m, g, s->fc1_w); d->fc1_b = view(m, g, s->fc1_b);
        d->fc2_w = view(m, g, s->fc2_w); d->fc2_b = view(m, g, s->fc2_b);
    }
    for (int l = 0; m->adapters && l < glora_vit_layers(m); l++) {
        const glora_adapter_t *s = &m->adapters[l];
        glora_adapter_t *d = &g->adapters[l];
        d->out = s->out; d->in = s->in; d->rank = s->rank;
        d->Ad = view(m, g, s->Ad); d->Au = view(m, g, s->Au);
        d->Bd = view(m, g, s->Bd); d->Bu = view(m, g, s->Bu);
        d->Cd = view(m, g, s->Cd); d->Cu = view(m, g, s->Cu);
        d->D = view(m, g, s->D); d->E = view(m, g, s->E);
        /* glora_adapter_backward reads a factor pair through its down
         * factor: a pair trains as a whole or not at all. */
        if (!d->Ad != !d->Au || !d->Bd != !d->Bu || !d->Cd != !d->Cu) {
            char name[48];
            glora_vit_layer_name(l, name);
            glora_grads_free(g);
            return glora_error(GLORA_EINVAL,
                               "trainable tensors '%s': a LoRA factor pair (Ad/Au, Bd/Bu, Cd/Cu) "
                               "must train together", name);
        }
        const float *w0, *b0;
        int o, in;
        glora_vit_layer(m, l, &w0, &b0, &o, &in);
        int any = d->Ad || d->Bd || d->Cd || d->D || d->E;
        if (any && (view(m, g, w0) || view(m, g, b0))) {
            char name[48];
            glora_vit_layer_name(l, name);
            glora_grads_free(g);
            return glora_error(GLORA_EINVAL,
                               "trainable tensors '%s': its frozen weight and its GLoRA tensors "
                               "cannot train together", name);
        }
    }
    *out = g;
    return GLORA_OK;
}

void glora_grads_free(glora_grads_t *g) {
    if (!g) return;
    free(g->mem);
    free(g->g);
    free(g->off);
    free(g->w.blk);
    free(g->adapters);
    free(g);
}

void glora_grads_zero(glora_grads_t *g) { memset(g->mem, 0, g->n_floats * sizeof(float)); }

double glora_grads_sumsq(const glora_grads_t *g) {
    /* One serial pass over one buffer: the same order for any thread count. */
    double s = 0.0;
    for (size_t k = 0; k < g->n_floats; k++) s += (double)g->mem[k] * g->mem[k];
    return s;
}

double glora_grads_clip(glora_grads_t *g, double max_norm) {
    double norm = sqrt(glora_grads_sumsq(g));
    if (max_norm > 0.0 && norm > max_norm) {
        /* torch.nn.utils.clip_grad_norm_ scales by max / (norm + 1e-6). */
        float scale = (float)(max_norm / (norm + 1e-6));
        for (size_t k = 0; k < g->n_floats; k++) g->mem[k] *= scale;
    }
    return norm;
}
