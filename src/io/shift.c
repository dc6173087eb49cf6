/* Deterministic domain-shifted copies of a dataset (see glora/data.h). */
#include "glora/data.h"
#include "glora/common.h"
#include "util/rng.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define ROTATION_DEGREES 30.0
#define NOISE_SIGMA 0.3

/* Each transform maps one channel of one example, pixels in [0, 1], from
 * src (h x w) to dst (h x w); scratch holds h * w doubles. */
typedef void (*shift_fn)(float *dst, const float *src, int h, int w, glora_rng_t *rng,
                         double *scratch);

static void shift_clean(float *dst, const float *src, int h, int w, glora_rng_t *rng,
                          double *scratch) {
    memcpy(dst, src, (size_t)h * (size_t)w * sizeof *dst);
}

static void shift_inverted(float *dst, const float *src, int h, int w, glora_rng_t *rng,
                          double *scratch) {
    for (size_t i = 0; i < (size_t)h * (size_t)w; i++) dst[i] = 1.0f - src[i];
}

/* Pixel (r, c) of src, or 0 outside it. */
static inline double pixel_or_zero(const float *src, int h, int w, int r, int c) {
    return (r >= 0 && r < h && c >= 0 && c < w) ? src[(size_t)r * w + c] : 0.0;
}

/* Output pixel at offset (dx, dy) from the centre (y pointing down) samples
 * the input at (dx cos t - dy sin t, dx sin t + dy cos t): the content turns
 * counter-clockwise on screen by t. */
static void shift_rotated(float *dst, const float *src, int h, int w, glora_rng_t *rng,
                          double *scratch) {
    const double t = ROTATION_DEGREES * M_PI / 180.0, ct = cos(t), st = sin(t);
    const double cy = (h - 1) / 2.0, cx = (w - 1) / 2.0;
    for (int r = 0; r < h; r++) {
        for (int c = 0; c < w; c++) {
            double dx = c - cx, dy = r - cy;
            double sx = cx + dx * ct - dy * st, sy = cy + dx * st + dy * ct;
            double x0 = floor(sx), y0 = floor(sy), fx = sx - x0, fy = sy - y0;
            int ix = (int)x0, iy = (int)y0;
            double top = (1 - fx) * pixel_or_zero(src, h, w, iy, ix) +
                         fx * pixel_or_zero(src, h, w, iy, ix + 1);
            double bottom = (1 - fx) * pixel_or_zero(src, h, w, iy + 1, ix) +
                            fx * pixel_or_zero(src, h, w, iy + 1, ix + 1);
            dst[(size_t)r * w + c] = (float)((1 - fy) * top + fy * bottom);
        }
    }
}

static void shift_noisy(float *dst, const float *src, int h, int w, glora_rng_t *rng,
                          double *scratch) {
    for (size_t i = 0; i < (size_t)h * (size_t)w; i++) {
        double p = src[i] + NOISE_SIGMA * glora_rng_normal(rng);
        dst[i] = (float)(p < 0 ? 0 : p > 1 ? 1 : p);
    }
}

static inline int clamp_index(int i, int n) { return i < 0 ? 0 : i >= n ? n - 1 : i; }

/* Separable 5-tap binomial filter, edges repeated outward. */
static void shift_blurred(float *dst, const float *src, int h, int w, glora_rng_t *rng,
                          double *scratch) {
    static const double k[5] = {1 / 16.0, 4 / 16.0, 6 / 16.0, 4 / 16.0, 1 / 16.0};
    double *rows = scratch;
    for (int r = 0; r < h; r++)
        for (int c = 0; c < w; c++) {
            double s = 0;
            for (int j = 0; j < 5; j++) s += k[j] * src[(size_t)r * w + clamp_index(c + j - 2, w)];
            rows[(size_t)r * w + c] = s;
        }
    for (int r = 0; r < h; r++)
        for (int c = 0; c < w; c++) {
            double s = 0;
            for (int j = 0; j < 5; j++) s += k[j] * rows[(size_t)clamp_index(r + j - 2, h) * w + c];
            dst[(size_t)r * w + c] = (float)s;
        }
}

static const struct {
    const char *name;
    shift_fn fn;
} kinds[] = {
    {"clean", shift_clean},     {"inverted", shift_inverted}, {"rotated", shift_rotated},
    {"noisy", shift_noisy},     {"blurred", shift_blurred},
};
#define NKINDS (int)(sizeof kinds / sizeof *kinds)

const char *glora_dataset_shift_kind(int i) {
    return i >= 0 && i < NKINDS ? kinds[i].name : NULL;
}

int glora_dataset_shift(const glora_dataset_t *src, const char *kind, uint64_t seed,
                        glora_dataset_t *out) {
    memset(out, 0, sizeof *out);
    int which = -1;
    for (int i = 0; i < NKINDS; i++)
        if (strcmp(kind, kinds[i].name) == 0) which = i;
    if (which < 0) {
        int rc = glora_error(GLORA_EINVAL, "domain shift '%s': unknown kind", kind);
        glora_error_hint("known kinds: clean, inverted, rotated, noisy, blurred");
        return rc;
    }
    if (src->n > 0 && (src->h < 1 || src->w < 1 || src->c < 1))
        return glora_error(GLORA_EINVAL, "domain shift '%s': empty images", kind);
    /* A copy of everything (labels, sizes, normalisation); x is overwritten. */
    uint32_t *all = malloc((src->n ? src->n : 1) * sizeof *all);
    if (!all) return glora_error(GLORA_ENOMEM, "domain shift '%s': out of memory", kind);
    for (size_t i = 0; i < src->n; i++) all[i] = (uint32_t)i;
    int rc = glora_dataset_take(src, all, src->n, out);
    free(all);
    if (rc || kinds[which].fn == shift_clean) return rc; /* clean: exact copy */

    const size_t plane = (size_t)src->h * (size_t)src->w;
    const size_t per = plane * (size_t)src->c;
    const float mean = src->mean, std = src->std;
    glora_rng_t base;
    glora_rng_seed(&base, seed);
    int failed = 0;
#pragma omp parallel
    {
        float *pin = malloc(2 * plane * sizeof *pin);
        double *scratch = malloc(plane * sizeof *scratch);
        if (!pin || !scratch) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(static)
        for (size_t i = 0; i < src->n; i++) {
            if (!pin || !scratch) continue;
            glora_rng_t rng;
            glora_rng_fork(&base, (uint64_t)i, &rng);
            float *pout = pin + plane;
            for (int ch = 0; ch < src->c; ch++) {
                const float *x = src->x + i * per + (size_t)ch * plane;
                for (size_t j = 0; j < plane; j++) pin[j] = x[j] * std + mean;
                kinds[which].fn(pout, pin, src->h, src->w, &rng, scratch);
                float *y = out->x + i * per + (size_t)ch * plane;
                for (size_t j = 0; j < plane; j++) y[j] = (pout[j] - mean) / std;
            }
        }
        free(pin);
        free(scratch);
    }
    if (failed) {
        glora_dataset_free(out);
        return glora_error(GLORA_ENOMEM, "domain shift '%s': out of memory", kind);
    }
    return GLORA_OK;
}
