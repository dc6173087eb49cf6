/* The search and merge stages from a config, and the loaders every stage
 * shares: a model, a split, a subnet (see glora/pipeline.h). */
#include "glora/pipeline.h"
#include "glora/common.h"
#include "glora/safetensors.h"
#include "pipeline/pipeline-impl.h"
#include "util/fileio.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

glora_vit_arch_t glora_arch_preset(const char *name) {
    if (strcmp(name, "vit-b16") == 0)
        return (glora_vit_arch_t){.img_size = 224, .in_chans = 3, .patch = 16, .dim = 768, .depth = 12,
                                  .heads = 12, .mlp_hidden = 3072, .num_classes = 1000};
    return (glora_vit_arch_t){.img_size = 28, .in_chans = 1, .patch = 7, .dim = 128, .depth = 6,
                              .heads = 4, .mlp_hidden = 512, .num_classes = 10};
}

void glora_precision_from_config(const glora_config_t *cfg, const char *key, glora_vit_t *m,
                                 const glora_stage_hooks_t *h) {
    const char *name = glora_config_string(cfg, key);
    m->precision = name && strcmp(name, "bf16") == 0 ? GLORA_BF16 : GLORA_FP32;
    if (m->precision == GLORA_BF16 && glora_bgemm_emulated() && h && h->note) {
        char line[256];
        snprintf(line, sizeof line, "glora: note: this CPU lacks AVX512_BF16; %s bf16 runs an exact software "
                                    "emulation (the same results, much slower)", key);
        h->note(h->ctx, line);
    }
}

int glora_model_from_config(const glora_config_t *cfg, glora_vit_t **m) {
    int rc = glora_config_require(cfg, "model.backbone");
    if (rc) return rc;
    const char *adapter = glora_config_string(cfg, "model.adapter");
    glora_vit_load_opts_t o = {.heads = (int)glora_config_int(cfg, "model.heads"),
                               .arch = glora_config_string(cfg, "model.arch")};
    return glora_vit_load_ex(m, glora_config_string(cfg, "model.backbone"), adapter && adapter[0] ? adapter : NULL, &o);
}

int glora_split_load_config(const glora_config_t *cfg, const char *prefix, const glora_vit_t *m,
                            glora_dataset_t *ds) {
    char key[96];
    glora_split_t s;
    int rc = glora_split_from_config(&s, cfg, prefix, "data.");
    if (!rc && !s.list && !s.folder) {   /* IDX: both files required */
        snprintf(key, sizeof key, "%s.images", prefix);
        rc = glora_config_require(cfg, key);
        snprintf(key, sizeof key, "%s.labels", prefix);
        if (!rc) rc = glora_config_require(cfg, key);
    }
    if (!rc) rc = glora_split_load(ds, &s, m ? &m->arch : NULL);
    return rc;
}

/* The subnet a retrained adapter carries in its metadata (*have 0: none). */
static int embedded_subnet(const glora_vit_t *m, const char *adapter_path, glora_spec_t *spec, int *have) {
    glora_st_t *st;
    int rc = glora_st_open(&st, adapter_path);
    if (rc) return rc;
    const char *json = glora_st_meta(st, GLORA_META_SUBNET);
    if (json) {
        char where[1100];
        snprintf(where, sizeof where, "%s (metadata glora.subnet)", adapter_path);
        rc = glora_spec_parse(spec, json, where);
        if (!rc) rc = glora_spec_check(spec, m, where);
        *have = !rc;
    }
    glora_st_close(st);
    return rc;
}

int glora_subnet_load(const glora_vit_t *m, const char *spec_path, const char *adapter_path,
                      glora_spec_t *spec, int *have) {
    *have = 0;
    memset(spec, 0, sizeof *spec);
    int rc = GLORA_OK;
    if (spec_path && spec_path[0]) {
        rc = glora_spec_read(spec, spec_path);
        if (!rc) rc = glora_spec_check(spec, m, spec_path);
        *have = !rc;
    } else if (adapter_path && adapter_path[0]) {
        rc = embedded_subnet(m, adapter_path, spec, have);
    }
    if (rc) glora_spec_free(spec);
    return rc;
}

