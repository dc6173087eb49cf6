/* The config keys of the stages, one schema each (docs/config.md): what
 * `glora <stage>` reads and what a section of a `glora run` file holds. */
#include "glora/pipeline.h"

const char *const glora_precisions[] = {"fp32", "bf16", NULL};
const char *const glora_arch_presets[] = {"vit-tiny-28", "vit-b16", NULL};
const char *const glora_sampling_names[] = {"uniform", "sandwich", NULL};

static const char *const ft_modes[] = {"full", "linear", NULL};
static const char *const init_modes[] = {"inherit", "fresh", NULL};
static const char *const choices_ab[] = {"lora_1", "lora_2", "lora_3", "lora_4", "lora_8", "lora_16",
                                         "lora_32", "lora_64", "vector", "scalar", "none", NULL};

#define TRAINABLE_HELP "what trains: comma-separated role words (backbone, head, adapter) or globs over tensor names"

static const glora_config_key_t pretrain_keys[] = {
    {"arch.preset", GLORA_CFG_ENUM, "vit-tiny-28", "architecture when model.backbone is not given", 0, 0, glora_arch_presets},
    {"arch.num_classes", GLORA_CFG_INT, "0", "classes of the head (0: the preset's)", 0, 1000000, NULL},
    {"model.backbone", GLORA_CFG_STRING, NULL, "initial weights (default: timm's initialisation of arch.preset)", 0, 0, NULL},
    GLORA_TRAIN_KEYS("6", "128", "1e-3", "0.05", "0", "backbone,head", TRAINABLE_HELP),
};
static const glora_config_key_t finetune_keys[] = {
    {"finetune.mode", GLORA_CFG_ENUM, "full", "full (every weight) or linear (a linear probe: the head only)", 0, 0, ft_modes},
    {"model.backbone", GLORA_CFG_STRING, NULL, "pretrained backbone (a timm ViT)", 0, 0, NULL},
    {"model.num_classes", GLORA_CFG_INT, "0", "classes of the new head (0: from the training labels)", 0, 1000000, NULL},
    GLORA_TRAIN_KEYS("100", "64", NULL, "1e-4", "42", NULL,
               TRAINABLE_HELP " (default: backbone,head for full, head for linear)"),
};
static const glora_config_key_t supernet_keys[] = {
    {"model.backbone", GLORA_CFG_STRING, NULL, "pretrained backbone (a timm ViT), frozen", 0, 0, NULL},
    {"model.num_classes", GLORA_CFG_INT, "0", "classes of the new head (0: from the training labels)", 0, 1000000, NULL},
    {"glora.rank", GLORA_CFG_INT, "4", "supernet rank R of the GLoRA tensors", 1, GLORA_MAX_RANK, NULL},
    {"space.A", GLORA_CFG_STRINGS, "[]", "choices of A (default: lora_R, vector, scalar, none)", 0, 0, choices_ab},
    {"space.B", GLORA_CFG_STRINGS, "[]", "choices of B (default: lora_R, vector, scalar, none)", 0, 0, choices_ab},
    {"space.C", GLORA_CFG_STRINGS, "[]", "choices of C (default: lora_R, vector, none)", 0, 0, choices_ab},
    {"space.D", GLORA_CFG_STRINGS, "[]", "choices of D (default: scalar, vector, none)", 0, 0, choices_ab},
    {"space.E", GLORA_CFG_STRINGS, "[]", "choices of E (default: scalar, vector, none)", 0, 0, choices_ab},
    {"train.sampling", GLORA_CFG_ENUM, "uniform", "how each step picks the layers' configurations: uniform (every layer draws from the space, the official way) or sandwich (a cycle of four steps: every layer's largest option, every layer's smallest, then two uniform draws)", 0, 0, glora_sampling_names, GLORA_CFG_IDENTITY_IF_SET},
    GLORA_TRAIN_KEYS("200", "64", "1e-3", "1e-4", "42", "adapter,head", TRAINABLE_HELP),
};
static const glora_config_key_t retrain_keys[] = {
    {"subnet", GLORA_CFG_STRING, NULL, "subnet spec (JSON) to retrain", 0, 0, NULL},
    {"retrain.init", GLORA_CFG_ENUM, "inherit", "inherit (start from the supernet's values) or fresh (GLoRA init, zero head)", 0, 0, init_modes},
    {"retrain.early_stop", GLORA_CFG_BOOL, "false", "hold out retrain.holdout training images, score them before training and after every epoch, and keep the best epoch's weights (epoch 0: the starting ones)", 0, 0, NULL, GLORA_CFG_IDENTITY_IF_SET},
    {"retrain.average", GLORA_CFG_NUMBER, "0.5", "with init=inherit: the output holds average * the supernet's weights the retrain started from + (1 - average) * the retrained ones, for every tensor that trained (a weight-space average, chosen by the transfer suite, docs/RESULTS.md; 0: the retrained weights, as before 2026-12-03; the default does nothing with init=fresh)", 0, 1, NULL, GLORA_CFG_IDENTITY_IF_SET, "0"},
    {"retrain.holdout", GLORA_CFG_INT, "100", "with early_stop: training images held out (drawn by the seed), not trained on", 1, 1e9, NULL, GLORA_CFG_IDENTITY_IF_SET},
    {"model.backbone", GLORA_CFG_STRING, NULL, "pretrained backbone (a timm ViT), frozen", 0, 0, NULL},
    {"model.adapter", GLORA_CFG_STRING, NULL, "trained supernet (needed by retrain.init=inherit)", 0, 0, NULL},
    {"model.num_classes", GLORA_CFG_INT, "0", "classes of a fresh head (0: from the training labels)", 0, 1000000, NULL},
    GLORA_TRAIN_KEYS("100", "64", "1e-3", "1e-4", "42", "head",
               TRAINABLE_HELP ", besides the GLoRA tensors the subnet uses"),
};
static const glora_config_key_t search_keys[] = {
    GLORA_MODEL_KEYS,
    GLORA_DATA_KEYS,
    {"output.dir", GLORA_CFG_STRING, "runs/search", "directory of the checkpoint and the results", 0, 0, NULL, GLORA_CFG_NOT_IDENTITY},
    GLORA_SEARCH_KEYS,
    GLORA_PRECISION_KEY("search"),
};
static const glora_config_key_t merge_keys[] = {
    GLORA_MODEL_KEYS,
    {"subnet", GLORA_CFG_STRING, NULL, "subnet spec (default: the one embedded in an adapter file)", 0, 0, NULL},
    {"output", GLORA_CFG_STRING, NULL, "merged model file to write (safetensors)", 0, 0, NULL},
};

