/* Real ViT checkpoints against PyTorch (fixtures written by
 * tests/ref/make_vit_fixtures.py into tests/fixtures/vit):
 *  - a timm-named safetensors file, Google's .npz layout (stored and
 *    deflated) and a headless timm file give PyTorch's logits / features;
 *  - the .npz and the safetensors file give bit-identical parameters;
 *  - the head count's sources (config.json, model.arch, heads) and their
 *    conflicts; the timm architecture table; config.json parsing;
 *  - malformed archives: one-line errors naming the file and the entry. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "glora/common.h"
#include "util/fileio.h"
#include "glora/model.h"
#include "glora/npz.h"
#include "glora/safetensors.h"
#include "glora/timm.h"
#include "tmpdir.h"

#define FIXV GLORA_SRCDIR "/tests/fixtures/vit/"

static float *read_tensor(const char *path, const char *name, size_t *n) {
    glora_st_t *st;
    assert_int_equal(glora_st_open(&st, path), GLORA_OK);
    const glora_st_tensor_t *t = glora_st_find(st, name);
    assert_non_null(t);
    float *v = malloc(t->numel * sizeof *v);
    assert_int_equal(glora_st_read_f32(st, t, v, t->numel), GLORA_OK);
    *n = t->numel;
    glora_st_close(st);
    return v;
}

/* Runs m on the fixture input; returns max |error| / max |reference| of the
 * logits (or, without a head, of the final norm's cls features). */
static double forward_error(const glora_vit_t *m) {
    size_t nx, nref;
    float *x = read_tensor(FIXV "io.safetensors", "x", &nx);
    float *ref = read_tensor(FIXV "io.safetensors", m->arch.num_classes ? "logits" : "features", &nref);
    size_t per = (size_t)m->arch.in_chans * m->arch.img_size * m->arch.img_size, B = nx / per;
    glora_vit_linears_t *lin;
    glora_vit_acts_t *a;
    assert_int_equal(glora_vit_linears_create(&lin, m), GLORA_OK);
    assert_int_equal(glora_vit_acts_create(&a, m, B, 0), GLORA_OK);
    glora_vit_forward(m, lin, a, x, B);
    const float *got = m->arch.num_classes ? a->logits : a->cls;
    size_t width = m->arch.num_classes ? (size_t)m->arch.num_classes : (size_t)m->arch.dim;
    assert_int_equal(B * width, nref);
    double maxabs = 0, maxerr = 0;
    for (size_t i = 0; i < nref; i++) {
        maxabs = fmax(maxabs, fabs(ref[i]));
        maxerr = fmax(maxerr, fabs((double)got[i] - ref[i]));
    }
    glora_vit_acts_free(a);
    glora_vit_linears_free(lin);
    free(x);
    free(ref);
    return maxerr / maxabs;
}

static void test_timm_safetensors(void **state) {
    (void)state;
    glora_vit_t *m;
    /* Heads from config.json's model_args beside the file. */
    assert_int_equal(glora_vit_load(&m, FIXV "model.safetensors", NULL, 0), GLORA_OK);
    assert_int_equal(m->arch.heads, 4);
    assert_int_equal(m->arch.img_size, 64);
    assert_int_equal(m->arch.patch, 16);
    assert_int_equal(m->arch.num_classes, 10);
    double e = forward_error(m);
    print_message("timm safetensors: max rel logit error %.3g\n", e);
    assert_true(e <= 1e-4);
    glora_vit_free(m);
}

static void test_google_npz(void **state) {
    (void)state;
    glora_vit_t *ref, *m;
    assert_int_equal(glora_vit_load(&ref, FIXV "model.safetensors", NULL, 0), GLORA_OK);
    const char *files[] = {FIXV "model.npz", FIXV "model_deflated.npz"};
    for (int f = 0; f < 2; f++) {
        int rc = glora_vit_load(&m, files[f], NULL, 0);
        if (rc) fail_msg("%s", glora_errmsg());
        assert_int_equal(m->arch.heads, 4); /* from the query kernels */
        assert_int_equal(m->n_floats, ref->n_floats);
        /* The mapping is exact: the same bits as timm's own file. */
        for (int i = 0; i < m->n_params; i++) {
            const glora_param_t *p = &m->params[i];
            if (memcmp(m->mem + p->offset, ref->mem + p->offset, p->numel * sizeof(float)) != 0)
                fail_msg("%s: tensor %s differs from the safetensors file", files[f], p->name);
        }
        double e = forward_error(m);
        print_message("%s: max rel logit error %.3g\n", files[f], e);
        assert_true(e <= 1e-4);
        glora_vit_free(m);
    }
    glora_vit_free(ref);
}

