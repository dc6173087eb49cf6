/* Loading a model, a data split and a subnet from a command's config. */
#include "cli/cli_model.h"

#include "glora/common.h"
#include "glora/safetensors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const cli_precisions[] = {"fp32", "bf16", NULL};

void cli_set_precision(const glora_config_t *cfg, const char *key, glora_vit_t *m) {
    const char *name = glora_config_string(cfg, key);
    m->precision = name && strcmp(name, "bf16") == 0 ? GLORA_BF16 : GLORA_FP32;
    if (m->precision == GLORA_BF16 && glora_bgemm_emulated())
        fprintf(stderr, "glora: note: this CPU lacks AVX512_BF16; %s bf16 runs an exact software "
                        "emulation (the same results, much slower)\n", key);
}

glora_vit_arch_t cli_arch_preset(const char *name) {
    if (strcmp(name, "vit-b16") == 0)
        return (glora_vit_arch_t){.img_size = 224, .in_chans = 3, .patch = 16, .dim = 768, .depth = 12,
                                  .heads = 12, .mlp_hidden = 3072, .num_classes = 1000};
    return (glora_vit_arch_t){.img_size = 28, .in_chans = 1, .patch = 7, .dim = 128, .depth = 6,
                              .heads = 4, .mlp_hidden = 512, .num_classes = 10};
}

int cli_load_model(const glora_config_t *cfg, glora_vit_t **m) {
    int rc = glora_config_require(cfg, "model.backbone");
    if (rc) return rc;
    const char *adapter = glora_config_string(cfg, "model.adapter");
    glora_vit_load_opts_t o = {.heads = (int)glora_config_int(cfg, "model.heads"),
                               .arch = glora_config_string(cfg, "model.arch")};
    return glora_vit_load_ex(m, glora_config_string(cfg, "model.backbone"), adapter && adapter[0] ? adapter : NULL, &o);
}

int cli_load_split(const glora_config_t *cfg, const char *prefix, const glora_vit_t *m,
                   glora_dataset_t *ds) {
    char key[96];
    glora_split_t s;
    int rc = glora_split_from_config(&s, cfg, prefix, "data.");
    if (!rc && !s.list && !s.folder) {   /* IDX: both files required */
        snprintf(key, sizeof key, "%s.images", prefix);
        rc = glora_config_require(cfg, key);
        snprintf(key, sizeof key, "%s.labels", prefix);
        if (!rc) rc = glora_config_require(cfg, key);
    }
    if (!rc) rc = glora_split_load(ds, &s, m ? &m->arch : NULL);
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