/* The stages of a run, and the kinds of glora_dataset_shift but clean (the
 * test split itself is always evaluated). */
const char *const glora_run_stage_names[] = {"pretrain", "finetune", "supernet", "search", "retrain", "merge", "eval", NULL};
const char *const glora_run_shift_kinds[] = {"inverted", "rotated", "noisy", "blurred", NULL};

static const glora_config_key_t run_keys[] = {
    {"name", GLORA_CFG_STRING, NULL, "name of the run: its files go to DIR/NAME", 0, 0, NULL},
    {"dir", GLORA_CFG_STRING, "runs", "directory of all runs", 0, 0, NULL},
    {"backbone", GLORA_CFG_STRING, NULL, "pretrained backbone; made by the pretrain stage when missing "
                                             "(default DIR/NAME/backbone.safetensors)", 0, 0, NULL},
    {"arch", GLORA_CFG_STRING, NULL, "timm architecture of the backbone (vit_base_patch16_224, ...), "
                                     "for its head count: model.arch of every stage", 0, 0, NULL},
    {"supernet", GLORA_CFG_STRING, NULL, "supernet to use when the stages do not train one "
                                         "(default DIR/NAME/supernet.safetensors)", 0, 0, NULL},
    {"stages", GLORA_CFG_STRINGS, "[pretrain, supernet, search, retrain, merge, eval]",
     "stages to run, in pipeline order", 0, 0, glora_run_stage_names},
    {"subnet", GLORA_CFG_STRING, NULL, "subnet spec to retrain when there is no search stage; or "
                                           "preset:lora4 (B = lora_4), preset:ssf (A, D, E = vector)", 0, 0, NULL},
    {"seed", GLORA_CFG_INT, "-1", "when >= 0, the seed of every stage after pretraining "
                                  "(training 'seed', search 'search.seed'); -1 keeps the sections' own", -1, 1e15, NULL},
    {"label", GLORA_CFG_STRING, NULL, "name of the method in the summary (default from the stages)", 0, 0, NULL},
    GLORA_SPLIT_KEYS("val", "validation"),
    GLORA_SPLIT_KEYS("test", "test"),
    {"test_shifts", GLORA_CFG_STRINGS, "[]", "domain-shifted copies of the test split every final model is "
                                             "also evaluated on (docs/formats.md)", 0, 0, glora_run_shift_kinds},
    {"shift_seed", GLORA_CFG_INT, "0", "seed of the noisy shift", 0, 0, NULL},
    GLORA_SPLIT_NORM_KEYS(""),
    {"heads", GLORA_CFG_INT, "0", "attention heads if the backbone's metadata lacks them", 0, 1024, NULL},
};

const glora_config_schema_t glora_pretrain_schema = GLORA_CONFIG_SCHEMA(pretrain_keys);
const glora_config_schema_t glora_finetune_schema = GLORA_CONFIG_SCHEMA(finetune_keys);
const glora_config_schema_t glora_supernet_schema = GLORA_CONFIG_SCHEMA(supernet_keys);
const glora_config_schema_t glora_retrain_schema = GLORA_CONFIG_SCHEMA(retrain_keys);
const glora_config_schema_t glora_search_schema = GLORA_CONFIG_SCHEMA(search_keys);
const glora_config_schema_t glora_merge_schema = GLORA_CONFIG_SCHEMA(merge_keys);
const glora_config_schema_t glora_run_schema = GLORA_CONFIG_SCHEMA(run_keys);
