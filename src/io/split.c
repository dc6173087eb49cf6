/* The one data layer: a split described by config keys, loaded into a
 * dataset, and the accessors every consumer reads pixels through (see
 * glora/data.h). */
#include "glora/data.h"
#include "glora/common.h"
#include "glora/image.h"
#include "glora/timm.h"
#include "util/strbuf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *const glora_shift_kinds[] = {"clean", "inverted", "rotated", "noisy", "blurred", NULL};
const char *const glora_split_resize_modes[] = {"no", "yes", "squash", "shorter", NULL};
const char *const glora_split_interps[] = {"bicubic", "bilinear", "nearest", NULL};

int glora_split_given(const glora_split_t *s) {
    return s->images || s->list || s->folder;
}

const char *glora_split_source(const glora_split_t *s) {
    return s->list ? s->list : s->folder ? s->folder : s->images ? s->images : "(none)";
}

size_t glora_dataset_example_size(const glora_dataset_t *ds) {
    return (size_t)ds->c * (size_t)ds->h * (size_t)ds->w;
}

void glora_dataset_batch(const glora_dataset_t *ds, const uint32_t *idx, size_t n, float *out) {
    const size_t per = glora_dataset_example_size(ds);
    for (size_t b = 0; b < n; b++) {
        GLORA_ASSERT(idx[b] < ds->n);
        if (ds->u8)
            glora_image_normalize(ds->u8 + (size_t)idx[b] * per, 1, ds->c, ds->h, ds->w, ds->cmean,
                                  ds->cstd, out + b * per);
        else
            memcpy(out + b * per, ds->x + (size_t)idx[b] * per, per * sizeof(float));
    }
}

void glora_dataset_slice(const glora_dataset_t *ds, size_t start, size_t n, float *out) {
    GLORA_ASSERT(start <= ds->n && n <= ds->n - start);
    const size_t per = glora_dataset_example_size(ds);
    if (n && ds->u8)
        glora_image_normalize(ds->u8 + start * per, n, ds->c, ds->h, ds->w, ds->cmean, ds->cstd, out);
    else if (n)
        memcpy(out, ds->x + start * per, n * per * sizeof(float));
}

/* Key "<a><b>" of cfg when its schema has it. */
static const char *key_of(const glora_config_t *cfg, char *buf, size_t size, const char *a,
                          const char *b) {
    snprintf(buf, size, "%s%s", a, b);
    return glora_config_has(cfg, buf) ? buf : NULL;
}

/* One mean and std for every channel, or three of each: a single value
 * given beside three is repeated. */
static void norm_merge(glora_split_t *s) {
    if (s->nstd > s->nnorm) {
        s->means[1] = s->means[2] = s->means[0];
        s->nnorm = s->nstd;
    } else if (s->nstd < s->nnorm) {
        s->stds[1] = s->stds[2] = s->stds[0];
    }
    s->nstd = s->nnorm;
    s->mean = s->means[0];
    s->std = s->stds[0];
}

/* The model file a config names: model.backbone, or a run's backbone,
 * when the schema has the key and the config sets it; else NULL. */
static const char *model_of(const glora_config_t *cfg) {
    static const char *const names[] = {"model.backbone", "backbone"};
    for (int i = 0; i < 2; i++) {
        if (!glora_config_has(cfg, names[i]) || !glora_config_is_set(cfg, names[i])) continue;
        const char *p = glora_config_string(cfg, names[i]);
        if (p && p[0]) return p;
    }
    return NULL;
}

/* Non-zero when the config leaves key <norm><name> unset (or lacks it). */
static int unset(const glora_config_t *cfg, const char *norm, const char *name) {
    char k[160];
    const char *key = key_of(cfg, k, sizeof k, norm, name);
    return !key || !glora_config_is_set(cfg, key);
}

