/* glora search: the evolutionary layer-wise structure search on a supernet,
 * driven by a YAML config, resumable (--resume), writing best.json,
 * pareto.json, best-under-<budget>.json and history.jsonl (glora/search.h). */
#include "cli/cli.h"
#include "cli/cli_model.h"
#include "cli/commands.h"

#include "glora/common.h"
#include "glora/fileio.h"
#include "glora/parallel.h"
#include "glora/pipeline.h"
#include "glora/search.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const glora_config_key_t keys[] = {
    CLI_MODEL_KEYS,
    CLI_DATA_KEYS,
    {"output.dir", GLORA_CFG_STRING, "runs/search", "directory of the checkpoint and the results", 0, 0, NULL, GLORA_CFG_NOT_IDENTITY},
    GLORA_SEARCH_KEYS,
    CLI_PRECISION_KEY("search"),
};
static const glora_config_schema_t schema = GLORA_CONFIG_SCHEMA(keys);

static const cli_flag_t flags[] = {
    {"--resume", NULL, NULL, "continue the search from output.dir/checkpoint.json"},
    {"--model", "model.backbone", "FILE", "backbone safetensors file"},
    {"--supernet", "model.adapter", "FILE", "supernet safetensors file"},
    {"--output", "output.dir", "DIR", "output directory"},
    {"--seed", "search.seed", "N", "random seed"},
};

static const cli_cmd_t cmd = {
    .name = "search",
    .synopsis = "CONFIG [--resume] [--set key=value ...] [--threads N]",
    .summary =
        "Evolutionary layer-wise search of a GLoRA subnet on a trained supernet (the official\n"
        "AutoFormer/NOAH algorithm): candidates are scored by top-1 accuracy on the data.*\n"
        "split with weights inherited from the supernet, under a parameter budget. Writes\n"
        "best.json (a subnet spec for eval, retrain and merge), pareto.json,\n"
        "best-under-<budget>.json, history.jsonl and checkpoint.json into output.dir after\n"
        "every generation; --resume continues a stopped or killed search exactly. The result\n"
        "depends on the config, the supernet, the data and the seed, not on --threads.\n"
        "Example:\n"
        "  glora search configs/search-fashion1k.yaml --threads 2",
    .schema = &schema,
    .flags = flags,
    .n_flags = sizeof flags / sizeof flags[0],
};

/* ---- resume: refuse a changed config, naming what changed ---- */

