/* glora convert: a ViT checkpoint (Google's .npz, or timm safetensors) as a
 * timm-named safetensors file with the metadata glora reads. */
#include "cli/cli.h"
#include "cli/commands.h"

#include "glora/common.h"
#include "util/fileio.h"
#include "glora/model.h"
#include "glora/timm.h"

#include <stdio.h>
#include <string.h>

static const glora_config_key_t keys[] = {
    {"model.heads", GLORA_CFG_INT, "0", "attention heads if nothing else says (0: from the file)", 0, 1024, NULL},
    {"model.arch", GLORA_CFG_STRING, NULL, "timm architecture name, for the head count (vit_base_patch16_224, ...)",
     0, 0, NULL},
    {"output", GLORA_CFG_STRING, NULL, "safetensors file to write", 0, 0, NULL},
};
static const glora_config_schema_t schema = GLORA_CONFIG_SCHEMA(keys);

static const cli_flag_t flags[] = {
    {"-o", "output", "FILE", "output file (safetensors)"},
    {"--output", "output", "FILE", "output file (safetensors)"},
    {"--heads", "model.heads", "N", "attention heads (when the input does not say)"},
    {"--arch", "model.arch", "NAME", "timm architecture of the input (gives the head count)"},
};

static const cli_cmd_t cmd = {
    .name = "convert",
    .synopsis = "MODEL -o OUT.safetensors [--arch NAME] [--heads N]",
    .summary = "Writes a ViT as a safetensors file with timm's tensor names and layouts\n"
               "and glora's metadata (glora.heads, glora.kind backbone), which PyTorch\n"
               "(timm, safetensors.torch.load_file) and every glora command read.\n"
               "MODEL is Google's original .npz (ViT-B_16.npz and kin: names and\n"
               "layouts mapped as timm's _load_weights does; pre_logits dropped, as\n"
               "timm 0.6.5 does) or a timm safetensors file (the head count then comes\n"
               "from --arch, --heads or a config.json beside it). docs/formats.md has\n"
               "the mapping.",
    .schema = &schema,
    .flags = flags,
    .n_flags = sizeof flags / sizeof flags[0],
    .max_positional = 1,
    .positional_help = "MODEL",
};

int glora_cmd_convert(int argc, char **argv) {
    cli_args_t args;
    int rc = cli_parse(&cmd, argc, argv, &args);
    if (rc) return rc < 0 ? CLI_OK : rc;
    if (args.n_positional != 1) {
        cli_args_free(&args);
        return cli_usage_error("convert", "which model? give an .npz or safetensors file");
    }
    const char *in = args.positional[0], *out = glora_config_string(args.cfg, "output");
    if (glora_config_require(args.cfg, "output") || glora_output_lock(out)) {
        cli_args_free(&args);
        return cli_fail();
    }
    glora_vit_load_opts_t opts = {.heads = (int)glora_config_int(args.cfg, "model.heads"),
                                  .arch = glora_config_string(args.cfg, "model.arch")};
    glora_vit_t *m;
    if (glora_vit_load_ex(&m, in, NULL, &opts)) {
        cli_args_free(&args);
        return cli_fail();
    }
    const char *slash = strrchr(in, '/');
    const char *meta[] = {"format", "pt", GLORA_META_KIND, "backbone", GLORA_META_SOURCE, slash ? slash + 1 : in};
    rc = glora_vit_save(m, out, GLORA_ROLE_BACKBONE | GLORA_ROLE_HEAD, meta, 3);
    if (!rc) {
        const glora_vit_arch_t *a = &m->arch;
        fprintf(stderr, "wrote '%s': ViT, %dx%dx%d images, patch %d, dim %d, depth %d, %d heads, %s%d classes\n", out,
                a->img_size, a->img_size, a->in_chans, a->patch, a->dim, a->depth, a->heads,
                a->num_classes ? "" : "no head, ", a->num_classes);
    }
    glora_vit_free(m);
    cli_args_free(&args);
    return rc ? cli_fail() : CLI_OK;
}
