/*
 * PIL's resampling of 8-bit images, its mode conversions, and the
 * preprocessing modes built on them (squash, shorter + centre crop, no).
 *
 * The resampling follows what Pillow's Image.resize does on an "L" or "RGB"
 * image (libImaging/Resample.c, read for understanding, written anew): for
 * each output position a window of input pixels weighted by the filter,
 * whose support is widened by the scale when shrinking, the weights
 * normalised to sum 1 in double, then rounded to fixed point with 22
 * fractional bits; the horizontal pass runs first over only the rows the
 * vertical pass needs, and both passes round to 8 bits with a half added and
 * clip to 0..255. Every step that could change a last bit (the order of
 * operations in the filters and the coefficients) is kept as PIL has it, and
 * floating-point contraction into FMAs is disabled here, as Debian's Pillow
 * is built without FMA. Channels are independent, so planes are resized one
 * after the other.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "glora/common.h"
#include "glora/image.h"

#pragma GCC optimize("fp-contract=off")

#define PRECISION_BITS (32 - 8 - 2)

static double bilinear_filter(double x) {
    if (x < 0.0) x = -x;
    if (x < 1.0) return 1.0 - x;
    return 0.0;
}

static double bicubic_filter(double x) {
    const double a = -0.5;
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

/* The weights of one pass: for output position i, input positions
 * [lo[i], lo[i] + len[i]) with fixed-point weights k[i * ksize + j]. */
typedef struct {
    int ksize;
    int *lo, *len;
    int32_t *k;
} coeffs_t;

static void coeffs_free(coeffs_t *c) {
    free(c->lo);
    free(c->len);
    free(c->k);
}

/* Weights taking in_size samples to out_size, as Pillow's precompute_coeffs
 * followed by normalize_coeffs_8bpc. */
static int coeffs_make(coeffs_t *c, int in_size, int out_size, glora_interp_t interp) {
    double (*filter)(double) = interp == GLORA_INTERP_BICUBIC ? bicubic_filter : bilinear_filter;
    double fsupport = interp == GLORA_INTERP_BICUBIC ? 2.0 : 1.0;
    double scale = (double)(float)in_size / out_size;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = fsupport * filterscale;
    int ksize = (int)ceil(support) * 2 + 1;
    double *w = malloc(sizeof *w * (size_t)ksize);
    memset(c, 0, sizeof *c);
    c->ksize = ksize;
    c->lo = malloc(sizeof *c->lo * (size_t)out_size);
    c->len = malloc(sizeof *c->len * (size_t)out_size);
    c->k = calloc((size_t)out_size * (size_t)ksize, sizeof *c->k);
    if (!w || !c->lo || !c->len || !c->k) {
        free(w);
        coeffs_free(c);
        return glora_error(GLORA_ENOMEM, "image resize: out of memory for %d -> %d", in_size,
                           out_size);
    }
    double inv_filterscale = 1.0 / filterscale;
    for (int xx = 0; xx < out_size; xx++) {
        double center = 0.0 + (xx + 0.5) * scale;
        double ww = 0.0;
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in_size) xmax = in_size;
        xmax -= xmin;
        for (int x = 0; x < xmax; x++) {
            w[x] = filter((x + xmin - center + 0.5) * inv_filterscale);
            ww += w[x];
        }
        if (ww != 0.0)
            for (int x = 0; x < xmax; x++) w[x] /= ww;
        int32_t *k = c->k + (size_t)xx * (size_t)ksize;
        for (int x = 0; x < xmax; x++)
            k[x] = w[x] < 0 ? (int32_t)(-0.5 + w[x] * (1 << PRECISION_BITS))
                            : (int32_t)(0.5 + w[x] * (1 << PRECISION_BITS));
        c->lo[xx] = xmin;
        c->len[xx] = xmax;
    }
    free(w);
    return 0;
}

static inline uint8_t clip8(int32_t v) {
    v >>= PRECISION_BITS;   /* arithmetic shift: floor, as Pillow's table index */
    return v < 0 ? 0 : v > 255 ? 255 : (uint8_t)v;
}

/* in is (rows, in_w) from row0 on, out is (rows, out_w). */
static void pass_horizontal(uint8_t *out, const uint8_t *in, int in_w, int row0, int rows,
                            int out_w, const coeffs_t *c) {
    for (int y = 0; y < rows; y++) {
        const uint8_t *src = in + (size_t)(row0 + y) * (size_t)in_w;
        uint8_t *dst = out + (size_t)y * (size_t)out_w;
        for (int xx = 0; xx < out_w; xx++) {
            const int32_t *k = c->k + (size_t)xx * (size_t)c->ksize;
            const uint8_t *s = src + c->lo[xx];
            int32_t ss = 1 << (PRECISION_BITS - 1);
            for (int x = 0; x < c->len[xx]; x++) ss += s[x] * k[x];
            dst[xx] = clip8(ss);
        }
    }
}

