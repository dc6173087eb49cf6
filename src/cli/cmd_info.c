/* glora info: what a model, supernet or adapter file holds. */
#include "cli/cli.h"
#include "cli/cli_model.h"
#include "cli/commands.h"

#include "glora/common.h"
#include "util/fileio.h"
#include "glora/npz.h"
#include "glora/safetensors.h"
#include "glora/timm.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static const glora_config_key_t keys[] = {
    {"model.adapter", GLORA_CFG_STRING, NULL, "supernet or adapter file to load on top", 0, 0, NULL},
    {"model.heads", GLORA_CFG_INT, "0", "attention heads if the file's metadata lacks them", 0, 1024, NULL},
    {"model.arch", GLORA_CFG_STRING, NULL, "timm architecture of the model, for its head count", 0, 0, NULL},
    GLORA_SPLIT_NORM_KEYS("data."),
};
static const glora_config_schema_t schema = GLORA_CONFIG_SCHEMA(keys);

static const cli_flag_t flags[] = {
    {"--adapter", "model.adapter", "FILE", "supernet or adapter file to load on top of MODEL"},
    {"--heads", "model.heads", "N", "attention heads (when not in the file's metadata)"},
    {"--arch", "model.arch", "NAME", "timm architecture (vit_base_patch16_224, ...): gives the head count"},
    {"--tensors", NULL, NULL, "list every tensor with dtype and shape"},
};

static const cli_cmd_t cmd = {
    .name = "info",
    .synopsis = "MODEL [--adapter FILE] [--heads N] [--arch NAME] [--tensors]",
    .summary = "Shows what a safetensors file holds: the ViT architecture read off its\n"
               "tensor shapes, parameter counts by role, the adapted layers and their\n"
               "GLoRA rank, the file's metadata, and the preprocessing image files get:\n"
               "the data.* keys given (--set data.mean=imagenet ...) over the values of a timm\n"
               "config.json beside MODEL over glora's defaults. MODEL may also be a supernet\n"
               "or adapter file alone, or Google's original .npz.",
    .schema = &schema,
    .flags = flags,
    .n_flags = sizeof flags / sizeof flags[0],
    .max_positional = 1,
};

static void print_file(const char *path, int list) {
    glora_st_t *st;
    if (glora_st_open(&st, path)) return;
    struct stat sb;
    char hex[65] = "", size[32];
    stat(path, &sb);
    glora_sha256_file(path, hex);
    size_t numel = 0;
    for (size_t i = 0; i < glora_st_count(st); i++) numel += glora_st_tensor(st, i)->numel;
    const char *kind = glora_st_meta(st, GLORA_META_KIND);
    printf("file %s: %zu tensors, %s values, %s bytes%s%s\n  sha256 %s\n", path, glora_st_count(st),
           cli_human((double)numel, (char[32]){0}), cli_human((double)sb.st_size, size),
           kind ? ", kind " : "", kind ? kind : "", hex);
    for (size_t i = 0; i < glora_st_meta_count(st); i++) {
        const char *k, *v;
        glora_st_meta_at(st, i, &k, &v);
        size_t n = strlen(v);
        printf("  metadata %s = %.*s%s\n", k, n > 60 ? 60 : (int)n, v, n > 60 ? "..." : "");
    }
    if (list) {
        for (size_t i = 0; i < glora_st_count(st); i++) {
            const glora_st_tensor_t *t = glora_st_tensor(st, i);
            printf("  %-40s %-4s [", t->name, glora_st_dtype_name(t->dtype));
            for (int d = 0; d < t->ndim; d++) printf("%s%lld", d ? ", " : "", (long long)t->shape[d]);
            printf("]\n");
        }
    }
    glora_st_close(st);
}

/* The preprocessing image files get for this model: the data.* keys given,
 * over a timm config.json beside it, over glora's defaults. */
static int print_preprocessing(const glora_config_t *cfg, const char *path, const glora_vit_arch_t *a) {
    glora_split_t s;
    char line[2048];
    int rc = glora_split_from_config(&s, cfg, "data", "data.");
    if (!rc) rc = glora_split_timm_defaults(&s, cfg, "data.", path);
    if (rc) return rc;
    if (s.timm_config[0]) {
        glora_timm_config_t c = {.num_classes = -1};
        if ((rc = glora_timm_config_read(s.timm_config, &c))) return rc;
        const glora_timm_arch_t *t = glora_timm_arch_find(c.architecture);
        printf("timm config %s: architecture %s%s\n", s.timm_config, c.architecture[0] ? c.architecture : "(none)",
               c.architecture[0] && !t ? " (not in glora's table)" : "");
    }
    glora_split_describe(&s, a->img_size, line, sizeof line);
    printf("preprocessing of image files: %s%s\n", line,
           s.timm_config[0] ? "" : " (no timm config.json beside the model; data.* keys and glora's defaults)");
    return GLORA_OK;
}

