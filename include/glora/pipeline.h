/*
 * glora/pipeline.h - the stages of the GLoRA pipeline as library calls.
 *
 * Each stage is one function with a contract: what it reads, what it writes
 * and where, who owns what, and how it resumes. `glora run` and the
 * `glora <stage>` commands are config parsing around these calls;
 * examples/pipeline.c drives them directly.
 */
#ifndef GLORA_PIPELINE_H
#define GLORA_PIPELINE_H

#include <stddef.h>
#include <stdint.h>

#include "glora/config.h"
#include "glora/data.h"
#include "glora/layer.h"
#include "glora/model.h"
#include "glora/search.h"
#include "glora/spec.h"
#include "glora/train.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The metadata keys of the model files the stages write (GLORA_META_KIND,
 * ...) are in glora/model.h. */

/* ---- build ----------------------------------------------------------------
 * Models are owned by the caller (glora_vit_free). */

/* A ViT of architecture a initialised from scratch as timm does
 * (glora_train_init_vit), from a stream forked off seed: what pretraining
 * starts from. */
int glora_backbone_create(glora_vit_t **out, const glora_vit_arch_t *a, uint64_t seed);

/* A model of bb's architecture with `classes` classes and GLoRA rank `rank`
 * (0: no adapter tensors): bb's backbone tensors copied, the new head and
 * every adapter tensor zero, bb's backbone_sha256 kept. What fine-tuning
 * starts from (rank 0). */
int glora_backbone_adapt(glora_vit_t **out, const glora_vit_t *bb, int classes, int rank);

/* Build a supernet from a backbone: glora_backbone_adapt at `rank`, then the
 * GLoRA tensors initialised as the official code (glora_train_init_adapters)
 * from the same forked stream as glora_backbone_create. Also what a fresh
 * retrain (no inherited supernet) starts from, at the subnet's rank. */
int glora_supernet_build(glora_vit_t **out, const glora_vit_t *bb, int classes, int rank,
                         uint64_t seed);

/* ---- train ----------------------------------------------------------------
 * One training entry; a recipe says what trains and how the output is
 * written. */

typedef enum {
    GLORA_RECIPE_PRETRAIN, /* every weight; writes a backbone */
    GLORA_RECIPE_FINETUNE, /* backbone and/or head; writes a backbone (kind backbone) */
    GLORA_RECIPE_SUPERNET, /* GLoRA tensors + head, each step each layer draws from space */
    GLORA_RECIPE_RETRAIN,  /* the GLoRA tensors a subnet uses + head, that subnet every step */
} glora_recipe_kind_t;

typedef struct {
    glora_recipe_kind_t kind;
    /* What trains besides what the recipe adds (glora_train_select patterns);
     * NULL: "backbone,head" (pretrain, finetune), "adapter,head" (supernet),
     * "head" (retrain). */
    const char *trainable;
    const glora_space_t *space;  /* supernet: the space every layer draws from */
    const glora_spec_t *subnet;  /* retrain: the subnet (checked against the model) */
    const char *backbone_sha256; /* supernet, retrain: into the output's metadata */
} glora_recipe_t;

/* The keys of every training command (data.train/val splits, train.*,
 * seed, output, run.*), with the recipe's defaults; in one place. */
#define GLORA_TRAIN_KEYS(EPOCHS, BATCH, LR, WD, SEED, TRAINABLE, TRAINABLE_HELP)                           \
    GLORA_SPLIT_KEYS("data.train", "training"), GLORA_SPLIT_KSHOT_KEYS("data.train"),              \
    GLORA_SPLIT_KEYS("data.val", "validation (optional)"), GLORA_SPLIT_NORM_KEYS("data."),           \
    {"model.heads", GLORA_CFG_INT, "0", "attention heads if the file's metadata lacks them", 0, 1024, NULL}, \
    {"model.arch", GLORA_CFG_STRING, NULL, "timm architecture of the backbone, for its head count (vit_base_patch16_224, ...)", 0, 0, NULL}, \
    {"train.epochs", GLORA_CFG_INT, EPOCHS, "epochs", 1, 1e6, NULL},                                \
    {"train.batch", GLORA_CFG_INT, BATCH, "images per step (the last partial batch is dropped)", 1, 65536, NULL}, \
    {"train.lr", GLORA_CFG_NUMBER, LR, "peak learning rate", 0, 10, NULL},                         \
    {"train.shards", GLORA_CFG_INT, "2", "slices of each batch, up to --threads of them in flight (and in memory) at once, gradients summed in order (results depend on it, not on --threads)", 1, 64, NULL}, \
    {"train.precision", GLORA_CFG_ENUM, "fp32", "arithmetic of the forward and input-gradient products through the linears' weights: fp32, or bf16 (AVX512_BF16, fp32 accumulation; gradients of what trains and AdamW stay fp32)", 0, 0, glora_precision_names, GLORA_CFG_IDENTITY_IF_SET}, \
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


