/* glora predict: the class, top-5 softmax probabilities (and optionally the
 * logits) of a model for each image of a list file, an image folder or the
 * image files given as arguments, as JSON lines. */
#include "cli/cli.h"
#include "cli/cli_infer.h"
#include "cli/cli_model.h"
#include "cli/commands.h"

#include "glora/common.h"
#include "util/fileio.h"
#include "glora/pipeline.h"
#include "util/comm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const glora_config_key_t keys[] = {
    CLI_MODEL_KEYS,
    CLI_DATA_KEYS,
    {"subnet", GLORA_CFG_STRING, NULL, "subnet spec to apply on a supernet (default: the adapter's own)", 0, 0, NULL},
    {"output", GLORA_CFG_STRING, NULL, "file for the JSON lines (default: standard output)", 0, 0, NULL},
    {"eval.batch", GLORA_CFG_INT, "200", "images per forward pass", 1, 65536, NULL},
    CLI_PRECISION_KEY("eval"),
};
static const glora_config_schema_t schema = GLORA_CONFIG_SCHEMA(keys);

static const cli_flag_t flags[] = {
    {"--model", "model.backbone", "FILE", "backbone or merged model safetensors file"},
    {"--adapter", "model.adapter", "FILE", "supernet or adapter file"},
    {"--heads", "model.heads", "N", "attention heads (when not in the file's metadata)"},
    {"--subnet", "subnet", "SPEC", "subnet spec (JSON) for a supernet"},
    {"--list", "data.list", "FILE", "list file of images ('path label' lines)"},
    {"--folder", "data.folder", "DIR", "image folder (one sub-folder per class)"},
    {"--start", "data.start", "N", "first image of the list or folder"},
    {"--count", "data.count", "N", "number of images (0: all)"},
    {"--batch", "eval.batch", "N", "batch size"},
    {"--precision", "eval.precision", "P", "fp32 or bf16"},
    {"-o", "output", "FILE", "write the JSON lines to FILE (atomically) instead of stdout"},
    {"--output", "output", "FILE", "same as -o"},
    {"--logits", NULL, NULL, "add each image's logits to its line"},
};

static const cli_cmd_t cmd = {
    .name = "predict",
    .synopsis = "[CONFIG] [options] [IMAGE...]",
    .summary = "Predicted class of each image for a plain or merged model, or a backbone with an\n"
               "adapter (and a subnet spec for a supernet): one JSON line per image with its path,\n"
               "class, class name (image folders), top-5 softmax probabilities and, with --logits,\n"
               "the logits (docs/formats.md). Images come from --list, --folder or the JPEG/PNG\n"
               "files given as arguments, preprocessed as eval does (data.size, data.resize,\n"
               "data.interpolation, data.crop_pct, data.mean, data.std); lists and folders are\n"
               "read in pieces of data.max_memory bytes. Under MPI the images are spread over the\n"
               "ranks and rank 0 writes the lines in order (the bytes one process writes). Example:\n"
               "  glora predict --model runs/q/merged.safetensors --folder photos/ -o predictions.jsonl",
    .schema = &schema,
    .flags = flags,
    .n_flags = sizeof flags / sizeof flags[0],
    .max_positional = 256,
    .positional_help = "IMAGE",
};

/* Output: standard output, or an atomic file (opened on the writer rank). */
static int emit(void *ctx, const char *line, size_t len) {
    glora_atomic_file_t *f = ctx;
    if (f) return glora_atomic_write(f, line, len);
    if (fwrite(line, 1, len, stdout) != len) return glora_error(GLORA_EIO, "standard output: write failed");
    return 0;
}

int glora_cmd_predict(int argc, char **argv) {
    cli_args_t args;
    int rc = cli_parse(&cmd, argc, argv, &args);
    if (rc) return rc < 0 ? CLI_OK : rc;
    const glora_config_t *cfg = args.cfg;
    glora_vit_t *m = NULL;
    glora_spec_t spec = {0};
    glora_atomic_file_t *f = NULL;
    glora_split_t split;
    int have_spec = 0;
    size_t n;
    const char *output = glora_config_string(cfg, "output");
    if (glora_split_from_config(&split, cfg, "data", "data.")) goto fail;
    const int files = args.n_positional > 0, listed = split.list || split.folder;
    if (files == listed || split.images) {
        rc = cli_usage_error(cmd.name, "%s", split.images ? "predict reads image files, not IDX data"
                                             : files ? "give image files or --list/--folder, not both"
                                                     : "nothing to predict: give --list, --folder or image files");
        goto out;
    }
    if (cli_infer_load(cfg, &m, &spec, &have_spec)) goto fail;
    /* One writer of OUTPUT at a time, as for merge and init. */
    if (glora_comm_writer() && output && (glora_output_lock(output) || glora_atomic_open(&f, output)))
        goto fail;
    glora_predict_opts_t o = {
        .model = m, .cfg = have_spec ? spec.cfg : NULL, .split = &split,
        .files = (const char *const *)args.positional, .n_files = args.n_positional,
        .batch = (size_t)glora_config_int(cfg, "eval.batch"), .with_logits = cli_switch(&cmd, &args, "--logits"),
        .write = emit, .ctx = f,
    };
    if (glora_predict_images(&o, &n)) goto fail;
    if (f) {
        glora_atomic_file_t *done = f;
        f = NULL;
        if (glora_atomic_commit(done)) goto fail;
    } else if (glora_comm_writer() && fflush(stdout) != 0) {
        glora_error(GLORA_EIO, "standard output: write failed");
        goto fail;
    }
    rc = CLI_OK;
    goto out;
fail:
    rc = cli_fail();
out:
    glora_atomic_abort(f);
    glora_spec_free(&spec);
    glora_vit_free(m);
    cli_args_free(&args);
    return rc;
}
