/* Unit tests of the search engine (search/): parameter counting against hand
 * computed values, encodings, budgets, search-space rules, and the algorithm
 * with a deterministic fake evaluator: legality, no duplicates, ranking of
 * the last generation, deterministic ties, pareto front, determinism, and
 * kill-and-resume equality of every output file. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "glora/common.h"
#include "util/fileio.h"
#include "glora/config.h"
#include "glora/layer.h"
#include "glora/pipeline.h"
#include "glora/search.h"

static const glora_choice_t NONE = {GLORA_NONE, 0}, SCAL = {GLORA_SCALAR, 0},
                            VEC = {GLORA_VECTOR, 0};
static glora_choice_t lora(int r) { return (glora_choice_t){GLORA_LORA, (uint8_t)r}; }

/* A stack of `depth` ViT blocks named like the model's layers. */
static glora_search_layer_t *vit_stack(int depth, int dim, int mlp, int rank) {
    glora_search_layer_t *L = calloc((size_t)depth * 4, sizeof *L);
    static const char *site[4] = {"attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2"};
    for (int b = 0; b < depth; b++) {
        int shapes[4][2] = {{3 * dim, dim}, {dim, dim}, {mlp, dim}, {dim, mlp}};
        for (int s = 0; s < 4; s++) {
            glora_search_layer_t *l = &L[4 * b + s];
            l->out = shapes[s][0];
            l->in = shapes[s][1];
            snprintf(l->name, sizeof l->name, "blocks.%d.%s", b, site[s]);
            glora_space_official(&l->space, rank);
        }
    }
    return L;
}

static size_t count_all(const glora_search_layer_t *L, int n, glora_layer_cfg_t one) {
    glora_search_problem_t p = {.n_layers = n, .layers = L};
    glora_layer_cfg_t *c = malloc((size_t)n * sizeof *c);
    for (int i = 0; i < n; i++) c[i] = one;
    size_t r = glora_search_params(&p, c);
    free(c);
    return r;
}

/* ViT-B/16: dim 768, depth 12, mlp 3072, 48 layers. Per block, all lora_4 on
 * A..C and vectors on D, E: qkv 4*(2304+768)*2 + 4*769 + 2*2304 = 32260,
 * proj 4*1536*2 + 3076 + 1536 = 16900, fc1 4*3840*2 + 3076 + 6144 = 39940,
 * fc2 4*3840*2 + 4*3073 + 1536 = 44548; block 133648, x12 = 1603776. */
static void test_params_vit_b16(void **state) {
    (void)state;
    glora_search_layer_t *L = vit_stack(12, 768, 3072, 4);
    glora_layer_cfg_t c;
    c = (glora_layer_cfg_t){{lora(4), lora(4), lora(4), VEC, VEC}};
    assert_int_equal(count_all(L, 48, c), 1603776);
    /* all vector: qkv 4*2304+768, proj 5*768, fc1 4*3072+768, fc2 4*768+3072 */
    c = (glora_layer_cfg_t){{VEC, VEC, VEC, VEC, VEC}};
    assert_int_equal(count_all(L, 48, c), 12 * (9984 + 3840 + 13056 + 6144));
    c = (glora_layer_cfg_t){{SCAL, SCAL, NONE, SCAL, SCAL}};
    assert_int_equal(count_all(L, 48, c), 192);
    c = (glora_layer_cfg_t){{NONE, NONE, NONE, NONE, NONE}};
    assert_int_equal(count_all(L, 48, c), 0);
    /* qkv 12288+768+1, proj 6144+768+1, fc1 15360+768+1, fc2 15360+3072+1 */
    c = (glora_layer_cfg_t){{lora(4), NONE, VEC, SCAL, NONE}};
    assert_int_equal(count_all(L, 48, c), 12 * (13057 + 6913 + 16129 + 18433));
    /* sub-ranks: qkv 6144+3072+2307+1+2304, proj 3072+1536+2307+1+768,
     * fc1 7680+3840+2307+1+3072, fc2 7680+3840+9219+1+768 */
    c = (glora_layer_cfg_t){{lora(2), lora(1), lora(3), SCAL, VEC}};
    assert_int_equal(count_all(L, 48, c), 719040);
    free(L);
}

static void test_encoding(void **state) {
    (void)state;
    glora_layer_cfg_t c[3] = {{{lora(4), VEC, NONE, NONE, VEC}},
                              {{NONE, lora(12), VEC, SCAL, SCAL}},
                              {{SCAL, SCAL, NONE, NONE, NONE}}};
    char *e = glora_search_encode(c, 3);
    assert_string_equal(e, "L4.V.N.N.V|N.L12.V.S.S|S.S.N.N.N");
    glora_layer_cfg_t d[3];
    assert_int_equal(glora_search_decode(e, d, 3), 0);
    assert_memory_equal(c, d, sizeof c);
    free(e);
    const char *bad[] = {"L4.V.N.N.V|N.L12.V.S.S",            /* too few layers */
                         "L4.V.N.N.V|N.L12.V.S.S|S.S.N.N.N|N", /* too many */
                         "L4.V.N.N|N.L12.V.S.S|S.S.N.N.N",     /* 4 choices */
                         "L0.V.N.N.V|N.L12.V.S.S|S.S.N.N.N",   /* rank 0 */
                         "L99.V.N.N.V|N.L2.V.S.S|S.S.N.N.N",   /* rank > 64 */
                         "L4.V.N.N.V|N.L2.V.S.L2|S.S.N.N.N",   /* lora on E */
                         "X.V.N.N.V|N.L2.V.S.S|S.S.N.N.N"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_int_equal(glora_search_decode(bad[i], d, 3), GLORA_EFORMAT);
        assert_non_null(strstr(glora_errmsg(), "candidate"));
    }
    /* C = scalar is not a legal choice. */
    assert_int_equal(glora_search_decode("L4.V.S.N.V|N.L2.S.S.S|S.S.N.N.N", d, 3), GLORA_EFORMAT);
}

static void test_budget(void **state) {
    (void)state;
    size_t b;
    assert_int_equal(glora_search_parse_budget("12345", "k", &b), 0);
    assert_int_equal(b, 12345);
    assert_int_equal(glora_search_parse_budget("300K", "k", &b), 0);
    assert_int_equal(b, 300000);
    assert_int_equal(glora_search_parse_budget("1.5M", "k", &b), 0);
    assert_int_equal(b, 1500000);
    assert_int_equal(glora_search_parse_budget("0.25m", "k", &b), 0);
    assert_int_equal(b, 250000);
    assert_int_equal(glora_search_parse_budget("2k", "k", &b), 0);
    assert_int_equal(b, 2000);
    const char *bad[] = {"", "abc", "10X", "-1", "1.5", "0.0001K", "1MM", "1e30"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_int_equal(glora_search_parse_budget(bad[i], "search.max_params", &b), GLORA_EINVAL);
        assert_non_null(strstr(glora_errmsg(), "search.max_params"));
    }
    char buf[32];
    glora_search_budget_str(2000000, buf);
    assert_string_equal(buf, "2M");
    glora_search_budget_str(1500000, buf);
    assert_string_equal(buf, "1500K");
    glora_search_budget_str(12345, buf);
    assert_string_equal(buf, "12345");
}

