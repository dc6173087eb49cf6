/* The training stages from a config: data, starting model, recipe, files
 * (checkpoint, metrics, lock), then glora_train_recipe (see glora/pipeline.h). */
#include "glora/pipeline.h"
#include "glora/common.h"
#include "pipeline/pipeline-impl.h"
#include "util/comm.h"
#include "util/fileio.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Classes of a new head: model.num_classes, else from the training labels. */
static int head_classes(const glora_config_t *cfg, const glora_dataset_t *train) {
    int64_t n = glora_config_int(cfg, "model.num_classes");
    if (n > 0) return (int)n;
    int mx = 0;
    for (size_t i = 0; i < train->n; i++)
        if (train->y[i] + 1 > mx) mx = train->y[i] + 1;
    return train->num_classes > mx ? train->num_classes : mx;
}

/* Fills a space from the space.* keys (an empty list: the official options
 * at the rank). */
static int space_from_config(const glora_config_t *cfg, int rank, glora_space_t *sp) {
    static const char *const keys[GLORA_NTENSORS] = {"space.A", "space.B", "space.C", "space.D", "space.E"};
    const char *const *lists[GLORA_NTENSORS];
    size_t n[GLORA_NTENSORS];
    for (int t = 0; t < GLORA_NTENSORS; t++) lists[t] = glora_config_strings(cfg, keys[t], &n[t]);
    return glora_space_build(sp, lists, n, rank, "space");
}

static char *path_with(const char *base, const char *suffix) {
    size_t n = strlen(base) + strlen(suffix) + 1;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s%s", base, suffix);
    return p;
}

/* Everything a training stage holds, freed by one call. */
typedef struct {
    glora_vit_t *bb, *m;
    glora_dataset_t train, val;
    glora_spec_t spec;
    glora_space_t space;
    unsigned char *mask;
    char *ckpt, *metrics_path, *lock_path;
    glora_lines_t *metrics;
    glora_dir_lock_t *lock;
    char bb_sha[65], hash[65];
    const glora_stage_hooks_t *h;
    const pipeline_saved_t *saved;
    int metrics_failed;
    pipeline_early_t *early;     /* retrain.early_stop */
    int early_rc;                /* its first failure during training */
    double early_acc, early_loss;
    pipeline_data_t *data;       /* data given in memory (NULL: the config's) */
} job_t;

/* Closes the metrics (a failure there is reported), frees the rest. */
static int job_free(job_t *j) {
    int rc = glora_lines_close(j->metrics);
    pipeline_early_free(j->early);
    glora_dir_unlock(j->lock);
    free(j->lock_path);
    free(j->mask);
    free(j->ckpt);
    free(j->metrics_path);
    glora_spec_free(&j->spec);
    glora_dataset_free(&j->train);
    glora_dataset_free(&j->val);
    glora_vit_free(j->m);
    glora_vit_free(j->bb);
    return rc;
}

/* The backbone the stage starts from (pretrain: only when model.backbone
 * is given), loaded before the data so that image files are decoded at its
 * size when data.size is not given. */
static int load_backbone(glora_recipe_kind_t kind, const glora_config_t *cfg, job_t *j) {
    const char *bb_path = glora_config_string(cfg, "model.backbone");
    int rc = GLORA_OK;
    if (kind != GLORA_RECIPE_PRETRAIN && (rc = glora_config_require(cfg, "model.backbone"))) return rc;
    if (kind == GLORA_RECIPE_RETRAIN && (rc = glora_config_require(cfg, "subnet"))) return rc;
    if (!bb_path || !bb_path[0]) return GLORA_OK;
    glora_vit_load_opts_t o = {.heads = (int)glora_config_int(cfg, "model.heads"),
                               .arch = glora_config_string(cfg, "model.arch")};
    return glora_vit_load_ex(&j->bb, bb_path, NULL, &o);
}

/* The model training starts from: pretrain from scratch or from given
 * weights; finetune a copy of the backbone with a new head; supernet a
 * supernet built on it; retrain the supernet (inherit) or a fresh one. */
