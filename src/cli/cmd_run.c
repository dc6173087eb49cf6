/* glora run: the whole pipeline from one YAML file.
 *
 * The file has one top-level section per stage, each read by that stage's
 * own command (--section), plus a `run` section for this command:
 *   run:      name, directory, shared backbone path, stages, val/test splits
 *   pretrain: glora pretrain's keys    (only when the backbone is missing)
 *   finetune: glora finetune's keys    (baselines)
 *   supernet: glora supernet's keys
 *   search:   glora search's keys
 *   retrain:  glora retrain's keys
 * Each stage is the library call its command makes (cli_stage_t), on that
 * section's config with the paths between stages filled in, so the sections
 * hold only settings. The run's own checkpoint, RUN/run.json, records each
 * finished stage and its time; a rerun skips finished stages and resumes an
 * interrupted one from the stage's checkpoint. The final evaluation is never
 * skipped: it is cheap next to training, and it can ask for more
 * (run.test_shifts) than the last time. */
#include "cli/cli.h"
#include "cli/cli_model.h"
#include "cli/commands.h"
#include "util/strbuf.h"

#include "util/comm.h"
#include "glora/common.h"
#include "glora/fileio.h"
#include "util/json-check.h"
#include "glora/parallel.h"
#include "glora/pipeline.h"
#include "glora/safetensors.h"
#include "glora/spec.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const all_stages[] = {"pretrain", "finetune", "supernet", "search", "retrain", "merge", "eval", NULL};
/* The kinds of glora_dataset_shift but clean: the test split itself is always evaluated. */
static const char *const test_shift_kinds[] = {"inverted", "rotated", "noisy", "blurred", NULL};

static const glora_config_key_t keys[] = {
    {"name", GLORA_CFG_STRING, NULL, "name of the run: its files go to DIR/NAME", 0, 0, NULL},
    {"dir", GLORA_CFG_STRING, "runs", "directory of all runs", 0, 0, NULL},
    {"backbone", GLORA_CFG_STRING, NULL, "pretrained backbone; made by the pretrain stage when missing "
                                             "(default DIR/NAME/backbone.safetensors)", 0, 0, NULL},
    {"supernet", GLORA_CFG_STRING, NULL, "supernet to use when the stages do not train one "
                                         "(default DIR/NAME/supernet.safetensors)", 0, 0, NULL},
    {"stages", GLORA_CFG_STRINGS, "[pretrain, supernet, search, retrain, merge, eval]",
     "stages to run, in pipeline order", 0, 0, all_stages},
    {"subnet", GLORA_CFG_STRING, NULL, "subnet spec to retrain when there is no search stage; or "
                                           "preset:lora4 (B = lora_4), preset:ssf (A, D, E = vector)", 0, 0, NULL},
    {"seed", GLORA_CFG_INT, "-1", "when >= 0, the seed of every stage after pretraining "
                                  "(training 'seed', search 'search.seed'); -1 keeps the sections' own", -1, 1e15, NULL},
    {"label", GLORA_CFG_STRING, NULL, "name of the method in the summary (default from the stages)", 0, 0, NULL},
    GLORA_SPLIT_KEYS("val", "validation"),
    GLORA_SPLIT_KEYS("test", "test"),
    {"test_shifts", GLORA_CFG_STRINGS, "[]", "domain-shifted copies of the test split every final model is "
                                             "also evaluated on (docs/formats.md)", 0, 0, test_shift_kinds},
    {"shift_seed", GLORA_CFG_INT, "0", "seed of the noisy shift", 0, 0, NULL},
    GLORA_SPLIT_NORM_KEYS(""),
    {"heads", GLORA_CFG_INT, "0", "attention heads if the backbone's metadata lacks them", 0, 1024, NULL},
};
static const glora_config_schema_t schema = GLORA_CONFIG_SCHEMA(keys);

static const cli_flag_t flags[] = {
    {"--name", "name", "NAME", "name of the run"},
    {"--dir", "dir", "DIR", "directory of all runs"},
};

