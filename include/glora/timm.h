/*
 * glora/timm.h - what glora knows about timm's classic ViTs: the
 * architecture table (for the head count, which tensor shapes do not give)
 * and the hub's config.json (preprocessing defaults).
 *
 * config.json, as the Hugging Face hub stores it beside timm's
 * model.safetensors (keys glora reads; every other key is ignored):
 *
 *   {"architecture": "vit_base_patch16_224",
 *    "num_classes": 21843,                       (0: no head)
 *    "global_pool": "token",                     (optional; must be "token")
 *    "model_args": {"num_heads": 12, ...},       (optional)
 *    "pretrained_cfg": {
 *        "input_size": [3, 224, 224],
 *        "interpolation": "bicubic",
 *        "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5],
 *        "crop_pct": 0.9, ...}}
 */
#ifndef GLORA_TIMM_H
#define GLORA_TIMM_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One classic timm ViT / DeiT architecture. */
typedef struct {
    const char *name; /* "vit_base_patch16_224" */
    int patch, img_size, dim, depth, heads;
} glora_timm_arch_t;

/* Looks up a timm architecture by name. Accepts the hub forms too:
 * "timm/vit_base_patch16_224.augreg_in21k" (the prefix and the pretrained
 * tag after the dot are ignored) and timm 0.6's "vit_base_patch16_224_in21k".
 * NULL when the name is not in the table (no message is set). */
const glora_timm_arch_t *glora_timm_arch_find(const char *name);

/* The table's names, comma-separated, for messages ("vit_tiny_patch16_224,
 * ..."). A static string. */
const char *glora_timm_arch_names(void);

/* The values of a config.json. Fields absent from the file keep the value
 * given here. */
typedef struct {
    char architecture[96];  /* "" absent */
    int num_classes;        /* -1 absent */
    int num_heads;          /* model_args.num_heads; 0 absent */
    int input_size[3];      /* channels, height, width; 0 absent */
    char interpolation[16]; /* "bicubic", "bilinear", "nearest"...; "" absent */
    int n_mean, n_std;      /* 0 absent, else 1 or 3 */
    double mean[3], std[3];
    double crop_pct;        /* 0 absent */
} glora_timm_config_t;

/* Reads a timm hub config.json (at most 1 MiB). The JSON must be one object;
 * duplicate keys anywhere are refused; the keys above, when present, must
 * have the types shown (numbers in range: classes 0..1,000,000, heads
 * 1..1024, input_size three integers 1..65536, mean/std 1 or 3 numbers with
 * std > 0, 0 < crop_pct <= 1, global_pool "token" or ""); errors name the
 * file and the key. */
int glora_timm_config_read(const char *path, glora_timm_config_t *cfg);

/* Reads "config.json" in the directory of model_path, if there is one:
 * *found is 1 and cfg filled, or 0 (no file; cfg untouched). A config.json
 * that exists but is invalid is an error. If path_out is not NULL it gets
 * the config's path (cap bytes). */
int glora_timm_config_beside(const char *model_path, glora_timm_config_t *cfg, int *found,
                             char *path_out, size_t cap);

#ifdef __cplusplus
}
#endif
#endif
