/* Building the models the stages start from (see glora/pipeline.h). */
#include "glora/pipeline.h"
#include "glora/common.h"
#include "util/rng.h"

#include <string.h>

/* The stream every initialisation draws from: seed forked by "init". */
static void init_stream(glora_rng_t *r, uint64_t seed) {
    glora_rng_seed(r, seed);
    glora_rng_fork(r, 0x696e6974 /* "init" */, r);
}

int glora_backbone_create(glora_vit_t **out, const glora_vit_arch_t *a, uint64_t seed) {
    int rc = glora_vit_create(out, a, 0);
    if (rc) return rc;
    glora_rng_t r;
    init_stream(&r, seed);
    glora_train_init_vit(*out, &r);
    return GLORA_OK;
}

int glora_backbone_adapt(glora_vit_t **out, const glora_vit_t *bb, int classes, int rank) {
    glora_vit_arch_t a = bb->arch;
    a.num_classes = classes;
    glora_vit_t *m;
    *out = NULL;
    int rc = glora_vit_create(&m, &a, rank);
    if (rc) return rc;
    for (int i = 0; i < m->n_params; i++) {
        const glora_param_t *p = &m->params[i];
        if (p->role == GLORA_ROLE_BACKBONE) {
            const glora_param_t *q = glora_vit_param(bb, p->name);
            GLORA_ASSERT(q && q->numel == p->numel);
            memcpy(m->mem + p->offset, bb->mem + q->offset, p->numel * sizeof(float));
        } else {
            memset(m->mem + p->offset, 0, p->numel * sizeof(float));
        }
    }
    memcpy(m->backbone_sha256, bb->backbone_sha256, sizeof m->backbone_sha256);
    *out = m;
    return GLORA_OK;
}

int glora_supernet_build(glora_vit_t **out, const glora_vit_t *bb, int classes, int rank,
                         uint64_t seed) {
    if (rank < 1) return glora_error(GLORA_EINVAL, "supernet 'rank': %d, must be at least 1", rank);
    int rc = glora_backbone_adapt(out, bb, classes, rank);
    if (rc) return rc;
    glora_rng_t r;
    init_stream(&r, seed);
    glora_train_init_adapters(*out, &r);
    return GLORA_OK;
}
