/* Loading a model, a data split and a subnet from a command's config. */
#include "cli/cli_model.h"

#include "glora/common.h"
#include "glora/safetensors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const cli_shift_kinds[] = {"clean", "inverted", "rotated", "noisy", "blurred", NULL};

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
    return glora_vit_load(m, glora_config_string(cfg, "model.backbone"),
                          adapter && adapter[0] ? adapter : NULL, (int)glora_config_int(cfg, "model.heads"));
}

/* Bilinear resize (align_corners=False, as torch.nn.functional.interpolate)
 * to the model's image size, grey channels repeated: lets a ViT-B/16 shaped
 * model (224x224x3) run on 28x28 grey images. Works on normalised values,
 * which commute with these linear maps. */
static int resize_to(glora_dataset_t *ds, int side, int chans, const char *path) {
    if (ds->c != 1 && ds->c != chans)
        return glora_error(GLORA_ESTATE, "data '%s': cannot map %d channels to %d", path, ds->c, chans);
    size_t per = (size_t)chans * side * side, total;
    if (glora_size_mul(per, ds->n, &total) || total > ((size_t)1 << 31))
        return glora_error(GLORA_EINVAL, "data '%s': %zu resized images of %dx%dx%d do not fit in memory; "
                           "use data.count to take fewer", path, ds->n, side, side, chans);
    float *x = malloc(total * sizeof(float));
    if (!x) return glora_error(GLORA_ENOMEM, "data '%s': out of memory for resized images", path);
    const int h = ds->h, w = ds->w;
    const float sy = (float)h / side, sx = (float)w / side;
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < ds->n; i++) {
        for (int c = 0; c < chans; c++) {
            const float *src = ds->x + ((size_t)i * ds->c + (ds->c == 1 ? 0 : c)) * h * w;
            float *dst = x + ((size_t)i * chans + c) * side * side;
            for (int y = 0; y < side; y++) {
                float fy = ((float)y + 0.5f) * sy - 0.5f;
                if (fy < 0) fy = 0;
                int y0 = (int)fy, y1 = y0 + 1 < h ? y0 + 1 : h - 1;
                float wy = fy - (float)y0;
                for (int xx = 0; xx < side; xx++) {
                    float fx = ((float)xx + 0.5f) * sx - 0.5f;
                    if (fx < 0) fx = 0;
                    int x0 = (int)fx, x1 = x0 + 1 < w ? x0 + 1 : w - 1;
                    float wx = fx - (float)x0;
                    float top = src[y0 * w + x0] * (1 - wx) + src[y0 * w + x1] * wx;
                    float bot = src[y1 * w + x0] * (1 - wx) + src[y1 * w + x1] * wx;
                    dst[y * side + xx] = top * (1 - wy) + bot * wy;
                }
            }
        }
    }
    free(ds->x);
    ds->x = x;
    ds->c = chans;
    ds->h = ds->w = side;
    return GLORA_OK;
}

int cli_load_data(const glora_config_t *cfg, const glora_vit_t *m, glora_dataset_t *ds) {
    int rc = glora_config_require(cfg, "data.images");
    if (!rc) rc = glora_config_require(cfg, "data.labels");
    if (rc) return rc;
    const char *images = glora_config_string(cfg, "data.images");
    rc = glora_idx_load(ds, images, glora_config_string(cfg, "data.labels"),
                        (size_t)glora_config_int(cfg, "data.start"), (size_t)glora_config_int(cfg, "data.count"),
                        (float)glora_config_number(cfg, "data.mean"), (float)glora_config_number(cfg, "data.std"));
    if (rc) return rc;
    const char *shift = glora_config_string(cfg, "data.shift");
    if (strcmp(shift, "clean") != 0) {
        glora_dataset_t shifted = {0};
        rc = glora_dataset_shift(ds, shift, (uint64_t)glora_config_int(cfg, "data.shift_seed"), &shifted);
        glora_dataset_free(ds);
        if (rc) return rc;
        *ds = shifted;
    }
    if (!m) return GLORA_OK;
    const glora_vit_arch_t *a = &m->arch;
    if (glora_config_bool(cfg, "data.resize") && (ds->c != a->in_chans || ds->h != a->img_size || ds->w != a->img_size)) {
        rc = resize_to(ds, a->img_size, a->in_chans, images);
        if (rc) {
            glora_dataset_free(ds);
            return rc;
        }
    }
    if (ds->c != a->in_chans || ds->h != a->img_size || ds->w != a->img_size) {
        rc = glora_error(GLORA_ESTATE, "data '%s': images are %dx%dx%d, the model takes %dx%dx%d", images,
                         ds->h, ds->w, ds->c, a->img_size, a->img_size, a->in_chans);
        glora_error_hint("set data.resize: yes to resize them (bilinear, grey repeated)");
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