/* The options of glora_train_run from those keys (a fine-tuning without
 * train.lr takes 1e-3 for finetune.mode linear, else 1e-4); the callbacks,
 * checkpoint and run hash are left for the caller. */
void glora_train_opts_from_config(const glora_config_t *cfg, glora_recipe_kind_t kind, glora_train_opts_t *o);

/* What trains under recipe r: mask[i] (m->n_params entries) set for the
 * tensors r->trainable selects, plus for a retrain the GLoRA tensors the
 * subnet uses. Errors name a pattern that matches nothing. */
int glora_recipe_mask(const glora_vit_t *m, const glora_recipe_t *r, unsigned char *mask);

/* Trains m in place by recipe r with options o (o->space and o->fixed_cfg
 * are taken from the recipe, the rest as glora_train_run). For a retrain,
 * the adapter elements the subnet does not read are zeroed first, so the
 * output holds exactly the subnet's parameters.
 *
 * Checkpoint and resume: after every epoch the trainable tensors, AdamW's
 * moments and the random stream go to o->checkpoint (atomically; NULL: no
 * checkpoint); with o->resume and an existing checkpoint training continues
 * from it, bit-identical to an uninterrupted run, and a checkpoint of another
 * run (o->run_hash, see glora_config_hash) is refused.
 *
 * Output: when every epoch is done (not stopped by o->stop_after), writes
 * `output` (may be NULL) atomically: pretrain and finetune the backbone and
 * head (kind backbone); supernet the GLoRA tensors and head (kind supernet);
 * retrain the same with the subnet spec in the metadata (kind adapter).
 * res (may be NULL) gets the summary; res->start_epoch + res->epochs_run <
 * o->epochs says the run stopped early and wrote no output. */
int glora_train_recipe(glora_vit_t *m, const glora_recipe_t *r, const glora_train_opts_t *o,
                       const glora_dataset_t *train, const glora_dataset_t *val,
                       const char *output, glora_train_result_t *res);

/* ---- search ---------------------------------------------------------------- */

typedef struct {
    const glora_vit_t *supernet;
    const char *supernet_sha256;          /* of the supernet file, into the specs */
    const glora_dataset_t *val;           /* the split candidates are scored on */
    const glora_search_layer_t *layers;   /* NULL: the official space at the rank */
    glora_search_opts_t opts;
    size_t batch;                         /* images per forward pass (0: 32) */
    const char *dir;                      /* output directory */
    const char *identity;                 /* the run's identity (glora_config_hash), or NULL */
    const char *config_yaml;              /* saved as dir/config.yaml when starting (may be NULL) */
    int resume;
    const glora_search_hooks_t *hooks;    /* progress (may be NULL) */
    /* Called once before the first generation runs, with the generation the
     * search resumes after (-1: a fresh start) and the candidates already
     * evaluated (may be NULL; ctx is hooks->ctx). */
    void (*start)(void *ctx, int resumed_after, size_t evaluated);
    void (*tick)(void *ctx, size_t done, size_t total); /* per chunk of candidates (may be NULL) */
    void *tick_ctx;
    /* Cross-validation (search.cv_folds, glora_search_cv_t): with
     * cv_folds >= 2 candidates are scored on folds[f] by fold_supernets[f]
     * (trained without that fold), pooled over the folds; val is then
     * unused and supernet, supernet_sha256 only name the supernet of the
     * specs (best.json). fold_sha256[f] (the sha256 of supernet f's file)
     * and the folds' pixels and labels join the checkpoint's identity.
     * 0: one supernet scored on val. */
    int cv_folds;
    const glora_vit_t *const *fold_supernets;
    const glora_dataset_t *const *folds;
    const char *const *fold_sha256;
} glora_search_setup_t;

