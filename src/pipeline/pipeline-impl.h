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

#endif