static void test_headless(void **state) {
    (void)state;
    glora_vit_t *m, *m2;
    assert_int_equal(glora_vit_load(&m, FIXV "nohead/model.safetensors", NULL, 0), GLORA_OK);
    assert_int_equal(m->arch.num_classes, 0);
    double e = forward_error(m);
    print_message("headless: max rel feature error %.3g\n", e);
    assert_true(e <= 1e-4);
    /* Saved without head tensors, and loads back the same. */
    char path[128];
    snprintf(path, sizeof path, "%s/nohead.safetensors", tmpdir);
    assert_int_equal(glora_vit_save(m, path, GLORA_ROLE_ALL, NULL, 0), GLORA_OK);
    glora_st_t *st;
    assert_int_equal(glora_st_open(&st, path), GLORA_OK);
    assert_null(glora_st_find(st, "head.weight"));
    glora_st_close(st);
    assert_int_equal(glora_vit_load(&m2, path, NULL, 0), GLORA_OK);
    assert_int_equal(m2->arch.num_classes, 0);
    assert_memory_equal(m2->mem, m->mem, m->n_floats * sizeof(float));
    glora_vit_free(m2);
    glora_vit_free(m);
}

static void copy_file(const char *from, const char *to) {
    char *data;
    size_t n;
    assert_int_equal(glora_read_file(from, 1u << 26, &data, &n), GLORA_OK);
    assert_int_equal(glora_write_atomic(to, data, n), GLORA_OK);
    free(data);
}

static void write_text(const char *path, const char *text) {
    assert_int_equal(glora_write_atomic(path, text, strlen(text)), GLORA_OK);
}

static void expect_error(int rc, const char *a, const char *b) {
    const char *msg = glora_errmsg();
    if (rc >= 0) fail_msg("expected an error mentioning '%s'", a);
    if (strchr(msg, '\n')) fail_msg("message spans lines: %s", msg);
    if (a && !strstr(msg, a)) fail_msg("message lacks '%s': %s", a, msg);
    if (b && !strstr(msg, b)) fail_msg("message lacks '%s': %s", b, msg);
}

static void test_head_count_sources(void **state) {
    (void)state;
    char dir[128], path[160], cfg[160];
    snprintf(dir, sizeof dir, "%s/heads", tmpdir);
    assert_int_equal(glora_mkdir_p(dir), GLORA_OK);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    snprintf(cfg, sizeof cfg, "%s/config.json", dir);
    copy_file(FIXV "model.safetensors", path);
    glora_vit_t *m = NULL;
    /* Nothing says: the message lists the ways and the hint the table. */
    expect_error(glora_vit_load(&m, path, NULL, 0), path, "attention heads");
    assert_non_null(strstr(glora_errhint(), "vit_base_patch16_224"));
    assert_int_equal(glora_vit_load(&m, path, NULL, 4), GLORA_OK);
    glora_vit_free(m);
    /* model.arch must name a known architecture that fits the tensors. */
    glora_vit_load_opts_t o = {.arch = "vit_base_patch16_224"};
    expect_error(glora_vit_load_ex(&m, path, NULL, &o), "vit_base_patch16_224", "dim 32");
    o.arch = "vit_gigantic_patch3";
    expect_error(glora_vit_load_ex(&m, path, NULL, &o), "vit_gigantic_patch3", "model.arch");
    /* config.json: heads from model_args, conflicts refused. */
    write_text(cfg, "{\"architecture\": \"x\", \"num_classes\": 10, \"model_args\": {\"num_heads\": 4}}");
    assert_int_equal(glora_vit_load(&m, path, NULL, 0), GLORA_OK);
    assert_int_equal(m->arch.heads, 4);
    glora_vit_free(m);
    expect_error(glora_vit_load(&m, path, NULL, 2), "says 2", "says 4");
    write_text(cfg, "{\"num_classes\": 1000, \"model_args\": {\"num_heads\": 4}}");
    expect_error(glora_vit_load(&m, path, NULL, 0), "num_classes 1000", "10 classes");
    write_text(cfg, "{\"architecture\": \"vit_small_patch16_224\"}");
    expect_error(glora_vit_load(&m, path, NULL, 0), "vit_small_patch16_224", "config.json");
    write_text(cfg, "{\"num_classes\": 10, \"num_classes\": 10}");
    expect_error(glora_vit_load(&m, path, NULL, 4), "config.json", "appears twice");
}

