/* The ViT and the GLoRA layer against outside references:
 *  - logits of the PyTorch reference (tests/fixtures/ref) for the plain
 *    backbone and for eight supernet configurations;
 *  - merged vs unmerged layer outputs for every one of the 432 official
 *    configurations, the unmerged side computed term by term in double;
 *  - merged vs unmerged whole models for random configurations;
 *  - the adapter gradients against finite differences in double;
 *  - parameter counting against hand-computed values;
 *  - subnet specs: round trip, official spellings, and bad files. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "glora/common.h"
#include "util/fileio.h"
#include "glora/layer.h"
#include "glora/model.h"
#include "glora/nn.h"
#include "glora/search.h"
#include "util/parallel.h"
#include "util/rng.h"
#include "glora/gemm.h"
#include "glora/safetensors.h"
#include "glora/spec.h"

#define FIX GLORA_SRCDIR "/tests/fixtures/ref/"

static void fill_random(float *v, size_t n, glora_rng_t *r, float scale) {
    for (size_t i = 0; i < n; i++) v[i] = scale * (float)glora_rng_normal(r);
}

/* An adapter of out x in, rank R, whose eight tensors lie one after the
 * other in one fresh buffer (glora_adapter_sizes' order): returns the
 * buffer (the caller frees it) and its floats in *total. */
static float *adapter_in_buffer(glora_adapter_t *ad, int out, int in, int R, size_t *total) {
    size_t sz[8], n = 0;
    glora_adapter_sizes(out, in, R, sz);
    for (int i = 0; i < 8; i++) n += sz[i];
    float *mem = malloc(sizeof(float) * n);
    assert_non_null(mem);
    *ad = (glora_adapter_t){.out = out, .in = in, .rank = R};
    float **slots[8] = {&ad->Ad, &ad->Au, &ad->Bd, &ad->Bu, &ad->Cd, &ad->Cu, &ad->D, &ad->E};
    size_t off = 0;
    for (int i = 0; i < 8; i++) { *slots[i] = mem + off; off += sz[i]; }
    *total = n;
    return mem;
}

/* Reads configs.json's configurations into specs-like layer arrays. */
static int load_ref_configs(const glora_vit_t *m, char names[16][64], glora_layer_cfg_t cfg[16][64]) {
    char *text;
    size_t n;
    assert_int_equal(glora_read_file(FIX "configs.json", 1 << 20, &text, &n), GLORA_OK);
    cJSON *root = cJSON_Parse(text);
    free(text);
    assert_non_null(root);
    const cJSON *list = cJSON_GetObjectItem(root, "configs"), *c;
    int k = 0;
    cJSON_ArrayForEach(c, list) {
        assert_true(k < 16);
        snprintf(names[k], 64, "%s", cJSON_GetObjectItem(c, "name")->valuestring);
        const cJSON *layer;
        cJSON_ArrayForEach(layer, cJSON_GetObjectItem(c, "layers")) {
            int l = glora_vit_layer_index(m, layer->string);
            assert_true(l >= 0);
            for (int t = 0; t < GLORA_NTENSORS; t++) {
                const char *s = cJSON_GetObjectItem(layer, glora_tensor_letter(t))->valuestring;
                assert_int_equal(glora_choice_parse(s, t, m->rank, &cfg[k][l].t[t]), GLORA_OK);
            }
        }
        k++;
    }
    cJSON_Delete(root);
    return k;
}

static void check_logits(const float *got, const float *want, size_t n, const char *what) {
    double maxabs = 0, maxerr = 0;
    for (size_t i = 0; i < n; i++) {
        if (fabs(want[i]) > maxabs) maxabs = fabs(want[i]);
        double e = fabs((double)got[i] - want[i]);
        if (e > maxerr) maxerr = e;
    }
    if (maxerr > 1e-4 * maxabs) {
        fail_msg("%s: max |error| %.3g exceeds 1e-4 * max |logit| %.3g", what, maxerr, maxabs);
    }
}

static void test_reference_logits(void **state) {
    (void)state;
    glora_st_t *fw;
    assert_int_equal(glora_st_open(&fw, FIX "forward.safetensors"), GLORA_OK);
    float x[4 * 3 * 8 * 8], want[4 * 7], got[4 * 7];
    assert_int_equal(glora_st_load_f32(fw, "x", 4, (int64_t[]){4, 3, 8, 8}, x), GLORA_OK);

    /* The plain backbone. */
    glora_vit_t *bb;
    int rc = glora_vit_load(&bb, FIX "backbone.safetensors", NULL, 0);
    if (rc) fail_msg("%s", glora_errmsg());
    assert_int_equal(bb->arch.dim, 24);
    assert_int_equal(bb->arch.depth, 2);
    assert_int_equal(bb->arch.heads, 3);
    assert_int_equal(bb->arch.img_size, 8);
    assert_int_equal(bb->arch.num_classes, 7);
    assert_int_equal(bb->rank, 0);
    glora_vit_linears_t *lin;
    glora_vit_acts_t *acts;
    assert_int_equal(glora_vit_linears_create(&lin, bb), GLORA_OK);
    assert_int_equal(glora_vit_acts_create(&acts, bb, 4, 0), GLORA_OK);
    glora_vit_forward(bb, lin, acts, x, 4);
    assert_int_equal(glora_st_load_f32(fw, "logits.backbone", 2, (int64_t[]){4, 7}, want), GLORA_OK);
    memcpy(got, acts->logits, sizeof(float) * 28);
    check_logits(got, want, 28, "backbone");
    glora_vit_linears_free(lin);
    glora_vit_acts_free(acts);
    glora_vit_free(bb);

    /* The supernet under each configuration, with inference and training
     * workspaces (shared and per-block activations). */
    glora_vit_t *m;
    rc = glora_vit_load(&m, FIX "backbone.safetensors", FIX "supernet.safetensors", 0);
    if (rc) fail_msg("%s", glora_errmsg());
    assert_int_equal(m->rank, 4);
    assert_int_equal(m->arch.num_classes, 5);
    char names[16][64];
    static glora_layer_cfg_t cfg[16][64];
    int ncfg = load_ref_configs(m, names, cfg);
    assert_int_equal(ncfg, 8);
    assert_int_equal(glora_vit_linears_create(&lin, m), GLORA_OK);
    static float got_keep[3][16][20];
    /* keep 0: inference, 1: training workspace, 2: inference with packed
     * weights (as the search runs it). */
    for (int keep = 0; keep <= 2; keep++) {
        if (keep == 2) assert_int_equal(glora_vit_linears_pack(lin), GLORA_OK);
        assert_int_equal(glora_vit_acts_create(&acts, m, 3, keep == 1), GLORA_OK);
        for (int k = 0; k < ncfg; k++) {
            char key[96];
            snprintf(key, sizeof key, "logits.%s", names[k]);
            assert_int_equal(glora_st_load_f32(fw, key, 2, (int64_t[]){4, 5}, want), GLORA_OK);
            glora_vit_linears_set(lin, m, cfg[k]);
            /* Batches of 3 then 1: the batch size must not matter. */
            glora_vit_forward(m, lin, acts, x, 3);
            memcpy(got, acts->logits, sizeof(float) * 15);
            glora_vit_forward(m, lin, acts, x + 3 * 192, 1);
            memcpy(got + 15, acts->logits, sizeof(float) * 5);
            check_logits(got, want, 20, key);
            memcpy(got_keep[keep][k], got, sizeof got_keep[keep][k]);
        }
        glora_vit_acts_free(acts);
    }
    /* The inference pass runs the last block for the cls token alone; the
     * training pass runs every token: the logits must be the same bits. */
    for (int k = 0; k < ncfg; k++) {
        assert_memory_equal(got_keep[0][k], got_keep[1][k], sizeof got_keep[0][k]);
        assert_memory_equal(got_keep[2][k], got_keep[1][k], sizeof got_keep[0][k]);
    }
    glora_vit_linears_free(lin);
    glora_vit_free(m);
    glora_st_close(fw);
}

/* precision bf16: the logits of every reference configuration against the
 * PyTorch fp32 fixtures (the relative error is printed; bf16 keeps 8
 * significant bits of each operand, so a bound of 5e-2 of the largest
 * logit); unpacked and packed weights, the emulation and the AVX512_BF16
 * kernel (where present) give the same bits; fp32 is untouched after. */
