/* Unit tests of the safetensors reader and writer: round trip, exact bytes,
 * dtype conversions, every validation rule (each message must name the file
 * and the tensor), a seeded mutation fuzz loop and atomicity of writes. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "glora/common.h"
#include "util/fileio.h"
#include "util/rng.h"
#include "glora/safetensors.h"

#include "tmpdir.h"

static void tmp_path(char *buf, size_t cap, const char *name) {
    snprintf(buf, cap, "%s/%s", tmpdir, name);
}

/* Writes 8-byte length of header, header, then data[0..n). */
static void put_file(const char *path, const char *header, const void *data, size_t n) {
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    uint64_t len = strlen(header);
    uint8_t len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (uint8_t)(len >> (8 * i));
    assert_int_equal(fwrite(len8, 1, 8, fp), 8);
    assert_int_equal(fwrite(header, 1, len, fp), len);
    if (n) assert_int_equal(fwrite(data, 1, n, fp), n);
    assert_int_equal(fclose(fp), 0);
}

static void test_round_trip(void **state) {
    (void)state;
    char path[256];
    tmp_path(path, sizeof path, "rt.safetensors");
    const float w[6] = {1.5f, -2.0f, 3.25f, 0.0f, -0.0f, 1e-30f};
    const float s[1] = {42.0f};
    const int64_t shape_w[2] = {2, 3}, shape_e[2] = {0, 4};
    const glora_st_entry_t entries[3] = {
        {"blocks.0.attn.qkv.weight", 2, shape_w, w},
        {"scalar", 0, NULL, s},
        {"empty", 2, shape_e, NULL},
    };
    const char *meta[4] = {"glora.format", "backbone", "quote\"d", "line\nbreak\\"};
    assert_int_equal(glora_st_write(path, entries, 3, meta, 2), GLORA_OK);

    glora_st_t *st;
    assert_int_equal(glora_st_open(&st, path), GLORA_OK);
    assert_string_equal(glora_st_path(st), path);
    assert_int_equal(glora_st_count(st), 3);
    /* File order is the order given to the writer (the empty tensor sits at
     * the end offset, after the scalar). */
    assert_string_equal(glora_st_tensor(st, 0)->name, "blocks.0.attn.qkv.weight");
    assert_string_equal(glora_st_tensor(st, 1)->name, "scalar");
    assert_string_equal(glora_st_tensor(st, 2)->name, "empty");
    const glora_st_tensor_t *t;
    const int64_t want_w[2] = {2, 3};
    assert_int_equal(glora_st_expect(st, "blocks.0.attn.qkv.weight", 2, want_w, &t), GLORA_OK);
    assert_int_equal(t->dtype, GLORA_ST_F32);
    assert_int_equal(t->numel, 6);
    assert_int_equal(t->nbytes, 24);
    assert_int_equal((uintptr_t)t->data % 8, 0); /* header padded to 8 */
    float got[6];
    assert_int_equal(glora_st_read_f32(st, t, got, 6), GLORA_OK);
    assert_memory_equal(got, w, sizeof w);
    assert_int_equal(glora_st_load_f32(st, "scalar", 0, NULL, got), GLORA_OK);
    assert_true(got[0] == 42.0f);
    t = glora_st_find(st, "empty");
    assert_non_null(t);
    assert_int_equal(t->numel, 0);
    assert_int_equal(t->ndim, 2);
    assert_null(glora_st_find(st, "nope"));
    assert_string_equal(glora_st_meta(st, "glora.format"), "backbone");
    assert_string_equal(glora_st_meta(st, "quote\"d"), "line\nbreak\\");
    assert_null(glora_st_meta(st, "absent"));
    assert_int_equal(glora_st_meta_count(st), 2);
    const char *k, *v;
    glora_st_meta_at(st, 1, &k, &v);
    assert_string_equal(k, "quote\"d");

    /* Wrong expectations: one-line messages with tensor, file and shapes. */
    const int64_t bad[2] = {2, 4};
    assert_int_equal(glora_st_expect(st, "blocks.0.attn.qkv.weight", 2, bad, &t), GLORA_ESTATE);
    char want[512];
    snprintf(want, sizeof want,
             "tensor 'blocks.0.attn.qkv.weight' in '%s': shape [2, 4] expected, found [2, 3]",
             path);
    assert_string_equal(glora_errmsg(), want);
    assert_null(t);
    const int64_t any[2] = {-1, 3};
    assert_int_equal(glora_st_expect(st, "blocks.0.attn.qkv.weight", 2, any, NULL), GLORA_OK);
    assert_int_equal(glora_st_expect(st, "blocks.1.attn.qkv.weight", 2, any, NULL), GLORA_ESTATE);
    snprintf(want, sizeof want, "tensor 'blocks.1.attn.qkv.weight' in '%s': missing", path);
    assert_string_equal(glora_errmsg(), want);
    /* A destination of the wrong size is refused. */
    t = glora_st_find(st, "blocks.0.attn.qkv.weight");
    assert_int_equal(glora_st_read_f32(st, t, got, 5), GLORA_EINVAL);
    assert_non_null(strstr(glora_errmsg(), "blocks.0.attn.qkv.weight"));
    glora_st_close(st);
    glora_st_close(NULL);

    /* No tensors, no metadata: "{}" padded to 8. */
    assert_int_equal(glora_st_write(path, NULL, 0, NULL, 0), GLORA_OK);
    assert_int_equal(glora_st_open(&st, path), GLORA_OK);
    assert_int_equal(glora_st_count(st), 0);
    assert_int_equal(glora_st_meta_count(st), 0);
    glora_st_close(st);
}