static int start_model(glora_recipe_kind_t kind, const glora_config_t *cfg, job_t *j) {
    const uint64_t seed = (uint64_t)glora_config_int(cfg, "seed");
    int rc = GLORA_OK;
    if (kind == GLORA_RECIPE_PRETRAIN) {
        if (j->bb) {
            j->m = j->bb;
            j->bb = NULL;
            return GLORA_OK;
        }
        glora_vit_arch_t a = glora_arch_preset(glora_config_string(cfg, "arch.preset"));
        if (glora_config_int(cfg, "arch.num_classes") > 0) a.num_classes = (int)glora_config_int(cfg, "arch.num_classes");
        return glora_backbone_create(&j->m, &a, seed);
    }
    if (kind == GLORA_RECIPE_FINETUNE) return glora_backbone_adapt(&j->m, j->bb, head_classes(cfg, &j->train), 0);
    if (kind == GLORA_RECIPE_SUPERNET)
        return glora_supernet_build(&j->m, j->bb, head_classes(cfg, &j->train), (int)glora_config_int(cfg, "glora.rank"), seed);
    const char *adapter = glora_config_string(cfg, "model.adapter"), *subnet = glora_config_string(cfg, "subnet");
    if ((rc = glora_spec_read(&j->spec, subnet))) return rc;
    if (strcmp(glora_config_string(cfg, "retrain.init"), "inherit") != 0) {
        rc = glora_supernet_build(&j->m, j->bb, head_classes(cfg, &j->train), j->spec.rank, seed);
    } else if (!adapter || !adapter[0]) {
        rc = glora_config_error(cfg, "model.adapter", "is required by retrain.init=inherit (the supernet to start from)");
    } else {
        glora_vit_load_opts_t o = {.heads = (int)glora_config_int(cfg, "model.heads"),
                                   .arch = glora_config_string(cfg, "model.arch")};
        if (!(rc = glora_vit_load_ex(&j->m, glora_config_string(cfg, "model.backbone"), adapter, &o)) && j->m->rank == 0)
            rc = glora_error(GLORA_ESTATE, "adapter '%s': holds no GLoRA tensors", adapter);
    }
    if (!rc) rc = glora_spec_check(&j->spec, j->m, subnet);
    return rc;
}

/* The training split, image files at the size of the model to come; or
 * the one given in memory (ts still describes the config's, for the
 * checks of glora_dataset_fit). */
static int load_train(const glora_config_t *cfg, job_t *j, glora_split_t *ts) {
    int rc = glora_split_from_config(ts, cfg, "data.train", "data.");
    if (!rc && j->data) {
        j->train = *j->data->train;
        memset(j->data->train, 0, sizeof *j->data->train);
        return GLORA_OK;
    }
    if (!rc && !ts->list && !ts->folder) {   /* IDX: both files required */
        rc = glora_config_require(cfg, "data.train.images");
        if (!rc) rc = glora_config_require(cfg, "data.train.labels");
    }
    if (!rc && (ts->list || ts->folder) && ts->size == 0) {
        glora_vit_arch_t a = j->bb ? j->bb->arch : glora_arch_preset(glora_config_string(cfg, "arch.preset"));
        glora_split_t sized = *ts;
        sized.size = a.img_size;
        return glora_split_load(&j->train, &sized, NULL);
    }
    return rc ? rc : glora_split_load(&j->train, ts, NULL);
}