static void test_bf16_logits(void **state) {
    (void)state;
    glora_st_t *fw;
    assert_int_equal(glora_st_open(&fw, FIX "forward.safetensors"), GLORA_OK);
    float x[4 * 3 * 8 * 8], want[20], got[3][20];
    assert_int_equal(glora_st_load_f32(fw, "x", 4, (int64_t[]){4, 3, 8, 8}, x), GLORA_OK);
    glora_vit_t *m;
    int rc = glora_vit_load(&m, FIX "backbone.safetensors", FIX "supernet.safetensors", 0);
    if (rc) fail_msg("%s", glora_errmsg());
    m->precision = GLORA_BF16;
    char names[16][64];
    static glora_layer_cfg_t cfg[16][64];
    int ncfg = load_ref_configs(m, names, cfg);
    glora_vit_linears_t *lin, *lin_packed;
    glora_vit_acts_t *acts;
    assert_int_equal(glora_vit_linears_create(&lin, m), GLORA_OK);
    assert_int_equal(glora_vit_linears_create(&lin_packed, m), GLORA_OK);
    assert_int_equal(glora_vit_linears_pack(lin_packed), GLORA_OK);
    assert_int_equal(glora_vit_acts_create(&acts, m, 4, 0), GLORA_OK);
    /* A training workspace (keep_all) runs attention in fp32: against it,
     * what bf16 attention alone changes. */
    glora_vit_acts_t *acts_all;
    assert_int_equal(glora_vit_acts_create(&acts_all, m, 4, 1), GLORA_OK);
    double worst = 0, worst_attn = 0, worst_f32attn = 0;
    for (int k = 0; k < ncfg; k++) {
        char key[96];
        snprintf(key, sizeof key, "logits.%s", names[k]);
        assert_int_equal(glora_st_load_f32(fw, key, 2, (int64_t[]){4, 5}, want), GLORA_OK);
        for (int v = 0; v < 3; v++) {
            /* 0: unpacked, 1: packed, 2: emulated */
            if (v == 2) assert_int_equal(glora_bgemm_set_kernel("emulated"), GLORA_OK);
            glora_vit_linears_t *l = v == 1 ? lin_packed : lin;
            glora_vit_linears_set(l, m, cfg[k]);
            glora_vit_forward(m, l, acts, x, 4);
            memcpy(got[v], acts->logits, sizeof got[v]);
            glora_bgemm_set_kernel("auto");
        }
        assert_memory_equal(got[0], got[1], sizeof got[0]);
        assert_memory_equal(got[0], got[2], sizeof got[0]);
        double maxabs = 0, maxerr = 0;
        for (int i = 0; i < 20; i++) {
            if (fabs(want[i]) > maxabs) maxabs = fabs(want[i]);
            if (fabs((double)got[0][i] - want[i]) > maxerr) maxerr = fabs((double)got[0][i] - want[i]);
        }
        if (maxerr > 5e-2 * maxabs)
            fail_msg("bf16 %s: max |error| %.3g exceeds 5e-2 * max |logit| %.3g", key, maxerr, maxabs);
        if (maxerr / maxabs > worst) worst = maxerr / maxabs;
        glora_vit_forward(m, lin, acts_all, x, 4);
        double attn = 0, f32attn = 0;
        for (int i = 0; i < 20; i++) {
            attn = fmax(attn, fabs((double)acts_all->logits[i] - got[0][i]));
            f32attn = fmax(f32attn, fabs((double)acts_all->logits[i] - want[i]));
        }
        if (f32attn / maxabs > worst_f32attn) worst_f32attn = f32attn / maxabs;
        /* bf16 attention rounds q, k, v and the probabilities: it moves the
         * logits (not by more than the products' rounding does). */
        assert_true(attn > 0 && attn <= 5e-2 * maxabs);
        if (attn / maxabs > worst_attn) worst_attn = attn / maxabs;
    }
    print_message("bf16 logits vs the fp32 PyTorch fixtures: max |error| / max |logit| = %.2e "
                  "(worst of %d configurations; %.2e with fp32 attention); bf16 attention alone "
                  "(against fp32 attention, same bf16 products): %.2e\n", worst, ncfg, worst_f32attn,
                  worst_attn);
    glora_vit_acts_free(acts_all);
    glora_vit_linears_free(lin);
    glora_vit_linears_free(lin_packed);
    glora_vit_acts_free(acts);
    glora_vit_free(m);
    glora_st_close(fw);
}

/* y = x W'^T + b' computed term by term in double, never forming W'. */
static void unmerged_layer(double *y, const float *x, int n, const float *w0, const float *b0,
                           const glora_adapter_t *ad, const glora_layer_cfg_t *cfg) {
    const int out = ad->out, in = ad->in, R = ad->rank;
    glora_choice_t A = cfg->t[0], B = cfg->t[1], C = cfg->t[2], D = cfg->t[3], E = cfg->t[4];
    for (int s = 0; s < n; s++) {
        const float *xs = x + (size_t)s * in;
        for (int o = 0; o < out; o++) {
            double acc = 0;
            for (int i = 0; i < in; i++) {
                double w = w0[(size_t)o * in + i];
                double a = 0, b = 0;
                if (A.kind == GLORA_LORA)
                    for (int r = 0; r < A.rank; r++) a += (double)ad->Ad[o * R + r] * ad->Au[r * in + i];
                if (A.kind == GLORA_VECTOR) a = ad->Ad[o * R];
                if (A.kind == GLORA_SCALAR) a = ad->Ad[0];
                if (B.kind == GLORA_LORA)
                    for (int r = 0; r < B.rank; r++) b += (double)ad->Bd[o * R + r] * ad->Bu[r * in + i];
                if (B.kind == GLORA_VECTOR) b = ad->Bd[o * R];
                if (B.kind == GLORA_SCALAR) b = ad->Bd[0];
                acc += xs[i] * (w + w * a + b);
            }
            double bias = b0[o];
            double d = D.kind == GLORA_VECTOR ? ad->D[o] : D.kind == GLORA_SCALAR ? ad->D[0] : 0;
            double e = E.kind == GLORA_VECTOR ? ad->E[o] : E.kind == GLORA_SCALAR ? ad->E[0] : 0;
            double prompt = 0;
            for (int i = 0; i < in; i++) {
                double c = 0;
                if (C.kind == GLORA_LORA)
                    for (int r = 0; r < C.rank; r++) c += (double)ad->Cd[i * R + r] * ad->Cu[r];
                if (C.kind == GLORA_VECTOR) c = ad->Cd[i * R];
                prompt += (double)w0[(size_t)o * in + i] * c;
            }
            y[(size_t)s * out + o] = acc + bias + bias * d + e + prompt;
        }
    }
}

static void test_merge_all_432(void **state) {
    (void)state;
    glora_rng_t rng;
    glora_rng_seed(&rng, 7);
    const int out = 13, in = 11, R = 4, n = 5;
    glora_adapter_t ad;
    size_t total;
    float *mem = adapter_in_buffer(&ad, out, in, R, &total);
    fill_random(mem, total, &rng, 0.3f);
    float w0[13 * 11], b0[13], x[5 * 11], w[13 * 11], b[13], scratch[13 * 11], y[5 * 13];
    double ref[5 * 13];
    fill_random(w0, sizeof w0 / 4, &rng, 0.5f);
    fill_random(b0, 13, &rng, 0.5f);
    fill_random(x, sizeof x / 4, &rng, 1.0f);
    glora_space_t space;
    glora_space_official(&space, R);
    assert_int_equal(glora_space_size(&space), 432);
    for (size_t i = 0; i < glora_space_size(&space); i++) {
        glora_layer_cfg_t cfg;
        glora_space_config(&space, i, &cfg);
        glora_adapter_merge(w, b, w0, b0, &ad, &cfg, scratch);
        for (int s = 0; s < n; s++)
            for (int o = 0; o < out; o++) {
                float acc = b[o];
                for (int k = 0; k < in; k++) acc += x[s * in + k] * w[o * in + k];
                y[s * out + o] = acc;
            }
        unmerged_layer(ref, x, n, w0, b0, &ad, &cfg);
        double maxabs = 0, maxerr = 0;
        for (int k = 0; k < n * out; k++) {
            if (fabs(ref[k]) > maxabs) maxabs = fabs(ref[k]);
            if (fabs(ref[k] - y[k]) > maxerr) maxerr = fabs(ref[k] - y[k]);
        }
        if (maxerr > 1e-4 * maxabs) fail_msg("configuration %zu: max |error| %.3g", i, maxerr);
    }
    /* Sub-rank slices only read the first r columns: poisoning the rest
     * must not change the merged weights. */
    glora_layer_cfg_t sub = {{{GLORA_LORA, 2}, {GLORA_LORA, 1}, {GLORA_LORA, 3}, {GLORA_VECTOR, 0}, {GLORA_SCALAR, 0}}};
    glora_adapter_merge(w, b, w0, b0, &ad, &sub, scratch);
    float w2[13 * 11], b2[13];
    for (int o = 0; o < out; o++) { ad.Ad[o * R + 3] = NAN; ad.Bd[o * R + 2] = NAN; }
    for (int i = 0; i < in; i++) ad.Cd[i * R + 3] = NAN;
    glora_adapter_merge(w2, b2, w0, b0, &ad, &sub, scratch);
    assert_memory_equal(w, w2, sizeof w);
    assert_memory_equal(b, b2, sizeof b);
    free(mem);
}

