/* Early stopping of a retrain (retrain.early_stop, docs/config.md): a
 * deterministic slice of the training split is held out, the subnet is
 * scored on it before training (the weights it starts from, epoch 0) and
 * after every epoch, and the output holds the best epoch's weights.
 *
 * State for resuming: OUTPUT.early.safetensors holds the best weights so far
 * (the trainable tensors) and, in its metadata, the epochs evaluated, the
 * best epoch and its scores; it is rewritten (atomically) after every
 * epoch's evaluation. The training checkpoint is written before that
 * evaluation, so a run killed in between resumes one epoch ahead of the
 * state: that epoch's weights are read from the checkpoint and scored
 * first. Either way the resumed run ends with the same bits as one never
 * interrupted. */
#include "glora/common.h"
#include "glora/safetensors.h"
#include "glora/search.h"
#include "pipeline/pipeline-impl.h"
#include "util/comm.h"
#include "util/fileio.h"
#include "util/rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The state file's metadata keys (docs/formats.md, "Training checkpoints"). */
#define META_EVALUATED "glora.early.evaluated"
#define META_BEST_EPOCH "glora.early.best_epoch"
#define META_ACCURACY "glora.early.accuracy"
#define META_LOSS "glora.early.loss"

#define HOLD_LABEL 0x686f6c64 /* "hold": the stream the held-out slice is drawn from */

struct pipeline_early {
    glora_vit_t *m;
    const unsigned char *mask;
    const glora_layer_cfg_t *cfg;
    glora_dataset_t hold;
    float *best;           /* the trainable tensors of the best epoch, in parameter order */
    size_t n_best;
    int evaluated;         /* epochs evaluated (0: the starting weights) */
    int best_epoch;
    double best_acc, best_loss;
    char *path;
};

