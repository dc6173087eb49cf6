/* Loading a model, a data split and a subnet from a command's config. */
#include "cli/cli_model.h"

#include "glora/common.h"
#include "glora/safetensors.h"

#include <stdio.h>
#include <string.h>

int cli_load_model(const glora_config_t *cfg, glora_vit_t **m) {
    int rc = glora_config_require(cfg, "model.backbone");
    if (rc) return rc;
    const char *adapter = glora_config_string(cfg, "model.adapter");
    return glora_vit_load(m, glora_config_string(cfg, "model.backbone"),
                          adapter && adapter[0] ? adapter : NULL, (int)glora_config_int(cfg, "model.heads"));
}

int cli_load_data(const glora_config_t *cfg, const glora_vit_t *m, glora_dataset_t *ds) {
    int rc = glora_config_require(cfg, "data.images");
    if (!rc) rc = glora_config_require(cfg, "data.labels");
    if (rc) return rc;
    const char *images = glora_config_string(cfg, "data.images");
    rc = glora_idx_load(ds, images, glora_config_string(cfg, "data.labels"),
                        (size_t)glora_config_int(cfg, "data.start"), (size_t)glora_config_int(cfg, "data.count"),
                        (float)glora_config_number(cfg, "data.mean"), (float)glora_config_number(cfg, "data.std"));
    if (rc || !m) return rc;
    const glora_vit_arch_t *a = &m->arch;
    if (ds->c != a->in_chans || ds->h != a->img_size || ds->w != a->img_size) {
        rc = glora_error(GLORA_ESTATE, "data '%s': images are %dx%dx%d, the model takes %dx%dx%d", images,
                         ds->h, ds->w, ds->c, a->img_size, a->img_size, a->in_chans);
    } else {
        for (size_t i = 0; i < ds->n; i++) {
            if (ds->y[i] >= a->num_classes) {
                rc = glora_error(GLORA_ESTATE, "data '%s': label %d of example %zu is beyond the model's %d classes",
                                 glora_config_string(cfg, "data.labels"), ds->y[i], i, a->num_classes);
                break;
            }
        }
    }
    if (rc) glora_dataset_free(ds);
    return rc;
}

int cli_load_subnet(const glora_vit_t *m, const char *spec_path, const char *adapter_path,
                    glora_spec_t *spec, int *have) {
    *have = 0;
    memset(spec, 0, sizeof *spec);
    int rc;
    if (spec_path && spec_path[0]) {
        rc = glora_spec_read(spec, spec_path);
        if (!rc) rc = glora_spec_check(spec, m, spec_path);
    } else if (adapter_path && adapter_path[0]) {
        /* A retrained adapter carries the spec it was trained for. */
        glora_st_t *st;
        rc = glora_st_open(&st, adapter_path);
        if (rc) return rc;
        const char *json = glora_st_meta(st, "glora.subnet");
        if (!json) {
            glora_st_close(st);
            return GLORA_OK;
        }
        char where[1100];
        snprintf(where, sizeof where, "%s (metadata glora.subnet)", adapter_path);
        rc = glora_spec_parse(spec, json, where);
        if (!rc) rc = glora_spec_check(spec, m, where);
        glora_st_close(st);
    } else {
        return GLORA_OK;
    }
    if (rc) {
        glora_spec_free(spec);
        return rc;
    }
    *have = 1;
    return GLORA_OK;
}
