/* The training commands: pretrain, finetune, supernet, retrain. Each reads a
 * YAML config (+ --set overrides) of its stage's schema (glora/pipeline.h)
 * and runs glora_stage_train, which builds the model and the mask of what
 * trains, trains with a checkpoint after every epoch, logs one JSON line per
 * epoch and writes the output file atomically; progress goes to stderr. */
#include "cli/cli.h"
#include "cli/commands.h"

#include "glora/pipeline.h"

#define COMMON_FLAGS                                                                      \
    {"--train-images", "data.train.images", "FILE", "IDX training images"},              \
    {"--train-labels", "data.train.labels", "FILE", "IDX training labels"},              \
    {"--val-images", "data.val.images", "FILE", "IDX validation images"},                \
    {"--val-labels", "data.val.labels", "FILE", "IDX validation labels"},                \
    {"--epochs", "train.epochs", "N", "epochs"},                                         \
    {"--batch", "train.batch", "N", "batch size"},                                       \
    {"--lr", "train.lr", "LR", "peak learning rate"},                                    \
    {"--seed", "seed", "N", "random seed"},                                              \
    {"-o", "output", "FILE", "output file"},                                             \
    {"--output", "output", "FILE", "output file"},                                       \
    {"--stop-after", "run.stop_after", "N", "stop after N epochs (resume later with --resume)"}, \
    {"--resume", NULL, NULL, "continue from the checkpoint when there is one"}

static const cli_flag_t pretrain_flags[] = {
    {"--preset", "arch.preset", "NAME", "vit-tiny-28 or vit-b16"},
    {"--model", "model.backbone", "FILE", "initial weights (e.g. from glora init)"},
    COMMON_FLAGS,
};
static const cli_flag_t finetune_flags[] = {
    {"--model", "model.backbone", "FILE", "pretrained backbone"},
    {"--mode", "finetune.mode", "MODE", "full or linear"},
    COMMON_FLAGS,
};
static const cli_flag_t supernet_flags[] = {
    {"--model", "model.backbone", "FILE", "pretrained backbone"},
    {"--rank", "glora.rank", "R", "supernet rank"},
    COMMON_FLAGS,
};
static const cli_flag_t retrain_flags[] = {
    {"--model", "model.backbone", "FILE", "pretrained backbone"},
    {"--adapter", "model.adapter", "FILE", "trained supernet"},
    {"--subnet", "subnet", "SPEC", "subnet spec (JSON), e.g. from glora search"},
    {"--init", "retrain.init", "MODE", "inherit or fresh"},
    COMMON_FLAGS,
};

#define NFLAGS(f) (sizeof(f) / sizeof((f)[0]))

static const cli_cmd_t pretrain_cmd = {
    .name = "pretrain",
    .synopsis = "[CONFIG] [options] -o OUT",
    .summary = "Trains a ViT from scratch, every weight (timm's initialisation, AdamW, cosine\n"
               "schedule). Makes the default backbone vit-tiny-28 on MNIST:\n"
               "  glora pretrain configs/pretrain-mnist.yaml -o vit-tiny-28.safetensors",
    .schema = &glora_pretrain_schema, .flags = pretrain_flags, .n_flags = NFLAGS(pretrain_flags),
};
static const cli_cmd_t finetune_cmd = {
    .name = "finetune",
    .synopsis = "[CONFIG] [options] -o OUT",
    .summary = "Baselines on a downstream task with a new zero-initialised head: full\n"
               "fine-tuning (finetune.mode=full, lr 1e-4) or a linear probe (linear, lr 1e-3).\n"
               "  glora finetune configs/finetune-fashion1k.yaml -o full.safetensors",
    .schema = &glora_finetune_schema, .flags = finetune_flags, .n_flags = NFLAGS(finetune_flags),
};
static const cli_cmd_t supernet_cmd = {
    .name = "supernet",
    .synopsis = "[CONFIG] [options] -o OUT",
    .summary = "Trains a GLoRA supernet on a frozen backbone: the GLoRA tensors of every\n"
               "adapted layer and a new zero head; every step every layer draws its\n"
               "configuration uniformly from the search space. Writes the trainable\n"
               "tensors with the backbone's sha256 (glora.kind=supernet).\n"
               "  glora supernet configs/supernet-fashion1k.yaml -o supernet.safetensors",
    .schema = &glora_supernet_schema, .flags = supernet_flags, .n_flags = NFLAGS(supernet_flags),
};
static const cli_cmd_t retrain_cmd = {
    .name = "retrain",
    .synopsis = "[CONFIG] --subnet SPEC [options] -o OUT",
    .summary = "Trains only the GLoRA components a subnet spec chose (and the head), from\n"
               "the supernet's values (retrain.init=inherit) or from a fresh initialisation\n"
               "(fresh). Writes an adapter file (glora.kind=adapter, glora.subnet = the\n"
               "spec) that glora eval and glora merge accept.\n"
               "  glora retrain configs/retrain-fashion1k.yaml --subnet best.json -o adapter.safetensors",
    .schema = &glora_retrain_schema, .flags = retrain_flags, .n_flags = NFLAGS(retrain_flags),
};

/* A training command on a loaded config. */
static int train(glora_recipe_kind_t kind, const cli_cmd_t *cmd, const glora_config_t *cfg, int resume) {
    const char *output = glora_config_string(cfg, "output");
    if (!output || !output[0]) return cli_usage_error(cmd->name, "no output file: give -o FILE (or output: in the config)");
    cli_progress_t pg;
    glora_stage_hooks_t h;
    cli_progress_hooks(&pg, &h);
    return glora_stage_train(kind, cfg, resume, &h, NULL) ? cli_fail() : CLI_OK;
}

static int run_pretrain(const glora_config_t *c, int resume) { return train(GLORA_RECIPE_PRETRAIN, &pretrain_cmd, c, resume); }
static int run_finetune(const glora_config_t *c, int resume) { return train(GLORA_RECIPE_FINETUNE, &finetune_cmd, c, resume); }
static int run_supernet(const glora_config_t *c, int resume) { return train(GLORA_RECIPE_SUPERNET, &supernet_cmd, c, resume); }
static int run_retrain(const glora_config_t *c, int resume) { return train(GLORA_RECIPE_RETRAIN, &retrain_cmd, c, resume); }

static const cli_stage_t stage_pretrain = {&pretrain_cmd, run_pretrain};
static const cli_stage_t stage_finetune = {&finetune_cmd, run_finetune};
static const cli_stage_t stage_supernet = {&supernet_cmd, run_supernet};
static const cli_stage_t stage_retrain = {&retrain_cmd, run_retrain};

int glora_cmd_pretrain(int argc, char **argv) { return cli_run_stage(&stage_pretrain, argc, argv); }
int glora_cmd_finetune(int argc, char **argv) { return cli_run_stage(&stage_finetune, argc, argv); }
int glora_cmd_supernet(int argc, char **argv) { return cli_run_stage(&stage_supernet, argc, argv); }
int glora_cmd_retrain(int argc, char **argv) { return cli_run_stage(&stage_retrain, argc, argv); }