/* Data, model, recipe and what trains, from the config. */
static int prepare(glora_recipe_kind_t kind, const glora_config_t *cfg, job_t *j, glora_recipe_t *r) {
    const char *bb_path = glora_config_string(cfg, "model.backbone");
    glora_split_t ts;
    int rc;
    if ((rc = load_backbone(kind, cfg, j)) || (rc = load_train(cfg, j, &ts))) return rc;
    if (j->train.n < (size_t)glora_config_int(cfg, "train.batch")) {
        rc = glora_config_error(cfg, "train.batch", "is %lld, more than the %zu training examples",
                                (long long)glora_config_int(cfg, "train.batch"), j->train.n);
        glora_error_hint("lower train.batch (--batch): the last partial batch is dropped");
        return rc;
    }
    if (bb_path && bb_path[0] && (rc = glora_sha256_file(bb_path, j->bb_sha))) return rc;
    if ((rc = start_model(kind, cfg, j))) return rc;
    if (kind == GLORA_RECIPE_SUPERNET && (rc = space_from_config(cfg, j->m->rank, &j->space))) return rc;
    if ((rc = glora_dataset_fit(&j->train, &ts, &j->m->arch))) return rc; /* labels vs the head */
    glora_split_t vs;
    if (j->data && j->data->val) { /* given in memory: fitted as the training split */
        j->val = *j->data->val;
        memset(j->data->val, 0, sizeof *j->data->val);
        if ((rc = glora_dataset_fit(&j->val, &ts, &j->m->arch))) return rc;
    } else if (!j->data) {
        if ((rc = glora_split_from_config(&vs, cfg, "data.val", "data."))) return rc;
        if (glora_split_given(&vs) && (rc = glora_split_load_config(cfg, "data.val", j->m, &j->val))) return rc;
    }
    const char *trainable = glora_config_string(cfg, "train.trainable");
    if (!trainable && kind == GLORA_RECIPE_FINETUNE)
        trainable = strcmp(glora_config_string(cfg, "finetune.mode"), "linear") == 0 ? "head" : "backbone,head";
    *r = (glora_recipe_t){.kind = kind, .trainable = trainable ? trainable : "", .space = &j->space,
                          .subnet = &j->spec, .backbone_sha256 = j->bb_sha};
    if (!(j->mask = malloc((size_t)j->m->n_params))) return glora_error(GLORA_ENOMEM, "model: out of memory");
    if (glora_recipe_mask(j->m, r, j->mask)) return glora_config_error(cfg, "train.trainable", "%s", glora_errmsg());
    return GLORA_OK;
}

/* Checkpoint and metrics files. */
static int open_files(const glora_config_t *cfg, int resume, job_t *j, glora_train_opts_t *o,
                      glora_train_info_t *info) {
    const char *output = glora_config_string(cfg, "output");
    const char *ck = glora_config_string(cfg, "run.checkpoint"), *mp = glora_config_string(cfg, "run.metrics");
    j->ckpt = ck && ck[0] ? strdup(ck) : path_with(output, ".ckpt");
    j->metrics_path = mp && mp[0] ? strdup(mp) : path_with(output, ".metrics.jsonl");
    if (!j->ckpt || !j->metrics_path) return glora_error(GLORA_ENOMEM, "run: out of memory");
    int rc = glora_config_hash(cfg, j->hash);
    if (rc) return rc;
    if (j->data && j->data->identity) { /* the data given in memory joins the identity */
        glora_sha256_t sh;
        uint8_t d[32];
        glora_sha256_init(&sh);
        glora_sha256_update(&sh, j->hash, 64);
        glora_sha256_update(&sh, j->data->identity, strlen(j->data->identity));
        glora_sha256_final(&sh, d);
        for (int i = 0; i < 32; i++) snprintf(j->hash + 2 * i, 3, "%02x", d[i]);
    }
    o->checkpoint = j->ckpt;
    o->resume = resume;
    o->run_hash = j->hash;
    /* One writer per output: its lock, then the temporaries a killed
     * predecessor left beside its files. */
    const char *slash = strrchr(output, '/');
    if (slash && slash != output) {
        char *dir = strndup(output, (size_t)(slash - output));
        rc = dir ? glora_mkdir_p(dir) : glora_error(GLORA_ENOMEM, "run: out of memory");
        free(dir);
        if (rc) return rc;
    }
    if (!(j->lock_path = path_with(output, ".lock"))) return glora_error(GLORA_ENOMEM, "run: out of memory");
    if (glora_comm_writer() && ((rc = glora_path_lock(&j->lock, j->lock_path, "output", output)) ||
        (rc = glora_clean_temps_of(output, NULL)) || (rc = glora_clean_temps_of(j->ckpt, NULL)) ||
        (rc = glora_clean_temps_of(j->metrics_path, NULL))))
        return rc;
    int resuming = resume && access(j->ckpt, F_OK) == 0;
    /* Under MPI only rank 0 writes the metrics (util/comm.h). A fresh log
     * replaces the previous one only once it has a line. */
    if (glora_comm_writer() && (rc = glora_lines_open(&j->metrics, j->metrics_path, resuming))) return rc;
    info->replaces_checkpoint = !resume && access(j->ckpt, F_OK) == 0;
    return GLORA_OK;
}

