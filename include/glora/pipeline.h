/*
 * glora/pipeline.h - the stages of the GLoRA pipeline as library calls.
 *
 * Each stage is one function with a contract: what it reads, what it writes
 * and where, who owns what, and how it resumes. `glora run` and the
 * `glora <stage>` commands are config parsing around these calls;
 * examples/pipeline.c drives them directly.
 */
#ifndef GLORA_PIPELINE_H
#define GLORA_PIPELINE_H

#include <stddef.h>

#include "glora/data.h"
#include "glora/layer.h"
#include "glora/model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- evaluate ------------------------------------------------------------ */

/* Top-1 correct predictions of m with the linears lin (set by the caller for
 * the configuration to evaluate) over the split ds, in batches of the
 * workspace's max_batch; pixels are read through glora_dataset_slice. */
int glora_eval_correct(const glora_vit_t *m, const glora_vit_linears_t *lin, glora_vit_acts_t *acts,
                       const glora_dataset_t *ds, size_t *correct);

#ifdef __cplusplus
}
#endif
#endif