/* ---- search ---------------------------------------------------------------- */

/* A resumed search refuses a changed config, naming what changed. */
static int check_same_config(const glora_config_t *cfg, const char *saved_path) {
    if (access(saved_path, R_OK) != 0) return 0; /* the engine still compares the hash */
    glora_config_t *old;
    if (glora_config_load(&old, saved_path, &glora_search_schema) != GLORA_OK) return 0;
    char *summary = NULL;
    int n = glora_config_diff(old, cfg, &summary);
    glora_config_free(old);
    int rc = 0;
    if (n > 0) {
        rc = glora_error(GLORA_ESTATE, "search '%s': the config changed since the search started: %s",
                         saved_path, summary);
        glora_error_hint("resume with the same config (a copy is in that file), or start afresh in "
                         "another output.dir");
    } else if (n < 0) {
        rc = n;
    }
    free(summary);
    return rc;
}

/* The stage's hooks behind the search's own. */
typedef struct {
    const glora_stage_hooks_t *h;
    const pipeline_saved_t *saved;
} search_glue_t;

static void on_batch(void *ctx, int gen, size_t n) {
    const search_glue_t *g = ctx;
    if (g->h && g->h->search_batch) g->h->search_batch(g->h->ctx, gen, n);
}

static void on_generation(void *ctx, const glora_search_gen_t *gen) {
    const search_glue_t *g = ctx;
    if (g->h && g->h->search_generation) g->h->search_generation(g->h->ctx, gen);
    if (g->saved && g->saved->fn) g->saved->fn(g->saved->ctx);
}

static void on_start(void *ctx, int resumed_after, size_t evaluated) {
    const search_glue_t *g = ctx;
    if (g->h && g->h->search_start) g->h->search_start(g->h->ctx, resumed_after, evaluated);
}

/* The config's own checks, before anything is loaded. */
static int search_check_config(const glora_config_t *cfg) {
    const char *supernet = glora_config_string(cfg, "model.adapter");
    if (!glora_config_string(cfg, "output.dir")[0])
        return glora_error(GLORA_EINVAL, "config key 'output.dir': is empty");
    if (!supernet || !supernet[0]) {
        int rc = glora_error(GLORA_EINVAL, "config key 'model.adapter': the search needs a supernet");
        glora_error_hint("set model.adapter (or --supernet FILE) to a file written by 'glora supernet'");
        return rc;
    }
    return GLORA_OK;
}

/* The supernet of a search: model.backbone + model.adapter with its sha256
 * into sha; in a cross-validated search only when the file exists (it
 * names the specs' supernet), else *m NULL and sha "". */
static int search_model(const glora_config_t *cfg, const pipeline_cv_t *cv, const glora_stage_hooks_t *h,
                        glora_vit_t **m, char sha[65]) {
    const char *adapter = glora_config_string(cfg, "model.adapter");
    sha[0] = '\0';
    if (cv && access(adapter, F_OK) != 0) return GLORA_OK;
    int rc = glora_model_from_config(cfg, m);
    if (!rc) rc = glora_sha256_file(adapter, sha);
    if (!rc) glora_precision_from_config(cfg, "search.precision", *m, h);
    if (!rc && cv && ((*m)->rank != cv->m[0]->rank || glora_vit_layers(*m) != glora_vit_layers(cv->m[0])))
        rc = glora_error(GLORA_ESTATE, "supernet '%s': its layers or rank differ from the folds' supernets", adapter);
    return rc;
}