/* The writer's exact bytes, checked against a file built by hand. */
static void test_known_bytes(void **state) {
    (void)state;
    char path[256];
    tmp_path(path, sizeof path, "known.safetensors");
    const float a[2] = {1.0f, -2.0f};
    const int64_t shape[1] = {2};
    const glora_st_entry_t e = {"a", 1, shape, a};
    const char *meta[2] = {"k", "v"};
    assert_int_equal(glora_st_write(path, &e, 1, meta, 1), GLORA_OK);
    const char header[] =
        "{\"__metadata__\":{\"k\":\"v\"},\"a\":{\"dtype\":\"F32\",\"shape\":[2],"
        "\"data_offsets\":[0,8]}} "; /* 79 bytes of JSON + 1 space = 80 */
    uint8_t want[8 + 80 + 8] = {80, 0, 0, 0, 0, 0, 0, 0};
    memcpy(want + 8, header, 80);
    const uint8_t data[8] = {0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xc0};
    memcpy(want + 88, data, 8);
    char *got;
    size_t n;
    assert_int_equal(glora_read_file(path, 1 << 20, &got, &n), GLORA_OK);
    assert_int_equal(n, sizeof want);
    assert_memory_equal(got, want, sizeof want);
    free(got);
}

/* A file laid out the way safetensors.torch.save_file lays it out: tensors
 * sorted by dtype alignment then name in the data, header keys in another
 * order, mixed dtypes, spaces padding the header. */
