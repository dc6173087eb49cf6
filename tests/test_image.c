/* Tests of image decoding and preprocessing against the pixels PIL and
 * torchvision give (fixtures written by tests/ref/make_image_fixtures.py),
 * of the list-file and ImageFolder readers against torchvision's ImageFolder,
 * of every rejection (one line naming the file and line), of the decoded
 * split's cache and stream, and of the normalisation against the IDX loader. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "glora/common.h"
#include "glora/data.h"
#include "util/fileio.h"
#include "glora/image.h"
#include "util/parallel.h"

#include "tmpdir.h"

#define FIX GLORA_SRCDIR "/tests/fixtures/image"

static char *fix(const char *name) {
    static char buf[4][1024];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", FIX, name);
    return buf[k];
}

static void write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

/* Every reference of manifest.txt: glora's bytes against PIL's. The largest
 * difference of each kind is printed; over 1 (1/255) fails. */
static void test_pil_references(void **state) {
    (void)state;
    FILE *m = fopen(fix("manifest.txt"), "r");
    assert_non_null(m);
    char src[256], op[32], param[64], interp[32], out[256];
    int channels, lines = 0, exact = 0, worst = 0, worst_png = 0;
    struct { char kind[128]; int max, count; } kinds[64];
    int nk = 0;
    while (fscanf(m, "%255s %d %31s %63s %31s %255s", src, &channels, op, param, interp, out) == 6) {
        glora_image_t raw, img;
        if (glora_image_decode(&raw, fix(src)) != 0) fail_msg("%s: %s", src, glora_errmsg());
        int it = glora_image_interp_parse(interp);
        assert_true(it >= 0);
        int rc = 0;
        if (!strcmp(op, "decode")) {
            img = raw;
            raw.px = NULL;
            rc = glora_image_convert(&img, channels);
        } else if (!strcmp(op, "resize")) {
            int w, h;
            assert_int_equal(sscanf(param, "%dx%d", &w, &h), 2);
            assert_int_equal(glora_image_convert(&raw, channels), 0);
            rc = glora_image_resize(&img, &raw, w, h, (glora_interp_t)it);
        } else {
            glora_image_prep_t p = {.channels = channels, .interp = (glora_interp_t)it,
                                    .crop_pct = 1.0};
            if (!strcmp(op, "squash")) {
                p.resize = GLORA_RESIZE_SQUASH;
                p.size = atoi(param);
            } else {
                p.resize = GLORA_RESIZE_SHORTER;
                assert_int_equal(sscanf(param, "%d/%lf", &p.size, &p.crop_pct), 2);
            }
            rc = glora_image_preprocess(&img, &raw, &p, src);
        }
        if (rc) fail_msg("%s %s %s: %s", src, op, param, glora_errmsg());
        char *ref = NULL;
        size_t n = 0;
        assert_int_equal(glora_read_file(fix(out), 1 << 24, &ref, &n), 0);
        size_t have = (size_t)img.c * (size_t)img.h * (size_t)img.w;
        if (n != have) fail_msg("%s: %zu bytes, glora made %d x %d x %d", out, n, img.c, img.h, img.w);
        int md = 0;
        for (size_t i = 0; i < n; i++) {
            int d = abs((int)(uint8_t)ref[i] - (int)img.px[i]);
            if (d > md) md = d;
        }
        /* kind: source format + op + interpolation */
        char kind[128];
        const char *ext = strrchr(src, '.');
        snprintf(kind, sizeof kind, "%s %s%s%s %s", strstr(src, "16_") ? "png16" : ext + 1, op,
                 strcmp(op, "decode") ? "/" : "", strcmp(op, "decode") ? interp : "",
                 channels == 1 ? "L" : "RGB");
        int k;
        for (k = 0; k < nk && strcmp(kinds[k].kind, kind); k++) {}
        if (k == nk) {
            assert_true(nk < 64);
            snprintf(kinds[nk].kind, sizeof kinds[nk].kind, "%s", kind);
            kinds[nk].max = 0;
            kinds[nk++].count = 0;
        }
        if (md > kinds[k].max) kinds[k].max = md;
        kinds[k].count++;
        if (md > worst) worst = md;
        if (strstr(src, ".png") && md > worst_png) worst_png = md;
        if (md == 0) exact++;
        if (md > 1) print_message("  %s: max difference %d\n", out, md);
        lines++;
        free(ref);
        glora_image_free(&raw);
        glora_image_free(&img);
    }
    fclose(m);
    print_message("  %d PIL references, %d exact; max |glora - PIL| by kind (in 1/255):\n",
                  lines, exact);
    for (int k = 0; k < nk; k++)
        print_message("    %-36s %3d files  max %d\n", kinds[k].kind, kinds[k].count, kinds[k].max);
    assert_true(lines >= 100);
    /* PNG decoding is lossless, so from a PNG any difference is glora's
     * arithmetic: exact required. JPEG pixels depend on the libjpeg build the
     * fixtures met: 1/255 allowed, the requirement. */
    assert_int_equal(worst_png, 0);
    assert_true(worst <= 1);
}

