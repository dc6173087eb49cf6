/* glora init: a freshly initialised ViT backbone of a given architecture. */
#include "cli/cli.h"
#include "cli/cli_model.h"
#include "cli/commands.h"

#include "glora/common.h"
#include "util/fileio.h"
#include "glora/model.h"
#include "util/rng.h"
#include "glora/train.h"

#include <stdio.h>
#include <string.h>


static const glora_config_key_t keys[] = {
    {"arch.preset", GLORA_CFG_ENUM, "vit-tiny-28", "starting architecture", 0, 0, glora_arch_presets},
    {"arch.img_size", GLORA_CFG_INT, "0", "image side in pixels (0: the preset's)", 0, 4096, NULL},
    {"arch.in_chans", GLORA_CFG_INT, "0", "image channels (0: the preset's)", 0, 64, NULL},
    {"arch.patch", GLORA_CFG_INT, "0", "patch side (0: the preset's)", 0, 4096, NULL},
    {"arch.dim", GLORA_CFG_INT, "0", "model width (0: the preset's)", 0, 16384, NULL},
    {"arch.depth", GLORA_CFG_INT, "0", "transformer blocks (0: the preset's)", 0, 256, NULL},
    {"arch.heads", GLORA_CFG_INT, "0", "attention heads (0: the preset's)", 0, 1024, NULL},
    {"arch.mlp_hidden", GLORA_CFG_INT, "0", "MLP width (0: the preset's)", 0, 65536, NULL},
    {"arch.num_classes", GLORA_CFG_INT, "0", "classes of the head (0: the preset's)", 0, 1000000, NULL},
    {"seed", GLORA_CFG_INT, "0", "random seed of the initialisation", 0, 0, NULL},
    {"output", GLORA_CFG_STRING, NULL, "file to write (safetensors)", 0, 0, NULL},
};
static const glora_config_schema_t schema = GLORA_CONFIG_SCHEMA(keys);

static const cli_flag_t flags[] = {
    {"--preset", "arch.preset", "NAME", "vit-tiny-28 (28x28x1, patch 7, dim 128, depth 6, 4 heads) or "
                                        "vit-b16 (224x224x3, patch 16, dim 768, depth 12, 12 heads)"},
    {"--seed", "seed", "N", "random seed"},
    {"-o", "output", "FILE", "output file"},
    {"--output", "output", "FILE", "output file"},
};

static const cli_cmd_t cmd = {
    .name = "init",
    .synopsis = "[CONFIG] [--preset NAME] [--set arch.KEY=N] -o OUT",
    .summary = "Writes a randomly initialised ViT backbone (timm's initialisation) of a\n"
               "preset architecture, optionally changed key by key. Used to start\n"
               "pretraining, and to try glora on a model of a given shape.",
    .schema = &schema,
    .flags = flags,
    .n_flags = sizeof flags / sizeof flags[0],
};

int glora_cmd_init(int argc, char **argv) {
    cli_args_t args;
    int rc = cli_parse(&cmd, argc, argv, &args);
    if (rc) return rc < 0 ? CLI_OK : rc;
    const glora_config_t *cfg = args.cfg;
    glora_vit_arch_t a = glora_arch_preset(glora_config_string(cfg, "arch.preset"));
    struct { const char *key; int *field; } over[] = {
        {"arch.img_size", &a.img_size}, {"arch.in_chans", &a.in_chans}, {"arch.patch", &a.patch},
        {"arch.dim", &a.dim}, {"arch.depth", &a.depth}, {"arch.heads", &a.heads},
        {"arch.mlp_hidden", &a.mlp_hidden}, {"arch.num_classes", &a.num_classes},
    };
    for (size_t i = 0; i < sizeof over / sizeof over[0]; i++) {
        int64_t v = glora_config_int(cfg, over[i].key);
        if (v > 0) *over[i].field = (int)v;
    }
    glora_vit_t *m = NULL;
    glora_rng_t rng;
    if (glora_config_require(cfg, "output") || glora_output_lock(glora_config_string(cfg, "output")) ||
        glora_vit_create(&m, &a, 0)) {
        rc = cli_fail();
        goto out;
    }
    glora_rng_seed(&rng, (uint64_t)glora_config_int(cfg, "seed"));
    glora_train_init_vit(m, &rng);
    const char *meta[] = {GLORA_META_KIND, "backbone"};
    if (glora_vit_save(m, glora_config_string(cfg, "output"), GLORA_ROLE_BACKBONE | GLORA_ROLE_HEAD, meta, 1)) {
        rc = cli_fail();
        goto out;
    }
    fprintf(stderr, "wrote a %zu-parameter ViT to '%s'\n", m->n_floats, glora_config_string(cfg, "output"));
    rc = CLI_OK;
out:
    glora_vit_free(m);
    cli_args_free(&args);
    return rc;
}