/* Loss = sum(G (.) W') + sum(g (.) b') for fixed random G, g; its gradient
 * with respect to the stored tensors is what glora_adapter_backward gives
 * for dw = G, db = g. Checked by central differences in double. */
static double merged_objective(const float *G, const float *g, const float *w0, const float *b0,
                               const glora_adapter_t *ad, const glora_layer_cfg_t *cfg) {
    int out = ad->out, in = ad->in;
    double *y = malloc(sizeof(double) * out * (in + 1));
    float *xid = calloc((size_t)(in + 1) * in, sizeof(float));
    /* y rows: x = e_i gives column i of W' plus b'; x = 0 gives b'. */
    for (int i = 0; i < in; i++) xid[i * in + i] = 1.0f;
    unmerged_layer(y, xid, in + 1, w0, b0, ad, cfg);
    double L = 0;
    for (int o = 0; o < out; o++) {
        double bo = y[(size_t)in * out + o];
        L += g[o] * bo;
        for (int i = 0; i < in; i++) L += G[o * in + i] * (y[(size_t)i * out + o] - bo);
    }
    free(y);
    free(xid);
    return L;
}

static void test_adapter_backward_fd(void **state) {
    (void)state;
    glora_rng_t rng;
    glora_rng_seed(&rng, 11);
    const int out = 6, in = 5, R = 3;
    glora_adapter_t ad, gr;
    size_t total;
    float *mem = adapter_in_buffer(&ad, out, in, R, &total), *gmem = adapter_in_buffer(&gr, out, in, R, &total);
    fill_random(mem, total, &rng, 0.5f);
    float w0[30], b0[6], G[30], g[6], scratch[30];
    fill_random(w0, 30, &rng, 0.7f);
    fill_random(b0, 6, &rng, 0.7f);
    fill_random(G, 30, &rng, 1.0f);
    fill_random(g, 6, &rng, 1.0f);
    glora_space_t space;
    glora_space_official(&space, R);
    /* Official space at rank 3 and sub-rank variants. */
    for (size_t ci = 0; ci < glora_space_size(&space) + 20; ci++) {
        glora_layer_cfg_t cfg;
        if (ci < glora_space_size(&space)) {
            glora_space_config(&space, ci, &cfg);
        } else {
            glora_space_config(&space, glora_rng_below(&rng, glora_space_size(&space)), &cfg);
            for (int t = 0; t < 3; t++)
                if (cfg.t[t].kind == GLORA_LORA) cfg.t[t].rank = (uint8_t)(1 + glora_rng_below(&rng, R));
        }
        memset(gmem, 0, sizeof(float) * total);
        glora_adapter_backward(&gr, G, g, w0, b0, &ad, &cfg, scratch);
        for (size_t k = 0; k < total; k++) {
            float keep = mem[k];
            /* Perturb in float and evaluate in double: h large enough for
             * float storage, the objective is linear or bilinear in each
             * single entry so central differences are exact up to rounding. */
            const float h = 1e-2f;
            mem[k] = keep + h;
            double lp = merged_objective(G, g, w0, b0, &ad, &cfg);
            mem[k] = keep - h;
            double lm = merged_objective(G, g, w0, b0, &ad, &cfg);
            mem[k] = keep;
            double fd = (lp - lm) / (2.0 * h);
            if (fabs(fd - gmem[k]) > 1e-3 * (1.0 + fabs(fd)))
                fail_msg("configuration %zu, element %zu: backward %.6g, finite difference %.6g", ci, k,
                         gmem[k], fd);
        }
    }
    free(mem);
    free(gmem);
}

/* The row form (glora_adapter_forward_rows / _finish_rows /
 * _backward_rows), for every configuration whose A is not a LoRA in the
 * official space at rank 3 and sub-rank variants: the forward against the
 * double reference term by term, finish_rows rebuilding the same bits,
 * and the gradients of L = sum(G (.) Y) with respect to every stored tensor
 * and to X against central differences of the double reference. */
static double rows_objective(const float *x, int n, const float *G, const float *w0, const float *b0,
                             const glora_adapter_t *ad, const glora_layer_cfg_t *cfg) {
    double *y = malloc(sizeof(double) * (size_t)n * ad->out), L = 0;
    unmerged_layer(y, x, n, w0, b0, ad, cfg);
    for (int k = 0; k < n * ad->out; k++) L += G[k] * y[k];
    free(y);
    return L;
}

static void test_adapter_rows_fd(void **state) {
    (void)state;
    glora_rng_t rng;
    glora_rng_seed(&rng, 23);
    enum { OUT = 6, IN = 5, R = 3, N = 4 };
    glora_adapter_t ad, gr;
    size_t total;
    float *mem = adapter_in_buffer(&ad, OUT, IN, R, &total), *gmem = adapter_in_buffer(&gr, OUT, IN, R, &total);
    fill_random(mem, total, &rng, 0.5f);
    float w0[OUT * IN], b0[OUT], x[N * IN], G[N * OUT], bp[OUT], y[N * OUT], y0[N * OUT],
        y2[N * OUT], dx[N * IN];
    float *scratch = malloc(sizeof(float) * glora_adapter_rows_scratch(N, OUT, R));
    double ref[N * OUT];
    fill_random(w0, OUT * IN, &rng, 0.7f);
    fill_random(b0, OUT, &rng, 0.7f);
    fill_random(x, N * IN, &rng, 1.0f);
    fill_random(G, N * OUT, &rng, 1.0f);
    glora_space_t space;
    glora_space_official(&space, R);
    int checked = 0;
    for (size_t ci = 0; ci < glora_space_size(&space) + 40; ci++) {
        glora_layer_cfg_t cfg;
        if (ci < glora_space_size(&space)) {
            glora_space_config(&space, ci, &cfg);
        } else {
            glora_space_config(&space, glora_rng_below(&rng, glora_space_size(&space)), &cfg);
            for (int t = 0; t < 3; t++)
                if (cfg.t[t].kind == GLORA_LORA) cfg.t[t].rank = (uint8_t)(1 + glora_rng_below(&rng, R));
        }
        if (!glora_adapter_rowform(&cfg)) continue;
        checked++;
        /* forward */
        glora_adapter_bias(bp, w0, b0, &ad, &cfg);
        glora_adapter_forward_rows(y, y0, x, N, w0, bp, &ad, &cfg, scratch, GLORA_FP32);
        unmerged_layer(ref, x, N, w0, b0, &ad, &cfg);
        for (int k = 0; k < N * OUT; k++)
            if (fabs(ref[k] - y[k]) > 1e-5 * (1.0 + fabs(ref[k])))
                fail_msg("configuration %zu: forward y[%d] %.7g, reference %.7g", ci, k, y[k], ref[k]);
        if (glora_adapter_needs_y0(&cfg)) {
            glora_adapter_finish_rows(y2, y0, x, N, bp, &ad, &cfg, scratch);
            assert_memory_equal(y, y2, sizeof y);
        }
        /* backward */
        memset(gmem, 0, sizeof(float) * total);
        glora_adapter_backward_rows(&gr, dx, G, x, y0, N, w0, b0, &ad, &cfg, scratch, GLORA_FP32);
        const float h = 1e-2f;
        for (size_t k = 0; k < total + N * IN; k++) {
            float *p = k < total ? &mem[k] : &x[k - total];
            float keep = *p;
            *p = keep + h;
            double lp = rows_objective(x, N, G, w0, b0, &ad, &cfg);
            *p = keep - h;
            double lm = rows_objective(x, N, G, w0, b0, &ad, &cfg);
            *p = keep;
            double fd = (lp - lm) / (2.0 * h), got = k < total ? gmem[k] : dx[k - total];
            if (fabs(fd - got) > 1e-3 * (1.0 + fabs(fd)))
                fail_msg("configuration %zu, %s element %zu: backward %.6g, finite difference %.6g", ci,
                         k < total ? "adapter" : "input", k < total ? k : k - total, got, fd);
        }
        /* Without gradient buffers (a frozen adapter) dX is the same. */
        float dx2[N * IN];
        glora_adapter_backward_rows(NULL, dx2, G, x, y0, N, w0, b0, &ad, &cfg, scratch, GLORA_FP32);
        assert_memory_equal(dx, dx2, sizeof dx);
    }
    assert_true(checked >= 324);
    free(scratch);
    free(mem);
    free(gmem);
}