static const cli_cmd_t cmd = {
    .name = "run",
    .synopsis = "CONFIG [--name NAME] [--set KEY=VALUE] [--threads N]",
    .summary =
        "Runs the whole GLoRA pipeline from one YAML file: data check, backbone\n"
        "(pretrained when the file is missing), supernet, search, retrain, merge and a\n"
        "final evaluation, with every artefact under DIR/NAME and a summary table at\n"
        "the end (also DIR/NAME/summary.json). Finished stages are skipped; an\n"
        "interrupted run continues where it stopped (delete DIR/NAME to start over).\n"
        "Each stage's settings are the section of CONFIG named after it, read by that\n"
        "command (see 'glora supernet --help' etc.); only the run section's keys are\n"
        "listed here. Example:\n"
        "  glora run configs/quickstart.yaml",
    .schema = &schema,
    .flags = flags,
    .n_flags = sizeof flags / sizeof flags[0],
};

typedef struct {
    const char *config;
    glora_dir_lock_t *lock; /* on out, held by the whole run */
    char out[2048];
    char backbone[2100], supernet[2100], search_dir[2100], adapter[2100], merged[2100], finetuned[2100];
    char subnet[2200];
    int64_t seed;        /* run.seed: >= 0 replaces the stages' own */
    double seconds[8];
    int skipped[8];
    int done[8];         /* finished in this or an earlier invocation (run.json) */
} run_t;

static int stage_index(const char *name) {
    for (int i = 0; all_stages[i]; i++)
        if (strcmp(all_stages[i], name) == 0) return i;
    return -1;
}

static int exists(const char *path) { return access(path, F_OK) == 0; }

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

/* The most shifted copies one run evaluates: each kind once (check_shifts). */
#define MAX_SHIFTS (sizeof test_shift_kinds / sizeof test_shift_kinds[0] - 1)

typedef struct {
    const char *method;
    size_t params;
    int have_val, have_test;
    double val, test;
    double shift[MAX_SHIFTS]; /* on the copies named by run.test_shifts, in its order */
} row_t;

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

static int eval_split(const glora_vit_t *m, const glora_layer_cfg_t *cfg, const glora_dataset_t *ds, double *acc) {
    size_t correct;
    int rc = glora_evaluate(m, cfg, ds, 256, &correct);
    *acc = (double)correct / (double)ds->n;
    return rc;
}

static int load_split(const glora_config_t *cfg, const char *split, glora_dataset_t *ds, int *have) {
    glora_split_t s;
    memset(ds, 0, sizeof *ds);
    int rc = glora_split_from_config(&s, cfg, split, "");
    *have = !rc && glora_split_given(&s);
    return rc || !*have ? rc : glora_split_load(ds, &s, NULL);
}

/* A fine-tuned backbone's trainable parameters (head excluded): the backbone
 * weights that differ from the backbone it started from. */
static int changed_params(const char *backbone, const glora_vit_t *tuned, int heads, size_t *changed) {
    glora_vit_t *m0 = NULL;
    *changed = 0;
    int rc = glora_vit_load(&m0, backbone, NULL, heads);
    for (int i = 0; !rc && i < tuned->n_params; i++) {
        const glora_param_t *p = &tuned->params[i], *q = glora_vit_param(m0, p->name);
        if (p->role != GLORA_ROLE_BACKBONE || !q) continue;
        if (memcmp(tuned->mem + p->offset, m0->mem + q->offset, p->numel * sizeof(float)) != 0)
            *changed += p->numel;
    }
    glora_vit_free(m0);
    return rc;
}

/* The final evaluation: every model the run made, on val, test and the
 * shifted copies of test. */