typedef struct {
    int resumed_after;   /* generation the run continued after, -1 when it started afresh */
    int started_fresh_on_resume; /* resume was asked but there was no checkpoint */
    long best;           /* candidate index of the best (-1: none) */
    size_t best_params;
    double best_acc;
    int best_generation;
    long budget_best[GLORA_SEARCH_MAX_BUDGETS]; /* per extra budget, -1: none */
    size_t budget_params[GLORA_SEARCH_MAX_BUDGETS];
    double budget_acc[GLORA_SEARCH_MAX_BUDGETS];
} glora_search_result_t;

/* Search a subnet of a trained supernet: the evolutionary search of
 * glora/search.h with glora_search_fitness on st->val (or, with
 * st->cv_folds >= 2, glora_search_cv_t's pooled folds), writing into st->dir
 * (created) checkpoint.json, history.jsonl, pareto.json, best.json and
 * best-under-<budget>.json after every generation.
 *
 * Checkpoint and resume: a directory that holds a checkpoint is refused
 * unless st->resume; with it the search continues from the checkpoint after
 * checking the options, layers, identity, supernet and data (the sha256 of
 * the split's pixels and labels) are those it was made with, and ends with
 * exactly the files of an uninterrupted search; temporaries a killed search
 * left are removed. Without a checkpoint it starts afresh (and saves
 * st->config_yaml). */
int glora_search_supernet(const glora_search_setup_t *st, glora_search_result_t *res);

/* ---- cross-validation (search.cv_folds) ------------------------------------ */

/* Assigns each of n examples with labels y (>= 0) to one of k folds,
 * fold[i] in [0, k), stratified and deterministic: the examples of each
 * class, in ascending order shuffled by a stream forked off seed by the
 * class (as glora_dataset_kshot draws), are dealt to folds 0, 1, ..., k-1
 * in turn, the deal going on from one class to the next (class 0 first).
 * So every fold holds n / k examples rounded down or up, and of each class
 * its count / k rounded down or up. Needs 2 <= k <= n. */
int glora_cv_folds(const int *y, size_t n, int k, uint64_t seed, int *fold);

/* ---- merge ----------------------------------------------------------------- */

/* Merge into a plain ViT: every adapted layer of m under the subnet spec
 * folded into plain weights, W' = W0 + W0 A + B, b' = b0 + b0 D + E + W0 C,
 * backbone and head copied. *out (rank 0) is the caller's. */
int glora_merge(glora_vit_t **out, const glora_vit_t *m, const glora_spec_t *spec);
/* Writes a merged model (backbone and head, kind merged, the spec and its
 * parameter count in the metadata) atomically to path. */
int glora_merged_save(const glora_vit_t *merged, const glora_spec_t *spec, const char *path);

/* ---- evaluate -------------------------------------------------------------- */

/* Top-1 correct predictions of m under the configuration cfg (4 * depth
 * layer configurations, NULL: the plain model) on ds, batch images per
 * forward pass (0: 256). */
int glora_evaluate(const glora_vit_t *m, const glora_layer_cfg_t *cfg, const glora_dataset_t *ds,
                   size_t batch, size_t *correct);

/* Top-1 correct predictions of m with the linears lin (set by the caller for
 * the configuration to evaluate) over the split ds, in batches of the
 * workspace's max_batch; pixels are read through glora_dataset_slice.
 * Under MPI it is collective: every rank calls it, counts its span of the
 * images, and gets the whole split's count (summed exactly). */
int glora_eval_correct(const glora_vit_t *m, const glora_vit_linears_t *lin, glora_vit_acts_t *acts,
                       const glora_dataset_t *ds, size_t *correct);

/* ---- predict --------------------------------------------------------------- */

/* The logits of m under the configuration cfg (4 * depth layer
 * configurations, NULL: the plain model) for every image of ds, in order,
 * batch images per forward pass (0: 256): logits holds ds->n * num_classes
 * floats, image after image. Not split over MPI ranks: each rank computes
 * every image (callers print on the writer rank only). */
int glora_predict(const glora_vit_t *m, const glora_layer_cfg_t *cfg, const glora_dataset_t *ds,
                  size_t batch, float *logits);