static void test_arch_table(void **state) {
    (void)state;
    const glora_timm_arch_t *t = glora_timm_arch_find("timm/vit_base_patch16_224.augreg_in21k");
    assert_non_null(t);
    assert_int_equal(t->heads, 12);
    assert_int_equal(t->dim, 768);
    assert_ptr_equal(glora_timm_arch_find("vit_base_patch16_224_in21k"), t);
    t = glora_timm_arch_find("vit_large_patch32_384.orig_in21k");
    assert_non_null(t);
    assert_int_equal(t->heads, 16);
    assert_int_equal(t->depth, 24);
    assert_int_equal(glora_timm_arch_find("deit_small_patch16_224.fb_in1k")->heads, 6);
    assert_int_equal(glora_timm_arch_find("vit_tiny_patch16_384")->dim, 192);
    assert_null(glora_timm_arch_find("deit_base_distilled_patch16_224"));
    assert_null(glora_timm_arch_find("vit_base_patch16_clip_224"));
    assert_null(glora_timm_arch_find(""));
}

static void test_timm_config(void **state) {
    (void)state;
    glora_timm_config_t c = {.num_classes = -1};
    assert_int_equal(glora_timm_config_read(FIXV "nohead/config.json", &c), GLORA_OK);
    assert_string_equal(c.architecture, "vit_glora_test_patch16_64");
    assert_int_equal(c.num_classes, 0);
    assert_int_equal(c.num_heads, 4);
    assert_int_equal(c.input_size[0], 3);
    assert_int_equal(c.input_size[2], 64);
    assert_string_equal(c.interpolation, "bicubic");
    assert_int_equal(c.n_mean, 3);
    assert_true(c.mean[1] == 0.456 && c.std[2] == 0.225 && c.crop_pct == 0.9);
    char cfg[160];
    snprintf(cfg, sizeof cfg, "%s/bad-config.json", tmpdir);
    static const char *const bad[][2] = {
        {"[1, 2]", "not a JSON object"},
        {"{\"pretrained_cfg\": {\"mean\": [0.5, 0.5], \"std\": 0.5}}", "pretrained_cfg.mean"},
        {"{\"pretrained_cfg\": {\"std\": [0.5, 0, 0.5]}}", "pretrained_cfg.std"},
        {"{\"pretrained_cfg\": {\"input_size\": [3, 224]}}", "pretrained_cfg.input_size"},
        {"{\"pretrained_cfg\": {\"crop_pct\": 1.5}}", "pretrained_cfg.crop_pct"},
        {"{\"pretrained_cfg\": {\"interpolation\": 3}}", "pretrained_cfg.interpolation"},
        {"{\"pretrained_cfg\": {\"a\": 1, \"b\": {\"c\": 1, \"c\": 2}}}", "appears twice"},
        {"{\"num_classes\": -1}", "num_classes"},
        {"{\"num_classes\": 2.5}", "num_classes"},
        {"{\"global_pool\": \"avg\"}", "global_pool"},
        {"{\"model_args\": {\"num_heads\": 0}}", "model_args.num_heads"},
        {"{\"architecture\": \"x\"", "invalid JSON"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_text(cfg, bad[i][0]);
        glora_timm_config_t d = {.num_classes = -1};
        expect_error(glora_timm_config_read(cfg, &d), cfg, bad[i][1]);
    }
}

/* ---- malformed archives --------------------------------------------------- */

static char *load_fixture(const char *name, size_t *n) {
    char *data;
    assert_int_equal(glora_read_file(name, 1u << 26, &data, n), GLORA_OK);
    return data;
}

static char *find_bytes(char *hay, size_t n, const char *needle, size_t len) {
    for (size_t i = 0; i + len <= n; i++)
        if (memcmp(hay + i, needle, len) == 0) return hay + i;
    return NULL;
}

/* Writes a modified copy of a fixture and checks that loading it fails with
 * a one-line message naming the copy and `what`. */
static void expect_bad(const char *data, size_t n, const char *what) {
    char path[160];
    snprintf(path, sizeof path, "%s/bad.npz", tmpdir);
    assert_int_equal(glora_write_atomic(path, data, n), GLORA_OK);
    glora_vit_t *m = NULL;
    expect_error(glora_vit_load(&m, path, NULL, 0), path, what);
    assert_null(m);
}

static void put_le32(char *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (char)(v >> (8 * i));
}

static void test_npz_malformed(void **state) {
    (void)state;
    size_t n;
    char *orig = load_fixture(FIXV "model.npz", &n), *d = malloc(n);
    assert_non_null(d);
#define RESET() memcpy(d, orig, n)
    /* Truncated: no end record. */
    RESET();
    expect_bad(d, n / 2, "end-of-central-directory");
    expect_bad(d, 10, "too short");
    /* Truncated inside the central directory's last bytes. */
    expect_bad(d, n - 3, "end-of-central-directory");
    /* A bad local header signature. */
    RESET();
    d[0] = 'X';
    expect_bad(d, n, "embedding/kernel.npy");
    expect_bad(d, n, "local header signature");
    /* A dtype glora cannot read, Fortran order, a shape the data contradict. */
    RESET();
    memcpy(find_bytes(d, n, "'descr': '<f4'", 14), "'descr': '<i4'", 14);
    expect_bad(d, n, "dtype '<i4'");
    RESET();
    memcpy(find_bytes(d, n, "'fortran_order': False", 22), "'fortran_order': True ", 22);
    expect_bad(d, n, "fortran_order");
    RESET();
    char *shape = find_bytes(d, n, "(16, 16, 3, 32)", 15);
    assert_non_null(shape);
    memcpy(shape, "(16, 16, 3, 33)", 15);
    expect_bad(d, n, "holds 98304 bytes");
    RESET();
    memcpy(find_bytes(d, n, "'shape': (", 10), "'shapf': (", 10);
    expect_bad(d, n, "unknown key");
    /* Hostile sizes in the central directory. */
    RESET();
    char *cd = find_bytes(d, n, "PK\1\2", 4);
    assert_non_null(cd);
    put_le32(cd + 20, 0x7fffffffu);
    put_le32(cd + 24, 0x7fffffffu);
    expect_bad(d, n, "runs past");
    RESET();
    cd = find_bytes(d, n, "PK\1\2", 4);
    put_le32(cd + 42, 0x7ffffff0u); /* local header offset */
    expect_bad(d, n, "local header offset");
    RESET();
    char *eocd = find_bytes(d + n - 22, 22, "PK\5\6", 4);
    assert_non_null(eocd);
    put_le32(eocd + 12, 0x00fffff0u); /* central directory size */
    expect_bad(d, n, "central directory");
    /* An array no classic ViT has. */
    RESET();
    for (char *p = d; (p = find_bytes(p, n - (size_t)(p - d), "pre_logits/bias.npy", 19)); p += 19)
        memcpy(p, "pre_logits/biaz.npy", 19);
    expect_bad(d, n, "pre_logits/biaz.npy");
    /* Data corruption is caught by the CRC. */
    RESET();
    char *data = find_bytes(d, n, "\x93NUMPY", 6);
    data[200] ^= 0x40;
    expect_bad(d, n, "CRC-32");
    free(orig);
    /* Deflated: corrupt compressed bytes. */
    orig = load_fixture(FIXV "model_deflated.npz", &n);
    d = realloc(d, n);
    RESET();
    for (size_t i = 2000; i < 2100; i++) d[i] ^= 0x5a;
    expect_bad(d, n, "embedding/kernel.npy");
#undef RESET
    free(orig);
    free(d);
}

static void test_npz_api(void **state) {
    (void)state;
    glora_npz_t *z;
    assert_int_equal(glora_npz_open(&z, FIXV "model_deflated.npz"), GLORA_OK);
    const glora_npz_array_t *a = glora_npz_find(z, "Transformer/encoderblock_1/MultiHeadDotProductAttention_1/out/kernel");
    assert_non_null(a);
    assert_int_equal(a->ndim, 3);
    assert_int_equal(a->shape[0], 4);
    assert_int_equal(a->shape[1], 8);
    assert_int_equal(a->shape[2], 32);
    assert_string_equal(a->descr, "<f4");
    float small[3];
    expect_error(glora_npz_read_f32(z, a, small, 3), "out/kernel.npy", "destination");
    assert_null(glora_npz_find(z, "Transformer/encoderblock_1/MultiHeadDotProductAttention_1/out/kernel.npy"));
    assert_true(glora_npz_sniff(FIXV "model.npz"));
    assert_false(glora_npz_sniff(FIXV "model.safetensors"));
    glora_npz_close(z);
    expect_error(glora_npz_open(&z, FIXV "model.safetensors"), "model.safetensors", "zip");
    assert_null(z);
}

static void test_unsupported_variants(void **state) {
    (void)state;
    glora_vit_t *m;
    assert_int_equal(glora_vit_load(&m, FIXV "model.safetensors", NULL, 0), GLORA_OK);
    char path[160];
    snprintf(path, sizeof path, "%s/variant.safetensors", tmpdir);
    static const char *const extra[] = {"fc_norm.weight", "dist_token", "norm_pre.bias", "blocks.0.ls1.gamma",
                                        "something.else"};
    for (size_t k = 0; k < sizeof extra / sizeof extra[0]; k++) {
        glora_st_entry_t *e = calloc((size_t)m->n_params + 1, sizeof *e);
        for (int i = 0; i < m->n_params; i++)
            e[i] = (glora_st_entry_t){m->params[i].name, m->params[i].ndim, m->params[i].shape,
                                      m->mem + m->params[i].offset};
        e[m->n_params] = (glora_st_entry_t){extra[k], 1, m->params[1].shape, m->mem};
        assert_int_equal(glora_st_write(path, e, (size_t)m->n_params + 1, NULL, 0), GLORA_OK);
        free(e);
        glora_vit_t *bad = NULL;
        expect_error(glora_vit_load(&bad, path, NULL, 4), path, extra[k]);
        assert_null(bad);
    }
    glora_vit_free(m);
}

/* ---- a zip64 archive built by hand ---------------------------------------- */

static unsigned char *put(unsigned char *p, uint64_t v, int n) {
    for (int i = 0; i < n; i++) *p++ = (unsigned char)(v >> (8 * i));
    return p;
}

/* One stored entry "a.npy" ('>f8', shape (2,)) with every size and offset in
 * zip64 fields, as a writer must for files over 4 GiB: the central header's
 * 32-bit fields hold 0xFFFFFFFF, the zip64 extra the values, and the end
 * record points through the zip64 locator at a zip64 end record. */
static size_t build_zip64(unsigned char *buf) {
    char npy[256];
    char hdr[] = "{'descr': '>f8', 'fortran_order': False, 'shape': (2,), }";
    size_t pre = 10 + sizeof hdr - 1, pad = (64 - pre % 64) % 64, hlen = sizeof hdr - 1 + pad;
    memcpy(npy, "\x93NUMPY\x01\x00", 8);
    npy[8] = (char)hlen;
    npy[9] = 0;
    memcpy(npy + 10, hdr, sizeof hdr - 1);
    memset(npy + 10 + sizeof hdr - 1, ' ', pad);
    npy[10 + hlen - 1] = '\n';
    const double vals[2] = {1.5, -2.25};
    size_t n = 10 + hlen;
    for (int k = 0; k < 2; k++) {
        uint64_t u;
        memcpy(&u, &vals[k], 8);
        for (int i = 0; i < 8; i++) npy[n++] = (char)(u >> (56 - 8 * i)); /* big-endian */
    }
    uint32_t crc = (uint32_t)crc32(0, (const unsigned char *)npy, (unsigned)n);
    unsigned char *p = buf;
    p = put(p, 0x04034b50, 4); p = put(p, 45, 2); p = put(p, 0, 2); p = put(p, 0, 2); p = put(p, 0, 4);
    p = put(p, crc, 4); p = put(p, 0xffffffffu, 4); p = put(p, 0xffffffffu, 4); p = put(p, 5, 2); p = put(p, 20, 2);
    memcpy(p, "a.npy", 5); p += 5;
    p = put(p, 1, 2); p = put(p, 16, 2); p = put(p, n, 8); p = put(p, n, 8);
    memcpy(p, npy, n); p += n;
    size_t cd = (size_t)(p - buf);
    p = put(p, 0x02014b50, 4); p = put(p, 45, 2); p = put(p, 45, 2); p = put(p, 0, 2); p = put(p, 0, 2);
    p = put(p, 0, 4); p = put(p, crc, 4); p = put(p, 0xffffffffu, 4); p = put(p, 0xffffffffu, 4);
    p = put(p, 5, 2); p = put(p, 28, 2); p = put(p, 0, 2); p = put(p, 0, 2); p = put(p, 0, 2); p = put(p, 0, 4);
    p = put(p, 0xffffffffu, 4);
    memcpy(p, "a.npy", 5); p += 5;
    p = put(p, 1, 2); p = put(p, 24, 2); p = put(p, n, 8); p = put(p, n, 8); p = put(p, 0, 8);
    size_t cd_size = (size_t)(p - buf) - cd, z64 = (size_t)(p - buf);
    p = put(p, 0x06064b50, 4); p = put(p, 44, 8); p = put(p, 45, 2); p = put(p, 45, 2); p = put(p, 0, 4);
    p = put(p, 0, 4); p = put(p, 1, 8); p = put(p, 1, 8); p = put(p, cd_size, 8); p = put(p, cd, 8);
    p = put(p, 0x07064b50, 4); p = put(p, 0, 4); p = put(p, z64, 8); p = put(p, 1, 4);
    p = put(p, 0x06054b50, 4); p = put(p, 0, 2); p = put(p, 0, 2); p = put(p, 0xffff, 2); p = put(p, 0xffff, 2);
    p = put(p, 0xffffffffu, 4); p = put(p, 0xffffffffu, 4); p = put(p, 0, 2);
    return (size_t)(p - buf);
}

static void test_npz_zip64(void **state) {
    (void)state;
    unsigned char buf[1024];
    size_t n = build_zip64(buf);
    char path[160];
    snprintf(path, sizeof path, "%s/zip64.npz", tmpdir);
    assert_int_equal(glora_write_atomic(path, buf, n), GLORA_OK);
    glora_npz_t *z;
    int rc = glora_npz_open(&z, path);
    if (rc) fail_msg("%s", glora_errmsg());
    const glora_npz_array_t *a = glora_npz_find(z, "a");
    assert_non_null(a);
    assert_string_equal(a->descr, ">f8");
    float v[2];
    assert_int_equal(glora_npz_read_f32(z, a, v, 2), GLORA_OK);
    assert_true(v[0] == 1.5f && v[1] == -2.25f);
    glora_npz_close(z);
    /* A locator pointing nowhere: refused. */
    buf[n - 22 - 20 + 8] ^= 0x10;
    assert_int_equal(glora_write_atomic(path, buf, n), GLORA_OK);
    expect_error(glora_npz_open(&z, path), path, "zip64");
}

/* Released pages read back the same bytes (from the file). */
static void test_st_release(void **state) {
    (void)state;
    glora_st_t *st;
    assert_int_equal(glora_st_open(&st, FIXV "model.safetensors"), GLORA_OK);
    const glora_st_tensor_t *t = glora_st_find(st, "patch_embed.proj.weight");
    assert_non_null(t);
    float *a = malloc(t->nbytes), *b = malloc(t->nbytes);
    assert_int_equal(glora_st_read_f32(st, t, a, t->numel), GLORA_OK);
    glora_st_release(st, t);
    assert_int_equal(glora_st_read_f32(st, t, b, t->numel), GLORA_OK);
    assert_memory_equal(a, b, t->nbytes);
    free(a);
    free(b);
    glora_st_close(st);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timm_safetensors),
        cmocka_unit_test(test_google_npz),
        cmocka_unit_test(test_headless),
        cmocka_unit_test(test_head_count_sources),
        cmocka_unit_test(test_arch_table),
        cmocka_unit_test(test_timm_config),
        cmocka_unit_test(test_npz_malformed),
        cmocka_unit_test(test_npz_api),
        cmocka_unit_test(test_unsupported_variants),
        cmocka_unit_test(test_st_release),
        cmocka_unit_test(test_npz_zip64),
    };
    return cmocka_run_group_tests(tests, tmpdir_setup, tmpdir_teardown);
}
