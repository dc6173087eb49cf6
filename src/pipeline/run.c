/* A run: the stages on the sections of one YAML file, in one directory,
 * with its own checkpoint run.json (see glora/pipeline.h). */
#include "glora/pipeline.h"
#include "glora/common.h"
#include "glora/image.h"
#include "glora/safetensors.h"
#include "pipeline/pipeline-impl.h"
#include "util/comm.h"
#include "util/fileio.h"
#include "util/json-check.h"
#include "util/parallel.h"
#include "util/strbuf.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { PRETRAIN, FINETUNE, SUPERNET, SEARCH, RETRAIN, MERGE, EVAL };

struct glora_run {
    const char *config;           /* the YAML file */
    const glora_config_t *cfg;    /* its run section */
    glora_dir_lock_t *lock;       /* on out, held by the whole run */
    char out[2048];
    char backbone[2100], supernet[2100], search_dir[2100], adapter[2100], merged[2100], finetuned[2100];
    char cv_dir[2100];            /* a cross-validated search's folds and supernets */
    char subnet[2200];
    char cache[2100];             /* decoded image splits: run.cache, else RUN/image-cache */
    int64_t seed;                 /* run.seed: >= 0 replaces the stages' own */
    double seconds[GLORA_RUN_NSTAGES];  /* finished stages: over every invocation */
    double partial[GLORA_RUN_NSTAGES];  /* unfinished stages: the invocations so far */
    int skipped[GLORA_RUN_NSTAGES];
    int done[GLORA_RUN_NSTAGES];  /* finished in this or an earlier invocation (run.json) */
    char made[GLORA_RUN_NSTAGES][65]; /* a finished stage's config identity ("": not recorded) */
    int want[GLORA_RUN_NSTAGES];  /* in run.stages */
    int running;                  /* stage of this invocation (-1: none) */
    double t0;                    /* when it started */
    char **overrides;             /* glora_run_override: "STAGE.KEY=VALUE" */
    size_t n_overrides;
};

static int exists(const char *path) { return access(path, F_OK) == 0; }

const char *glora_run_dir(const glora_run_t *r) { return r->out; }
int glora_run_wants_eval(const glora_run_t *r) { return r->want[EVAL]; }

static int load_opts_heads(const glora_config_t *cfg, glora_vit_load_opts_t *o) {
    *o = (glora_vit_load_opts_t){.heads = (int)glora_config_int(cfg, "heads"), .arch = glora_config_string(cfg, "arch")};
    return o->heads;
}

/* ---- the run's own checkpoint: RUN/run.json -------------------------------
 * {"stages": {"<stage>": {"seconds": S, "config": "<sha256>"}, ...},
 * "unfinished": {"<stage>": {"seconds": S}, ...}}: the stages that finished,
 * how long they took (every invocation of them added up) and the identity
 * of the config they finished with (glora_config_hash of the stage's
 * config; absent in the files of earlier versions), and the seconds spent
 * so far in stages begun but not finished. */

static int read_seconds(const cJSON *obj, const char *path, double *sec, int *have, char (*made)[65]) {
    for (int i = 0; obj && glora_run_stage_names[i]; i++) {
        cJSON *e = cJSON_GetObjectItemCaseSensitive(obj, glora_run_stage_names[i]);
        cJSON *s = cJSON_GetObjectItemCaseSensitive(e, "seconds");
        cJSON *c = cJSON_GetObjectItemCaseSensitive(e, "config");
        if (!e) continue;
        if (!cJSON_IsNumber(s) || !(s->valuedouble >= 0))
            return glora_error(GLORA_EFORMAT, "run state '%s': stage '%s' has no valid seconds", path,
                               glora_run_stage_names[i]);
        if (c && (!made || !cJSON_IsString(c) || strlen(c->valuestring) != 64 ||
                  strspn(c->valuestring, "0123456789abcdef") != 64))
            return glora_error(GLORA_EFORMAT, "run state '%s': stage '%s' has an invalid config identity", path,
                               glora_run_stage_names[i]);
        sec[i] = s->valuedouble;
        if (have) have[i] = 1;
        if (c) memcpy(made[i], c->valuestring, 65);
    }
    return GLORA_OK;
}

static int load_state(glora_run_t *r) {
    char path[2200], *text, dup[128];
    size_t n;
    snprintf(path, sizeof path, "%s/run.json", r->out);
    if (!exists(path)) return GLORA_OK;
    int rc = glora_read_file(path, 1 << 20, &text, &n);
    if (rc) return rc;
    cJSON *j = cJSON_Parse(text), *st = cJSON_GetObjectItemCaseSensitive(j, "stages");
    cJSON *un = cJSON_GetObjectItemCaseSensitive(j, "unfinished");
    free(text);
    if (glora_json_find_dup(j, dup, sizeof dup) > 0)
        rc = glora_error(GLORA_EFORMAT, "run state '%s': key '%s' appears twice", path, dup);
    else if (!cJSON_IsObject(st) || (un && !cJSON_IsObject(un)))
        rc = glora_error(GLORA_EFORMAT, "run state '%s': not a run checkpoint", path);
    if (!rc) rc = read_seconds(st, path, r->seconds, r->done, r->made);
    if (!rc) rc = read_seconds(un, path, r->partial, NULL, NULL);
    cJSON_Delete(j);
    return rc;
}

