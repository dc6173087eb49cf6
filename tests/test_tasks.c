/* Unit tests of the transfer suite's tasks (glora/tasks.h): each label is
 * checked against what the image shows, measured another way (mass,
 * bounding box, direction of the centre of mass, a hand-worked edge map);
 * the tasks are deterministic and prefix-stable, structured labels
 * balanced, and the IDX files round-trip through the loader. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "glora/common.h"
#include "glora/data.h"
#include "util/fileio.h"
#include "glora/tasks.h"

#include "tmpdir.h"

#define S 28

/* n source images, image i filled by fill(i, pixels), label i % 10. */
static void make_source(glora_images_t *s, size_t n, void (*fill)(size_t, uint8_t *)) {
    s->n = n;
    s->h = s->w = S;
    s->pixels = calloc(n * S * S, 1);
    s->labels = calloc(n, 1);
    assert_non_null(s->pixels);
    assert_non_null(s->labels);
    for (size_t i = 0; i < n; i++) {
        fill(i, s->pixels + i * S * S);
        s->labels[i] = (uint8_t)(i % 10);
    }
}

static void fill_white(size_t i, uint8_t *p) { memset(p, 255, S * S); }

/* A bar from the centre straight up: its centre of mass points at 90 deg. */
static void fill_bar(size_t i, uint8_t *p) {
    for (int r = 1; r < 13; r++)
        for (int c = 13; c < 15; c++) p[r * S + c] = 255;
}

/* Pseudo-random bytes that differ per image. */
static void fill_noise(size_t i, uint8_t *p) {
    uint32_t x = (uint32_t)i * 2654435761u + 12345u;
    for (int k = 0; k < S * S; k++) {
        x = x * 1664525u + 1013904223u;
        p[k] = (uint8_t)(x >> 24);
    }
}

static const glora_task_t *task(const char *name) {
    const glora_task_t *t = glora_task_find(name);
    assert_non_null(t);
    return t;
}

static double mass(const uint8_t *p) {
    double m = 0;
    for (int k = 0; k < S * S; k++) m += p[k];
    return m;
}

/* Bounding box of the non-zero pixels. */
static void bbox(const uint8_t *p, int *r0, int *c0, int *r1, int *c1) {
    *r0 = *c0 = S;
    *r1 = *c1 = -1;
    for (int r = 0; r < S; r++)
        for (int c = 0; c < S; c++)
            if (p[r * S + c]) {
                if (r < *r0) *r0 = r;
                if (c < *c0) *c0 = c;
                if (r > *r1) *r1 = r;
                if (c > *c1) *c1 = c;
            }
}

static void test_list(void **state) {
    (void)state;
    int groups[3] = {0, 0, 0}, n = 0;
    for (; glora_task_at(n); n++) {
        const glora_task_t *t = glora_task_at(n);
        groups[0] += strcmp(t->group, "natural") == 0;
        groups[1] += strcmp(t->group, "structured") == 0;
        groups[2] += strcmp(t->group, "specialized") == 0;
        /* The upstream never saw the task's kind of source image. */
        assert_string_not_equal(t->source, t->upstream);
        assert_ptr_equal(glora_task_find(t->name), t);
    }
    assert_true(n >= 6);
    assert_int_equal(groups[0] + groups[1] + groups[2], n);
    assert_true(groups[0] >= 1 && groups[1] >= 4 && groups[2] >= 1);
    assert_null(glora_task_find("cifar-1k"));
    assert_non_null(strstr(glora_errmsg(), "counting-1k"));
}

/* Same bytes twice; the first n examples do not depend on how many. */
static void test_deterministic(void **state) {
    (void)state;
    glora_images_t src = {0};
    make_source(&src, 64, fill_noise);
    for (int i = 0; glora_task_at(i); i++) {
        const glora_task_t *t = glora_task_at(i);
        glora_images_t a, b, c;
        assert_int_equal(glora_task_make(t, &src, 40, 0, &a), GLORA_OK);
        assert_int_equal(glora_task_make(t, &src, 40, 0, &b), GLORA_OK);
        assert_int_equal(glora_task_make(t, &src, 17, 0, &c), GLORA_OK);
        assert_memory_equal(a.pixels, b.pixels, 40 * S * S);
        assert_memory_equal(a.labels, b.labels, 40);
        assert_memory_equal(a.pixels, c.pixels, 17 * S * S);
        assert_memory_equal(a.labels, c.labels, 17);
        for (size_t k = 0; k < 40; k++) assert_true(a.labels[k] < t->num_classes);
        glora_images_free(&b);
        /* The test split is another stream. */
        if (strcmp(t->group, "structured") == 0) {
            assert_int_equal(glora_task_make(t, &src, 40, 1, &b), GLORA_OK);
            assert_true(memcmp(a.pixels, b.pixels, 40 * S * S) != 0);
            glora_images_free(&b);
        }
        glora_images_free(&a);
        glora_images_free(&c);
    }
    glora_images_free(&src);
}

