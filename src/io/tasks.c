/* The transfer suite's tasks, made from MNIST / Fashion-MNIST images (see
 * glora/tasks.h for every transform, byte by byte). */
#include "glora/tasks.h"
#include "glora/common.h"
#include "glora/data.h"
#include "util/fileio.h"
#include "util/rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SIDE 28

static const glora_task_t tasks[] = {
    {"fashion-1k", "natural", "fashion-mnist", "mnist", "identity", 10, 1,
     "Fashion-MNIST as it is (10 kinds of garment)"},
    {"mnist-1k", "natural", "mnist", "fashion-mnist", "identity", 10, 1, "MNIST as it is (10 digits)"},
    {"orientation-1k", "structured", "fashion-mnist", "mnist", "orientation", 8, 1,
     "which of 8 turns (45 k +- 15 degrees) a shrunken garment was given (dSprites orientation)"},
    {"location-1k", "structured", "mnist", "fashion-mnist", "location", 9, 1,
     "which of 9 places a 14x14 digit sits at (dSprites location)"},
    {"counting-1k", "structured", "mnist", "fashion-mnist", "counting", 6, 0,
     "how many (1-6) 8x8 digits the image holds (CLEVR count)"},
    {"size-1k", "structured", "fashion-mnist", "mnist", "size", 5, 1,
     "which of 5 sizes (8-24 px) a garment was shrunk to (CLEVR distance / smallNORB elevation)"},
    {"fashion-inverted-1k", "specialized", "fashion-mnist", "mnist", "inverted", 10, 1,
     "Fashion-MNIST as negatives: dark garments on a white ground"},
    {"fashion-sketch-1k", "specialized", "fashion-mnist", "mnist", "sketch", 10, 1,
     "Fashion-MNIST as edge maps (Sobel magnitude)"},
};
#define N_TASKS (sizeof tasks / sizeof tasks[0])

const glora_task_t *glora_task_at(int i) {
    return i >= 0 && (size_t)i < N_TASKS ? &tasks[i] : NULL;
}

const glora_task_t *glora_task_find(const char *name) {
    for (size_t i = 0; i < N_TASKS; i++)
        if (strcmp(tasks[i].name, name) == 0) return &tasks[i];
    char list[512] = "";
    for (size_t i = 0; i < N_TASKS; i++) {
        strncat(list, i ? ", " : "", sizeof list - strlen(list) - 1);
        strncat(list, tasks[i].name, sizeof list - strlen(list) - 1);
    }
    glora_error(GLORA_EINVAL, "task '%s': no such task (the suite has %s)", name, list);
    return NULL;
}

void glora_images_free(glora_images_t *s) {
    if (!s) return;
    free(s->pixels);
    free(s->labels);
    memset(s, 0, sizeof *s);
}

static int images_alloc(glora_images_t *s, size_t n, int h, int w) {
    memset(s, 0, sizeof *s);
    size_t total;
    if (glora_size_mul(n, (size_t)h * (size_t)w, &total))
        return glora_error(GLORA_EINVAL, "images: %zu images of %dx%d is too many", n, h, w);
    s->pixels = calloc(total ? total : 1, 1);
    s->labels = calloc(n ? n : 1, 1);
    if (!s->pixels || !s->labels) {
        glora_images_free(s);
        return glora_error(GLORA_ENOMEM, "images: out of memory for %zu images of %dx%d", n, h, w);
    }
    s->n = n;
    s->h = h;
    s->w = w;
    return GLORA_OK;
}

/* ---- pixel operations on h x w doubles in [0, 255] --------------------- */