static void put_stages(sbuf_t *b, const glora_run_t *r, int done) {
    int first = 1;
    for (int i = 0; glora_run_stage_names[i]; i++) {
        if (done ? !r->done[i] : r->done[i] || !(r->partial[i] > 0)) continue;
        sb_printf(b, "%s\"%s\": {\"seconds\": %.1f", first ? "" : ", ", glora_run_stage_names[i],
                  done ? r->seconds[i] : r->partial[i]);
        if (done && r->made[i][0]) sb_printf(b, ", \"config\": \"%s\"", r->made[i]);
        sb_puts(b, "}");
        first = 0;
    }
}

static int save_state(const glora_run_t *r) {
    char path[2200];
    snprintf(path, sizeof path, "%s/run.json", r->out);
    sbuf_t b = {0};
    sb_puts(&b, "{\"stages\": {");
    put_stages(&b, r, 1);
    int unfinished = 0;
    for (int i = 0; glora_run_stage_names[i]; i++) unfinished |= !r->done[i] && r->partial[i] > 0;
    if (unfinished) {
        sb_puts(&b, "}, \"unfinished\": {");
        put_stages(&b, r, 0);
    }
    sb_puts(&b, "}}\n");
    int rc = b.failed ? glora_error(GLORA_ENOMEM, "run state '%s': out of memory", path)
                      : glora_write_atomic(path, b.buf, b.len);
    free(b.buf);
    return rc;
}

/* After each checkpoint of the running stage: its seconds so far. A failed
 * write is left for the stage's end to report. */
static void stage_saved(void *ctx) {
    glora_run_t *r = ctx;
    double keep = r->partial[r->running];
    r->partial[r->running] += glora_now() - r->t0;
    if (save_state(r)) glora_error_clear();
    r->partial[r->running] = keep;
}

/* ---- open ------------------------------------------------------------------ */

/* run.test_shifts must name each shift once and needs a test split. Checked
 * before any stage runs, so a mistake does not wait for the end of a long run. */
static int check_shifts(const glora_config_t *cfg) {
    size_t n;
    const char *const *v = glora_config_strings(cfg, "test_shifts", &n);
    if (n == 0) return GLORA_OK;
    glora_split_t test;
    if (glora_split_from_config(&test, cfg, "test", "") || !glora_split_given(&test))
        return glora_config_error(cfg, "test_shifts", "needs a test split (test.images + test.labels, "
                                  "test.list or test.folder) to shift");
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < i; j++)
            if (strcmp(v[i], v[j]) == 0) return glora_config_error(cfg, "test_shifts", "lists '%s' twice", v[i]);
    return GLORA_OK;
}

static void set_paths(glora_run_t *r, const glora_config_t *cfg) {
    const char *dir = glora_config_string(cfg, "dir"), *name = glora_config_string(cfg, "name");
    const char *bb = glora_config_string(cfg, "backbone"), *sn = glora_config_string(cfg, "supernet");
    const char *subnet_opt = glora_config_string(cfg, "subnet");
    snprintf(r->out, sizeof r->out, "%s/%s", dir, name);
    snprintf(r->backbone, sizeof r->backbone, bb ? "%s" : "%s/backbone.safetensors", bb ? bb : r->out);
    snprintf(r->supernet, sizeof r->supernet, sn ? "%s" : "%s/supernet.safetensors", sn ? sn : r->out);
    snprintf(r->search_dir, sizeof r->search_dir, "%s/search", r->out);
    snprintf(r->cv_dir, sizeof r->cv_dir, "%s/cv", r->out);
    snprintf(r->adapter, sizeof r->adapter, "%s/adapter.safetensors", r->out);
    snprintf(r->merged, sizeof r->merged, "%s/merged.safetensors", r->out);
    snprintf(r->finetuned, sizeof r->finetuned, "%s/finetuned.safetensors", r->out);
    const char *cache = glora_config_is_set(cfg, "cache") ? glora_config_string(cfg, "cache") : NULL;
    snprintf(r->cache, sizeof r->cache, cache ? "%s" : "%s/image-cache", cache ? cache : r->out);
    if (subnet_opt && strncmp(subnet_opt, "preset:", 7) != 0)
        snprintf(r->subnet, sizeof r->subnet, "%s", subnet_opt);
    else if (subnet_opt)
        snprintf(r->subnet, sizeof r->subnet, "%s/subnet.json", r->out);
    else
        snprintf(r->subnet, sizeof r->subnet, "%s/best.json", r->search_dir);
}