/* What glora_predict_images reads and where its lines go. */
typedef struct {
    const glora_vit_t *model;
    const glora_layer_cfg_t *cfg;    /* 4 * depth layer configurations, NULL: the plain model */
    /* Preprocessing and normalisation (size, img_resize, interp, crop_pct,
     * means, stds), and the images when it names a list or folder (with
     * start, count, max_memory); otherwise the n_files files are read. */
    const glora_split_t *split;
    const char *const *files;
    int n_files;
    size_t batch;                    /* images per forward pass (0: 256) */
    int with_logits;                 /* add each image's logits to its line */
    /* Names of the model's classes (n_class_names of them; NULL: the model's
     * own, glora.class_names, else a folder's class folders, else none). */
    const char *const *class_names;
    int n_class_names;
    /* Called on the writer rank with each line, in image order. */
    int (*write)(void *ctx, const char *line, size_t len);
    void *ctx;
} glora_predict_opts_t;

/* The prediction of every image as one JSON line (docs/formats.md: path,
 * class, name when known, top-5 softmax, logits with with_logits), passed
 * to o->write. The images are read in pieces of split->max_memory bytes
 * (all at once when 0); under MPI it is collective: each piece is spread
 * over the ranks in whole batches (each rank decodes and runs only its
 * images) and gathered in order, so the lines are the bytes one process
 * writes. *n_images gets the number of images. Errors name the file. */
int glora_predict_images(const glora_predict_opts_t *o, size_t *n_images);

/* The k most likely classes of one image's logits (n_classes >= 1): their
 * indices into cls and softmax probabilities (computed in double) into p,
 * most likely first, the lower index first on equal logits (so cls[0] is
 * the top-1 argmax). Returns min(k, n_classes), the entries written. */
int glora_predict_topk(const float *logits, int n_classes, int k, int *cls, double *p);

/* ---- the stages from a config ---------------------------------------------
 * What `glora <stage>` and `glora run` call: each stage's keys (its schema,
 * docs/config.md) in one config, the stage's library calls around it, and
 * hooks for what the user sees (the library prints nothing: every hook may
 * be NULL, and every hook gets h->ctx). */

/* The keys of the models a stage loads, the evaluation split of eval and
 * search, and the <section>.precision key of the commands that run the
 * model's forward ("fp32", "bf16": glora_precisions). */
#define GLORA_MODEL_KEYS                                                                   \
    {"model.backbone", GLORA_CFG_STRING, NULL, "backbone safetensors file (a timm ViT)", 0, 0, NULL}, \
    {"model.adapter", GLORA_CFG_STRING, NULL, "supernet or adapter file (GLoRA tensors, new head)", 0, 0, NULL}, \
    {"model.heads", GLORA_CFG_INT, "0", "attention heads if the file's metadata lacks them (0: metadata)", 0, 1024, NULL}, \
    {"model.arch", GLORA_CFG_STRING, NULL, "timm architecture of the backbone, for its head count (vit_base_patch16_224, ...)", 0, 0, NULL}
#define GLORA_DATA_KEYS GLORA_SPLIT_KEYS("data", "evaluation"), GLORA_SPLIT_NORM_KEYS("data."), \
    GLORA_SPLIT_FIT_KEYS("data.")
extern const char *const glora_precisions[];
#define GLORA_PRECISION_KEY(section)                                                       \
    {section ".precision", GLORA_CFG_ENUM, "fp32", "arithmetic of the products with frozen or merged weights: fp32, or bf16 (AVX512_BF16; docs/PERFORMANCE.md)", 0, 0, glora_precisions, GLORA_CFG_IDENTITY_IF_SET}

/* The schemas of the stages (the sections of a `glora run` file). */
extern const glora_config_schema_t glora_pretrain_schema, glora_finetune_schema, glora_supernet_schema,
    glora_retrain_schema, glora_search_schema, glora_merge_schema, glora_run_schema;

/* What a training stage is about to do (glora_stage_hooks_t.train_ready). */
typedef struct {
    glora_recipe_kind_t kind;
    size_t n_train, n_val;     /* examples of the splits (n_val 0: none) */
    size_t trainable, total;   /* parameters that train, and of the whole model */
    int epochs;
    size_t steps;              /* per epoch */
    const char *output, *checkpoint, *metrics; /* the files (the config's or the defaults) */
    int replaces_checkpoint;   /* not resuming, and a checkpoint exists: it will be replaced */
} glora_train_info_t;