int pipeline_stage_search(const glora_config_t *cfg, int resume, const glora_stage_hooks_t *h,
                          const pipeline_saved_t *saved, const pipeline_cv_t *cv) {
    glora_vit_t *m = NULL;
    glora_dataset_t ds = {0};
    glora_search_layer_t *L = NULL;
    char *dump = NULL, sha[65], hash[65], path[4200];
    const char *dir = glora_config_string(cfg, "output.dir");
    search_glue_t glue = {h, saved};
    glora_search_hooks_t hooks = {.batch = on_batch, .generation = on_generation, .ctx = &glue};
    glora_search_setup_t st = {.dir = dir, .resume = resume, .identity = hash, .supernet_sha256 = sha,
                               .batch = (size_t)glora_config_int(cfg, "search.batch"), .start = on_start,
                               .hooks = &hooks};
    int rc;
    if ((rc = search_check_config(cfg)) || (rc = glora_search_opts_from_config(cfg, &st.opts)))
        goto out;
    if (!cv && glora_config_int(cfg, "search.cv_folds") >= 2) {
        rc = glora_config_error(cfg, "search.cv_folds", "needs the supernets of the folds, which 'glora run' "
                                "trains; a search on its own scores on one split");
        glora_error_hint("put the search in a run (glora run, with a supernet section), or leave search.cv_folds at 0");
        goto out;
    }
    if ((rc = search_model(cfg, cv, h, &m, sha))) goto out;
    /* The layers and specs follow the named supernet, else fold 1's. */
    const glora_vit_t *spec_model = m ? m : cv->m[0];
    if ((rc = glora_search_vit_layers(spec_model, &L)) || (rc = glora_search_space_from_config(cfg, spec_model, L)))
        goto out;
    if (!cv && (rc = glora_split_load_config(cfg, "data", m, &ds))) goto out;
    if (!cv && ds.n == 0) {
        rc = glora_error(GLORA_EINVAL, "data '%s': the split is empty", glora_config_string(cfg, "data.images"));
        goto out;
    }
    if ((rc = glora_config_hash(cfg, hash))) goto out;
    snprintf(path, sizeof path, "%s/checkpoint.json", dir);
    if (resume && access(path, F_OK) == 0) {
        snprintf(path, sizeof path, "%s/config.yaml", dir);
        if ((rc = check_same_config(cfg, path))) goto out;
    }
    if ((rc = glora_config_dump(cfg, &dump))) goto out;
    st.supernet = spec_model;
    st.val = &ds;
    st.layers = L;
    if (cv) {
        st.cv_folds = cv->k;
        st.fold_supernets = cv->m;
        st.folds = cv->folds;
        st.fold_sha256 = cv->sha256;
    }
    st.config_yaml = dump;
    if (h && h->search_tick) {
        st.tick = h->search_tick;
        st.tick_ctx = h->ctx;
    }
    if (h && h->search_ready) h->search_ready(h->ctx, &st);
    glora_search_result_t res;
    rc = glora_search_supernet(&st, &res);
    if (h && h->search_done) h->search_done(h->ctx, &st, rc, &res);
out:
    free(L);
    free(dump);
    glora_dataset_free(&ds);
    glora_vit_free(m);
    return rc;
}

int glora_stage_search(const glora_config_t *cfg, int resume, const glora_stage_hooks_t *h) {
    return pipeline_stage_search(cfg, resume, h, NULL, NULL);
}

/* ---- merge ----------------------------------------------------------------- */

int glora_stage_merge(const glora_config_t *cfg, const glora_stage_hooks_t *h) {
    glora_vit_t *m = NULL, *out = NULL;
    glora_spec_t spec = {0};
    int have_spec = 0, rc;
    const char *adapter = glora_config_string(cfg, "model.adapter"), *path = glora_config_string(cfg, "output");
    if ((rc = glora_config_require(cfg, "output")) || (rc = glora_config_require(cfg, "model.adapter")) ||
        (rc = glora_output_lock(path)) || (rc = glora_model_from_config(cfg, &m)) ||
        (rc = glora_subnet_load(m, glora_config_string(cfg, "subnet"), adapter, &spec, &have_spec)))
        goto done;
    if (!have_spec) {
        rc = glora_error(GLORA_EINVAL, "adapter '%s': no subnet spec given and none embedded in the file", adapter);
        glora_error_hint("pass --subnet SPEC (a search's best.json, for example)");
    } else if (m->rank == 0) {
        rc = glora_error(GLORA_EINVAL, "adapter '%s': holds no GLoRA tensors", adapter);
    }
    if (rc || (rc = glora_merge(&out, m, &spec)) || (rc = glora_merged_save(out, &spec, path))) goto done;
    if (h && h->merged) h->merged(h->ctx, glora_vit_layers(m), spec.params, path);
done:
    glora_vit_free(out);
    glora_vit_free(m);
    glora_spec_free(&spec);
    return rc;
}
