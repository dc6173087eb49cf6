/* Unit tests of the IDX loader (plain and gzipped, every rejection naming the
 * file), subsets, k-shot selection and the domain shifts on tiny images with
 * values worked out by hand. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "glora/common.h"
#include "glora/data.h"
#include "util/fileio.h"

#include "tmpdir.h"

static void put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void write_bytes(const char *path, const uint8_t *b, size_t n, int gz) {
    if (gz) {
        gzFile f = gzopen(path, "wb");
        assert_non_null(f);
        assert_int_equal(gzwrite(f, b, (unsigned)n), (int)n);
        assert_int_equal(gzclose(f), Z_OK);
    } else {
        FILE *fp = fopen(path, "wb");
        assert_non_null(fp);
        assert_int_equal(fwrite(b, 1, n, fp), n);
        assert_int_equal(fclose(fp), 0);
    }
}

/* An IDX images file of n images rows x cols, pixel (i, k) = pix(i, k). */
static size_t make_images(uint8_t *buf, uint32_t magic, uint32_t n, uint32_t rows,
                          uint32_t cols) {
    put_be32(buf, magic);
    put_be32(buf + 4, n);
    put_be32(buf + 8, rows);
    put_be32(buf + 12, cols);
    for (uint32_t i = 0; i < n * rows * cols; i++) buf[16 + i] = (uint8_t)(i * 7 % 256);
    return 16 + (size_t)n * rows * cols;
}

static size_t make_labels(uint8_t *buf, uint32_t n, const uint8_t *labels) {
    put_be32(buf, 0x00000801);
    put_be32(buf + 4, n);
    memcpy(buf + 8, labels, n);
    return 8 + n;
}

static void path_of(char *buf, size_t cap, const char *name) {
    snprintf(buf, cap, "%s/%s", tmpdir, name);
}

static const uint8_t five_labels[5] = {0, 3, 1, 3, 2};

static void test_load(void **state) {
    (void)state;
    uint8_t img[16 + 5 * 6], lab[8 + 5];
    size_t ni = make_images(img, 0x00000803, 5, 2, 3), nl = make_labels(lab, 5, five_labels);
    for (int gz = 0; gz < 2; gz++) {
        char ip[256], lp[256];
        path_of(ip, sizeof ip, gz ? "img.gz" : "img");
        path_of(lp, sizeof lp, gz ? "lab.gz" : "lab");
        write_bytes(ip, img, ni, gz);
        write_bytes(lp, lab, nl, gz);
        glora_dataset_t ds;
        assert_int_equal(glora_idx_load(&ds, ip, lp, 1, 3, 0.5f, 0.5f), GLORA_OK);
        assert_int_equal(ds.n, 3);
        assert_int_equal(ds.c, 1);
        assert_int_equal(ds.h, 2);
        assert_int_equal(ds.w, 3);
        assert_int_equal(ds.num_classes, 4); /* max label of the whole file + 1 */
        assert_true(ds.mean == 0.5f && ds.std == 0.5f);
        for (int i = 0; i < 3; i++) {
            assert_int_equal(ds.y[i], five_labels[1 + i]);
            for (int k = 0; k < 6; k++) {
                int byte = ((1 + i) * 6 + k) * 7 % 256;
                assert_float_equal(ds.x[i * 6 + k], (byte / 255.0 - 0.5) / 0.5, 1e-6);
            }
        }
        glora_dataset_free(&ds);
        glora_dataset_free(&ds); /* zeroed: freeing again is harmless */
        /* count 0: up to the end. */
        assert_int_equal(glora_idx_load(&ds, ip, lp, 2, 0, 0.0f, 1.0f), GLORA_OK);
        assert_int_equal(ds.n, 3);
        assert_int_equal(ds.y[2], 2);
        assert_float_equal(ds.x[17], ((4 * 6 + 5) * 7 % 256) / 255.0, 1e-6);
        glora_dataset_free(&ds);
    }
    glora_dataset_free(NULL);
}