/* The row form in bf16: the products with the frozen W0 (Y0 = X W0^T and
 * dX's G W0) against double-precision sums of the bf16-rounded operands,
 * B's thin terms and the bias in double from the fp32 operands; the
 * gradients of the stored tensors are the fp32 path's bits. Tolerances are
 * fp32 accumulation's: (terms + 2) * 2^-24 * sum |term| for a pure product,
 * 1e-5 relative to the sum of |terms| once fp32 adapter terms join. And the
 * rounding must show: against the unrounded operands some element is off
 * by more than that. */
static double bf(float v) { return (double)glora_bf16_round(v); }

static void test_adapter_rows_bf16(void **state) {
    (void)state;
    glora_rng_t rng;
    glora_rng_seed(&rng, 29);
    enum { OUT = 40, IN = 48, R = 3, N = 5 };
    const double u = 0x1p-24;
    glora_adapter_t ad, gr, gr2;
    size_t total;
    float *mem = adapter_in_buffer(&ad, OUT, IN, R, &total), *gmem = adapter_in_buffer(&gr, OUT, IN, R, &total),
          *gmem2 = adapter_in_buffer(&gr2, OUT, IN, R, &total);
    fill_random(mem, total, &rng, 0.5f);
    static float w0[OUT * IN], b0[OUT], x[N * IN], G[N * OUT], bp[OUT], y[N * OUT], y0[N * OUT],
        yf[N * OUT], y0f[N * OUT], dx[N * IN], dxf[N * IN];
    float *scratch = malloc(sizeof(float) * glora_adapter_rows_scratch(N, OUT, R));
    fill_random(w0, OUT * IN, &rng, 0.7f);
    fill_random(b0, OUT, &rng, 0.7f);
    fill_random(x, N * IN, &rng, 1.0f);
    fill_random(G, N * OUT, &rng, 1.0f);
    glora_space_t space;
    glora_space_official(&space, R);
    int checked = 0, y0_rounded = 0, dx_rounded = 0;
    for (size_t ci = 0; ci < glora_space_size(&space); ci++) {
        glora_layer_cfg_t cfg;
        glora_space_config(&space, ci, &cfg);
        if (!glora_adapter_rowform(&cfg)) continue;
        checked++;
        glora_choice_t A = cfg.t[GLORA_A], B = cfg.t[GLORA_B];
        glora_adapter_bias(bp, w0, b0, &ad, &cfg);
        glora_adapter_forward_rows(y, y0, x, N, w0, bp, &ad, &cfg, scratch, GLORA_BF16);
        glora_adapter_forward_rows(yf, y0f, x, N, w0, bp, &ad, &cfg, scratch, GLORA_FP32);
        for (int n = 0; n < N; n++) {
            /* B's term in double from the fp32 operands. */
            double sx = 0, sxa = 0, P[R] = {0}, Pa[R] = {0};
            for (int i = 0; i < IN; i++) {
                sx += x[n * IN + i];
                sxa += fabs(x[n * IN + i]);
                for (int r = 0; r < B.rank; r++) {
                    P[r] += (double)x[n * IN + i] * ad.Bu[r * IN + i];
                    Pa[r] += fabs((double)x[n * IN + i] * ad.Bu[r * IN + i]);
                }
            }
            for (int o = 0; o < OUT; o++) {
                double s = 0, sa = 0, s32 = 0;
                for (int i = 0; i < IN; i++) {
                    s += bf(x[n * IN + i]) * bf(w0[o * IN + i]);
                    sa += fabs(bf(x[n * IN + i]) * bf(w0[o * IN + i]));
                    s32 += (double)x[n * IN + i] * w0[o * IN + i];
                }
                const double a = A.kind == GLORA_VECTOR ? ad.Ad[o * R] : A.kind == GLORA_SCALAR ? ad.Ad[0] : 0;
                double bt = 0, bta = 0;
                if (B.kind == GLORA_LORA)
                    for (int r = 0; r < B.rank; r++) {
                        bt += P[r] * ad.Bd[o * R + r];
                        bta += Pa[r] * fabs(ad.Bd[o * R + r]);
                    }
                else if (B.kind != GLORA_NONE) {
                    bt = sx * (B.kind == GLORA_VECTOR ? ad.Bd[o * R] : ad.Bd[0]);
                    bta = sxa * fabs(B.kind == GLORA_VECTOR ? ad.Bd[o * R] : ad.Bd[0]);
                }
                const double ref = s * (1 + a) + bp[o] + bt, mag = sa * (1 + fabs(a)) + fabs(bp[o]) + bta;
                const int k = n * OUT + o;
                if (glora_adapter_needs_y0(&cfg)) {
                    if (fabs(y0[k] - s) > (IN + 2) * u * sa)
                        fail_msg("configuration %zu: bf16 Y0[%d] %.9g, reference %.9g", ci, k, y0[k], s);
                    y0_rounded += fabs(y0[k] - s32) > (IN + 2) * u * sa;
                }
                if (fabs(y[k] - ref) > 1e-5 * (1 + mag))
                    fail_msg("configuration %zu: bf16 y[%d] %.9g, reference %.9g", ci, k, y[k], ref);
            }
        }
        /* backward: dX from the bf16 product, the tensors' gradients fp32 */
        memset(gmem, 0, sizeof(float) * total);
        memset(gmem2, 0, sizeof(float) * total);
        glora_adapter_backward_rows(&gr, dx, G, x, y0f, N, w0, b0, &ad, &cfg, scratch, GLORA_BF16);
        glora_adapter_backward_rows(&gr2, dxf, G, x, y0f, N, w0, b0, &ad, &cfg, scratch, GLORA_FP32);
        assert_memory_equal(gmem, gmem2, sizeof(float) * total);
        for (int n = 0; n < N; n++) {
            double Q[R] = {0}, Qa[R] = {0}, gb = 0, gba = 0;
            for (int o = 0; o < OUT; o++) {
                for (int r = 0; r < B.rank; r++) {
                    Q[r] += (double)G[n * OUT + o] * ad.Bd[o * R + r];
                    Qa[r] += fabs((double)G[n * OUT + o] * ad.Bd[o * R + r]);
                }
                const double beta = B.kind == GLORA_VECTOR ? ad.Bd[o * R] : B.kind == GLORA_SCALAR ? ad.Bd[0] : 0;
                gb += G[n * OUT + o] * beta;
                gba += fabs(G[n * OUT + o] * beta);
            }
            for (int i = 0; i < IN; i++) {
                double s = 0, sa = 0, s32 = 0;
                for (int o = 0; o < OUT; o++) {
                    /* G (.) (1 + a) is formed in fp32 for a vector A. */
                    const float g = A.kind == GLORA_VECTOR ? G[n * OUT + o] * (1.0f + ad.Ad[o * R]) : G[n * OUT + o];
                    s += bf(g) * bf(w0[o * IN + i]);
                    sa += fabs(bf(g) * bf(w0[o * IN + i]));
                    s32 += (double)g * w0[o * IN + i];
                }
                const double alpha = A.kind == GLORA_SCALAR ? (double)(1.0f + ad.Ad[0]) : 1.0;
                double bt = 0, bta = 0;
                if (B.kind == GLORA_LORA)
                    for (int r = 0; r < B.rank; r++) {
                        bt += Q[r] * ad.Bu[r * IN + i];
                        bta += Qa[r] * fabs(ad.Bu[r * IN + i]);
                    }
                else if (B.kind != GLORA_NONE) {
                    bt = gb;
                    bta = gba;
                }
                const double ref = alpha * s + bt, mag = fabs(alpha) * sa + bta;
                if (fabs(dx[n * IN + i] - ref) > 1e-5 * (1 + mag))
                    fail_msg("configuration %zu: bf16 dx[%d] %.9g, reference %.9g", ci, n * IN + i,
                             dx[n * IN + i], ref);
                dx_rounded += fabs(alpha * s32 + bt - dx[n * IN + i]) > 1e-5 * (1 + mag);
            }
        }
    }
    printf("bf16 row form: %d configurations; %d Y0 and %d dX elements show the rounding\n", checked,
           y0_rounded, dx_rounded);
    assert_true(checked == 324 && y0_rounded > 0 && dx_rounded > 0);
    free(scratch);
    free(mem);
    free(gmem);
    free(gmem2);
}