int glora_split_timm_defaults(glora_split_t *s, const glora_config_t *cfg, const char *norm,
                              const char *model_path) {
    static const double imagenet[2][3] = {{0.485, 0.456, 0.406}, {0.229, 0.224, 0.225}};
    glora_timm_config_t t = {.num_classes = -1};
    char path[sizeof s->timm_config];
    int found, rc = glora_timm_config_beside(model_path, &t, &found, path, sizeof path);
    if (rc || !found) return rc;
    snprintf(s->timm_config, sizeof s->timm_config, "%s", path);
    if (unset(cfg, norm, "size") && t.input_size[1]) {
        if (t.input_size[1] != t.input_size[2]) {
            rc = glora_error(GLORA_EINVAL, "config '%s': pretrained_cfg.input_size is %d x %d; glora's "
                             "images are square", path, t.input_size[1], t.input_size[2]);
            glora_error_hint("set %ssize", norm);
            return rc;
        }
        s->size = t.input_size[1];
        s->from_timm |= GLORA_SPLIT_FROM_SIZE;
    }
    if (unset(cfg, norm, "interpolation") && t.interpolation[0]) {
        int i = glora_image_interp_parse(t.interpolation);
        if (i < 0) {
            rc = glora_error(GLORA_EINVAL, "config '%s': pretrained_cfg.interpolation '%s' is not one glora "
                             "has (bicubic, bilinear, nearest)", path, t.interpolation);
            glora_error_hint("set %sinterpolation", norm);
            return rc;
        }
        s->interp = i;
        s->from_timm |= GLORA_SPLIT_FROM_INTERP;
    }
    if (unset(cfg, norm, "resize")) {
        s->img_resize = GLORA_RESIZE_SHORTER;
        s->resize = 0;
        s->from_timm |= GLORA_SPLIT_FROM_RESIZE;
    }
    if (unset(cfg, norm, "crop_pct")) {
        s->crop_pct = t.crop_pct > 0 ? t.crop_pct : 0.875;
        s->from_timm |= GLORA_SPLIT_FROM_CROP;
    }
    for (int which = 0; which < 2; which++) {
        if (!unset(cfg, norm, which ? "std" : "mean")) continue;
        const int n = which ? t.n_std : t.n_mean;
        const double *v = n ? (which ? t.std : t.mean) : imagenet[which];
        float *dst = which ? s->stds : s->means;
        for (int c = 0; c < 3; c++) dst[c] = (float)v[n == 1 ? 0 : c];
        *(which ? &s->nstd : &s->nnorm) = n == 1 ? 1 : 3;
        s->from_timm |= which ? GLORA_SPLIT_FROM_STD : GLORA_SPLIT_FROM_MEAN;
    }
    return GLORA_OK;
}

static void describe_values(char *buf, size_t cap, size_t *at, const float *v, int n) {
    for (int c = 0; c < n && *at < cap; c++)
        *at += (size_t)snprintf(buf + *at, cap - *at, " %g", (double)v[c]);
}

void glora_split_describe(const glora_split_t *s, int model_size, char *buf, size_t cap) {
    static const char *const resize[] = {"squash", "shorter", "no"};
    size_t at = 0;
    if (!cap) return;
    buf[0] = 0;
#define PUT(...) (at < cap ? (void)(at += (size_t)snprintf(buf + at, cap - at, __VA_ARGS__)) : (void)0)
    PUT("size %d, resize %s, interpolation %s", s->size ? s->size : model_size, resize[s->img_resize],
        glora_image_interp_name((glora_interp_t)s->interp));
    if (s->img_resize == GLORA_RESIZE_SHORTER) PUT(", crop_pct %g", s->crop_pct);
    PUT(", mean");
    if (at < cap) describe_values(buf, cap, &at, s->means, s->nnorm);
    PUT(", std");
    if (at < cap) describe_values(buf, cap, &at, s->stds, s->nnorm);
    if (s->from_timm) {
        static const char *const names[] = {"size", "resize", "interpolation", "crop_pct", "mean", "std"};
        PUT(" (from %s:", s->timm_config);
        for (int i = 0, first = 1; i < 6; i++)
            if ((s->from_timm & (1u << i)) && (i != 3 || s->img_resize == GLORA_RESIZE_SHORTER)) {
                PUT("%s %s", first ? "" : ",", names[i]);
                first = 0;
            }
        PUT(")");
    }
#undef PUT
}

size_t glora_split_default_max_memory(void) {
    const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (pages <= 0 || page <= 0) return 0;
    size_t bytes;
    if (glora_size_mul((size_t)pages, (size_t)page, &bytes)) return SIZE_MAX / 2;
    return bytes / 2;
}