static int final_eval(const run_t *r, const glora_config_t *cfg, row_t *rows, int *nrows, char *label_buf) {
    glora_dataset_t val, test, shifted[MAX_SHIFTS] = {{0}};
    int have_val, have_test, rc;
    size_t nshift;
    const char *const *shifts = glora_config_strings(cfg, "test_shifts", &nshift);
    *nrows = 0;
    if ((rc = load_split(cfg, "val", &val, &have_val))) return rc;
    if ((rc = load_split(cfg, "test", &test, &have_test))) { glora_dataset_free(&val); return rc; }
    GLORA_ASSERT(nshift <= MAX_SHIFTS);
    if (!have_test) nshift = 0; /* check_shifts refused that already */
    for (size_t j = 0; j < nshift && !rc; j++)
        rc = glora_dataset_shift(&test, shifts[j], (uint64_t)glora_config_int(cfg, "shift_seed"), &shifted[j]);
    int heads = (int)glora_config_int(cfg, "heads");
    typedef struct { const char *method, *adapter, *backbone, *spec; } model_t;
    model_t what[4];
    int n = 0;
    if (exists(r->supernet) && exists(r->subnet))
        what[n++] = (model_t){"GLoRA subnet, supernet weights", r->supernet, r->backbone, r->subnet};
    if (exists(r->adapter))
        what[n++] = (model_t){"GLoRA subnet, retrained", r->adapter, r->backbone, NULL};
    if (exists(r->merged))
        what[n++] = (model_t){"merged into plain ViT", NULL, r->merged, NULL};
    if (exists(r->finetuned))
        what[n++] = (model_t){label_buf, NULL, r->finetuned, NULL};
    for (int i = 0; i < n && !rc; i++) {
        glora_vit_t *m = NULL;
        glora_spec_t spec = {0};
        int have_spec = 0;
        rc = glora_vit_load(&m, what[i].backbone, what[i].adapter, heads);
        if (!rc) rc = cli_load_subnet(m, what[i].spec, what[i].adapter, &spec, &have_spec);
        row_t *row = &rows[(*nrows)++];
        memset(row, 0, sizeof *row);
        row->method = what[i].method;
        row->params = have_spec ? spec.params : 0;
        if (!rc && what[i].backbone == r->merged) {
            /* The merged model is the retrained subnet folded in: same count. */
            glora_st_t *st;
            if (glora_st_open(&st, r->merged) == GLORA_OK) {
                const char *p = glora_st_meta(st, "glora.subnet_params");
                row->params = p ? (size_t)strtoull(p, NULL, 10) : 0;
                glora_st_close(st);
            }
        }
        if (!rc && what[i].backbone == r->finetuned) rc = changed_params(r->backbone, m, heads, &row->params);
        if (!rc && have_val) { rc = eval_split(m, have_spec ? spec.cfg : NULL, &val, &row->val); row->have_val = 1; }
        if (!rc && have_test) { rc = eval_split(m, have_spec ? spec.cfg : NULL, &test, &row->test); row->have_test = 1; }
        for (size_t j = 0; j < nshift && !rc; j++) rc = eval_split(m, have_spec ? spec.cfg : NULL, &shifted[j], &row->shift[j]);
        glora_spec_free(&spec);
        glora_vit_free(m);
    }
    glora_dataset_free(&val);
    glora_dataset_free(&test);
    for (size_t j = 0; j < MAX_SHIFTS; j++) glora_dataset_free(&shifted[j]);
    return rc;
}

static int write_summary(const run_t *r, const glora_config_t *cfg, const row_t *rows, int nrows) {
    char path[2200];
    snprintf(path, sizeof path, "%s/summary.json", r->out);
    sbuf_t b = {0};
    sb_puts(&b, "{\n  \"name\": ");
    sb_jstr(&b, glora_config_string(cfg, "name"));
    sb_printf(&b, ",\n  \"threads\": %d,\n  \"rows\": [\n", glora_max_threads());
    size_t nshift;
    const char *const *shifts = glora_config_strings(cfg, "test_shifts", &nshift);
    for (int i = 0; i < nrows; i++) {
        sb_puts(&b, "    {\"method\": ");
        sb_jstr(&b, rows[i].method);
        sb_printf(&b, ", \"params\": %zu", rows[i].params);
        if (rows[i].have_val) sb_printf(&b, ", \"val_accuracy\": %.6f", rows[i].val);
        if (rows[i].have_test) sb_printf(&b, ", \"test_accuracy\": %.6f", rows[i].test);
        if (rows[i].have_test && nshift > 0) {
            sb_puts(&b, ", \"shift_accuracy\": {");
            for (size_t j = 0; j < nshift; j++) {
                sb_puts(&b, j ? ", " : "");
                sb_jstr(&b, shifts[j]);
                sb_printf(&b, ": %.6f", rows[i].shift[j]);
            }
            sb_puts(&b, "}");
        }
        sb_printf(&b, "}%s\n", i + 1 < nrows ? "," : "");
    }
    sb_puts(&b, "  ],\n  \"stages\": {");
    int first = 1;
    for (int i = 0; all_stages[i]; i++) {
        if (r->seconds[i] < 0) continue;
        sb_printf(&b, "%s\"%s\": {\"seconds\": %.1f, \"skipped\": %s}", first ? "" : ", ", all_stages[i],
                  r->seconds[i], r->skipped[i] ? "true" : "false");
        first = 0;
    }
    sb_puts(&b, "}\n}\n");
    int rc = b.failed ? glora_error(GLORA_ENOMEM, "summary '%s': out of memory", path)
                      : glora_write_atomic(path, b.buf, b.len);
    free(b.buf);
    return rc;
}