static void test_space_rules(void **state) {
    (void)state;
    glora_search_layer_t *L = vit_stack(2, 16, 32, 4);
    const char *ab[] = {"lora_4", "lora_2", "vector", "none"};
    const char *fc1c[] = {"LoRA_1", "none"};
    const char *de[] = {"constant"};
    glora_search_space_rule_t all = {.choices = {ab, ab}, .n = {4, 4}, .key = "search.space"};
    assert_int_equal(glora_search_space_apply(L, 8, &all, 4), 0);
    glora_search_space_rule_t fc1 = {.select = "fc1", .choices = {NULL, NULL, fc1c, de},
                                     .n = {0, 0, 2, 1}, .key = "search.space.fc1"};
    assert_int_equal(glora_search_space_apply(L, 8, &fc1, 4), 0);
    glora_search_space_rule_t blk = {.select = "blocks.1", .choices = {NULL, NULL, NULL, NULL, de},
                                     .n = {0, 0, 0, 0, 1}, .key = "search.space.blocks.1"};
    assert_int_equal(glora_search_space_apply(L, 8, &blk, 4), 0);
    char s[512];
    glora_search_space_str(&L[0].space, s, sizeof s);
    assert_string_equal(s, "A=L4,L2,V,N B=L4,L2,V,N C=L4,V,N D=S,V,N E=S,V,N");
    glora_search_space_str(&L[2].space, s, sizeof s);
    assert_string_equal(s, "A=L4,L2,V,N B=L4,L2,V,N C=L1,N D=S E=S,V,N");
    glora_search_space_str(&L[6].space, s, sizeof s);
    assert_string_equal(s, "A=L4,L2,V,N B=L4,L2,V,N C=L1,N D=S E=S");
    glora_search_space_str(&L[5].space, s, sizeof s);
    assert_string_equal(s, "A=L4,L2,V,N B=L4,L2,V,N C=L4,V,N D=S,V,N E=S");

    /* Invalid spaces: errors name the key and the tensor. */
    const char *unknown[] = {"lora_4", "diagonal"};
    const char *toohigh[] = {"lora_8"};
    const char *cscalar[] = {"scalar"};
    const char *dlora[] = {"lora_2"};
    const char *dup[] = {"vector", "none", "vector"};
    struct { glora_search_space_rule_t r; const char *want; } bad[] = {
        {{.choices = {unknown}, .n = {2}, .key = "search.space"}, "search.space.A"},
        {{.choices = {NULL, toohigh}, .n = {0, 1}, .key = "search.space"}, "search.space.B"},
        {{.choices = {NULL, NULL, cscalar}, .n = {0, 0, 1}, .key = "search.space"},
         "search.space.C"},
        {{.choices = {NULL, NULL, NULL, dlora}, .n = {0, 0, 0, 1}, .key = "x.y"}, "x.y.D"},
        {{.choices = {NULL, NULL, NULL, NULL, dup}, .n = {0, 0, 0, 0, 3}, .key = "x"}, "x.E"},
        {{.choices = {ab}, .n = {0}, .key = "search.space"}, "search.space.A"},
        {{.select = "blocks.7", .choices = {ab}, .n = {4}, .key = "search.space.blocks.7"},
         "search.space.blocks.7"},
        {{.select = "fc3", .choices = {ab}, .n = {4}, .key = "k"}, "k"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        /* A bad list is EINVAL; a selector that fits no layer ESTATE. */
        int sel = bad[i].r.select && bad[i].r.n[0] == 4;
        assert_int_equal(glora_search_space_apply(L, 8, &bad[i].r, 4), sel ? GLORA_ESTATE : GLORA_EINVAL);
        assert_non_null(strstr(glora_errmsg(), bad[i].want));
    }
    /* "blocks.1" must not select blocks.10 and friends. */
    glora_search_layer_t *M = vit_stack(11, 8, 8, 4);
    glora_search_space_rule_t b1 = {.select = "blocks.1", .choices = {NULL, NULL, NULL, NULL, de},
                                    .n = {0, 0, 0, 0, 1}, .key = "k"};
    assert_int_equal(glora_search_space_apply(M, 44, &b1, 4), 0);
    assert_int_equal(M[4].space.n[GLORA_E], 1);
    assert_int_equal(M[40].space.n[GLORA_E], 3);
    free(M);
    free(L);
}

static void test_opts_check(void **state) {
    (void)state;
    glora_search_opts_t o;
    glora_search_opts_default(&o);
    assert_int_equal(glora_search_opts_check(&o), 0);
    o.parents = 60;
    assert_int_equal(glora_search_opts_check(&o), GLORA_EINVAL);
    assert_non_null(strstr(glora_errmsg(), "search.parents"));
    glora_search_opts_default(&o);
    o.mutation_prob = 1.5;
    assert_int_equal(glora_search_opts_check(&o), GLORA_EINVAL);
    assert_non_null(strstr(glora_errmsg(), "search.mutation_prob"));
    glora_search_opts_default(&o);
    o.min_params = 10, o.max_params = 5;
    assert_int_equal(glora_search_opts_check(&o), GLORA_EINVAL);
    glora_search_opts_default(&o);
    o.crossovers = 30;
    assert_int_equal(glora_search_opts_check(&o), GLORA_EINVAL);
    assert_non_null(strstr(glora_errmsg(), "search.crossovers"));
}

/* ---- the algorithm with a fake evaluator ---- */

typedef struct {
    const glora_search_layer_t *layers;
    int n_layers;
    size_t min_params, max_params;
    char **seen; /* every candidate evaluated, as encodings */
    size_t n_seen, cap;
    int calls;
    int coarse;    /* accuracies in few levels: many ties */
    int fail_at;   /* call number that fails (simulated kill mid-generation); -1 */
    size_t max_batch;
    size_t n_items; /* items of fake_score */
} fake_t;

static uint64_t mix(uint64_t h) {
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    return h ^ (h >> 33);
}

/* A hash-like accuracy that still rewards some structure (so the search has
 * something to climb): more LoRA on A helps a bit. */
static double fake_acc(const fake_t *f, const glora_layer_cfg_t *c) {
    uint64_t h = 1234567;
    int lora_a = 0;
    for (int l = 0; l < f->n_layers; l++)
        for (int t = 0; t < GLORA_NTENSORS; t++) {
            h = mix(h ^ ((uint64_t)(l * 8 + t) << 16) ^ ((uint64_t)c[l].t[t].kind << 8) ^
                    c[l].t[t].rank);
            lora_a += t == GLORA_A && c[l].t[t].kind == GLORA_LORA;
        }
    if (f->coarse) return (double)(h % 4) / 4.0;
    return 0.5 * (double)(h % 1000) / 1000.0 + 0.5 * lora_a / f->n_layers;
}

static void fake_check(fake_t *f, const glora_layer_cfg_t *const *cands, size_t n);

static int fake_eval(void *ctx, const glora_layer_cfg_t *const *cands, size_t n, double *acc) {
    fake_t *f = ctx;
    if (f->calls++ == f->fail_at) return glora_error(GLORA_EIO, "fake evaluator: killed");
    fake_check(f, cands, n);
    for (size_t i = 0; i < n; i++) acc[i] = fake_acc(f, cands[i]);
    return 0;
}

/* Legal, within the budget, never seen before. */
static void fake_check(fake_t *f, const glora_layer_cfg_t *const *cands, size_t n) {
    if (n > f->max_batch) f->max_batch = n;
    glora_search_problem_t p = {.n_layers = f->n_layers, .layers = f->layers};
    for (size_t i = 0; i < n; i++) {
        /* legal: every choice is in its layer's space, within the budget */
        for (int l = 0; l < f->n_layers; l++)
            for (int t = 0; t < GLORA_NTENSORS; t++) {
                int ok = 0;
                for (int k = 0; k < f->layers[l].space.n[t]; k++)
                    ok |= glora_choice_eq(f->layers[l].space.opt[t][k], cands[i][l].t[t]);
                assert_true(ok);
            }
        size_t params = glora_search_params(&p, cands[i]);
        assert_true(params >= f->min_params);
        assert_true(f->max_params == 0 || params <= f->max_params);
        char *e = glora_search_encode(cands[i], f->n_layers);
        for (size_t k = 0; k < f->n_seen; k++) assert_string_not_equal(f->seen[k], e);
        if (f->n_seen == f->cap) {
            f->cap = f->cap ? 2 * f->cap : 256;
            f->seen = realloc(f->seen, f->cap * sizeof *f->seen);
        }
        f->seen[f->n_seen++] = e;
    }
}

/* Loss of a candidate on item k of the fake problem: hash-like, in [0, 4). */
static double fake_item_loss(const fake_t *f, const glora_layer_cfg_t *c, size_t k) {
    char *e = glora_search_encode(c, f->n_layers);
    uint64_t h = 1469598103934665603ull;
    for (const char *q = e; *q; q++) h = (h ^ (uint8_t)*q) * 1099511628211ull;
    free(e);
    h = mix(h ^ (0x9e3779b97f4a7c15ull * (k + 1)));
    return (double)(h % 100000) / 25000.0;
}

/* The score callback (fitness loglik, accuracy+loss): an item is right when
 * its loss is below 1. */
static int fake_score(void *ctx, const glora_layer_cfg_t *const *cands, size_t n, size_t lo, size_t hi,
                      uint64_t *correct, double *loss) {
    fake_t *f = ctx;
    if (f->calls++ == f->fail_at) return glora_error(GLORA_EIO, "fake evaluator: killed");
    fake_check(f, cands, n);
    for (size_t i = 0; i < n; i++)
        for (size_t k = lo; k < hi; k++) {
            double l = fake_item_loss(f, cands[i], k);
            loss[i * f->n_items + k] = l;
            correct[i] += l < 1.0;
        }
    return 0;
}

static void fake_free(fake_t *f) {
    for (size_t i = 0; i < f->n_seen; i++) free(f->seen[i]);
    free(f->seen);
}

static int fake_spec(void *ctx, const char *path, const glora_layer_cfg_t *cfg, size_t params,
                     double acc, int generation) {
    fake_t *f = ctx;
    char *e = glora_search_encode(cfg, f->n_layers);
    char buf[4096];
    int n = snprintf(buf, sizeof buf, "{\"candidate\": \"%s\", \"params\": %zu, "
                                      "\"val_accuracy\": %.17g, \"generation\": %d}\n",
                     e, params, acc, generation);
    free(e);
    return glora_write_atomic(path, buf, (size_t)n);
}

static double zero_clock(void) { return 0.0; }

/* A small problem: 2 blocks of a dim-16 ViT, official space at rank 4 with
 * sub-ranks 2 on fc1, and a budget that excludes part of the space. */
typedef struct {
    glora_search_layer_t *layers;
    int n_layers;
    glora_search_opts_t o;
    fake_t f;
} setup_t;

static void setup_init(setup_t *su, uint64_t seed) {
    memset(su, 0, sizeof *su);
    su->n_layers = 8;
    su->layers = vit_stack(2, 16, 32, 4);
    const char *fc1a[] = {"lora_4", "lora_2", "vector", "none"};
    glora_search_space_rule_t r = {.select = "fc1", .choices = {fc1a}, .n = {4}, .key = "k"};
    assert_int_equal(glora_search_space_apply(su->layers, 8, &r, 4), 0);
    glora_search_opts_default(&su->o);
    su->o.population = 20;
    su->o.parents = 5;
    su->o.mutations = 8;
    su->o.crossovers = 8;
    su->o.generations = 6;
    su->o.min_params = 400;
    su->o.max_params = 2500;
    su->o.seed = seed;
    su->o.budgets[0] = 1000;
    su->o.budgets[1] = 2000;
    su->o.n_budgets = 2;
    su->o.clock = zero_clock;
    su->f = (fake_t){.layers = su->layers, .n_layers = 8, .min_params = 400,
                     .max_params = 2500, .fail_at = -1};
}

static void setup_free(setup_t *su) {
    fake_free(&su->f);
    free(su->layers);
}

static glora_search_problem_t setup_problem(setup_t *su) {
    return (glora_search_problem_t){.n_layers = su->n_layers, .layers = su->layers,
                                    .evaluate = fake_eval, .write_spec = fake_spec,
                                    .ctx = &su->f, .data_sha256 = "fake-data"};
}

static char *tmpdir(void) {
    char *d = strdup("/tmp/glora-test-search-XXXXXX");
    assert_non_null(mkdtemp(d));
    return d;
}

static void rm_rf(const char *dir) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static const char *const outputs[] = {"checkpoint.json", "history.jsonl", "pareto.json",
                                      "best.json", "best-under-1K.json", "best-under-2K.json"};
#define N_OUTPUTS (sizeof outputs / sizeof *outputs)

static char *slurp(const char *dir, const char *name) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    char *d = NULL;
    size_t n;
    if (glora_read_file(path, 1 << 28, &d, &n) != 0) return NULL;
    return d;
}

