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
 * This command fills in every path between stages (--set), so the sections
 * hold only settings. Each stage leaves a marker in RUN/stages/ when it ends;
 * a rerun skips finished stages and resumes an interrupted one from its
 * checkpoint. The final evaluation is never skipped: it is cheap next to
 * training, and it can ask for more (run.test_shifts) than the last time. */
#include "cli/cli.h"
#include "cli/cli_model.h"
#include "cli/commands.h"
#include "util/strbuf.h"

#include "glora/common.h"
#include "glora/fileio.h"
#include "glora/parallel.h"
#include "glora/pipeline.h"
#include "glora/safetensors.h"
#include "glora/spec.h"

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
    char out[2048];
    char backbone[2100], supernet[2100], search_dir[2100], adapter[2100], merged[2100], finetuned[2100];
    char subnet[2200];
    double seconds[8];
    int skipped[8];
} run_t;

static int stage_index(const char *name) {
    for (int i = 0; all_stages[i]; i++)
        if (strcmp(all_stages[i], name) == 0) return i;
    return -1;
}

static int exists(const char *path) { return access(path, F_OK) == 0; }

static void marker_path(const run_t *r, const char *stage, char *buf, size_t n) {
    snprintf(buf, n, "%s/stages/%s.done", r->out, stage);
}

/* Calls a command with a NULL-terminated list of arguments. */
static int call(int (*fn)(int, char **), const char *name, ...) {
    char *argv[64];
    int argc = 0;
    argv[argc++] = (char *)name;
    va_list ap;
    va_start(ap, name);
    for (char *a; (a = va_arg(ap, char *)) != NULL && argc < 63;) argv[argc++] = a;
    va_end(ap);
    argv[argc] = NULL;
    fflush(stdout);
    int rc = fn(argc, argv);
    fflush(stdout);
    return rc;
}

static char *setkv(char *buf, size_t n, const char *key, const char *value) {
    snprintf(buf, n, "%s=%s", key, value);
    return buf;
}

/* A subnet spec for a preset method on the backbone's architecture. */
static int write_preset(const glora_vit_t *m, const char *preset, const char *path) {
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
    if (!glora_config_string(cfg, "test.images") || !glora_config_string(cfg, "test.labels"))
        return glora_config_error(cfg, "test_shifts", "needs a test split (test.images, test.labels) to shift");
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < i; j++)
            if (strcmp(v[i], v[j]) == 0) return glora_config_error(cfg, "test_shifts", "lists '%s' twice", v[i]);
    return GLORA_OK;
}

static int eval_split(const glora_vit_t *m, const glora_layer_cfg_t *cfg, const glora_dataset_t *ds, double *acc) {
    glora_vit_linears_t *lin = NULL;
    glora_vit_acts_t *acts = NULL;
    size_t batch = ds->n < 256 ? ds->n : 256;
    int rc = glora_vit_linears_create(&lin, m);
    if (!rc) rc = glora_vit_acts_create(&acts, m, batch, 0);
    if (!rc) {
        glora_vit_linears_set(lin, m, cfg);
        size_t correct;
        rc = glora_eval_correct(m, lin, acts, ds, &correct);
        *acc = (double)correct / (double)ds->n;
    }
    glora_vit_linears_free(lin);
    glora_vit_acts_free(acts);
    return rc;
}

