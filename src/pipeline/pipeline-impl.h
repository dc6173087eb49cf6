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

int pipeline_stage_train(glora_recipe_kind_t kind, const glora_config_t *cfg, int resume,
                         const glora_stage_hooks_t *h, glora_train_result_t *res, const pipeline_saved_t *saved);
int pipeline_stage_search(const glora_config_t *cfg, int resume, const glora_stage_hooks_t *h,
                          const pipeline_saved_t *saved);

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