static void assert_same_outputs(const char *a, const char *b) {
    for (size_t i = 0; i < N_OUTPUTS; i++) {
        char *x = slurp(a, outputs[i]), *y = slurp(b, outputs[i]);
        if (!x || !y) fail_msg("missing output %s", outputs[i]);
        if (strcmp(x, y) != 0) fail_msg("output %s differs between %s and %s", outputs[i], a, b);
        free(x);
        free(y);
    }
}

static void run_full(setup_t *su, const char *dir) {
    glora_search_problem_t p = setup_problem(su);
    glora_search_t *s;
    assert_int_equal(glora_search_create(&s, &p, &su->o, "cfg-hash", "sha"), 0);
    assert_int_equal(glora_search_run(s, dir, NULL), 0);
    assert_true(glora_search_done(s));
    glora_search_free(s);
}

static void test_search_legal_unique_ranked(void **state) {
    (void)state;
    setup_t su;
    setup_init(&su, 7);
    char *dir = tmpdir();
    glora_search_problem_t p = setup_problem(&su);
    glora_search_t *s;
    assert_int_equal(glora_search_create(&s, &p, &su.o, "h", "sha"), 0);
    assert_int_equal(glora_search_run(s, dir, NULL), 0);
    /* one evaluator call per generation, batches no larger than the population */
    assert_int_equal(su.f.calls, su.o.generations + 1);
    /* three budget tiers (max 2500, extra 1000 and 2000): a population each */
    assert_true(su.f.max_batch <= 3 * (size_t)su.o.population);
    size_t n = glora_search_n_evaluated(s);
    assert_int_equal(n, su.f.n_seen);
    assert_true(n > (size_t)su.o.population * 3); /* offspring were found */

    /* The best is the first of everything evaluated in the ranking order,
     * computed here independently -- including the last generation. */
    size_t best = 0;
    int last_gen_has_better = 0;
    for (size_t i = 1; i < n; i++) {
        size_t pi, pb;
        double ai, ab;
        glora_search_candidate(s, i, &pi, &ai, NULL);
        glora_search_candidate(s, best, &pb, &ab, NULL);
        if (ai > ab || (ai == ab && (pi < pb || (pi == pb && strcmp(glora_search_encoding(s, i),
                                                                      glora_search_encoding(s, best)) < 0))))
            best = i;
    }
    assert_int_equal(glora_search_best(s, 0), (long)best);
    int gen;
    glora_search_candidate(s, best, NULL, NULL, &gen);
    (void)last_gen_has_better;
    char *hist = slurp(dir, "history.jsonl");
    assert_non_null(hist);
    int lines = 0;
    for (char *q = hist; *q; q++) lines += *q == '\n';
    assert_int_equal(lines, su.o.generations + 1);
    free(hist);
    char *bj = slurp(dir, "best.json");
    assert_non_null(strstr(bj, glora_search_encoding(s, best)));
    free(bj);
    /* best-under-1K is the best with params <= 1000 */
    long b1 = glora_search_best(s, 1000);
    assert_true(b1 >= 0);
    size_t pb1;
    glora_search_candidate(s, (size_t)b1, &pb1, NULL, NULL);
    assert_true(pb1 <= 1000);
    char *bu = slurp(dir, "best-under-1K.json");
    assert_non_null(strstr(bu, glora_search_encoding(s, (size_t)b1)));
    free(bu);
    glora_search_free(s);
    rm_rf(dir);
    free(dir);
    setup_free(&su);
}