typedef struct {
    void *ctx;
    /* A line for the user: a note or a warning (no newline). */
    void (*note)(void *ctx, const char *line);
    /* glora_run_stages: stage starts, or was finished by an earlier invocation. */
    void (*stage)(void *ctx, const char *stage, int done_before);
    /* Training: the data, model and files are ready; progress (p, ctx);
     * finished (or stopped by run.stop_after) with res. */
    void (*train_ready)(void *ctx, const glora_train_info_t *info);
    glora_train_cb train_step, train_epoch;
    void (*train_done)(void *ctx, const glora_train_info_t *info, const glora_train_result_t *res);
    /* Search: set up (st->supernet, st->val, st->opts are ready); the hooks
     * of glora_search_setup_t; the search returned rc (res valid when 0). */
    void (*search_ready)(void *ctx, const glora_search_setup_t *st);
    void (*search_batch)(void *ctx, int generation, size_t n_candidates);
    void (*search_generation)(void *ctx, const glora_search_gen_t *g);
    void (*search_start)(void *ctx, int resumed_after, size_t evaluated);
    void (*search_tick)(void *ctx, size_t done, size_t total);
    void (*search_done)(void *ctx, const glora_search_setup_t *st, int rc, const glora_search_result_t *res);
    /* Merge: the merged model (layers folded, the spec's parameters) is in path. */
    void (*merged)(void *ctx, int layers, size_t params, const char *path);
} glora_stage_hooks_t;

/* The architecture of a named preset (glora_arch_presets: arch.preset of
 * pretrain and init): "vit-b16" (224x224x3, patch 16, dim 768, depth 12, 12
 * heads, MLP 3072, 1000 classes) or otherwise "vit-tiny-28" (28x28x1, patch
 * 7, dim 128, depth 6, 4 heads, MLP 512, 10 classes). */
extern const char *const glora_arch_presets[];
glora_vit_arch_t glora_arch_preset(const char *name);

/* Loads model.backbone (+ model.adapter) with model.heads and model.arch. */
int glora_model_from_config(const glora_config_t *cfg, glora_vit_t **m);
/* Loads the split under prefix (required: its IDX pair, list or folder;
 * normalisation, resize and shift under "data.") fitted to m (may be NULL). */
int glora_split_load_config(const glora_config_t *cfg, const char *prefix, const glora_vit_t *m,
                            glora_dataset_t *ds);
/* The subnet to run on m: the spec file spec_path (checked against m) when
 * given; else the glora.subnet metadata of the adapter file when it has
 * one; else none (*have 0: the plain model). spec is the caller's
 * (glora_spec_free). */
int glora_subnet_load(const glora_vit_t *m, const char *spec_path, const char *adapter_path,
                      glora_spec_t *spec, int *have);
/* Sets m->precision from the precision key; a note says when bf16 runs an
 * exact software emulation (a CPU without AVX512_BF16). */
void glora_precision_from_config(const glora_config_t *cfg, const char *key, glora_vit_t *m,
                                 const glora_stage_hooks_t *h);

/* A training stage on a config of its schema (glora_<kind>_schema): the
 * training split (data.train; image files decoded at data.size, else at the
 * model's size), the model the recipe starts from (pretrain: arch.preset
 * or model.backbone; finetune: the backbone with a new head of
 * model.num_classes or the labels' classes; supernet: glora_supernet_build;
 * retrain: the subnet on the supernet model.adapter (retrain.init inherit)
 * or on a fresh one), then glora_train_recipe writing `output`, its
 * checkpoint (run.checkpoint, default OUTPUT.ckpt) after every epoch and a
 * JSON line per epoch to run.metrics (default OUTPUT.metrics.jsonl). One
 * writer per output (OUTPUT.lock); temporaries a killed run left are
 * removed. resume: continue from the checkpoint of the same run (identity:
 * glora_config_hash). res (may be NULL) as glora_train_recipe's. */
int glora_stage_train(glora_recipe_kind_t kind, const glora_config_t *cfg, int resume,
                      const glora_stage_hooks_t *h, glora_train_result_t *res);
/* glora_search_supernet on a config of glora_search_schema: model.backbone
 * + model.adapter (the supernet), the data split, search.*, output.dir.
 * A resumed search refuses a config that differs (in its identity) from
 * output.dir/config.yaml, naming the keys. */
