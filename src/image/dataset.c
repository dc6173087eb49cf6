/*
 * Image-file splits inside the one data layer (glora/data.h): a list file or
 * an image folder decoded into a byte dataset, the parsing of data.mean /
 * data.std, and the two byte-dataset conversions the layer needs.
 */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "glora/common.h"
#include "glora/data.h"
#include "util/fileio.h"
#include "glora/image.h"

int glora_split_parse_norm(const glora_config_t *cfg, const char *key, const char *text,
                           int is_std, float v[3], int *n) {
    static const float imagenet[2][3] = {{0.485f, 0.456f, 0.406f}, {0.229f, 0.224f, 0.225f}};
    if (!strcmp(text, "imagenet")) {
        memcpy(v, imagenet[is_std], sizeof imagenet[0]);
        *n = 3;
        return 0;
    }
    if (!strcmp(text, "inception")) {
        v[0] = v[1] = v[2] = 0.5f;
        *n = 1;
        return 0;
    }
    const char *p = text;
    int k = 0;
    while (*p) {
        while (*p == ' ' || *p == ',' || *p == '[' || *p == ']' || *p == '\t') p++;
        if (!*p) break;
        char *end;
        double d = strtod(p, &end);
        if (end == p || k == 3)
            return glora_config_error(cfg, key, "must be a number, 3 numbers, imagenet or "
                                      "inception, found '%s'", text);
        if (!isfinite(d) || (is_std && !(d > 0)))
            return glora_config_error(cfg, key, "holds %g: a %s must be finite%s", d,
                                      is_std ? "std" : "mean", is_std ? " and positive" : "");
        v[k++] = (float)d;
        p = end;
    }
    if (k != 1 && k != 3)
        return glora_config_error(cfg, key, "must be a number, 3 numbers, imagenet or inception, "
                                  "found '%s'", text);
    if (k == 1) v[1] = v[2] = v[0];
    *n = k;
    return 0;
}

int glora_dataset_to_float(glora_dataset_t *ds) {
    if (!ds->u8) return 0;
    for (int c = 1; c < ds->c; c++)
        if (ds->cmean[c] != ds->cmean[0] || ds->cstd[c] != ds->cstd[0])
            return glora_error(GLORA_EINVAL, "dataset: a domain shift needs one mean and std for "
                               "every channel");
    size_t total = ds->n * glora_dataset_example_size(ds), bytes;
    if (glora_size_mul(total, sizeof(float), &bytes))
        return glora_error(GLORA_ENOMEM, "dataset: too large for floats");
    float *x = malloc(bytes ? bytes : 1);
    if (!x) return glora_error(GLORA_ENOMEM, "dataset: out of memory for %zu floats", total);
    glora_image_normalize(ds->u8, ds->n, ds->c, ds->h, ds->w, ds->cmean, ds->cstd, x);
    free(ds->u8);
    ds->u8 = NULL;
    ds->x = x;
    ds->mean = ds->cmean[0];
    ds->std = ds->cstd[0];
    return 0;
}

int glora_dataset_repeat_grey(glora_dataset_t *ds) {
    if (!ds->u8 || ds->c != 1) return glora_error(GLORA_EINVAL, "dataset: not a grey byte dataset");
    size_t plane = (size_t)ds->h * (size_t)ds->w, bytes;
    if (glora_size_mul(ds->n, 3 * plane, &bytes)) return glora_error(GLORA_ENOMEM, "dataset: too large");
    uint8_t *px = malloc(bytes ? bytes : 1);
    if (!px) return glora_error(GLORA_ENOMEM, "dataset: out of memory for %zu bytes", bytes);
    for (size_t i = 0; i < ds->n; i++)
        for (int c = 0; c < 3; c++) memcpy(px + (i * 3 + (size_t)c) * plane, ds->u8 + i * plane, plane);
    free(ds->u8);
    ds->u8 = px;
    ds->c = 3;
    return 0;
}

