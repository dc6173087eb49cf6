/* The cross-validated search (search.cv_folds): the folds are a stratified,
 * balanced, deterministic partition; the pooled fitness of K tiny random
 * supernets equals a hand computation from each supernet's own logits on its
 * fold (glora_predict, another code path: argmax and -log softmax in double
 * here); any cut of the pooled items into ranges (as MPI ranks get them)
 * gives the same counts and the same loss bits; threads do not matter; and
 * the whole engine runs on the binding. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "glora/common.h"
#include "glora/model.h"
#include "glora/pipeline.h"
#include "glora/search.h"
#include "glora/spec.h"
#include "util/fileio.h"
#include "util/parallel.h"
#include "util/rng.h"

/* ---- the folds ---- */

static void check_folds(const int *y, size_t n, int k, const int *fold) {
    size_t size[16] = {0}, per[16][8] = {{0}};
    for (size_t i = 0; i < n; i++) {
        assert_true(fold[i] >= 0 && fold[i] < k); /* every example in exactly one fold */
        size[fold[i]]++;
        per[fold[i]][y[i]]++;
    }
    size_t total = 0;
    for (int f = 0; f < k; f++) {
        total += size[f];
        /* balanced: n / k rounded down or up */
        assert_true(size[f] == n / (size_t)k || size[f] == n / (size_t)k + 1);
    }
    assert_int_equal(total, n);
    /* stratified: each class's count / k rounded down or up in every fold */
    for (int c = 0; c < 8; c++) {
        size_t cnt = 0;
        for (size_t i = 0; i < n; i++) cnt += y[i] == c;
        for (int f = 0; f < k; f++) assert_true(per[f][c] == cnt / (size_t)k || per[f][c] == cnt / (size_t)k + 1);
    }
}

static void test_folds(void **state) {
    (void)state;
    enum { N = 103 };
    int y[N], a[N], b[N], c[N];
    glora_rng_t r;
    glora_rng_seed(&r, 9);
    for (int i = 0; i < N; i++) y[i] = i < 40 ? 0 : (int)glora_rng_below(&r, 5) + 1; /* uneven classes */
    for (int k = 2; k <= 7; k++) {
        assert_int_equal(glora_cv_folds(y, N, k, 1, a), GLORA_OK);
        check_folds(y, N, k, a);
    }
    assert_int_equal(glora_cv_folds(y, N, 4, 1, a), GLORA_OK);
    assert_int_equal(glora_cv_folds(y, N, 4, 1, b), GLORA_OK);
    assert_memory_equal(a, b, sizeof a); /* deterministic */
    assert_int_equal(glora_cv_folds(y, N, 4, 2, c), GLORA_OK);
    assert_true(memcmp(a, c, sizeof a) != 0); /* and drawn by the seed */
    /* every example alone in a fold */
    assert_int_equal(glora_cv_folds(y, N, N, 1, a), GLORA_OK);
    int seen[N] = {0};
    for (int i = 0; i < N; i++) seen[a[i]]++;
    for (int i = 0; i < N; i++) assert_int_equal(seen[i], 1);
    /* refused: fewer than 2 folds, more folds than examples, a negative label */
    assert_int_equal(glora_cv_folds(y, N, 1, 1, a), GLORA_EINVAL);
    assert_int_equal(glora_cv_folds(y, N, N + 1, 1, a), GLORA_EINVAL);
    assert_non_null(strstr(glora_errmsg(), "folds"));
    y[5] = -1;
    assert_int_equal(glora_cv_folds(y, N, 2, 1, a), GLORA_EINVAL);
}

/* ---- the pooled fitness ---- */

#define K 3
static const size_t fold_n[K] = {7, 9, 5};

typedef struct {
    glora_vit_t *m[K];
    float *x[K];
    int *y[K];
    glora_dataset_t ds[K];
} tiny_t;

static void tiny_init(tiny_t *t) {
    glora_vit_arch_t a = {.img_size = 8, .in_chans = 1, .patch = 4, .dim = 16, .depth = 2,
                          .heads = 2, .mlp_hidden = 32, .num_classes = 4};
    glora_rng_t r;
    glora_rng_seed(&r, 11);
    for (int f = 0; f < K; f++) {
        assert_int_equal(glora_vit_create(&t->m[f], &a, 2), GLORA_OK);
        for (size_t i = 0; i < t->m[f]->n_floats; i++) t->m[f]->mem[i] = 0.4f * (float)glora_rng_normal(&r);
        t->x[f] = malloc(sizeof(float) * fold_n[f] * 64);
        t->y[f] = malloc(sizeof(int) * fold_n[f]);
        for (size_t i = 0; i < fold_n[f] * 64; i++) t->x[f][i] = (float)glora_rng_normal(&r);
        for (size_t i = 0; i < fold_n[f]; i++) t->y[f][i] = (int)glora_rng_below(&r, 4);
        t->ds[f] = (glora_dataset_t){.n = fold_n[f], .c = 1, .h = 8, .w = 8, .x = t->x[f], .y = t->y[f],
                                     .num_classes = 4, .mean = 0, .std = 1};
    }
}

