/* Supernet path sampling (train.sampling, glora/train.h): sandwich's first
 * two steps are the space's largest and smallest configuration in every
 * layer, which a run with those configurations fixed (swapped after the
 * first step) reproduces bit for bit; the cycle counts steps over epochs
 * (checked against the same fixed run with one step per epoch, within
 * float rounding since the second epoch's shuffle differs); uniform
 * trains other weights; sandwich is independent of the thread count and
 * resumes to the same bits; and the supernet stage's config maps the key,
 * joining the run's identity only when it is set. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "glora/common.h"
#include "glora/config.h"
#include "glora/layer.h"
#include "glora/model.h"
#include "glora/pipeline.h"
#include "glora/train.h"
#include "util/parallel.h"
#include "util/rng.h"

/* A space whose largest and smallest options are neither first nor last in
 * every list, so that an implementation that takes a list's end is caught. */
static void test_space(glora_space_t *s) {
    static const char *const lists[GLORA_NTENSORS][4] = {
        {"vector", "lora_2", "scalar", NULL},
        {"scalar", "lora_1", "vector", NULL},
        {"none", "vector", "lora_2", NULL},
        {"vector", "scalar", NULL, NULL},
        {"scalar", "vector", "none", NULL},
    };
    memset(s, 0, sizeof *s);
    for (int t = 0; t < GLORA_NTENSORS; t++)
        for (int k = 0; lists[t][k]; k++)
            assert_int_equal(glora_choice_parse(lists[t][k], t, 2, &s->opt[t][s->n[t]++]), 0);
}

static glora_layer_cfg_t parse_cfg(const char *const c[GLORA_NTENSORS]) {
    glora_layer_cfg_t cfg;
    for (int t = 0; t < GLORA_NTENSORS; t++) assert_int_equal(glora_choice_parse(c[t], t, 2, &cfg.t[t]), 0);
    return cfg;
}

static void toy_data(float *x, int *y, size_t n) {
    glora_rng_t rng;
    glora_rng_seed(&rng, 3);
    for (size_t i = 0; i < n; i++) {
        y[i] = (int)(i % 2);
        for (int r = 0; r < 8; r++)
            for (int c = 0; c < 8; c++)
                x[(i * 8 + r) * 8 + c] =
                    (float)(0.3 * glora_rng_normal(&rng)) + ((r < 4) == (y[i] == 0) ? 1.0f : -1.0f);
    }
}

static glora_vit_t *toy_model(void) {
    glora_vit_arch_t a = {.img_size = 8, .in_chans = 1, .patch = 4, .dim = 16, .depth = 2,
                          .heads = 2, .mlp_hidden = 32, .num_classes = 2};
    glora_vit_t *m;
    assert_int_equal(glora_vit_create(&m, &a, 2), 0);
    glora_rng_t rng;
    glora_rng_seed(&rng, 11);
    glora_train_init_vit(m, &rng);
    glora_train_init_adapters(m, &rng);
    /* Non-zero "down" factors, so that every adapter tensor has a gradient. */
    for (int i = 0; i < m->n_params; i++)
        if (m->params[i].role == GLORA_ROLE_ADAPTER)
            for (size_t k = 0; k < m->params[i].numel; k++)
                m->mem[m->params[i].offset + k] = (float)(0.05 * glora_rng_normal(&rng));
    return m;
}

static glora_train_opts_t toy_opts(int epochs) {
    glora_train_opts_t o = {0};
    o.epochs = epochs;
    o.batch = 8;
    o.sched = (glora_sched_t){.lr = 1e-2, .warmup_start = 1e-2, .floor = 1e-2, .warmup = 0};
    o.adamw = (glora_adamw_cfg_t){0.9, 0.999, 1e-8, 1e-4};
    o.seed = 42;
    return o;
}