/* Each block of K examples holds each of the K labels once. */
static void test_balanced(void **state) {
    (void)state;
    glora_images_t src = {0};
    make_source(&src, 200, fill_noise);
    for (int i = 0; glora_task_at(i); i++) {
        const glora_task_t *t = glora_task_at(i);
        if (strcmp(t->group, "structured") != 0) continue;
        const int K = t->num_classes;
        glora_images_t a;
        assert_int_equal(glora_task_make(t, &src, (size_t)K * 20, 0, &a), GLORA_OK);
        for (int b = 0; b < 20; b++) {
            int seen[16] = {0};
            for (int k = 0; k < K; k++) seen[a.labels[b * K + k]]++;
            for (int k = 0; k < K; k++) assert_int_equal(seen[k], 1);
        }
        glora_images_free(&a);
    }
    glora_images_free(&src);
}

/* location: a white 14x14 square whose corner is within one pixel of the
 * label's place (7 * row, 7 * col), and nearer to it than to any other. */
static void test_location(void **state) {
    (void)state;
    glora_images_t src = {0}, a;
    make_source(&src, 90, fill_white);
    assert_int_equal(glora_task_make(task("location-1k"), &src, 90, 0, &a), GLORA_OK);
    for (size_t i = 0; i < a.n; i++) {
        const uint8_t *p = a.pixels + i * S * S;
        int r0, c0, r1, c1, k = a.labels[i];
        bbox(p, &r0, &c0, &r1, &c1);
        assert_int_equal(r1 - r0 + 1, 14);
        assert_int_equal(c1 - c0 + 1, 14);
        assert_true(mass(p) == 14.0 * 14 * 255);
        assert_true(abs(r0 - 7 * (k / 3)) <= 1 && abs(c0 - 7 * (k % 3)) <= 1);
        int best = -1, bd = 1 << 30;
        for (int j = 0; j < 9; j++) {
            int d = (r0 - 7 * (j / 3)) * (r0 - 7 * (j / 3)) + (c0 - 7 * (j % 3)) * (c0 - 7 * (j % 3));
            if (d < bd) { bd = d; best = j; }
        }
        assert_int_equal(best, k);
    }
    glora_images_free(&a);
    glora_images_free(&src);
}

/* counting: label + 1 white 8x8 squares, none overlapping: the mass is
 * exactly (label + 1) * 64 * 255. */
static void test_counting(void **state) {
    (void)state;
    glora_images_t src = {0}, a;
    make_source(&src, 5, fill_white);
    assert_int_equal(glora_task_make(task("counting-1k"), &src, 120, 1, &a), GLORA_OK);
    for (size_t i = 0; i < a.n; i++) {
        const uint8_t *p = a.pixels + i * S * S;
        assert_true(mass(p) == (a.labels[i] + 1) * 64.0 * 255);
        for (int k = 0; k < S * S; k++) assert_true(p[k] == 0 || p[k] == 255);
    }
    glora_images_free(&a);
    glora_images_free(&src);
}

/* size: a white square of side 8 + 4 * label, inside the image. */
static void test_size(void **state) {
    (void)state;
    glora_images_t src = {0}, a;
    make_source(&src, 50, fill_white);
    assert_int_equal(glora_task_make(task("size-1k"), &src, 50, 0, &a), GLORA_OK);
    for (size_t i = 0; i < a.n; i++) {
        const uint8_t *p = a.pixels + i * S * S;
        int r0, c0, r1, c1, s = 8 + 4 * a.labels[i];
        bbox(p, &r0, &c0, &r1, &c1);
        assert_int_equal(r1 - r0 + 1, s);
        assert_int_equal(c1 - c0 + 1, s);
        assert_true(mass(p) == (double)s * s * 255);
    }
    glora_images_free(&a);
    glora_images_free(&src);
}