static uint8_t to_byte(double v) {
    v = floor(v + 0.5);
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* Area-average resampling (each output pixel the mean of the source over
 * its footprint, fractional overlaps weighted) of src (sh x sw) to dst
 * (dh x dw), dh <= sh, dw <= sw. scratch holds sh * dw doubles. */
static void area_resize(double *dst, int dh, int dw, const double *src, int sh, int sw, double *scratch) {
    for (int r = 0; r < sh; r++)
        for (int o = 0; o < dw; o++) {
            double lo = (double)o * sw / dw, hi = (double)(o + 1) * sw / dw, s = 0;
            for (int j = (int)floor(lo); j < sw && j < hi; j++)
                s += (fmin(hi, j + 1.0) - fmax(lo, (double)j)) * src[(size_t)r * sw + j];
            scratch[(size_t)r * dw + o] = s / (hi - lo);
        }
    for (int o = 0; o < dh; o++) {
        double lo = (double)o * sh / dh, hi = (double)(o + 1) * sh / dh;
        for (int c = 0; c < dw; c++) {
            double s = 0;
            for (int j = (int)floor(lo); j < sh && j < hi; j++)
                s += (fmin(hi, j + 1.0) - fmax(lo, (double)j)) * scratch[(size_t)j * dw + c];
            dst[(size_t)o * dw + c] = s / (hi - lo);
        }
    }
}

/* Puts the s x s image small into the SIDE x SIDE canvas with its top-left
 * corner at (r0, c0), keeping the larger value where they meet. */
static void paste_max(double *canvas, const double *small, int s, int r0, int c0) {
    for (int r = 0; r < s; r++)
        for (int c = 0; c < s; c++) {
            double *p = &canvas[(size_t)(r0 + r) * SIDE + (c0 + c)];
            double v = small[(size_t)r * s + c];
            if (v > *p) *p = v;
        }
}

static double at_or_zero(const double *src, int r, int c) {
    return (r >= 0 && r < SIDE && c >= 0 && c < SIDE) ? src[(size_t)r * SIDE + c] : 0.0;
}

/* The image turned counter-clockwise (as displayed, row 0 on top) by deg
 * degrees about its centre, bilinear, 0 outside (as glora_dataset_shift's
 * "rotated"). */
static void rotate(double *dst, const double *src, double deg) {
    const double t = deg * M_PI / 180.0, ct = cos(t), st = sin(t), ctr = (SIDE - 1) / 2.0;
    for (int r = 0; r < SIDE; r++)
        for (int c = 0; c < SIDE; c++) {
            double dx = c - ctr, dy = r - ctr;
            double sx = ctr + dx * ct - dy * st, sy = ctr + dx * st + dy * ct;
            double x0 = floor(sx), y0 = floor(sy), fx = sx - x0, fy = sy - y0;
            int ix = (int)x0, iy = (int)y0;
            double top = (1 - fx) * at_or_zero(src, iy, ix) + fx * at_or_zero(src, iy, ix + 1);
            double bot = (1 - fx) * at_or_zero(src, iy + 1, ix) + fx * at_or_zero(src, iy + 1, ix + 1);
            dst[(size_t)r * SIDE + c] = (1 - fy) * top + fy * bot;
        }
}

static void sobel(double *dst, const double *src) {
    double mx = 0;
    for (int r = 0; r < SIDE; r++)
        for (int c = 0; c < SIDE; c++) {
            double p[3][3];
            for (int i = 0; i < 3; i++)
                for (int j = 0; j < 3; j++) {
                    int rr = r + i - 1, cc = c + j - 1;
                    rr = rr < 0 ? 0 : rr >= SIDE ? SIDE - 1 : rr;
                    cc = cc < 0 ? 0 : cc >= SIDE ? SIDE - 1 : cc;
                    p[i][j] = src[(size_t)rr * SIDE + cc];
                }
            double gx = (p[0][2] + 2 * p[1][2] + p[2][2]) - (p[0][0] + 2 * p[1][0] + p[2][0]);
            double gy = (p[2][0] + 2 * p[2][1] + p[2][2]) - (p[0][0] + 2 * p[0][1] + p[0][2]);
            double g = sqrt(gx * gx + gy * gy);
            dst[(size_t)r * SIDE + c] = g;
            if (g > mx) mx = g;
        }
    for (int i = 0; i < SIDE * SIDE; i++) dst[i] = mx > 0 ? dst[i] * 255.0 / mx : 0.0;
}

/* ---- one example ------------------------------------------------------- */

static void load_source(double *dst, const glora_images_t *src, size_t i) {
    const uint8_t *p = src->pixels + i * SIDE * SIDE;
    for (int k = 0; k < SIDE * SIDE; k++) dst[k] = p[k];
}

/* Workspace of one example. */
typedef struct {
    double a[SIDE * SIDE], b[SIDE * SIDE], small[SIDE * SIDE], scratch[SIDE * SIDE];
} work_t;

/* Example i of a structured task with label k into out (SIDE * SIDE). */
static void make_structured(const glora_task_t *t, const glora_images_t *src, size_t i, int k,
                            glora_rng_t *rng, work_t *w, double *out) {
    memset(out, 0, sizeof(double) * SIDE * SIDE);
    if (strcmp(t->kind, "orientation") == 0) {
        load_source(w->a, src, i);
        area_resize(w->small, 20, 20, w->a, SIDE, SIDE, w->scratch);
        memset(w->b, 0, sizeof w->b);
        paste_max(w->b, w->small, 20, 4, 4);
        double u = -15.0 + 30.0 * glora_rng_uniform(rng);
        rotate(out, w->b, 45.0 * k + u);
    } else if (strcmp(t->kind, "location") == 0) {
        load_source(w->a, src, i);
        area_resize(w->small, 14, 14, w->a, SIDE, SIDE, w->scratch);
        int r0 = 7 * (k / 3) + (int)glora_rng_below(rng, 3) - 1;
        int c0 = 7 * (k % 3) + (int)glora_rng_below(rng, 3) - 1;
        r0 = r0 < 0 ? 0 : r0 > 14 ? 14 : r0;
        c0 = c0 < 0 ? 0 : c0 > 14 ? 14 : c0;
        paste_max(out, w->small, 14, r0, c0);
    } else if (strcmp(t->kind, "counting") == 0) {
        uint32_t cells[9];
        for (uint32_t c = 0; c < 9; c++) cells[c] = c;
        glora_rng_shuffle(rng, cells, 9);
        for (int d = 0; d <= k; d++) {
            load_source(w->a, src, (size_t)glora_rng_below(rng, src->n));
            area_resize(w->small, 8, 8, w->a, SIDE, SIDE, w->scratch);
            int row = (int)cells[d] / 3, col = (int)cells[d] % 3;
            int r0 = 9 * row + (int)glora_rng_below(rng, row == 2 ? 3 : 2);
            int c0 = 9 * col + (int)glora_rng_below(rng, col == 2 ? 3 : 2);
            paste_max(out, w->small, 8, r0, c0);
        }
    } else { /* size */
        static const int sizes[5] = {8, 12, 16, 20, 24};
        int s = sizes[k];
        load_source(w->a, src, i);
        area_resize(w->small, s, s, w->a, SIDE, SIDE, w->scratch);
        int r0 = (int)glora_rng_below(rng, (uint64_t)(SIDE - s + 1));
        int c0 = (int)glora_rng_below(rng, (uint64_t)(SIDE - s + 1));
        paste_max(out, w->small, s, r0, c0);
    }
}

static uint64_t fnv1a(const char *s) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
    return h;
}