/* The merged form's backward (glora_adapter_backward_merged: layers whose
 * A is a LoRA) over N = 1601 rows (three of the bf16 product's k blocks),
 * for every such configuration of the official space at rank 3 and
 * sub-rank variants:
 * - fp32: the bits of what training ran before it existed (glora_sgemm's
 *   G^T X, the column sums of glora_linear_backward, glora_adapter_backward);
 * - bf16: dW' against a double-precision G^T X of the bf16-rounded G and X
 *   within the bf16 product's bound, (N + N/768 + 6) 2^-24 sum |terms|;
 *   db' the fp32 bits; and, on every 18th configuration and the sub-rank
 *   ones, the stored tensors' gradients against central differences in
 *   double of L = sum(dW'_ref (.) W') + sum(db' (.) b'), the objective whose
 *   gradient glora_adapter_backward is (test_adapter_backward_fd). The
 *   rounding must show: some dW' element is off the unrounded operands'
 *   double product by more than that bound. */
static void test_adapter_merged_bf16(void **state) {
    (void)state;
    glora_rng_t rng;
    glora_rng_seed(&rng, 43);
    enum { OUT = 13, IN = 35, R = 3, N = 1601 };
    const double u = 0x1p-24;
    glora_adapter_t ad, gr, gr2;
    size_t total;
    float *mem = adapter_in_buffer(&ad, OUT, IN, R, &total), *gmem = adapter_in_buffer(&gr, OUT, IN, R, &total),
          *gmem2 = adapter_in_buffer(&gr2, OUT, IN, R, &total);
    fill_random(mem, total, &rng, 0.5f);
    static float w0[OUT * IN], b0[OUT], x[N * IN], G[N * OUT], dw[OUT * IN], db[OUT],
        dw2[OUT * IN], db2[OUT], dwref[OUT * IN], scratch[OUT * IN];
    static double dwd[OUT * IN];
    fill_random(w0, OUT * IN, &rng, 0.7f);
    fill_random(b0, OUT, &rng, 0.7f);
    fill_random(x, N * IN, &rng, 1.0f);
    fill_random(G, N * OUT, &rng, 1.0f);
    /* The double references: dwd from the rounded operands, and how many
     * elements the unrounded product puts off it by more than the bound. */
    int rounded = 0;
    double bound[OUT * IN];
    for (int o = 0; o < OUT; o++)
        for (int i = 0; i < IN; i++) {
            double s = 0, sa = 0, s32 = 0;
            for (int n = 0; n < N; n++) {
                double v = bf(G[n * OUT + o]) * bf(x[n * IN + i]);
                s += v;
                sa += fabs(v);
                s32 += (double)G[n * OUT + o] * x[n * IN + i];
            }
            dwd[o * IN + i] = s;
            dwref[o * IN + i] = (float)s;
            bound[o * IN + i] = (double)(N + N / 768 + 6) * u * sa + 1e-30;
            rounded += fabs(s32 - s) > bound[o * IN + i];
        }
    glora_space_t space;
    glora_space_official(&space, R);
    int checked = 0, fd_checked = 0;
    for (size_t ci = 0; ci < glora_space_size(&space) + 8; ci++) {
        glora_layer_cfg_t cfg;
        int sub = ci >= glora_space_size(&space);
        if (!sub) {
            glora_space_config(&space, ci, &cfg);
        } else {
            do glora_space_config(&space, glora_rng_below(&rng, glora_space_size(&space)), &cfg);
            while (glora_adapter_rowform(&cfg));
            for (int t = 0; t < 3; t++)
                if (cfg.t[t].kind == GLORA_LORA) cfg.t[t].rank = (uint8_t)(1 + glora_rng_below(&rng, R));
        }
        if (glora_adapter_rowform(&cfg)) continue;
        checked++;
        /* fp32: the bits of the code it replaced */
        memset(gmem, 0, sizeof(float) * total);
        memset(gmem2, 0, sizeof(float) * total);
        glora_adapter_backward_merged(&gr, dw, db, G, x, N, w0, b0, &ad, &cfg, scratch, GLORA_FP32);
        glora_sgemm(GLORA_TRANS, GLORA_NOTRANS, OUT, IN, N, 1.0f, G, OUT, x, IN, 0.0f, dw2, IN);
        memset(db2, 0, sizeof db2);
        glora_linear_backward(NULL, NULL, db2, G, x, NULL, N, IN, OUT);
        glora_adapter_backward(&gr2, dw2, db2, w0, b0, &ad, &cfg, scratch);
        assert_memory_equal(dw, dw2, sizeof dw);
        assert_memory_equal(db, db2, sizeof db);
        assert_memory_equal(gmem, gmem2, sizeof(float) * total);
        /* bf16 */
        memset(gmem, 0, sizeof(float) * total);
        glora_adapter_backward_merged(&gr, dw, db, G, x, N, w0, b0, &ad, &cfg, scratch, GLORA_BF16);
        assert_memory_equal(db, db2, sizeof db);
        for (int k = 0; k < OUT * IN; k++)
            if (!(fabs(dw[k] - dwd[k]) <= bound[k]))
                fail_msg("configuration %zu: bf16 dW'[%d] %.9g, reference %.9g (bound %.3g)", ci, k,
                         dw[k], dwd[k], bound[k]);
        if (!sub && ci % 18 != 0) continue;
        fd_checked++;
        for (size_t k = 0; k < total; k++) {
            float keep = mem[k];
            const float h = 1e-2f;
            mem[k] = keep + h;
            double lp = merged_objective(dwref, db, w0, b0, &ad, &cfg);
            mem[k] = keep - h;
            double lm = merged_objective(dwref, db, w0, b0, &ad, &cfg);
            mem[k] = keep;
            double fd = (lp - lm) / (2.0 * h);
            if (fabs(fd - gmem[k]) > 1e-3 * (1.0 + fabs(fd)))
                fail_msg("configuration %zu, element %zu: bf16 backward %.6g, finite difference %.6g",
                         ci, k, gmem[k], fd);
        }
    }
    printf("bf16 merged form: %d configurations (%d by finite differences); %d of %d dW' elements "
           "show the rounding\n", checked, fd_checked, rounded, OUT * IN);
    assert_true(checked == 108 + 8 && fd_checked >= 12 && rounded > 0);
    free(mem);
    free(gmem);
    free(gmem2);
}

static void test_whole_model_merged_vs_unmerged(void **state) {
    (void)state;
    /* A model whose linears are run unmerged (term by term in double inside
     * a float forward is not available), so compare: merged forward vs the
     * same forward with W' built by the double reference per layer. */
    glora_vit_arch_t a = {.img_size = 8, .in_chans = 2, .patch = 4, .dim = 12, .depth = 2,
                          .heads = 2, .mlp_hidden = 20, .num_classes = 4};
    glora_vit_t *m;
    assert_int_equal(glora_vit_create(&m, &a, 3), GLORA_OK);
    glora_rng_t rng;
    glora_rng_seed(&rng, 3);
    fill_random(m->mem, m->n_floats, &rng, 0.3f);
    glora_space_t space;
    glora_space_official(&space, 3);
    int L = glora_vit_layers(m);
    glora_layer_cfg_t cfg[8];
    glora_vit_linears_t *lin, *ref;
    glora_vit_acts_t *acts;
    assert_int_equal(glora_vit_linears_create(&lin, m), GLORA_OK);
    assert_int_equal(glora_vit_linears_create(&ref, m), GLORA_OK);
    assert_int_equal(glora_vit_acts_create(&acts, m, 3, 0), GLORA_OK);
    float x[3 * 2 * 64];
    fill_random(x, sizeof x / 4, &rng, 1.0f);
    float *wbuf = malloc(sizeof(float) * 2 * (36 * 12 + 36 + 12 * 12 + 12 + 20 * 12 + 20 + 12 * 20 + 12));
    for (int trial = 0; trial < 30; trial++) {
        for (int l = 0; l < L; l++) glora_space_config(&space, glora_rng_below(&rng, 432), &cfg[l]);
        glora_vit_linears_set(lin, m, cfg);
        glora_vit_forward(m, lin, acts, x, 3);
        float merged[12];
        memcpy(merged, acts->logits, sizeof merged);
        /* Reference linears: W' and b' read off the double term-by-term layer. */
        float *p = wbuf;
        for (int l = 0; l < L; l++) {
            const float *w0, *b0;
            int out, in;
            glora_vit_layer(m, l, &w0, &b0, &out, &in);
            double *y = malloc(sizeof(double) * out * (in + 1));
            float *xid = calloc((size_t)(in + 1) * in, sizeof(float));
            for (int i = 0; i < in; i++) xid[i * in + i] = 1.0f;
            unmerged_layer(y, xid, in + 1, w0, b0, &m->adapters[l], &cfg[l]);
            float *w = p, *b = p + out * in;
            for (int o = 0; o < out; o++) {
                b[o] = (float)y[(size_t)in * out + o];
                for (int i = 0; i < in; i++) w[o * in + i] = (float)(y[(size_t)i * out + o] - y[(size_t)in * out + o]);
            }
            ref->w[l] = w;
            ref->b[l] = b;
            p += out * in + out;
            free(y);
            free(xid);
        }
        glora_vit_forward(m, ref, acts, x, 3);
        check_logits(merged, acts->logits, 12, "random whole-model configuration");
    }
    free(wbuf);
    glora_vit_linears_free(lin);
    glora_vit_linears_free(ref);
    glora_vit_acts_free(acts);
    glora_vit_free(m);
}