/* Force the last generation to hold the best: the evaluator gives the very
 * last batch a high accuracy; the official code would never rank it. */
static int late_eval(void *ctx, const glora_layer_cfg_t *const *cands, size_t n, double *acc) {
    fake_t *f = ctx;
    int rc = fake_eval(ctx, cands, n, acc);
    if (f->calls == 4) acc[n - 1] = 1.0; /* fake_acc stays below 0.9995 */
    return rc;
}

static void test_last_generation_ranked(void **state) {
    (void)state;
    setup_t su;
    setup_init(&su, 3);
    su.o.generations = 3;
    char *dir = tmpdir();
    glora_search_problem_t p = setup_problem(&su);
    p.evaluate = late_eval;
    glora_search_t *s;
    assert_int_equal(glora_search_create(&s, &p, &su.o, "h", "sha"), 0);
    assert_int_equal(glora_search_run(s, dir, NULL), 0);
    long b = glora_search_best(s, 0);
    double acc;
    int gen;
    glora_search_candidate(s, (size_t)b, NULL, &acc, &gen);
    assert_true(acc == 1.0);
    assert_int_equal(gen, 3);
    char *bj = slurp(dir, "best.json");
    assert_non_null(strstr(bj, "\"generation\": 3"));
    free(bj);
    char *ck = slurp(dir, "checkpoint.json");
    cJSON *j = cJSON_Parse(ck);
    assert_int_equal((long)cJSON_GetArrayItem(cJSON_GetObjectItem(j, "parents"), 0)->valuedouble,
                     b);
    cJSON_Delete(j);
    free(ck);
    glora_search_free(s);
    rm_rf(dir);
    free(dir);
    setup_free(&su);
}

/* Many ties: the ranking must still be total (params, then encoding). */
static void test_ties_deterministic(void **state) {
    (void)state;
    setup_t su;
    setup_init(&su, 11);
    su.f.coarse = 1;
    char *d1 = tmpdir(), *d2 = tmpdir();
    run_full(&su, d1);
    fake_free(&su.f);
    su.f.seen = NULL, su.f.n_seen = su.f.cap = 0, su.f.calls = 0;
    run_full(&su, d2);
    assert_same_outputs(d1, d2);
    /* parents in the checkpoint are sorted: accuracy desc, params asc, encoding asc */
    char *ck = slurp(d1, "checkpoint.json");
    cJSON *j = cJSON_Parse(ck);
    cJSON *par = cJSON_GetObjectItem(j, "parents"), *cands = cJSON_GetObjectItem(j, "candidates");
    for (int i = 1; i < cJSON_GetArraySize(par); i++) {
        cJSON *a = cJSON_GetArrayItem(cands, (int)cJSON_GetArrayItem(par, i - 1)->valuedouble);
        cJSON *b = cJSON_GetArrayItem(cands, (int)cJSON_GetArrayItem(par, i)->valuedouble);
        double aa = cJSON_GetArrayItem(a, 2)->valuedouble, ba = cJSON_GetArrayItem(b, 2)->valuedouble;
        double ap = cJSON_GetArrayItem(a, 1)->valuedouble, bp = cJSON_GetArrayItem(b, 1)->valuedouble;
        assert_true(aa >= ba);
        if (aa == ba) {
            assert_true(ap <= bp);
            if (ap == bp)
                assert_true(strcmp(cJSON_GetArrayItem(a, 3)->valuestring,
                                   cJSON_GetArrayItem(b, 3)->valuestring) < 0);
        }
    }
    cJSON_Delete(j);
    free(ck);
    rm_rf(d1);
    rm_rf(d2);
    free(d1);
    free(d2);
    setup_free(&su);
}