/* Loads and expects failure with each listed piece in the message. */
static void expect_fail(const char *ip, const char *lp, size_t start, size_t count,
                        const char *file, const char *why) {
    glora_dataset_t ds;
    memset(&ds, 0xab, sizeof ds);
    int rc = glora_idx_load(&ds, ip, lp, start, count, 0.5f, 0.5f);
    if (rc >= 0 || !strstr(glora_errmsg(), file) || !strstr(glora_errmsg(), why))
        fail_msg("%s + %s: status %d, message \"%s\" (wanted '%s' and \"%s\")", ip, lp, rc,
                 glora_errmsg(), file, why);
    assert_int_equal(ds.n, 0);
    assert_null(ds.x);
    assert_null(ds.y);
}

static void test_load_errors(void **state) {
    (void)state;
    uint8_t img[16 + 5 * 6], lab[8 + 5], bad[64];
    size_t ni = make_images(img, 0x00000803, 5, 2, 3), nl = make_labels(lab, 5, five_labels);
    char ip[256], lp[256], gp[256], xp[256];
    path_of(ip, sizeof ip, "e-img");
    path_of(lp, sizeof lp, "e-lab");
    path_of(gp, sizeof gp, "e-img.gz");
    path_of(xp, sizeof xp, "e-bad");
    write_bytes(ip, img, ni, 0);
    write_bytes(lp, lab, nl, 0);
    write_bytes(gp, img, ni, 1);

    /* Range. */
    expect_fail(ip, lp, 5, 0, ip, "examples [5, 5) requested, it holds 5");
    expect_fail(ip, lp, 3, 3, ip, "examples [3, 6) requested");
    expect_fail(gp, lp, 0, 6, gp, "requested");
    /* Magic: files swapped, and plain garbage. */
    expect_fail(lp, ip, 0, 0, ip, "magic 0x00000803, expected 0x00000801");
    assert_non_null(strstr(glora_errhint(), "swapped"));
    expect_fail(lp, lp, 0, 0, lp, "magic 0x00000801, expected 0x00000803");
    memcpy(bad, img, ni);
    bad[2] = 0x0d; /* float data */
    write_bytes(xp, bad, ni, 0);
    expect_fail(xp, lp, 0, 0, xp, "magic 0x00000d03");
    /* Truncated and trailing, plain. */
    write_bytes(xp, img, ni - 1, 0);
    expect_fail(xp, lp, 0, 0, xp, "truncated");
    write_bytes(xp, img, 10, 0);
    expect_fail(xp, lp, 0, 0, xp, "truncated");
    memcpy(bad, img, ni);
    bad[ni] = 0;
    write_bytes(xp, bad, ni + 1, 0);
    expect_fail(xp, lp, 0, 0, xp, "trailing");
    /* Truncated and trailing, gzipped: content short of the header, and a
     * gzip stream cut in the middle. */
    write_bytes(xp, img, ni - 6, 1);
    expect_fail(xp, lp, 0, 1, xp, "truncated");
    write_bytes(xp, bad, ni + 1, 1);
    expect_fail(xp, lp, 0, 1, xp, "trailing");
    char *gzdata;
    size_t gzn;
    assert_int_equal(glora_read_file(gp, 1 << 20, &gzdata, &gzn), GLORA_OK);
    write_bytes(xp, (const uint8_t *)gzdata, gzn - 10, 0);
    expect_fail(xp, lp, 0, 1, xp, "truncated");
    /* A flipped bit in the CRC: zlib notices at the end of the stream. */
    gzdata[gzn - 6] ^= 0x01;
    write_bytes(xp, (const uint8_t *)gzdata, gzn, 0);
    expect_fail(xp, lp, 0, 1, xp, "corrupt");
    free(gzdata);
    /* Count mismatch names both files. */
    uint8_t lab4[8 + 4];
    size_t nl4 = make_labels(lab4, 4, five_labels);
    write_bytes(xp, lab4, nl4, 0);
    expect_fail(ip, xp, 0, 0, xp, "5 images but 4 labels");
    expect_fail(ip, xp, 0, 0, ip, "5 images but 4 labels");
    /* Bad image sizes and an empty file. */
    memcpy(bad, img, 16);
    put_be32(bad + 8, 0);
    write_bytes(xp, bad, 16, 0);
    expect_fail(xp, lp, 0, 0, xp, "image size 0x3");
    write_bytes(xp, bad, 0, 0);
    expect_fail(xp, lp, 0, 0, xp, "truncated");
    /* A gzipped header announcing far more than the compressed file may
     * hold: refused before any allocation. */
    make_images(bad, 0x00000803, 5, 2, 3);
    put_be32(bad + 4, 0xffffffffu);
    write_bytes(xp, bad, 16, 1);
    expect_fail(xp, lp, 0, 1, xp, "more than");
    /* Missing file, bad normalisation. */
    expect_fail("/nonexistent/img", lp, 0, 0, "/nonexistent/img", "cannot open");
    glora_dataset_t ds;
    assert_int_equal(glora_idx_load(&ds, ip, lp, 0, 0, 0.5f, 0.0f), GLORA_EINVAL);
    assert_non_null(strstr(glora_errmsg(), ip));
}

