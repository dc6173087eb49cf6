/* The training commands: pretrain, finetune, supernet, retrain. Each reads a
 * YAML config (+ --set overrides), builds the model and the mask of what
 * trains, runs glora_train_run with a checkpoint after every epoch, shows
 * progress on stderr, logs one JSON line per epoch, and writes its output
 * file atomically. */
#include "cli/cli.h"
#include "cli/cli_model.h"
#include "cli/commands.h"

#include "glora/common.h"
#include "glora/config.h"
#include "glora/data.h"
#include "glora/fileio.h"
#include "glora/layer.h"
#include "glora/model.h"
#include "glora/parallel.h"
#include "glora/rng.h"
#include "glora/spec.h"
#include "glora/train.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- schemas ----------------------------------------------------------- */

static const char *const presets[] = {"vit-tiny-28", "vit-b16", NULL};
static const char *const ft_modes[] = {"full", "linear", NULL};
static const char *const init_modes[] = {"inherit", "fresh", NULL};
static const char *const choices_ab[] = {"lora_1", "lora_2", "lora_3", "lora_4", "lora_8", "lora_16",
                                         "lora_32", "lora_64", "vector", "scalar", "none", NULL};

#define TRAIN_KEYS(EPOCHS, BATCH, LR, WD, SEED, TRAINABLE, TRAINABLE_HELP)                           \
    GLORA_SPLIT_KEYS("data.train", "training"), GLORA_SPLIT_KSHOT_KEYS("data.train"),              \
    GLORA_SPLIT_KEYS("data.val", "validation (optional)"), GLORA_SPLIT_NORM_KEYS("data."),           \
    {"model.heads", GLORA_CFG_INT, "0", "attention heads if the file's metadata lacks them", 0, 1024, NULL}, \
    {"train.epochs", GLORA_CFG_INT, EPOCHS, "epochs", 1, 1e6, NULL},                                \
    {"train.batch", GLORA_CFG_INT, BATCH, "images per step (the last partial batch is dropped)", 1, 65536, NULL}, \
    {"train.lr", GLORA_CFG_NUMBER, LR, "peak learning rate", 0, 10, NULL},                         \
    {"train.shards", GLORA_CFG_INT, "2", "slices of each batch run in parallel, gradients summed in order (results depend on it, not on --threads)", 1, 64, NULL}, \
    {"train.warmup_epochs", GLORA_CFG_INT, "-1", "linear warm-up epochs (-1: round(epochs*10/500))", -1, 1e6, NULL}, \
    {"train.warmup_lr", GLORA_CFG_NUMBER, "1e-6", "learning rate at the start of the warm-up", 0, 10, NULL}, \
    {"train.min_lr", GLORA_CFG_NUMBER, "1e-5", "floor of the cosine schedule", 0, 10, NULL},       \
    {"train.weight_decay", GLORA_CFG_NUMBER, WD, "AdamW decoupled weight decay", 0, 10, NULL},      \
    {"train.beta1", GLORA_CFG_NUMBER, "0.9", "AdamW beta1", 0, 0.999999, NULL},                   \
    {"train.beta2", GLORA_CFG_NUMBER, "0.999", "AdamW beta2", 0, 0.99999999, NULL},               \
    {"train.eps", GLORA_CFG_NUMBER, "1e-8", "AdamW epsilon", 1e-30, 1, NULL},                     \
    {"train.clip_norm", GLORA_CFG_NUMBER, "0", "clip the global gradient norm to this (0: no clipping)", 0, 1e9, NULL}, \
    {"train.val_every", GLORA_CFG_INT, "1", "validate every N epochs and after the last (validation never changes training)", 1, 1e6, NULL, GLORA_CFG_NOT_IDENTITY}, \
    {"train.label_smoothing", GLORA_CFG_NUMBER, "0", "label smoothing of the cross-entropy", 0, 0.999, NULL}, \
    {"train.trainable", GLORA_CFG_STRING, TRAINABLE, TRAINABLE_HELP, 0, 0, NULL},                   \
    {"seed", GLORA_CFG_INT, SEED, "random seed (initialisation, shuffling, sampling)", 0, 0, NULL},   \
    {"output", GLORA_CFG_STRING, NULL, "file to write (safetensors)", 0, 0, NULL, GLORA_CFG_NOT_IDENTITY}, \
    {"run.checkpoint", GLORA_CFG_STRING, NULL, "checkpoint file (default: OUTPUT.ckpt)", 0, 0, NULL, GLORA_CFG_NOT_IDENTITY}, \
    {"run.metrics", GLORA_CFG_STRING, NULL, "JSON-lines metrics file (default: OUTPUT.metrics.jsonl)", 0, 0, NULL, GLORA_CFG_NOT_IDENTITY}, \
    {"run.stop_after", GLORA_CFG_INT, "0", "stop after this many epochs of this invocation (0: run to the end)", 0, 1e6, NULL, GLORA_CFG_NOT_IDENTITY}