static void test_pareto(void **state) {
    (void)state;
    setup_t su;
    setup_init(&su, 5);
    su.f.coarse = 1; /* ties in accuracy and params exercise the edge cases */
    char *dir = tmpdir();
    glora_search_problem_t p = setup_problem(&su);
    glora_search_t *s;
    assert_int_equal(glora_search_create(&s, &p, &su.o, "h", "sha"), 0);
    assert_int_equal(glora_search_run(s, dir, NULL), 0);
    size_t n = glora_search_n_evaluated(s), front = 0;
    char *pj = slurp(dir, "pareto.json");
    cJSON *arr = cJSON_Parse(pj);
    assert_true(cJSON_IsArray(arr));
    for (size_t i = 0; i < n; i++) {
        size_t pi;
        double ai;
        glora_search_candidate(s, i, &pi, &ai, NULL);
        int dominated = 0;
        for (size_t k = 0; k < n && !dominated; k++) {
            size_t pk;
            double ak;
            glora_search_candidate(s, k, &pk, &ak, NULL);
            dominated = pk <= pi && ak >= ai && (pk < pi || ak > ai);
        }
        int listed = 0;
        cJSON *e;
        cJSON_ArrayForEach(e, arr) listed |= strcmp(cJSON_GetObjectItem(e, "candidate")->valuestring,
                                                   glora_search_encoding(s, i)) == 0;
        assert_int_equal(listed, !dominated);
        front += !dominated;
    }
    assert_int_equal((size_t)cJSON_GetArraySize(arr), front);
    /* entries carry per-layer choices */
    cJSON *first = cJSON_GetArrayItem(arr, 0);
    cJSON *l0 = cJSON_GetObjectItem(cJSON_GetObjectItem(first, "layers"), "blocks.0.attn.qkv");
    assert_true(cJSON_IsString(cJSON_GetObjectItem(l0, "C")));
    cJSON_Delete(arr);
    free(pj);
    glora_search_free(s);
    rm_rf(dir);
    free(dir);
    setup_free(&su);
}

static void reset_fake(setup_t *su) {
    fake_free(&su->f);
    su->f.seen = NULL, su->f.n_seen = su->f.cap = 0, su->f.calls = 0;
    su->f.fail_at = -1;
}

static void test_determinism_and_seed(void **state) {
    (void)state;
    setup_t su;
    setup_init(&su, 42);
    char *d1 = tmpdir(), *d2 = tmpdir(), *d3 = tmpdir();
    run_full(&su, d1);
    reset_fake(&su);
    run_full(&su, d2);
    assert_same_outputs(d1, d2);
    reset_fake(&su);
    su.o.seed = 43;
    run_full(&su, d3);
    char *a = slurp(d1, "checkpoint.json"), *b = slurp(d3, "checkpoint.json");
    assert_string_not_equal(a, b);
    free(a);
    free(b);
    rm_rf(d1);
    rm_rf(d2);
    rm_rf(d3);
    free(d1);
    free(d2);
    free(d3);
    setup_free(&su);
}

/* Resume from a state stopped after generation g (or killed in the middle of
 * generation g + 1) must end with byte-identical files. */
static void test_kill_and_resume(void **state) {
    (void)state;
    setup_t su;
    setup_init(&su, 99);
    char *ref = tmpdir();
    run_full(&su, ref);
    for (int g = 0; g <= su.o.generations; g++) {
        for (int mode = 0; mode < 3; mode++) {
            /* mode 0: stop after generation g; 1: the evaluator dies during
             * generation g + 1; 2: like 0, and the outputs after the
             * checkpoint are lost */
            if (mode == 1 && g == su.o.generations) continue;
            reset_fake(&su);
            char *dir = tmpdir();
            glora_search_problem_t p = setup_problem(&su);
            glora_search_opts_t o = su.o;
            if (mode != 1) o.stop_after = g;
            else su.f.fail_at = g + 1;
            glora_search_t *s;
            assert_int_equal(glora_search_create(&s, &p, &o, "cfg-hash", "sha"), 0);
            int rc = glora_search_run(s, dir, NULL);
            assert_int_equal(rc, mode == 1 ? GLORA_EIO : 0);
            assert_int_equal(glora_search_generation(s), g);
            glora_search_free(s);
            if (mode == 2) {
                char path[512];
                snprintf(path, sizeof path, "%s/history.jsonl", dir);
                unlink(path);
                snprintf(path, sizeof path, "%s/pareto.json", dir);
                assert_int_equal(glora_write_atomic(path, "[", 1), 0);
                snprintf(path, sizeof path, "%s/best.json", dir);
                unlink(path);
            }
            su.f.fail_at = -1;
            assert_int_equal(glora_search_create(&s, &p, &su.o, "cfg-hash", "sha"), 0);
            char ck[512];
            snprintf(ck, sizeof ck, "%s/checkpoint.json", dir);
            assert_int_equal(glora_search_resume(s, ck), 0);
            assert_int_equal(glora_search_generation(s), g);
            assert_int_equal(glora_search_run(s, dir, NULL), 0);
            glora_search_free(s);
            assert_same_outputs(ref, dir);
            rm_rf(dir);
            free(dir);
        }
    }
    rm_rf(ref);
    free(ref);
    setup_free(&su);
}

