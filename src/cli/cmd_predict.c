/* glora predict: the class, top-5 softmax probabilities (and optionally the
 * logits) of a model for each image of a list file, an image folder or the
 * image files given as arguments, as JSON lines. */
#include "cli/cli.h"
#include "cli/cli_model.h"
#include "cli/commands.h"

#include "glora/common.h"
#include "util/fileio.h"
#include "glora/image.h"
#include "glora/pipeline.h"
#include "util/comm.h"
#include "util/strbuf.h"

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
               "read in pieces of data.max_memory bytes. Under MPI every rank computes every image\n"
               "and rank 0 writes. Example:\n"
               "  glora predict --model runs/q/merged.safetensors --folder photos/ -o predictions.jsonl",
    .schema = &schema,
    .flags = flags,
    .n_flags = sizeof flags / sizeof flags[0],
    .max_positional = 256,
    .positional_help = "IMAGE",
};

/* Output: standard output, or an atomic file; only the writer rank writes. */
typedef struct {
    glora_atomic_file_t *f;
    int quiet;
} out_t;

static int emit(out_t *o, const sbuf_t *b) {
    if (o->quiet) return 0;
    if (o->f) return glora_atomic_write(o->f, b->buf, b->len);
    if (fwrite(b->buf, 1, b->len, stdout) != b->len)
        return glora_error(GLORA_EIO, "standard output: write failed");
    return 0;
}

/* One image's JSON line into b. */
static void line(sbuf_t *b, const char *path, const float *logits, int V, const char *name_of_class,
                 int with_logits) {
    int cls[5];
    double p[5];
    int k = glora_predict_topk(logits, V, 5, cls, p);
    sb_puts(b, "{\"path\": ");
    sb_jstr(b, path);
    sb_printf(b, ", \"class\": %d", cls[0]);
    if (name_of_class) {
        sb_puts(b, ", \"name\": ");
        sb_jstr(b, name_of_class);
    }
    sb_puts(b, ", \"top5\": [");
    for (int j = 0; j < k; j++) {
        sb_printf(b, "%s{\"class\": %d, \"p\": ", j ? ", " : "", cls[j]);
        sb_double(b, p[j]);
        sb_puts(b, "}");
    }
    sb_puts(b, "]");
    if (with_logits) {
        sb_puts(b, ", \"logits\": [");
        for (int c = 0; c < V; c++) {
            if (c) sb_puts(b, ", ");
            sb_double(b, logits[c]);
        }
        sb_puts(b, "]");
    }
    sb_puts(b, "}\n");
}