/* orientation: the bar's centre of mass, seen from the image centre,
 * points at 90 + 45 * label degrees (counter-clockwise, y up), within the
 * +-15 degrees of jitter and a little for the pixel grid. */
static void test_orientation(void **state) {
    (void)state;
    glora_images_t src = {0}, a;
    make_source(&src, 160, fill_bar);
    assert_int_equal(glora_task_make(task("orientation-1k"), &src, 160, 0, &a), GLORA_OK);
    double worst = 0;
    for (size_t i = 0; i < a.n; i++) {
        const uint8_t *p = a.pixels + i * S * S;
        double m = 0, mx = 0, my = 0;
        for (int r = 0; r < S; r++)
            for (int c = 0; c < S; c++) {
                m += p[r * S + c];
                mx += p[r * S + c] * (c - 13.5);
                my += p[r * S + c] * (13.5 - r);
            }
        double deg = atan2(my / m, mx / m) * 180 / M_PI;
        double off = fmod(deg - 90 - 45.0 * a.labels[i] + 720 + 180, 360) - 180;
        if (fabs(off) > worst) worst = fabs(off);
    }
    assert_true(worst < 18);
    assert_true(worst > 5); /* the jitter is there */
    glora_images_free(&a);
    glora_images_free(&src);
}

/* Natural tasks copy; inverted is 255 - p; the labels are the source's. */
static void test_pixelwise(void **state) {
    (void)state;
    glora_images_t src = {0}, a, b;
    make_source(&src, 30, fill_noise);
    assert_int_equal(glora_task_make(task("fashion-1k"), &src, 30, 0, &a), GLORA_OK);
    assert_int_equal(glora_task_make(task("fashion-inverted-1k"), &src, 30, 0, &b), GLORA_OK);
    assert_memory_equal(a.pixels, src.pixels, 30 * S * S);
    assert_memory_equal(a.labels, src.labels, 30);
    assert_memory_equal(b.labels, src.labels, 30);
    for (size_t k = 0; k < 30 * S * S; k++) assert_int_equal(b.pixels[k], 255 - src.pixels[k]);
    glora_images_free(&a);
    glora_images_free(&b);
    glora_images_free(&src);
}

/* sketch of a vertical step (columns 0..13 black, 14.. white): Sobel gx is
 * 4 * 255 on columns 13 and 14 and 0 elsewhere, so after scaling those two
 * columns are 255 and the rest 0; a flat image gives all 0. */
static void fill_step(size_t i, uint8_t *p) {
    for (int r = 0; r < S; r++)
        for (int c = 0; c < S; c++) p[r * S + c] = i == 0 && c >= 14 ? 255 : i == 1 ? 77 : 0;
}

static void test_sketch(void **state) {
    (void)state;
    glora_images_t src = {0}, a;
    make_source(&src, 2, fill_step);
    assert_int_equal(glora_task_make(task("fashion-sketch-1k"), &src, 2, 0, &a), GLORA_OK);
    for (int r = 0; r < S; r++)
        for (int c = 0; c < S; c++) {
            assert_int_equal(a.pixels[r * S + c], c == 13 || c == 14 ? 255 : 0);
            assert_int_equal(a.pixels[S * S + r * S + c], 0);
        }
    glora_images_free(&a);
    glora_images_free(&src);
}

static void test_errors(void **state) {
    (void)state;
    glora_images_t src = {0}, a;
    make_source(&src, 10, fill_noise);
    assert_int_equal(glora_task_make(task("size-1k"), &src, 11, 0, &a), GLORA_EINVAL);
    assert_non_null(strstr(glora_errmsg(), "size-1k"));
    assert_null(a.pixels);
    /* counting draws with replacement: any n. */
    assert_int_equal(glora_task_make(task("counting-1k"), &src, 50, 0, &a), GLORA_OK);
    glora_images_free(&a);
    src.labels[3] = 12;
    assert_int_equal(glora_task_make(task("mnist-1k"), &src, 10, 0, &a), GLORA_EFORMAT);
    src.labels[3] = 3;
    src.h = src.w = 14;
    src.n = 40;
    assert_int_equal(glora_task_make(task("mnist-1k"), &src, 10, 0, &a), GLORA_EINVAL);
    assert_non_null(strstr(glora_errmsg(), "14x14"));
    src.n = 10;
    src.h = src.w = S;
    glora_images_free(&src);
    /* A missing source directory names the file it looked for. */
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/nowhere", tmpdir);
    assert_int_not_equal(glora_task_write(task("mnist-1k"), dir, dir, 10, 10), GLORA_OK);
    assert_non_null(strstr(glora_errmsg(), "nowhere/mnist/train-"));
    /* ... and leaves no folder behind. */
    assert_int_not_equal(access(dir, F_OK), 0);
}