int glora_cmd_info(int argc, char **argv) {
    cli_args_t args;
    int rc = cli_parse(&cmd, argc, argv, &args);
    if (rc) return rc < 0 ? CLI_OK : rc;
    if (args.n_positional != 1) {
        cli_args_free(&args);
        return cli_usage_error("info", "which model? give a safetensors file");
    }
    const char *path = args.positional[0], *adapter = glora_config_string(args.cfg, "model.adapter");
    int list = cli_switch(&cmd, &args, "--tensors");
    glora_st_t *st;
    int is_npz = glora_npz_sniff(path), is_backbone = 1;
    if (!is_npz) {
        if (glora_st_open(&st, path)) {
            cli_args_free(&args);
            return cli_fail();
        }
        is_backbone = glora_st_find(st, "patch_embed.proj.weight") != NULL;
        glora_st_close(st);
        print_file(path, list);
    } else {
        printf("file %s: a NumPy .npz (Google's original names)\n", path);
    }
    if (adapter && adapter[0]) print_file(adapter, list);
    if (!is_backbone) {
        printf("no backbone tensors: an adapter or supernet file; give the backbone too:\n"
               "  glora info BACKBONE --adapter %s\n", path);
        cli_args_free(&args);
        return CLI_OK;
    }
    glora_vit_t *m;
    glora_vit_load_opts_t o = {.heads = (int)glora_config_int(args.cfg, "model.heads"),
                               .arch = glora_config_string(args.cfg, "model.arch")};
    if (glora_vit_load_ex(&m, path, adapter && adapter[0] ? adapter : NULL, &o)) {
        cli_args_free(&args);
        return cli_fail();
    }
    const glora_vit_arch_t *a = &m->arch;
    printf("architecture: ViT, %dx%dx%d images, patch %d (%d tokens), dim %d, depth %d, %d heads, MLP %d, "
           "%d classes\n", a->img_size, a->img_size, a->in_chans, a->patch, a->tokens, a->dim, a->depth,
           a->heads, a->mlp_hidden, a->num_classes);
    if (print_preprocessing(args.cfg, path, a)) {
        glora_vit_free(m);
        cli_args_free(&args);
        return cli_fail();
    }
    size_t by_role[8] = {0};
    for (int i = 0; i < m->n_params; i++) by_role[m->params[i].role] += m->params[i].numel;
    char b1[32], b2[32], b3[32];
    printf("parameters: backbone %s, head %s", cli_human((double)by_role[GLORA_ROLE_BACKBONE], b1),
           cli_human((double)by_role[GLORA_ROLE_HEAD], b2));
    if (m->rank) printf(", GLoRA tensors %s (rank %d)", cli_human((double)by_role[GLORA_ROLE_ADAPTER], b3), m->rank);
    printf("\nadapted layers: %d (attn.qkv %dx%d, attn.proj %dx%d, mlp.fc1 %dx%d, mlp.fc2 %dx%d per block)\n",
           glora_vit_layers(m), 3 * a->dim, a->dim, a->dim, a->dim, a->mlp_hidden, a->dim, a->dim, a->mlp_hidden);
    if (m->rank) {
        glora_space_t sp;
        glora_space_official(&sp, m->rank);
        glora_layer_cfg_t big;
        for (int t = 0; t < GLORA_NTENSORS; t++) big.t[t] = sp.opt[t][0].kind == GLORA_SCALAR ? sp.opt[t][1] : sp.opt[t][0];
        size_t most = 0;
        for (int l = 0; l < glora_vit_layers(m); l++) {
            int o, in;
            glora_arch_layer_shape(a, l, &o, &in);
            most += glora_layer_params(&big, o, in);
        }
        printf("official search space: %zu configurations per layer; the largest subnet has %zu parameters\n",
               glora_space_size(&sp), most);
    }
    glora_vit_free(m);
    cli_args_free(&args);
    return CLI_OK;
}
