/* Initial values of trained tensors, and the masks and zeroing that make a
 * subnet train exactly its own parameters (see glora/train.h). */
#include "glora/train.h"
#include "util/rng.h"
#include "glora/common.h"

#include <math.h>
#include <string.h>

static void xavier_uniform(float *w, int rows, int cols, glora_rng_t *rng) {
    /* torch.nn.init.xavier_uniform_ on a (rows, cols) tensor:
     * fan_in = cols, fan_out = rows, bound = sqrt(6 / (fan_in + fan_out)). */
    float bound = sqrtf(6.0f / (float)(rows + cols));
    for (size_t k = 0; k < (size_t)rows * cols; k++) w[k] = glora_rng_uniform_f(rng, -bound, bound);
}

void glora_train_init_adapters(glora_vit_t *m, glora_rng_t *rng) {
    for (int l = 0; m->adapters && l < glora_vit_layers(m); l++) {
        glora_adapter_t *ad = &m->adapters[l];
        const size_t o = (size_t)ad->out, i = (size_t)ad->in, R = (size_t)ad->rank;
        memset(ad->Ad, 0, o * R * sizeof(float));
        memset(ad->Bd, 0, o * R * sizeof(float));
        memset(ad->Cd, 0, i * R * sizeof(float));
        memset(ad->D, 0, o * sizeof(float));
        memset(ad->E, 0, o * sizeof(float));
        xavier_uniform(ad->Au, ad->rank, ad->in, rng);
        xavier_uniform(ad->Bu, ad->rank, ad->in, rng);
        xavier_uniform(ad->Cu, ad->rank, 1, rng);
    }
}

static float trunc_normal(glora_rng_t *rng, double std) {
    for (;;) {
        double z = glora_rng_normal(rng) * std;
        if (z >= -2.0 && z <= 2.0) return (float)z;
    }
}

void glora_train_init_vit(glora_vit_t *m, glora_rng_t *rng) {
    const glora_vit_arch_t *a = &m->arch;
    for (int i = 0; i < m->n_params; i++) {
        const glora_param_t *p = &m->params[i];
        if (p->role == GLORA_ROLE_ADAPTER) continue;
        float *x = m->mem + p->offset;
        const char *dot = strrchr(p->name, '.');
        const char *last = dot ? dot + 1 : p->name;
        if (strstr(p->name, "norm")) {
            float v = strcmp(last, "weight") == 0 ? 1.0f : 0.0f;
            for (size_t k = 0; k < p->numel; k++) x[k] = v;
        } else if (strncmp(p->name, "patch_embed.", 12) == 0) {
            /* nn.Conv2d's default: kaiming_uniform(a=sqrt 5) = U(+-1/sqrt(fan_in)),
             * the bias the same bound. */
            float bound = 1.0f / sqrtf((float)(a->in_chans * a->patch * a->patch));
            for (size_t k = 0; k < p->numel; k++) x[k] = glora_rng_uniform_f(rng, -bound, bound);
        } else if (strcmp(p->name, "cls_token") == 0) {
            for (size_t k = 0; k < p->numel; k++) x[k] = (float)(glora_rng_normal(rng) * 1e-6);
        } else if (strcmp(p->name, "pos_embed") == 0 || strcmp(last, "weight") == 0) {
            for (size_t k = 0; k < p->numel; k++) x[k] = trunc_normal(rng, 0.02);
        } else {
            memset(x, 0, p->numel * sizeof(float));
        }
    }
}

/* Keeps rows [0, rows) and columns [0, keep) of a (rows x R) matrix. */
static void keep_cols(float *x, size_t rows, int R, int keep) {
    for (size_t r = 0; r < rows; r++)
        for (int c = keep; c < R; c++) x[r * (size_t)R + (size_t)c] = 0.0f;
}

static void keep_prefix(float *x, size_t n, size_t keep) {
    if (keep < n) memset(x + keep, 0, (n - keep) * sizeof(float));
}

void glora_train_zero_unused(glora_vit_t *m, const glora_layer_cfg_t *cfg) {
    for (int l = 0; m->adapters && l < glora_vit_layers(m); l++) {
        glora_adapter_t *ad = &m->adapters[l];
        const glora_layer_cfg_t *c = &cfg[l];
        const size_t o = (size_t)ad->out, in = (size_t)ad->in;
        const int R = ad->rank;
        float *down[3] = {ad->Ad, ad->Bd, ad->Cd}, *up[3] = {ad->Au, ad->Bu, ad->Cu};
        size_t rows[3] = {o, o, in}, upcols[3] = {in, in, 1};
        for (int t = GLORA_A; t <= GLORA_C; t++) {
            glora_choice_t ch = c->t[t];
            int r = ch.kind == GLORA_LORA ? ch.rank : 0;
            if (ch.kind == GLORA_SCALAR) {
                keep_prefix(down[t], rows[t] * (size_t)R, 1);
            } else {
                int keep = ch.kind == GLORA_LORA ? r : ch.kind == GLORA_VECTOR ? 1 : 0;
                keep_cols(down[t], rows[t], R, keep);
            }
            keep_prefix(up[t], (size_t)R * upcols[t], (size_t)r * upcols[t]);
        }
        float *vec[2] = {ad->D, ad->E};
        for (int t = GLORA_D; t <= GLORA_E; t++) {
            glora_kind_t k = c->t[t].kind;
            keep_prefix(vec[t - GLORA_D], o, k == GLORA_VECTOR ? o : k == GLORA_SCALAR ? 1 : 0);
        }
    }
}

void glora_train_mask_subnet(const glora_vit_t *m, const glora_layer_cfg_t *cfg,
                             unsigned char *mask) {
    for (int l = 0; m->adapters && l < glora_vit_layers(m); l++) {
        const glora_adapter_t *ad = &m->adapters[l];
        const glora_layer_cfg_t *c = &cfg[l];
        const float *ptr[8] = {ad->Ad, ad->Au, ad->Bd, ad->Bu, ad->Cd, ad->Cu, ad->D, ad->E};
        int use[8];
        use[0] = c->t[GLORA_A].kind != GLORA_NONE;
        use[1] = c->t[GLORA_A].kind == GLORA_LORA;
        use[2] = c->t[GLORA_B].kind != GLORA_NONE;
        use[3] = c->t[GLORA_B].kind == GLORA_LORA;
        use[4] = c->t[GLORA_C].kind != GLORA_NONE;
        use[5] = c->t[GLORA_C].kind == GLORA_LORA;
        use[6] = c->t[GLORA_D].kind != GLORA_NONE;
        use[7] = c->t[GLORA_E].kind != GLORA_NONE;
        /* A factor pair trains as a whole (the gradient module reads the pair
         * through its down factor); its up factor of a vector choice gets no
         * gradient and, starting from zero, stays zero. */
        for (int k = 0; k < 6; k += 2) use[k + 1] = use[k];
        for (int k = 0; k < 8; k++) {
            if (!use[k]) continue;
            size_t off = (size_t)(ptr[k] - m->mem);
            for (int i = 0; i < m->n_params; i++)
                if (m->params[i].offset == off) mask[i] = 1;
        }
    }
}