static int check_same_config(const glora_config_t *cfg, const char *saved_path) {
    if (access(saved_path, R_OK) != 0) return 0; /* the engine still compares the hash */
    glora_config_t *old;
    if (glora_config_load(&old, saved_path, &schema) != GLORA_OK) return 0;
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

/* ---- progress ---- */

typedef struct {
    char header[256]; /* printed with the first batch, so errors stay one line */
    int tty;
    int generations;
    int gen;
    int resume;
    const char *dir;
} progress_t;

static void on_batch(void *ctx, int gen, size_t n) {
    progress_t *p = ctx;
    p->gen = gen;
    if (p->header[0]) {
        fputs(p->header, stderr);
        p->header[0] = 0;
    }
    if (p->tty) fprintf(stderr, "\rgeneration %d/%d: evaluating 0/%zu candidates\033[K", gen, p->generations, n);
}

static void on_tick(void *ctx, size_t done, size_t total) {
    progress_t *p = ctx;
    if (p->tty) fprintf(stderr, "\rgeneration %d/%d: evaluating %zu/%zu candidates\033[K", p->gen,
                        p->generations, done, total);
}

static void on_generation(void *ctx, const glora_search_gen_t *g) {
    progress_t *p = ctx;
    char h[32];
    fprintf(stderr, "%sgeneration %d/%d: best %.4f (%s params), parents mean %.4f, %zu evaluated "
                    "(%zu total), %.1f s\n",
            p->tty ? "\r\033[K" : "", g->generation, p->generations, g->best_acc,
            cli_human((double)g->best_params, h), g->parents_mean_acc, g->evaluated,
            g->evaluated_total, g->seconds);
}

static void on_start(void *ctx, int resumed_after, size_t evaluated) {
    const progress_t *p = ctx;
    if (resumed_after >= 0)
        fprintf(stderr, "resuming after generation %d of %d (%zu candidates evaluated)\n", resumed_after,
                p->generations, evaluated);
    else if (p->resume)
        fprintf(stderr, "no checkpoint in '%s': starting the search afresh\n", p->dir);
}

static void print_result(const glora_search_opts_t *o, const glora_search_result_t *r, const char *dir) {
    if (r->best >= 0)
        printf("best: val accuracy %.4f, %zu GLoRA parameters, found in generation %d: %s/best.json\n",
               r->best_acc, r->best_params, r->best_generation, dir);
    for (int i = 0; i < o->n_budgets; i++) {
        char b[32];
        glora_search_budget_str(o->budgets[i], b);
        if (r->budget_best[i] < 0)
            printf("under %s: no candidate evaluated\n", b);
        else
            printf("under %s: val accuracy %.4f, %zu parameters: %s/best-under-%s.json\n", b,
                   r->budget_acc[i], r->budget_params[i], dir, b);
    }
}

/* The search on a loaded config: the config's checks, then the stage. */
static int search_stage(const glora_config_t *cfg, int resume) {
    glora_vit_t *m = NULL;
    glora_dataset_t ds = {0};
    glora_search_layer_t *L = NULL;
    char *dump = NULL, sha[65], hash[65], path[4200];
    const char *supernet = glora_config_string(cfg, "model.adapter");
    const char *dir = glora_config_string(cfg, "output.dir");
    glora_search_setup_t st = {.dir = dir, .resume = resume, .identity = hash, .supernet_sha256 = sha,
                               .batch = (size_t)glora_config_int(cfg, "search.batch"), .start = on_start};
    int rc = GLORA_OK;
    if (!dir[0]) {
        rc = glora_error(GLORA_EINVAL, "config key 'output.dir': is empty");
    } else if (!supernet || !supernet[0]) {
        rc = glora_error(GLORA_EINVAL, "config key 'model.adapter': the search needs a supernet");
        glora_error_hint("set model.adapter (or --supernet FILE) to a file written by 'glora supernet'");
    }
    if (rc || (rc = glora_search_opts_from_config(cfg, &st.opts)) || (rc = cli_load_model(cfg, &m))) goto out;
    cli_set_precision(cfg, "search.precision", m);
    if ((rc = glora_search_vit_layers(m, &L)) || (rc = glora_search_space_from_config(cfg, m, L))) goto out;
    if ((rc = glora_sha256_file(supernet, sha)) || (rc = cli_load_split(cfg, "data", m, &ds))) goto out;
    if (ds.n == 0) {
        rc = glora_error(GLORA_EINVAL, "data '%s': the split is empty", glora_config_string(cfg, "data.images"));
        goto out;
    }
    snprintf(path, sizeof path, "%s/config.yaml", dir);
    if ((rc = glora_config_hash(cfg, hash))) goto out;
    char ckpt[4200];
    snprintf(ckpt, sizeof ckpt, "%s/checkpoint.json", dir);
    if (resume && access(ckpt, F_OK) == 0 && (rc = check_same_config(cfg, path))) goto out;
    if ((rc = glora_config_dump(cfg, &dump))) goto out;
    progress_t prog = {.tty = cli_is_tty(), .generations = st.opts.generations, .resume = resume, .dir = dir};
    char lo[32], hi[32];
    snprintf(prog.header, sizeof prog.header,
             "search: %d layers, %zu validation images, %d threads, budget [%s, %s] params\n",
             glora_vit_layers(m), ds.n, glora_max_threads(), cli_human((double)st.opts.min_params, lo),
             st.opts.max_params ? cli_human((double)st.opts.max_params, hi) : "unbounded");
    glora_search_hooks_t hooks = {.batch = on_batch, .generation = on_generation, .ctx = &prog};
    st.supernet = m;
    st.val = &ds;
    st.layers = L;
    st.config_yaml = dump;
    st.hooks = &hooks;
    if (prog.tty) {
        st.tick = on_tick;
        st.tick_ctx = &prog;
    }
    glora_search_result_t res;
    rc = glora_search_supernet(&st, &res);
    if (rc && prog.tty) fprintf(stderr, "\n");
    if (!rc) print_result(&st.opts, &res, dir);
out:
    free(L);
    free(dump);
    glora_dataset_free(&ds);
    glora_vit_free(m);
    return rc ? cli_fail() : CLI_OK;
}

const cli_stage_t cli_stage_search = {&cmd, search_stage};

int glora_cmd_search(int argc, char **argv) { return cli_run_stage(&cli_stage_search, argc, argv); }