static void test_python_layout_and_dtypes(void **state) {
    (void)state;
    char path[256];
    tmp_path(path, sizeof path, "py.safetensors");
    const char *header =
        "{\"__metadata__\":{\"format\":\"pt\"},"
        "\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[24,32]},"
        "\"labels\":{\"dtype\":\"I64\",\"shape\":[3],\"data_offsets\":[0,24]},"
        "\"g\":{\"dtype\":\"BF16\",\"shape\":[6],\"data_offsets\":[56,68]},"
        "\"h\":{\"dtype\":\"F16\",\"shape\":[2,6],\"data_offsets\":[32,56]},"
        "\"d\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[68,76]}"
        "}      ";
    uint8_t data[76] = {0};
    const int64_t labels[3] = {7, -1, 1LL << 40};
    memcpy(data, labels, 24);
    const float w[2] = {0.5f, -8.0f};
    memcpy(data + 24, w, 8);
    /* F16 bit patterns and their exact values. */
    const uint16_t h[12] = {0x3c00, 0xc000, 0x7bff, 0x0001, 0x03ff, 0x0400,
                            0x7c00, 0xfc00, 0x8000, 0x3555, 0x7e00, 0x8001};
    memcpy(data + 32, h, 24);
    const uint16_t g[6] = {0x3f80, 0xc040, 0x7f80, 0x0001, 0x4049, 0xff81};
    memcpy(data + 56, g, 12);
    const double d = 0.1;
    memcpy(data + 68, &d, 8);
    put_file(path, header, data, sizeof data);

    glora_st_t *st;
    assert_int_equal(glora_st_open(&st, path), GLORA_OK);
    assert_int_equal(glora_st_count(st), 5);
    assert_string_equal(glora_st_tensor(st, 0)->name, "labels");
    assert_string_equal(glora_st_tensor(st, 4)->name, "d");
    assert_string_equal(glora_st_meta(st, "format"), "pt");

    float out[12];
    assert_int_equal(glora_st_load_f32(st, "labels", 1, (const int64_t[]){3}, out), GLORA_OK);
    assert_true(out[0] == 7.0f && out[1] == -1.0f && out[2] == 0x1p40f);
    assert_int_equal(glora_st_load_f32(st, "w", 1, (const int64_t[]){2}, out), GLORA_OK);
    assert_true(out[0] == 0.5f && out[1] == -8.0f);
    assert_int_equal(glora_st_load_f32(st, "h", 2, (const int64_t[]){2, 6}, out), GLORA_OK);
    assert_true(out[0] == 1.0f);
    assert_true(out[1] == -2.0f);
    assert_true(out[2] == 65504.0f);
    assert_true(out[3] == 0x1p-24f);            /* smallest subnormal */
    assert_true(out[4] == 1023.0f * 0x1p-24f);  /* largest subnormal */
    assert_true(out[5] == 0x1p-14f);            /* smallest normal */
    assert_true(isinf(out[6]) && out[6] > 0);
    assert_true(isinf(out[7]) && out[7] < 0);
    assert_true(out[8] == 0.0f && signbit(out[8]));
    assert_true(out[9] == 0.333251953125f);
    assert_true(isnan(out[10]));
    assert_true(out[11] == -0x1p-24f);
    assert_int_equal(glora_st_load_f32(st, "g", 1, (const int64_t[]){6}, out), GLORA_OK);
    assert_true(out[0] == 1.0f);
    assert_true(out[1] == -3.0f);
    assert_true(isinf(out[2]) && out[2] > 0);
    assert_true(out[3] == 0x1p-133f);           /* bf16 subnormal, exact */
    assert_true(out[4] == 3.140625f);
    assert_true(isnan(out[5]));
    assert_int_equal(glora_st_load_f32(st, "d", 1, (const int64_t[]){1}, out), GLORA_OK);
    assert_true(out[0] == 0.1f);
    glora_st_close(st);

    /* F8 is validated but not converted: the refusal names tensor and file. */
    const char *h8 = "{\"q\":{\"dtype\":\"F8_E4M3\",\"shape\":[2],\"data_offsets\":[0,2]}}";
    put_file(path, h8, "\x01\x02", 2);
    assert_int_equal(glora_st_open(&st, path), GLORA_OK);
    assert_int_equal(glora_st_tensor(st, 0)->nbytes, 2);
    assert_true(glora_st_load_f32(st, "q", 1, (const int64_t[]){2}, out) < 0);
    assert_non_null(strstr(glora_errmsg(), "tensor 'q'"));
    assert_non_null(strstr(glora_errmsg(), path));
    assert_non_null(strstr(glora_errmsg(), "F8_E4M3"));
    glora_st_close(st);
}

/* Every one of the 65536 half-precision values, against the definition of
 * the format evaluated in double precision. */
