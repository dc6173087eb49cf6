/* The search stage: the evolutionary search on a supernet with its
 * checkpoint directory (see glora/pipeline.h). */
#include "glora/pipeline.h"
#include "glora/common.h"
#include "util/fileio.h"
#include "util/comm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* What the fitness is computed on: the images as the model sees them
 * (after normalisation) and the labels, so a data file replaced under the
 * same name is caught on resume. */
static int data_identity(const glora_dataset_t *ds, char hex[65]) {
    const size_t per = glora_dataset_example_size(ds);
    float *x = malloc(per * sizeof *x);
    if (!x) return glora_error(GLORA_ENOMEM, "search: out of memory");
    glora_sha256_t h;
    uint8_t d[32];
    uint64_t n = ds->n;
    glora_sha256_init(&h);
    glora_sha256_update(&h, &n, sizeof n);
    for (size_t i = 0; i < ds->n; i++) {
        glora_dataset_slice(ds, i, 1, x);
        glora_sha256_update(&h, x, per * sizeof *x);
    }
    glora_sha256_update(&h, ds->y, ds->n * sizeof *ds->y);
    glora_sha256_final(&h, d);
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", d[i]);
    free(x);
    return GLORA_OK;
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
    glora_search_ws_t *ws = NULL;
    glora_dir_lock_t *lock = NULL;
    char data_sha[65], *path = NULL;
    int have_ckpt = 0, rc;
    memset(res, 0, sizeof *res);
    res->resumed_after = -1;
    if (st->val->n == 0) return glora_error(GLORA_EINVAL, "search: the validation split is empty");
    size_t plen = strlen(st->dir) + 64;
    if (!(path = malloc(plen))) return glora_error(GLORA_ENOMEM, "search: out of memory");
    rc = data_identity(st->val, data_sha);
    if (!rc) rc = prepare_dir(st, path, plen, &have_ckpt, &lock);
    /* Under MPI rank 0 prepares the directory; every rank learns the outcome. */
    if ((rc = glora_comm_check(rc))) goto done;
    if (!st->layers && (rc = glora_search_vit_layers(st->supernet, &own))) goto done;
    /* One set of buffers for every generation's candidates. */
    if (!(ws = glora_search_ws_new())) {
        rc = glora_error(GLORA_ENOMEM, "search: out of memory");
        goto done;
    }
    glora_search_vit_t v = {.m = st->supernet, .data = st->val, .batch = st->batch ? st->batch : 32,
                            .tick = st->tick, .tick_ctx = st->tick_ctx, .ws = ws};
    snprintf(v.supernet_sha256, sizeof v.supernet_sha256, "%s", st->supernet_sha256 ? st->supernet_sha256 : "");
    glora_search_problem_t p = {.n_layers = glora_vit_layers(st->supernet), .layers = st->layers ? st->layers : own,
                                .evaluate = glora_search_vit_evaluate,
                                .write_spec = glora_search_vit_write_spec, .ctx = &v, .data_sha256 = data_sha,
                                .count = glora_search_vit_count, .n_items = st->val->n,
                                .score = glora_search_vit_score};
    if ((rc = glora_search_create(&s, &p, &st->opts, st->identity, st->supernet_sha256))) goto done;
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
    glora_dir_unlock(lock);
    free(own);
    free(path);
    return rc;
}
