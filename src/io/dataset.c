/* Subsets of a dataset: explicit indices and k-shot selection. */
#include "glora/data.h"
#include "glora/common.h"
#include "util/rng.h"

#include <stdlib.h>
#include <string.h>

/* Values per example. */
static size_t example_size(const glora_dataset_t *ds) {
    return (size_t)ds->c * (size_t)ds->h * (size_t)ds->w;
}

int glora_dataset_take(const glora_dataset_t *src, const uint32_t *idx, size_t n,
                       glora_dataset_t *out) {
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < n; i++)
        if (idx[i] >= src->n)
            return glora_error(GLORA_EINVAL,
                               "dataset subset: index %u out of range (the dataset holds %zu "
                               "examples)",
                               idx[i], src->n);
    size_t per = example_size(src), total;
    if (glora_size_mul(n, per, &total) != 0 || glora_size_mul(total, sizeof(float), &total) != 0)
        return glora_error(GLORA_ENOMEM, "dataset subset: %zu examples are too many", n);
    if (n > 0) {
        /* byte splits stay bytes: a quarter of total */
        if (src->u8) out->u8 = malloc(total / sizeof(float));
        else out->x = malloc(total);
        out->y = malloc(n * sizeof *out->y);
        if ((!out->x && !out->u8) || !out->y) {
            glora_dataset_free(out);
            return glora_error(GLORA_ENOMEM, "dataset subset: out of memory");
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (src->u8) memcpy(out->u8 + i * per, src->u8 + (size_t)idx[i] * per, per);
        else memcpy(out->x + i * per, src->x + (size_t)idx[i] * per, per * sizeof(float));
        out->y[i] = src->y[idx[i]];
    }
    if (src->class_names) {
        out->class_names = calloc((size_t)src->num_classes, sizeof *out->class_names);
        int ok = out->class_names != NULL;
        for (int c = 0; ok && c < src->num_classes; c++)
            if (src->class_names[c]) ok = (out->class_names[c] = strdup(src->class_names[c])) != NULL;
        out->num_classes = src->num_classes;   /* what glora_dataset_free walks */
        if (!ok) {
            glora_dataset_free(out);
            return glora_error(GLORA_ENOMEM, "dataset subset: out of memory");
        }
    }
    memcpy(out->cmean, src->cmean, sizeof out->cmean);
    memcpy(out->cstd, src->cstd, sizeof out->cstd);
    out->n = n;
    out->c = src->c;
    out->h = src->h;
    out->w = src->w;
    out->num_classes = src->num_classes;
    out->mean = src->mean;
    out->std = src->std;
    return GLORA_OK;
}

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

int glora_dataset_kshot(const glora_dataset_t *src, int k, uint64_t seed,
                        glora_dataset_t *out) {
    memset(out, 0, sizeof *out);
    if (k < 1) return glora_error(GLORA_EINVAL, "k-shot selection: k = %d, must be at least 1", k);
    if (src->n > UINT32_MAX)
        return glora_error(GLORA_EINVAL, "k-shot selection: %zu examples are too many", src->n);
    int classes = src->num_classes;
    size_t *count = calloc((size_t)classes + 1, sizeof *count);
    size_t *first = calloc((size_t)classes + 1, sizeof *first);
    uint32_t *by_class = malloc((src->n ? src->n : 1) * sizeof *by_class);
    uint32_t *chosen = NULL;
    int rc = GLORA_OK;
    if (!count || !first || !by_class) {
        rc = glora_error(GLORA_ENOMEM, "k-shot selection: out of memory");
        goto done;
    }
    for (size_t i = 0; i < src->n; i++) {
        GLORA_ASSERT(src->y[i] >= 0 && src->y[i] < classes);
        count[src->y[i]]++;
    }
    for (int c = 0; c < classes; c++) {
        if (count[c] < (size_t)k) {
            rc = glora_error(GLORA_EINVAL,
                             "k-shot selection: class %d has %zu examples, %d requested", c,
                             count[c], k);
            goto done;
        }
        first[c + 1] = first[c] + count[c];
    }
    /* Indices grouped by class, each group in ascending order. */
    memset(count, 0, (size_t)classes * sizeof *count);
    for (size_t i = 0; i < src->n; i++) {
        int c = src->y[i];
        by_class[first[c] + count[c]++] = (uint32_t)i;
    }
    size_t total = (size_t)classes * (size_t)k;
    chosen = malloc(total * sizeof *chosen);
    if (!chosen) {
        rc = glora_error(GLORA_ENOMEM, "k-shot selection: out of memory");
        goto done;
    }
    glora_rng_t base;
    glora_rng_seed(&base, seed);
    for (int c = 0; c < classes; c++) {
        glora_rng_t r;
        glora_rng_fork(&base, (uint64_t)c, &r);
        glora_rng_shuffle(&r, by_class + first[c], count[c]);
        memcpy(chosen + (size_t)c * k, by_class + first[c], (size_t)k * sizeof *chosen);
    }
    qsort(chosen, total, sizeof *chosen, cmp_u32);
    rc = glora_dataset_take(src, chosen, total, out);
done:
    free(count);
    free(first);
    free(by_class);
    free(chosen);
    return rc;
}