/* A dataset of n 1x2x2 examples whose first value is the example's index and
 * whose label is labels[i]. */
static void make_dataset(glora_dataset_t *ds, size_t n, const int *labels, int classes) {
    memset(ds, 0, sizeof *ds);
    ds->n = n;
    ds->c = 1;
    ds->h = 2;
    ds->w = 2;
    ds->num_classes = classes;
    ds->mean = 0;
    ds->std = 1;
    ds->x = calloc(n * 4, sizeof(float));
    ds->y = calloc(n, sizeof(int));
    assert_non_null(ds->x);
    assert_non_null(ds->y);
    for (size_t i = 0; i < n; i++) {
        ds->x[i * 4] = (float)i;
        ds->y[i] = labels[i];
    }
}

static void test_take_and_kshot(void **state) {
    (void)state;
    /* 3 classes with 5, 4 and 6 examples, interleaved. */
    const int labels[15] = {0, 1, 2, 2, 0, 1, 2, 0, 2, 1, 0, 2, 1, 0, 2};
    glora_dataset_t src, out;
    make_dataset(&src, 15, labels, 3);

    const uint32_t idx[4] = {14, 2, 2, 0};
    assert_int_equal(glora_dataset_take(&src, idx, 4, &out), GLORA_OK);
    assert_int_equal(out.n, 4);
    assert_true(out.x[0] == 14.0f && out.x[4] == 2.0f && out.x[8] == 2.0f && out.x[12] == 0.0f);
    assert_int_equal(out.y[0], 2);
    assert_int_equal(out.num_classes, 3);
    assert_null(out.class_names);
    glora_dataset_free(&out);
    /* An image folder's class names travel with the subset, as copies. */
    src.class_names = calloc(3, sizeof *src.class_names);
    assert_non_null(src.class_names);
    src.class_names[0] = strdup("cat");
    src.class_names[2] = strdup("dog");   /* [1] stays NULL */
    assert_int_equal(glora_dataset_take(&src, idx, 4, &out), GLORA_OK);
    assert_non_null(out.class_names);
    assert_true(out.class_names != src.class_names && out.class_names[0] != src.class_names[0]);
    assert_string_equal(out.class_names[0], "cat");
    assert_null(out.class_names[1]);
    assert_string_equal(out.class_names[2], "dog");
    glora_dataset_free(&out);
    assert_string_equal(src.class_names[2], "dog");
    const uint32_t bad[1] = {15};
    assert_int_equal(glora_dataset_take(&src, bad, 1, &out), GLORA_EINVAL);
    assert_non_null(strstr(glora_errmsg(), "index 15"));

    glora_dataset_t k1, k2, k2b, k4;
    assert_int_equal(glora_dataset_kshot(&src, 2, 7, &k2), GLORA_OK);
    assert_int_equal(k2.n, 6);
    int per_class[3] = {0};
    for (size_t i = 0; i < k2.n; i++) {
        per_class[k2.y[i]]++;
        assert_int_equal(k2.y[i], labels[(int)k2.x[i * 4]]); /* label travels with image */
        if (i) assert_true(k2.x[i * 4] > k2.x[(i - 1) * 4]); /* ascending source order */
    }
    assert_true(per_class[0] == 2 && per_class[1] == 2 && per_class[2] == 2);
    /* Same seed, same selection; 1-shot inside 2-shot inside 4-shot. */
    assert_int_equal(glora_dataset_kshot(&src, 2, 7, &k2b), GLORA_OK);
    assert_memory_equal(k2.x, k2b.x, k2.n * 4 * sizeof(float));
    assert_int_equal(glora_dataset_kshot(&src, 1, 7, &k1), GLORA_OK);
    assert_int_equal(glora_dataset_kshot(&src, 4, 7, &k4), GLORA_OK);
    assert_int_equal(k4.n, 12);
    for (size_t i = 0; i < k1.n; i++) {
        int found = 0;
        for (size_t j = 0; j < k2.n; j++) found |= k1.x[i * 4] == k2.x[j * 4];
        assert_true(found);
    }
    for (size_t i = 0; i < k2.n; i++) {
        int found = 0;
        for (size_t j = 0; j < k4.n; j++) found |= k2.x[i * 4] == k4.x[j * 4];
        assert_true(found);
    }
    /* Some other seed draws another set. */
    int differs = 0;
    for (uint64_t seed = 0; seed < 8 && !differs; seed++) {
        glora_dataset_t other;
        assert_int_equal(glora_dataset_kshot(&src, 2, seed, &other), GLORA_OK);
        differs = memcmp(other.x, k2.x, k2.n * 4 * sizeof(float)) != 0;
        glora_dataset_free(&other);
    }
    assert_true(differs);
    /* Class 1 has only 4 examples. */
    assert_int_equal(glora_dataset_kshot(&src, 5, 7, &out), GLORA_EINVAL);
    assert_non_null(strstr(glora_errmsg(), "class 1 has 4 examples, 5 requested"));
    assert_null(out.x);
    assert_int_equal(glora_dataset_kshot(&src, 0, 7, &out), GLORA_EINVAL);
    glora_dataset_free(&k1);
    glora_dataset_free(&k2);
    glora_dataset_free(&k2b);
    glora_dataset_free(&k4);
    glora_dataset_free(&src);
}