static void test_f16_exhaustive(void **state) {
    (void)state;
    const char *header = "{\"h\":{\"dtype\":\"F16\",\"shape\":[65536],"
                         "\"data_offsets\":[0,131072]}}";
    size_t hl = strlen(header), size = 8 + hl + 131072;
    uint8_t *file = malloc(size);
    float *out = malloc(65536 * sizeof *out);
    assert_non_null(file);
    assert_non_null(out);
    for (int i = 0; i < 8; i++) file[i] = (uint8_t)((uint64_t)hl >> (8 * i));
    memcpy(file + 8, header, hl);
    for (unsigned v = 0; v < 65536; v++) {
        file[8 + hl + 2 * v] = (uint8_t)v;
        file[8 + hl + 2 * v + 1] = (uint8_t)(v >> 8);
    }
    glora_st_t *st;
    assert_int_equal(glora_st_open_buffer(&st, file, size, "f16"), GLORA_OK);
    assert_int_equal(glora_st_load_f32(st, "h", 1, (const int64_t[]){65536}, out), GLORA_OK);
    for (unsigned v = 0; v < 65536; v++) {
        int sign = v >> 15, e = (v >> 10) & 31, m = v & 1023;
        double want = e == 0    ? ldexp(m, -24)
                      : e == 31 ? (m ? NAN : INFINITY)
                                : ldexp(1024 + m, e - 25);
        if (sign) want = -want;
        if (isnan(want)) {
            if (!isnan(out[v])) fail_msg("0x%04x: %g, expected NaN", v, out[v]);
        } else if ((double)out[v] != want || !signbit(out[v]) != !signbit(want)) {
            fail_msg("0x%04x: %.9g, expected %.9g", v, out[v], want);
        }
    }
    glora_st_close(st);
    free(out);
    free(file);
}

/* Opens a file made of header and data and expects a refusal whose message
 * holds the path, "tensor '<tensor>'" (when tensor is not NULL) and why. */
static void expect_reject(const char *header, const void *data, size_t n, const char *tensor,
                          const char *why) {
    char path[256];
    tmp_path(path, sizeof path, "bad.safetensors");
    put_file(path, header, data, n);
    glora_st_t *st = (glora_st_t *)1;
    int rc = glora_st_open(&st, path);
    if (rc >= 0 || !strstr(glora_errmsg(), path) || !strstr(glora_errmsg(), why) ||
        (tensor && !strstr(glora_errmsg(), tensor)) || strchr(glora_errmsg(), '\n'))
        fail_msg("header %s: status %d, message \"%s\" (wanted tensor %s and \"%s\")", header,
                 rc, glora_errmsg(), tensor ? tensor : "-", why);
    assert_null(st);
}