int glora_stage_search(const glora_config_t *cfg, int resume, const glora_stage_hooks_t *h);
/* glora_merge + glora_merged_save on a config of glora_merge_schema. */
int glora_stage_merge(const glora_config_t *cfg, const glora_stage_hooks_t *h);

/* ---- run: the whole pipeline in one directory --------------------------------
 * A run is a YAML file with a `run` section (glora_run_schema: name, dir,
 * stages, val/test splits, ...) and one section per stage, each of that
 * stage's schema; glora_run_stages fills in the paths between the stages,
 * so the sections hold only settings. Everything goes to DIR/NAME:
 * backbone.safetensors (when the pretrain stage makes it), finetuned,
 * supernet, search/, cv/ (with search.cv_folds: the folds and their
 * supernets, trained by the search stage), adapter and merged
 * .safetensors, config.yaml (a copy of
 * the file), run.json (the run's own checkpoint: the finished stages and the
 * seconds every stage took, over all invocations) and summary.json. */

/* The stages in pipeline order: "pretrain", "finetune", "supernet",
 * "search", "retrain", "merge", "eval", NULL. */
extern const char *const glora_run_stage_names[];
/* The shifts run.test_shifts may name: "inverted", "rotated", "noisy", "blurred", NULL. */
extern const char *const glora_run_shift_kinds[];
#define GLORA_RUN_NSTAGES 7
#define GLORA_RUN_MAX_SHIFTS 4

typedef struct glora_run glora_run_t;

/* One model of the final evaluation (a row of summary.json). */
typedef struct {
    const char *method;
    size_t params;   /* trainable GLoRA parameters or fine-tuned weights, head excluded */
    int have_val, have_test;
    double val, test;
    double shift[GLORA_RUN_MAX_SHIFTS]; /* on the copies named by run.test_shifts, in its order */
} glora_run_row_t;

typedef struct {
    glora_run_row_t rows[8];
    int nrows;
    double seconds[GLORA_RUN_NSTAGES]; /* per stage over every invocation; -1: not in this run */
    int skipped[GLORA_RUN_NSTAGES];    /* finished by an earlier invocation */
    int adapter_row;                   /* the retrained adapter's row (-1: none) */
    char label[128];                   /* run.label, or "fine-tuned backbone" */
} glora_run_summary_t;

/* Opens the run of config_path whose run section is cfg (the caller's, kept
 * until glora_run_close): checks run.test_shifts, creates DIR/NAME, locks
 * it (one process per run), removes temporaries a killed run left, copies
 * the config there and reads run.json. */
int glora_run_open(glora_run_t **out, const char *config_path, const glora_config_t *cfg);
/* One key of a stage's section set for this invocation: "STAGE.KEY=VALUE"
 * with STAGE one of pretrain, finetune, supernet, search, retrain (glora run
 * --set supernet.train.epochs=50). Applied after the section's own values,
 * before the paths the run fixes (model.backbone, output, ...); the key is
 * checked against the stage's keys here. Call before glora_run_stages. */
int glora_run_override(glora_run_t *r, const char *assignment);
/* Non-zero when assignment ("KEY=VALUE") names a stage's key (STAGE.KEY). */
int glora_run_is_stage_key(const char *assignment);
/* DIR/NAME. */
const char *glora_run_dir(const glora_run_t *r);
/* Every stage of run.stages but eval, in pipeline order, each the
 * glora_stage_* call on its section: the backbone is pretrained only when
 * missing; stages run.json says are finished are skipped; an interrupted
 * stage resumes from its own checkpoint; a training stopped by its
 * run.stop_after is not finished (the run stops there, returning 0 with
 * *stopped set). After every stage run.json is saved. On failure returns
 * the status with *failed set to the stage's name (NULL: not a stage). */
int glora_run_stages(glora_run_t *r, const glora_stage_hooks_t *h, const char **failed, int *stopped);
/* Non-zero when run.stages includes eval. */
int glora_run_wants_eval(const glora_run_t *r);
/* The final evaluation: every model the run made on the val and test splits
 * and the shifted copies of test, written to DIR/NAME/summary.json and into
 * *sum. Never skipped (cheap next to training). */
int glora_run_evaluate(glora_run_t *r, glora_run_summary_t *sum);
/* Unlocks and frees (NULL-safe). */
void glora_run_close(glora_run_t *r);

#ifdef __cplusplus
}
#endif
#endif