/* The run's directory (with a copy of the config) and state. */
static int setup(glora_run_t *r) {
    int rc = glora_mkdir_p(r->out);
    /* One glora per run directory; then the temporaries a killed run left
     * (in the run directory and search/): by rank 0 alone under MPI, which
     * would otherwise remove rank 0's in-flight config.yaml temporary. */
    if (!rc) rc = glora_dir_lock(&r->lock, r->out);
    if (!rc && glora_comm_writer()) rc = glora_clean_temps(r->out, 1, NULL);
    return rc ? rc : load_state(r);
}

/* Keep the config the run was started with beside its results. */
static int keep_config(const glora_run_t *r) {
    char *text, path[2200];
    size_t n;
    snprintf(path, sizeof path, "%s/config.yaml", r->out);
    int rc = glora_read_file(r->config, 1 << 20, &text, &n);
    if (!rc) {
        rc = glora_write_atomic(path, text, n);
        free(text);
    }
    return rc;
}

int glora_run_open(glora_run_t **out, const char *config_path, const glora_config_t *cfg) {
    *out = NULL;
    int rc;
    if ((rc = glora_config_require(cfg, "name")) || (rc = check_shifts(cfg))) return rc;
    glora_run_t *r = calloc(1, sizeof *r);
    if (!r) return glora_error(GLORA_ENOMEM, "run: out of memory");
    r->config = config_path;
    r->cfg = cfg;
    r->running = -1;
    r->seed = glora_config_int(cfg, "seed");
    for (int i = 0; i < GLORA_RUN_NSTAGES; i++) r->seconds[i] = -1;
    size_t nst;
    const char *const *st = glora_config_strings(cfg, "stages", &nst);
    for (size_t i = 0; i < nst; i++)
        for (int k = 0; glora_run_stage_names[k]; k++)
            if (strcmp(st[i], glora_run_stage_names[k]) == 0) r->want[k] = 1;
    set_paths(r, cfg);
    if ((rc = setup(r))) {
        glora_run_close(r);
        return rc;
    }
    *out = r;
    return GLORA_OK;
}

void glora_run_close(glora_run_t *r) {
    if (!r) return;
    glora_dir_unlock(r->lock);
    for (size_t i = 0; i < r->n_overrides; i++) free(r->overrides[i]);
    free(r->overrides);
    free(r);
}

static const glora_config_schema_t *const stage_schemas[] = {&glora_pretrain_schema, &glora_finetune_schema,
    &glora_supernet_schema, &glora_search_schema, &glora_retrain_schema, &glora_merge_schema};

/* The stage (PRETRAIN..RETRAIN) whose section an assignment names, else -1. */
static int override_stage(const char *assignment) {
    for (int si = PRETRAIN; si <= RETRAIN; si++) {
        size_t n = strlen(glora_run_stage_names[si]);
        if (strncmp(assignment, glora_run_stage_names[si], n) == 0 && assignment[n] == '.') return si;
    }
    return -1;
}

int glora_run_is_stage_key(const char *assignment) { return override_stage(assignment) >= 0; }

int glora_run_override(glora_run_t *r, const char *assignment) {
    int si = override_stage(assignment);
    if (si < 0)
        return glora_error(GLORA_EINVAL, "run: '%s' names no stage's key (pretrain., finetune., supernet., search. or retrain.)",
                           assignment);
    /* Checked now, on the stage's keys, so a typo fails before any stage runs. */
    const char *key = assignment + strlen(glora_run_stage_names[si]) + 1;
    glora_config_t *c = NULL;
    int rc = glora_config_load(&c, NULL, stage_schemas[si]);
    if (!rc) rc = glora_config_set(c, key);
    glora_config_free(c);
    if (rc) return rc;
    char **grown = realloc(r->overrides, (r->n_overrides + 1) * sizeof *grown);
    char *copy = strdup(assignment);
    if (!grown || !copy) {
        if (grown) r->overrides = grown;
        free(copy);
        return glora_error(GLORA_ENOMEM, "out of memory");
    }
    r->overrides = grown;
    r->overrides[r->n_overrides++] = copy;
    return GLORA_OK;
}

/* ---- the stages ------------------------------------------------------------ */

/* A subnet spec for a preset method on the backbone's architecture, with
 * the head the retraining makes: `classes` classes (0: the backbone's). */
