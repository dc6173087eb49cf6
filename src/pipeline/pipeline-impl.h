/* Internal to the pipeline stages: what glora_run_stages adds to the
 * glora_stage_* calls. */
#ifndef GLORA_PIPELINE_IMPL_H
#define GLORA_PIPELINE_IMPL_H

#include "glora/pipeline.h"

/* Called after each checkpoint of a stage (a training epoch, a search
 * generation): glora_run saves the seconds spent so far in run.json, so that
 * a killed invocation's time still counts. */
typedef struct {
    void (*fn)(void *ctx);
    void *ctx;
} pipeline_saved_t;

/* Training data given in memory instead of the config's data.train and
 * data.val (the folds of a cross-validated search, cv.c): the stage takes
 * the datasets over (and leaves *train, *val empty); identity (64 hex, the
 * data's sha256) joins the config's hash in the checkpoint's run identity,
 * so a checkpoint of other data is refused. */
typedef struct {
    glora_dataset_t *train, *val; /* val may be NULL */
    const char *identity;
} pipeline_data_t;

int pipeline_stage_train(glora_recipe_kind_t kind, const glora_config_t *cfg, int resume,
                         const glora_stage_hooks_t *h, glora_train_result_t *res, const pipeline_saved_t *saved,
                         pipeline_data_t *data);
/* The supernets and folds of a cross-validated search (pipeline_cv_search). */
typedef struct {
    int k;
    const glora_vit_t *const *m;         /* m[f] trained without fold f */
    const glora_dataset_t *const *folds;
    const char *const *sha256;           /* of m[f]'s file */
} pipeline_cv_t;

/* The search stage; with cv (NULL: none) the candidates are scored on its
 * folds, model.adapter only naming the supernet of the specs when the file
 * exists, and the config's data split is not read. */
int pipeline_stage_search(const glora_config_t *cfg, int resume, const glora_stage_hooks_t *h,
                          const pipeline_saved_t *saved, const pipeline_cv_t *cv);

/* The sha256 (hex) of what n datasets hold as the model sees it: for each,
 * its size, every example's normalised pixels, its labels; in order. What a
 * search's checkpoint calls its data identity. */
int pipeline_data_sha256(const glora_dataset_t *const *ds, int n, char hex[65]);

/* The search stage with search.cv_folds >= 2 (cv.c): the folds of the
 * labelled data (the supernet section's data.train and the search's data
 * split, pooled) in cv_dir/folds.json, one supernet per fold trained by the
 * supernet section supernet_cfg (model.backbone set) on the other folds
 * into cv_dir/supernet-fold<f>.safetensors (each resumable, a finished one
 * reloaded), then the search of search_cfg (model.adapter: the supernet its
 * specs name, used only when the file exists) scoring every candidate on
 * each fold with the supernet that never saw it. *stopped when a fold's
 * training stopped at its run.stop_after. */
int pipeline_cv_search(const glora_config_t *search_cfg, glora_config_t *supernet_cfg, const char *cv_dir,
                       const glora_stage_hooks_t *h, const pipeline_saved_t *saved, int *stopped);

/* The output file of a finished training, as the recipe says (train.c). */
int pipeline_recipe_save(const glora_vit_t *m, const glora_recipe_t *r, const char *path);

/* Early stopping of a retrain (early_stop.c): holds out retrain.holdout
 * images of *train (which keeps the rest), scores the subnet's starting
 * weights on them (or, resuming, reads the state beside the output), then
 * after every epoch (pipeline_early_epoch, with the epochs done); finish
 * puts the best epoch's weights into the model. */
typedef struct pipeline_early pipeline_early_t;
int pipeline_early_open(pipeline_early_t **out, const glora_config_t *cfg, glora_vit_t *m,
                        const unsigned char *mask, const glora_layer_cfg_t *subnet, glora_dataset_t *train,
                        const char *output, const char *ckpt, int resuming);
int pipeline_early_epoch(pipeline_early_t *e, int epochs_done, double *acc, double *loss);
void pipeline_early_finish(pipeline_early_t *e, int *best_epoch, double *acc, double *loss);
size_t pipeline_early_holdout(const pipeline_early_t *e);
void pipeline_early_free(pipeline_early_t *e); /* NULL-safe */

#endif