static void test_resume_refuses_changes(void **state) {
    (void)state;
    setup_t su;
    setup_init(&su, 1);
    char *dir = tmpdir();
    glora_search_problem_t p = setup_problem(&su);
    glora_search_opts_t o = su.o;
    o.stop_after = 1;
    glora_search_t *s;
    assert_int_equal(glora_search_create(&s, &p, &o, "cfg-hash", "sha-A"), 0);
    assert_int_equal(glora_search_run(s, dir, NULL), 0);
    glora_search_free(s);
    char ck[512];
    snprintf(ck, sizeof ck, "%s/checkpoint.json", dir);

    struct { const char *hash, *sha; int what; const char *want; } cases[] = {
        {"cfg-hash", "sha-B", 0, "supernet"},
        {"other-hash", "sha-A", 0, "config"},
        {"cfg-hash", "sha-A", 1, "search.population"},
        {"cfg-hash", "sha-A", 2, "search.seed"},
        {"cfg-hash", "sha-A", 3, "search.space"},
        {"cfg-hash", "sha-A", 4, "search.max_params"},
        {"cfg-hash", "sha-A", 5, "search.extra_budgets"},
        {"cfg-hash", "sha-A", 6, "search.mutation_prob"},
        {"cfg-hash", "sha-A", 7, "validation data"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        glora_search_opts_t oo = su.o;
        glora_search_layer_t *L = malloc(8 * sizeof *L);
        memcpy(L, su.layers, 8 * sizeof *L);
        glora_search_problem_t pp = p;
        pp.layers = L;
        if (cases[i].what == 1) oo.population = 21;
        if (cases[i].what == 2) oo.seed = 2;
        if (cases[i].what == 3) L[5].space.n[GLORA_E] = 2;
        if (cases[i].what == 4) oo.max_params = 2600;
        if (cases[i].what == 5) oo.budgets[1] = 3000;
        if (cases[i].what == 6) oo.mutation_prob = 0.3;
        if (cases[i].what == 7) pp.data_sha256 = "other-data";
        assert_int_equal(glora_search_create(&s, &pp, &oo, cases[i].hash, cases[i].sha), 0);
        assert_int_equal(glora_search_resume(s, ck), GLORA_ESTATE);
        if (!strstr(glora_errmsg(), cases[i].want))
            fail_msg("case %zu: message '%s' lacks '%s'", i, glora_errmsg(), cases[i].want);
        assert_int_equal(glora_search_generation(s), -1);
        glora_search_free(s);
        free(L);
    }
    /* A damaged checkpoint is a format error, not a crash. */
    assert_int_equal(glora_write_atomic(ck, "{\"format\": \"glora-search-checkpoint/1\"}", 39), 0);
    assert_int_equal(glora_search_create(&s, &p, &su.o, "cfg-hash", "sha-A"), 0);
    assert_int_equal(glora_search_resume(s, ck), GLORA_EFORMAT);
    glora_search_free(s);
    rm_rf(dir);
    free(dir);
    setup_free(&su);
}

static void test_budget_impossible(void **state) {
    (void)state;
    setup_t su;
    setup_init(&su, 1);
    su.o.min_params = 1000000;
    su.o.max_params = 2000000;
    char *dir = tmpdir();
    glora_search_problem_t p = setup_problem(&su);
    glora_search_t *s;
    /* extra budgets below the minimum are refused up front */
    assert_int_equal(glora_search_create(&s, &p, &su.o, "h", ""), GLORA_EINVAL);
    assert_non_null(strstr(glora_errmsg(), "search.extra_budgets[0]"));
    su.o.n_budgets = 0;
    assert_int_equal(glora_search_create(&s, &p, &su.o, "h", ""), 0);
    assert_int_equal(glora_search_run(s, dir, NULL), GLORA_EINVAL);
    assert_non_null(strstr(glora_errmsg(), "search.max_params"));
    glora_search_free(s);
    rm_rf(dir);
    free(dir);
    setup_free(&su);
}

/* A budget that uniform random draws almost never meet (the official
 * rejection sampling would loop): over-budget draws are shrunk to fit. */
static void test_tight_budget(void **state) {
    (void)state;
    setup_t su;
    setup_init(&su, 4);
    su.o.min_params = 0;
    su.o.max_params = 300; /* the space spans about 0 .. 4300, mean ~1700 */
    su.o.n_budgets = 1;
    su.o.budgets[0] = 120;
    su.o.generations = 2;
    su.f.min_params = 0;
    su.f.max_params = 300;
    char *dir = tmpdir();
    glora_search_problem_t p = setup_problem(&su);
    glora_search_t *s;
    assert_int_equal(glora_search_create(&s, &p, &su.o, "h", ""), 0);
    assert_int_equal(glora_search_run(s, dir, NULL), 0);
    size_t n0 = 0, under = 0;
    for (size_t i = 0; i < glora_search_n_evaluated(s); i++) {
        size_t params;
        int gen;
        glora_search_candidate(s, i, &params, NULL, &gen);
        assert_true(params <= 300);
        n0 += gen == 0;
        under += params <= 120;
    }
    assert_int_equal(n0, 2 * (size_t)su.o.population); /* both tiers filled generation 0 */
    assert_true(under >= (size_t)su.o.population);
    assert_true(glora_search_best(s, 120) >= 0);
    glora_search_free(s);
    rm_rf(dir);
    free(dir);
    setup_free(&su);
}

/* Each extra budget below max_params evolves its own parents. */
static void test_budget_tiers(void **state) {
    (void)state;
    setup_t su;
    setup_init(&su, 8);
    char *dir = tmpdir();
    run_full(&su, dir);
    char *ck = slurp(dir, "checkpoint.json");
    cJSON *j = cJSON_Parse(ck);
    cJSON *cands = cJSON_GetObjectItem(j, "candidates");
    cJSON *bp = cJSON_GetObjectItem(j, "budget_parents");
    assert_int_equal(cJSON_GetArraySize(bp), 2);
    for (int t = 0; t < 2; t++) {
        cJSON *list = cJSON_GetArrayItem(bp, t), *e;
        assert_int_equal(cJSON_GetArraySize(list), su.o.parents);
        double prev = 2;
        cJSON_ArrayForEach(e, list) {
            cJSON *c = cJSON_GetArrayItem(cands, (int)e->valuedouble);
            assert_true(cJSON_GetArrayItem(c, 1)->valuedouble <= (double)su.o.budgets[t]);
            assert_true(cJSON_GetArrayItem(c, 2)->valuedouble <= prev);
            prev = cJSON_GetArrayItem(c, 2)->valuedouble;
        }
        /* the tier's best parent is the best-under file's candidate */
        char name[64];
        snprintf(name, sizeof name, "best-under-%zuK.json", su.o.budgets[t] / 1000);
        char *bu = slurp(dir, name);
        cJSON *first = cJSON_GetArrayItem(cands, (int)cJSON_GetArrayItem(list, 0)->valuedouble);
        assert_non_null(strstr(bu, cJSON_GetArrayItem(first, 3)->valuestring));
        free(bu);
    }
    cJSON_Delete(j);
    free(ck);
    rm_rf(dir);
    free(dir);
    setup_free(&su);
}

/* A tiny space gets exhausted: no duplicates even then, and the search ends. */
static void test_small_space_exhausted(void **state) {
    (void)state;
    setup_t su;
    setup_init(&su, 1);
    const char *one[] = {"none"};
    const char *two[] = {"none", "scalar"};
    glora_search_space_rule_t all = {.choices = {one, one, one, one, one}, .n = {1, 1, 1, 1, 1},
                                     .key = "k"};
    assert_int_equal(glora_search_space_apply(su.layers, 8, &all, 4), 0);
    /* only the two attention layers of block 0 vary: 4 x 4 = 16 candidates */
    glora_search_space_rule_t vary = {.select = "blocks.0.attn.qkv", .choices = {two, NULL, NULL, two},
                                      .n = {2, 0, 0, 2}, .key = "k"};
    assert_int_equal(glora_search_space_apply(su.layers, 8, &vary, 4), 0);
    vary.select = "blocks.0.attn.proj";
    assert_int_equal(glora_search_space_apply(su.layers, 8, &vary, 4), 0);
    su.o.min_params = 0;
    su.o.max_params = 0;
    su.f.min_params = su.f.max_params = 0;
    char *dir = tmpdir();
    glora_search_problem_t p = setup_problem(&su);
    glora_search_t *s;
    assert_int_equal(glora_search_create(&s, &p, &su.o, "h", ""), 0);
    assert_int_equal(glora_search_run(s, dir, NULL), 0);
    assert_int_equal(glora_search_n_evaluated(s), 16);
    glora_search_free(s);
    rm_rf(dir);
    free(dir);
    setup_free(&su);
}

/* ---- finer fitness, budget filling, the official preset ---- */

/* Ranks by the mean loss (loglik) or accuracy then loss (accuracy+loss); the
 * means are the item losses summed in order in double; the checkpoint holds
 * them and resumes to the same files; a resume under another fitness is
 * refused. */
static void test_fitness_loss(void **state) {
    (void)state;
    for (int fit = GLORA_FITNESS_LOGLIK; fit <= GLORA_FITNESS_ACC_LOSS; fit++) {
        setup_t su;
        setup_init(&su, 21);
        su.o.fitness = (glora_search_fitness_t)fit;
        su.f.n_items = 7;
        glora_search_problem_t p = setup_problem(&su);
        p.score = fake_score;
        p.n_items = 7;
        char *ref = tmpdir();
        glora_search_t *s;
        assert_int_equal(glora_search_create(&s, &p, &su.o, "h", "sha"), 0);
        assert_int_equal(glora_search_run(s, ref, NULL), 0);
        size_t n = glora_search_n_evaluated(s), best = 0;
        double bl = 0, ba = 0;
        for (size_t i = 0; i < n; i++) {
            size_t pi;
            double ai, sum = 0;
            uint64_t right = 0;
            const glora_layer_cfg_t *c = glora_search_candidate(s, i, &pi, &ai, NULL);
            for (size_t k = 0; k < 7; k++) {
                double l = fake_item_loss(&su.f, c, k);
                sum += l;
                right += l < 1.0;
            }
            double li = sum / 7.0;
            assert_true(ai == (double)right / 7.0);
            assert_true(glora_search_candidate_loss(s, i) == li); /* the same bits */
            size_t pb;
            glora_search_candidate(s, best, &pb, NULL, NULL);
            int better = fit == GLORA_FITNESS_LOGLIK
                             ? li < bl || (li == bl && pi < pb)
                             : ai > ba || (ai == ba && (li < bl || (li == bl && pi < pb)));
            if (i == 0 || better) best = i, bl = li, ba = ai;
        }
        assert_int_equal(glora_search_best(s, 0), (long)best);
        glora_search_free(s);
        char *ck = slurp(ref, "checkpoint.json");
        assert_non_null(strstr(ck, fit == GLORA_FITNESS_LOGLIK ? "\"fitness\": \"loglik\""
                                                              : "\"fitness\": \"accuracy+loss\""));
        cJSON *j = cJSON_Parse(ck);
        assert_int_equal(cJSON_GetArraySize(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "candidates"), 0)), 5);
        cJSON_Delete(j);
        free(ck);
        char *h = slurp(ref, "history.jsonl");
        assert_non_null(strstr(h, "\"best_loss\": "));
        free(h);
        /* Stopped after generation 2, resumed: the same files. */
        reset_fake(&su);
        char *dir = tmpdir(), path[512];
        glora_search_opts_t o = su.o;
        o.stop_after = 2;
        assert_int_equal(glora_search_create(&s, &p, &o, "h", "sha"), 0);
        assert_int_equal(glora_search_run(s, dir, NULL), 0);
        glora_search_free(s);
        snprintf(path, sizeof path, "%s/checkpoint.json", dir);
        assert_int_equal(glora_search_create(&s, &p, &su.o, "h", "sha"), 0);
        assert_int_equal(glora_search_resume(s, path), 0);
        assert_int_equal(glora_search_run(s, dir, NULL), 0);
        glora_search_free(s);
        assert_same_outputs(ref, dir);
        /* Another fitness: refused, naming it. */
        glora_search_opts_t other = su.o;
        other.fitness = fit == GLORA_FITNESS_LOGLIK ? GLORA_FITNESS_ACC_LOSS : GLORA_FITNESS_ACCURACY;
        assert_int_equal(glora_search_create(&s, &p, &other, "h", "sha"), 0);
        assert_int_equal(glora_search_resume(s, path), GLORA_ESTATE);
        assert_non_null(strstr(glora_errmsg(), "search.fitness"));
        glora_search_free(s);
        rm_rf(dir);
        rm_rf(ref);
        free(dir);
        free(ref);
        setup_free(&su);
    }
    /* A loss fitness without a score callback is refused. */
    setup_t su;
    setup_init(&su, 1);
    su.o.fitness = GLORA_FITNESS_LOGLIK;
    glora_search_problem_t p = setup_problem(&su);
    glora_search_t *s;
    assert_int_equal(glora_search_create(&s, &p, &su.o, "h", "sha"), GLORA_EINVAL);
    assert_non_null(strstr(glora_errmsg(), "search.fitness"));
    setup_free(&su);
}