/* Balanced label of example i: examples K b .. K b + K - 1 take a
 * permutation of 0..K-1 drawn from the block's own stream. */
static int balanced_label(const glora_rng_t *split, size_t i, int K) {
    uint32_t perm[16];
    glora_rng_t r;
    for (int c = 0; c < K; c++) perm[c] = (uint32_t)c;
    glora_rng_fork(split, (1ull << 62) | (uint64_t)(i / (size_t)K), &r);
    glora_rng_shuffle(&r, perm, (size_t)K);
    return (int)perm[i % (size_t)K];
}

int glora_task_make(const glora_task_t *t, const glora_images_t *src, size_t n, int split,
                    glora_images_t *out) {
    memset(out, 0, sizeof *out);
    if (src->h != SIDE || src->w != SIDE)
        return glora_error(GLORA_EINVAL, "task '%s': source images are %dx%d, expected %dx%d", t->name,
                           src->h, src->w, SIDE, SIDE);
    if (src->n == 0) return glora_error(GLORA_EINVAL, "task '%s': no source images", t->name);
    if (t->one_to_one && n > src->n)
        return glora_error(GLORA_EINVAL, "task '%s': %zu examples need as many source images, there are %zu",
                           t->name, n, src->n);
    const int structured = strcmp(t->group, "structured") == 0;
    for (size_t i = 0; !structured && i < src->n && i < n; i++)
        if (src->labels[i] >= t->num_classes)
            return glora_error(GLORA_EFORMAT, "task '%s': source label %d of image %zu is not below %d",
                               t->name, src->labels[i], i, t->num_classes);
    int rc = images_alloc(out, n, SIDE, SIDE);
    if (rc) return rc;
    glora_rng_t base, sp;
    glora_rng_seed(&base, fnv1a(t->name));
    glora_rng_fork(&base, (uint64_t)split, &sp);
    work_t *w = malloc(sizeof *w);
    double *img = malloc(sizeof(double) * SIDE * SIDE);
    if (!w || !img) {
        free(w);
        free(img);
        glora_images_free(out);
        return glora_error(GLORA_ENOMEM, "task '%s': out of memory", t->name);
    }
    for (size_t i = 0; i < n; i++) {
        glora_rng_t r;
        glora_rng_fork(&sp, (uint64_t)i, &r);
        int label;
        if (structured) {
            label = balanced_label(&sp, i, t->num_classes);
            make_structured(t, src, i, label, &r, w, img);
        } else {
            label = src->labels[i];
            load_source(w->a, src, i);
            if (strcmp(t->kind, "inverted") == 0)
                for (int k = 0; k < SIDE * SIDE; k++) img[k] = 255.0 - w->a[k];
            else if (strcmp(t->kind, "sketch") == 0)
                sobel(img, w->a);
            else
                memcpy(img, w->a, sizeof(double) * SIDE * SIDE);
        }
        out->labels[i] = (uint8_t)label;
        for (int k = 0; k < SIDE * SIDE; k++) out->pixels[i * SIDE * SIDE + (size_t)k] = to_byte(img[k]);
    }
    free(w);
    free(img);
    return GLORA_OK;
}

