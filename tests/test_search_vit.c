/* The search on a real (tiny, random) ViT supernet: the whole engine with
 * glora_search_fitness as fitness, in seconds. Checks that the result
 * does not depend on the number of threads (every output file byte for
 * byte), that best.json is a valid subnet spec whose recorded accuracy is
 * what an independent evaluation of that subnet gives, and that the live
 * counter reaches every candidate. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "glora/common.h"
#include "util/fileio.h"
#include "glora/model.h"
#include "util/parallel.h"
#include "util/rng.h"
#include "glora/search.h"
#include "glora/spec.h"

#define N_IMG 40

typedef struct {
    glora_vit_t *m;
    float *x;
    int y[N_IMG];
    glora_dataset_t ds; /* a view of x, y */
} tiny_t;

static void tiny_init(tiny_t *t) {
    glora_vit_arch_t a = {.img_size = 8, .in_chans = 1, .patch = 4, .dim = 16, .depth = 2,
                          .heads = 2, .mlp_hidden = 32, .num_classes = 4};
    assert_int_equal(glora_vit_create(&t->m, &a, 2), GLORA_OK);
    glora_rng_t r;
    glora_rng_seed(&r, 5);
    /* Large adapter values so that different subnets really differ. */
    for (size_t i = 0; i < t->m->n_floats; i++) t->m->mem[i] = 0.4f * (float)glora_rng_normal(&r);
    t->x = malloc(sizeof(float) * N_IMG * 64);
    for (size_t i = 0; i < N_IMG * 64; i++) t->x[i] = (float)glora_rng_normal(&r);
    for (int i = 0; i < N_IMG; i++) t->y[i] = (int)glora_rng_below(&r, 4);
    t->ds = (glora_dataset_t){.n = N_IMG, .c = 1, .h = 8, .w = 8, .x = t->x, .y = t->y, .num_classes = 4};
}

static void tiny_free(tiny_t *t) {
    glora_vit_free(t->m);
    free(t->x);
}

static double zero_clock(void) { return 0.0; }

typedef struct {
    size_t last_done, last_total, ticks;
} counter_t;

static void tick(void *ctx, size_t done, size_t total) {
    counter_t *c = ctx;
    assert_true(done <= total);
    c->last_done = done;
    c->last_total = total;
    c->ticks++;
}

static size_t total_batches;
static void on_batch(void *ctx, int gen, size_t n) {
    (void)ctx;
    (void)gen;
    total_batches += n;
}

static void run(tiny_t *t, const char *dir, int threads, counter_t *cnt) {
    glora_set_threads(threads);
    glora_search_layer_t *L;
    assert_int_equal(glora_search_vit_layers(t->m, &L), GLORA_OK);
    glora_search_vit_t v = {.m = t->m, .data = &t->ds, .batch = 16,
                            .tick = cnt ? tick : NULL, .tick_ctx = cnt};
    snprintf(v.supernet_sha256, sizeof v.supernet_sha256, "%064d", 7);
    glora_search_problem_t p = {.n_layers = glora_vit_layers(t->m), .layers = L,
                                .evaluate = glora_search_vit_evaluate,
                                .write_spec = glora_search_vit_write_spec, .ctx = &v};
    glora_search_opts_t o;
    glora_search_opts_default(&o);
    o.population = 12;
    o.parents = 4;
    o.mutations = 5;
    o.crossovers = 5;
    o.generations = 3;
    o.seed = 1;
    o.max_params = 1500;
    o.budgets[0] = 500;
    o.n_budgets = 1;
    o.clock = zero_clock;
    glora_search_t *s;
    assert_int_equal(glora_search_create(&s, &p, &o, "hash", v.supernet_sha256), GLORA_OK);
    glora_search_hooks_t hooks = {.batch = on_batch};
    total_batches = 0;
    assert_int_equal(glora_search_run(s, dir, &hooks), GLORA_OK);
    if (cnt) assert_int_equal(cnt->last_done, cnt->last_total);
    assert_int_equal(total_batches, glora_search_n_evaluated(s));
    glora_search_free(s);
    free(L);
}