/* A failure whose message is one line holding every needle. */
static void expect_error(int rc, const char *a, const char *b) {
    assert_true(rc < 0);
    const char *msg = glora_errmsg();
    if (strchr(msg, '\n')) fail_msg("message spans lines: %s", msg);
    if ((a && !strstr(msg, a)) || (b && !strstr(msg, b)))
        fail_msg("message '%s' lacks '%s' / '%s'", msg, a ? a : "", b ? b : "");
}

static void test_bad_files(void **state) {
    (void)state;
    glora_image_t img;
    expect_error(glora_image_decode(&img, fix("error/truncated.jpg")), "truncated.jpg", "truncated");
    assert_null(img.px);
    expect_error(glora_image_decode(&img, fix("error/badcrc.png")), "badcrc.png", "CRC");
    expect_error(glora_image_decode(&img, fix("error/notimage.png")), "notimage.png", "not a JPEG or PNG");
    expect_error(glora_image_decode(&img, fix("error/absent.png")), "absent.png", NULL);

    /* Every prefix of a PNG and of a JPEG: an error, never a crash. */
    char *data = NULL;
    size_t n = 0;
    const char *files[] = {"rgb_37x23.png", "rgb_37x23_prog.jpg", "pal_37x23.png"};
    for (int f = 0; f < 3; f++) {
        assert_int_equal(glora_read_file(fix(files[f]), 1 << 20, &data, &n), 0);
        for (size_t k = 0; k < n; k += 1 + k / 16) {
            int rc = glora_image_decode_mem(&img, data, k, "prefix");
            if (rc == 0) fail_msg("%s: %zu of %zu bytes decoded without error", files[f], k, n);
            expect_error(rc, "prefix", NULL);
        }
        free(data);
    }

    /* JPEGs whose frame header is patched to 16000 x 16000 pixels: their few
     * hundred bytes cannot hold a bit for each of the 4 million blocks, so
     * they are refused before libjpeg or glora allocates for them. */
    const char *jpegs[] = {"rgb_37x23.jpg", "rgb_37x23_prog.jpg", "grey_37x23.jpg"};
    for (int f = 0; f < 3; f++) {
        assert_int_equal(glora_read_file(fix(jpegs[f]), 1 << 20, &data, &n), 0);
        size_t at = 0;
        for (size_t k = 2; k + 9 < n; k++)
            if ((uint8_t)data[k] == 0xff && ((uint8_t)data[k + 1] == 0xc0 || (uint8_t)data[k + 1] == 0xc2)) {
                at = k;
                break;
            }
        assert_true(at > 0);
        /* FF Cn, length (2), precision (1), height (2), width (2) */
        data[at + 5] = data[at + 7] = (char)(16000 >> 8);
        data[at + 6] = data[at + 8] = (char)(16000 & 0xff);
        expect_error(glora_image_decode_mem(&img, data, n, jpegs[f]), jpegs[f],
                     "16000 x 16000 pixels cannot come out of a");
        assert_null(img.px);
        free(data);
    }

    /* A PNG header announcing 100000 x 100000 pixels: refused before any
     * allocation of that size. */
    uint8_t png[8 + 25 + 12];
    memcpy(png, "\x89PNG\r\n\x1a\n", 8);
    uint8_t ihdr[17] = {0, 0, 0, 13, 'I', 'H', 'D', 'R', 0, 1, 0x86, 0xa0, 0, 1, 0x86, 0xa0, 8};
    memcpy(png + 8, ihdr, 17);
    png[25] = 2;
    png[26] = png[27] = png[28] = 0;
    uLong crc = crc32(0, png + 12, 17);
    png[29] = (uint8_t)(crc >> 24);
    png[30] = (uint8_t)(crc >> 16);
    png[31] = (uint8_t)(crc >> 8);
    png[32] = (uint8_t)crc;
    /* an empty IDAT, so that libpng's header reading ends there */
    memcpy(png + 33, "\0\0\0\0IDAT", 8);
    crc = crc32(0, (const Bytef *)"IDAT", 4);
    png[41] = (uint8_t)(crc >> 24);
    png[42] = (uint8_t)(crc >> 16);
    png[43] = (uint8_t)(crc >> 8);
    png[44] = (uint8_t)crc;
    expect_error(glora_image_decode_mem(&img, png, sizeof png, "huge.png"), "huge.png", "limit");
}

