/*
 * glora-imgdata: writes image-file datasets for scripts/make-image-data and
 * the tests (not installed).
 *
 *   glora-imgdata idx IMAGES LABELS START COUNT DIR SPLIT [QUALITY]
 *       examples [START, START + COUNT) of an IDX pair (COUNT 0: to the end)
 *       as DIR/images/SPLIT/NNNNNN.png (NNNNNN = index within the split; with
 *       QUALITY, .jpg at that JPEG quality) and the list DIR/SPLIT.txt
 *       ("images/SPLIT/NNNNNN.png label" lines): the VTAB-1k layout. The
 *       PNGs hold the IDX bytes exactly.
 *   glora-imgdata synth DIR SPLIT N SIDE CLASSES SEED [QUALITY [HEIGHT]]
 *       N generated SIDE x SIDE RGB PNGs, class i % CLASSES, in the same
 *       layout: a dark background with a bright bar whose orientation and
 *       colour follow the class, moved and noised by the seed. With QUALITY
 *       (1..100) JPEGs at that quality; with HEIGHT, SIDE x HEIGHT images
 *       (SIDE is the width).
 *   glora-imgdata bench FOLDER SIZE THREADS
 *       decodes an image folder, squashed to SIZE x SIZE (bicubic) and
 *       normalised to floats, batch by batch, and prints images per second
 *       (bench/bench_images.py compares it with PIL + a torch DataLoader).
 *   glora-imgdata cached FOLDER SIZE THREADS CACHE_FILE BATCH EPOCHS
 *       the data cost of training epochs on the folder's cached split: the
 *       cache file CACHE_FILE read once, then EPOCHS epochs of
 *       shuffled batches normalised to floats (bench/bench_images.py).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "glora/common.h"
#include "glora/data.h"
#include "util/fileio.h"
#include "glora/image.h"
#include "util/parallel.h"
#include "util/rng.h"

#include <time.h>

static int usage(void) {
    fprintf(stderr, "usage: glora-imgdata idx IMAGES LABELS START COUNT DIR SPLIT [QUALITY]\n"
                    "       glora-imgdata synth DIR SPLIT N SIDE CLASSES SEED [QUALITY [HEIGHT]]\n"
                    "       glora-imgdata bench FOLDER SIZE THREADS\n"
                    "       glora-imgdata cached FOLDER SIZE THREADS CACHE_FILE BATCH EPOCHS\n");
    return 2;
}

static int fail(void) {
    fprintf(stderr, "glora-imgdata: error: %s\n", glora_errmsg());
    return 1;
}

/* Appends one list line; the list text is kept in memory and written once. */
static int add_line(char **text, size_t *n, size_t *cap, const char *line) {
    size_t k = strlen(line);
    if (*n + k + 1 > *cap) {
        size_t nc = (*cap ? *cap * 2 : 4096) + k;
        char *t = realloc(*text, nc);
        if (!t) return glora_error(GLORA_ENOMEM, "list: out of memory");
        *text = t;
        *cap = nc;
    }
    memcpy(*text + *n, line, k + 1);
    *n += k;
    return 0;
}

static int split_dirs(const char *dir, const char *split, char *imgdir, size_t sz) {
    snprintf(imgdir, sz, "%s/images/%s", dir, split);
    return glora_mkdir_p(imgdir);
}

static int cmd_idx(int argc, char **argv) {
    if (argc != 8 && argc != 9) return usage();
    glora_dataset_t ds = {0};
    size_t start = strtoull(argv[4], NULL, 10), count = strtoull(argv[5], NULL, 10);
    const char *dir = argv[6], *split = argv[7];
    int quality = argc == 9 ? atoi(argv[8]) : 0;
    const char *ext = quality ? "jpg" : "png";
    if (glora_idx_load(&ds, argv[2], argv[3], start, count, 0.0f, 1.0f)) return fail();
    char imgdir[4096], path[4200], line[4300], *text = NULL;
    size_t n = 0, cap = 0;
    int rc = split_dirs(dir, split, imgdir, sizeof imgdir);
    size_t per = (size_t)ds.c * (size_t)ds.h * (size_t)ds.w;
    glora_image_t img = {.c = ds.c, .h = ds.h, .w = ds.w, .px = malloc(per)};
    if (!img.px) rc = glora_error(GLORA_ENOMEM, "out of memory");
    for (size_t i = 0; !rc && i < ds.n; i++) {
        /* x = byte / 255 exactly as the loader computed it; back to the byte */
        for (size_t p = 0; p < per; p++) img.px[p] = (uint8_t)lrintf(ds.x[i * per + p] * 255.0f);
        snprintf(path, sizeof path, "%s/%06zu.%s", imgdir, i, ext);
        rc = glora_image_write(path, &img, quality);
        snprintf(line, sizeof line, "images/%s/%06zu.%s %d\n", split, i, ext, ds.y[i]);
        if (!rc) rc = add_line(&text, &n, &cap, line);
    }
    if (!rc) {
        snprintf(path, sizeof path, "%s/%s.txt", dir, split);
        rc = glora_write_atomic(path, text, n);
    }
    free(text);
    glora_image_free(&img);
    glora_dataset_free(&ds);
    return rc ? fail() : 0;
}

