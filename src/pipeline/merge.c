/* The merge stage: a subnet folded into a plain ViT (see glora/pipeline.h). */
#include "glora/pipeline.h"
#include "glora/common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The writable tensor "<layer>.<what>" of out. */
static float *tensor(glora_vit_t *out, int l, const char *what) {
    char layer[48], name[64];
    glora_vit_layer_name(l, layer);
    snprintf(name, sizeof name, "%s.%s", layer, what);
    const glora_param_t *p = glora_vit_param(out, name);
    GLORA_ASSERT(p != NULL);
    return out->mem + p->offset;
}

int glora_merge(glora_vit_t **out, const glora_vit_t *m, const glora_spec_t *spec) {
    glora_vit_linears_t *lin = NULL;
    glora_vit_t *p = NULL;
    *out = NULL;
    if (m->rank == 0) return glora_error(GLORA_EINVAL, "merge: the model holds no GLoRA tensors");
    int rc = glora_spec_check(spec, m, "subnet");
    if (!rc) rc = glora_vit_linears_create(&lin, m);
    if (!rc) rc = glora_vit_create(&p, &m->arch, 0);
    if (rc) {
        glora_vit_linears_free(lin);
        return rc;
    }
    /* Copy the backbone and head, then replace every adapted linear. */
    for (int i = 0; i < p->n_params; i++) {
        const glora_param_t *d = &p->params[i], *s = glora_vit_param(m, d->name);
        GLORA_ASSERT(s && s->numel == d->numel);
        memcpy(p->mem + d->offset, m->mem + s->offset, d->numel * sizeof(float));
    }
    glora_vit_linears_set(lin, m, spec->cfg);
    for (int l = 0; l < glora_vit_layers(m); l++) {
        int o, in;
        glora_arch_layer_shape(&m->arch, l, &o, &in);
        memcpy(tensor(p, l, "weight"), lin->w[l], (size_t)o * in * sizeof(float));
        memcpy(tensor(p, l, "bias"), lin->b[l], (size_t)o * sizeof(float));
    }
    memcpy(p->backbone_sha256, m->backbone_sha256, sizeof p->backbone_sha256);
    glora_vit_linears_free(lin);
    if (m->class_names && !(p->class_names = strdup(m->class_names))) {
        glora_vit_free(p);
        return glora_error(GLORA_ENOMEM, "merge: out of memory");
    }
    *out = p;
    return GLORA_OK;
}

int glora_merged_save(const glora_vit_t *merged, const glora_spec_t *spec, const char *path) {
    char params[32], *json = NULL;
    snprintf(params, sizeof params, "%zu", spec->params);
    int rc = glora_spec_to_json(spec, &json);
    if (rc) return rc;
    const char *meta[] = {GLORA_META_KIND, "merged", GLORA_META_BACKBONE_SHA256, merged->backbone_sha256,
                          GLORA_META_SUBNET_PARAMS, params, GLORA_META_SUBNET, json};
    rc = glora_vit_save(merged, path, GLORA_ROLE_BACKBONE | GLORA_ROLE_HEAD, meta, 4);
    free(json);
    return rc;
}