/* -log softmax(z)[y] in double, as the fitness computes it. */
static double ref_row_loss(const float *z, int V, int y) {
    double mx = z[0], sum = 0;
    for (int k = 1; k < V; k++)
        if (z[k] > mx) mx = z[k];
    for (int k = 0; k < V; k++) sum += exp((double)z[k] - mx);
    return log(sum) - ((double)z[y] - mx);
}

/* Merged weights kept packed only (no merged copy of the model) give the
 * logits of plain merged weights bit for bit, in fp32 and bf16, at a width
 * whose key columns start off a panel boundary (dim 12) and on one (dim
 * 64), after a change of bf16 kernel, and under a kernel without panels
 * (which keeps the merged weights); and so do the search's fitness counts
 * and per-image losses, with one batch per candidate and with several. */
static void test_linears_packed_only(void **state) {
    (void)state;
    const glora_vit_arch_t arches[2] = {
        {.img_size = 8, .in_chans = 2, .patch = 4, .dim = 12, .depth = 2, .heads = 2,
         .mlp_hidden = 20, .num_classes = 4},
        {.img_size = 8, .in_chans = 3, .patch = 4, .dim = 64, .depth = 3, .heads = 2,
         .mlp_hidden = 96, .num_classes = 5}};
    enum { NIMG = 9, NC = 4 };
    for (int ai = 0; ai < 2; ai++) {
        glora_vit_t *m;
        assert_int_equal(glora_vit_create(&m, &arches[ai], 4), GLORA_OK);
        glora_rng_t rng;
        glora_rng_seed(&rng, 11 + ai);
        fill_random(m->mem, m->n_floats, &rng, 0.2f);
        glora_space_t space;
        glora_space_official(&space, 4);
        const int L = glora_vit_layers(m), V = m->arch.num_classes;
        const size_t per = (size_t)m->arch.in_chans * m->arch.img_size * m->arch.img_size;
        glora_layer_cfg_t cfg[NC][12];
        const glora_layer_cfg_t *cands[NC];
        for (int c = 0; c < NC; c++) {
            for (int l = 0; l < L; l++) glora_space_config(&space, glora_rng_below(&rng, 432), &cfg[c][l]);
            cands[c] = cfg[c];
        }
        /* Candidate 0 leaves layer 1 unadapted (W0, packed from the model). */
        memset(&cfg[0][1], 0, sizeof cfg[0][1]);
        float *x = malloc(sizeof(float) * NIMG * per);
        int y[NIMG];
        fill_random(x, NIMG * per, &rng, 1.0f);
        for (int i = 0; i < NIMG; i++) y[i] = (int)glora_rng_below(&rng, (uint64_t)V);
        glora_dataset_t ds = {.n = NIMG, .c = m->arch.in_chans, .h = m->arch.img_size,
                              .w = m->arch.img_size, .x = x, .y = y, .num_classes = V};
        for (int prec = 0; prec < 2; prec++) {
            m->precision = prec ? GLORA_BF16 : GLORA_FP32;
            glora_vit_linears_t *plain, *po;
            glora_vit_acts_t *acts;
            assert_int_equal(glora_vit_linears_create(&plain, m), GLORA_OK);
            assert_int_equal(glora_vit_linears_create(&po, m), GLORA_OK);
            assert_int_equal(glora_vit_linears_pack_only(po, m), GLORA_OK);
            assert_true(glora_vit_linears_packed_only(po));
            assert_int_equal(glora_vit_acts_create(&acts, m, NIMG, 0), GLORA_OK);
            float want[NIMG * 5], got[NIMG * 5];
            double loss_want[NC * NIMG];
            for (int c = 0; c < NC; c++) {
                glora_vit_linears_set(plain, m, cands[c]);
                glora_vit_forward(m, plain, acts, x, NIMG);
                memcpy(want, acts->logits, sizeof(float) * NIMG * V);
                for (int i = 0; i < NIMG; i++)
                    loss_want[c * NIMG + i] = ref_row_loss(want + i * V, V, y[i]);
                /* bf16: also after the emulation is chosen (packed again). */
                for (int v = 0; v < 1 + prec; v++) {
                    if (v == 1) assert_int_equal(glora_bgemm_set_kernel("emulated"), GLORA_OK);
                    glora_vit_linears_set(po, m, cands[c]);
                    for (int l = 0; l < L; l++) assert_true((po->w[l] == NULL) == (c != 0 || l != 1));
                    glora_vit_forward(m, po, acts, x, NIMG);
                    memcpy(got, acts->logits, sizeof(float) * NIMG * V);
                    assert_memory_equal(got, want, sizeof(float) * NIMG * V);
                    glora_bgemm_set_kernel("auto");
                }
            }
            /* A kernel without panels: the merged weights stay. */
            glora_vit_linears_t *kept;
            if (prec) assert_int_equal(glora_bgemm_set_kernel("ref"), GLORA_OK);
            else assert_int_equal(glora_gemm_set_kernel("ref"), GLORA_OK);
            assert_int_equal(glora_vit_linears_create(&kept, m), GLORA_OK);
            assert_int_equal(glora_vit_linears_pack_only(kept, m), GLORA_OK);
            assert_false(glora_vit_linears_packed_only(kept));
            glora_vit_linears_set(kept, m, cands[1]);
            glora_vit_linears_set(plain, m, cands[1]);
            glora_vit_forward(m, plain, acts, x, NIMG);
            memcpy(want, acts->logits, sizeof(float) * NIMG * V);
            glora_vit_forward(m, kept, acts, x, NIMG);
            assert_memory_equal(acts->logits, want, sizeof(float) * NIMG * V);
            glora_vit_linears_free(kept);
            glora_bgemm_set_kernel("auto");
            glora_gemm_set_kernel("auto");
            /* The fitness, one batch of all images and batches of 4. */
            for (size_t batch = NIMG; batch >= 4; batch = batch == NIMG ? 4 : 0) {
                uint64_t correct[NC] = {0};
                double loss[NC * NIMG];
                assert_int_equal(glora_search_fitness_score(m, cands, NC, &ds, 0, NIMG, batch, correct,
                                                            loss), GLORA_OK);
                assert_memory_equal(loss, loss_want, sizeof loss);
                for (int c = 0; c < NC; c++) {
                    glora_vit_linears_set(plain, m, cands[c]);
                    assert_int_equal(correct[c], glora_vit_count_correct(m, plain, acts, x, y, NIMG));
                }
            }
            glora_vit_linears_free(plain);
            glora_vit_linears_free(po);
            glora_vit_acts_free(acts);
        }
        free(x);
        glora_vit_free(m);
    }
}

