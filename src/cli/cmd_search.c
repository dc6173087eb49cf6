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

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SPACE_KEYS(prefix, def, what)                                                          \
    {prefix ".A", GLORA_CFG_STRINGS, def, "choices of A " what " (lora_<r>, vector, scalar, none)", 0, 0, NULL}, \
    {prefix ".B", GLORA_CFG_STRINGS, def, "choices of B " what " (lora_<r>, vector, scalar, none)", 0, 0, NULL}, \
    {prefix ".C", GLORA_CFG_STRINGS, def, "choices of C " what " (lora_<r>, vector, none)", 0, 0, NULL},         \
    {prefix ".D", GLORA_CFG_STRINGS, def, "choices of D " what " (vector, scalar, none)", 0, 0, NULL},           \
    {prefix ".E", GLORA_CFG_STRINGS, def, "choices of E " what " (vector, scalar, none)", 0, 0, NULL}

static const glora_config_key_t keys[] = {
    CLI_MODEL_KEYS,
    CLI_DATA_KEYS,
    {"output.dir", GLORA_CFG_STRING, "runs/search", "directory of the checkpoint and the results", 0, 0, NULL, GLORA_CFG_NOT_IDENTITY},
    {"search.population", GLORA_CFG_INT, "50", "candidates per generation", 1, 1000000, NULL},
    {"search.parents", GLORA_CFG_INT, "10", "top candidates kept as parents", 1, 1000000, NULL},
    {"search.mutations", GLORA_CFG_INT, "25", "mutated children per generation", 0, 1000000, NULL},
    {"search.crossovers", GLORA_CFG_INT, "25", "crossover children per generation", 0, 1000000, NULL},
    {"search.mutation_prob", GLORA_CFG_NUMBER, "0.2", "probability that a mutation redraws a gene", 0, 1, NULL},
    {"search.max_tries", GLORA_CFG_INT, "10", "attempts per wanted child", 1, 1000000, NULL},
    {"search.generations", GLORA_CFG_INT, "20", "generations after the random generation 0", 0, 1000000, NULL},
    {"search.seed", GLORA_CFG_INT, "1", "random seed of the search", 0, 9007199254740992.0, NULL},
    {"search.min_params", GLORA_CFG_SIZE, "0", "fewest GLoRA parameters of a candidate (K/M suffix)", 0, 0, NULL},
    {"search.max_params", GLORA_CFG_SIZE, "0", "most GLoRA parameters of a candidate (0: no limit)", 0, 0, NULL},
    {"search.extra_budgets", GLORA_CFG_SIZES, "[]", "smaller budgets searched alongside (a population each), for best-under-<budget>.json", 0, 0, NULL},
    CLI_PRECISION_KEY("search"),
    {"search.batch", GLORA_CFG_INT, "32", "images per forward pass of one candidate (results do not depend on it)", 1, 65536, NULL, GLORA_CFG_NOT_IDENTITY},
    {"search.space.ranks", GLORA_CFG_INTS, "[]", "LoRA ranks of the default space (default: the supernet's)", 1, 64, NULL},
    SPACE_KEYS("search.space", "[]", "for every layer (default: official)"),
    SPACE_KEYS("search.space.override.*", "[]", "for the layers named by *: qkv, proj, fc1, fc2, block<i>, block<i>_<kind>"),
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

/* ---- search space from the config ---- */

static const char *const letters = "ABCDE";

/* Applies the lists given under prefix ("search.space" or
 * "search.space.override.fc1") to the layers select picks. */
static int apply_lists(const glora_config_t *cfg, const char *prefix, const char *select,
                       glora_search_layer_t *L, int n, int rank) {
    glora_search_space_rule_t rule = {.select = select, .key = prefix};
    int any = 0;
    for (int t = 0; t < GLORA_NTENSORS; t++) {
        char key[128];
        snprintf(key, sizeof key, "%s.%c", prefix, letters[t]);
        if (!glora_config_is_set(cfg, key)) continue;
        rule.choices[t] = glora_config_strings(cfg, key, &rule.n[t]);
        if (rule.n[t] == 0) return glora_config_error(cfg, key, "is an empty list of choices");
        any = 1;
    }
    if (!any) return 0;
    int rc = glora_search_space_apply(L, n, &rule, rank);
    if (rc == GLORA_EINVAL && glora_errhint() == NULL) /* a bad list, not a selector */
        glora_error_hint("choices are lora_<r> (r <= the supernet's rank %d), vector, scalar, none; "
                         "C has no scalar, D and E no lora", rank);
    return rc;
}

/* Engine selector of an override name: qkv/proj/fc1/fc2, block<i>,
 * block<i>_<kind>; 0 if the name is none of these. */
static int override_selector(const char *name, int depth, char *sel, size_t size, int *order) {
    static const char *const kinds[] = {"qkv", "proj", "fc1", "fc2"};
    static const char *const sites[] = {"attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2"};
    for (int k = 0; k < 4; k++)
        if (strcmp(name, kinds[k]) == 0) {
            snprintf(sel, size, "%s", kinds[k]);
            *order = 0;
            return 1;
        }
    if (strncmp(name, "block", 5) != 0 || !isdigit((unsigned char)name[5])) return 0;
    char *end;
    long b = strtol(name + 5, &end, 10);
    if (b < 0 || b >= depth) return 0;
    if (*end == 0) {
        snprintf(sel, size, "blocks.%ld", b);
        *order = 1;
        return 1;
    }
    if (*end != '_') return 0;
    for (int k = 0; k < 4; k++)
        if (strcmp(end + 1, kinds[k]) == 0) {
            snprintf(sel, size, "blocks.%ld.%s", b, sites[k]);
            *order = 2;
            return 1;
        }
    return 0;
}

/* The per-layer spaces: official at the supernet's rank (or at each of
 * search.space.ranks), then search.space.*, then the overrides: layer kinds
 * first, then blocks, then single layers, so the most specific one wins. */
static int build_space(const glora_config_t *cfg, const glora_vit_t *m, glora_search_layer_t *L) {
    int n = glora_vit_layers(m), rank = m->rank, rc;
    size_t nr;
    const int64_t *ranks = glora_config_ints(cfg, "search.space.ranks", &nr);
    if (glora_config_is_set(cfg, "search.space.ranks")) {
        if (nr == 0) return glora_config_error(cfg, "search.space.ranks", "is an empty list of ranks");
        if (nr > GLORA_SPACE_MAX - 3)
            return glora_config_error(cfg, "search.space.ranks", "lists %zu ranks, at most %d", nr,
                                      GLORA_SPACE_MAX - 3);
        for (size_t i = 0; i < nr; i++) {
            if (ranks[i] < 1 || ranks[i] > rank) {
                rc = glora_config_error(cfg, "search.space.ranks", "rank %lld is above the supernet's rank %d",
                                        (long long)ranks[i], rank);
                return rc;
            }
            for (size_t j = 0; j < i; j++)
                if (ranks[j] == ranks[i])
                    return glora_config_error(cfg, "search.space.ranks", "lists rank %lld twice",
                                              (long long)ranks[i]);
        }
        /* lora_R of the official space becomes one lora_r per listed rank. */
        for (int l = 0; l < n; l++)
            for (int t = GLORA_A; t <= GLORA_C; t++) {
                glora_space_t *sp = &L[l].space;
                glora_choice_t rest[GLORA_SPACE_MAX];
                int nrest = 0;
                for (int k = 0; k < sp->n[t]; k++)
                    if (sp->opt[t][k].kind != GLORA_LORA) rest[nrest++] = sp->opt[t][k];
                int k = 0;
                for (size_t i = 0; i < nr; i++)
                    sp->opt[t][k++] = (glora_choice_t){GLORA_LORA, (uint8_t)ranks[i]};
                for (int i = 0; i < nrest; i++) sp->opt[t][k++] = rest[i];
                sp->n[t] = k;
            }
    }
    if ((rc = apply_lists(cfg, "search.space", NULL, L, n, rank))) return rc;
    for (int pass = 0; pass < 3; pass++) {
        const char *name;
        for (size_t i = 0; (name = glora_config_map_key(cfg, "search.space.override", i)) != NULL; i++) {
            char sel[64], prefix[128];
            int order;
            snprintf(prefix, sizeof prefix, "search.space.override.%s", name);
            if (!override_selector(name, m->arch.depth, sel, sizeof sel, &order)) {
                rc = glora_error(GLORA_EINVAL,
                                 "config key '%s': '%s' names no layers (use qkv, proj, fc1, fc2, "
                                 "block<i> or block<i>_<kind> with i < %d)",
                                 prefix, name, m->arch.depth);
                return rc;
            }
            if (order != pass) continue;
            if ((rc = apply_lists(cfg, prefix, sel, L, n, rank))) return rc;
        }
    }
    return 0;
}

static int read_opts(const glora_config_t *cfg, glora_search_opts_t *o) {
    glora_search_opts_default(o);
    o->population = (int)glora_config_int(cfg, "search.population");
    o->parents = (int)glora_config_int(cfg, "search.parents");
    o->mutations = (int)glora_config_int(cfg, "search.mutations");
    o->crossovers = (int)glora_config_int(cfg, "search.crossovers");
    o->mutation_prob = glora_config_number(cfg, "search.mutation_prob");
    o->max_tries = (int)glora_config_int(cfg, "search.max_tries");
    o->generations = (int)glora_config_int(cfg, "search.generations");
    o->seed = (uint64_t)glora_config_int(cfg, "search.seed");
    o->min_params = glora_config_size(cfg, "search.min_params");
    o->max_params = glora_config_size(cfg, "search.max_params");
    size_t nb;
    const size_t *b = glora_config_sizes(cfg, "search.extra_budgets", &nb);
    if (nb > GLORA_SEARCH_MAX_BUDGETS)
        return glora_config_error(cfg, "search.extra_budgets", "lists %zu budgets, at most %d", nb,
                                  GLORA_SEARCH_MAX_BUDGETS);
    for (size_t i = 0; i < nb; i++) o->budgets[i] = b[i];
    o->n_budgets = (int)nb;
    return glora_search_opts_check(o);
}

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
    if (rc || (rc = read_opts(cfg, &st.opts)) || (rc = cli_load_model(cfg, &m))) goto out;
    cli_set_precision(cfg, "search.precision", m);
    if ((rc = glora_search_vit_layers(m, &L)) || (rc = build_space(cfg, m, L))) goto out;
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