static int write_preset(const glora_vit_t *m, const char *preset, int classes, const char *path) {
    glora_layer_cfg_t cfg[4 * 256];
    glora_choice_t none = {GLORA_NONE, 0}, vec = {GLORA_VECTOR, 0}, l4 = {GLORA_LORA, 4};
    int L = glora_vit_layers(m);
    for (int l = 0; l < L; l++) {
        if (strcmp(preset, "preset:lora4") == 0) cfg[l] = (glora_layer_cfg_t){{none, l4, none, none, none}};
        else if (strcmp(preset, "preset:ssf") == 0) cfg[l] = (glora_layer_cfg_t){{vec, none, none, vec, vec}};
        else return glora_error(GLORA_EINVAL, "subnet '%s': unknown preset (preset:lora4 or preset:ssf)", preset);
    }
    glora_vit_t shape = *m;
    shape.rank = 4;
    if (classes > 0) shape.arch.num_classes = classes;
    glora_spec_t spec;
    int rc = glora_spec_from_model(&spec, &shape, cfg, "");
    if (!rc) rc = glora_spec_write(&spec, path);
    glora_spec_free(&spec);
    return rc;
}

static int load_or_mark(const glora_run_t *r, const char *split, int stream_ok, glora_dataset_t *ds, int *have,
                        glora_split_t *s, int *big);

/* The preset subnet a retrain without search trains. Its fresh head takes
 * the classes of the task's labels (a suite task may have fewer than the
 * backbone's head): those of the run's val split when it has one. */
static int preset_subnet(const glora_run_t *r, const char *preset) {
    glora_vit_t *m = NULL;
    glora_dataset_t v;
    glora_vit_load_opts_t o;
    glora_split_t vs;
    int have_val = 0, classes = 0, big;
    int rc = load_or_mark(r, "val", 0, &v, &have_val, &vs, &big);
    if (!rc && have_val) classes = v.num_classes;
    glora_dataset_free(&v);
    load_opts_heads(r->cfg, &o);
    if (!rc) rc = glora_vit_load_ex(&m, r->backbone, NULL, &o);
    if (!rc) rc = write_preset(m, preset, classes, r->subnet);
    glora_vit_free(m);
    return glora_comm_check(rc); /* MPI: rank 0 has written it */
}

/* The config of stage si: its section of the run's file (the schema's
 * defaults when section is NULL) with the given string keys set (key, value,
 * ..., NULL), the run's seed under seed_key and run.arch as model.arch. */
static int stage_config(const glora_run_t *r, int si, const char *section, const char *seed_key,
                        const char *const *set, glora_config_t **c) {
    const glora_config_schema_t *schema = stage_schemas[si];
    const char *arch = glora_config_string(r->cfg, "arch");
    int rc = section ? glora_config_load_section(c, r->config, section, schema) : glora_config_load(c, NULL, schema);
    for (size_t i = 0; !rc && i < r->n_overrides; i++)
        if (override_stage(r->overrides[i]) == si)
            rc = glora_config_set(*c, r->overrides[i] + strlen(glora_run_stage_names[si]) + 1);
    for (size_t i = 0; !rc && set[i]; i += 2) rc = glora_config_set_string(*c, set[i], set[i + 1]);
    if (!rc && arch) rc = glora_config_set_string(*c, "model.arch", arch);
    /* Decoded image splits are cached beside the run unless the stage says
     * where (data.cache); IDX splits are never cached. */
    if (!rc && glora_config_has(*c, "data.cache") && !glora_config_is_set(*c, "data.cache"))
        rc = glora_config_set_string(*c, "data.cache", r->cache);
    if (!rc && seed_key && r->seed >= 0) {
        char a[96];
        snprintf(a, sizeof a, "%s=%lld", seed_key, (long long)r->seed);
        rc = glora_config_set(*c, a);
    }
    return rc;
}

/* The search with search.cv_folds >= 2 (c, the search's config): its folds'
 * supernets are trained here by the supernet section (even when the run's
 * stages leave the supernet out: run.supernet given), then the search. */
static int cv_search(glora_run_t *r, const glora_config_t *c, const glora_stage_hooks_t *h,
                     const pipeline_saved_t *saved, int *stopped) {
    const char *set[] = {"model.backbone", r->backbone, NULL};
    glora_config_t *sc = NULL;
    int rc = stage_config(r, SUPERNET, glora_run_stage_names[SUPERNET], "seed", set, &sc);
    if (rc) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", glora_errmsg());
        rc = glora_error(rc, "config key 'search.cv_folds': the folds' supernets are trained by the run's "
                         "supernet section: %s", msg);
    }
    if (!rc) rc = pipeline_cv_search(c, sc, r->cv_dir, h, saved, stopped);
    glora_config_free(sc);
    return rc;
}

/* The config stage si (not eval) runs on: its section, the paths between
 * the stages and the run's seed. For the stage's identity (identity != 0)
 * the run's own files are named from the run's directory ("RUN/..."), so
 * that a run directory moved or copied elsewhere is the same run. */
