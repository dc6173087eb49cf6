/* The training stage: one entry for pretrain, finetune, supernet and
 * retrain, told apart by a recipe (see glora/pipeline.h). */
#include "glora/pipeline.h"
#include "glora/common.h"
#include "pipeline/pipeline-impl.h"

#include <stdlib.h>
#include <string.h>

static const char *default_trainable(glora_recipe_kind_t kind) {
    switch (kind) {
    case GLORA_RECIPE_SUPERNET: return "adapter,head";
    case GLORA_RECIPE_RETRAIN: return "head";
    default: return "backbone,head";
    }
}

int glora_recipe_mask(const glora_vit_t *m, const glora_recipe_t *r, unsigned char *mask) {
    memset(mask, 0, (size_t)m->n_params);
    const char *t = r->trainable ? r->trainable : default_trainable(r->kind);
    int rc = t[0] ? glora_train_select(m, t, mask) : GLORA_OK;
    if (!rc && r->kind == GLORA_RECIPE_RETRAIN) glora_train_mask_subnet(m, r->subnet->cfg, mask);
    return rc;
}

/* The output file of a finished run, as the recipe says. */
int pipeline_recipe_save(const glora_vit_t *m, const glora_recipe_t *r, const char *path) {
    const char *sha = r->backbone_sha256 ? r->backbone_sha256 : "";
    switch (r->kind) {
    case GLORA_RECIPE_SUPERNET: {
        const char *meta[] = {GLORA_META_KIND, "supernet", GLORA_META_BACKBONE_SHA256, sha};
        return glora_vit_save(m, path, GLORA_ROLE_ADAPTER | GLORA_ROLE_HEAD, meta, 2);
    }
    case GLORA_RECIPE_RETRAIN: {
        char *json = NULL;
        int rc = glora_spec_to_json(r->subnet, &json);
        if (rc) return rc;
        const char *meta[] = {GLORA_META_KIND, "adapter", GLORA_META_BACKBONE_SHA256, sha,
                              GLORA_META_SUBNET, json};
        rc = glora_vit_save(m, path, GLORA_ROLE_ADAPTER | GLORA_ROLE_HEAD, meta, 3);
        free(json);
        return rc;
    }
    default: {
        const char *meta[] = {GLORA_META_KIND, "backbone"};
        return glora_vit_save(m, path, GLORA_ROLE_BACKBONE | GLORA_ROLE_HEAD, meta, 1);
    }
    }
}

int glora_train_recipe(glora_vit_t *m, const glora_recipe_t *r, const glora_train_opts_t *o,
                       const glora_dataset_t *train, const glora_dataset_t *val,
                       const char *output, glora_train_result_t *res) {
    glora_train_opts_t opts = *o;
    opts.space = NULL;
    opts.fixed_cfg = NULL;
    if (r->kind == GLORA_RECIPE_SUPERNET) {
        if (!r->space) return glora_error(GLORA_EINVAL, "supernet training: no search space given");
        opts.space = r->space;
    }
    if (r->kind == GLORA_RECIPE_RETRAIN) {
        if (!r->subnet) return glora_error(GLORA_EINVAL, "retrain: no subnet given");
        int rc = glora_spec_check(r->subnet, m, "subnet");
        if (rc) return rc;
        glora_train_zero_unused(m, r->subnet->cfg);
        opts.fixed_cfg = r->subnet->cfg;
    }
    unsigned char *mask = malloc((size_t)m->n_params);
    if (!mask) return glora_error(GLORA_ENOMEM, "training: out of memory");
    glora_train_result_t out = {0};
    int rc = glora_recipe_mask(m, r, mask);
    if (!rc) rc = glora_train_run(m, mask, &opts, train, val, &out);
    free(mask);
    /* The training split's class names (an image folder's) go with the head. */
    if (!rc && train->class_names && train->num_classes == m->arch.num_classes) {
        char *names = glora_dataset_class_names_json(train);
        if (!names) rc = glora_error(GLORA_ENOMEM, "training: out of memory for the class names");
        free(m->class_names);
        m->class_names = names;
    }
    if (!rc && output && out.start_epoch + out.epochs_run >= o->epochs) rc = pipeline_recipe_save(m, r, output);
    if (res) *res = out;
    return rc;
}

/* The options of glora_train_run from the train.* keys. */
void glora_train_opts_from_config(const glora_config_t *cfg, glora_recipe_kind_t kind, glora_train_opts_t *o) {
    memset(o, 0, sizeof *o);
    o->epochs = (int)glora_config_int(cfg, "train.epochs");
    o->batch = (size_t)glora_config_int(cfg, "train.batch");
    o->shards = (int)glora_config_int(cfg, "train.shards");
    const char *prec = glora_config_string(cfg, "train.precision");
    o->precision = prec && strcmp(prec, "bf16") == 0 ? GLORA_BF16 : GLORA_FP32;
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
    if (kind == GLORA_RECIPE_SUPERNET && strcmp(glora_config_string(cfg, "train.sampling"), "sandwich") == 0)
        o->sampling = GLORA_SAMPLING_SANDWICH;
}