static void test_list_files(void **state) {
    (void)state;
    glora_image_list_t l;
    assert_int_equal(glora_image_list_read(&l, fix("list_ok.txt"), NULL, 0), 0);
    assert_int_equal(l.n, 3);
    assert_int_equal(l.num_classes, 3);
    assert_string_equal(l.paths[0], fix("rgb_37x23.png"));
    assert_string_equal(l.paths[1], fix("dir with space/im 1.png"));
    assert_string_equal(l.paths[2], fix("grey_37x23.jpg"));
    assert_int_equal(l.labels[0], 2);
    assert_int_equal(l.labels[1], 0);
    assert_int_equal(l.labels[2], 1);
    assert_null(l.class_names);
    glora_image_list_free(&l);

    /* root given: paths relative to it */
    char list[512];
    snprintf(list, sizeof list, "%s/rooted.txt", tmpdir);
    write_file(list, "rgb_37x23.jpg 4\n", 16);
    assert_int_equal(glora_image_list_read(&l, list, FIX, 5), 0);
    assert_string_equal(l.paths[0], fix("rgb_37x23.jpg"));
    assert_int_equal(l.num_classes, 5);
    glora_image_list_free(&l);
    expect_error(glora_image_list_read(&l, list, NULL, 5), "rooted.txt", "line 1");

    expect_error(glora_image_list_read(&l, fix("error/list_nolabel.txt"), NULL, 0),
                 "list_nolabel.txt' line 2", "no label");
    expect_error(glora_image_list_read(&l, fix("error/list_badlabel.txt"), NULL, 0),
                 "list_badlabel.txt' line 3", "not an integer");
    expect_error(glora_image_list_read(&l, fix("error/list_range.txt"), NULL, 3),
                 "list_range.txt' line 2", "out of range");
    expect_error(glora_image_list_read(&l, fix("error/list_missing.txt"), NULL, 0),
                 "list_missing.txt' line 2", "missing.png");
    assert_int_equal(l.n, 0);
    assert_null(l.paths);

    /* a listed file that does not decode: the split names it */
    glora_image_split_t s;
    glora_image_prep_t p = {.channels = 3, .size = 8, .resize = GLORA_RESIZE_SQUASH,
                            .interp = GLORA_INTERP_BICUBIC, .crop_pct = 1};
    assert_int_equal(glora_image_list_read(&l, fix("error/list_truncated.txt"), NULL, 0), 0);
    expect_error(glora_image_split_load(&s, &l, 0, 0, &p, NULL, NULL), "truncated.jpg", NULL);
    glora_image_list_free(&l);
}