/* One h x w single-channel image with pixel values p, normalised with mean
 * and std 0.5 like the protocol. */
static void make_image(glora_dataset_t *ds, int h, int w, const double *p) {
    memset(ds, 0, sizeof *ds);
    ds->n = 1;
    ds->c = 1;
    ds->h = h;
    ds->w = w;
    ds->num_classes = 10;
    ds->mean = 0.5f;
    ds->std = 0.5f;
    ds->x = malloc((size_t)h * w * sizeof(float));
    ds->y = calloc(1, sizeof(int));
    for (int i = 0; i < h * w; i++) ds->x[i] = (float)((p[i] - 0.5) / 0.5);
}

static double pixel(const glora_dataset_t *ds, size_t i) { return ds->x[i] * 0.5 + 0.5; }

static void test_shifts(void **state) {
    (void)state;
    glora_dataset_t src, out;
    /* 3x3 ramp p[r][c] = (3r + c) / 8. */
    double ramp[9];
    for (int i = 0; i < 9; i++) ramp[i] = i / 8.0;
    make_image(&src, 3, 3, ramp);

    assert_int_equal(glora_dataset_shift(&src, "clean", 0, &out), GLORA_OK);
    assert_memory_equal(out.x, src.x, 9 * sizeof(float));
    glora_dataset_free(&out);

    assert_int_equal(glora_dataset_shift(&src, "inverted", 0, &out), GLORA_OK);
    for (int i = 0; i < 9; i++) assert_float_equal(pixel(&out, i), 1 - i / 8.0, 1e-6);
    assert_true(out.mean == 0.5f && out.std == 0.5f && out.num_classes == 10);
    glora_dataset_free(&out);

    /* Rotation by 30 degrees counter-clockwise about (1, 1): the output at
     * offset (dx, dy) samples the input at (dx c - dy s, dx s + dy c) with
     * c = cos 30, s = sin 30 = 0.5.
     * - centre: itself, 4/8.
     * - (r 0, c 1), offset (0, -1): samples (1 + s, 1 - c) = (1.5, 0.134):
     *   between columns 1, 2 (half way) of rows 0 (weight c) and 1 (1 - c):
     *   row 0 gives (1/8 + 2/8)/2 = 0.1875, row 1 (4/8 + 5/8)/2 = 0.5625.
     * - (r 0, c 0), offset (-1, -1): samples (1 - c + s, 1 - s - c) =
     *   (0.634, -0.366): row -1 is outside (0); row 0 has weight a = 0.634 and
     *   between columns 0 and 1 weight a on column 1: a * a * 1/8. */
    assert_int_equal(glora_dataset_shift(&src, "rotated", 0, &out), GLORA_OK);
    const double c = cos(M_PI / 6), a = 1 - c + 0.5;
    assert_float_equal(pixel(&out, 4), 0.5, 1e-6);
    assert_float_equal(pixel(&out, 1), c * 0.1875 + (1 - c) * 0.5625, 1e-6);
    assert_float_equal(pixel(&out, 0), a * a / 8, 1e-6);
    glora_dataset_free(&out);
    glora_dataset_free(&src);

    /* Blur of an impulse in a 5x5 image: the outer product of
     * [1 4 6 4 1]/16 with itself; the corner only gets the kernel's corner
     * because edges repeat outward from zeros. */
    double impulse[25] = {0};
    impulse[12] = 1;
    make_image(&src, 5, 5, impulse);
    assert_int_equal(glora_dataset_shift(&src, "blurred", 0, &out), GLORA_OK);
    assert_float_equal(pixel(&out, 12), 36 / 256.0, 1e-6);
    assert_float_equal(pixel(&out, 0), 1 / 256.0, 1e-6);
    assert_float_equal(pixel(&out, 10), 6 / 256.0, 1e-6);
    assert_float_equal(pixel(&out, 6), 16 / 256.0, 1e-6);
    assert_float_equal(pixel(&out, 7), 24 / 256.0, 1e-6);
    glora_dataset_free(&out);
    glora_dataset_free(&src);
    /* A constant image stays constant (the edges repeat). */
    double flat[25];
    for (int i = 0; i < 25; i++) flat[i] = 0.75;
    make_image(&src, 5, 5, flat);
    assert_int_equal(glora_dataset_shift(&src, "blurred", 0, &out), GLORA_OK);
    for (int i = 0; i < 25; i++) assert_float_equal(pixel(&out, i), 0.75, 1e-6);
    glora_dataset_free(&out);
    glora_dataset_free(&src);

    assert_int_equal(glora_dataset_shift(&src, "sketch", 0, &out), GLORA_EINVAL);
    assert_non_null(strstr(glora_errmsg(), "'sketch'"));
    assert_non_null(glora_errhint());
    assert_string_equal(glora_dataset_shift_kind(0), "clean");
    assert_null(glora_dataset_shift_kind(5));
}

