/* Config keys and loaders the commands share: the model files and a data
 * split. */
#ifndef GLORA_CLI_MODEL_H
#define GLORA_CLI_MODEL_H

#include "glora/config.h"
#include "glora/data.h"
#include "glora/model.h"
#include "glora/spec.h"

#define CLI_MODEL_KEYS                                                                     \
    {"model.backbone", GLORA_CFG_STRING, NULL, "backbone safetensors file (a timm ViT)", 0, 0, NULL}, \
    {"model.adapter", GLORA_CFG_STRING, NULL, "supernet or adapter file (GLoRA tensors, new head)", 0, 0, NULL}, \
    {"model.heads", GLORA_CFG_INT, "0", "attention heads if the file's metadata lacks them (0: metadata)", 0, 1024, NULL}, \
    {"model.arch", GLORA_CFG_STRING, NULL, "timm architecture of the backbone, for its head count (vit_base_patch16_224, ...)", 0, 0, NULL}

/* The evaluation split of eval and search: data.* (glora/data.h). */
#define CLI_DATA_KEYS GLORA_SPLIT_KEYS("data", "evaluation"), GLORA_SPLIT_NORM_KEYS("data."), \
    GLORA_SPLIT_FIT_KEYS("data.")

/* "fp32", "bf16": the <section>.precision key of the commands that run
 * the model's forward (glora_precision_t). */
extern const char *const cli_precisions[];
#define CLI_PRECISION_KEY(section)                                                         \
    {section ".precision", GLORA_CFG_ENUM, "fp32", "arithmetic of the products with frozen or merged weights: fp32, or bf16 (AVX512_BF16; docs/PERFORMANCE.md)", 0, 0, cli_precisions}

/* Sets m->precision from the config key; for bf16 on a CPU without
 * AVX512_BF16, says in one line on stderr that an exact emulation runs. */
void cli_set_precision(const glora_config_t *cfg, const char *key, glora_vit_t *m);

/* The architecture of a named preset: "vit-b16" (224x224x3, patch 16, dim
 * 768, depth 12, 12 heads, MLP 3072, 1000 classes) or otherwise
 * "vit-tiny-28" (28x28x1, patch 7, dim 128, depth 6, 4 heads, MLP 512, 10
 * classes). The config schemas restrict the names. */
glora_vit_arch_t cli_arch_preset(const char *name);

/* Loads model.backbone (+ model.adapter) with model.heads. */
int cli_load_model(const glora_config_t *cfg, glora_vit_t **m);
/* Loads the split under prefix (required; normalisation, resize and shift
 * under "data.") through glora_split_load, fitted to m (may be NULL). */
int cli_load_split(const glora_config_t *cfg, const char *prefix, const glora_vit_t *m,
                   glora_dataset_t *ds);
/* The configuration to run: from the spec file (checked against m) if path is
 * non-empty; otherwise from the adapter's embedded glora.subnet metadata when
 * present; otherwise NULL (plain backbone / all none). *cfg is malloc'd. */
int cli_load_subnet(const glora_vit_t *m, const char *spec_path, const char *adapter_path,
                    glora_spec_t *spec, int *have);

#endif