static int job_config(const glora_run_t *r, int si, int identity, glora_config_t **c) {
    static const char *const seed_keys[] = {NULL, "seed", "seed", "search.seed", "seed", NULL};
    const char *set[10] = {"model.backbone", r->backbone, "output", NULL};
    char rel[4][2200];
    switch (si) {
    case PRETRAIN: set[0] = "output", set[1] = r->backbone, set[2] = NULL; break;
    case FINETUNE: set[3] = r->finetuned; break;
    case SUPERNET: set[3] = r->supernet; break;
    case SEARCH: set[2] = "model.adapter", set[3] = r->supernet, set[4] = "output.dir", set[5] = r->search_dir; break;
    case MERGE:
        set[3] = r->merged, set[4] = "model.adapter", set[5] = r->adapter;
        /* Without retraining: the chosen subnet on the supernet's weights. */
        if (!r->want[RETRAIN] && !exists(r->adapter) && exists(r->supernet))
            set[5] = r->supernet, set[6] = "subnet", set[7] = r->subnet;
        break;
    case RETRAIN: /* the supernet when there is one */
        set[3] = r->adapter, set[4] = "subnet", set[5] = r->subnet;
        if (exists(r->supernet)) set[6] = "model.adapter", set[7] = r->supernet;
        break;
    }
    size_t n = strlen(r->out);
    for (int i = 1, k = 0; identity && set[i - 1] && i < 10; i += 2)
        if (set[i] && strncmp(set[i], r->out, n) == 0 && set[i][n] == '/' && k < 4) {
            snprintf(rel[k], sizeof rel[k], "RUN%s", set[i] + n);
            set[i] = rel[k++];
        }
    return stage_config(r, si, si == MERGE ? NULL : glora_run_stage_names[si], seed_keys[si], set, c);
}

/* Stage si (not eval) on its config; *stopped when a training stopped
 * early. A stage that finishes records its config's identity. */
static int run_stage(glora_run_t *r, int si, const glora_stage_hooks_t *h, int *stopped) {
    static const glora_recipe_kind_t kinds[] = {GLORA_RECIPE_PRETRAIN, GLORA_RECIPE_FINETUNE, GLORA_RECIPE_SUPERNET,
                                                0, GLORA_RECIPE_RETRAIN};
    const char *preset = glora_config_string(r->cfg, "subnet");
    const pipeline_saved_t saved = {stage_saved, r};
    int rc = GLORA_OK;
    /* A retrain of a preset subnet writes the subnet first. */
    if (si == RETRAIN && preset && strncmp(preset, "preset:", 7) == 0) rc = preset_subnet(r, preset);
    glora_config_t *c = NULL;
    glora_train_result_t res = {0};
    if (!rc) rc = job_config(r, si, 0, &c);
    int cv = !rc && si == SEARCH && glora_config_int(c, "search.cv_folds") >= 2;
    *stopped = 0;
    if (cv) rc = cv_search(r, c, h, &saved, stopped);
    else if (!rc && si == SEARCH) rc = pipeline_stage_search(c, 1, h, &saved, NULL);
    else if (!rc && si == MERGE) rc = glora_stage_merge(c, h);
    else if (!rc) rc = pipeline_stage_train(kinds[si], c, 1, h, &res, &saved, NULL);
    if (!rc && si != SEARCH && si != MERGE)
        *stopped = res.start_epoch + res.epochs_run < (int)glora_config_int(c, "train.epochs");
    if (!rc && !*stopped) {
        glora_config_t *ci = NULL;
        rc = job_config(r, si, 1, &ci);
        if (!rc) rc = glora_config_hash(ci, r->made[si]);
        glora_config_free(ci);
    }
    /* Under MPI the ranks agree on the stage's outcome here, which also
     * keeps them from opening the stage's outputs before rank 0 renamed
     * them into place. */
    rc = glora_comm_check(rc);
    glora_config_free(c);
    return rc;
}

/* Runs stage si in this invocation: its seconds added to the earlier
 * invocations'; saved in run.json by the caller. */
static int timed_stage(glora_run_t *r, int si, const glora_stage_hooks_t *h, int *stopped) {
    if (h && h->stage) h->stage(h->ctx, glora_run_stage_names[si], 0);
    r->running = si;
    r->t0 = glora_now();
    int rc = run_stage(r, si, h, stopped);
    double total = r->partial[si] + (glora_now() - r->t0);
    r->running = -1;
    if (rc || *stopped) {
        r->partial[si] = total;
    } else {
        r->seconds[si] = total;
        r->partial[si] = 0;
        r->done[si] = 1;
    }
    return rc;
}

/* A finished stage is skipped, so it must be the one this config asks
 * for: the identity it finished with (run.json; not recorded by earlier
 * versions) against its config now. The backbone is not checked: it is
 * pretrained only when missing, and may be shared by runs. */