static int cmd_synth(int argc, char **argv) {
    if (argc < 8 || argc > 10) return usage();
    const char *dir = argv[2], *split = argv[3];
    int n = atoi(argv[4]), side = atoi(argv[5]), classes = atoi(argv[6]);
    uint64_t seed = strtoull(argv[7], NULL, 10);
    int quality = argc >= 9 ? atoi(argv[8]) : 0, w = side, h = argc == 10 ? atoi(argv[9]) : side;
    const char *ext = quality ? "jpg" : "png";
    if (n < 1 || side < 4 || side > 1024 || h < 4 || h > 1024 || classes < 1 || classes > 8 || quality < 0 ||
        quality > 100)
        return usage();
    char imgdir[4096], path[4200], line[4300], *text = NULL;
    size_t len = 0, cap = 0;
    int rc = split_dirs(dir, split, imgdir, sizeof imgdir);
    glora_image_t img = {.c = 3, .h = h, .w = w, .px = malloc((size_t)3 * w * h)};
    glora_rng_t rng;
    glora_rng_seed(&rng, seed);
    static const uint8_t colour[8][3] = {{250, 60, 40}, {40, 220, 60}, {60, 80, 250},
                                         {240, 230, 40}, {230, 40, 230}, {40, 230, 230},
                                         {250, 250, 250}, {250, 140, 20}};
    if (!img.px) rc = glora_error(GLORA_ENOMEM, "out of memory");
    for (int i = 0; !rc && i < n; i++) {
        int cls = i % classes, off = (int)(glora_rng_uniform(&rng) * side / 2) - side / 4;
        const int across = cls % 2 ? w : h;
        size_t plane = (size_t)w * h;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                /* classes alternate a horizontal / vertical bar */
                int t = (cls % 2 ? x : y) - across / 2 - off;
                int on = t > -across / 8 && t < across / 8;
                for (int c = 0; c < 3; c++) {
                    double v = on ? colour[cls][c] : 20 + 10 * c;
                    v += 25.0 * (glora_rng_uniform(&rng) - 0.5);
                    img.px[(size_t)c * plane + (size_t)y * w + x] =
                        (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
                }
            }
        snprintf(path, sizeof path, "%s/%06d.%s", imgdir, i, ext);
        rc = glora_image_write(path, &img, quality);
        snprintf(line, sizeof line, "images/%s/%06d.%s %d\n", split, i, ext, cls);
        if (!rc) rc = add_line(&text, &len, &cap, line);
    }
    if (!rc) {
        snprintf(path, sizeof path, "%s/%s.txt", dir, split);
        rc = glora_write_atomic(path, text, len);
    }
    free(text);
    glora_image_free(&img);
    return rc ? fail() : 0;
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Decode + preprocess + normalise a folder in chunks of 50 (a batch), as an
 * epoch's data path without a cache. */
static int cmd_bench(int argc, char **argv) {
    if (argc != 5) return usage();
    glora_image_list_t l;
    glora_image_prep_t p = {.channels = 3, .size = atoi(argv[3]), .resize = GLORA_RESIZE_SQUASH,
                            .interp = GLORA_INTERP_BICUBIC, .crop_pct = 1};
    glora_set_threads(atoi(argv[4]) > 0 ? atoi(argv[4]) : 1);
    double t0 = now();
    if (glora_image_folder_read(&l, argv[2])) return fail();
    glora_image_stream_t *s;
    if (glora_image_stream_open(&s, &l, 0, 0, &p, 50)) return fail();
    glora_image_split_t ch = {0};
    const float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
    float *x = malloc(sizeof *x * 50 * 3 * (size_t)p.size * (size_t)p.size);
    double sum = 0;
    size_t n = 0;
    for (;;) {
        if (glora_image_stream_next(s, &ch)) return fail();
        if (ch.n == 0) break;
        glora_image_normalize(ch.px, ch.n, ch.c, ch.h, ch.w, mean, std, x);
        sum += x[0];
        n += ch.n;
    }
    double t = now() - t0;
    printf("{\"impl\": \"glora\", \"images\": %zu, \"seconds\": %.3f, \"images_per_s\": %.1f, "
           "\"threads\": %d, \"check\": %.4f}\n", n, t, (double)n / t, glora_max_threads(), sum);
    free(x);
    glora_image_split_free(&ch);
    glora_image_stream_close(s);
    glora_image_list_free(&l);
    return 0;
}

/* The data cost of training epochs on a cached split: the cache read once
 * (as a stage does when it starts; built first when absent, untimed), then
 * each epoch's batches (a fresh permutation, batches of BATCH, the last
 * partial batch dropped) normalised to floats through glora_dataset_batch,
 * which is all the data work a training epoch does. */
static int cmd_cached(int argc, char **argv) {
    if (argc != 8) return usage();
    glora_image_list_t l;
    glora_image_prep_t p = {.channels = 3, .size = atoi(argv[3]), .resize = GLORA_RESIZE_SQUASH,
                            .interp = GLORA_INTERP_BICUBIC, .crop_pct = 1};
    glora_set_threads(atoi(argv[4]) > 0 ? atoi(argv[4]) : 1);
    const char *cache = argv[5];
    const size_t batch = (size_t)atoi(argv[6]);
    const int epochs = atoi(argv[7]);
    if (batch < 1 || epochs < 1) return usage();
    if (glora_image_folder_read(&l, argv[2])) return fail();
    glora_image_split_t sp = {0};
    int hit = 0;
    if (glora_image_split_load(&sp, &l, 0, 0, &p, cache, &hit)) return fail();   /* build */
    glora_image_split_free(&sp);
    double t0 = now();
    if (glora_image_split_load(&sp, &l, 0, 0, &p, cache, &hit)) return fail();
    double t_load = now() - t0;
    glora_dataset_t ds = {.n = sp.n, .c = sp.c, .h = sp.h, .w = sp.w, .u8 = sp.px, .y = sp.y,
                          .num_classes = sp.num_classes,
                          .cmean = {0.485f, 0.456f, 0.406f}, .cstd = {0.229f, 0.224f, 0.225f}};
    uint32_t *idx = malloc(sizeof *idx * ds.n);
    float *x = malloc(sizeof *x * batch * glora_dataset_example_size(&ds));
    if (!idx || !x) return fail();
    glora_rng_t rng;
    glora_rng_seed(&rng, 42);
    double sum = 0;
    t0 = now();
    for (int e = 0; e < epochs; e++) {
        for (size_t i = 0; i < ds.n; i++) idx[i] = (uint32_t)i;
        for (size_t i = ds.n; i > 1; i--) {   /* Fisher-Yates */
            size_t j = (size_t)(glora_rng_uniform(&rng) * (double)i);
            uint32_t t = idx[i - 1];
            idx[i - 1] = idx[j < i ? j : i - 1];
            idx[j < i ? j : i - 1] = t;
        }
        for (size_t b = 0; b + batch <= ds.n; b += batch) {
            glora_dataset_batch(&ds, idx + b, batch, x);
            sum += x[0];
        }
    }
    double t_epochs = now() - t0;
    printf("{\"impl\": \"glora cached\", \"images\": %zu, \"cache_hit\": %d, \"cache_read_seconds\": %.4f, "
           "\"epochs\": %d, \"seconds_per_epoch\": %.4f, \"threads\": %d, \"check\": %.4f}\n", ds.n, hit,
           t_load, epochs, t_epochs / epochs, glora_max_threads(), sum);
    free(idx);
    free(x);
    glora_dataset_free(&ds);
    glora_image_list_free(&l);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) return usage();
    if (!strcmp(argv[1], "idx")) return cmd_idx(argc, argv);
    if (!strcmp(argv[1], "synth")) return cmd_synth(argc, argv);
    if (!strcmp(argv[1], "bench")) return cmd_bench(argc, argv);
    if (!strcmp(argv[1], "cached")) return cmd_cached(argc, argv);
    return usage();
}
