/* The model and data loaders of glora/pipeline.h under the names eval and
 * predict use. */
#ifndef GLORA_CLI_MODEL_H
#define GLORA_CLI_MODEL_H

#include "glora/pipeline.h"

#define CLI_MODEL_KEYS GLORA_MODEL_KEYS
#define CLI_DATA_KEYS GLORA_DATA_KEYS
#define CLI_PRECISION_KEY(section) GLORA_PRECISION_KEY(section)
#define cli_precisions glora_precisions
#define cli_load_model glora_model_from_config
#define cli_load_split glora_split_load_config
#define cli_load_subnet glora_subnet_load

/* glora_precision_from_config, its note on stderr. */
void cli_set_precision(const glora_config_t *cfg, const char *key, glora_vit_t *m);

#endif
