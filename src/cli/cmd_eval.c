/* glora eval: top-1 accuracy and images/s of a model on a data split. */
#include "cli/cli.h"
#include "cli/cli_infer.h"
#include "cli/cli_model.h"
#include "cli/commands.h"

#include "glora/common.h"
#include "util/parallel.h"
#include "glora/pipeline.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const glora_config_key_t keys[] = {
    CLI_MODEL_KEYS,
    CLI_DATA_KEYS,
    {"subnet", GLORA_CFG_STRING, NULL, "subnet spec to evaluate on a supernet (default: the adapter's own)", 0, 0, NULL},
    {"eval.batch", GLORA_CFG_INT, "200", "images per forward pass", 1, 65536, NULL},
    CLI_PRECISION_KEY("eval"),
};
static const glora_config_schema_t schema = GLORA_CONFIG_SCHEMA(keys);

static const cli_flag_t flags[] = {
    {"--model", "model.backbone", "FILE", "backbone safetensors file"},
    {"--adapter", "model.adapter", "FILE", "supernet or adapter file"},
    {"--heads", "model.heads", "N", "attention heads (when not in the file's metadata)"},
    {"--subnet", "subnet", "SPEC", "subnet spec (JSON) for a supernet"},
    {"--images", "data.images", "FILE", "IDX images"},
    {"--labels", "data.labels", "FILE", "IDX labels"},
    {"--list", "data.list", "FILE", "list file of images ('path label' lines)"},
    {"--folder", "data.folder", "DIR", "image folder (one sub-folder per class)"},
    {"--start", "data.start", "N", "first example"},
    {"--count", "data.count", "N", "number of examples (0: all)"},
    {"--batch", "eval.batch", "N", "batch size"},
    {"--precision", "eval.precision", "P", "fp32 or bf16"},
    {"--json", NULL, NULL, "print one JSON line instead of text"},
};

static const cli_cmd_t cmd = {
    .name = "eval",
    .synopsis = "[CONFIG] [options]",
    .summary = "Top-1 accuracy and images/s of a plain backbone, of a supernet under a subnet\n"
               "spec (weights inherited), of a retrained adapter, or of a merged model, on a\n"
               "split of an IDX data set, a list file or an image folder (JPEG/PNG, preprocessed\n"
               "as PIL + torchvision would: data.resize, data.size, data.interpolation). Example:\n"
               "  glora eval --model runs/q/backbone.safetensors --adapter runs/q/supernet.safetensors \\\n"
               "    --subnet runs/q/search/best.json --images data/fashion-mnist/t10k-images-idx3-ubyte.gz \\\n"
               "    --labels data/fashion-mnist/t10k-labels-idx1-ubyte.gz",
    .schema = &schema,
    .flags = flags,
    .n_flags = sizeof flags / sizeof flags[0],
};

int glora_cmd_eval(int argc, char **argv) {
    cli_args_t args;
    int rc = cli_parse(&cmd, argc, argv, &args);
    if (rc) return rc < 0 ? CLI_OK : rc;
    const glora_config_t *cfg = args.cfg;
    glora_vit_t *m = NULL;
    glora_dataset_t ds = {0};
    glora_spec_t spec = {0};
    glora_split_stream_t *stream = NULL;
    glora_split_t split;
    size_t total = 0;
    int have_spec = 0;
    /* Image files under data.max_memory (by default half the RAM) are
     * evaluated piece by piece (one piece when the split fits); a k-shot
     * draw or a shift needs the whole split, which must then fit. */
    if (cli_infer_load(cfg, &m, &spec, &have_spec) || glora_split_from_config(&split, cfg, "data", "data.") ||
        ((split.list || split.folder) && split.max_memory > 0 && split.kshot == 0 &&
                 (!split.shift || strcmp(split.shift, "clean") == 0)
             ? glora_split_stream_open(&stream, &split, &m->arch, &total) ||
                   glora_split_stream_next(stream, &ds)
             : cli_load_split(cfg, "data", m, &ds))) {
        rc = cli_fail();
        goto out;
    }
    if (ds.n == 0) {
        glora_error(GLORA_EINVAL, "data '%s': the split is empty", glora_config_string(cfg, "data.images"));
        rc = cli_fail();
        goto out;
    }
    double t0 = glora_now();
    size_t correct = 0, n = 0;
    for (;;) {
        size_t c;
        if (glora_evaluate(m, have_spec ? spec.cfg : NULL, &ds, (size_t)glora_config_int(cfg, "eval.batch"), &c)) {
            rc = cli_fail();
            goto out;
        }
        correct += c;
        n += ds.n;
        if (!stream) break;
        if (glora_split_stream_next(stream, &ds)) {
            rc = cli_fail();
            goto out;
        }
        if (ds.n == 0) break;
    }
    GLORA_ASSERT(!stream || n == total);
    ds.n = n;   /* for the report below; ds holds no pieces any more */
    double secs = glora_now() - t0;
    double acc = (double)correct / (double)ds.n;
    size_t params = have_spec ? spec.params : 0;
    if (cli_switch(&cmd, &args, "--json")) {
        printf("{\"accuracy\": %.6f, \"correct\": %zu, \"n\": %zu, \"params\": %zu, \"images_per_s\": %.1f, "
               "\"threads\": %d}\n", acc, correct, ds.n, params, (double)ds.n / secs, glora_max_threads());
    } else {
        printf("accuracy %.4f (%zu/%zu)", acc, correct, ds.n);
        if (have_spec) printf(", GLoRA parameters %zu", params);
        printf(", %.0f images/s on %d threads\n", (double)ds.n / secs, glora_max_threads());
    }
    rc = CLI_OK;
out:
    glora_spec_free(&spec);
    glora_dataset_free(&ds);
    glora_split_stream_close(stream);
    glora_vit_free(m);
    cli_args_free(&args);
    return rc;
}