static void test_validation(void **state) {
    (void)state;
    const uint8_t z[64] = {0};
#define T(name, dt, shape, b, e) \
    "\"" name "\":{\"dtype\":\"" dt "\",\"shape\":" shape ",\"data_offsets\":[" b "," e "]}"
    expect_reject("{" T("a", "F32", "[2]", "0", "8") "," T("b", "F32", "[1]", "12", "16") "}",
                  z, 16, "tensor 'b'", "gap");
    expect_reject("{" T("a", "F32", "[2]", "0", "8") "," T("b", "F32", "[2]", "4", "12") "}",
                  z, 12, "tensor 'b'", "overlap tensor 'a'");
    expect_reject("{" T("a", "F32", "[2]", "0", "8") "}", z, 4, "tensor 'a'", "out of range");
    expect_reject("{" T("a", "F32", "[3]", "0", "8") "}", z, 8, "tensor 'a'", "3 F32 values need 12");
    expect_reject("{" T("a", "F32", "[0]", "8", "0") "}", z, 8, "tensor 'a'", "begin after end");
    expect_reject("{" T("a", "F32", "[1]", "0", "4") "}", z, 8, NULL, "trailing");
    expect_reject("{" T("a", "F33", "[1]", "0", "4") "}", z, 4, "tensor 'a'", "unknown dtype 'F33'");
    expect_reject("{" T("a", "F32", "[-2]", "0", "4") "}", z, 4, "tensor 'a'", "negative");
    expect_reject("{" T("a", "F32", "[2.5]", "0", "4") "}", z, 4, "tensor 'a'", "not an integer");
    expect_reject("{" T("a", "F32", "[\"2\"]", "0", "4") "}", z, 4, "tensor 'a'", "not a number");
    expect_reject("{" T("a", "F32", "[1,1,1,1,1,1,1,1,1]", "0", "4") "}", z, 4, "tensor 'a'",
                  "9 dimensions");
    expect_reject("{" T("a", "U8", "[4294967296,4294967296,4294967296]", "0", "4") "}", z, 4,
                  "tensor 'a'", "more elements");
    expect_reject("{" T("a", "F32", "[1]", "0", "1e300") "}", z, 4, "tensor 'a'", "too large");
    expect_reject("{" T("a", "F32", "[1]", "-4", "0") "}", z, 4, "tensor 'a'", "negative");
    expect_reject("{" T("a", "F32", "[1]", "0", "4") "," T("a", "F32", "[1]", "4", "8") "}", z, 8,
                  "tensor 'a'", "twice");
    expect_reject("{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", z, 4, "tensor 'a'", "data_offsets");
    expect_reject("{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", z, 4, "tensor 'a'", "dtype");
    expect_reject("{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[1],"
                  "\"data_offsets\":[0,4]}}", z, 4, "tensor 'a'", "twice");
    expect_reject("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", z, 8,
                  "tensor 'a'", "two integers");
    expect_reject("{\"a\":[1]}", z, 0, "tensor 'a'", "not a JSON object");
    expect_reject("{\"__metadata__\":{\"k\":1}}", z, 0, NULL, "value of 'k' is not a string");
    expect_reject("{\"__metadata__\":[\"k\"]}", z, 0, NULL, "__metadata__ is not");
    expect_reject("{\"__metadata__\":{},\"__metadata__\":{}}", z, 0, NULL, "twice");
    expect_reject("{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", z, 0, NULL, "'k' appears twice");
    expect_reject("{\"a\": {", z, 0, NULL, "not valid JSON");
    expect_reject("{} {}", z, 0, NULL, "not valid JSON");
    expect_reject("[1, 2]", z, 0, NULL, "not a JSON object");
    expect_reject("{\"a\":", z, 0, NULL, "not valid JSON");
    /* A name with a newline is shown with '?' so the message stays one line. */
    expect_reject("{" T("x\\ny", "F32", "[1]", "0", "8") "}", z, 8, "tensor 'x?y'", "need 4");
#undef T

    /* Raw length-field cases. */
    char path[256];
    tmp_path(path, sizeof path, "raw.safetensors");
    glora_st_t *st;
    FILE *fp = fopen(path, "wb");
    fwrite("\x05\0\0\0\0", 1, 5, fp);
    fclose(fp);
    assert_true(glora_st_open(&st, path) < 0);
    assert_non_null(strstr(glora_errmsg(), path));
    assert_non_null(strstr(glora_errmsg(), "truncated"));
    uint8_t buf[64];
    memset(buf, ' ', sizeof buf);
    memcpy(buf, "\x64\0\0\0\0\0\0\0{}", 10); /* says 100 bytes, 56 follow */
    fp = fopen(path, "wb");
    fwrite(buf, 1, sizeof buf, fp);
    fclose(fp);
    assert_true(glora_st_open(&st, path) < 0);
    assert_non_null(strstr(glora_errmsg(), path));
    assert_non_null(strstr(glora_errmsg(), "header length 100"));
    memcpy(buf, "\0\0\0\0\0\x01\0\0{}", 10); /* 2^40 */
    fp = fopen(path, "wb");
    fwrite(buf, 1, sizeof buf, fp);
    fclose(fp);
    assert_true(glora_st_open(&st, path) < 0);
    assert_non_null(strstr(glora_errmsg(), "exceeds the limit"));
    memcpy(buf, "\x08\0\0\0\0\0\0\0{}\0     ", 16); /* NUL inside the header */
    fp = fopen(path, "wb");
    fwrite(buf, 1, 16, fp);
    fclose(fp);
    assert_true(glora_st_open(&st, path) < 0);
    assert_non_null(strstr(glora_errmsg(), "NUL"));
    assert_true(glora_st_open(&st, "/nonexistent/x.safetensors") == GLORA_EIO);
    assert_non_null(strstr(glora_errmsg(), "/nonexistent/x.safetensors"));
    assert_true(glora_st_open(&st, tmpdir) == GLORA_EIO); /* a directory */

    /* A header of a million tiny values in a small file would make cJSON
     * allocate far more than the file: refused before parsing. Its length
     * field is checked first, so the file is made as long as the header. */
    size_t big = (size_t)40 << 20;
    char *hdr = malloc(big + 1);
    assert_non_null(hdr);
    memset(hdr, ',', big);
    hdr[0] = '[';
    hdr[big - 1] = ']';
    hdr[big] = '\0';
    uint8_t *file = malloc(big + 8);
    uint64_t hl = big;
    for (int i = 0; i < 8; i++) file[i] = (uint8_t)(hl >> (8 * i));
    memcpy(file + 8, hdr, big);
    assert_true(glora_st_open_buffer(&st, file, big + 8, "commas") < 0);
    assert_non_null(strstr(glora_errmsg(), "too many JSON values"));
    free(file);
    free(hdr);
}

