/* AdamW with decoupled weight decay and bias correction, as
 * torch.optim.AdamW (see glora/train.h for the update). */
#include "glora/train.h"
#include "glora/common.h"
#include "util/bigmem.h"

#include <math.h>
#include <stdlib.h>

int glora_adamw_create(glora_adamw_t **out, const glora_grads_t *g) {
    *out = NULL;
    glora_adamw_t *opt = calloc(1, sizeof *opt);
    size_t n2;
    if (!opt || glora_size_mul(g->n_floats ? g->n_floats : 1, 2, &n2)) {
        free(opt);
        return glora_error(GLORA_ENOMEM, "optimizer 'adamw': out of memory");
    }
    opt->n_floats = g->n_floats;
    opt->m = glora_big_zalloc(n2, sizeof(float));
    if (!opt->m) {
        free(opt);
        return glora_error(GLORA_ENOMEM, "optimizer 'adamw': out of memory for %zu floats", n2);
    }
    opt->v = opt->m + g->n_floats;
    *out = opt;
    return GLORA_OK;
}

void glora_adamw_free(glora_adamw_t *opt) {
    if (!opt) return;
    free(opt->m);
    free(opt);
}

void glora_adamw_step(glora_adamw_t *opt, glora_vit_t *m, const glora_grads_t *g,
                      const glora_adamw_cfg_t *cfg, double lr) {
    GLORA_ASSERT(opt->n_floats == g->n_floats);
    opt->t++;
    const float b1 = (float)cfg->beta1, b2 = (float)cfg->beta2, eps = (float)cfg->eps;
    const float decay = (float)(1.0 - lr * cfg->weight_decay);
    /* Bias corrections in double, folded into a step size and a divisor
     * of sqrt(v), as torch does: p -= (lr / bc1) m / (sqrt(v) / sqrt(bc2) + eps). */
    const double bc1 = 1.0 - pow(cfg->beta1, (double)opt->t);
    const double bc2 = 1.0 - pow(cfg->beta2, (double)opt->t);
    const float step = (float)(lr / bc1), inv_sqrt_bc2 = (float)(1.0 / sqrt(bc2));
    for (int i = 0; i < m->n_params; i++) {
        const float *gi = g->g[i];
        if (!gi) continue;
        const size_t n = m->params[i].numel;
        float *p = m->mem + m->params[i].offset;
        float *mi = opt->m + g->off[i], *vi = opt->v + g->off[i];
        /* Elementwise: any split over threads gives the same bits. */
#pragma omp parallel for schedule(static) if (n >= 65536)
        for (size_t k = 0; k < n; k++) {
            const float gk = gi[k];
            mi[k] = b1 * mi[k] + (1.0f - b1) * gk;
            vi[k] = b2 * vi[k] + (1.0f - b2) * gk * gk;
            const float denom = sqrtf(vi[k]) * inv_sqrt_bc2 + eps;
            p[k] = p[k] * decay - step * mi[k] / denom;
        }
    }
}