/* retrain.average: every tensor that trained becomes a * the value it
 * started from (the supernet's, read again from model.adapter, so that a
 * resumed retrain averages the same way) + (1 - a) * the retrained value,
 * in double, rounded once. */
static int average_inherited(const glora_config_t *cfg, job_t *j, double a) {
    glora_vit_t *s = NULL;
    glora_vit_load_opts_t o = {.heads = (int)glora_config_int(cfg, "model.heads"),
                               .arch = glora_config_string(cfg, "model.arch")};
    int rc = glora_vit_load_ex(&s, glora_config_string(cfg, "model.backbone"),
                               glora_config_string(cfg, "model.adapter"), &o);
    if (!rc && (s->n_params != j->m->n_params || s->n_floats != j->m->n_floats))
        rc = glora_error(GLORA_ESTATE, "retrain.average: the supernet '%s' changed during the retrain",
                         glora_config_string(cfg, "model.adapter"));
    for (int i = 0; !rc && i < j->m->n_params; i++) {
        if (!j->mask[i]) continue;
        const glora_param_t *p = &j->m->params[i];
        float *w = j->m->mem + p->offset;
        const float *w0 = s->mem + s->params[i].offset;
        for (size_t k = 0; k < p->numel; k++) w[k] = (float)(a * (double)w0[k] + (1.0 - a) * (double)w[k]);
    }
    glora_vit_free(s);
    return rc;
}

static void on_step(const glora_train_progress_t *p, void *ctx) {
    const job_t *j = ctx;
    if (j->h && j->h->train_step) j->h->train_step(p, j->h->ctx);
}

/* The user's hook, then the metrics line, then the run's seconds. */
static void on_epoch(const glora_train_progress_t *p, void *ctx) {
    job_t *j = ctx;
    /* Early stopping scores the epoch on the held-out slice first. */
    if (j->early && !j->early_rc) /* every rank scores; rank 0 writes the state */
        j->early_rc = glora_comm_check(pipeline_early_epoch(j->early, p->epoch + 1, &j->early_acc, &j->early_loss));
    if (j->h && j->h->train_epoch) j->h->train_epoch(p, j->h->ctx);
    if (j->metrics) {
        char line[600], v[128] = "";
        if (p->has_val) snprintf(v, sizeof v, "\"val_accuracy\": %.6f, ", p->val_accuracy);
        if (j->early && !j->early_rc)
            snprintf(v + strlen(v), sizeof v - strlen(v), "\"holdout_accuracy\": %.6f, \"holdout_loss\": %.9g, ",
                     j->early_acc, j->early_loss);
        snprintf(line, sizeof line,
                 "{\"epoch\": %d, \"epochs\": %d, \"lr\": %.9g, \"loss\": %.9g, \"train_accuracy\": %.6f, "
                 "%s\"images_per_s\": %.1f, \"seconds\": %.3f, \"grad_norm\": %.6g}\n",
                 p->epoch + 1, p->epochs, p->lr, p->loss, p->accuracy, v, p->images_per_s, p->elapsed,
                 p->grad_norm);
        /* A failed line (disk full) is reported once; training goes on, and
         * the checkpoint write after the next epoch reports the fault. */
        if (glora_lines_write(j->metrics, line) != GLORA_OK && !j->metrics_failed) {
            j->metrics_failed = 1;
            char msg[1200];
            snprintf(msg, sizeof msg, "warning: %s", glora_errmsg());
            if (j->h && j->h->note) j->h->note(j->h->ctx, msg);
            glora_error_clear();
        }
    }
    if (j->saved && j->saved->fn) j->saved->fn(j->saved->ctx);
}

