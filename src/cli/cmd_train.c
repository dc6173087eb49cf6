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
#include "glora/pipeline.h"
#include "glora/rng.h"
#include "glora/search.h"
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
    {"train.shards", GLORA_CFG_INT, "2", "slices of each batch, up to --threads of them in flight (and in memory) at once, gradients summed in order (results depend on it, not on --threads)", 1, 64, NULL}, \
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

/* Fills a space from the space.* keys (an empty list: the official options
 * at the rank). */
static int space_from_config(const glora_config_t *cfg, int rank, glora_space_t *sp) {
    static const char *const keys[GLORA_NTENSORS] = {"space.A", "space.B", "space.C", "space.D", "space.E"};
    const char *const *lists[GLORA_NTENSORS];
    size_t n[GLORA_NTENSORS];
    for (int t = 0; t < GLORA_NTENSORS; t++) lists[t] = glora_config_strings(cfg, keys[t], &n[t]);
    return glora_space_build(sp, lists, n, rank, "space");
}

/* The model training starts from: pretrain from scratch or from given
 * weights; finetune a copy of the backbone with a new head; supernet a
 * supernet built on it; retrain the supernet (inherit) or a fresh one. */
static int start_model(glora_recipe_kind_t kind, const glora_config_t *cfg, const glora_dataset_t *train,
                       glora_spec_t *spec, glora_vit_t **m) {
    const char *bb_path = glora_config_string(cfg, "model.backbone");
    const int heads = (int)glora_config_int(cfg, "model.heads");
    const uint64_t seed = (uint64_t)glora_config_int(cfg, "seed");
    if (kind == GLORA_RECIPE_PRETRAIN) {
        if (bb_path && bb_path[0]) return glora_vit_load(m, bb_path, NULL, heads);
        glora_vit_arch_t a = cli_arch_preset(glora_config_string(cfg, "arch.preset"));
        if (glora_config_int(cfg, "arch.num_classes") > 0) a.num_classes = (int)glora_config_int(cfg, "arch.num_classes");
        return glora_backbone_create(m, &a, seed);
    }
    glora_vit_t *bb = NULL;
    int rc = glora_vit_load(&bb, bb_path, NULL, heads);
    if (!rc && kind == GLORA_RECIPE_FINETUNE) rc = glora_backbone_adapt(m, bb, head_classes(cfg, train), 0);
    if (!rc && kind == GLORA_RECIPE_SUPERNET)
        rc = glora_supernet_build(m, bb, head_classes(cfg, train), (int)glora_config_int(cfg, "glora.rank"), seed);
    if (!rc && kind == GLORA_RECIPE_RETRAIN) {
        const char *adapter = glora_config_string(cfg, "model.adapter"), *subnet = glora_config_string(cfg, "subnet");
        if ((rc = glora_spec_read(spec, subnet))) goto done;
        if (strcmp(glora_config_string(cfg, "retrain.init"), "inherit") != 0) {
            rc = glora_supernet_build(m, bb, head_classes(cfg, train), spec->rank, seed);
        } else if (!adapter || !adapter[0]) {
            rc = glora_config_error(cfg, "model.adapter", "is required by retrain.init=inherit (the supernet to start from)");
        } else if (!(rc = glora_vit_load(m, bb_path, adapter, heads)) && (*m)->rank == 0) {
            rc = glora_error(GLORA_ESTATE, "adapter '%s': holds no GLoRA tensors", adapter);
        }
        if (!rc) rc = glora_spec_check(spec, *m, subnet);
    }
done:
    glora_vit_free(bb);
    return rc;
}

/* The options of glora_train_run from the train.* keys. */
static void read_opts(glora_recipe_kind_t kind, const glora_config_t *cfg, glora_train_opts_t *o) {
    memset(o, 0, sizeof *o);
    o->epochs = (int)glora_config_int(cfg, "train.epochs");
    o->batch = (size_t)glora_config_int(cfg, "train.batch");
    o->shards = (int)glora_config_int(cfg, "train.shards");
    double lr = glora_config_is_set(cfg, "train.lr") || kind != GLORA_RECIPE_FINETUNE
                    ? glora_config_number(cfg, "train.lr")
                    : strcmp(glora_config_string(cfg, "finetune.mode"), "linear") == 0 ? 1e-3 : 1e-4;
    int warm = (int)glora_config_int(cfg, "train.warmup_epochs");
    o->sched = (glora_sched_t){.lr = lr, .warmup_start = glora_config_number(cfg, "train.warmup_lr"),
                               .floor = glora_config_number(cfg, "train.min_lr"),
                               .warmup = warm >= 0 ? warm : glora_sched_default_warmup(o->epochs)};
    o->adamw = (glora_adamw_cfg_t){glora_config_number(cfg, "train.beta1"), glora_config_number(cfg, "train.beta2"),
                                   glora_config_number(cfg, "train.eps"), glora_config_number(cfg, "train.weight_decay")};
    o->clip_norm = glora_config_number(cfg, "train.clip_norm");
    o->val_every = (int)glora_config_int(cfg, "train.val_every");
    o->label_smoothing = (float)glora_config_number(cfg, "train.label_smoothing");
    o->seed = (uint64_t)glora_config_int(cfg, "seed");
    o->stop_after = (int)glora_config_int(cfg, "run.stop_after");
}

