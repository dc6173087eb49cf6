/* The search stage: the evolutionary search on a supernet with its
 * checkpoint directory (see glora/pipeline.h). */
#include "glora/pipeline.h"
#include "glora/common.h"
#include "pipeline/pipeline-impl.h"
#include "util/fileio.h"
#include "util/comm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* What the fitness is computed on: the images as the model sees them
 * (after normalisation) and the labels, so a data file replaced under the
 * same name is caught on resume. */
int pipeline_data_sha256(const glora_dataset_t *const *ds, int nds, char hex[65]) {
    glora_sha256_t h;
    uint8_t d[32];
    glora_sha256_init(&h);
    for (int k = 0; k < nds; k++) {
        const size_t per = glora_dataset_example_size(ds[k]);
        float *x = malloc((per ? per : 1) * sizeof *x);
        if (!x) return glora_error(GLORA_ENOMEM, "search: out of memory");
        uint64_t n = ds[k]->n;
        glora_sha256_update(&h, &n, sizeof n);
        for (size_t i = 0; i < ds[k]->n; i++) {
            glora_dataset_slice(ds[k], i, 1, x);
            glora_sha256_update(&h, x, per * sizeof *x);
        }
        glora_sha256_update(&h, ds[k]->y, ds[k]->n * sizeof *ds[k]->y);
        free(x);
    }
    glora_sha256_final(&h, d);
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", d[i]);
    return GLORA_OK;
}

/* The supernets' identity in a cross-validated search's checkpoint: the
 * specs' supernet and every fold's, in order. */
static void cv_supernets_sha256(const glora_search_setup_t *st, char hex[65]) {
    glora_sha256_t h;
    uint8_t d[32];
    glora_sha256_init(&h);
    glora_sha256_update(&h, "cv", 2);
    if (st->supernet_sha256) glora_sha256_update(&h, st->supernet_sha256, strlen(st->supernet_sha256));
    for (int f = 0; f < st->cv_folds; f++) {
        glora_sha256_update(&h, "/", 1);
        glora_sha256_update(&h, st->fold_sha256[f], strlen(st->fold_sha256[f]));
    }
    glora_sha256_final(&h, d);
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", d[i]);
}

/* The directory: a fresh search refuses to overwrite another one; a resume
 * without a checkpoint (killed before generation 0 ended) starts afresh. */
static int prepare_dir(const glora_search_setup_t *st, char *path, size_t size, int *have_ckpt,
                       glora_dir_lock_t **lock) {
    snprintf(path, size, "%s/checkpoint.json", st->dir);
    *have_ckpt = access(path, F_OK) == 0;
    if (*have_ckpt && !st->resume) {
        int rc = glora_error(GLORA_ESTATE, "search '%s': the output directory already holds a search", st->dir);
        glora_error_hint("pass --resume to continue it, or set output.dir to another directory");
        return rc;
    }
    int rc = glora_mkdir_p(st->dir);
    /* One search per directory; then the temporaries a killed one left.
     * Under MPI rank 0 does both (not another rank's in-flight files). */
    if (!rc) rc = glora_dir_lock(lock, st->dir);
    if (!rc && glora_comm_writer()) rc = glora_clean_temps(st->dir, 0, NULL);
    if (rc) return rc;
    snprintf(path, size, "%s/config.yaml", st->dir);
    if (!*have_ckpt && st->config_yaml) rc = glora_write_atomic(path, st->config_yaml, strlen(st->config_yaml));
    snprintf(path, size, "%s/checkpoint.json", st->dir);
    return rc;
}

static void fill_result(const glora_search_t *s, const glora_search_opts_t *o, glora_search_result_t *res) {
    res->best = glora_search_best(s, 0);
    if (res->best >= 0)
        glora_search_candidate(s, (size_t)res->best, &res->best_params, &res->best_acc, &res->best_generation);
    for (int i = 0; i < o->n_budgets; i++) {
        res->budget_best[i] = glora_search_best(s, o->budgets[i]);
        if (res->budget_best[i] >= 0)
            glora_search_candidate(s, (size_t)res->budget_best[i], &res->budget_params[i],
                                   &res->budget_acc[i], NULL);
    }
}