#define TRAINABLE_HELP "what trains: comma-separated role words (backbone, head, adapter) or globs over tensor names"

static const glora_config_key_t pretrain_keys[] = {
    {"arch.preset", GLORA_CFG_ENUM, "vit-tiny-28", "architecture when model.backbone is not given", 0, 0, presets},
    {"arch.num_classes", GLORA_CFG_INT, "0", "classes of the head (0: the preset's)", 0, 1000000, NULL},
    {"model.backbone", GLORA_CFG_STRING, NULL, "initial weights (default: timm's initialisation of arch.preset)", 0, 0, NULL},
    TRAIN_KEYS("6", "128", "1e-3", "0.05", "0", "backbone,head", TRAINABLE_HELP),
};
static const glora_config_key_t finetune_keys[] = {
    {"finetune.mode", GLORA_CFG_ENUM, "full", "full (every weight) or linear (a linear probe: the head only)", 0, 0, ft_modes},
    {"model.backbone", GLORA_CFG_STRING, NULL, "pretrained backbone (a timm ViT)", 0, 0, NULL},
    {"model.num_classes", GLORA_CFG_INT, "0", "classes of the new head (0: from the training labels)", 0, 1000000, NULL},
    TRAIN_KEYS("100", "64", NULL, "1e-4", "42", NULL,
               TRAINABLE_HELP " (default: backbone,head for full, head for linear)"),
};
static const glora_config_key_t supernet_keys[] = {
    {"model.backbone", GLORA_CFG_STRING, NULL, "pretrained backbone (a timm ViT), frozen", 0, 0, NULL},
    {"model.num_classes", GLORA_CFG_INT, "0", "classes of the new head (0: from the training labels)", 0, 1000000, NULL},
    {"glora.rank", GLORA_CFG_INT, "4", "supernet rank R of the GLoRA tensors", 1, GLORA_MAX_RANK, NULL},
    {"space.A", GLORA_CFG_STRINGS, "[]", "choices of A (default: lora_R, vector, scalar, none)", 0, 0, choices_ab},
    {"space.B", GLORA_CFG_STRINGS, "[]", "choices of B (default: lora_R, vector, scalar, none)", 0, 0, choices_ab},
    {"space.C", GLORA_CFG_STRINGS, "[]", "choices of C (default: lora_R, vector, none)", 0, 0, choices_ab},
    {"space.D", GLORA_CFG_STRINGS, "[]", "choices of D (default: scalar, vector, none)", 0, 0, choices_ab},
    {"space.E", GLORA_CFG_STRINGS, "[]", "choices of E (default: scalar, vector, none)", 0, 0, choices_ab},
    TRAIN_KEYS("200", "64", "1e-3", "1e-4", "42", "adapter,head", TRAINABLE_HELP),
};
static const glora_config_key_t retrain_keys[] = {
    {"subnet", GLORA_CFG_STRING, NULL, "subnet spec (JSON) to retrain", 0, 0, NULL},
    {"retrain.init", GLORA_CFG_ENUM, "inherit", "inherit (start from the supernet's values) or fresh (GLoRA init, zero head)", 0, 0, init_modes},
    {"model.backbone", GLORA_CFG_STRING, NULL, "pretrained backbone (a timm ViT), frozen", 0, 0, NULL},
    {"model.adapter", GLORA_CFG_STRING, NULL, "trained supernet (needed by retrain.init=inherit)", 0, 0, NULL},
    {"model.num_classes", GLORA_CFG_INT, "0", "classes of a fresh head (0: from the training labels)", 0, 1000000, NULL},
    TRAIN_KEYS("100", "64", "1e-3", "1e-4", "42", "head",
               TRAINABLE_HELP ", besides the GLoRA tensors the subnet uses"),
};