static void test_noise(void **state) {
    (void)state;
    /* Two grey 64x64 images: noise sigma 0.3, clipped, seeded per example. */
    enum { S = 64 };
    static double grey[S * S];
    for (int i = 0; i < S * S; i++) grey[i] = 0.5;
    glora_dataset_t one, two, a, b, c;
    make_image(&one, S, S, grey);
    make_image(&two, S, S, grey);
    two.n = 2;
    two.x = realloc(two.x, 2 * S * S * sizeof(float));
    two.y = realloc(two.y, 2 * sizeof(int));
    memcpy(two.x + S * S, two.x, S * S * sizeof(float));
    two.y[1] = 0;
    assert_int_equal(glora_dataset_shift(&one, "noisy", 3, &a), GLORA_OK);
    assert_int_equal(glora_dataset_shift(&two, "noisy", 3, &b), GLORA_OK);
    assert_int_equal(glora_dataset_shift(&one, "noisy", 4, &c), GLORA_OK);
    /* Example 0 gets the same noise whatever else is in the set; another
     * seed gives other noise; example 1 differs from example 0. */
    assert_memory_equal(a.x, b.x, S * S * sizeof(float));
    assert_true(memcmp(a.x, c.x, S * S * sizeof(float)) != 0);
    assert_true(memcmp(b.x, b.x + S * S, S * S * sizeof(float)) != 0);
    double sum = 0;
    int within = 0, clipped = 0;
    for (int i = 0; i < S * S; i++) {
        double p = pixel(&a, i), d = p - 0.5;
        assert_true(p >= 0 && p <= 1);
        sum += d;
        within += fabs(d) < 0.3;
        clipped += p == 0 || p == 1;
    }
    /* |N(0, 0.3)| < 0.3 with probability 0.683; beyond 0.5 (clipped) 0.095. */
    assert_true(fabs(sum / (S * S)) < 0.02);
    assert_in_range(within, (int)(0.65 * S * S), (int)(0.72 * S * S));
    assert_in_range(clipped, (int)(0.07 * S * S), (int)(0.12 * S * S));
    glora_dataset_free(&a);
    glora_dataset_free(&b);
    glora_dataset_free(&c);
    glora_dataset_free(&one);
    glora_dataset_free(&two);
}