/* ---- files ------------------------------------------------------------- */

int glora_images_load(glora_images_t *out, const char *images_path, const char *labels_path) {
    memset(out, 0, sizeof *out);
    glora_dataset_t ds;
    /* mean 0, std 1: x = byte / 255 exactly as a float, which rounds back. */
    int rc = glora_idx_load(&ds, images_path, labels_path, 0, 0, 0.0f, 1.0f);
    if (rc) return rc;
    if (ds.c != 1 || ds.num_classes > 256) {
        glora_dataset_free(&ds);
        return glora_error(GLORA_EFORMAT, "images '%s': not grey images with byte labels", images_path);
    }
    rc = images_alloc(out, ds.n, ds.h, ds.w);
    if (!rc) {
        const size_t per = (size_t)ds.h * (size_t)ds.w;
        for (size_t i = 0; i < ds.n * per; i++) out->pixels[i] = to_byte((double)ds.x[i] * 255.0);
        for (size_t i = 0; i < ds.n; i++) out->labels[i] = (uint8_t)ds.y[i];
    }
    glora_dataset_free(&ds);
    return rc;
}

static void put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Writes a header then body to path atomically. */
static int write_idx(const char *path, const uint8_t *head, size_t nh, const uint8_t *body, size_t nb) {
    glora_atomic_file_t *f;
    int rc = glora_atomic_open(&f, path);
    if (rc) return rc;
    rc = glora_atomic_write(f, head, nh);
    if (!rc) rc = glora_atomic_write(f, body, nb);
    if (rc) {
        glora_atomic_abort(f);
        return rc;
    }
    return glora_atomic_commit(f);
}