static const glora_config_schema_t pretrain_schema = GLORA_CONFIG_SCHEMA(pretrain_keys);
static const glora_config_schema_t finetune_schema = GLORA_CONFIG_SCHEMA(finetune_keys);
static const glora_config_schema_t supernet_schema = GLORA_CONFIG_SCHEMA(supernet_keys);
static const glora_config_schema_t retrain_schema = GLORA_CONFIG_SCHEMA(retrain_keys);

#define COMMON_FLAGS                                                                      \
    {"--train-images", "data.train.images", "FILE", "IDX training images"},              \
    {"--train-labels", "data.train.labels", "FILE", "IDX training labels"},              \
    {"--val-images", "data.val.images", "FILE", "IDX validation images"},                \
    {"--val-labels", "data.val.labels", "FILE", "IDX validation labels"},                \
    {"--epochs", "train.epochs", "N", "epochs"},                                         \
    {"--batch", "train.batch", "N", "batch size"},                                       \
    {"--lr", "train.lr", "LR", "peak learning rate"},                                    \
    {"--seed", "seed", "N", "random seed"},                                              \
    {"-o", "output", "FILE", "output file"},                                             \
    {"--output", "output", "FILE", "output file"},                                       \
    {"--stop-after", "run.stop_after", "N", "stop after N epochs (resume later with --resume)"}, \
    {"--resume", NULL, NULL, "continue from the checkpoint when there is one"}

static const cli_flag_t pretrain_flags[] = {
    {"--preset", "arch.preset", "NAME", "vit-tiny-28 or vit-b16"},
    {"--model", "model.backbone", "FILE", "initial weights (e.g. from glora init)"},
    COMMON_FLAGS,
};
static const cli_flag_t finetune_flags[] = {
    {"--model", "model.backbone", "FILE", "pretrained backbone"},
    {"--mode", "finetune.mode", "MODE", "full or linear"},
    COMMON_FLAGS,
};
static const cli_flag_t supernet_flags[] = {
    {"--model", "model.backbone", "FILE", "pretrained backbone"},
    {"--rank", "glora.rank", "R", "supernet rank"},
    COMMON_FLAGS,
};
static const cli_flag_t retrain_flags[] = {
    {"--model", "model.backbone", "FILE", "pretrained backbone"},
    {"--adapter", "model.adapter", "FILE", "trained supernet"},
    {"--subnet", "subnet", "SPEC", "subnet spec (JSON), e.g. from glora search"},
    {"--init", "retrain.init", "MODE", "inherit or fresh"},
    COMMON_FLAGS,
};

#define NFLAGS(f) (sizeof(f) / sizeof((f)[0]))