static char *path_with(const char *base, const char *suffix) {
    size_t n = strlen(base) + strlen(suffix) + 1;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s%s", base, suffix);
    return p;
}

/* Everything a training command holds, freed by one call. */
typedef struct {
    glora_vit_t *m;
    glora_dataset_t train, val;
    glora_spec_t spec;
    glora_space_t space;
    unsigned char *mask;
    char *ckpt, *metrics_path;
    FILE *metrics;
    char bb_sha[65], hash[65];
} job_t;

static void job_free(job_t *j) {
    if (j->metrics) fclose(j->metrics);
    free(j->mask);
    free(j->ckpt);
    free(j->metrics_path);
    glora_spec_free(&j->spec);
    glora_dataset_free(&j->train);
    glora_dataset_free(&j->val);
    glora_vit_free(j->m);
}

/* Data, model, recipe and what trains, from the config. */
static int prepare(glora_recipe_kind_t kind, const glora_config_t *cfg, job_t *j, glora_recipe_t *r) {
    const char *bb_path = glora_config_string(cfg, "model.backbone");
    glora_split_t ts;
    int rc = GLORA_OK;
    if (kind != GLORA_RECIPE_PRETRAIN && (rc = glora_config_require(cfg, "model.backbone"))) return rc;
    if (kind == GLORA_RECIPE_RETRAIN && (rc = glora_config_require(cfg, "subnet"))) return rc;
    if ((rc = cli_load_split(cfg, "data.train", NULL, &j->train))) return rc;
    glora_split_from_config(&ts, cfg, "data.train", "data.");
    if (j->train.n < (size_t)glora_config_int(cfg, "train.batch")) {
        rc = glora_config_error(cfg, "train.batch", "is %lld, more than the %zu training examples",
                                (long long)glora_config_int(cfg, "train.batch"), j->train.n);
        glora_error_hint("lower train.batch (--batch): the last partial batch is dropped");
        return rc;
    }
    if (bb_path && bb_path[0] && (rc = glora_sha256_file(bb_path, j->bb_sha))) return rc;
    if ((rc = start_model(kind, cfg, &j->train, &j->spec, &j->m))) return rc;
    if (kind == GLORA_RECIPE_SUPERNET && (rc = space_from_config(cfg, j->m->rank, &j->space))) return rc;
    if ((rc = glora_dataset_fit(&j->train, &ts, &j->m->arch))) return rc; /* labels vs the head */
    glora_split_t vs;
    if ((rc = glora_split_from_config(&vs, cfg, "data.val", "data."))) return rc;
    if (glora_split_given(&vs) && (rc = cli_load_split(cfg, "data.val", j->m, &j->val))) return rc;
    const char *trainable = glora_config_string(cfg, "train.trainable");
    if (!trainable && kind == GLORA_RECIPE_FINETUNE)
        trainable = strcmp(glora_config_string(cfg, "finetune.mode"), "linear") == 0 ? "head" : "backbone,head";
    *r = (glora_recipe_t){.kind = kind, .trainable = trainable ? trainable : "", .space = &j->space,
                          .subnet = &j->spec, .backbone_sha256 = j->bb_sha};
    if (!(j->mask = malloc((size_t)j->m->n_params))) return glora_error(GLORA_ENOMEM, "model: out of memory");
    if (glora_recipe_mask(j->m, r, j->mask)) return glora_config_error(cfg, "train.trainable", "%s", glora_errmsg());
    return GLORA_OK;
}

