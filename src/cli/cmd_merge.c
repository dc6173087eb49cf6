/* glora merge: fold a subnet's GLoRA tensors into plain ViT weights
 * (glora_stage_merge). */
#include "cli/cli.h"
#include "cli/commands.h"

#include "glora/pipeline.h"

static const cli_flag_t flags[] = {
    {"--model", "model.backbone", "FILE", "backbone safetensors file"},
    {"--adapter", "model.adapter", "FILE", "supernet or retrained adapter file"},
    {"--heads", "model.heads", "N", "attention heads (when not in the file's metadata)"},
    {"--subnet", "subnet", "SPEC", "subnet spec (JSON)"},
    {"-o", "output", "FILE", "output file"},
    {"--output", "output", "FILE", "output file"},
};

static const cli_cmd_t cmd = {
    .name = "merge",
    .synopsis = "[CONFIG] --model BACKBONE --adapter FILE [--subnet SPEC] -o OUT",
    .summary = "Folds the GLoRA tensors a subnet uses into every adapted layer,\n"
               "  W' = W0 + W0*A + B,  b' = b0 + b0*D + E + W0 C,\n"
               "and writes a plain timm ViT (with the adapter's head) that loads and runs\n"
               "like any backbone: zero extra inference cost.",
    .schema = &glora_merge_schema,
    .flags = flags,
    .n_flags = sizeof flags / sizeof flags[0],
};

/* The merge on a loaded config (a merge is one step: nothing resumes). */
static int merge_stage(const glora_config_t *cfg, int resume) {
    cli_progress_t pg;
    glora_stage_hooks_t h;
    cli_progress_hooks(&pg, &h);
    return glora_stage_merge(cfg, &h) ? cli_fail() : CLI_OK;
}

static const cli_stage_t stage = {&cmd, merge_stage};

int glora_cmd_merge(int argc, char **argv) { return cli_run_stage(&stage, argc, argv); }