static const cli_cmd_t pretrain_cmd = {
    .name = "pretrain",
    .synopsis = "[CONFIG] [options] -o OUT",
    .summary = "Trains a ViT from scratch, every weight (timm's initialisation, AdamW, cosine\n"
               "schedule). Makes the default backbone vit-tiny-28 on MNIST:\n"
               "  glora pretrain configs/pretrain-mnist.yaml -o vit-tiny-28.safetensors",
    .schema = &pretrain_schema, .flags = pretrain_flags, .n_flags = NFLAGS(pretrain_flags),
};
static const cli_cmd_t finetune_cmd = {
    .name = "finetune",
    .synopsis = "[CONFIG] [options] -o OUT",
    .summary = "Baselines on a downstream task with a new zero-initialised head: full\n"
               "fine-tuning (finetune.mode=full, lr 1e-4) or a linear probe (linear, lr 1e-3).\n"
               "  glora finetune configs/finetune-fashion1k.yaml -o full.safetensors",
    .schema = &finetune_schema, .flags = finetune_flags, .n_flags = NFLAGS(finetune_flags),
};
static const cli_cmd_t supernet_cmd = {
    .name = "supernet",
    .synopsis = "[CONFIG] [options] -o OUT",
    .summary = "Trains a GLoRA supernet on a frozen backbone: the GLoRA tensors of every\n"
               "adapted layer and a new zero head; every step every layer draws its\n"
               "configuration uniformly from the search space. Writes the trainable\n"
               "tensors with the backbone's sha256 (glora.kind=supernet).\n"
               "  glora supernet configs/supernet-fashion1k.yaml -o supernet.safetensors",
    .schema = &supernet_schema, .flags = supernet_flags, .n_flags = NFLAGS(supernet_flags),
};
static const cli_cmd_t retrain_cmd = {
    .name = "retrain",
    .synopsis = "[CONFIG] --subnet SPEC [options] -o OUT",
    .summary = "Trains only the GLoRA components a subnet spec chose (and the head), from\n"
               "the supernet's values (retrain.init=inherit) or from a fresh initialisation\n"
               "(fresh). Writes an adapter file (glora.kind=adapter, glora.subnet = the\n"
               "spec) that glora eval and glora merge accept.\n"
               "  glora retrain configs/retrain-fashion1k.yaml --subnet best.json -o adapter.safetensors",
    .schema = &retrain_schema, .flags = retrain_flags, .n_flags = NFLAGS(retrain_flags),
};

/* ---- shared pieces ----------------------------------------------------- */

/* Classes of a new head: model.num_classes, else from the training labels. */
static int head_classes(const glora_config_t *cfg, const glora_dataset_t *train) {
    int64_t n = glora_config_int(cfg, "model.num_classes");
    if (n > 0) return (int)n;
    int mx = 0;
    for (size_t i = 0; i < train->n; i++)
        if (train->y[i] + 1 > mx) mx = train->y[i] + 1;
    return train->num_classes > mx ? train->num_classes : mx;
}

/* A model of the backbone's architecture with `classes` classes and GLoRA
 * rank `rank`: backbone tensors copied, head zero, adapters zero. */
static int rebuild(glora_vit_t **out, const glora_vit_t *bb, int classes, int rank) {
    glora_vit_arch_t a = bb->arch;
    a.num_classes = classes;
    glora_vit_t *m;
    int rc = glora_vit_create(&m, &a, rank);
    if (rc) return rc;
    for (int i = 0; i < m->n_params; i++) {
        const glora_param_t *p = &m->params[i];
        if (p->role == GLORA_ROLE_BACKBONE) {
            const glora_param_t *q = glora_vit_param(bb, p->name);
            GLORA_ASSERT(q && q->numel == p->numel);
            memcpy(m->mem + p->offset, bb->mem + q->offset, p->numel * sizeof(float));
        } else {
            memset(m->mem + p->offset, 0, p->numel * sizeof(float));
        }
    }
    memcpy(m->backbone_sha256, bb->backbone_sha256, sizeof m->backbone_sha256);
    *out = m;
    return GLORA_OK;
}

/* ---- progress and metrics ---------------------------------------------- */

typedef struct {
    int tty;
    char header[256]; /* printed with the first report: none before an error */
    FILE *metrics;
    double last_print;
    double t_start;
    size_t steps_at_start; /* steps already done before this invocation */
} progress_t;