/* The real Fashion-MNIST test set when the Debian package is installed. */
static void test_fashion_mnist(void **state) {
    (void)state;
    const char *ip = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz";
    const char *lp = "/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz";
    if (access(ip, R_OK) != 0 || access(lp, R_OK) != 0) skip();
    glora_dataset_t ds;
    assert_int_equal(glora_idx_load(&ds, ip, lp, 9000, 0, 0.5f, 0.5f), GLORA_OK);
    assert_int_equal(ds.n, 1000);
    assert_int_equal(ds.h, 28);
    assert_int_equal(ds.w, 28);
    assert_int_equal(ds.num_classes, 10);
    float lo = 1, hi = -1;
    for (size_t i = 0; i < ds.n * 784; i++) {
        lo = ds.x[i] < lo ? ds.x[i] : lo;
        hi = ds.x[i] > hi ? ds.x[i] : hi;
    }
    assert_true(lo == -1.0f && hi == 1.0f);
    glora_dataset_free(&ds);
}

/* data.max_memory: left unset, half the machine's RAM, so that eval and
 * predict stream a split too large for it (a test split of SUN397's size)
 * without anyone setting it; given, its value, 0 (no cap) included. */
static void test_max_memory_default(void **state) {
    (void)state;
    static const glora_config_key_t keys[] = {GLORA_SPLIT_KEYS("data", "test"), GLORA_SPLIT_NORM_KEYS("data.")};
    static const glora_config_schema_t schema = GLORA_CONFIG_SCHEMA(keys);
    glora_config_t *cfg = NULL;
    glora_split_t s;
    assert_int_equal(glora_config_load(&cfg, NULL, &schema), GLORA_OK);
    assert_int_equal(glora_split_from_config(&s, cfg, "data", "data."), GLORA_OK);
    const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    assert_true(pages > 0 && page > 0);
    assert_true(s.max_memory > 0);
    assert_true(s.max_memory == (size_t)pages * (size_t)page / 2);
    assert_true(glora_split_default_max_memory() == s.max_memory);
    assert_int_equal(glora_config_set(cfg, "data.max_memory=0"), GLORA_OK);
    assert_int_equal(glora_split_from_config(&s, cfg, "data", "data."), GLORA_OK);
    assert_true(s.max_memory == 0);
    assert_int_equal(glora_config_set(cfg, "data.max_memory=36864"), GLORA_OK);
    assert_int_equal(glora_split_from_config(&s, cfg, "data", "data."), GLORA_OK);
    assert_true(s.max_memory == 36864);
    glora_config_free(cfg);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load),
        cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_take_and_kshot),
        cmocka_unit_test(test_shifts),
        cmocka_unit_test(test_noise),
        cmocka_unit_test(test_fashion_mnist),
        cmocka_unit_test(test_max_memory_default),
    };
    return cmocka_run_group_tests(tests, tmpdir_setup, tmpdir_teardown);
}