static void test_param_counts(void **state) {
    (void)state;
    /* ViT-B/16 stack: dim 768, mlp 3072, depth 12 -> 48 layers. */
    glora_vit_arch_t a = {.img_size = 224, .in_chans = 3, .patch = 16, .dim = 768, .depth = 12,
                          .heads = 12, .mlp_hidden = 3072, .num_classes = 100};
    assert_int_equal(glora_vit_arch_check(&a), GLORA_OK);
    assert_int_equal(a.tokens, 197);
    glora_layer_cfg_t cfg[48];
    glora_choice_t l4 = {GLORA_LORA, 4}, vec = {GLORA_VECTOR, 0}, sca = {GLORA_SCALAR, 0};
    for (int l = 0; l < 48; l++) cfg[l] = (glora_layer_cfg_t){{l4, l4, l4, vec, vec}};
    /* Per block, by hand:
     *   qkv  (2304 x 768): A,B 4*(2304+768)=12288 each; C 4*769=3076; D,E 2304 each -> 32260
     *   proj (768 x 768):  A,B 6144 each; C 3076; D,E 768 each                  -> 16900
     *   fc1  (3072 x 768): A,B 15360 each; C 3076; D,E 3072 each                -> 39940
     *   fc2  (768 x 3072): A,B 15360 each; C 4*3073=12292; D,E 768 each         -> 44548
     * block 133648, 12 blocks 1603776. */
    assert_int_equal(glora_arch_config_params(&a, cfg), 1603776);
    for (int l = 0; l < 48; l++) cfg[l] = (glora_layer_cfg_t){{sca, sca, vec, sca, sca}};
    /* C vector = in: 768 + 768 + 768 + 3072 per block, + 4 scalars x 4 layers. */
    assert_int_equal(glora_arch_config_params(&a, cfg), 12 * (768 * 3 + 3072 + 16));
    /* LoRA r=4 baseline (B = lora_4 only) on vit-tiny-28: dim 128, mlp 512. */
    glora_vit_arch_t t = {.img_size = 28, .in_chans = 1, .patch = 7, .dim = 128, .depth = 6,
                          .heads = 4, .mlp_hidden = 512, .num_classes = 10};
    assert_int_equal(glora_vit_arch_check(&t), GLORA_OK);
    glora_choice_t none = {GLORA_NONE, 0};
    for (int l = 0; l < 24; l++) cfg[l] = (glora_layer_cfg_t){{none, l4, none, none, none}};
    /* 4 * ((384+128) + (128+128) + (512+128) + (128+512)) = 8192 per block. */
    assert_int_equal(glora_arch_config_params(&t, cfg), 6 * 8192);
}

static void test_choice_parse(void **state) {
    (void)state;
    glora_choice_t c;
    char buf[16];
    assert_int_equal(glora_choice_parse("LoRA_4", GLORA_A, 4, &c), GLORA_OK);
    assert_string_equal(glora_choice_str(c, buf), "lora_4");
    assert_int_equal(glora_choice_parse("constant", GLORA_D, 4, &c), GLORA_OK);
    assert_string_equal(glora_choice_str(c, buf), "scalar");
    assert_int_equal(glora_choice_parse("lora_5", GLORA_A, 4, &c), GLORA_EINVAL);
    assert_non_null(strstr(glora_errmsg(), "rank 5"));
    assert_int_equal(glora_choice_parse("scalar", GLORA_C, 4, &c), GLORA_EINVAL);
    assert_int_equal(glora_choice_parse("lora_2", GLORA_E, 4, &c), GLORA_EINVAL);
    assert_int_equal(glora_choice_parse("lora_", GLORA_A, 4, &c), GLORA_EINVAL);
    assert_int_equal(glora_choice_parse("lora_0", GLORA_A, 4, &c), GLORA_EINVAL);
    assert_int_equal(glora_choice_parse("lora_2x", GLORA_A, 4, &c), GLORA_EINVAL);
    assert_int_equal(glora_choice_parse("vectors", GLORA_A, 4, &c), GLORA_EINVAL);
}

#include "tmpdir.h"

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_spec_roundtrip_and_errors(void **state) {
    (void)state;
    glora_vit_t *m;
    assert_int_equal(glora_vit_load(&m, FIX "backbone.safetensors", FIX "supernet.safetensors", 0), GLORA_OK);
    char names[16][64];
    static glora_layer_cfg_t cfg[16][64];
    load_ref_configs(m, names, cfg);
    glora_spec_t s, back;
    assert_int_equal(glora_spec_from_model(&s, m, cfg[4], "ab"), GLORA_OK);
    s.has_val = 1;
    s.val_accuracy = 0.625;
    s.generation = 3;
    char path[128];
    snprintf(path, sizeof path, "%s/spec.json", tmpdir);
    assert_int_equal(glora_spec_write(&s, path), GLORA_OK);
    int rc = glora_spec_read(&back, path);
    /* "ab" is not a valid sha256: the reader refuses what the writer wrote
     * from a bad value, so write a good one. */
    assert_int_equal(rc, GLORA_EFORMAT);
    snprintf(s.supernet_sha256, sizeof s.supernet_sha256, "%064d", 0);
    assert_int_equal(glora_spec_write(&s, path), GLORA_OK);
    assert_int_equal(glora_spec_read(&back, path), GLORA_OK);
    assert_int_equal(back.n_layers, 8);
    assert_memory_equal(back.cfg, s.cfg, sizeof(glora_layer_cfg_t) * 8);
    assert_int_equal(back.params, glora_vit_config_params(m, cfg[4]));
    assert_true(back.has_val && back.val_accuracy == 0.625 && back.generation == 3);
    assert_int_equal(glora_spec_check(&back, m, path), GLORA_OK);
    glora_spec_free(&back);

    /* Bad files: each error names the file and the key. */
    char *json;
    assert_int_equal(glora_spec_to_json(&s, &json), GLORA_OK);
    struct { const char *from, *to, *expect; } cases[] = {
        {"\"glora-subnet/1\"", "\"glora-subnet/9\"", "format"},
        {"\"lora_1\"", "\"lora_7\"", "rank 7"},
        {"\"blocks.1.mlp.fc2\"", "\"blocks.5.mlp.fc2\"", "blocks.5.mlp.fc2"},
        {"\"dim\":\t24", "\"dim\":\t-24", "model.dim"},
        {"\"params\":", "\"params\": 1, \"x\":", "params"},
        {"\"E\":", "\"F\":", "layers."},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *pos = strstr(json, cases[i].from);
        if (!pos) fail_msg("case %zu: '%s' not in the spec text", i, cases[i].from);
        size_t n = strlen(json) + 64;
        char *bad = malloc(n);
        snprintf(bad, n, "%.*s%s%s", (int)(pos - json), json, cases[i].to, pos + strlen(cases[i].from));
        write_text(path, bad);
        free(bad);
        assert_true(glora_spec_read(&back, path) < 0);
        if (!strstr(glora_errmsg(), path) || !strstr(glora_errmsg(), cases[i].expect))
            fail_msg("case %zu: message '%s' lacks the path or '%s'", i, glora_errmsg(), cases[i].expect);
    }
    write_text(path, "[1, 2]");
    assert_true(glora_spec_read(&back, path) < 0);
    assert_non_null(strstr(glora_errmsg(), "not a JSON object"));
    write_text(path, "{\"format\": \"glora-subnet/1\"");
    assert_true(glora_spec_read(&back, path) < 0);
    assert_non_null(strstr(glora_errmsg(), "invalid JSON"));
    free(json);
    glora_spec_free(&s);
    glora_vit_free(m);
}

static void test_load_errors(void **state) {
    (void)state;
    glora_vit_t *m;
    /* The supernet alone is not a backbone. */
    assert_true(glora_vit_load(&m, FIX "supernet.safetensors", NULL, 0) < 0);
    assert_non_null(strstr(glora_errmsg(), "patch_embed.proj.weight"));
    /* A backbone without head count metadata needs the caller's number. */
    glora_vit_arch_t a = {.img_size = 8, .in_chans = 1, .patch = 4, .dim = 8, .depth = 1,
                          .heads = 2, .mlp_hidden = 16, .num_classes = 3};
    assert_int_equal(glora_vit_create(&m, &a, 0), GLORA_OK);
    char path[128];
    snprintf(path, sizeof path, "%s/nohead.safetensors", tmpdir);
    /* glora_vit_save always writes glora.heads; strip it by writing raw. */
    glora_st_entry_t e[64];
    for (int i = 0; i < m->n_params; i++)
        e[i] = (glora_st_entry_t){m->params[i].name, m->params[i].ndim, m->params[i].shape,
                                  m->mem + m->params[i].offset};
    assert_int_equal(glora_st_write(path, e, (size_t)m->n_params, NULL, 0), GLORA_OK);
    glora_vit_t *m2;
    assert_true(glora_vit_load(&m2, path, NULL, 0) < 0);
    assert_non_null(strstr(glora_errmsg(), "heads"));
    assert_non_null(glora_errhint());
    assert_int_equal(glora_vit_load(&m2, path, NULL, 2), GLORA_OK);
    assert_int_equal(m2->arch.heads, 2);
    glora_vit_free(m2);
    /* A missing tensor is named. */
    assert_int_equal(glora_st_write(path, e, (size_t)m->n_params - 1, NULL, 0), GLORA_OK);
    assert_true(glora_vit_load(&m2, path, NULL, 2) < 0);
    assert_non_null(strstr(glora_errmsg(), "head.bias"));
    /* A foreign tensor is named. */
    float one = 1;
    e[m->n_params] = (glora_st_entry_t){"blocks.0.attn.q_norm.weight", 1, (const int64_t[]){1}, &one};
    assert_int_equal(glora_st_write(path, e, (size_t)m->n_params + 1, NULL, 0), GLORA_OK);
    assert_true(glora_vit_load(&m2, path, NULL, 2) < 0);
    assert_non_null(strstr(glora_errmsg(), "q_norm"));
    /* Heads that do not divide dim. */
    assert_true(glora_vit_load(&m2, FIX "backbone.safetensors", NULL, 5) < 0);
    glora_vit_free(m);
    /* An adapter trained on another backbone is refused. */
    glora_vit_t *sn;
    assert_int_equal(glora_vit_load(&sn, FIX "backbone.safetensors", FIX "supernet.safetensors", 0), GLORA_OK);
    const char *meta[] = {"glora.backbone_sha256", "0000000000000000000000000000000000000000000000000000000000000000"};
    snprintf(path, sizeof path, "%s/other.safetensors", tmpdir);
    assert_int_equal(glora_vit_save(sn, path, GLORA_ROLE_ADAPTER | GLORA_ROLE_HEAD, meta, 1), GLORA_OK);
    assert_true(glora_vit_load(&m2, FIX "backbone.safetensors", path, 0) < 0);
    assert_non_null(strstr(glora_errmsg(), "sha256"));
    /* Saved with the right sha256 it loads and gives identical weights. */
    const char *meta2[] = {"glora.backbone_sha256", sn->backbone_sha256};
    assert_int_equal(glora_vit_save(sn, path, GLORA_ROLE_ADAPTER | GLORA_ROLE_HEAD, meta2, 1), GLORA_OK);
    assert_int_equal(glora_vit_load(&m2, FIX "backbone.safetensors", path, 0), GLORA_OK);
    assert_int_equal(m2->n_floats, sn->n_floats);
    assert_memory_equal(m2->mem, sn->mem, sn->n_floats * sizeof(float));
    glora_vit_free(m2);
    glora_vit_free(sn);
}

