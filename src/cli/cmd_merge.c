/* glora merge: fold a subnet's GLoRA tensors into plain ViT weights. */
#include "cli/cli.h"
#include "cli/cli_model.h"
#include "cli/commands.h"

#include "glora/common.h"
#include "glora/fileio.h"
#include "glora/pipeline.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const glora_config_key_t keys[] = {
    CLI_MODEL_KEYS,
    {"subnet", GLORA_CFG_STRING, NULL, "subnet spec (default: the one embedded in an adapter file)", 0, 0, NULL},
    {"output", GLORA_CFG_STRING, NULL, "merged model file to write (safetensors)", 0, 0, NULL},
};
static const glora_config_schema_t schema = GLORA_CONFIG_SCHEMA(keys);

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
    .schema = &schema,
    .flags = flags,
    .n_flags = sizeof flags / sizeof flags[0],
};

/* The merge on a loaded config. */
static int merge_stage(const glora_config_t *cfg, int resume) {
    (void)resume; /* a merge is one step */
    glora_vit_t *m = NULL, *out = NULL;
    glora_spec_t spec = {0};
    int have_spec = 0, rc;
    const char *adapter = glora_config_string(cfg, "model.adapter"), *path = glora_config_string(cfg, "output");
    if ((rc = glora_config_require(cfg, "output")) || (rc = glora_config_require(cfg, "model.adapter")) ||
        (rc = cli_load_model(cfg, &m)) ||
        (rc = cli_load_subnet(m, glora_config_string(cfg, "subnet"), adapter, &spec, &have_spec)))
        goto done;
    if (!have_spec) {
        rc = glora_error(GLORA_EINVAL, "adapter '%s': no subnet spec given and none embedded in the file", adapter);
        glora_error_hint("pass --subnet SPEC (a search's best.json, for example)");
    } else if (m->rank == 0) {
        rc = glora_error(GLORA_EINVAL, "adapter '%s': holds no GLoRA tensors", adapter);
    }
    if (rc || (rc = glora_merge(&out, m, &spec)) || (rc = glora_merged_save(out, &spec, path))) goto done;
    fprintf(stderr, "merged %d layers (%zu GLoRA parameters) into '%s'\n", glora_vit_layers(m), spec.params, path);
done:
    glora_vit_free(out);
    glora_vit_free(m);
    glora_spec_free(&spec);
    return rc ? cli_fail() : CLI_OK;
}

const cli_stage_t cli_stage_merge = {&cmd, merge_stage};

int glora_cmd_merge(int argc, char **argv) { return cli_run_stage(&cli_stage_merge, argc, argv); }