/* The cache file of a split: DIR/images-<16 hex digits>.cache, named by the
 * source and the range so that the splits of a run do not share one file
 * (the file's own key still decides whether it is used). */
static int cache_file(char **out, const glora_split_t *s) {
    char desc[4200], hex[65];
    int k = snprintf(desc, sizeof desc, "%s\n%s\n%zu\n%zu\n", glora_split_source(s),
                     s->root ? s->root : "", s->start, s->count);
    glora_sha256_hex(desc, (size_t)k, hex);
    size_t n = strlen(s->cache) + 40;
    *out = malloc(n);
    if (!*out) return glora_error(GLORA_ENOMEM, "data cache: out of memory");
    snprintf(*out, n, "%s/images-%.16s.cache", s->cache, hex);
    return glora_mkdir_p(s->cache);
}

int glora_split_load_images(glora_dataset_t *ds, const glora_split_t *s,
                            const glora_vit_arch_t *arch) {
    glora_image_list_t list = {0};
    glora_image_split_t split = {0};
    char *cache = NULL;
    int rc;
    memset(ds, 0, sizeof *ds);
    const char *src = glora_split_source(s);
    glora_image_prep_t prep = {
        .channels = arch ? arch->in_chans : 0,
        .size = s->size ? s->size : arch ? arch->img_size : 0,
        .resize = (glora_resize_t)s->img_resize,
        .interp = (glora_interp_t)s->interp,
        .crop_pct = s->crop_pct,
    };
    if (prep.size == 0)
        return glora_error(GLORA_EINVAL, "data '%s': image files need data.size here (the "
                           "model's image size is not known yet)", src);
    rc = s->list ? glora_image_list_read(&list, s->list, s->root, 0)
                 : glora_image_folder_read(&list, s->folder);
    if (rc) return rc;
    if (s->start > list.n || (s->count && s->count > list.n - s->start)) {
        rc = glora_error(GLORA_EINVAL, "data '%s': examples [%zu, %zu) asked, the split has %zu",
                         src, s->start, s->start + (s->count ? s->count : list.n - s->start), list.n);
        goto done;
    }
    size_t count = s->count ? s->count : list.n - s->start;
    size_t bytes = glora_image_split_bytes(count, &prep);
    if (s->max_memory && bytes > s->max_memory) {
        rc = glora_error(GLORA_EINVAL, "data '%s': %zu decoded images take %zu bytes, over "
                         "data.max_memory (%zu)", src, count, bytes, s->max_memory);
        glora_error_hint("raise data.max_memory, or read fewer images (count)");
        goto done;
    }
    if (s->cache && (rc = cache_file(&cache, s))) goto done;
    if ((rc = glora_image_split_load(&split, &list, s->start, count, &prep, cache, NULL))) goto done;
    ds->n = split.n;
    ds->c = split.c;
    ds->h = split.h;
    ds->w = split.w;
    ds->u8 = split.px;
    ds->y = split.y;
    ds->num_classes = list.num_classes;
    ds->class_names = list.class_names;   /* taken (folders; NULL for lists) */
    list.class_names = NULL;
    for (int c = 0; c < 3; c++) {
        ds->cmean[c] = s->means[s->nnorm == 3 ? c : 0];
        ds->cstd[c] = s->stds[s->nnorm == 3 ? c : 0];
    }
    ds->mean = ds->cmean[0];
    ds->std = ds->cstd[0];
    split.px = NULL;
    split.y = NULL;
done:
    glora_image_split_free(&split);
    glora_image_list_free(&list);
    free(cache);
    return rc;
}

/* ---- streaming --------------------------------------------------------- */

struct glora_split_stream {
    glora_image_list_t list;
    glora_image_stream_t *st;
    glora_split_t s;
    glora_vit_arch_t arch;
    int whole;   /* the split fits in one piece: read it as glora_split_load would (cache included) */
    int done;    /* whole: the piece was handed out */
};