/* The default search writes none of the new keys: its checkpoint is the one
 * it always was (4 entries per candidate, no fitness / fill_budget). */
static void test_default_checkpoint_unchanged(void **state) {
    (void)state;
    setup_t su;
    setup_init(&su, 8);
    su.o.generations = 1;
    char *dir = tmpdir();
    run_full(&su, dir);
    char *ck = slurp(dir, "checkpoint.json"), *h = slurp(dir, "history.jsonl");
    assert_null(strstr(ck, "fitness"));
    assert_null(strstr(ck, "fill_budget"));
    assert_null(strstr(ck, "best_loss"));
    assert_null(strstr(h, "best_loss"));
    cJSON *j = cJSON_Parse(ck);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "candidates"), 0)), 4);
    cJSON_Delete(j);
    free(ck);
    free(h);
    rm_rf(dir);
    free(dir);
    setup_free(&su);
}

/* fill_budget: every candidate uses at least 90% of its tier's budget (the
 * tiers 2500, 1000 and 2000), each tier finds some, and the option is
 * checked and compared on resume. */
static void test_fill_budget(void **state) {
    (void)state;
    setup_t su;
    setup_init(&su, 13);
    su.o.min_params = 0;
    su.f.min_params = 0;
    su.o.fill_budget = 1;
    su.o.min_budget_fraction = 0.9;
    char *dir = tmpdir();
    glora_search_problem_t p = setup_problem(&su);
    glora_search_t *s;
    assert_int_equal(glora_search_create(&s, &p, &su.o, "h", "sha"), 0);
    assert_int_equal(glora_search_run(s, dir, NULL), 0);
    size_t n = glora_search_n_evaluated(s), in[3] = {0, 0, 0};
    for (size_t i = 0; i < n; i++) {
        size_t pi;
        glora_search_candidate(s, i, &pi, NULL, NULL);
        int t = pi >= 2250 && pi <= 2500 ? 0 : pi >= 900 && pi <= 1000 ? 1 : pi >= 1800 && pi <= 2000 ? 2 : -1;
        if (t < 0) fail_msg("candidate %zu has %zu parameters, under 90%% of every budget", i, pi);
        in[t]++;
    }
    assert_true(in[0] >= (size_t)su.o.population && in[1] > 0 && in[2] > 0);
    glora_search_free(s);
    char ck[512];
    snprintf(ck, sizeof ck, "%s/checkpoint.json", dir);
    char *text = slurp(dir, "checkpoint.json");
    assert_non_null(strstr(text, "\"fill_budget\": true, \"min_budget_fraction\": 0.9"));
    free(text);
    glora_search_opts_t o = su.o;
    o.min_budget_fraction = 0.8;
    assert_int_equal(glora_search_create(&s, &p, &o, "h", "sha"), 0);
    assert_int_equal(glora_search_resume(s, ck), GLORA_ESTATE);
    assert_non_null(strstr(glora_errmsg(), "search.fill_budget"));
    glora_search_free(s);
    o = su.o;
    assert_int_equal(glora_search_create(&s, &p, &o, "h", "sha"), 0);
    assert_int_equal(glora_search_resume(s, ck), 0);
    glora_search_free(s);
    /* Option checks. */
    glora_search_opts_default(&o);
    o.fill_budget = 1;
    assert_int_equal(glora_search_opts_check(&o), GLORA_EINVAL); /* no max_params */
    assert_non_null(strstr(glora_errmsg(), "search.fill_budget"));
    o.max_params = 1000;
    o.min_budget_fraction = 0;
    assert_int_equal(glora_search_opts_check(&o), GLORA_EINVAL);
    assert_non_null(strstr(glora_errmsg(), "search.min_budget_fraction"));
    o.min_budget_fraction = 1;
    assert_int_equal(glora_search_opts_check(&o), 0);
    rm_rf(dir);
    free(dir);
    setup_free(&su);
}