static void print_summary(const run_t *r, const glora_config_t *cfg, const row_t *rows, int nrows) {
    size_t nshift;
    const char *const *shifts = glora_config_strings(cfg, "test_shifts", &nshift);
    printf("\n%-34s %12s %10s %10s", "method", "params", "val acc", "test acc");
    for (size_t j = 0; j < nshift; j++) printf(" %10.10s", shifts[j]);
    printf("\n");
    for (int i = 0; i < nrows; i++) {
        printf("%-34s %12zu", rows[i].method, rows[i].params);
        if (rows[i].have_val) printf(" %10.4f", rows[i].val); else printf(" %10s", "-");
        if (rows[i].have_test) printf(" %10.4f", rows[i].test); else printf(" %10s", "-");
        for (size_t j = 0; j < nshift; j++)
            if (rows[i].have_test) printf(" %10.4f", rows[i].shift[j]); else printf(" %10s", "-");
        printf("\n");
    }
    if (nshift > 0) printf("(columns after test acc: accuracy on shifted copies of the test split)\n");
    printf("(params: trainable GLoRA parameters or fine-tuned weights, head excluded)\nstages:");
    for (int i = 0; all_stages[i]; i++)
        if (r->seconds[i] >= 0)
            printf(" %s %.0fs%s", all_stages[i], r->seconds[i], r->skipped[i] ? " (done before)" : "");
    printf("\nfiles: %s\n", r->out);
}

/* ---- the run's own checkpoint: RUN/run.json -------------------------------
 * {"stages": {"<stage>": {"seconds": S}, ...}}: the stages that finished and
 * how long they took. */

static void state_path(const run_t *r, char *buf, size_t n) { snprintf(buf, n, "%s/run.json", r->out); }

static int load_state(run_t *r) {
    char path[2200], *text;
    size_t n;
    state_path(r, path, sizeof path);
    if (!exists(path)) return GLORA_OK;
    int rc = glora_read_file(path, 1 << 20, &text, &n);
    if (rc) return rc;
    cJSON *j = cJSON_Parse(text), *st = cJSON_GetObjectItemCaseSensitive(j, "stages");
    free(text);
    char dup[128];
    if (glora_json_find_dup(j, dup, sizeof dup) > 0)
        rc = glora_error(GLORA_EFORMAT, "run state '%s': key '%s' appears twice", path, dup);
    else if (!cJSON_IsObject(st)) rc = glora_error(GLORA_EFORMAT, "run state '%s': not a run checkpoint", path);
    for (int i = 0; !rc && all_stages[i]; i++) {
        cJSON *e = cJSON_GetObjectItemCaseSensitive(st, all_stages[i]);
        cJSON *sec = cJSON_GetObjectItemCaseSensitive(e, "seconds");
        if (!e) continue;
        if (!cJSON_IsNumber(sec) || !(sec->valuedouble >= 0))
            rc = glora_error(GLORA_EFORMAT, "run state '%s': stage '%s' has no valid seconds", path, all_stages[i]);
        else
            r->done[i] = 1, r->seconds[i] = sec->valuedouble;
    }
    cJSON_Delete(j);
    return rc;
}