/* The reference: fixed configurations, the smallest from the second step on. */
typedef struct {
    glora_layer_cfg_t *cfg;
    const glora_layer_cfg_t *small;
    int L;
} swap_t;
static void swap_to_small(const glora_train_progress_t *p, void *ctx) {
    (void)p;
    swap_t *s = ctx;
    for (int l = 0; l < s->L; l++) s->cfg[l] = *s->small;
}

static double max_rel_diff(const glora_vit_t *a, const glora_vit_t *b) {
    double num = 0, den = 0;
    for (size_t i = 0; i < a->n_floats; i++) {
        num = fmax(num, fabs((double)a->mem[i] - b->mem[i]));
        den = fmax(den, fabs((double)b->mem[i]));
    }
    return num / den;
}

static void test_sandwich_steps(void **state) {
    (void)state;
    enum { N = 16 };
    float x[N * 64];
    int y[N];
    toy_data(x, y, N);
    glora_dataset_t train = {.n = N, .c = 1, .h = 8, .w = 8, .x = x, .y = y, .num_classes = 2};
    glora_space_t space;
    test_space(&space);
    static const char *const big[] = {"lora_2", "lora_1", "lora_2", "vector", "vector"};
    static const char *const small[] = {"scalar", "scalar", "none", "scalar", "none"};
    const glora_layer_cfg_t cbig = parse_cfg(big), csmall = parse_cfg(small);

    glora_vit_t *sw = toy_model(), *fx = toy_model(), *un = toy_model(), *sw1 = toy_model(),
                *fx2 = toy_model(), *sw2 = toy_model(), *rs = toy_model();
    const int L = 4 * sw->arch.depth;
    unsigned char *mask = calloc((size_t)sw->n_params, 1);
    assert_int_equal(glora_train_select(sw, "adapter,head", mask), 0);
    glora_layer_cfg_t *cfg = malloc((size_t)L * sizeof *cfg);
    glora_train_result_t res;

    /* One epoch of two steps: largest, then smallest, bit for bit. */
    glora_train_opts_t o = toy_opts(1);
    o.space = &space;
    o.sampling = GLORA_SAMPLING_SANDWICH;
    assert_int_equal(glora_train_run(sw, mask, &o, &train, NULL, &res), 0);
    for (int l = 0; l < L; l++) cfg[l] = cbig;
    swap_t sctx = {cfg, &csmall, L};
    glora_train_opts_t of = toy_opts(1);
    of.fixed_cfg = cfg;
    of.on_step = swap_to_small;
    of.cb_ctx = &sctx;
    assert_int_equal(glora_train_run(fx, mask, &of, &train, NULL, &res), 0);
    assert_memory_equal(sw->mem, fx->mem, sw->n_floats * sizeof(float));
    /* Uniform draws other configurations: other weights. */
    o.sampling = GLORA_SAMPLING_UNIFORM;
    assert_int_equal(glora_train_run(un, mask, &o, &train, NULL, &res), 0);
    assert_memory_not_equal(un->mem, sw->mem, sw->n_floats * sizeof(float));
    /* One thread: the same bits. */
    int threads = glora_max_threads();
    glora_set_threads(1);
    o.sampling = GLORA_SAMPLING_SANDWICH;
    assert_int_equal(glora_train_run(sw1, mask, &o, &train, NULL, &res), 0);
    glora_set_threads(threads);
    assert_memory_equal(sw1->mem, sw->mem, sw->n_floats * sizeof(float));

    /* Two epochs of one step (batch 8 of 8 images): the second epoch's step
     * is the run's second, the smallest. The fixed run shuffles the second
     * epoch differently (its stream made no draws), so the same 8 images sum
     * in another order: equal within rounding, while a cycle restarted at
     * every epoch (largest twice) is far off. */
    train.n = 8;
    o = toy_opts(2);
    o.space = &space;
    o.sampling = GLORA_SAMPLING_SANDWICH;
    assert_int_equal(glora_train_run(sw2, mask, &o, &train, NULL, &res), 0);
    for (int l = 0; l < L; l++) cfg[l] = cbig;
    of = toy_opts(2);
    of.fixed_cfg = cfg;
    of.on_step = swap_to_small;
    of.cb_ctx = &sctx;
    assert_int_equal(glora_train_run(fx2, mask, &of, &train, NULL, &res), 0);
    const double near = max_rel_diff(sw2, fx2);
    /* the same run with the largest configuration both times */
    glora_vit_t *bb = toy_model();
    for (int l = 0; l < L; l++) cfg[l] = cbig;
    of.on_step = NULL;
    assert_int_equal(glora_train_run(bb, mask, &of, &train, NULL, &res), 0);
    const double far = max_rel_diff(sw2, bb);
    printf("sandwich over two epochs: %.3g from largest-then-smallest, %.3g from largest twice\n",
           near, far);
    assert_true(near < 1e-5);
    assert_true(far > 1e-3);

    /* Stopped after the first epoch and resumed: the same bits (the cycle's
     * position comes from the epoch, not from the call). */
    char dir[] = "/tmp/glora-test-sampling-XXXXXX", ck[80];
    assert_non_null(mkdtemp(dir));
    snprintf(ck, sizeof ck, "%s/ck.safetensors", dir);
    o.checkpoint = ck;
    o.resume = 1;
    o.stop_after = 1;
    assert_int_equal(glora_train_run(rs, mask, &o, &train, NULL, &res), 0);
    assert_int_equal(res.epochs_run, 1);
    o.stop_after = 0;
    assert_int_equal(glora_train_run(rs, mask, &o, &train, NULL, &res), 0);
    assert_int_equal(res.start_epoch, 1);
    assert_memory_equal(rs->mem, sw2->mem, sw2->n_floats * sizeof(float));
    unlink(ck);
    rmdir(dir);
    /* Not a sampling: refused, naming it. */
    o = toy_opts(1);
    o.space = &space;
    o.sampling = (glora_sampling_t)7;
    assert_int_equal(glora_train_run(rs, mask, &o, &train, NULL, &res), GLORA_EINVAL);
    assert_non_null(strstr(glora_errmsg(), "sampling"));

    free(cfg); free(mask);
    glora_vit_free(sw); glora_vit_free(fx); glora_vit_free(un); glora_vit_free(sw1);
    glora_vit_free(fx2); glora_vit_free(sw2); glora_vit_free(rs); glora_vit_free(bb);
}

