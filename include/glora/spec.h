/*
 * glora/spec.h - subnet specs: a chosen configuration as a JSON file.
 *
 * Format "glora-subnet/1" (docs/formats.md):
 *   {
 *     "format": "glora-subnet/1",
 *     "model": {"img_size": 28, "in_chans": 1, "patch": 7, "dim": 128,
 *               "depth": 6, "heads": 4, "mlp_hidden": 512, "num_classes": 10,
 *               "rank": 4},
 *     "supernet_sha256": "<64 hex>",           (may be "" when unknown)
 *     "params": 12345,                          (official count; checked)
 *     "layers": {
 *       "blocks.0.attn.qkv": {"A": "lora_4", "B": "vector", "C": "none",
 *                              "D": "scalar", "E": "vector"},
 *       ... every adapted layer, 4 * depth of them ...
 *     },
 *     "val_accuracy": 0.875, "generation": 12   (optional, from the search)
 *   }
 * On input the official spellings "LoRA_4" and "constant" are accepted.
 */
#ifndef GLORA_SPEC_H
#define GLORA_SPEC_H

#include "glora/layer.h"
#include "glora/model.h"

#ifdef __cplusplus
extern "C" {
#endif

#define GLORA_SPEC_FORMAT "glora-subnet/1"

typedef struct {
    glora_vit_arch_t arch;
    int rank;
    int n_layers;            /* 4 * depth */
    glora_layer_cfg_t *cfg;  /* n_layers configurations */
    size_t params;
    char supernet_sha256[65];
    int has_val;             /* val_accuracy / generation present */
    double val_accuracy;
    int generation;
    /* The head's class names as a JSON array of num_classes strings (key
     * class_names, optional; from the model's glora.class_names), or NULL.
     * malloc'd, freed by glora_spec_free. */
    char *class_names;
} glora_spec_t;

/* Reads and validates a spec file; errors name the file and the key. */
int glora_spec_read(glora_spec_t *s, const char *path);
/* The same from a JSON text; path is only used in messages. */
int glora_spec_parse(glora_spec_t *s, const char *json, const char *path);
/* JSON text of a spec (malloc'd, caller frees). */
int glora_spec_to_json(const glora_spec_t *s, char **json);
/* Writes a spec atomically. */
int glora_spec_write(const glora_spec_t *s, const char *path);
/* Fills a spec from a model and a configuration (cfg: 4 * depth entries). */
int glora_spec_from_model(glora_spec_t *s, const glora_vit_t *m, const glora_layer_cfg_t *cfg,
                          const char *supernet_sha256);
/* Checks a spec fits a model (same architecture but the head, rank <= the
 * model's); path names the spec in messages. */
int glora_spec_check(const glora_spec_t *s, const glora_vit_t *m, const char *path);
void glora_spec_free(glora_spec_t *s); /* NULL-safe, leaves s zeroed */

#ifdef __cplusplus
}
#endif
#endif