static int save_state(const run_t *r) {
    char path[2200];
    state_path(r, path, sizeof path);
    sbuf_t b = {0};
    sb_puts(&b, "{\"stages\": {");
    int first = 1;
    for (int i = 0; all_stages[i]; i++) {
        if (!r->done[i]) continue;
        sb_printf(&b, "%s\"%s\": {\"seconds\": %.1f}", first ? "" : ", ", all_stages[i], r->seconds[i]);
        first = 0;
    }
    sb_puts(&b, "}}\n");
    int rc = b.failed ? glora_error(GLORA_ENOMEM, "run state '%s': out of memory", path)
                      : glora_write_atomic(path, b.buf, b.len);
    free(b.buf);
    return rc;
}

/* ---- the stages ------------------------------------------------------------- */

/* Runs one stage's library call on its section of the run's config (the
 * defaults when section is NULL) with the given string keys set (key, value,
 * ..., NULL) and, when seed_key is given, the run seed. */
static int call_stage(const run_t *r, const cli_stage_t *st, const char *section, const char *seed_key,
                      const char *const *set) {
    glora_config_t *c = NULL;
    int rc = section ? glora_config_load_section(&c, r->config, section, st->cmd->schema)
                     : glora_config_load(&c, NULL, st->cmd->schema);
    for (size_t i = 0; !rc && set[i]; i += 2) rc = glora_config_set_string(c, set[i], set[i + 1]);
    if (!rc && seed_key && r->seed >= 0) {
        char a[96];
        snprintf(a, sizeof a, "%s=%lld", seed_key, (long long)r->seed);
        rc = glora_config_set(c, a);
    }
    fflush(stdout);
    rc = rc ? cli_fail() : st->run(c, 1);
    fflush(stdout);
    /* Under MPI the ranks agree on the stage's outcome here, which also
     * keeps them from opening the stage's outputs before rank 0 renamed
     * them into place. */
    if (glora_comm_check(rc) && !rc) rc = cli_fail(); /* another rank failed: print it once */
    glora_config_free(c);
    return rc;
}

/* Stage si of all_stages (not eval). */
static int run_stage(const run_t *r, const glora_config_t *cfg, int si) {
    const char *stage = all_stages[si], *subnet_opt = glora_config_string(cfg, "subnet");
    if (strcmp(stage, "pretrain") == 0)
        return call_stage(r, &cli_stage_pretrain, stage, NULL, (const char *const[]){"output", r->backbone, NULL});
    if (strcmp(stage, "finetune") == 0)
        return call_stage(r, &cli_stage_finetune, stage, "seed",
                          (const char *const[]){"model.backbone", r->backbone, "output", r->finetuned, NULL});
    if (strcmp(stage, "supernet") == 0)
        return call_stage(r, &cli_stage_supernet, stage, "seed",
                          (const char *const[]){"model.backbone", r->backbone, "output", r->supernet, NULL});
    if (strcmp(stage, "search") == 0)
        return call_stage(r, &cli_stage_search, stage, "search.seed",
                          (const char *const[]){"model.backbone", r->backbone, "model.adapter", r->supernet,
                                                "output.dir", r->search_dir, NULL});
    if (strcmp(stage, "merge") == 0)
        return call_stage(r, &cli_stage_merge, NULL, NULL,
                          (const char *const[]){"model.backbone", r->backbone, "model.adapter", r->adapter,
                                                "output", r->merged, NULL});
    /* retrain: a preset subnet is written first; the supernet when there is one. */
    if (subnet_opt && strncmp(subnet_opt, "preset:", 7) == 0) {
        /* The fresh head takes the classes of the task's labels (a suite
         * task may have fewer than the backbone's head): those of the run's
         * val split when it has one. */
        glora_vit_t *m = NULL;
        glora_dataset_t v;
        int have_val = 0, classes = 0;
        int rc = load_split(cfg, "val", &v, &have_val);
        if (!rc && have_val) classes = v.num_classes;
        glora_dataset_free(&v);
        if (!rc) rc = glora_vit_load(&m, r->backbone, NULL, (int)glora_config_int(cfg, "heads"));
        if (!rc) rc = write_preset(m, subnet_opt, classes, r->subnet);
        glora_vit_free(m);
        if (glora_comm_check(rc)) return cli_fail(); /* MPI: rank 0 has written it */
    }
    const char *with[] = {"model.backbone", r->backbone, "subnet", r->subnet, "output", r->adapter,
                          "model.adapter", r->supernet, NULL};
    if (!exists(r->supernet)) with[6] = NULL;
    return call_stage(r, &cli_stage_retrain, stage, "seed", with);
}