static void test_image_folder(void **state) {
    (void)state;
    glora_image_list_t l;
    assert_int_equal(glora_image_folder_read(&l, fix("folder")), 0);
    /* folder.txt: torchvision ImageFolder's classes and samples */
    FILE *f = fopen(fix("folder.txt"), "r");
    assert_non_null(f);
    char line[1024];
    assert_non_null(fgets(line, sizeof line, f));
    char expect[1024] = "classes";
    for (int c = 0; c < l.num_classes; c++) {
        strcat(expect, " ");
        strcat(expect, l.class_names[c]);
    }
    strcat(expect, "\n");
    assert_string_equal(line, expect);
    size_t i = 0;
    while (fgets(line, sizeof line, f)) {
        char path[900];
        int label;
        assert_int_equal(sscanf(line, "%899s %d", path, &label), 2);
        assert_true(i < l.n);
        assert_string_equal(l.paths[i], fix(path));
        assert_int_equal(l.labels[i], label);
        i++;
    }
    fclose(f);
    assert_int_equal(i, l.n);
    glora_image_list_free(&l);

    /* an empty class folder is named */
    char dir[512], sub[600];
    snprintf(dir, sizeof dir, "%s/tree", tmpdir);
    snprintf(sub, sizeof sub, "%s/cat", dir);
    assert_int_equal(glora_mkdir_p(sub), 0);
    snprintf(sub, sizeof sub, "%s/dog", dir);
    assert_int_equal(glora_mkdir_p(sub), 0);
    snprintf(sub, sizeof sub, "%s/cat/a.png", dir);
    char *data;
    size_t n;
    assert_int_equal(glora_read_file(fix("rgb_1x1.png"), 1 << 20, &data, &n), 0);
    write_file(sub, data, n);
    free(data);
    expect_error(glora_image_folder_read(&l, dir), "tree/dog", "no .jpg");
    /* a format torchvision counts but glora cannot read is not skipped */
    snprintf(sub, sizeof sub, "%s/dog/b.bmp", dir);
    write_file(sub, "BM", 2);
    expect_error(glora_image_folder_read(&l, dir), "b.bmp", "JPEG and PNG only");
    expect_error(glora_image_folder_read(&l, fix("rgb_1x1.png")), "rgb_1x1.png", NULL);
}

/* The IDX loader and glora_image_normalize give the same bits for the same
 * bytes, and one channel's statistics do not leak into another's. */
static void test_normalize_matches_idx(void **state) {
    (void)state;
    enum { N = 2, H = 16, W = 16 };
    uint8_t img[16 + N * H * W], lab[8 + N];
    memcpy(img, "\0\0\x08\x03\0\0\0\x02\0\0\0\x10\0\0\0\x10", 16);
    memcpy(lab, "\0\0\x08\x01\0\0\0\x02", 8);
    for (int i = 0; i < N * H * W; i++) img[16 + i] = (uint8_t)(i * 37 + 11);
    lab[8] = 0;
    lab[9] = 1;
    char ip[512], lp[512];
    snprintf(ip, sizeof ip, "%s/x-images", tmpdir);
    snprintf(lp, sizeof lp, "%s/x-labels", tmpdir);
    write_file(ip, img, sizeof img);
    write_file(lp, lab, sizeof lab);
    const float means[] = {0.5f, 0.1307f, 0.485f}, stds[] = {0.5f, 0.3081f, 0.229f};
    for (int k = 0; k < 3; k++) {
        glora_dataset_t ds;
        assert_int_equal(glora_idx_load(&ds, ip, lp, 0, 0, means[k], stds[k]), 0);
        float out[N * H * W];
        glora_image_normalize(img + 16, N, 1, H, W, &means[k], &stds[k], out);
        assert_memory_equal(out, ds.x, sizeof out);
        glora_dataset_free(&ds);
    }
    /* three channels, each its own mean/std */
    uint8_t px[2 * 3 * 4];
    float out[2 * 3 * 4];
    for (int i = 0; i < 24; i++) px[i] = (uint8_t)(i * 11);
    const float m3[3] = {0.485f, 0.456f, 0.406f}, s3[3] = {0.229f, 0.224f, 0.225f};
    glora_image_normalize(px, 2, 3, 2, 2, m3, s3, out);
    for (int i = 0; i < 24; i++) {
        int ch = (i / 4) % 3;
        float want = ((float)px[i] / 255.0f - m3[ch]) / s3[ch];
        assert_memory_equal(&out[i], &want, sizeof want);
    }
}

static void copy_file(const char *from, const char *to) {
    char *data;
    size_t n;
    assert_int_equal(glora_read_file(from, 1 << 24, &data, &n), 0);
    write_file(to, data, n);
    free(data);
}

/* The split: list order, the same bytes as one image loaded alone, the same
 * for 1 and 2 threads, a cache that is used only while everything matches,
 * and a stream that yields the same images in chunks. */