int glora_split_from_config(glora_split_t *s, const glora_config_t *cfg, const char *prefix,
                            const char *norm) {
    char k[160];
    const char *key;
    memset(s, 0, sizeof *s);
    s->mean = 0.5f;
    s->std = 0.5f;
    if ((key = key_of(cfg, k, sizeof k, prefix, ".images"))) s->images = glora_config_string(cfg, key);
    if ((key = key_of(cfg, k, sizeof k, prefix, ".labels"))) s->labels = glora_config_string(cfg, key);
    if ((key = key_of(cfg, k, sizeof k, prefix, ".start"))) s->start = (size_t)glora_config_int(cfg, key);
    if ((key = key_of(cfg, k, sizeof k, prefix, ".count"))) s->count = (size_t)glora_config_int(cfg, key);
    if ((key = key_of(cfg, k, sizeof k, prefix, ".kshot"))) s->kshot = (int)glora_config_int(cfg, key);
    if ((key = key_of(cfg, k, sizeof k, prefix, ".kshot_seed")))
        s->kshot_seed = (uint64_t)glora_config_int(cfg, key);
    if ((key = key_of(cfg, k, sizeof k, prefix, ".list"))) s->list = glora_config_string(cfg, key);
    if ((key = key_of(cfg, k, sizeof k, prefix, ".root"))) s->root = glora_config_string(cfg, key);
    if ((key = key_of(cfg, k, sizeof k, prefix, ".folder"))) s->folder = glora_config_string(cfg, key);
    s->img_resize = GLORA_RESIZE_NO;
    s->interp = GLORA_INTERP_BICUBIC;
    s->crop_pct = 1.0;
    s->nnorm = 1;
    s->means[0] = s->means[1] = s->means[2] = 0.5f;
    s->stds[0] = s->stds[1] = s->stds[2] = 0.5f;
    int rc = GLORA_OK;
    if ((key = key_of(cfg, k, sizeof k, norm, "mean")) &&
        (rc = glora_split_parse_norm(cfg, key, glora_config_string(cfg, key), 0, s->means, &s->nnorm)))
        return rc;
    s->nstd = 1;
    if ((key = key_of(cfg, k, sizeof k, norm, "std")) &&
        (rc = glora_split_parse_norm(cfg, key, glora_config_string(cfg, key), 1, s->stds, &s->nstd)))
        return rc;
    if ((key = key_of(cfg, k, sizeof k, norm, "resize"))) {
        const char *r = glora_config_string(cfg, key);
        s->resize = strcmp(r, "yes") == 0;
        if (strcmp(r, "yes") == 0 || strcmp(r, "squash") == 0) s->img_resize = GLORA_RESIZE_SQUASH;
        if (strcmp(r, "shorter") == 0) s->img_resize = GLORA_RESIZE_SHORTER;
    }
    if ((key = key_of(cfg, k, sizeof k, norm, "size"))) s->size = (int)glora_config_int(cfg, key);
    if ((key = key_of(cfg, k, sizeof k, norm, "interpolation")))
        s->interp = glora_image_interp_parse(glora_config_string(cfg, key));
    if ((key = key_of(cfg, k, sizeof k, norm, "crop_pct"))) s->crop_pct = glora_config_number(cfg, key);
    const char *model = model_of(cfg);
    if (model && (rc = glora_split_timm_defaults(s, cfg, norm, model))) return rc;
    norm_merge(s);
    if ((key = key_of(cfg, k, sizeof k, norm, "max_memory")))
        s->max_memory = glora_config_is_set(cfg, key) ? glora_config_size(cfg, key) : glora_split_default_max_memory();
    if ((key = key_of(cfg, k, sizeof k, norm, "cache"))) s->cache = glora_config_string(cfg, key);
    int kinds = !!s->images + !!s->list + !!s->folder;
    if (kinds > 1)
        return glora_config_error(cfg, strcat(strcpy(k, prefix), s->list ? ".list" : ".folder"),
                                  "names a second source for the split: give one of images + labels, list, folder");
    if (s->root && !s->list)
        return glora_config_error(cfg, strcat(strcpy(k, prefix), ".root"), "needs a list file (%s.list)", prefix);
    if ((key = key_of(cfg, k, sizeof k, norm, "shift"))) s->shift = glora_config_string(cfg, key);
    if ((key = key_of(cfg, k, sizeof k, norm, "shift_seed")))
        s->shift_seed = (uint64_t)glora_config_int(cfg, key);
    /* A split given by half is an error the caller reports through
     * glora_config_require (it names the missing key). */
    if (s->images && !s->labels) return glora_config_require(cfg, strcat(strcpy(k, prefix), ".labels"));
    if (!s->images && s->labels) return glora_config_require(cfg, strcat(strcpy(k, prefix), ".images"));
    return GLORA_OK;
}