/* Every wanted stage but eval, in pipeline order: finished ones skipped. */
static int run_stages(run_t *r, const glora_config_t *cfg, const int *want) {
    for (int si = 0; all_stages[si]; si++) {
        const char *stage = all_stages[si];
        /* The backbone is pretrained only when missing, whatever the list says. */
        if (si == 0 && exists(r->backbone)) {
            if (want[0]) r->seconds[0] = 0, r->skipped[0] = 1;
            continue;
        }
        if (si == 0 && !want[0]) {
            glora_error(GLORA_EINVAL, "run '%s': backbone '%s' is missing and the stages do not include pretrain",
                        r->config, r->backbone);
            return cli_fail();
        }
        if (!want[si] || strcmp(stage, "eval") == 0) continue;
        if (r->done[si]) {
            r->skipped[si] = 1;
            fprintf(stderr, "== %s: done before (%s/run.json), skipped\n", stage, r->out);
            continue;
        }
        fprintf(stderr, "== %s\n", stage);
        double t0 = glora_now();
        int rc = run_stage(r, cfg, si);
        r->seconds[si] = glora_now() - t0;
        if (rc != CLI_OK) {
            fprintf(stderr, "run: stage '%s' failed; fix the cause and run the same command again to continue\n", stage);
            return rc;
        }
        r->done[si] = 1;
        if (save_state(r)) return cli_fail();
    }
    return CLI_OK;
}

/* The final evaluation, the summary and the merged-vs-adapter check. */
static int final_stage(run_t *r, const glora_config_t *cfg) {
    fprintf(stderr, "== eval\n");
    double t0 = glora_now();
    row_t rows[8];
    int nrows = 0;
    char label[128];
    const char *lab = glora_config_string(cfg, "label");
    snprintf(label, sizeof label, "%s", lab ? lab : "fine-tuned backbone");
    if (final_eval(r, cfg, rows, &nrows, label) != GLORA_OK) return cli_fail();
    r->seconds[stage_index("eval")] = glora_now() - t0;
    int adapter_row = -1;
    for (int i = 0; i < nrows; i++)
        if (strcmp(rows[i].method, "GLoRA subnet, retrained") == 0) adapter_row = i;
    /* A named method (baseline configs) names the model it trained:
     * the retrained adapter, else the fine-tuned one. */
    if (lab && nrows > 0) rows[adapter_row >= 0 ? adapter_row : 0].method = label;
    if (write_summary(r, cfg, rows, nrows)) return cli_fail();
    print_summary(r, cfg, rows, nrows);
    /* The merged model must score what the retrained adapter scores, on
     * every copy of the test split. */
    const row_t *a = adapter_row >= 0 && adapter_row + 1 < nrows ? &rows[adapter_row] : NULL;
    if (a && strcmp(a[1].method, "merged into plain ViT") == 0 && a->have_test) {
        size_t nshift;
        const char *const *shifts = glora_config_strings(cfg, "test_shifts", &nshift);
        if (a->test != a[1].test)
            fprintf(stderr, "warning: merged test accuracy %.4f differs from the adapter's %.4f\n", a[1].test, a->test);
        for (size_t j = 0; j < nshift; j++)
            if (a->shift[j] != a[1].shift[j])
                fprintf(stderr, "warning: merged %s accuracy %.4f differs from the adapter's %.4f\n", shifts[j],
                        a[1].shift[j], a->shift[j]);
    }
    return CLI_OK;
}

