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
    {"model.heads", GLORA_CFG_INT, "0", "attention heads if the file's metadata lacks them (0: metadata)", 0, 1024, NULL}

/* "clean", "inverted", "rotated", "noisy", "blurred" (glora_dataset_shift). */
extern const char *const cli_shift_kinds[];

#define CLI_DATA_KEYS                                                                      \
    {"data.images", GLORA_CFG_STRING, NULL, "IDX images file (plain or .gz)", 0, 0, NULL},  \
    {"data.labels", GLORA_CFG_STRING, NULL, "IDX labels file (plain or .gz)", 0, 0, NULL},  \
    {"data.start", GLORA_CFG_INT, "0", "first example of the split, in file order", 0, 1e9, NULL}, \
    {"data.count", GLORA_CFG_INT, "0", "examples in the split (0: to the end)", 0, 1e9, NULL},      \
    {"data.mean", GLORA_CFG_NUMBER, "0.5", "normalisation mean (pixels in [0, 1])", 0, 0, NULL},    \
    {"data.std", GLORA_CFG_NUMBER, "0.5", "normalisation standard deviation", 1e-6, 1e6, NULL}, \
    {"data.resize", GLORA_CFG_BOOL, "no", "resize images (bilinear) and repeat grey channels to fit the model", 0, 0, NULL}, \
    {"data.shift", GLORA_CFG_ENUM, "clean", "domain shift applied to the images (docs/formats.md)", 0, 0, cli_shift_kinds}, \
    {"data.shift_seed", GLORA_CFG_INT, "0", "seed of the noisy shift", 0, 0, NULL}

/* The architecture of a named preset: "vit-b16" (224x224x3, patch 16, dim
 * 768, depth 12, 12 heads, MLP 3072, 1000 classes) or otherwise
 * "vit-tiny-28" (28x28x1, patch 7, dim 128, depth 6, 4 heads, MLP 512, 10
 * classes). The config schemas restrict the names. */
glora_vit_arch_t cli_arch_preset(const char *name);

/* Loads model.backbone (+ model.adapter) with model.heads. */
int cli_load_model(const glora_config_t *cfg, glora_vit_t **m);
/* Loads the data.* split and checks it fits the model (image size,
 * channels, labels below the number of classes). m may be NULL. */
int cli_load_data(const glora_config_t *cfg, const glora_vit_t *m, glora_dataset_t *ds);
/* The configuration to run: from the spec file (checked against m) if path is
 * non-empty; otherwise from the adapter's embedded glora.subnet metadata when
 * present; otherwise NULL (plain backbone / all none). *cfg is malloc'd. */
int cli_load_subnet(const glora_vit_t *m, const char *spec_path, const char *adapter_path,
                    glora_spec_t *spec, int *have);

#endif