static char *slurp(const char *dir, const char *name) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    char *d = NULL;
    size_t n;
    assert_int_equal(glora_read_file(path, 1 << 26, &d, &n), GLORA_OK);
    return d;
}

static void test_tiny_search(void **state) {
    (void)state;
    tiny_t t;
    tiny_init(&t);
    char d1[] = "/tmp/glora-test-svit-XXXXXX", d2[] = "/tmp/glora-test-svit-XXXXXX";
    assert_non_null(mkdtemp(d1));
    assert_non_null(mkdtemp(d2));
    counter_t cnt = {0};
    run(&t, d1, 1, NULL);
    run(&t, d2, 2, &cnt);
    assert_true(cnt.ticks > 0);
    const char *files[] = {"checkpoint.json", "history.jsonl", "pareto.json", "best.json",
                           "best-under-500.json"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        char *a = slurp(d1, files[i]), *b = slurp(d2, files[i]);
        if (strcmp(a, b) != 0) fail_msg("%s differs between 1 and 2 threads", files[i]);
        free(a);
        free(b);
    }
    /* Subnets really differ in accuracy (else the test would prove little). */
    char *ck = slurp(d1, "checkpoint.json");
    cJSON *root = cJSON_Parse(ck);
    cJSON *cands = cJSON_GetObjectItem(root, "candidates"), *c;
    double lo = 2, hi = -1;
    cJSON_ArrayForEach(c, cands) {
        double acc = cJSON_GetArrayItem(c, 2)->valuedouble;
        lo = acc < lo ? acc : lo;
        hi = acc > hi ? acc : hi;
    }
    assert_true(cJSON_GetArraySize(cands) >= 30);
    assert_true(hi > lo);
    cJSON_Delete(root);
    free(ck);
    /* best.json: a valid spec; its accuracy is the subnet's, evaluated anew. */
    char path[256];
    snprintf(path, sizeof path, "%s/best.json", d1);
    glora_spec_t spec;
    assert_int_equal(glora_spec_read(&spec, path), GLORA_OK);
    assert_int_equal(glora_spec_check(&spec, t.m, path), GLORA_OK);
    assert_true(spec.has_val);
    assert_true(spec.params <= 1500);
    glora_vit_linears_t *lin;
    glora_vit_acts_t *acts;
    assert_int_equal(glora_vit_linears_create(&lin, t.m), GLORA_OK);
    assert_int_equal(glora_vit_acts_create(&acts, t.m, 7, 0), GLORA_OK);
    glora_vit_linears_set(lin, t.m, spec.cfg);
    size_t ok = glora_vit_count_correct(t.m, lin, acts, t.x, t.y, N_IMG);
    assert_true((double)ok / N_IMG == spec.val_accuracy);
    glora_vit_linears_free(lin);
    glora_vit_acts_free(acts);
    glora_spec_free(&spec);
    snprintf(path, sizeof path, "%s/best-under-500.json", d1);
    assert_int_equal(glora_spec_read(&spec, path), GLORA_OK);
    assert_true(spec.params <= 500);
    glora_spec_free(&spec);
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf %s %s", d1, d2);
    assert_int_equal(system(cmd), 0);
    tiny_free(&t);
}

static void test_needs_supernet(void **state) {
    (void)state;
    glora_vit_arch_t a = {.img_size = 8, .in_chans = 1, .patch = 4, .dim = 8, .depth = 1,
                          .heads = 2, .mlp_hidden = 16, .num_classes = 3};
    glora_vit_t *m;
    assert_int_equal(glora_vit_create(&m, &a, 0), GLORA_OK);
    glora_search_layer_t *L;
    assert_int_equal(glora_search_vit_layers(m, &L), GLORA_ESTATE);
    assert_non_null(strstr(glora_errmsg(), "supernet"));
    glora_vit_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tiny_search),
        cmocka_unit_test(test_needs_supernet),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