static void test_split_cache_stream(void **state) {
    (void)state;
    char dir[512], path[700], list[700], cache[700];
    snprintf(dir, sizeof dir, "%s/split", tmpdir);
    assert_int_equal(glora_mkdir_p(dir), 0);
    const char *srcs[] = {"rgb_37x23.jpg", "grey_37x23.png", "rgba_37x23.png", "rgb_500x375.jpg",
                          "pal_37x23.png", "rgb_1x1.jpg", "rgb_23x37.jpg"};
    FILE *lf;
    snprintf(list, sizeof list, "%s/train.txt", dir);
    lf = fopen(list, "w");
    assert_non_null(lf);
    for (int i = 0; i < 7; i++) {
        snprintf(path, sizeof path, "%s/%06d.img", dir, i);
        copy_file(fix(srcs[i]), path);
        fprintf(lf, "%06d.img %d\n", i, i % 3);
    }
    fclose(lf);
    glora_image_list_t l;
    assert_int_equal(glora_image_list_read(&l, list, NULL, 0), 0);
    glora_image_prep_t p = {.channels = 3, .size = 24, .resize = GLORA_RESIZE_SHORTER,
                            .interp = GLORA_INTERP_BICUBIC, .crop_pct = 0.875};
    size_t per = 3 * 24 * 24;
    glora_image_split_t a, b, c;
    int hit = -1;
    snprintf(cache, sizeof cache, "%s/train.cache", dir);
    glora_set_threads(1);
    assert_int_equal(glora_image_split_load(&a, &l, 1, 5, &p, NULL, NULL), 0);
    glora_set_threads(2);
    assert_int_equal(glora_image_split_load(&b, &l, 1, 5, &p, cache, &hit), 0);
    assert_int_equal(hit, 0);
    assert_int_equal(a.n, 5);
    assert_memory_equal(a.px, b.px, 5 * per);
    assert_memory_equal(a.y, b.y, 5 * sizeof(int));
    for (int i = 0; i < 5; i++) {
        glora_image_t one;
        assert_int_equal(glora_image_load(&one, l.paths[1 + i], &p), 0);
        assert_memory_equal(one.px, a.px + i * per, per);
        assert_int_equal(a.y[i], (1 + i) % 3);
        glora_image_free(&one);
    }
    glora_image_split_free(&b);
    /* cached */
    assert_int_equal(glora_image_split_load(&b, &l, 1, 5, &p, cache, &hit), 0);
    assert_int_equal(hit, 1);
    assert_memory_equal(a.px, b.px, 5 * per);
    assert_memory_equal(a.y, b.y, 5 * sizeof(int));
    glora_image_split_free(&b);
    /* other preprocessing, other range: not the cache's */
    p.interp = GLORA_INTERP_BILINEAR;
    assert_int_equal(glora_image_split_load(&b, &l, 1, 5, &p, cache, &hit), 0);
    assert_int_equal(hit, 0);
    glora_image_split_free(&b);
    p.interp = GLORA_INTERP_BICUBIC;
    assert_int_equal(glora_image_split_load(&b, &l, 0, 5, &p, cache, &hit), 0);
    assert_int_equal(hit, 0);
    glora_image_split_free(&b);
    assert_int_equal(glora_image_split_load(&b, &l, 1, 5, &p, cache, &hit), 0);
    assert_int_equal(hit, 0);
    glora_image_split_free(&b);
    assert_int_equal(glora_image_split_load(&b, &l, 1, 5, &p, cache, &hit), 0);
    assert_int_equal(hit, 1);
    glora_image_split_free(&b);
    /* an image's content changes: stale */
    snprintf(path, sizeof path, "%s/%06d.img", dir, 3);
    copy_file(fix("rgb_37x23.png"), path);
    assert_int_equal(glora_image_split_load(&c, &l, 1, 5, &p, cache, &hit), 0);
    assert_int_equal(hit, 0);
    assert_memory_equal(a.px, c.px, 2 * per);
    assert_memory_not_equal(a.px + 2 * per, c.px + 2 * per, per);
    glora_image_split_free(&c);
    /* a damaged cache is not used */
    struct stat st;
    assert_int_equal(stat(cache, &st), 0);
    assert_int_equal(truncate(cache, st.st_size - 1), 0);
    assert_int_equal(glora_image_split_load(&c, &l, 1, 5, &p, cache, &hit), 0);
    assert_int_equal(hit, 0);
    glora_image_split_free(&c);
    copy_file(fix(srcs[3]), path);

    /* stream in chunks of 2: 2 + 2 + 1 images, the split's bytes */
    glora_image_stream_t *s;
    assert_int_equal(glora_image_stream_open(&s, &l, 1, 5, &p, 2), 0);
    glora_image_split_t ch = {0};
    size_t got = 0;
    for (;;) {
        assert_int_equal(glora_image_stream_next(s, &ch), 0);
        if (ch.n == 0) break;
        assert_true(ch.n <= 2);
        assert_memory_equal(ch.px, a.px + got * per, ch.n * per);
        assert_memory_equal(ch.y, a.y + got, ch.n * sizeof(int));
        got += ch.n;
        assert_int_equal(glora_image_stream_pos(s), 1 + got);
    }
    assert_int_equal(got, 5);
    glora_image_stream_close(s);
    expect_error(glora_image_stream_open(&s, &l, 5, 5, &p, 2), "range", NULL);
    glora_image_split_free(&a);

    /* data.resize no: the image must have the model's size */
    p.resize = GLORA_RESIZE_NO;
    expect_error(glora_image_split_load(&a, &l, 0, 1, &p, NULL, NULL), "000000.img", "needs");
    p.size = 1;
    assert_int_equal(glora_image_split_load(&a, &l, 5, 1, &p, NULL, NULL), 0);
    glora_image_split_free(&a);
    glora_image_list_free(&l);
    glora_set_threads(glora_max_threads());
}