/* in is (.., w) with row r of the window at in + (r - shift) * w; out is
 * (out_h, w). The sums are integers, so any order gives Pillow's values;
 * this one walks rows contiguously. */
static void pass_vertical(uint8_t *out, const uint8_t *in, int w, int shift, int out_h,
                          const coeffs_t *c, int32_t *acc) {
    for (int yy = 0; yy < out_h; yy++) {
        const int32_t *k = c->k + (size_t)yy * (size_t)c->ksize;
        for (int x = 0; x < w; x++) acc[x] = 1 << (PRECISION_BITS - 1);
        for (int y = 0; y < c->len[yy]; y++) {
            const uint8_t *src = in + (size_t)(c->lo[yy] - shift + y) * (size_t)w;
            int32_t ky = k[y];
            for (int x = 0; x < w; x++) acc[x] += src[x] * ky;
        }
        uint8_t *dst = out + (size_t)yy * (size_t)w;
        for (int x = 0; x < w; x++) dst[x] = clip8(acc[x]);
    }
}

/* Pillow's nearest: affine scaling with the source position accumulated
 * step by step in double; positions that fall outside are 0. */
static void resize_nearest(glora_image_t *out, const glora_image_t *in, int *xtab) {
    double ax = (double)(float)in->w / out->w, ay = (double)(float)in->h / out->h;
    double xo = 0.0 + ax * 0.5, yo = 0.0 + ay * 0.5;
    for (int x = 0; x < out->w; x++) {
        int xi = xo < 0.0 ? -1 : (int)xo;
        xtab[x] = xi < in->w ? xi : -1;
        xo += ax;
    }
    size_t pin = (size_t)in->h * (size_t)in->w, pout = (size_t)out->h * (size_t)out->w;
    for (int y = 0; y < out->h; y++) {
        int yi = yo < 0.0 ? -1 : (int)yo;
        yo += ay;
        for (int ch = 0; ch < in->c; ch++) {
            uint8_t *dst = out->px + (size_t)ch * pout + (size_t)y * (size_t)out->w;
            const uint8_t *src = in->px + (size_t)ch * pin + (size_t)yi * (size_t)in->w;
            for (int x = 0; x < out->w; x++)
                dst[x] = (yi >= 0 && yi < in->h && xtab[x] >= 0) ? src[xtab[x]] : 0;
        }
    }
}

int glora_image_resize(glora_image_t *out, const glora_image_t *in, int w, int h,
                       glora_interp_t interp) {
    coeffs_t ch_ = {0}, cv = {0};
    uint8_t *tmp = NULL;
    int32_t *acc = NULL;
    int *xtab = NULL;
    int rc = 0;

    memset(out, 0, sizeof *out);
    if (w < 1 || h < 1 || (size_t)w * (size_t)h > GLORA_IMAGE_MAX_PIXELS)
        return glora_error(GLORA_EINVAL, "image resize: bad target size %d x %d", w, h);
    out->px = malloc((size_t)in->c * (size_t)w * (size_t)h);
    if (!out->px) return glora_error(GLORA_ENOMEM, "image resize: out of memory");
    out->c = in->c;
    out->w = w;
    out->h = h;
    size_t pin = (size_t)in->h * (size_t)in->w, pout = (size_t)h * (size_t)w;
    if (w == in->w && h == in->h) {
        memcpy(out->px, in->px, (size_t)in->c * pin);
        return 0;
    }
    if (interp == GLORA_INTERP_NEAREST) {
        xtab = malloc(sizeof *xtab * (size_t)w);
        if (!xtab) {
            rc = glora_error(GLORA_ENOMEM, "image resize: out of memory");
            goto done;
        }
        resize_nearest(out, in, xtab);
        goto done;
    }
    int need_h = w != in->w, need_v = h != in->h;
    if ((rc = coeffs_make(&cv, in->h, h, interp))) goto done;
    int row0 = cv.lo[0], row1 = cv.lo[h - 1] + cv.len[h - 1];
    if (need_h) {
        if ((rc = coeffs_make(&ch_, in->w, w, interp))) goto done;
        tmp = malloc((size_t)(row1 - row0) * (size_t)w);
    }
    acc = malloc(sizeof *acc * (size_t)w);
    if ((need_h && !tmp) || !acc) {
        rc = glora_error(GLORA_ENOMEM, "image resize: out of memory");
        goto done;
    }
    for (int c = 0; c < in->c; c++) {
        const uint8_t *src = in->px + (size_t)c * pin;
        uint8_t *dst = out->px + (size_t)c * pout;
        if (need_h && need_v) {
            pass_horizontal(tmp, src, in->w, row0, row1 - row0, w, &ch_);
            pass_vertical(dst, tmp, w, row0, h, &cv, acc);
        } else if (need_h) {
            pass_horizontal(dst, src, in->w, 0, h, w, &ch_);
        } else {
            pass_vertical(dst, src, w, 0, h, &cv, acc);
        }
    }
done:
    coeffs_free(&ch_);
    coeffs_free(&cv);
    free(tmp);
    free(acc);
    free(xtab);
    if (rc) glora_image_free(out);
    return rc;
}