int glora_images_write(const glora_images_t *s, const char *images_path, const char *labels_path) {
    if (s->n > UINT32_MAX || s->h < 1 || s->w < 1)
        return glora_error(GLORA_EINVAL, "images '%s': %zu images of %dx%d cannot be written as IDX",
                           images_path, s->n, s->h, s->w);
    uint8_t head[16];
    put_be32(head, 0x00000803u);
    put_be32(head + 4, (uint32_t)s->n);
    put_be32(head + 8, (uint32_t)s->h);
    put_be32(head + 12, (uint32_t)s->w);
    int rc = write_idx(images_path, head, 16, s->pixels, s->n * (size_t)s->h * (size_t)s->w);
    if (rc) return rc;
    put_be32(head, 0x00000801u);
    put_be32(head + 4, (uint32_t)s->n);
    return write_idx(labels_path, head, 8, s->labels, s->n);
}

/* data_dir/source/base, or the same with .gz, whichever exists (the plain
 * name when neither does, so the loader's message names it). */
static void source_path(char *buf, size_t cap, const char *data_dir, const char *source, const char *base) {
    snprintf(buf, cap, "%s/%s/%s", data_dir, source, base);
    if (access(buf, R_OK) == 0) return;
    snprintf(buf, cap, "%s/%s/%s.gz", data_dir, source, base);
    if (access(buf, R_OK) == 0) return;
    snprintf(buf, cap, "%s/%s/%s", data_dir, source, base);
}

int glora_task_write(const glora_task_t *t, const char *data_dir, const char *out_dir, size_t n_train,
                     size_t n_test) {
    static const char *const split_names[2] = {"train", "t10k"}, *const out_names[2] = {"train", "test"};
    const size_t counts[2] = {n_train, n_test};
    char dir[4096], ip[4200], lp[4200];
    if (snprintf(dir, sizeof dir, "%s/%s", out_dir, t->name) >= (int)sizeof dir)
        return glora_error(GLORA_EINVAL, "task '%s': output path '%s' is too long", t->name, out_dir);
    /* Both splits are made before anything is written: a missing source
     * leaves no folder behind. */
    glora_images_t made[2] = {{0}, {0}};
    int rc = GLORA_OK;
    for (int s = 0; !rc && s < 2; s++) {
        char ib[64], lb[64];
        snprintf(ib, sizeof ib, "%s-images-idx3-ubyte", split_names[s]);
        snprintf(lb, sizeof lb, "%s-labels-idx1-ubyte", split_names[s]);
        source_path(ip, sizeof ip, data_dir, t->source, ib);
        source_path(lp, sizeof lp, data_dir, t->source, lb);
        glora_images_t src;
        rc = glora_images_load(&src, ip, lp);
        if (!rc) rc = glora_task_make(t, &src, counts[s], s, &made[s]);
        glora_images_free(&src);
    }
    if (!rc) rc = glora_mkdir_p(dir);
    for (int s = 0; !rc && s < 2; s++) {
        snprintf(ip, sizeof ip, "%s/%s-images-idx3-ubyte", dir, out_names[s]);
        snprintf(lp, sizeof lp, "%s/%s-labels-idx1-ubyte", dir, out_names[s]);
        rc = glora_images_write(&made[s], ip, lp);
    }
    glora_images_free(&made[0]);
    glora_images_free(&made[1]);
    return rc;
}