static int check_finished(const glora_run_t *r) {
    for (int si = PRETRAIN + 1; si < EVAL; si++) {
        if (!r->want[si] || !r->done[si] || !r->made[si][0]) continue;
        glora_config_t *c = NULL;
        char now[65];
        int rc = job_config(r, si, 1, &c);
        if (!rc) rc = glora_config_hash(c, now);
        glora_config_free(c);
        if (rc) return rc;
        if (strcmp(now, r->made[si]) != 0) {
            rc = glora_error(GLORA_ESTATE, "run '%s': its %s stage finished with another config than this one "
                             "(%s/config.yaml is the one the run last started with)", r->out,
                             glora_run_stage_names[si], r->out);
            glora_error_hint("a finished stage is not redone: give this config another run.name, or remove "
                             "'%s' to run it from the start", r->out);
            return rc;
        }
    }
    return GLORA_OK;
}

int glora_run_stages(glora_run_t *r, const glora_stage_hooks_t *h, const char **failed, int *stopped) {
    *failed = NULL;
    *stopped = 0;
    int rc0 = check_finished(r);
    if (!rc0) rc0 = keep_config(r);
    if (rc0) return rc0;
    for (int si = 0; si < EVAL; si++) {
        /* The backbone is pretrained only when missing, whatever the list says. */
        if (si == PRETRAIN && exists(r->backbone)) {
            if (r->want[PRETRAIN]) r->seconds[PRETRAIN] = 0, r->skipped[PRETRAIN] = 1;
            continue;
        }
        if (si == PRETRAIN && !r->want[PRETRAIN])
            return glora_error(GLORA_EINVAL, "run '%s': backbone '%s' is missing and the stages do not include pretrain",
                               r->config, r->backbone);
        if (!r->want[si]) continue;
        if (r->done[si]) {
            r->skipped[si] = 1;
            if (h && h->stage) h->stage(h->ctx, glora_run_stage_names[si], 1);
            continue;
        }
        int rc = timed_stage(r, si, h, stopped);
        if (rc) {
            /* Its seconds so far count when the run continues; the stage's
             * error is the one to report. */
            char msg[1024], hint[512];
            snprintf(msg, sizeof msg, "%s", glora_errmsg());
            snprintf(hint, sizeof hint, "%s", glora_errhint() ? glora_errhint() : "");
            *failed = glora_run_stage_names[si];
            if (save_state(r)) {
                glora_error(rc, "%s", msg);
                if (hint[0]) glora_error_hint("%s", hint);
            }
            return rc;
        }
        if ((rc = save_state(r)) || *stopped) return rc;
    }
    return GLORA_OK;
}

/* ---- the final evaluation ------------------------------------------------- */

static int eval_split(const glora_vit_t *m, const glora_layer_cfg_t *cfg, const glora_dataset_t *ds, double *acc) {
    size_t correct;
    int rc = glora_evaluate(m, cfg, ds, 256, &correct);
    *acc = (double)correct / (double)ds->n;
    return rc;
}

/* A fine-tuned backbone's trainable parameters (head excluded): the backbone
 * weights that differ from the backbone it started from. */
static int changed_params(const glora_run_t *r, const glora_vit_t *tuned, size_t *changed) {
    glora_vit_t *m0 = NULL;
    glora_vit_load_opts_t o;
    *changed = 0;
    load_opts_heads(r->cfg, &o);
    int rc = glora_vit_load_ex(&m0, r->backbone, NULL, &o);
    for (int i = 0; !rc && i < tuned->n_params; i++) {
        const glora_param_t *p = &tuned->params[i], *q = glora_vit_param(m0, p->name);
        if (p->role != GLORA_ROLE_BACKBONE || !q) continue;
        if (memcmp(tuned->mem + p->offset, m0->mem + q->offset, p->numel * sizeof(float)) != 0)
            *changed += p->numel;
    }
    glora_vit_free(m0);
    return rc;
}

/* The merged model is the retrained subnet folded in: the same count, kept
 * in its metadata. */
static size_t merged_params(const char *path) {
    glora_st_t *st;
    size_t n = 0;
    if (glora_st_open(&st, path) == GLORA_OK) {
        const char *p = glora_st_meta(st, GLORA_META_SUBNET_PARAMS);
        n = p ? (size_t)strtoull(p, NULL, 10) : 0;
        glora_st_close(st);
    }
    return n;
}

/* The splits of the final evaluation: val, test and the shifted copies. A
 * split of image files whose decoded pixels exceed max_memory (by default
 * half the RAM) is not loaded: each model reads it in pieces (*_big), as
 * glora eval does; the test split only when no shifted copy is asked. */
typedef struct {
    glora_dataset_t val, test, shifted[GLORA_RUN_MAX_SHIFTS];
    glora_split_t val_split, test_split;
    int have_val, have_test, val_big, test_big;
    size_t nshift;
} splits_t;

/* Whether s is image files whose decoded pixels would exceed s->max_memory
 * (at s->size, 3 channels: the most a split may take). */