/* Replaces *ds by out when rc is 0 (the class names move to it); frees *ds
 * either way. */
static int replace(glora_dataset_t *ds, glora_dataset_t *out, int rc) {
    if (rc == GLORA_OK && !out->class_names && out->num_classes == ds->num_classes) {
        out->class_names = ds->class_names;
        ds->class_names = NULL;
    }
    glora_dataset_free(ds);
    if (rc == GLORA_OK) *ds = *out;
    return rc;
}

char *glora_dataset_class_names_json(const glora_dataset_t *ds) {
    sbuf_t b = {0};
    if (!ds->class_names) return NULL;
    sb_puts(&b, "[");
    for (int c = 0; c < ds->num_classes; c++) {
        if (c) sb_puts(&b, ", ");
        sb_jstr(&b, ds->class_names[c]);
    }
    sb_puts(&b, "]");
    if (b.failed) {
        free(b.buf);
        return NULL;
    }
    return b.buf;
}

int glora_split_load(glora_dataset_t *ds, const glora_split_t *s, const glora_vit_arch_t *arch) {
    memset(ds, 0, sizeof *ds);
    int rc;
    if (s->list || s->folder) {
        rc = glora_split_load_images(ds, s, arch);
    } else if (!s->images || !s->labels) {
        return glora_error(GLORA_EINVAL, "data split: no images or labels file given");
    } else if (s->nnorm > 1 && (s->means[1] != s->means[0] || s->means[2] != s->means[0] ||
                                s->stds[1] != s->stds[0] || s->stds[2] != s->stds[0])) {
        return glora_error(GLORA_EINVAL, "data '%s': per-channel mean/std need image files (IDX "
                           "images have one channel)", s->images);
    } else {
        rc = glora_idx_load(ds, s->images, s->labels, s->start, s->count, s->mean, s->std);
    }
    glora_dataset_t out = {0};
    if (!rc && s->kshot > 0) rc = replace(ds, &out, glora_dataset_kshot(ds, s->kshot, s->kshot_seed, &out));
    if (!rc && s->shift && strcmp(s->shift, "clean") != 0) {
        rc = glora_dataset_to_float(ds);
        if (!rc) rc = replace(ds, &out, glora_dataset_shift(ds, s->shift, s->shift_seed, &out));
    }
    if (!rc && arch) rc = glora_dataset_fit(ds, s, arch);
    return rc;
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

int glora_dataset_fit(glora_dataset_t *ds, const glora_split_t *s, const glora_vit_arch_t *a) {
    int rc = GLORA_OK;
    const int differs = ds->c != a->in_chans || ds->h != a->img_size || ds->w != a->img_size;
    if (ds->u8) {
        /* decoded at data.size; grey repeated to RGB is exact on bytes */
        if (ds->c == 1 && a->in_chans == 3 && ds->h == a->img_size && ds->w == a->img_size)
            rc = glora_dataset_repeat_grey(ds);
    } else if (s->resize && differs) {
        rc = resize_to(ds, a->img_size, a->in_chans, s->images);
    }
    if (!rc && (ds->c != a->in_chans || ds->h != a->img_size || ds->w != a->img_size)) {
        rc = glora_error(GLORA_ESTATE, "data '%s': images are %dx%dx%d, the model takes %dx%dx%d",
                         glora_split_source(s), ds->h, ds->w, ds->c, a->img_size, a->img_size, a->in_chans);
        if (ds->u8)
            glora_error_hint("set data.size to %d (and data.resize) so the files are decoded at the "
                             "model's size", a->img_size);
        else
            glora_error_hint("set data.resize: yes to resize them (bilinear, grey repeated)");
    }
    for (size_t i = 0; !rc && i < ds->n; i++)
        if (ds->y[i] >= a->num_classes)
            rc = glora_error(GLORA_ESTATE, "data '%s': label %d of example %zu is beyond the model's %d classes",
                             s->labels ? s->labels : glora_split_source(s), ds->y[i], i, a->num_classes);
    if (rc) glora_dataset_free(ds);
    return rc;
}