static glora_config_t *search_cfg(const char *const *sets) {
    glora_config_t *c = NULL;
    assert_int_equal(glora_config_load(&c, NULL, &glora_search_schema), 0);
    for (size_t i = 0; sets[i]; i++)
        if (glora_config_set(c, sets[i])) fail_msg("--set %s: %s", sets[i], glora_errmsg());
    return c;
}

/* search.preset official: the official options whatever the keys' defaults;
 * a pinned key given with another value is an error naming it. The new
 * options and the preset, at their defaults, leave the config hash as it was
 * before they existed. */
static void test_preset_and_new_options(void **state) {
    (void)state;
    glora_search_opts_t o, d;
    glora_search_opts_default(&d);
    const char *none[] = {NULL};
    const char *off[] = {"search.preset=official", "search.population=50", "search.max_params=3K", NULL};
    glora_config_t *c = search_cfg(off);
    assert_int_equal(glora_search_opts_from_config(c, &o), 0);
    assert_int_equal(o.population, 50);
    assert_int_equal(o.parents, 10);
    assert_int_equal(o.mutations, 25);
    assert_int_equal(o.crossovers, 25);
    assert_true(o.mutation_prob == 0.2);
    assert_int_equal(o.max_tries, 10);
    assert_int_equal(o.generations, 20);
    assert_int_equal(o.fitness, GLORA_FITNESS_ACCURACY);
    assert_int_equal(o.fill_budget, 0);
    assert_int_equal(o.max_params, 3000);
    glora_config_free(c);
    struct { const char *set, *key; } bad[] = {
        {"search.population=40", "search.population"}, {"search.generations=3", "search.generations"},
        {"search.mutation_prob=0.3", "search.mutation_prob"}, {"search.fitness=loglik", "search.fitness"},
        {"search.fill_budget=true", "search.fill_budget"}, {"search.space.A=[none, vector]", "search.space.A"},
        {"search.space.ranks=[1]", "search.space.ranks"},
        {"search.space.override.fc1.B=[none]", "search.space.override"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        const char *sets[] = {"search.preset=official", "search.max_params=3K", bad[i].set, NULL};
        c = search_cfg(sets);
        assert_int_equal(glora_search_opts_from_config(c, &o), GLORA_EINVAL);
        if (!strstr(glora_errmsg(), bad[i].key) || !strstr(glora_errmsg(), "official"))
            fail_msg("%s: message '%s' lacks '%s' or 'official'", bad[i].set, glora_errmsg(), bad[i].key);
        glora_config_free(c);
    }
    /* Without a preset the keys read as given. */
    const char *fit[] = {"search.fitness=accuracy+loss", "search.fill_budget=true", "search.max_params=4K",
                         "search.min_budget_fraction=0.75", NULL};
    c = search_cfg(fit);
    assert_int_equal(glora_search_opts_from_config(c, &o), 0);
    assert_int_equal(o.fitness, GLORA_FITNESS_ACC_LOSS);
    assert_int_equal(o.fill_budget, 1);
    assert_true(o.min_budget_fraction == 0.75);
    glora_config_free(c);
    const char *nobudget[] = {"search.fill_budget=true", NULL};
    c = search_cfg(nobudget);
    assert_int_equal(glora_search_opts_from_config(c, &o), GLORA_EINVAL);
    assert_non_null(strstr(glora_errmsg(), "search.fill_budget"));
    glora_config_free(c);
    /* Defaults: the options of glora_search_opts_default, but for the
     * fitness, whose key defaults to loglik (the suite's choice). */
    c = search_cfg(none);
    assert_int_equal(glora_search_opts_from_config(c, &o), 0);
    assert_int_equal(d.fitness, GLORA_FITNESS_ACCURACY);
    assert_int_equal(o.fitness, GLORA_FITNESS_LOGLIK);
    assert_int_equal(o.fill_budget, d.fill_budget);
    assert_true(o.min_budget_fraction == d.min_budget_fraction);
    char h0[65], h1[65], h2[65], h3[65];
    assert_int_equal(glora_config_hash(c, h0), 0);
    glora_config_free(c);
    /* The hash of the schema without the new keys: what glora computed
     * before they existed, with the official ranking.  A run of that time
     * is recognised when it says fitness accuracy (the legacy value); the
     * new default, loglik, is another run. */
    glora_config_key_t keys[256];
    size_t nk = 0;
    for (size_t i = 0; i < glora_search_schema.nkeys; i++)
        if (!(glora_search_schema.keys[i].flags & GLORA_CFG_IDENTITY_IF_SET)) keys[nk++] = glora_search_schema.keys[i];
    assert_true(nk < glora_search_schema.nkeys && nk < 256);
    glora_config_schema_t old = {keys, nk};
    assert_int_equal(glora_config_load(&c, NULL, &old), 0);
    assert_int_equal(glora_config_hash(c, h1), 0);
    glora_config_free(c);
    assert_string_not_equal(h0, h1);
    const char *explicit_legacy[] = {"search.fitness=accuracy", "search.preset=none", "search.fill_budget=false", NULL};
    c = search_cfg(explicit_legacy);
    assert_int_equal(glora_config_hash(c, h2), 0);
    glora_config_free(c);
    assert_string_equal(h1, h2);
    const char *explicit_default[] = {"search.fitness=loglik", NULL};
    c = search_cfg(explicit_default);
    assert_int_equal(glora_config_hash(c, h3), 0);
    glora_config_free(c);
    assert_string_equal(h0, h3);
    const char *changed[] = {"search.fitness=accuracy+loss", NULL};
    c = search_cfg(changed);
    assert_int_equal(glora_config_hash(c, h3), 0);
    glora_config_free(c);
    assert_string_not_equal(h0, h3);
    assert_string_not_equal(h1, h3);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fitness_loss),
        cmocka_unit_test(test_default_checkpoint_unchanged),
        cmocka_unit_test(test_fill_budget),
        cmocka_unit_test(test_preset_and_new_options),
        cmocka_unit_test(test_params_vit_b16),
        cmocka_unit_test(test_encoding),
        cmocka_unit_test(test_budget),
        cmocka_unit_test(test_space_rules),
        cmocka_unit_test(test_opts_check),
        cmocka_unit_test(test_search_legal_unique_ranked),
        cmocka_unit_test(test_last_generation_ranked),
        cmocka_unit_test(test_ties_deterministic),
        cmocka_unit_test(test_pareto),
        cmocka_unit_test(test_determinism_and_seed),
        cmocka_unit_test(test_kill_and_resume),
        cmocka_unit_test(test_resume_refuses_changes),
        cmocka_unit_test(test_budget_impossible),
        cmocka_unit_test(test_tight_budget),
        cmocka_unit_test(test_budget_tiers),
        cmocka_unit_test(test_small_space_exhausted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