static int ascending(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* train becomes the training split without the held-out slice (both in the
 * split's order): `hold` examples drawn by a stream forked off seed. */
static int split_holdout(glora_dataset_t *train, size_t hold, uint64_t seed, size_t batch,
                         glora_dataset_t *out) {
    if (hold == 0 || hold >= train->n || train->n - hold < batch)
        return glora_error(GLORA_EINVAL, "config key 'retrain.holdout': %zu held-out images leave %zu of the "
                           "%zu training images, fewer than one batch (%zu)", hold,
                           hold < train->n ? train->n - hold : 0, train->n, batch);
    uint32_t *idx = malloc(train->n * sizeof *idx);
    if (!idx) return glora_error(GLORA_ENOMEM, "retrain: out of memory");
    glora_rng_t r, h;
    glora_rng_seed(&r, seed);
    glora_rng_fork(&r, HOLD_LABEL, &h);
    for (size_t i = 0; i < train->n; i++) idx[i] = (uint32_t)i;
    glora_rng_shuffle(&h, idx, train->n);
    qsort(idx, hold, sizeof *idx, ascending);
    qsort(idx + hold, train->n - hold, sizeof *idx, ascending);
    glora_dataset_t rest;
    int rc = glora_dataset_take(train, idx, hold, out);
    if (!rc) rc = glora_dataset_take(train, idx + hold, train->n - hold, &rest);
    if (!rc) { /* the class names (an image folder's) stay with the training split */
        rest.class_names = train->class_names;
        train->class_names = NULL;
        glora_dataset_free(train);
        *train = rest;
    }
    free(idx);
    return rc;
}

/* Accuracy and mean loss (in double, image order) of the subnet on the slice. */
static int score(const pipeline_early_t *e, double *acc, double *loss) {
    const size_t n = e->hold.n;
    double *l = malloc(n * sizeof *l);
    uint64_t correct = 0;
    if (!l) return glora_error(GLORA_ENOMEM, "retrain: out of memory");
    const glora_layer_cfg_t *c = e->cfg;
    int rc = glora_search_fitness_score(e->m, &c, 1, &e->hold, 0, n, 64, &correct, l);
    if (!rc) {
        double sum = 0;
        for (size_t i = 0; i < n; i++) sum += l[i];
        *acc = (double)correct / (double)n;
        *loss = sum / (double)n;
    }
    free(l);
    return rc;
}

/* Copies the trainable tensors between the model and the best buffer. */
static void copy_best(pipeline_early_t *e, int to_model) {
    size_t off = 0;
    for (int i = 0; i < e->m->n_params; i++) {
        if (!e->mask[i]) continue;
        const glora_param_t *p = &e->m->params[i];
        float *w = e->m->mem + p->offset;
        if (to_model) memcpy(w, e->best + off, p->numel * sizeof *w);
        else memcpy(e->best + off, w, p->numel * sizeof *w);
        off += p->numel;
    }
}

/* The state file (rank 0 under MPI). */
static int write_state(const pipeline_early_t *e) {
    if (!glora_comm_writer()) return GLORA_OK;
    int n = 0;
    for (int i = 0; i < e->m->n_params; i++) n += e->mask[i] != 0;
    glora_st_entry_t *ent = calloc((size_t)n + 1, sizeof *ent);
    if (!ent) return glora_error(GLORA_ENOMEM, "retrain: out of memory");
    size_t off = 0;
    int k = 0;
    for (int i = 0; i < e->m->n_params; i++) {
        if (!e->mask[i]) continue;
        const glora_param_t *p = &e->m->params[i];
        ent[k++] = (glora_st_entry_t){p->name, p->ndim, p->shape, e->best + off};
        off += p->numel;
    }
    char ev[24], be[24], ac[40], lo[40];
    snprintf(ev, sizeof ev, "%d", e->evaluated);
    snprintf(be, sizeof be, "%d", e->best_epoch);
    snprintf(ac, sizeof ac, "%.17g", e->best_acc);
    snprintf(lo, sizeof lo, "%.17g", e->best_loss);
    const char *meta[] = {GLORA_META_KIND, "early-stop", META_EVALUATED, ev, META_BEST_EPOCH, be,
                          META_ACCURACY, ac, META_LOSS, lo};
    int rc = glora_st_write(e->path, ent, (size_t)k, meta, 5);
    free(ent);
    return rc;
}

/* Scores the model's current weights as epoch `epoch`, keeps them when
 * better (accuracy, then loss; an earlier epoch wins ties), saves the state. */
static int evaluate(pipeline_early_t *e, int epoch, double *acc, double *loss) {
    int rc = score(e, acc, loss);
    if (rc) return rc;
    if (epoch == 0 || *acc > e->best_acc || (*acc == e->best_acc && *loss < e->best_loss)) {
        copy_best(e, 0);
        e->best_epoch = epoch;
        e->best_acc = *acc;
        e->best_loss = *loss;
    }
    e->evaluated = epoch;
    return write_state(e);
}

static int meta_int(const glora_st_t *st, const char *key, long *v) {
    const char *s = glora_st_meta(st, key);
    char *end;
    if (!s || !*s) return -1;
    *v = strtol(s, &end, 10);
    return *end || *v < 0 || *v > 1000000000 ? -1 : 0;
}

/* Loads the trainable tensors of a safetensors file into dst (the model's
 * memory, or the best buffer when best). */
static int load_tensors(pipeline_early_t *e, const glora_st_t *st, int into_best) {
    size_t off = 0;
    for (int i = 0; i < e->m->n_params; i++) {
        if (!e->mask[i]) continue;
        const glora_param_t *p = &e->m->params[i];
        int rc = glora_st_load_f32(st, p->name, p->ndim, p->shape,
                                   into_best ? e->best + off : e->m->mem + p->offset);
        if (rc) return rc;
        off += p->numel;
    }
    return GLORA_OK;
}

/* Resuming after the checkpoint at ckpt: the state, then the checkpoint's
 * epoch when the state is one behind it. */
static int resume(pipeline_early_t *e, const char *ckpt) {
    glora_st_t *st = NULL, *ck = NULL;
    long ev, be, ce;
    int rc = glora_st_open(&st, e->path);
    if (rc) {
        glora_error_hint("the early-stop state of this retrain is missing: start afresh (remove the "
                         "checkpoint '%s')", ckpt);
        return rc;
    }
    const char *ac = glora_st_meta(st, META_ACCURACY), *lo = glora_st_meta(st, META_LOSS);
    if (meta_int(st, META_EVALUATED, &ev) || meta_int(st, META_BEST_EPOCH, &be) || be > ev ||
        !ac || !lo) {
        rc = glora_error(GLORA_EFORMAT, "early-stop state '%s': metadata glora.early.* missing or malformed",
                         e->path);
        goto done;
    }
    e->evaluated = (int)ev;
    e->best_epoch = (int)be;
    e->best_acc = strtod(ac, NULL);
    e->best_loss = strtod(lo, NULL);
    if ((rc = load_tensors(e, st, 1))) goto done;
    if ((rc = glora_st_open(&ck, ckpt))) goto done;
    if (meta_int(ck, GLORA_META_EPOCH, &ce) || (ce != ev && ce != ev + 1)) {
        rc = glora_error(GLORA_ESTATE, "early-stop state '%s': %ld epochs evaluated, the checkpoint '%s' is "
                         "at epoch %ld", e->path, ev, ckpt, ce);
        goto done;
    }
    if (ce == ev + 1) { /* killed between the checkpoint and the state */
        double a, l;
        if (!(rc = load_tensors(e, ck, 0))) rc = evaluate(e, (int)ce, &a, &l);
    }
done:
    glora_st_close(ck);
    glora_st_close(st);
    return rc;
}

int pipeline_early_open(pipeline_early_t **out, const glora_config_t *cfg, glora_vit_t *m,
                        const unsigned char *mask, const glora_layer_cfg_t *subnet, glora_dataset_t *train,
                        const char *output, const char *ckpt, int resuming) {
    *out = NULL;
    pipeline_early_t *e = calloc(1, sizeof *e);
    if (!e) return glora_error(GLORA_ENOMEM, "retrain: out of memory");
    e->m = m;
    e->mask = mask;
    e->cfg = subnet;
    int rc = split_holdout(train, (size_t)glora_config_int(cfg, "retrain.holdout"),
                           (uint64_t)glora_config_int(cfg, "seed"), (size_t)glora_config_int(cfg, "train.batch"),
                           &e->hold);
    for (int i = 0; !rc && i < m->n_params; i++) e->n_best += mask[i] ? m->params[i].numel : 0;
    size_t plen = strlen(output) + 32;
    if (!rc && (!(e->best = malloc((e->n_best ? e->n_best : 1) * sizeof *e->best)) || !(e->path = malloc(plen))))
        rc = glora_error(GLORA_ENOMEM, "retrain: out of memory");
    if (!rc) {
        snprintf(e->path, plen, "%s.early.safetensors", output);
        if (glora_comm_writer()) rc = glora_clean_temps_of(e->path, NULL);
    }
    /* The weights training starts from, with what the subnet does not read
     * zeroed as the recipe does, are epoch 0: retraining that only loses on
     * the slice keeps them. */
    glora_train_zero_unused(m, subnet);
    double a, l;
    if (!rc) rc = resuming ? resume(e, ckpt) : evaluate(e, 0, &a, &l);
    if (rc) {
        pipeline_early_free(e);
        return rc;
    }
    *out = e;
    return GLORA_OK;
}

int pipeline_early_epoch(pipeline_early_t *e, int epochs_done, double *acc, double *loss) {
    return evaluate(e, epochs_done, acc, loss);
}

void pipeline_early_finish(pipeline_early_t *e, int *best_epoch, double *acc, double *loss) {
    copy_best(e, 1);
    *best_epoch = e->best_epoch;
    *acc = e->best_acc;
    *loss = e->best_loss;
}

size_t pipeline_early_holdout(const pipeline_early_t *e) { return e->hold.n; }

void pipeline_early_free(pipeline_early_t *e) {
    if (!e) return;
    glora_dataset_free(&e->hold);
    free(e->best);
    free(e->path);
    free(e);
}