int pipeline_stage_train(glora_recipe_kind_t kind, const glora_config_t *cfg, int resume,
                         const glora_stage_hooks_t *h, glora_train_result_t *res, const pipeline_saved_t *saved,
                         pipeline_data_t *data) {
    const char *output = glora_config_string(cfg, "output");
    if (!output || !output[0]) return glora_error(GLORA_EINVAL, "config key 'output': no output file given");
    job_t j = {.h = h, .saved = saved, .data = data};
    glora_recipe_t recipe;
    glora_train_opts_t o;
    glora_train_result_t out = {0};
    glora_train_info_t info = {.kind = kind, .output = output};
    glora_train_opts_from_config(cfg, kind, &o);
    if (o.precision == GLORA_BF16 && glora_bgemm_emulated() && h && h->note)
        h->note(h->ctx, "glora: note: this CPU lacks AVX512_BF16; train.precision bf16 runs an exact "
                        "software emulation (the same results, much slower)");
    int rc = prepare(kind, cfg, &j, &recipe);
    if (!rc) rc = open_files(cfg, resume, &j, &o, &info);
    if ((rc = glora_comm_check(rc))) { /* every rank learns if rank 0 could open its files */
        job_free(&j);
        return rc;
    }
    double average = kind == GLORA_RECIPE_RETRAIN ? glora_config_number(cfg, "retrain.average") : 0;
    if (average > 0 && strcmp(glora_config_string(cfg, "retrain.init"), "inherit") != 0) {
        if (glora_config_is_set(cfg, "retrain.average")) {
            rc = glora_config_error(cfg, "retrain.average", "needs retrain.init=inherit (the weights to average with)");
            job_free(&j);
            return rc;
        }
        average = 0; /* the default averages only inherited weights */
    }
    if (kind == GLORA_RECIPE_RETRAIN && glora_config_bool(cfg, "retrain.early_stop")) {
        /* The held-out slice leaves the training split before anything trains. */
        rc = pipeline_early_open(&j.early, cfg, j.m, j.mask, j.spec.cfg, &j.train, output, j.ckpt,
                                 o.resume && access(j.ckpt, F_OK) == 0);
        if ((rc = glora_comm_check(rc))) {
            job_free(&j);
            return rc;
        }
    }
    info.n_train = j.train.n;
    info.n_val = j.val.n;
    for (int i = 0; i < j.m->n_params; i++) info.trainable += j.mask[i] ? j.m->params[i].numel : 0;
    info.total = j.m->n_floats;
    info.epochs = o.epochs;
    info.steps = j.train.n / (o.batch ? o.batch : 1);
    info.checkpoint = j.ckpt;
    info.metrics = j.metrics_path;
    if (h && h->train_ready) h->train_ready(h->ctx, &info);
    o.on_step = on_step;
    o.on_epoch = on_epoch;
    o.cb_ctx = &j;
    const int after = j.early || average > 0; /* the output is written below, once training is done */
    rc = glora_train_recipe(j.m, &recipe, &o, &j.train, j.val.n ? &j.val : NULL, after ? NULL : output, &out);
    if (!rc) rc = j.early_rc;
    const int done = out.start_epoch + out.epochs_run >= o.epochs;
    if (!rc && j.early && done) { /* the best epoch's weights */
        int best;
        double acc, loss;
        pipeline_early_finish(j.early, &best, &acc, &loss);
        if (h && h->note) {
            char msg[256];
            snprintf(msg, sizeof msg, "early stop: kept epoch %d of %d (held-out %zu images: accuracy %.4f, loss %.4f)",
                     best, o.epochs, pipeline_early_holdout(j.early), acc, loss);
            h->note(h->ctx, msg);
        }
    }
    if (!rc && average > 0 && done) {
        rc = average_inherited(cfg, &j, average);
        /* What is reported is the output's validation accuracy. */
        size_t correct = 0;
        if (!rc && j.val.n && !(rc = glora_evaluate(j.m, j.spec.cfg, &j.val, 0, &correct))) {
            out.has_val = 1;
            out.val_accuracy = (double)correct / (double)j.val.n;
        }
        if (!rc && h && h->note) {
            char msg[200];
            snprintf(msg, sizeof msg,
                     "retrain.average: the output is %g x the supernet's weights + %g x the retrained "
                     "(the epochs' validation figures above are the retrained weights')", average, 1.0 - average);
            h->note(h->ctx, msg);
        }
    }
    if (!rc && after && done) rc = pipeline_recipe_save(j.m, &recipe, output);
    if (!rc && h && h->train_done) h->train_done(h->ctx, &info, &out);
    if (res) *res = out;
    if (job_free(&j) && !rc) rc = GLORA_EIO;
    return rc;
}

int glora_stage_train(glora_recipe_kind_t kind, const glora_config_t *cfg, int resume,
                      const glora_stage_hooks_t *h, glora_train_result_t *res) {
    return pipeline_stage_train(kind, cfg, resume, h, res, NULL, NULL);
}