int glora_image_crop(glora_image_t *out, const glora_image_t *in, int left, int top, int w,
                     int h) {
    memset(out, 0, sizeof *out);
    if (left < 0 || top < 0 || w < 1 || h < 1 || left > in->w - w || top > in->h - h)
        return glora_error(GLORA_EINVAL, "image crop: window %d x %d at (%d, %d) is outside "
                           "the %d x %d image", w, h, left, top, in->w, in->h);
    out->px = malloc((size_t)in->c * (size_t)w * (size_t)h);
    if (!out->px) return glora_error(GLORA_ENOMEM, "image crop: out of memory");
    out->c = in->c;
    out->w = w;
    out->h = h;
    for (int c = 0; c < in->c; c++)
        for (int y = 0; y < h; y++)
            memcpy(out->px + ((size_t)c * (size_t)h + (size_t)y) * (size_t)w,
                   in->px + ((size_t)c * (size_t)in->h + (size_t)(top + y)) * (size_t)in->w +
                       (size_t)left,
                   (size_t)w);
    return 0;
}

int glora_image_convert(glora_image_t *img, int c) {
    if (c != 1 && c != 3)
        return glora_error(GLORA_EINVAL, "image convert: %d channels (1 or 3 expected)", c);
    if (img->c == c) return 0;
    size_t plane = (size_t)img->h * (size_t)img->w;
    if (c == 3) {    /* grey repeated, as convert('RGB') */
        uint8_t *px = realloc(img->px, 3 * plane);
        if (!px) return glora_error(GLORA_ENOMEM, "image convert: out of memory");
        memcpy(px + plane, px, plane);
        memcpy(px + 2 * plane, px, plane);
        img->px = px;
    } else {         /* convert('L'): ITU-R 601-2 luma in 16-bit fixed point */
        const uint8_t *r = img->px, *g = r + plane, *b = g + plane;
        for (size_t i = 0; i < plane; i++)
            img->px[i] = (uint8_t)((r[i] * 19595u + g[i] * 38470u + b[i] * 7471u + 0x8000u) >> 16);
        uint8_t *px = realloc(img->px, plane);
        if (px) img->px = px;
    }
    img->c = c;
    return 0;
}

int glora_image_resize_parse(const char *s) {
    if (!s) return -1;
    if (!strcmp(s, "squash")) return GLORA_RESIZE_SQUASH;
    if (!strcmp(s, "shorter")) return GLORA_RESIZE_SHORTER;
    if (!strcmp(s, "no")) return GLORA_RESIZE_NO;
    return -1;
}

int glora_image_interp_parse(const char *s) {
    if (!s) return -1;
    if (!strcmp(s, "nearest")) return GLORA_INTERP_NEAREST;
    if (!strcmp(s, "bilinear")) return GLORA_INTERP_BILINEAR;
    if (!strcmp(s, "bicubic")) return GLORA_INTERP_BICUBIC;
    return -1;
}

const char *glora_image_resize_name(glora_resize_t r) {
    return r == GLORA_RESIZE_SQUASH ? "squash" : r == GLORA_RESIZE_SHORTER ? "shorter" : "no";
}

const char *glora_image_interp_name(glora_interp_t i) {
    return i == GLORA_INTERP_NEAREST ? "nearest" : i == GLORA_INTERP_BILINEAR ? "bilinear"
                                                                                : "bicubic";
}

int glora_image_prep_check(const glora_image_prep_t *p) {
    if (p->channels != 0 && p->channels != 1 && p->channels != 3)
        return glora_error(GLORA_EINVAL, "image preprocessing 'channels': %d (0, 1 or 3 "
                           "expected)", p->channels);
    if (p->size < 1 || p->size > 16384)
        return glora_error(GLORA_EINVAL, "image preprocessing 'data.size': %d (1..16384 "
                           "expected)", p->size);
    if ((unsigned)p->resize > GLORA_RESIZE_NO)
        return glora_error(GLORA_EINVAL, "image preprocessing 'data.resize': unknown mode");
    if ((unsigned)p->interp > GLORA_INTERP_BICUBIC)
        return glora_error(GLORA_EINVAL, "image preprocessing 'data.interpolation': unknown");
    if (p->resize == GLORA_RESIZE_SHORTER && !(p->crop_pct > 0 && p->crop_pct <= 1))
        return glora_error(GLORA_EINVAL, "image preprocessing 'data.crop_pct': %g (0 < crop_pct "
                           "<= 1 expected)", p->crop_pct);
    return 0;
}