static int load_split(const glora_config_t *cfg, const char *split, glora_dataset_t *ds, int *have) {
    glora_split_t s;
    memset(ds, 0, sizeof *ds);
    int rc = glora_split_from_config(&s, cfg, split, "");
    *have = !rc && s.images;
    return rc || !s.images ? rc : glora_split_load(ds, &s, NULL);
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
        if (!rc && what[i].backbone == r->finetuned) {
            /* A fine-tuned backbone: its trainable parameters are in the
             * marker written by the stage (head excluded). */
            char mk[2200];
            marker_path(r, "finetune", mk, sizeof mk);
            FILE *f = fopen(mk, "r");
            unsigned long long p = 0;
            if (f) {
                if (fscanf(f, "%*f %llu", &p) != 1) p = 0;
                fclose(f);
            }
            row->params = (size_t)p;
        }
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

int glora_cmd_run(int argc, char **argv) {
    cli_args_t args;
    int rc = CLI_OK;
    /* The run section is this command's; the others belong to the stages. */
    int has_section = 0;
    for (int i = 1; i < argc; i++) has_section |= strcmp(argv[i], "--section") == 0;
    if (has_section) return cli_usage_error("run", "run reads its own 'run' section; no --section");
    char *av[64];
    int ac = 0;
    for (int i = 0; i < argc && ac < 60; i++) av[ac++] = argv[i];
    av[ac++] = "--section";
    av[ac++] = "run";
    av[ac] = NULL;
    int prc = cli_parse(&cmd, ac, av, &args);
    if (prc) return prc < 0 ? CLI_OK : prc;
    const glora_config_t *cfg = args.cfg;
    if (!args.config_path) {
        cli_args_free(&args);
        return cli_usage_error("run", "which pipeline? give a YAML config, e.g. configs/quickstart.yaml");
    }
    if (glora_config_require(cfg, "name") || check_shifts(cfg)) { cli_args_free(&args); return cli_fail(); }
    run_t r = {.config = args.config_path};
    for (int i = 0; i < 8; i++) r.seconds[i] = -1;
    snprintf(r.out, sizeof r.out, "%s/%s", glora_config_string(cfg, "dir"), glora_config_string(cfg, "name"));
    if (glora_config_string(cfg, "backbone"))
        snprintf(r.backbone, sizeof r.backbone, "%s", glora_config_string(cfg, "backbone"));
    else
        snprintf(r.backbone, sizeof r.backbone, "%s/backbone.safetensors", r.out);
    if (glora_config_string(cfg, "supernet"))
        snprintf(r.supernet, sizeof r.supernet, "%s", glora_config_string(cfg, "supernet"));
    else
        snprintf(r.supernet, sizeof r.supernet, "%s/supernet.safetensors", r.out);
    snprintf(r.search_dir, sizeof r.search_dir, "%s/search", r.out);
    snprintf(r.adapter, sizeof r.adapter, "%s/adapter.safetensors", r.out);
    snprintf(r.merged, sizeof r.merged, "%s/merged.safetensors", r.out);
    snprintf(r.finetuned, sizeof r.finetuned, "%s/finetuned.safetensors", r.out);
    char stages_dir[2100];
    snprintf(stages_dir, sizeof stages_dir, "%s/stages", r.out);
    if (glora_mkdir_p(stages_dir)) { cli_args_free(&args); return cli_fail(); }
    /* Keep the config the run was made with beside its results. */
    {
        char *text, path[2200];
        size_t n;
        snprintf(path, sizeof path, "%s/config.yaml", r.out);
        if (glora_read_file(args.config_path, 1 << 20, &text, &n) || glora_write_atomic(path, text, n)) {
            cli_args_free(&args);
            return cli_fail();
        }
        free(text);
    }

    size_t nst;
    const char *const *st = glora_config_strings(cfg, "stages", &nst);
    int want[8] = {0};
    for (size_t i = 0; i < nst; i++) want[stage_index(st[i])] = 1;
    const char *subnet_opt = glora_config_string(cfg, "subnet");
    if (subnet_opt && strncmp(subnet_opt, "preset:", 7) != 0)
        snprintf(r.subnet, sizeof r.subnet, "%s", subnet_opt);
    else if (subnet_opt)
        snprintf(r.subnet, sizeof r.subnet, "%s/subnet.json", r.out);
    else
        snprintf(r.subnet, sizeof r.subnet, "%s/best.json", r.search_dir);

    char s1[2300], s2[2300], s3[2300], s4[2300];
    /* With a run seed, the stages after pretraining get "--set seed=N" as
     * their last arguments; without, a NULL there ends the list early. */
    int64_t seed = glora_config_int(cfg, "seed");
    char train_seed[64], search_seed[64];
    snprintf(train_seed, sizeof train_seed, "seed=%lld", (long long)seed);
    snprintf(search_seed, sizeof search_seed, "search.seed=%lld", (long long)seed);
    const char *conf = args.config_path;
    double t_all = glora_now();
    fprintf(stderr, "run '%s': stages", glora_config_string(cfg, "name"));
    for (size_t i = 0; i < nst; i++) fprintf(stderr, " %s", st[i]);
    fprintf(stderr, "; files in %s\n", r.out);

    for (int si = 0; all_stages[si] && rc == CLI_OK; si++) {
        const char *stage = all_stages[si];
        /* The backbone is pretrained only when missing, whatever the list says. */
        if (si == 0 && exists(r.backbone)) {
            if (want[0]) { r.seconds[0] = 0; r.skipped[0] = 1; }
            continue;
        }
        if (si == 0 && !want[0]) {
            glora_error(GLORA_EINVAL, "run '%s': backbone '%s' is missing and the stages do not include pretrain",
                        conf, r.backbone);
            rc = cli_fail();
            break;
        }
        if (!want[si] || si == stage_index("eval")) continue;
        char mk[2200];
        marker_path(&r, stage, mk, sizeof mk);
        if (exists(mk)) {
            FILE *f = fopen(mk, "r");
            if (f) {
                if (fscanf(f, "%lf", &r.seconds[si]) != 1) r.seconds[si] = 0;
                fclose(f);
            }
            r.skipped[si] = 1;
            fprintf(stderr, "== %s: done before (%s), skipped\n", stage, mk);
            continue;
        }
        fprintf(stderr, "== %s\n", stage);
        double t0 = glora_now();
        char extra[64] = "";
        if (si == stage_index("pretrain")) {
            rc = call(glora_cmd_pretrain, "pretrain", conf, "--section", "pretrain", "--resume", "--set",
                      setkv(s1, sizeof s1, "output", r.backbone), NULL);
        } else if (si == stage_index("finetune")) {
            rc = call(glora_cmd_finetune, "finetune", conf, "--section", "finetune", "--resume", "--set",
                      setkv(s1, sizeof s1, "model.backbone", r.backbone), "--set",
                      setkv(s2, sizeof s2, "output", r.finetuned), seed >= 0 ? "--set" : NULL, train_seed, NULL);
            /* Trainable parameters, head excluded, for the summary. */
            if (rc == CLI_OK) {
                glora_vit_t *m0 = NULL, *m1 = NULL;
                size_t changed = 0;
                if (!glora_vit_load(&m0, r.backbone, NULL, (int)glora_config_int(cfg, "heads")) &&
                    !glora_vit_load(&m1, r.finetuned, NULL, (int)glora_config_int(cfg, "heads"))) {
                    for (int i = 0; i < m1->n_params; i++) {
                        const glora_param_t *p = &m1->params[i], *q = glora_vit_param(m0, p->name);
                        if (p->role != GLORA_ROLE_BACKBONE || !q) continue;
                        if (memcmp(m1->mem + p->offset, m0->mem + q->offset, p->numel * sizeof(float)) != 0)
                            changed += p->numel;
                    }
                }
                glora_vit_free(m0);
                glora_vit_free(m1);
                snprintf(extra, sizeof extra, " %zu", changed);
            }
        } else if (si == stage_index("supernet")) {
            rc = call(glora_cmd_supernet, "supernet", conf, "--section", "supernet", "--resume", "--set",
                      setkv(s1, sizeof s1, "model.backbone", r.backbone), "--set",
                      setkv(s2, sizeof s2, "output", r.supernet), seed >= 0 ? "--set" : NULL, train_seed, NULL);
        } else if (si == stage_index("search")) {
            rc = call(glora_cmd_search, "search", conf, "--section", "search", "--resume", "--set",
                      setkv(s1, sizeof s1, "model.backbone", r.backbone), "--set",
                      setkv(s2, sizeof s2, "model.adapter", r.supernet), "--set",
                      setkv(s3, sizeof s3, "output.dir", r.search_dir), seed >= 0 ? "--set" : NULL, search_seed, NULL);
        } else if (si == stage_index("retrain")) {
            if (subnet_opt && strncmp(subnet_opt, "preset:", 7) == 0) {
                glora_vit_t *m = NULL;
                if (glora_vit_load(&m, r.backbone, NULL, (int)glora_config_int(cfg, "heads")) ||
                    write_preset(m, subnet_opt, r.subnet)) {
                    glora_vit_free(m);
                    rc = cli_fail();
                    break;
                }
                glora_vit_free(m);
            }
            if (exists(r.supernet))
                rc = call(glora_cmd_retrain, "retrain", conf, "--section", "retrain", "--resume", "--set",
                          setkv(s1, sizeof s1, "model.backbone", r.backbone), "--set",
                          setkv(s2, sizeof s2, "model.adapter", r.supernet), "--set",
                          setkv(s3, sizeof s3, "subnet", r.subnet), "--set",
                          setkv(s4, sizeof s4, "output", r.adapter), seed >= 0 ? "--set" : NULL, train_seed, NULL);
            else
                rc = call(glora_cmd_retrain, "retrain", conf, "--section", "retrain", "--resume", "--set",
                          setkv(s1, sizeof s1, "model.backbone", r.backbone), "--set",
                          setkv(s3, sizeof s3, "subnet", r.subnet), "--set",
                          setkv(s4, sizeof s4, "output", r.adapter), seed >= 0 ? "--set" : NULL, train_seed, NULL);
        } else if (si == stage_index("merge")) {
            rc = call(glora_cmd_merge, "merge", "--model", r.backbone, "--adapter", r.adapter, "-o", r.merged, NULL);
        }
        r.seconds[si] = glora_now() - t0;
        if (rc != CLI_OK) {
            fprintf(stderr, "run: stage '%s' failed; fix the cause and run the same command again to continue\n", stage);
            break;
        }
        char line[128];
        int n = snprintf(line, sizeof line, "%.1f%s\n", r.seconds[si], extra);
        if (glora_write_atomic(mk, line, (size_t)n)) { rc = cli_fail(); break; }
    }
    if (rc == CLI_OK && want[stage_index("eval")]) {
        fprintf(stderr, "== eval\n");
        double t0 = glora_now();
        row_t rows[8];
        int nrows = 0;
        char label[128];
        const char *lab = glora_config_string(cfg, "label");
        snprintf(label, sizeof label, "%s", lab ? lab : "fine-tuned backbone");
        if (final_eval(&r, cfg, rows, &nrows, label) != GLORA_OK) {
            rc = cli_fail();
        } else {
            r.seconds[stage_index("eval")] = glora_now() - t0;
            int adapter_row = -1;
            for (int i = 0; i < nrows; i++)
                if (strcmp(rows[i].method, "GLoRA subnet, retrained") == 0) adapter_row = i;
            /* A named method (baseline configs) names the model it trained:
             * the retrained adapter, else the fine-tuned one. */
            if (lab && nrows > 0) rows[adapter_row >= 0 ? adapter_row : 0].method = label;
            if (write_summary(&r, cfg, rows, nrows)) rc = cli_fail();
            else print_summary(&r, cfg, rows, nrows);
            /* The merged model must score what the retrained adapter scores,
             * on every copy of the test split. */
            const row_t *a = adapter_row >= 0 && adapter_row + 1 < nrows ? &rows[adapter_row] : NULL;
            if (a && strcmp(a[1].method, "merged into plain ViT") == 0 && a->have_test) {
                size_t nshift;
                const char *const *shifts = glora_config_strings(cfg, "test_shifts", &nshift);
                if (a->test != a[1].test)
                    fprintf(stderr, "warning: merged test accuracy %.4f differs from the adapter's %.4f\n",
                            a[1].test, a->test);
                for (size_t j = 0; j < nshift; j++)
                    if (a->shift[j] != a[1].shift[j])
                        fprintf(stderr, "warning: merged %s accuracy %.4f differs from the adapter's %.4f\n",
                                shifts[j], a[1].shift[j], a->shift[j]);
            }
        }
    }
    if (rc == CLI_OK) fprintf(stderr, "run '%s' finished in %.0fs\n", glora_config_string(cfg, "name"), glora_now() - t_all);
    cli_args_free(&args);
    return rc;
}
