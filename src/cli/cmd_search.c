/* glora search: the evolutionary layer-wise structure search on a supernet,
 * driven by a YAML config, resumable (--resume), writing best.json,
 * pareto.json, best-under-<budget>.json and history.jsonl (glora_stage_search). */
#include "cli/cli.h"
#include "cli/commands.h"

#include "glora/pipeline.h"

static const cli_flag_t flags[] = {
    {"--resume", NULL, NULL, "continue the search from output.dir/checkpoint.json"},
    {"--model", "model.backbone", "FILE", "backbone safetensors file"},
    {"--supernet", "model.adapter", "FILE", "supernet safetensors file"},
    {"--output", "output.dir", "DIR", "output directory"},
    {"--seed", "search.seed", "N", "random seed"},
};

static const cli_cmd_t cmd = {
    .name = "search",
    .synopsis = "CONFIG [--resume] [--set key=value ...] [--threads N]",
    .summary =
        "Evolutionary layer-wise search of a GLoRA subnet on a trained supernet (the official\n"
        "AutoFormer/NOAH algorithm): candidates are scored by top-1 accuracy on the data.*\n"
        "split with weights inherited from the supernet, under a parameter budget. Writes\n"
        "best.json (a subnet spec for eval, retrain and merge), pareto.json,\n"
        "best-under-<budget>.json, history.jsonl and checkpoint.json into output.dir after\n"
        "every generation; --resume continues a stopped or killed search exactly. The result\n"
        "depends on the config, the supernet, the data and the seed, not on --threads.\n"
        "Example:\n"
        "  glora search configs/search-fashion1k.yaml --threads 2",
    .schema = &glora_search_schema,
    .flags = flags,
    .n_flags = sizeof flags / sizeof flags[0],
};

/* The search on a loaded config. */
static int search_stage(const glora_config_t *cfg, int resume) {
    cli_progress_t pg;
    glora_stage_hooks_t h;
    cli_progress_hooks(&pg, &h);
    return glora_stage_search(cfg, resume, &h) ? cli_fail() : CLI_OK;
}

static const cli_stage_t stage = {&cmd, search_stage};

int glora_cmd_search(int argc, char **argv) { return cli_run_stage(&stage, argc, argv); }