/* The size torchvision's Resize(s) gives an w x h image: the shorter side
 * to s, the longer int(s * long / short) (Python's true division, which
 * for these magnitudes is the correctly rounded double quotient). */
static void shorter_size(int w, int h, int s, int *nw, int *nh) {
    int shrt = w <= h ? w : h, lng = w <= h ? h : w;
    int nl = (int)((double)((long long)s * lng) / shrt);
    *nw = w <= h ? s : nl;
    *nh = w <= h ? nl : s;
}

/* torchvision CenterCrop's offset: int(round((big - small) / 2.0)), where
 * Python rounds halves to even. */
static int centre_offset(int big, int small) {
    double v = (big - small) / 2.0;
    return (int)nearbyint(v);   /* default rounding mode: half to even */
}

int glora_image_preprocess(glora_image_t *out, const glora_image_t *in,
                           const glora_image_prep_t *prep, const char *name) {
    glora_image_t conv = {0}, mid = {0};
    int rc;
    memset(out, 0, sizeof *out);
    if ((rc = glora_image_prep_check(prep))) return rc;
    /* Grey -> RGB commutes with resizing (channels are independent), so
     * resize first and repeat after: a third of the work. RGB -> L does not:
     * it converts first, as PIL users do. */
    const glora_image_t *src = in;
    if (in->c == 3 && prep->channels == 1) {
        conv.c = in->c;
        conv.h = in->h;
        conv.w = in->w;
        conv.px = malloc((size_t)in->c * (size_t)in->h * (size_t)in->w);
        if (!conv.px) return glora_error(GLORA_ENOMEM, "image '%s': out of memory", name);
        memcpy(conv.px, in->px, (size_t)in->c * (size_t)in->h * (size_t)in->w);
        if ((rc = glora_image_convert(&conv, 1))) goto done;
        src = &conv;
    }
    int s = prep->size;
    switch (prep->resize) {
    case GLORA_RESIZE_SQUASH:
        rc = glora_image_resize(out, src, s, s, prep->interp);
        break;
    case GLORA_RESIZE_SHORTER: {
        int scale = (int)floor(s / prep->crop_pct), nw, nh;
        shorter_size(src->w, src->h, scale, &nw, &nh);
        if (nw < s || nh < s) {
            rc = glora_error(GLORA_EINVAL, "image '%s': %d x %d resized to %d x %d is smaller "
                             "than the %d x %d crop", name, src->w, src->h, nw, nh, s, s);
            break;
        }
        if ((rc = glora_image_resize(&mid, src, nw, nh, prep->interp))) break;
        rc = glora_image_crop(out, &mid, centre_offset(nw, s), centre_offset(nh, s), s, s);
        break;
    }
    default:
        if (src->w != s || src->h != s) {
            rc = glora_error(GLORA_EINVAL, "image '%s': %d x %d, but data.resize 'no' needs the "
                             "model's %d x %d", name, src->w, src->h, s, s);
            break;
        }
        rc = glora_image_resize(out, src, s, s, prep->interp);   /* a copy */
        break;
    }
    if (!rc && prep->channels && out->c != prep->channels) rc = glora_image_convert(out, prep->channels);
done:
    glora_image_free(&conv);
    glora_image_free(&mid);
    if (rc) glora_image_free(out);
    return rc;
}

int glora_image_load(glora_image_t *out, const char *path, const glora_image_prep_t *prep) {
    glora_image_t raw;
    memset(out, 0, sizeof *out);
    int rc = glora_image_decode(&raw, path);
    if (rc) return rc;
    rc = glora_image_preprocess(out, &raw, prep, path);
    glora_image_free(&raw);
    return rc;
}

void glora_image_normalize(const uint8_t *u8, size_t n, int c, int h, int w,
                           const float *mean, const float *std, float *out) {
    /* u8 is (n, c, h, w) bytes, out (n, c, h, w) floats; one table per channel
     * holds the IDX loader's expression for all 256 values. */
    size_t plane = (size_t)h * (size_t)w;
    float lut[256];
    for (int ch = 0; ch < c; ch++) {
        for (int v = 0; v < 256; v++) lut[v] = ((float)v / 255.0f - mean[ch]) / std[ch];
        for (size_t i = 0; i < n; i++) {
            const uint8_t *src = u8 + (i * (size_t)c + (size_t)ch) * plane;
            float *dst = out + (i * (size_t)c + (size_t)ch) * plane;
            for (size_t p = 0; p < plane; p++) dst[p] = lut[src[p]];
        }
    }
}
