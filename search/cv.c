/* Binding of the search engine to K supernets scored by cross-validation
 * (search.cv_folds): the problem's items are the images of fold 0, then of
 * fold 1, ..., each scored with the supernet that never trained on its fold,
 * so the engine's counts and per-item losses pool over the folds without
 * knowing about them (see glora/search.h, glora_search_cv_t). */
#include <stdlib.h>
#include <string.h>

#include "glora/common.h"
#include "util/parallel.h"
#include "glora/search.h"
#include "glora/spec.h"
#include "search/search-impl.h"

size_t glora_search_cv_items(const glora_search_cv_t *v) {
    size_t n = 0;
    for (int f = 0; f < v->k; f++) n += v->folds[f]->n;
    return n;
}

/* Items [lo, hi) of the pooled folds, for n candidates: each fold's share
 * through glora_search_fitness_score on its own supernet (and workspace).
 * Losses go to loss[i * n_items + k] as the engine lays them out; a fold's
 * own call lays them out by the fold's size, hence the copy through tmp. */
static int score_pooled(glora_search_cv_t *v, const glora_layer_cfg_t *const *cands, size_t n, size_t lo,
                        size_t hi, uint64_t *correct, double *loss) {
    const size_t ni = glora_search_cv_items(v);
    double *tmp = NULL;
    int rc = GLORA_OK;
    size_t off = 0;
    for (int f = 0; f < v->k && rc == GLORA_OK; off += v->folds[f]->n, f++) {
        const glora_dataset_t *ds = v->folds[f];
        size_t a = lo > off ? lo - off : 0, b = hi - off < ds->n ? hi - off : ds->n;
        if (hi <= off || a >= ds->n || a >= b) continue;
        if (loss && !tmp) {
            size_t most = 0, bytes;
            for (int g = 0; g < v->k; g++) most = v->folds[g]->n > most ? v->folds[g]->n : most;
            if (glora_size_mul(n, most * sizeof *tmp, &bytes) || !(tmp = malloc(bytes ? bytes : 1)))
                return glora_error(GLORA_ENOMEM, "evaluation 'candidates': out of memory for the folds' losses");
        }
        rc = v->ws ? glora_search_fitness_score_ws(v->ws[f], v->m[f], cands, n, ds, a, b, v->batch, correct,
                                                   loss ? tmp : NULL)
                   : glora_search_fitness_score(v->m[f], cands, n, ds, a, b, v->batch, correct, loss ? tmp : NULL);
        for (size_t c = 0; loss && rc == GLORA_OK && c < n; c++)
            memcpy(loss + c * ni + off + a, tmp + c * ds->n + a, (b - a) * sizeof *tmp);
    }
    free(tmp);
    return rc;
}

/* Every item of n candidates, in chunks of two candidates a thread when
 * there is a counter to move (a candidate's result does not depend on its
 * chunk). */
static int score_all(glora_search_cv_t *v, const glora_layer_cfg_t *const *cands, size_t n, uint64_t *correct,
                     double *loss) {
    const size_t ni = glora_search_cv_items(v);
    if (!v->tick) return score_pooled(v, cands, n, 0, ni, correct, loss);
    size_t chunk = 2 * (size_t)glora_max_threads();
    v->tick(v->tick_ctx, 0, n);
    for (size_t i = 0; i < n; i += chunk) {
        size_t k = n - i < chunk ? n - i : chunk;
        int rc = score_pooled(v, cands + i, k, 0, ni, correct + i, loss ? loss + i * ni : NULL);
        if (rc) return rc;
        v->tick(v->tick_ctx, i + k, n);
    }
    return GLORA_OK;
}

int glora_search_cv_evaluate(void *ctx, const glora_layer_cfg_t *const *cands, size_t n, double *acc) {
    glora_search_cv_t *v = ctx;
    const size_t ni = glora_search_cv_items(v);
    if (n == 0) return GLORA_OK;
    if (ni == 0) return glora_error(GLORA_EINVAL, "evaluation 'candidates': the folds hold no images");
    uint64_t *correct = calloc(n, sizeof *correct);
    if (!correct) return glora_error(GLORA_ENOMEM, "evaluation 'candidates': out of memory");
    int rc = score_all(v, cands, n, correct, NULL);
    for (size_t c = 0; !rc && c < n; c++) acc[c] = (double)correct[c] / (double)ni;
    free(correct);
    return rc;
}

int glora_search_cv_count(void *ctx, const glora_layer_cfg_t *const *cands, size_t n, size_t lo, size_t hi,
                          uint64_t *correct) {
    return score_pooled(ctx, cands, n, lo, hi, correct, NULL);
}

int glora_search_cv_score(void *ctx, const glora_layer_cfg_t *const *cands, size_t n, size_t lo, size_t hi,
                          uint64_t *correct, double *loss) {
    glora_search_cv_t *v = ctx;
    /* With a counter (one process, every item): chunks as in evaluate. */
    if (v->tick && lo == 0 && hi == glora_search_cv_items(v)) return score_all(v, cands, n, correct, loss);
    return score_pooled(v, cands, n, lo, hi, correct, loss);
}

int glora_search_cv_write_spec(void *ctx, const char *path, const glora_layer_cfg_t *cfg, size_t params,
                               double acc, int generation) {
    const glora_search_cv_t *v = ctx;
    return search_spec_write(v->spec_model ? v->spec_model : v->m[0], v->supernet_sha256, path, cfg, params, acc,
                             generation);
}