/* IDX written by glora_images_write reads back through both loaders. */
static void test_idx_roundtrip(void **state) {
    (void)state;
    glora_images_t src = {0}, back;
    make_source(&src, 12, fill_noise);
    char ip[4096], lp[4096];
    snprintf(ip, sizeof ip, "%s/t-images", tmpdir);
    snprintf(lp, sizeof lp, "%s/t-labels", tmpdir);
    assert_int_equal(glora_images_write(&src, ip, lp), GLORA_OK);
    assert_int_equal(glora_images_load(&back, ip, lp), GLORA_OK);
    assert_int_equal(back.n, 12);
    assert_memory_equal(back.pixels, src.pixels, 12 * S * S);
    assert_memory_equal(back.labels, src.labels, 12);
    glora_dataset_t ds;
    assert_int_equal(glora_idx_load(&ds, ip, lp, 2, 3, 0.5f, 0.5f), GLORA_OK);
    assert_int_equal(ds.n, 3);
    for (size_t k = 0; k < 3 * S * S; k++)
        assert_float_equal(ds.x[k], (src.pixels[2 * S * S + k] / 255.0 - 0.5) / 0.5, 1e-6);
    assert_int_equal(ds.y[1], src.labels[3]);
    glora_dataset_free(&ds);
    glora_images_free(&back);
    glora_images_free(&src);
}

/* glora_task_write on a data directory laid out as scripts/get-data does
 * (gzipped names are found too). */
static void test_write_real(void **state) {
    (void)state;
    const char *sys = "/usr/share/datasets/fashion-mnist";
    char ip[4600], lp[4600], d[4200], link[4400];
    snprintf(ip, sizeof ip, "%s/t10k-images-idx3-ubyte.gz", sys);
    if (access(ip, R_OK) != 0) skip();
    snprintf(d, sizeof d, "%s/data/fashion-mnist", tmpdir);
    assert_int_equal(glora_mkdir_p(d), GLORA_OK);
    const char *names[4] = {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                            "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"};
    for (int k = 0; k < 4; k++) {
        snprintf(ip, sizeof ip, "%s/%s", sys, names[k]);
        snprintf(link, sizeof link, "%s/%s", d, names[k]);
        assert_int_equal(symlink(ip, link), 0);
    }
    snprintf(d, sizeof d, "%s/data", tmpdir);
    snprintf(link, sizeof link, "%s/suite", tmpdir);
    assert_int_equal(glora_task_write(task("fashion-inverted-1k"), d, link, 100, 50), GLORA_OK);
    glora_images_t t, src;
    snprintf(ip, sizeof ip, "%s/fashion-inverted-1k/test-images-idx3-ubyte", link);
    snprintf(lp, sizeof lp, "%s/fashion-inverted-1k/test-labels-idx1-ubyte", link);
    assert_int_equal(glora_images_load(&t, ip, lp), GLORA_OK);
    snprintf(ip, sizeof ip, "%s/t10k-images-idx3-ubyte.gz", sys);
    snprintf(lp, sizeof lp, "%s/t10k-labels-idx1-ubyte.gz", sys);
    assert_int_equal(glora_images_load(&src, ip, lp), GLORA_OK);
    assert_int_equal(t.n, 50);
    for (size_t k = 0; k < 50 * S * S; k++) assert_int_equal(t.pixels[k], 255 - src.pixels[k]);
    assert_memory_equal(t.labels, src.labels, 50);
    glora_images_free(&t);
    glora_images_free(&src);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_list),        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_balanced),    cmocka_unit_test(test_location),
        cmocka_unit_test(test_counting),    cmocka_unit_test(test_size),
        cmocka_unit_test(test_orientation), cmocka_unit_test(test_pixelwise),
        cmocka_unit_test(test_sketch),      cmocka_unit_test(test_errors),
        cmocka_unit_test(test_idx_roundtrip), cmocka_unit_test(test_write_real),
    };
    return cmocka_run_group_tests(tests, tmpdir_setup, tmpdir_teardown);
}