static void test_writer_rejects(void **state) {
    (void)state;
    char path[256];
    tmp_path(path, sizeof path, "w.safetensors");
    assert_int_equal(glora_write_atomic(path, "old", 3), GLORA_OK);
    const float x[2] = {1, 2};
    const int64_t s1[1] = {2}, sneg[1] = {-1};
    glora_st_entry_t e[2] = {{"a", 1, s1, x}, {"a", 1, s1, x}};
    assert_int_equal(glora_st_write(path, e, 2, NULL, 0), GLORA_EINVAL);
    assert_non_null(strstr(glora_errmsg(), "tensor 'a'"));
    assert_non_null(strstr(glora_errmsg(), path));
    e[1].name = "__metadata__";
    assert_int_equal(glora_st_write(path, e, 2, NULL, 0), GLORA_EINVAL);
    e[1].name = "b";
    e[1].shape = sneg;
    assert_int_equal(glora_st_write(path, e, 2, NULL, 0), GLORA_EINVAL);
    assert_non_null(strstr(glora_errmsg(), "tensor 'b'"));
    const char *meta[4] = {"k", "1", "k", "2"};
    assert_int_equal(glora_st_write(path, e, 1, meta, 2), GLORA_EINVAL);
    assert_non_null(strstr(glora_errmsg(), "'k'"));
    /* The old file is untouched. */
    char *got;
    size_t n;
    assert_int_equal(glora_read_file(path, 100, &got, &n), GLORA_OK);
    assert_string_equal(got, "old");
    free(got);
}

/* A write that fails halfway (file size limit) leaves the old file and no
 * temporary behind. */
static void test_atomic_failure(void **state) {
    (void)state;
    char dir[300], path[320];
    tmp_path(dir, sizeof dir, "atomic");
    assert_int_equal(glora_mkdir_p(dir), GLORA_OK);
    snprintf(path, sizeof path, "%s/m.safetensors", dir);
    assert_int_equal(glora_write_atomic(path, "old", 3), GLORA_OK);

    size_t n = 4096;
    float *x = calloc(n, sizeof *x);
    assert_non_null(x);
    const int64_t shape[1] = {(int64_t)n};
    const glora_st_entry_t e = {"big", 1, shape, x};
    struct rlimit old, lim;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = 1024;
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    int rc = glora_st_write(path, &e, 1, NULL, 0);
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, prev);
    free(x);
    assert_int_equal(rc, GLORA_EIO);
    assert_non_null(strstr(glora_errmsg(), path));
    char *got;
    size_t len;
    assert_int_equal(glora_read_file(path, 100, &got, &len), GLORA_OK);
    assert_string_equal(got, "old");
    free(got);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "test \"$(ls -A %s)\" = m.safetensors", dir);
    assert_int_equal(system(cmd), 0);
}

/* Random byte flips, replacements and truncations of a valid file must be
 * rejected or accepted, never crash; accepted files must read cleanly. */