static int split_too_big(const glora_split_t *s, int *big) {
    *big = 0;
    if (!(s->list || s->folder) || s->max_memory == 0 || s->size == 0) return GLORA_OK;
    glora_image_list_t l;
    int rc = s->list ? glora_image_list_read(&l, s->list, s->root, 0) : glora_image_folder_read(&l, s->folder);
    if (rc) return rc;
    size_t count = s->count ? s->count : s->start < l.n ? l.n - s->start : 0;
    glora_image_prep_t p = {.channels = 3, .size = s->size};
    *big = glora_image_split_bytes(count, &p) > s->max_memory;
    glora_image_list_free(&l);
    return GLORA_OK;
}

/* A split of the run's config into *ds (*have: whether the config names
 * one), its image files cached in the run's cache unless the split names
 * its own (IDX splits are never cached); or, when stream_ok and the split
 * is too big to load (split_too_big), only *s and *big = 1. */
static int load_or_mark(const glora_run_t *r, const char *split, int stream_ok, glora_dataset_t *ds, int *have,
                        glora_split_t *s, int *big) {
    memset(ds, 0, sizeof *ds);
    *big = 0;
    int rc = glora_split_from_config(s, r->cfg, split, "");
    if (!s->cache) s->cache = r->cache;
    *have = !rc && glora_split_given(s);
    if (rc || !*have) return rc;
    if (stream_ok && (rc = split_too_big(s, big))) return rc;
    return *big ? GLORA_OK : glora_split_load(ds, s, NULL);
}

static void splits_free(splits_t *s) {
    glora_dataset_free(&s->val);
    glora_dataset_free(&s->test);
    for (size_t j = 0; j < GLORA_RUN_MAX_SHIFTS; j++) glora_dataset_free(&s->shifted[j]);
}

static int splits_load(const glora_run_t *r, splits_t *s) {
    const glora_config_t *cfg = r->cfg;
    const char *const *shifts = glora_config_strings(cfg, "test_shifts", &s->nshift);
    int rc = load_or_mark(r, "val", 1, &s->val, &s->have_val, &s->val_split, &s->val_big);
    if (!rc) rc = load_or_mark(r, "test", s->nshift == 0, &s->test, &s->have_test, &s->test_split, &s->test_big);
    GLORA_ASSERT(s->nshift <= GLORA_RUN_MAX_SHIFTS);
    if (!s->have_test) s->nshift = 0; /* check_shifts refused that already */
    for (size_t j = 0; j < s->nshift && !rc; j++)
        rc = glora_dataset_shift(&s->test, shifts[j], (uint64_t)glora_config_int(cfg, "shift_seed"), &s->shifted[j]);
    return rc;
}

/* The accuracy of m on split s read in pieces of s->max_memory bytes. */
static int eval_pieces(const glora_vit_t *m, const glora_layer_cfg_t *cfg, const glora_split_t *s, double *acc) {
    glora_split_stream_t *st = NULL;
    glora_dataset_t ds = {0};
    size_t total = 0, correct = 0, n = 0, c;
    int rc = glora_split_stream_open(&st, s, &m->arch, &total);
    while (!rc && !(rc = glora_split_stream_next(st, &ds)) && ds.n > 0)
        if (!(rc = glora_evaluate(m, cfg, &ds, 256, &c))) correct += c, n += ds.n;
    glora_dataset_free(&ds);
    glora_split_stream_close(st);
    if (!rc) GLORA_ASSERT(n == total && n > 0);
    if (!rc) *acc = (double)correct / (double)n;
    return rc;
}

/* One model of the run on every split, into row. */
static int eval_model(const glora_run_t *r, const splits_t *s, const char *method, const char *adapter,
                      const char *backbone, const char *spec_path, glora_run_row_t *row) {
    glora_vit_t *m = NULL;
    glora_spec_t spec = {0};
    glora_vit_load_opts_t o;
    int have_spec = 0;
    load_opts_heads(r->cfg, &o);
    int rc = glora_vit_load_ex(&m, backbone, adapter, &o);
    if (!rc) rc = glora_subnet_load(m, spec_path, adapter, &spec, &have_spec);
    memset(row, 0, sizeof *row);
    row->method = method;
    row->params = have_spec ? spec.params : 0;
    const glora_layer_cfg_t *cfg = have_spec ? spec.cfg : NULL;
    if (!rc && backbone == r->merged) row->params = merged_params(r->merged);
    if (!rc && backbone == r->finetuned) rc = changed_params(r, m, &row->params);
    if (!rc && s->have_val) {
        rc = s->val_big ? eval_pieces(m, cfg, &s->val_split, &row->val) : eval_split(m, cfg, &s->val, &row->val);
        row->have_val = 1;
    }
    if (!rc && s->have_test) {
        rc = s->test_big ? eval_pieces(m, cfg, &s->test_split, &row->test) : eval_split(m, cfg, &s->test, &row->test);
        row->have_test = 1;
    }
    for (size_t j = 0; j < s->nshift && !rc; j++) rc = eval_split(m, cfg, &s->shifted[j], &row->shift[j]);
    glora_spec_free(&spec);
    glora_vit_free(m);
    return rc;
}

