/* glora merge: fold a subnet's GLoRA tensors into plain ViT weights. */
#include "cli/cli.h"
#include "cli/cli_model.h"
#include "cli/commands.h"

#include "glora/common.h"
#include "glora/fileio.h"

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

int glora_cmd_merge(int argc, char **argv) {
    cli_args_t args;
    int rc = cli_parse(&cmd, argc, argv, &args);
    if (rc) return rc < 0 ? CLI_OK : rc;
    const glora_config_t *cfg = args.cfg;
    glora_vit_t *m = NULL, *out = NULL;
    glora_vit_linears_t *lin = NULL;
    glora_spec_t spec = {0};
    int have_spec = 0;
    const char *adapter = glora_config_string(cfg, "model.adapter");
    if (glora_config_require(cfg, "output") || glora_config_require(cfg, "model.adapter") ||
        cli_load_model(cfg, &m) ||
        cli_load_subnet(m, glora_config_string(cfg, "subnet"), adapter, &spec, &have_spec)) {
        rc = cli_fail();
        goto done;
    }
    if (!have_spec) {
        glora_error(GLORA_EINVAL, "adapter '%s': no subnet spec given and none embedded in the file", adapter);
        glora_error_hint("pass --subnet SPEC (a search's best.json, for example)");
        rc = cli_fail();
        goto done;
    }
    if (m->rank == 0) {
        glora_error(GLORA_EINVAL, "adapter '%s': holds no GLoRA tensors", adapter);
        rc = cli_fail();
        goto done;
    }
    if (glora_vit_linears_create(&lin, m) || glora_vit_create(&out, &m->arch, 0)) {
        rc = cli_fail();
        goto done;
    }
    /* Copy the backbone and head, then replace every adapted linear. */
    for (int i = 0; i < out->n_params; i++) {
        const glora_param_t *p = &out->params[i], *q = glora_vit_param(m, p->name);
        GLORA_ASSERT(q && q->numel == p->numel);
        memcpy(out->mem + p->offset, m->mem + q->offset, p->numel * sizeof(float));
    }
    glora_vit_linears_set(lin, m, spec.cfg);
    for (int l = 0; l < glora_vit_layers(m); l++) {
        const float *w0, *b0;
        int o, in;
        glora_vit_layer(out, l, &w0, &b0, &o, &in);
        memcpy((float *)w0, lin->w[l], (size_t)o * in * sizeof(float));
        memcpy((float *)b0, lin->b[l], (size_t)o * sizeof(float));
    }
    char params[32], *json = NULL;
    snprintf(params, sizeof params, "%zu", spec.params);
    if (glora_spec_to_json(&spec, &json)) {
        rc = cli_fail();
        goto done;
    }
    const char *meta[] = {"glora.kind", "merged", "glora.backbone_sha256", m->backbone_sha256,
                          "glora.subnet_params", params, "glora.subnet", json};
    const char *path = glora_config_string(cfg, "output");
    rc = glora_vit_save(out, path, GLORA_ROLE_BACKBONE | GLORA_ROLE_HEAD, meta, 4);
    free(json);
    if (rc) {
        rc = cli_fail();
        goto done;
    }
    fprintf(stderr, "merged %d layers (%zu GLoRA parameters) into '%s'\n", glora_vit_layers(m), spec.params, path);
    rc = CLI_OK;
done:
    glora_vit_linears_free(lin);
    glora_vit_free(out);
    glora_vit_free(m);
    glora_spec_free(&spec);
    cli_args_free(&args);
    return rc;
}
