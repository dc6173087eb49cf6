/* The search's settings from a config: its keys (GLORA_SEARCH_KEYS in
 * glora/search.h), the options and the per-layer spaces. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "glora/common.h"
#include "glora/search.h"


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
int glora_search_space_from_config(const glora_config_t *cfg, const glora_vit_t *m, glora_search_layer_t *L) {
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

/* search.preset official: the official algorithm (glora/search.h, docs/config.md)
 * whatever the defaults become. Each key it pins takes the preset's value; a
 * key also set in the config must say the same. */
static int apply_official(const glora_config_t *cfg, glora_search_opts_t *o) {
    /* Each pinned key, its value and the option it sets (an int, or the one
     * double, mutation_prob). */
    const struct { const char *key; double value; int *i; double *d; } pins[] = {
        {"search.population", 50, &o->population, NULL}, {"search.parents", 10, &o->parents, NULL},
        {"search.mutations", 25, &o->mutations, NULL}, {"search.crossovers", 25, &o->crossovers, NULL},
        {"search.mutation_prob", 0.2, NULL, &o->mutation_prob}, {"search.max_tries", 10, &o->max_tries, NULL},
        {"search.generations", 20, &o->generations, NULL},
    };
    if (glora_config_int(cfg, "search.cv_folds") >= 2)
        return glora_config_error(cfg, "search.cv_folds", "is %lld, but search.preset official scores on one split "
                                  "(0)", (long long)glora_config_int(cfg, "search.cv_folds"));
    for (size_t i = 0; i < sizeof pins / sizeof *pins; i++) {
        const char *key = pins[i].key;
        double now = pins[i].d ? glora_config_number(cfg, key) : (double)glora_config_int(cfg, key);
        if (glora_config_is_set(cfg, key) && now != pins[i].value)
            return glora_config_error(cfg, key, "is %g, but search.preset official fixes it to %g", now,
                                      pins[i].value);
        if (pins[i].d) *pins[i].d = pins[i].value;
        else *pins[i].i = (int)pins[i].value;
    }
    if (glora_config_is_set(cfg, "search.fitness") && strcmp(glora_config_string(cfg, "search.fitness"), "accuracy"))
        return glora_config_error(cfg, "search.fitness", "is %s, but search.preset official fixes it to accuracy",
                                  glora_config_string(cfg, "search.fitness"));
    if (glora_config_bool(cfg, "search.fill_budget"))
        return glora_config_error(cfg, "search.fill_budget", "is true, but search.preset official fixes it to false");
    o->fitness = GLORA_FITNESS_ACCURACY;
    o->fill_budget = 0;
    /* The official space at the supernet's rank. */
    static const char *const space_keys[] = {"search.space.ranks", "search.space.A", "search.space.B",
                                             "search.space.C", "search.space.D", "search.space.E"};
    for (size_t i = 0; i < sizeof space_keys / sizeof *space_keys; i++)
        if (glora_config_is_set(cfg, space_keys[i]))
            return glora_config_error(cfg, space_keys[i], "is set, but search.preset official fixes the "
                                      "official search space");
    if (glora_config_map_key(cfg, "search.space.override", 0) != NULL)
        return glora_config_error(cfg, "search.space.override", "is set, but search.preset official fixes "
                                  "the official search space");
    return 0;
}

int glora_search_opts_from_config(const glora_config_t *cfg, glora_search_opts_t *o) {
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
    const char *fit = glora_config_string(cfg, "search.fitness");
    for (int i = 0; glora_search_fitness_names[i]; i++)
        if (fit && strcmp(fit, glora_search_fitness_names[i]) == 0) o->fitness = (glora_search_fitness_t)i;
    o->fill_budget = glora_config_bool(cfg, "search.fill_budget");
    o->min_budget_fraction = glora_config_number(cfg, "search.min_budget_fraction");
    if (o->fill_budget && !(o->min_budget_fraction > 0))
        return glora_config_error(cfg, "search.min_budget_fraction", "is 0; with search.fill_budget it must "
                                  "be in (0, 1]");
    if (o->fill_budget && o->max_params == 0)
        return glora_config_error(cfg, "search.fill_budget", "needs a budget: set search.max_params");
    const char *preset = glora_config_string(cfg, "search.preset");
    int rc = preset && strcmp(preset, "official") == 0 ? apply_official(cfg, o) : 0;
    return rc ? rc : glora_search_opts_check(o);
}