int glora_split_stream_open(glora_split_stream_t **out, const glora_split_t *s,
                            const glora_vit_arch_t *arch, size_t *total) {
    glora_split_stream_t *st = NULL;
    int rc;
    *out = NULL;
    const char *src = glora_split_source(s);
    if (!s->list && !s->folder)
        return glora_error(GLORA_EINVAL, "data '%s': only image-file splits are streamed", src);
    if (s->kshot > 0 || (s->shift && strcmp(s->shift, "clean") != 0))
        return glora_error(GLORA_EINVAL, "data '%s': a streamed split takes no kshot or shift", src);
    glora_image_prep_t prep = {
        .channels = arch->in_chans,
        .size = s->size ? s->size : arch->img_size,
        .resize = (glora_resize_t)s->img_resize,
        .interp = (glora_interp_t)s->interp,
        .crop_pct = s->crop_pct,
    };
    st = calloc(1, sizeof *st);
    if (!st) return glora_error(GLORA_ENOMEM, "data '%s': out of memory", src);
    st->s = *s;
    st->arch = *arch;
    rc = s->list ? glora_image_list_read(&st->list, s->list, s->root, 0)
                 : glora_image_folder_read(&st->list, s->folder);
    if (rc) goto fail;
    if (s->start > st->list.n || (s->count && s->count > st->list.n - s->start)) {
        rc = glora_error(GLORA_EINVAL, "data '%s': examples [%zu, %zu) asked, the split has %zu",
                         src, s->start, s->start + s->count, st->list.n);
        goto fail;
    }
    size_t count = s->count ? s->count : st->list.n - s->start;
    size_t per = glora_image_split_bytes(1, &prep);
    size_t chunk = s->max_memory ? s->max_memory / per : count;
    if (chunk == 0) {
        rc = glora_error(GLORA_EINVAL, "data '%s': data.max_memory (%zu bytes) holds not one "
                         "decoded image of %zu bytes", src, s->max_memory, per);
        goto fail;
    }
    if ((rc = glora_image_stream_open(&st->st, &st->list, s->start, count, &prep, chunk))) goto fail;
    st->whole = chunk >= count;
    *total = count;
    *out = st;
    return 0;
fail:
    glora_split_stream_close(st);
    return rc;
}

int glora_split_stream_next(glora_split_stream_t *st, glora_dataset_t *ds) {
    glora_image_split_t ch = {0};
    glora_dataset_free(ds);
    if (st->whole) {   /* one piece: the same pixels, through data.cache when set */
        if (st->done) return 0;
        st->done = 1;
        int rc = glora_split_load_images(ds, &st->s, &st->arch);
        return rc ? rc : glora_dataset_fit(ds, &st->s, &st->arch);
    }
    int rc = glora_image_stream_next(st->st, &ch);
    if (rc || ch.n == 0) return rc;
    ds->n = ch.n;
    ds->c = ch.c;
    ds->h = ch.h;
    ds->w = ch.w;
    ds->u8 = ch.px;
    ds->y = ch.y;
    ds->num_classes = st->list.num_classes;
    for (int c = 0; c < 3; c++) {
        ds->cmean[c] = st->s.means[st->s.nnorm == 3 ? c : 0];
        ds->cstd[c] = st->s.stds[st->s.nnorm == 3 ? c : 0];
    }
    ds->mean = ds->cmean[0];
    ds->std = ds->cstd[0];
    return glora_dataset_fit(ds, &st->s, &st->arch);
}

void glora_split_stream_close(glora_split_stream_t *st) {
    if (!st) return;
    glora_image_stream_close(st->st);
    glora_image_list_free(&st->list);
    free(st);
}

const char *glora_split_stream_path(const glora_split_stream_t *st, size_t i) {
    size_t k = st->s.start + i;
    return k >= st->s.start && k < st->list.n ? st->list.paths[k] : NULL;
}

const char *glora_split_stream_class_name(const glora_split_stream_t *st, int c) {
    return st->list.class_names && c >= 0 && c < st->list.num_classes ? st->list.class_names[c] : NULL;
}