static void tiny_free(tiny_t *t) {
    for (int f = 0; f < K; f++) {
        glora_vit_free(t->m[f]);
        free(t->x[f]);
        free(t->y[f]);
    }
}

/* n random candidates of the official space. */
static glora_layer_cfg_t *candidates(const glora_vit_t *m, size_t n, const glora_layer_cfg_t **ptr) {
    glora_search_layer_t *L;
    assert_int_equal(glora_search_vit_layers(m, &L), GLORA_OK);
    const int nl = glora_vit_layers(m);
    glora_layer_cfg_t *g = malloc(n * (size_t)nl * sizeof *g);
    glora_rng_t r;
    glora_rng_seed(&r, 3);
    for (size_t c = 0; c < n; c++) {
        for (int l = 0; l < nl; l++)
            for (int k = 0; k < GLORA_NTENSORS; k++)
                g[c * nl + l].t[k] = L[l].space.opt[k][glora_rng_below(&r, (uint64_t)L[l].space.n[k])];
        ptr[c] = g + c * nl;
    }
    free(L);
    return g;
}

static void test_pooled_fitness(void **state) {
    (void)state;
    tiny_t t;
    tiny_init(&t);
    enum { NC = 5 };
    const glora_layer_cfg_t *cands[NC];
    glora_layer_cfg_t *g = candidates(t.m[0], NC, cands);
    const glora_vit_t *m[K] = {t.m[0], t.m[1], t.m[2]};
    const glora_dataset_t *folds[K] = {&t.ds[0], &t.ds[1], &t.ds[2]};
    glora_search_cv_t v = {.k = K, .m = m, .folds = folds, .batch = 4};
    const size_t ni = glora_search_cv_items(&v);
    assert_int_equal(ni, 7 + 9 + 5);

    /* By hand: each candidate on each fold with that fold's supernet. */
    double want_acc[NC], want_loss[NC][7 + 9 + 5];
    for (int c = 0; c < NC; c++) {
        size_t correct = 0, item = 0;
        for (int f = 0; f < K; f++) {
            float logits[9 * 4];
            assert_int_equal(glora_predict(t.m[f], cands[c], &t.ds[f], 3, logits), GLORA_OK);
            for (size_t i = 0; i < fold_n[f]; i++, item++) {
                const float *z = logits + i * 4;
                int best = 0;
                for (int j = 1; j < 4; j++)
                    if (z[j] > z[best]) best = j;
                correct += best == t.y[f][i];
                double mx = z[0], s = 0;
                for (int j = 1; j < 4; j++) mx = z[j] > mx ? z[j] : mx;
                for (int j = 0; j < 4; j++) s += exp((double)z[j] - mx);
                want_loss[c][item] = log(s) - ((double)z[t.y[f][i]] - mx);
            }
        }
        want_acc[c] = (double)correct / (double)ni;
    }

    double acc[NC];
    uint64_t correct[NC] = {0}, pieces[NC] = {0};
    double *loss = calloc(NC * ni, sizeof *loss), *cut = calloc(NC * ni, sizeof *cut);
    for (int threads = 1; threads <= 2; threads++) {
        glora_set_threads(threads);
        assert_int_equal(glora_search_cv_evaluate(&v, cands, NC, acc), GLORA_OK);
        memset(correct, 0, sizeof correct);
        assert_int_equal(glora_search_cv_score(&v, cands, NC, 0, ni, correct, loss), GLORA_OK);
        for (int c = 0; c < NC; c++) {
            assert_true(acc[c] == want_acc[c]);
            assert_true((double)correct[c] / (double)ni == want_acc[c]);
            for (size_t i = 0; i < ni; i++)
                if (fabs(loss[c * ni + i] - want_loss[c][i]) > 1e-4 * (1 + want_loss[c][i]))
                    fail_msg("candidate %d item %zu: loss %g, by hand %g", c, i, loss[c * ni + i],
                             want_loss[c][i]);
        }
    }
    /* Ranges cutting across folds (what MPI ranks get) add up to the same
     * counts and the same loss bits. */
    const size_t cuts[] = {0, 3, 7, 8, 15, 16, 21};
    for (size_t p = 0; p + 1 < sizeof cuts / sizeof *cuts; p++) {
        for (int c = 0; c < NC; c++) {
            assert_int_equal(glora_search_cv_score(&v, cands + c, 1, cuts[p], cuts[p + 1], pieces + c, cut + c * ni),
                             GLORA_OK);
        }
    }
    uint64_t counted[NC] = {0};
    for (int c = 0; c < NC; c++)
        for (size_t p = 0; p + 1 < sizeof cuts / sizeof *cuts; p++)
            assert_int_equal(glora_search_cv_count(&v, cands + c, 1, cuts[p], cuts[p + 1], counted + c), GLORA_OK);
    assert_memory_equal(pieces, correct, sizeof correct);
    assert_memory_equal(counted, correct, sizeof correct);
    assert_memory_equal(cut, loss, NC * ni * sizeof *loss);
    /* The candidates differ (else equality would prove little). */
    int differ = 0;
    for (int c = 1; c < NC; c++) differ |= correct[c] != correct[0];
    assert_true(differ);
    free(loss);
    free(cut);
    free(g);
    tiny_free(&t);
}

