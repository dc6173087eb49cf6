/* The model setup glora eval and glora predict share. */
#ifndef GLORA_CLI_INFER_H
#define GLORA_CLI_INFER_H

#include "glora/config.h"
#include "glora/model.h"
#include "glora/spec.h"

/* Loads model.backbone (+ model.adapter), the subnet spec to run (the
 * `subnet` key, else the adapter's own; *have_spec says whether there is
 * one) and sets the precision from eval.precision. A model with GLoRA
 * tensors but no spec is an error (with a hint). On failure *m is NULL and
 * spec empty. */
int cli_infer_load(const glora_config_t *cfg, glora_vit_t **m, glora_spec_t *spec, int *have_spec);

#endif