/* The run's paths, its directory (with a copy of the config) and state. */
static int setup(run_t *r, const glora_config_t *cfg) {
    const char *dir = glora_config_string(cfg, "dir"), *name = glora_config_string(cfg, "name");
    const char *bb = glora_config_string(cfg, "backbone"), *sn = glora_config_string(cfg, "supernet");
    const char *subnet_opt = glora_config_string(cfg, "subnet");
    for (int i = 0; i < 8; i++) r->seconds[i] = -1;
    r->seed = glora_config_int(cfg, "seed");
    snprintf(r->out, sizeof r->out, "%s/%s", dir, name);
    snprintf(r->backbone, sizeof r->backbone, bb ? "%s" : "%s/backbone.safetensors", bb ? bb : r->out);
    snprintf(r->supernet, sizeof r->supernet, sn ? "%s" : "%s/supernet.safetensors", sn ? sn : r->out);
    snprintf(r->search_dir, sizeof r->search_dir, "%s/search", r->out);
    snprintf(r->adapter, sizeof r->adapter, "%s/adapter.safetensors", r->out);
    snprintf(r->merged, sizeof r->merged, "%s/merged.safetensors", r->out);
    snprintf(r->finetuned, sizeof r->finetuned, "%s/finetuned.safetensors", r->out);
    if (subnet_opt && strncmp(subnet_opt, "preset:", 7) != 0)
        snprintf(r->subnet, sizeof r->subnet, "%s", subnet_opt);
    else if (subnet_opt)
        snprintf(r->subnet, sizeof r->subnet, "%s/subnet.json", r->out);
    else
        snprintf(r->subnet, sizeof r->subnet, "%s/best.json", r->search_dir);
    int rc = glora_mkdir_p(r->out);
    /* One glora per run directory; then the temporaries a killed run left
     * (in the run directory and search/): by rank 0 alone under MPI, which
     * would otherwise remove rank 0's in-flight config.yaml temporary. */
    if (!rc) rc = glora_dir_lock(&r->lock, r->out);
    if (!rc && glora_comm_writer()) rc = glora_clean_temps(r->out, 1, NULL);
    /* Keep the config the run was made with beside its results. */
    char *text, path[2200];
    size_t n;
    snprintf(path, sizeof path, "%s/config.yaml", r->out);
    if (!rc && !(rc = glora_read_file(r->config, 1 << 20, &text, &n))) {
        rc = glora_write_atomic(path, text, n);
        free(text);
    }
    return rc ? rc : load_state(r);
}

int glora_cmd_run(int argc, char **argv) {
    /* The run section is this command's; the others belong to the stages. */
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--section") == 0) return cli_usage_error("run", "run reads its own 'run' section; no --section");
    char *av[64];
    int ac = 0;
    for (int i = 0; i < argc && ac < 60; i++) av[ac++] = argv[i];
    av[ac++] = "--section";
    av[ac++] = "run";
    av[ac] = NULL;
    cli_args_t args;
    int rc = cli_parse(&cmd, ac, av, &args);
    if (rc) return rc < 0 ? CLI_OK : rc;
    const glora_config_t *cfg = args.cfg;
    run_t r = {.config = args.config_path};
    if (!args.config_path) {
        rc = cli_usage_error("run", "which pipeline? give a YAML config, e.g. configs/quickstart.yaml");
    } else if (glora_config_require(cfg, "name") || check_shifts(cfg) || setup(&r, cfg)) {
        rc = cli_fail();
    } else {
        size_t nst;
        const char *const *st = glora_config_strings(cfg, "stages", &nst);
        int want[8] = {0};
        for (size_t i = 0; i < nst; i++) want[stage_index(st[i])] = 1;
        double t_all = glora_now();
        fprintf(stderr, "run '%s': stages", glora_config_string(cfg, "name"));
        for (size_t i = 0; i < nst; i++) fprintf(stderr, " %s", st[i]);
        fprintf(stderr, "; files in %s\n", r.out);
        rc = run_stages(&r, cfg, want);
        if (rc == CLI_OK && want[stage_index("eval")]) rc = final_stage(&r, cfg);
        if (rc == CLI_OK) fprintf(stderr, "run '%s' finished in %.0fs\n", glora_config_string(cfg, "name"), glora_now() - t_all);
    }
    glora_dir_unlock(r.lock);
    cli_args_free(&args);
    return rc;
}