int glora_search_supernet(const glora_search_setup_t *st, glora_search_result_t *res) {
    glora_search_layer_t *own = NULL;
    glora_search_t *s = NULL;
    glora_search_ws_t *ws = NULL, *fold_ws[GLORA_SEARCH_MAX_FOLDS] = {0};
    glora_dir_lock_t *lock = NULL;
    char data_sha[65], cv_sha[65], *path = NULL;
    int have_ckpt = 0, rc;
    const int cv = st->cv_folds >= 2;
    memset(res, 0, sizeof *res);
    res->resumed_after = -1;
    if (cv && st->cv_folds > GLORA_SEARCH_MAX_FOLDS)
        return glora_error(GLORA_EINVAL, "search: %d folds, at most %d", st->cv_folds, GLORA_SEARCH_MAX_FOLDS);
    for (int f = 0; cv && f < st->cv_folds; f++)
        if (st->folds[f]->n == 0) return glora_error(GLORA_EINVAL, "search: fold %d of the cross-validation is empty", f + 1);
    if (!cv && st->val->n == 0) return glora_error(GLORA_EINVAL, "search: the validation split is empty");
    size_t plen = strlen(st->dir) + 64;
    if (!(path = malloc(plen))) return glora_error(GLORA_ENOMEM, "search: out of memory");
    rc = cv ? pipeline_data_sha256(st->folds, st->cv_folds, data_sha) : pipeline_data_sha256(&st->val, 1, data_sha);
    if (!rc) rc = prepare_dir(st, path, plen, &have_ckpt, &lock);
    /* Under MPI rank 0 prepares the directory; every rank learns the outcome. */
    if ((rc = glora_comm_check(rc))) goto done;
    if (!st->layers && (rc = glora_search_vit_layers(st->supernet, &own))) goto done;
    /* One set of buffers for every generation's candidates. */
    if (!(ws = glora_search_ws_new())) {
        rc = glora_error(GLORA_ENOMEM, "search: out of memory");
        goto done;
    }
    for (int f = 0; cv && f < st->cv_folds; f++)
        if (!(fold_ws[f] = glora_search_ws_new())) {
            rc = glora_error(GLORA_ENOMEM, "search: out of memory");
            goto done;
        }
    glora_search_vit_t v = {.m = st->supernet, .data = st->val, .batch = st->batch ? st->batch : 32,
                            .tick = st->tick, .tick_ctx = st->tick_ctx, .ws = ws};
    snprintf(v.supernet_sha256, sizeof v.supernet_sha256, "%s", st->supernet_sha256 ? st->supernet_sha256 : "");
    glora_search_problem_t p = {.n_layers = glora_vit_layers(st->supernet), .layers = st->layers ? st->layers : own,
                                .evaluate = glora_search_vit_evaluate,
                                .write_spec = glora_search_vit_write_spec, .ctx = &v, .data_sha256 = data_sha,
                                .count = glora_search_vit_count, .n_items = cv ? 0 : st->val->n,
                                .score = glora_search_vit_score};
    /* Cross-validation: the same engine on the pooled folds. */
    glora_search_cv_t cvv = {.k = st->cv_folds, .m = st->fold_supernets, .folds = st->folds, .batch = v.batch,
                             .spec_model = st->supernet, .tick = st->tick, .tick_ctx = st->tick_ctx, .ws = fold_ws};
    memcpy(cvv.supernet_sha256, v.supernet_sha256, sizeof cvv.supernet_sha256);
    if (cv) {
        p.evaluate = glora_search_cv_evaluate, p.write_spec = glora_search_cv_write_spec;
        p.count = glora_search_cv_count, p.score = glora_search_cv_score, p.ctx = &cvv;
        p.n_items = glora_search_cv_items(&cvv);
        cv_supernets_sha256(st, cv_sha);
    }
    if ((rc = glora_search_create(&s, &p, &st->opts, st->identity, cv ? cv_sha : st->supernet_sha256))) goto done;
    if (have_ckpt) {
        if ((rc = glora_comm_check(glora_search_resume(s, path)))) goto done;
        res->resumed_after = glora_search_generation(s);
    }
    res->started_fresh_on_resume = st->resume && !have_ckpt;
    if (st->start) st->start(st->hooks ? st->hooks->ctx : NULL, res->resumed_after, glora_search_n_evaluated(s));
    if ((rc = glora_search_run(s, st->dir, st->hooks))) goto done;
    fill_result(s, &st->opts, res);
done:
    glora_search_free(s);
    glora_search_ws_free(ws);
    for (int f = 0; f < GLORA_SEARCH_MAX_FOLDS; f++) glora_search_ws_free(fold_ws[f]);
    glora_dir_unlock(lock);
    free(own);
    free(path);
    return rc;
}