int glora_cmd_predict(int argc, char **argv) {
    cli_args_t args;
    int rc = cli_parse(&cmd, argc, argv, &args);
    if (rc) return rc < 0 ? CLI_OK : rc;
    const glora_config_t *cfg = args.cfg;
    glora_vit_t *m = NULL;
    glora_dataset_t ds = {0};
    glora_spec_t spec = {0};
    glora_split_stream_t *stream = NULL;
    glora_image_t img = {0};
    glora_split_t split;
    float *logits = NULL;
    sbuf_t b = {0};
    out_t o = {0};
    size_t total = 0;
    int have_spec = 0;
    const int with_logits = cli_switch(&cmd, &args, "--logits");
    const char *output = glora_config_string(cfg, "output");
    glora_split_from_config(&split, cfg, "data", "data.");
    const int files = args.n_positional > 0, listed = split.list || split.folder;
    if (files == listed || split.images) {
        rc = cli_usage_error(cmd.name, "%s", split.images ? "predict reads image files, not IDX data"
                                             : files ? "give image files or --list/--folder, not both"
                                                     : "nothing to predict: give --list, --folder or image files");
        goto out;
    }
    if (cli_load_model(cfg, &m) ||
        cli_load_subnet(m, glora_config_string(cfg, "subnet"), glora_config_string(cfg, "model.adapter"),
                        &spec, &have_spec)) {
        rc = cli_fail();
        goto out;
    }
    if (m->rank > 0 && !have_spec) {
        glora_error(GLORA_EINVAL, "model '%s': has GLoRA tensors but no subnet spec says which to use",
                    glora_config_string(cfg, "model.adapter"));
        glora_error_hint("pass --subnet SPEC (a search's best.json, for example)");
        rc = cli_fail();
        goto out;
    }
    cli_set_precision(cfg, "eval.precision", m);
    const int V = m->arch.num_classes;
    const size_t batch = (size_t)glora_config_int(cfg, "eval.batch");
    const glora_layer_cfg_t *lcfg = have_spec ? spec.cfg : NULL;
    o.quiet = !glora_comm_writer();
    if (listed && glora_split_stream_open(&stream, &split, &m->arch, &total)) {
        rc = cli_fail();
        goto out;
    }
    if (!o.quiet && output && glora_atomic_open(&o.f, output)) {
        rc = cli_fail();
        goto out;
    }
    /* Pieces of the list or folder (data.max_memory bytes each, all of it
     * when 0), or the files one by one, each preprocessed as a split is. */
    glora_image_prep_t prep = {
        .channels = m->arch.in_chans,
        .size = split.size ? split.size : m->arch.img_size,
        .resize = (glora_resize_t)split.img_resize,
        .interp = (glora_interp_t)split.interp,
        .crop_pct = split.crop_pct,
    };
    size_t done = 0;
    for (int f = 0;; f++) {
        if (stream) {
            if (glora_split_stream_next(stream, &ds)) goto fail;
        } else {
            glora_dataset_free(&ds);
            if (f == args.n_positional) break;
            if (glora_image_load(&img, args.positional[f], &prep)) goto fail;
            ds.n = 1;
            ds.c = img.c;
            ds.h = img.h;
            ds.w = img.w;
            ds.u8 = img.px;
            img.px = NULL;
            ds.num_classes = V;
            if (!(ds.y = calloc(1, sizeof *ds.y))) {
                glora_error(GLORA_ENOMEM, "predict: out of memory");
                goto fail;
            }
            for (int c = 0; c < 3; c++) {
                ds.cmean[c] = split.means[split.nnorm == 3 ? c : 0];
                ds.cstd[c] = split.stds[split.nnorm == 3 ? c : 0];
            }
            ds.mean = ds.cmean[0];
            ds.std = ds.cstd[0];
            if (ds.c != m->arch.in_chans || ds.h != m->arch.img_size || ds.w != m->arch.img_size) {
                glora_error(GLORA_EINVAL, "image '%s': %d x %d x %d after preprocessing, the model takes "
                            "%d x %d x %d", args.positional[f], ds.c, ds.h, ds.w, m->arch.in_chans,
                            m->arch.img_size, m->arch.img_size);
                glora_error_hint("set data.size to the model's image size, or data.resize");
                goto fail;
            }
        }
        if (ds.n == 0) break;
        float *nl = realloc(logits, ds.n * (size_t)V * sizeof(float));
        if (!nl) {
            glora_error(GLORA_ENOMEM, "predict: out of memory for %zu logits", ds.n * (size_t)V);
            goto fail;
        }
        logits = nl;
        if (glora_predict(m, lcfg, &ds, batch, logits)) goto fail;
        for (size_t i = 0; i < ds.n; i++) {
            const float *l = logits + i * (size_t)V;
            int top;
            double p;
            glora_predict_topk(l, V, 1, &top, &p);
            b.len = 0;
            line(&b, stream ? glora_split_stream_path(stream, done + i) : args.positional[f], l, V,
                 stream ? glora_split_stream_class_name(stream, top) : NULL, with_logits);
            if (b.failed) {
                glora_error(GLORA_ENOMEM, "predict: out of memory for an output line");
                goto fail;
            }
            if (emit(&o, &b)) goto fail;
        }
        done += ds.n;
    }
    if (stream && done == 0) {
        glora_error(GLORA_EINVAL, "data '%s': the split is empty", glora_split_source(&split));
        goto fail;
    }
    if (o.f) {
        glora_atomic_file_t *f = o.f;
        o.f = NULL;
        if (glora_atomic_commit(f)) goto fail;
    } else if (!o.quiet && fflush(stdout) != 0) {
        glora_error(GLORA_EIO, "standard output: write failed");
        goto fail;
    }
    rc = CLI_OK;
    goto out;
fail:
    rc = cli_fail();
out:
    glora_atomic_abort(o.f);
    free(b.buf);
    free(logits);
    free(img.px);
    glora_spec_free(&spec);
    glora_dataset_free(&ds);
    glora_split_stream_close(stream);
    glora_vit_free(m);
    cli_args_free(&args);
    return rc;
}