/* Every model the run made, on val, test and the shifted copies of test. */
static int final_eval(const glora_run_t *r, glora_run_summary_t *sum) {
    splits_t s = {0};
    int rc = splits_load(r, &s);
    int n = 0;
    if (!rc && exists(r->supernet) && exists(r->subnet))
        rc = eval_model(r, &s, "GLoRA subnet, supernet weights", r->supernet, r->backbone, r->subnet, &sum->rows[n++]);
    if (!rc && exists(r->adapter))
        rc = eval_model(r, &s, "GLoRA subnet, retrained", r->adapter, r->backbone, NULL, &sum->rows[n++]);
    if (!rc && exists(r->merged))
        rc = eval_model(r, &s, "merged into plain ViT", NULL, r->merged, NULL, &sum->rows[n++]);
    if (!rc && exists(r->finetuned))
        rc = eval_model(r, &s, sum->label, NULL, r->finetuned, NULL, &sum->rows[n++]);
    sum->nrows = n;
    splits_free(&s);
    return rc;
}

static int write_summary(const glora_run_t *r, const glora_run_summary_t *sum) {
    char path[2200];
    snprintf(path, sizeof path, "%s/summary.json", r->out);
    sbuf_t b = {0};
    sb_puts(&b, "{\n  \"name\": ");
    sb_jstr(&b, glora_config_string(r->cfg, "name"));
    sb_printf(&b, ",\n  \"threads\": %d,\n  \"rows\": [\n", glora_max_threads());
    size_t nshift;
    const char *const *shifts = glora_config_strings(r->cfg, "test_shifts", &nshift);
    for (int i = 0; i < sum->nrows; i++) {
        const glora_run_row_t *row = &sum->rows[i];
        sb_puts(&b, "    {\"method\": ");
        sb_jstr(&b, row->method);
        sb_printf(&b, ", \"params\": %zu", row->params);
        if (row->have_val) sb_printf(&b, ", \"val_accuracy\": %.6f", row->val);
        if (row->have_test) sb_printf(&b, ", \"test_accuracy\": %.6f", row->test);
        if (row->have_test && nshift > 0) {
            sb_puts(&b, ", \"shift_accuracy\": {");
            for (size_t j = 0; j < nshift; j++) {
                sb_puts(&b, j ? ", " : "");
                sb_jstr(&b, shifts[j]);
                sb_printf(&b, ": %.6f", row->shift[j]);
            }
            sb_puts(&b, "}");
        }
        sb_printf(&b, "}%s\n", i + 1 < sum->nrows ? "," : "");
    }
    sb_puts(&b, "  ],\n  \"stages\": {");
    int first = 1;
    for (int i = 0; glora_run_stage_names[i]; i++) {
        if (sum->seconds[i] < 0) continue;
        sb_printf(&b, "%s\"%s\": {\"seconds\": %.1f, \"skipped\": %s}", first ? "" : ", ", glora_run_stage_names[i],
                  sum->seconds[i], sum->skipped[i] ? "true" : "false");
        first = 0;
    }
    sb_puts(&b, "}\n}\n");
    int rc = b.failed ? glora_error(GLORA_ENOMEM, "summary '%s': out of memory", path)
                      : glora_write_atomic(path, b.buf, b.len);
    free(b.buf);
    return rc;
}

int glora_run_evaluate(glora_run_t *r, glora_run_summary_t *sum) {
    const char *lab = glora_config_string(r->cfg, "label");
    double t0 = glora_now();
    memset(sum, 0, sizeof *sum);
    snprintf(sum->label, sizeof sum->label, "%s", lab ? lab : "fine-tuned backbone");
    int rc = final_eval(r, sum);
    if (rc) return rc;
    r->seconds[EVAL] = glora_now() - t0;
    memcpy(sum->seconds, r->seconds, sizeof sum->seconds);
    memcpy(sum->skipped, r->skipped, sizeof sum->skipped);
    /* A named method (baseline configs) names the model it trained: the
     * retrained adapter, else the fine-tuned one. */
    sum->adapter_row = -1;
    for (int i = 0; i < sum->nrows; i++)
        if (strcmp(sum->rows[i].method, "GLoRA subnet, retrained") == 0) sum->adapter_row = i;
    /* Without retraining (run.stages without retrain) the supernet's row
     * keeps its own name: tables look it up by that name. */
    int named = sum->adapter_row >= 0 ? sum->adapter_row : 0;
    if (lab && sum->nrows > 0 && (sum->adapter_row >= 0 || strcmp(sum->rows[0].method, "GLoRA subnet, supernet weights") != 0))
        sum->rows[named].method = sum->label;
    return write_summary(r, sum);
}