/* PNG written and read back: the same bytes; JPEG: the same size, close. */
static void test_write_roundtrip(void **state) {
    (void)state;
    glora_image_t a, b;
    char path[512];
    assert_int_equal(glora_image_decode(&a, fix("rgb_37x23.png")), 0);
    for (int c = 3; c >= 1; c -= 2) {
        assert_int_equal(glora_image_convert(&a, c), 0);
        snprintf(path, sizeof path, "%s/w.png", tmpdir);
        assert_int_equal(glora_image_write(path, &a, 0), 0);
        assert_int_equal(glora_image_decode(&b, path), 0);
        assert_int_equal(b.c, c);
        assert_memory_equal(a.px, b.px, (size_t)c * 37 * 23);
        glora_image_free(&b);
        snprintf(path, sizeof path, "%s/w.jpg", tmpdir);
        assert_int_equal(glora_image_write(path, &a, 95), 0);
        assert_int_equal(glora_image_decode(&b, path), 0);
        assert_int_equal(b.c, c);
        assert_int_equal(b.w, 37);
        assert_int_equal(b.h, 23);
        double err = 0;
        for (size_t i = 0; i < (size_t)c * 37 * 23; i++) err += abs(a.px[i] - b.px[i]);
        /* PIL's own quality-95 JPEG of this noisy card is off by 12.46 on
         * average (chroma noise lost to 4:2:0); a broken encoder by ~100. */
        if (!(err / (c * 37 * 23) < 13)) fail_msg("JPEG mean error %g", err / (c * 37 * 23));
        glora_image_free(&b);
    }
    snprintf(path, sizeof path, "%s/w.gif", tmpdir);
    expect_error(glora_image_write(path, &a, 0), "w.gif", ".png");
    glora_image_free(&a);
}

static void test_names_and_checks(void **state) {
    (void)state;
    assert_int_equal(glora_image_resize_parse("squash"), GLORA_RESIZE_SQUASH);
    assert_int_equal(glora_image_resize_parse("shorter"), GLORA_RESIZE_SHORTER);
    assert_int_equal(glora_image_resize_parse("no"), GLORA_RESIZE_NO);
    assert_int_equal(glora_image_resize_parse("yes"), -1);
    assert_int_equal(glora_image_interp_parse("bicubic"), GLORA_INTERP_BICUBIC);
    assert_int_equal(glora_image_interp_parse("lanczos"), -1);
    glora_image_prep_t p = {.channels = 3, .size = 224, .resize = GLORA_RESIZE_SHORTER,
                            .interp = GLORA_INTERP_BICUBIC, .crop_pct = 1.5};
    expect_error(glora_image_prep_check(&p), "crop_pct", NULL);
    p.crop_pct = 0.9;
    p.channels = 2;
    expect_error(glora_image_prep_check(&p), "channels", NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pil_references),   cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_list_files),       cmocka_unit_test(test_image_folder),
        cmocka_unit_test(test_normalize_matches_idx), cmocka_unit_test(test_split_cache_stream),
        cmocka_unit_test(test_write_roundtrip),  cmocka_unit_test(test_names_and_checks),
    };
    return cmocka_run_group_tests(tests, tmpdir_setup, tmpdir_teardown);
}