/* The supernet stage's key: default uniform, out of the run's identity
 * unless set; a bad value names the key. */
static void test_sampling_key(void **state) {
    (void)state;
    glora_config_t *c;
    glora_train_opts_t o;
    char h0[65], h1[65], h2[65];
    assert_int_equal(glora_config_load(&c, NULL, &glora_supernet_schema), 0);
    glora_train_opts_from_config(c, GLORA_RECIPE_SUPERNET, &o);
    assert_int_equal(o.sampling, GLORA_SAMPLING_UNIFORM);
    assert_int_equal(glora_config_hash(c, h0), 0);
    assert_int_equal(glora_config_set(c, "train.sampling=uniform"), 0);
    assert_int_equal(glora_config_hash(c, h1), 0);
    assert_string_equal(h0, h1);
    assert_int_equal(glora_config_set(c, "train.sampling=sandwich"), 0);
    glora_train_opts_from_config(c, GLORA_RECIPE_SUPERNET, &o);
    assert_int_equal(o.sampling, GLORA_SAMPLING_SANDWICH);
    assert_int_equal(glora_config_hash(c, h2), 0);
    assert_string_not_equal(h0, h2);
    assert_int_equal(glora_config_set(c, "train.sampling=random"), GLORA_EINVAL);
    assert_non_null(strstr(glora_errmsg(), "train.sampling"));
    glora_config_free(c);
    /* Other training stages have no such key. */
    assert_int_equal(glora_config_load(&c, NULL, &glora_retrain_schema), 0);
    assert_int_not_equal(glora_config_set(c, "train.sampling=sandwich"), 0);
    glora_config_free(c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sandwich_steps),
        cmocka_unit_test(test_sampling_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