static void test_fuzz(void **state) {
    (void)state;
    char path[256];
    tmp_path(path, sizeof path, "fuzz.safetensors");
    const float w[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    const int64_t s34[2] = {3, 4}, s2[1] = {2}, s0[1] = {0};
    const glora_st_entry_t e[4] = {
        {"blocks.0.attn.qkv.weight", 2, s34, w},
        {"b", 1, s2, w},
        {"z", 1, s0, NULL},
        {"s", 0, NULL, w},
    };
    const char *meta[2] = {"glora.format", "adapter"};
    assert_int_equal(glora_st_write(path, e, 4, meta, 1), GLORA_OK);
    char *orig;
    size_t size;
    assert_int_equal(glora_read_file(path, 1 << 20, &orig, &size), GLORA_OK);

    static const char interesting[] = "{}[]\":,-019e.\\ \x00\xff";
    glora_rng_t rng;
    glora_rng_seed(&rng, 1234);
    int accepted = 0;
    const int iters = 4000;
    for (int it = 0; it < iters; it++) {
        size_t n = size;
        uint8_t *buf = malloc(size);
        assert_non_null(buf);
        memcpy(buf, orig, size);
        int kind = (int)glora_rng_below(&rng, 5);
        int edits = 1 + (int)glora_rng_below(&rng, 4);
        for (int k = 0; k < edits && (kind == 0 || kind == 1 || kind == 3); k++) {
            size_t at = glora_rng_below(&rng, size);
            if (kind == 0) buf[at] ^= (uint8_t)(1u << glora_rng_below(&rng, 8));
            else buf[at] = (uint8_t)interesting[glora_rng_below(&rng, sizeof interesting - 1)];
        }
        if (kind == 2 || kind == 3) n = glora_rng_below(&rng, size + 1);
        if (kind == 4) /* a length field near the true one, or anything */
            buf[glora_rng_below(&rng, 8)] = (uint8_t)glora_rng_u64(&rng);
        glora_st_t *st;
        if (glora_st_open_buffer(&st, buf, n, "fuzz") == GLORA_OK) {
            accepted++;
            for (size_t i = 0; i < glora_st_count(st); i++) {
                const glora_st_tensor_t *t = glora_st_tensor(st, i);
                assert_true(t->nbytes <= n);
                float *dst = malloc((t->numel ? t->numel : 1) * sizeof *dst);
                assert_non_null(dst);
                glora_st_read_f32(st, t, dst, t->numel);
                assert_ptr_equal(glora_st_find(st, t->name), t);
                free(dst);
            }
            glora_st_close(st);
        } else {
            assert_non_null(strstr(glora_errmsg(), "fuzz"));
        }
        free(buf);
    }
    /* Both outcomes must have happened, or the loop tested nothing. */
    assert_true(accepted > 0 && accepted < iters);
    free(orig);
}

/* Files written by the Python reference (tests/ref/st.py, json.dumps with
 * sorted keys, tensors ordered by element size then name). */
static void test_python_fixtures(void **state) {
    (void)state;
    static const char *const files[] = {"backbone", "supernet", "forward", "train_step"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/tests/fixtures/ref/%s.safetensors", GLORA_SRCDIR, files[i]);
        glora_st_t *st;
        if (glora_st_open(&st, path) != GLORA_OK) fail_msg("%s", glora_errmsg());
        assert_true(glora_st_count(st) > 0);
        if (i == 0) {
            assert_string_equal(glora_st_meta(st, "glora.heads"), "3");
            float w[72 * 24];
            const int64_t shape[2] = {72, 24};
            assert_int_equal(glora_st_load_f32(st, "blocks.0.attn.qkv.weight", 2, shape, w),
                             GLORA_OK);
            /* First values as numpy prints them from the same file. */
            assert_float_equal(w[0], 0.19896889, 1e-7);
            assert_float_equal(w[1], -0.05904493, 1e-7);
            assert_float_equal(w[2], -0.22955374, 1e-7);
        }
        glora_st_close(st);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_known_bytes),
        cmocka_unit_test(test_python_layout_and_dtypes),
        cmocka_unit_test(test_python_fixtures),
        cmocka_unit_test(test_f16_exhaustive),
        cmocka_unit_test(test_validation),
        cmocka_unit_test(test_writer_rejects),
        cmocka_unit_test(test_atomic_failure),
        cmocka_unit_test(test_fuzz),
    };
    return cmocka_run_group_tests(tests, tmpdir_setup, tmpdir_teardown);
}