/* Checkpoint and metrics files, and the progress printer. */
static int open_files(const glora_config_t *cfg, int resume, job_t *j, glora_train_opts_t *o) {
    const char *output = glora_config_string(cfg, "output");
    const char *ck = glora_config_string(cfg, "run.checkpoint"), *mp = glora_config_string(cfg, "run.metrics");
    j->ckpt = ck && ck[0] ? strdup(ck) : path_with(output, ".ckpt");
    j->metrics_path = mp && mp[0] ? strdup(mp) : path_with(output, ".metrics.jsonl");
    if (!j->ckpt || !j->metrics_path) return glora_error(GLORA_ENOMEM, "run: out of memory");
    int rc = glora_config_hash(cfg, j->hash);
    if (rc) return rc;
    o->checkpoint = j->ckpt;
    o->resume = resume;
    o->run_hash = j->hash;
    int resuming = resume && access(j->ckpt, F_OK) == 0;
    if (!(j->metrics = fopen(j->metrics_path, resuming ? "a" : "w")))
        return glora_error(GLORA_EIO, "metrics '%s': cannot open for writing", j->metrics_path);
    if (!resume && access(j->ckpt, F_OK) == 0)
        fprintf(stderr, "note: starting over; the checkpoint '%s' will be replaced (--resume continues it)\n", j->ckpt);
    return GLORA_OK;
}

/* A training command on a loaded config: prepare, train, report. */
static int train_stage(glora_recipe_kind_t kind, const char *name, const glora_config_t *cfg, int resume) {
    const char *output = glora_config_string(cfg, "output");
    if (!output || !output[0]) return cli_usage_error(name, "no output file: give -o FILE (or output: in the config)");
    job_t j = {0};
    glora_recipe_t recipe;
    glora_train_opts_t o;
    glora_train_result_t res;
    read_opts(kind, cfg, &o);
    int rc = prepare(kind, cfg, &j, &recipe);
    if (!rc) rc = open_files(cfg, resume, &j, &o);
    if (rc) {
        job_free(&j);
        return cli_fail();
    }
    progress_t pg = {.tty = cli_is_tty(), .metrics = j.metrics, .t_start = glora_now()};
    o.on_step = on_step;
    o.on_epoch = on_epoch;
    o.cb_ctx = &pg;
    size_t n_train = 0;
    for (int i = 0; i < j.m->n_params; i++) n_train += j.mask[i] ? j.m->params[i].numel : 0;
    char h1[32], h2[32];
    snprintf(pg.header, sizeof pg.header,
             "%s: %zu training images, %zu validation, %s of %s parameters train, %d epochs of %zu steps, %d threads",
             name, j.train.n, j.val.n, cli_human((double)n_train, h1), cli_human((double)j.m->n_floats, h2),
             o.epochs, j.train.n / (o.batch ? o.batch : 1), glora_max_threads());
    rc = glora_train_recipe(j.m, &recipe, &o, &j.train, j.val.n ? &j.val : NULL, output, &res);
    if (!rc && res.start_epoch > 0) fprintf(stderr, "resumed after epoch %d\n", res.start_epoch);
    if (!rc && res.start_epoch + res.epochs_run < o.epochs) {
        fprintf(stderr, "stopped after epoch %d of %d; the checkpoint is '%s' (continue with --resume)\n",
                res.start_epoch + res.epochs_run, o.epochs, j.ckpt);
    } else if (!rc) {
        char vbuf[48] = "";
        if (res.has_val) snprintf(vbuf, sizeof vbuf, ", validation %.2f%%", 100 * res.val_accuracy);
        fprintf(stderr, "wrote '%s' (train accuracy %.2f%%%s)\n", output, 100 * res.accuracy, vbuf);
    }
    job_free(&j);
    return rc ? cli_fail() : CLI_OK;
}

static int run_pretrain(const glora_config_t *c, int resume) { return train_stage(GLORA_RECIPE_PRETRAIN, "pretrain", c, resume); }
static int run_finetune(const glora_config_t *c, int resume) { return train_stage(GLORA_RECIPE_FINETUNE, "finetune", c, resume); }
static int run_supernet(const glora_config_t *c, int resume) { return train_stage(GLORA_RECIPE_SUPERNET, "supernet", c, resume); }
static int run_retrain(const glora_config_t *c, int resume) { return train_stage(GLORA_RECIPE_RETRAIN, "retrain", c, resume); }

const cli_stage_t cli_stage_pretrain = {&pretrain_cmd, run_pretrain};
const cli_stage_t cli_stage_finetune = {&finetune_cmd, run_finetune};
const cli_stage_t cli_stage_supernet = {&supernet_cmd, run_supernet};
const cli_stage_t cli_stage_retrain = {&retrain_cmd, run_retrain};

int glora_cmd_pretrain(int argc, char **argv) { return cli_run_stage(&cli_stage_pretrain, argc, argv); }
int glora_cmd_finetune(int argc, char **argv) { return cli_run_stage(&cli_stage_finetune, argc, argv); }
int glora_cmd_supernet(int argc, char **argv) { return cli_run_stage(&cli_stage_supernet, argc, argv); }
int glora_cmd_retrain(int argc, char **argv) { return cli_run_stage(&cli_stage_retrain, argc, argv); }