static void fmt_eta(double s, char buf[32]) {
    if (s < 0) s = 0;
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(buf, 32, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else snprintf(buf, 32, "%ld:%02ld", t / 60, t % 60);
}

static double eta(const glora_train_progress_t *p) {
    if (p->step == 0 || p->elapsed <= 0) return 0;
    double per_step = p->elapsed / (double)p->step;
    double left = (double)(p->steps - p->step) + (double)(p->epochs - p->epoch - 1) * (double)p->steps;
    return left * per_step;
}

static void print_header(progress_t *pg) {
    if (!pg->header[0]) return;
    fprintf(stderr, "%s\n", pg->header);
    pg->header[0] = '\0';
}

static void on_step(const glora_train_progress_t *p, void *ctx) {
    progress_t *pg = ctx;
    print_header(pg);
    if (!pg->tty) return;
    double now = glora_now();
    if (now - pg->last_print < 0.25 && p->step != p->steps) return;
    pg->last_print = now;
    char e[32];
    fmt_eta(eta(p), e);
    fprintf(stderr, "\r\033[Kepoch %d/%d  %zu/%zu  loss %.4f  acc %.2f%%  lr %.3g  %.0f img/s  ETA %s",
            p->epoch + 1, p->epochs, p->step, p->steps, p->loss, 100 * p->accuracy, p->lr,
            p->images_per_s, e);
    fflush(stderr);
}

static void on_epoch(const glora_train_progress_t *p, void *ctx) {
    progress_t *pg = ctx;
    print_header(pg);
    char e[32], val[48] = "";
    fmt_eta(eta(p), e);
    if (p->has_val) snprintf(val, sizeof val, "  val %.2f%%", 100 * p->val_accuracy);
    fprintf(stderr, "%sepoch %d/%d  loss %.4f  acc %.2f%%%s  lr %.3g  %.0f img/s  %.1fs  ETA %s\n",
            pg->tty ? "\r\033[K" : "", p->epoch + 1, p->epochs, p->loss, 100 * p->accuracy, val, p->lr,
            p->images_per_s, p->elapsed, e);
    if (pg->metrics) {
        fprintf(pg->metrics,
                "{\"epoch\": %d, \"epochs\": %d, \"lr\": %.9g, \"loss\": %.9g, \"train_accuracy\": %.6f, ",
                p->epoch + 1, p->epochs, p->lr, p->loss, p->accuracy);
        if (p->has_val) fprintf(pg->metrics, "\"val_accuracy\": %.6f, ", p->val_accuracy);
        fprintf(pg->metrics, "\"images_per_s\": %.1f, \"seconds\": %.3f, \"grad_norm\": %.6g}\n",
                p->images_per_s, p->elapsed, p->grad_norm);
        fflush(pg->metrics);
    }
}

/* ---- the shared driver ------------------------------------------------- */

typedef enum { CMD_PRETRAIN, CMD_FINETUNE, CMD_SUPERNET, CMD_RETRAIN } which_t;

/* Fills a space from the space.* keys (an empty list: the official options
 * at the rank). */
static int space_from_config(const glora_config_t *cfg, int rank, glora_space_t *sp) {
    glora_space_official(sp, rank);
    static const char *const keys[GLORA_NTENSORS] = {"space.A", "space.B", "space.C", "space.D", "space.E"};
    for (int t = 0; t < GLORA_NTENSORS; t++) {
        size_t n;
        const char *const *v = glora_config_strings(cfg, keys[t], &n);
        if (n == 0) continue;
        if (n > GLORA_SPACE_MAX) return glora_config_error(cfg, keys[t], "has more than %d choices", GLORA_SPACE_MAX);
        for (size_t k = 0; k < n; k++) {
            if (glora_choice_parse(v[k], t, rank, &sp->opt[t][k]))
                return glora_config_error(cfg, keys[t], "%s", glora_errmsg());
            for (size_t j = 0; j < k; j++)
                if (glora_choice_eq(sp->opt[t][j], sp->opt[t][k]))
                    return glora_config_error(cfg, keys[t], "lists '%s' twice", v[k]);
        }
        sp->n[t] = (int)n;
    }
    return GLORA_OK;
}

static char *path_with(const char *base, const char *suffix) {
    size_t n = strlen(base) + strlen(suffix) + 1;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s%s", base, suffix);
    return p;
}

static int run_command(which_t which, const cli_cmd_t *cmd, int argc, char **argv) {
    cli_args_t args;
    int rc = cli_parse(cmd, argc, argv, &args);
    if (rc) return rc < 0 ? CLI_OK : rc;
    const glora_config_t *cfg = args.cfg;
    glora_vit_t *m = NULL, *bb = NULL;
    glora_dataset_t train = {0}, val = {0};
    glora_spec_t spec = {0};
    unsigned char *mask = NULL;
    char *ckpt = NULL, *metrics_path = NULL, *spec_json = NULL;
    FILE *metrics = NULL;
    glora_space_t space;
    int status = CLI_FAIL;
    const char *output = glora_config_string(cfg, "output");
    const char *backbone_path = glora_config_string(cfg, "model.backbone");
    const int resume = cli_switch(cmd, &args, "--resume");
    char bb_sha[65] = "";

    if (!output || !output[0]) {
        status = cli_usage_error(cmd->name, "no output file: give -o FILE (or output: in the config)");
        goto out;
    }
    if (which != CMD_PRETRAIN && (rc = glora_config_require(cfg, "model.backbone"))) goto fail;
    if (which == CMD_RETRAIN && (rc = glora_config_require(cfg, "subnet"))) goto fail;
    glora_split_t train_split;
    if ((rc = cli_load_split(cfg, "data.train", NULL, &train))) goto fail;
    glora_split_from_config(&train_split, cfg, "data.train", "data.");
    if (train.n < (size_t)glora_config_int(cfg, "train.batch")) {
        rc = glora_config_error(cfg, "train.batch", "is %lld, more than the %zu training examples",
                                (long long)glora_config_int(cfg, "train.batch"), train.n);
        glora_error_hint("lower train.batch (--batch): the last partial batch is dropped");
        goto fail;
    }
    if (backbone_path && backbone_path[0] && (rc = glora_sha256_file(backbone_path, bb_sha))) goto fail;

    /* The model and what trains. */
    glora_rng_t init_rng;
    glora_rng_seed(&init_rng, (uint64_t)glora_config_int(cfg, "seed"));
    glora_rng_fork(&init_rng, 0x696e6974 /* "init" */, &init_rng);
    switch (which) {
    case CMD_PRETRAIN:
        if (backbone_path && backbone_path[0]) {
            if ((rc = glora_vit_load(&m, backbone_path, NULL, (int)glora_config_int(cfg, "model.heads")))) goto fail;
        } else {
            glora_vit_arch_t a = cli_arch_preset(glora_config_string(cfg, "arch.preset"));
            if (glora_config_int(cfg, "arch.num_classes") > 0) a.num_classes = (int)glora_config_int(cfg, "arch.num_classes");
            if ((rc = glora_vit_create(&m, &a, 0))) goto fail;
            glora_train_init_vit(m, &init_rng);
        }
        break;
    case CMD_FINETUNE:
    case CMD_SUPERNET: {
        if ((rc = glora_vit_load(&bb, backbone_path, NULL, (int)glora_config_int(cfg, "model.heads")))) goto fail;
        int rank = which == CMD_SUPERNET ? (int)glora_config_int(cfg, "glora.rank") : 0;
        if ((rc = rebuild(&m, bb, head_classes(cfg, &train), rank))) goto fail;
        if (which == CMD_SUPERNET) {
            if ((rc = space_from_config(cfg, rank, &space))) goto fail;
            glora_train_init_adapters(m, &init_rng);
        }
        break;
    }
    case CMD_RETRAIN: {
        const char *adapter = glora_config_string(cfg, "model.adapter");
        int inherit = strcmp(glora_config_string(cfg, "retrain.init"), "inherit") == 0;
        if ((rc = glora_vit_load(&bb, backbone_path, NULL, (int)glora_config_int(cfg, "model.heads")))) goto fail;
        if ((rc = glora_spec_read(&spec, glora_config_string(cfg, "subnet")))) goto fail;
        if (inherit) {
            if (!adapter || !adapter[0]) {
                rc = glora_config_error(cfg, "model.adapter", "is required by retrain.init=inherit (the supernet to start from)");
                goto fail;
            }
            if ((rc = glora_vit_load(&m, backbone_path, adapter, (int)glora_config_int(cfg, "model.heads")))) goto fail;
            if (m->rank == 0) {
                rc = glora_error(GLORA_ESTATE, "adapter '%s': holds no GLoRA tensors", adapter);
                goto fail;
            }
        } else {
            if ((rc = rebuild(&m, bb, head_classes(cfg, &train), spec.rank))) goto fail;
            glora_train_init_adapters(m, &init_rng);
        }
        if ((rc = glora_spec_check(&spec, m, glora_config_string(cfg, "subnet")))) goto fail;
        glora_train_zero_unused(m, spec.cfg);
        break;
    }
    }
    if ((rc = glora_dataset_fit(&train, &train_split, &m->arch))) goto fail; /* labels vs the head */
    if (glora_config_string(cfg, "data.val.images") && (rc = cli_load_split(cfg, "data.val", m, &val))) goto fail;

    mask = calloc((size_t)m->n_params, 1);
    if (!mask) { rc = glora_error(GLORA_ENOMEM, "model: out of memory"); goto fail; }
    const char *trainable = glora_config_string(cfg, "train.trainable");
    if (!trainable && which == CMD_FINETUNE)
        trainable = strcmp(glora_config_string(cfg, "finetune.mode"), "linear") == 0 ? "head" : "backbone,head";
    if (trainable && trainable[0] && (rc = glora_train_select(m, trainable, mask))) {
        rc = glora_config_error(cfg, "train.trainable", "%s", glora_errmsg());
        goto fail;
    }
    if (which == CMD_RETRAIN) glora_train_mask_subnet(m, spec.cfg, mask);

    /* Options. */
    glora_train_opts_t o = {0};
    o.epochs = (int)glora_config_int(cfg, "train.epochs");
    o.batch = (size_t)glora_config_int(cfg, "train.batch");
    o.shards = (int)glora_config_int(cfg, "train.shards");
    double lr = glora_config_is_set(cfg, "train.lr") || which != CMD_FINETUNE
                    ? glora_config_number(cfg, "train.lr")
                    : strcmp(glora_config_string(cfg, "finetune.mode"), "linear") == 0 ? 1e-3 : 1e-4;
    int warm = (int)glora_config_int(cfg, "train.warmup_epochs");
    o.sched = (glora_sched_t){.lr = lr, .warmup_start = glora_config_number(cfg, "train.warmup_lr"),
                              .floor = glora_config_number(cfg, "train.min_lr"),
                              .warmup = warm >= 0 ? warm : glora_sched_default_warmup(o.epochs)};
    o.adamw = (glora_adamw_cfg_t){glora_config_number(cfg, "train.beta1"), glora_config_number(cfg, "train.beta2"),
                                  glora_config_number(cfg, "train.eps"), glora_config_number(cfg, "train.weight_decay")};
    o.clip_norm = glora_config_number(cfg, "train.clip_norm");
    o.val_every = (int)glora_config_int(cfg, "train.val_every");
    o.label_smoothing = (float)glora_config_number(cfg, "train.label_smoothing");
    o.seed = (uint64_t)glora_config_int(cfg, "seed");
    o.space = which == CMD_SUPERNET ? &space : NULL;
    o.fixed_cfg = which == CMD_RETRAIN ? spec.cfg : NULL;
    o.stop_after = (int)glora_config_int(cfg, "run.stop_after");
    const char *ck = glora_config_string(cfg, "run.checkpoint");
    const char *mp = glora_config_string(cfg, "run.metrics");
    ckpt = ck && ck[0] ? strdup(ck) : path_with(output, ".ckpt");
    metrics_path = mp && mp[0] ? strdup(mp) : path_with(output, ".metrics.jsonl");
    if (!ckpt || !metrics_path) { rc = glora_error(GLORA_ENOMEM, "run: out of memory"); goto fail; }
    o.checkpoint = ckpt;
    o.resume = resume;
    char hash[65];
    if ((rc = glora_config_hash(cfg, hash))) goto fail;
    o.run_hash = hash;
    int resuming = resume && access(ckpt, F_OK) == 0;
    metrics = fopen(metrics_path, resuming ? "a" : "w");
    if (!metrics) {
        rc = glora_error(GLORA_EIO, "metrics '%s': cannot open for writing", metrics_path);
        goto fail;
    }
    if (!resume && access(ckpt, F_OK) == 0)
        fprintf(stderr, "note: starting over; the checkpoint '%s' will be replaced (--resume continues it)\n", ckpt);
    progress_t pg = {.tty = cli_is_tty(), .metrics = metrics, .t_start = glora_now()};
    o.on_step = on_step;
    o.on_epoch = on_epoch;
    o.cb_ctx = &pg;

    size_t n_train = 0;
    for (int i = 0; i < m->n_params; i++) n_train += mask[i] ? m->params[i].numel : 0;
    char h1[32], h2[32];
    snprintf(pg.header, sizeof pg.header,
            "%s: %zu training images, %zu validation, %s of %s parameters train, %d epochs of %zu steps, %d threads",
            cmd->name, train.n, val.n, cli_human((double)n_train, h1), cli_human((double)m->n_floats, h2), o.epochs,
            train.n / (o.batch ? o.batch : 1), glora_max_threads());

    glora_train_result_t res;
    if ((rc = glora_train_run(m, mask, &o, &train, val.n ? &val : NULL, &res))) goto fail;
    if (res.start_epoch > 0) fprintf(stderr, "resumed after epoch %d\n", res.start_epoch);
    if (res.start_epoch + res.epochs_run < o.epochs) {
        fprintf(stderr, "stopped after epoch %d of %d; the checkpoint is '%s' (continue with --resume)\n",
                res.start_epoch + res.epochs_run, o.epochs, ckpt);
        status = CLI_OK;
        goto out;
    }

    /* The output file. */
    switch (which) {
    case CMD_PRETRAIN:
    case CMD_FINETUNE: {
        const char *meta[] = {"glora.kind", "backbone"};
        rc = glora_vit_save(m, output, GLORA_ROLE_BACKBONE | GLORA_ROLE_HEAD, meta, 1);
        break;
    }
    case CMD_SUPERNET: {
        const char *meta[] = {"glora.kind", "supernet", "glora.backbone_sha256", bb_sha};
        rc = glora_vit_save(m, output, GLORA_ROLE_ADAPTER | GLORA_ROLE_HEAD, meta, 2);
        break;
    }
    case CMD_RETRAIN: {
        if ((rc = glora_spec_to_json(&spec, &spec_json))) break;
        const char *meta[] = {"glora.kind", "adapter", "glora.backbone_sha256", bb_sha, "glora.subnet", spec_json};
        rc = glora_vit_save(m, output, GLORA_ROLE_ADAPTER | GLORA_ROLE_HEAD, meta, 3);
        break;
    }
    }
    if (rc) goto fail;
    char vbuf[48] = "";
    if (res.has_val) snprintf(vbuf, sizeof vbuf, ", validation %.2f%%", 100 * res.val_accuracy);
    fprintf(stderr, "wrote '%s' (train accuracy %.2f%%%s)\n", output, 100 * res.accuracy, vbuf);
    status = CLI_OK;
    goto out;
fail:
    status = cli_fail();
out:
    if (metrics) fclose(metrics);
    free(mask);
    free(ckpt);
    free(metrics_path);
    free(spec_json);
    glora_spec_free(&spec);
    glora_dataset_free(&train);
    glora_dataset_free(&val);
    glora_vit_free(m);
    glora_vit_free(bb);
    cli_args_free(&args);
    return status;
}

int glora_cmd_pretrain(int argc, char **argv) { return run_command(CMD_PRETRAIN, &pretrain_cmd, argc, argv); }
int glora_cmd_finetune(int argc, char **argv) { return run_command(CMD_FINETUNE, &finetune_cmd, argc, argv); }
int glora_cmd_supernet(int argc, char **argv) { return run_command(CMD_SUPERNET, &supernet_cmd, argc, argv); }
int glora_cmd_retrain(int argc, char **argv) { return run_command(CMD_RETRAIN, &retrain_cmd, argc, argv); }