static double zero_clock(void) { return 0.0; }

static char *slurp(const char *dir, const char *name) {
    char path[512], *d = NULL;
    size_t n;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    assert_int_equal(glora_read_file(path, 1 << 26, &d, &n), GLORA_OK);
    return d;
}

/* The engine on the binding, each fitness, 1 and 2 threads: the same files,
 * and best.json's accuracy is the pooled accuracy of its subnet. */
static void test_engine(void **state) {
    (void)state;
    tiny_t t;
    tiny_init(&t);
    const glora_vit_t *m[K] = {t.m[0], t.m[1], t.m[2]};
    const glora_dataset_t *folds[K] = {&t.ds[0], &t.ds[1], &t.ds[2]};
    glora_search_layer_t *L;
    assert_int_equal(glora_search_vit_layers(t.m[0], &L), GLORA_OK);
    for (int fit = GLORA_FITNESS_ACCURACY; fit <= GLORA_FITNESS_ACC_LOSS; fit++) {
        char dir[2][40];
        for (int threads = 1; threads <= 2; threads++) {
            glora_set_threads(threads);
            glora_search_ws_t *ws[K] = {glora_search_ws_new(), glora_search_ws_new(), glora_search_ws_new()};
            glora_search_cv_t v = {.k = K, .m = m, .folds = folds, .batch = 4, .ws = ws};
            glora_search_problem_t p = {.n_layers = glora_vit_layers(t.m[0]), .layers = L,
                                        .evaluate = glora_search_cv_evaluate, .write_spec = glora_search_cv_write_spec,
                                        .count = glora_search_cv_count, .score = glora_search_cv_score,
                                        .n_items = glora_search_cv_items(&v), .ctx = &v};
            glora_search_opts_t o;
            glora_search_opts_default(&o);
            o.population = 8, o.parents = 3, o.mutations = 3, o.crossovers = 3, o.generations = 2, o.seed = 2;
            o.max_params = 1500, o.clock = zero_clock, o.fitness = (glora_search_fitness_t)fit;
            snprintf(dir[threads - 1], sizeof dir[0], "/tmp/glora-test-scv-XXXXXX");
            assert_non_null(mkdtemp(dir[threads - 1]));
            glora_search_t *s;
            assert_int_equal(glora_search_create(&s, &p, &o, "hash", ""), GLORA_OK);
            assert_int_equal(glora_search_run(s, dir[threads - 1], NULL), GLORA_OK);
            /* best.json holds the pooled accuracy of its subnet */
            long best = glora_search_best(s, 0);
            assert_true(best >= 0);
            double acc, again;
            const glora_layer_cfg_t *cfg = glora_search_candidate(s, (size_t)best, NULL, &acc, NULL);
            assert_int_equal(glora_search_cv_evaluate(&v, &cfg, 1, &again), GLORA_OK);
            assert_true(acc == again);
            glora_spec_t spec;
            char path[200];
            snprintf(path, sizeof path, "%s/best.json", dir[threads - 1]);
            assert_int_equal(glora_spec_read(&spec, path), GLORA_OK);
            assert_true(spec.val_accuracy == acc);
            glora_spec_free(&spec);
            glora_search_free(s);
            for (int f = 0; f < K; f++) glora_search_ws_free(ws[f]);
        }
        const char *files[] = {"checkpoint.json", "history.jsonl", "pareto.json", "best.json"};
        for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
            char *a = slurp(dir[0], files[i]), *b = slurp(dir[1], files[i]);
            if (strcmp(a, b) != 0) fail_msg("%s differs between 1 and 2 threads (fitness %d)", files[i], fit);
            free(a);
            free(b);
        }
        char cmd[200];
        snprintf(cmd, sizeof cmd, "rm -rf %s %s", dir[0], dir[1]);
        assert_int_equal(system(cmd), 0);
    }
    free(L);
    tiny_free(&t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_folds),
        cmocka_unit_test(test_pooled_fitness),
        cmocka_unit_test(test_engine),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