/* Random images (192 values each) and labels in [0, 5), and nc random
 * candidates of the official space for the fixture's 8 layers. */
static void fitness_inputs(glora_rng_t *rng, float *x, int *y, int nimg, glora_layer_cfg_t (*cfg)[8],
                           const glora_layer_cfg_t **cands, int nc) {
    fill_random(x, (size_t)nimg * 192, rng, 1.0f);
    for (int i = 0; i < nimg; i++) y[i] = (int)glora_rng_below(rng, 5);
    glora_space_t space;
    glora_space_official(&space, 4);
    for (int c = 0; c < nc; c++) {
        for (int l = 0; l < 8; l++) glora_space_config(&space, glora_rng_below(rng, 432), &cfg[c][l]);
        cands[c] = cfg[c];
    }
}

static void test_search_fitness_thread_independent(void **state) {
    (void)state;
    glora_vit_t *m;
    assert_int_equal(glora_vit_load(&m, FIX "backbone.safetensors", FIX "supernet.safetensors", 0), GLORA_OK);
    glora_rng_t rng;
    glora_rng_seed(&rng, 5);
    enum { NIMG = 37, NC = 7 };
    float *x = malloc(sizeof(float) * NIMG * 192);
    int y[NIMG];
    glora_layer_cfg_t cfg[NC][8];
    const glora_layer_cfg_t *cands[NC];
    fitness_inputs(&rng, x, y, NIMG, cfg, cands, NC);
    glora_dataset_t ds = {.n = NIMG, .c = m->arch.in_chans, .h = m->arch.img_size, .w = m->arch.img_size,
                          .x = x, .y = y, .num_classes = 5};
    assert_int_equal(glora_dataset_example_size(&ds), 192);
    double acc1[NC], acc2[NC], acc3[NC];
    int saved = glora_max_threads();
    glora_set_threads(1);
    assert_int_equal(glora_search_fitness(m, cands, NC, &ds, 10, acc1), GLORA_OK);
    glora_set_threads(2);
    assert_int_equal(glora_search_fitness(m, cands, NC, &ds, 10, acc2), GLORA_OK);
    glora_set_threads(3);
    assert_int_equal(glora_search_fitness(m, cands, NC, &ds, 37, acc3), GLORA_OK);
    glora_set_threads(saved);
    assert_memory_equal(acc1, acc2, sizeof acc1);
    assert_memory_equal(acc1, acc3, sizeof acc1);
    /* And equal to a direct count. */
    glora_vit_linears_t *lin;
    glora_vit_acts_t *acts;
    assert_int_equal(glora_vit_linears_create(&lin, m), GLORA_OK);
    assert_int_equal(glora_vit_acts_create(&acts, m, 8, 0), GLORA_OK);
    for (int c = 0; c < NC; c++) {
        glora_vit_linears_set(lin, m, cands[c]);
        size_t ok = glora_vit_count_correct(m, lin, acts, x, y, NIMG);
        assert_true(acc1[c] == (double)ok / NIMG);
    }
    glora_vit_linears_free(lin);
    glora_vit_acts_free(acts);
    free(x);
    glora_vit_free(m);
}

/* A workspace kept across calls that change the thread count, the batch,
 * the image range and the precision gives what fresh buffers give: the
 * same counts and the same per-image losses, bit for bit. */
static void test_search_fitness_ws_reuse(void **state) {
    (void)state;
    glora_vit_t *m;
    assert_int_equal(glora_vit_load(&m, FIX "backbone.safetensors", FIX "supernet.safetensors", 0), GLORA_OK);
    glora_rng_t rng;
    glora_rng_seed(&rng, 9);
    enum { NIMG = 23, NC = 5 };
    float *x = malloc(sizeof(float) * NIMG * 192);
    int y[NIMG];
    glora_layer_cfg_t cfg[NC][8];
    const glora_layer_cfg_t *cands[NC];
    fitness_inputs(&rng, x, y, NIMG, cfg, cands, NC);
    glora_dataset_t ds = {.n = NIMG, .c = m->arch.in_chans, .h = m->arch.img_size, .w = m->arch.img_size,
                          .x = x, .y = y, .num_classes = 5};
    const struct { int threads; size_t batch, lo, hi, n; glora_precision_t prec; } steps[] = {
        {1, 10, 0, NIMG, NC, GLORA_FP32}, {2, 10, 0, NIMG, NC, GLORA_FP32}, {3, 4, 3, 19, 2, GLORA_FP32},
        {2, 23, 0, NIMG, NC, GLORA_BF16}, {2, 7, 5, NIMG, 1, GLORA_BF16},  {1, 10, 0, NIMG, NC, GLORA_FP32}};
    glora_search_ws_t *ws = glora_search_ws_new();
    assert_non_null(ws);
    int saved = glora_max_threads();
    for (size_t k = 0; k < sizeof steps / sizeof *steps; k++) {
        uint64_t c1[NC] = {0}, c2[NC] = {0};
        double l1[NC * NIMG] = {0}, l2[NC * NIMG] = {0};
        glora_set_threads(steps[k].threads);
        m->precision = steps[k].prec;
        assert_int_equal(glora_search_fitness_score(m, cands, steps[k].n, &ds, steps[k].lo, steps[k].hi,
                                                    steps[k].batch, c1, l1), GLORA_OK);
        assert_int_equal(glora_search_fitness_score_ws(ws, m, cands, steps[k].n, &ds, steps[k].lo,
                                                       steps[k].hi, steps[k].batch, c2, l2), GLORA_OK);
        assert_memory_equal(c1, c2, sizeof c1);
        assert_memory_equal(l1, l2, sizeof l1);
    }
    glora_set_threads(saved);
    m->precision = GLORA_FP32;
    glora_search_ws_free(ws);
    glora_search_ws_free(NULL);
    free(x);
    glora_vit_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_choice_parse),
        cmocka_unit_test(test_search_fitness_ws_reuse),
        cmocka_unit_test(test_param_counts),
        cmocka_unit_test(test_merge_all_432),
        cmocka_unit_test(test_adapter_backward_fd),
        cmocka_unit_test(test_adapter_rows_fd),
        cmocka_unit_test(test_reference_logits),
        cmocka_unit_test(test_bf16_logits),
        cmocka_unit_test(test_adapter_rows_bf16),
        cmocka_unit_test(test_adapter_merged_bf16),
        cmocka_unit_test(test_whole_model_merged_vs_unmerged),
        cmocka_unit_test(test_linears_packed_only),
        cmocka_unit_test(test_spec_roundtrip_and_errors),
        cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_search_fitness_thread_independent),
    };
    return cmocka_run_group_tests(tests, tmpdir_setup, tmpdir_teardown);
}
