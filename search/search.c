/* The evolutionary search: state, breeding, ranking, the generation loop
 * (see glora/search.h for the algorithm and its fixes of the official code). */
#include "search/search-impl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "glora/common.h"
#include "util/fileio.h"
#include "util/comm.h"

const char *const glora_search_fitness_names[] = {"accuracy", "loglik", "accuracy+loss", NULL};
const char *const glora_search_presets[] = {"none", "official", NULL};

void glora_search_opts_default(glora_search_opts_t *o) {
    memset(o, 0, sizeof *o);
    o->population = 50;
    o->parents = 10;
    o->mutations = 25;
    o->crossovers = 25;
    o->mutation_prob = 0.2;
    o->max_tries = 10;
    o->generations = 20;
    o->min_budget_fraction = 0.9;
    o->stop_after = -1;
}

int glora_search_opts_check(const glora_search_opts_t *o) {
    if (o->population < 1 || o->population > 1000000)
        return glora_error(GLORA_EINVAL, "option 'search.population': %d is not in [1, 1000000]",
                           o->population);
    if (o->parents < 1 || o->parents > o->population)
        return glora_error(GLORA_EINVAL,
                           "option 'search.parents': %d is not in [1, population = %d]",
                           o->parents, o->population);
    if (o->mutations < 0 || o->mutations > o->population)
        return glora_error(GLORA_EINVAL,
                           "option 'search.mutations': %d is not in [0, population = %d]",
                           o->mutations, o->population);
    if (o->crossovers < 0 || o->crossovers > o->population - o->mutations)
        return glora_error(GLORA_EINVAL,
                           "option 'search.crossovers': %d is not in [0, population - "
                           "mutations = %d]",
                           o->crossovers, o->population - o->mutations);
    if (!(o->mutation_prob >= 0.0 && o->mutation_prob <= 1.0))
        return glora_error(GLORA_EINVAL, "option 'search.mutation_prob': %g is not in [0, 1]",
                           o->mutation_prob);
    if (o->max_tries < 1 || o->max_tries > 1000000)
        return glora_error(GLORA_EINVAL, "option 'search.max_tries': %d is not in [1, 1000000]",
                           o->max_tries);
    if (o->generations < 0 || o->generations > 1000000)
        return glora_error(GLORA_EINVAL,
                           "option 'search.generations': %d is not in [0, 1000000]",
                           o->generations);
    if (o->max_params != 0 && o->min_params > o->max_params)
        return glora_error(GLORA_EINVAL,
                           "option 'search.min_params': %zu is above search.max_params = %zu",
                           o->min_params, o->max_params);
    if (o->fitness < GLORA_FITNESS_ACCURACY || o->fitness > GLORA_FITNESS_ACC_LOSS)
        return glora_error(GLORA_EINVAL, "option 'search.fitness': %d is not a fitness", (int)o->fitness);
    if (o->fill_budget && !(o->min_budget_fraction > 0.0 && o->min_budget_fraction <= 1.0))
        return glora_error(GLORA_EINVAL, "option 'search.min_budget_fraction': %g is not in (0, 1]",
                           o->min_budget_fraction);
    if (o->fill_budget && o->max_params == 0)
        return glora_error(GLORA_EINVAL, "option 'search.fill_budget': needs a budget "
                                         "(search.max_params > 0)");
    if (o->n_budgets < 0 || o->n_budgets > GLORA_SEARCH_MAX_BUDGETS)
        return glora_error(GLORA_EINVAL,
                           "option 'search.extra_budgets': %d budgets, at most %d allowed",
                           o->n_budgets, GLORA_SEARCH_MAX_BUDGETS);
    for (int i = 0; i < o->n_budgets; i++) {
        if (o->budgets[i] == 0)
            return glora_error(GLORA_EINVAL, "option 'search.extra_budgets[%d]': must be > 0", i);
        if (o->budgets[i] < o->min_params)
            return glora_error(GLORA_EINVAL,
                               "option 'search.extra_budgets[%d]': %zu is below search.min_params "
                               "= %zu", i, o->budgets[i], o->min_params);
        for (int j = 0; j < i; j++)
            if (o->budgets[j] == o->budgets[i])
                return glora_error(GLORA_EINVAL,
                                   "option 'search.extra_budgets[%d]': %zu is listed twice", i,
                                   o->budgets[i]);
    }
    return 0;
}

size_t glora_search_params(const glora_search_problem_t *p, const glora_layer_cfg_t *cand) {
    size_t total = 0;
    for (int l = 0; l < p->n_layers; l++)
        total += glora_layer_params(&cand[l], p->layers[l].out, p->layers[l].in);
    return total;
}

/* ---- candidate store and the "seen" set ---- */

static uint64_t genes_hash(const glora_layer_cfg_t *g, int n_layers) {
    const uint8_t *p = (const uint8_t *)g;
    size_t n = (size_t)n_layers * sizeof *g;
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 1099511628211ull;
    }
    return h ^ (h >> 29);
}

static const glora_layer_cfg_t *genes_of(const struct glora_search *s, size_t i) {
    return s->genes + i * (size_t)s->p.n_layers;
}

long search_find(const struct glora_search *s, const glora_layer_cfg_t *genes) {
    if (s->table_cap == 0) return -1;
    size_t mask = s->table_cap - 1;
    size_t bytes = (size_t)s->p.n_layers * sizeof *genes;
    for (size_t h = genes_hash(genes, s->p.n_layers) & mask;; h = (h + 1) & mask) {
        uint32_t v = s->table[h];
        if (v == 0) return -1;
        if (memcmp(genes_of(s, v - 1), genes, bytes) == 0) return (long)(v - 1);
    }
}

static void table_insert(struct glora_search *s, size_t idx) {
    size_t mask = s->table_cap - 1;
    size_t h = genes_hash(genes_of(s, idx), s->p.n_layers) & mask;
    while (s->table[h] != 0) h = (h + 1) & mask;
    s->table[h] = (uint32_t)(idx + 1);
}

int search_add(struct glora_search *s, const glora_layer_cfg_t *genes, size_t params, int gen,
               char *enc) {
    size_t nl = (size_t)s->p.n_layers;
    if (enc == NULL) {
        enc = glora_search_encode(genes, s->p.n_layers);
        if (!enc) return glora_error(GLORA_ENOMEM, "search: out of memory for a candidate");
    }
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 256, bytes;
        if (cap > UINT32_MAX - 1 || glora_size_mul(cap, nl * sizeof *genes, &bytes)) {
            free(enc);
            return glora_error(GLORA_ENOMEM, "search: too many candidates (%zu)", s->n);
        }
        cand_t *c = realloc(s->c, cap * sizeof *c);
        if (c) s->c = c;
        glora_layer_cfg_t *g = c ? realloc(s->genes, bytes) : NULL;
        if (!c || !g) {
            free(enc);
            return glora_error(GLORA_ENOMEM, "search: out of memory for %zu candidates", cap);
        }
        s->genes = g;
        s->cap = cap;
    }
    if (2 * (s->n + 1) > s->table_cap) { /* keep the load at most 1/2 */
        size_t cap = s->table_cap ? 2 * s->table_cap : 1024;
        uint32_t *t = calloc(cap, sizeof *t);
        if (!t) {
            free(enc);
            return glora_error(GLORA_ENOMEM, "search: out of memory for the candidate index");
        }
        free(s->table);
        s->table = t;
        s->table_cap = cap;
        for (size_t i = 0; i < s->n; i++) table_insert(s, i);
    }
    memcpy(s->genes + s->n * nl, genes, nl * sizeof *genes);
    s->c[s->n] = (cand_t){.params = params, .acc = NAN, .loss = NAN, .gen = gen, .enc = enc};
    table_insert(s, s->n);
    s->n++;
    return 0;
}

int search_cand_cmp(const struct glora_search *s, size_t a, size_t b) {
    const cand_t *x = &s->c[a], *y = &s->c[b];
    if (s->o.fitness != GLORA_FITNESS_LOGLIK && x->acc != y->acc) return x->acc > y->acc ? -1 : 1;
    if (s->o.fitness != GLORA_FITNESS_ACCURACY && x->loss != y->loss) return x->loss < y->loss ? -1 : 1;
    if (x->params != y->params) return x->params < y->params ? -1 : 1;
    return strcmp(x->enc, y->enc);
}

/* ---- life cycle ---- */

int glora_search_create(glora_search_t **out, const glora_search_problem_t *p,
                        const glora_search_opts_t *o, const char *config_hash,
                        const char *supernet_sha256) {
    *out = NULL;
    if (p->n_layers < 1 || !p->layers || !p->evaluate)
        return glora_error(GLORA_EINVAL, "search problem: needs layers and an evaluator");
    int rc = glora_search_opts_check(o);
    if (rc) return rc;
    if (o->fitness != GLORA_FITNESS_ACCURACY && (!p->score || p->n_items == 0))
        return glora_error(GLORA_EINVAL, "option 'search.fitness': %s needs an evaluator of losses",
                           glora_search_fitness_names[o->fitness]);
    for (int l = 0; l < p->n_layers; l++) {
        const glora_search_layer_t *L = &p->layers[l];
        if (L->out < 1 || L->in < 1)
            return glora_error(GLORA_EINVAL, "search layer '%s': bad shape %d x %d", L->name,
                               L->out, L->in);
        for (int t = 0; t < GLORA_NTENSORS; t++) {
            if (L->space.n[t] < 1 || L->space.n[t] > GLORA_SPACE_MAX)
                return glora_error(GLORA_EINVAL, "search layer '%s': tensor %s has %d options",
                                   L->name, glora_tensor_letter(t), L->space.n[t]);
            for (int k = 0; k < L->space.n[t]; k++)
                if (!glora_choice_valid(t, L->space.opt[t][k]))
                    return glora_error(GLORA_EINVAL,
                                       "search layer '%s': option %d of tensor %s is not legal",
                                       L->name, k, glora_tensor_letter(t));
        }
    }
    if (config_hash && strlen(config_hash) >= sizeof ((glora_search_t *)0)->config_hash)
        return glora_error(GLORA_EINVAL, "search: config hash '%s' is too long", config_hash);
    if (p->data_sha256 && strlen(p->data_sha256) > 64)
        return glora_error(GLORA_EINVAL, "search: data sha256 '%s' is too long", p->data_sha256);
    if (supernet_sha256 && strlen(supernet_sha256) > 64)
        return glora_error(GLORA_EINVAL, "search: supernet sha256 '%s' is too long",
                           supernet_sha256);
    glora_search_t *s = calloc(1, sizeof *s);
    if (!s) return glora_error(GLORA_ENOMEM, "search: out of memory");
    s->n_tiers = 1;
    s->tier_max[0] = o->max_params;
    s->tier_budget[0] = -1;
    for (int i = 0; i < o->n_budgets; i++)
        if (o->max_params == 0 || o->budgets[i] < o->max_params) {
            s->tier_max[s->n_tiers] = o->budgets[i];
            s->tier_budget[s->n_tiers++] = i;
        }
    for (int t = 0; t < s->n_tiers; t++) {
        s->tier_min[t] = o->min_params;
        if (o->fill_budget) {
            size_t lo = (size_t)ceil(o->min_budget_fraction * (double)s->tier_max[t]);
            if (lo > s->tier_max[t]) lo = s->tier_max[t];
            if (lo > s->tier_min[t]) s->tier_min[t] = lo;
        }
    }
    s->layers = malloc((size_t)p->n_layers * sizeof *s->layers);
    s->parents = malloc((size_t)s->n_tiers * (size_t)o->parents * sizeof *s->parents);
    s->hist = malloc(((size_t)o->generations + 1) * sizeof *s->hist);
    s->cost = malloc((size_t)p->n_layers * GLORA_NTENSORS * GLORA_SPACE_MAX * sizeof *s->cost);
    if (!s->layers || !s->parents || !s->hist || !s->cost) {
        glora_search_free(s);
        return glora_error(GLORA_ENOMEM, "search: out of memory");
    }
    memcpy(s->layers, p->layers, (size_t)p->n_layers * sizeof *s->layers);
    for (int l = 0; l < p->n_layers; l++)
        for (int t = 0; t < GLORA_NTENSORS; t++)
            for (int k = 0; k < s->layers[l].space.n[t]; k++) {
                glora_layer_cfg_t one;
                memset(&one, 0, sizeof one); /* all none */
                one.t[t] = s->layers[l].space.opt[t][k];
                s->cost[((size_t)l * GLORA_NTENSORS + t) * GLORA_SPACE_MAX + k] =
                    glora_layer_params(&one, s->layers[l].out, s->layers[l].in);
            }
    s->p = *p;
    s->p.layers = s->layers;
    s->o = *o;
    snprintf(s->config_hash, sizeof s->config_hash, "%s", config_hash ? config_hash : "");
    snprintf(s->supernet_sha256, sizeof s->supernet_sha256, "%s",
             supernet_sha256 ? supernet_sha256 : "");
    snprintf(s->data_sha256, sizeof s->data_sha256, "%s", p->data_sha256 ? p->data_sha256 : "");
    s->p.data_sha256 = s->data_sha256;
    glora_rng_seed(&s->rng, o->seed);
    s->generation = -1;
    *out = s;
    return 0;
}

void glora_search_free(glora_search_t *s) {
    if (!s) return;
    for (size_t i = 0; i < s->n; i++) free(s->c[i].enc);
    free(s->c);
    free(s->genes);
    free(s->table);
    free(s->layers);
    free(s->parents);
    free(s->hist);
    free(s->cost);
    free(s);
}

int glora_search_generation(const glora_search_t *s) { return s->generation; }
int glora_search_done(const glora_search_t *s) { return s->generation >= s->o.generations; }
size_t glora_search_n_evaluated(const glora_search_t *s) { return s->n; }

const glora_layer_cfg_t *glora_search_candidate(const glora_search_t *s, size_t i,
                                                size_t *params, double *acc, int *generation) {
    GLORA_ASSERT(i < s->n);
    if (params) *params = s->c[i].params;
    if (acc) *acc = s->c[i].acc;
    if (generation) *generation = s->c[i].gen;
    return genes_of(s, i);
}

double glora_search_candidate_loss(const glora_search_t *s, size_t i) {
    GLORA_ASSERT(i < s->n);
    return s->c[i].loss;
}

const char *glora_search_encoding(const glora_search_t *s, size_t i) {
    GLORA_ASSERT(i < s->n);
    return s->c[i].enc;
}

long glora_search_best(const glora_search_t *s, size_t budget) {
    long best = -1;
    for (size_t i = 0; i < s->n; i++) {
        if (budget && s->c[i].params > budget) continue;
        if (isnan(s->c[i].acc)) continue;
        if (best < 0 || search_cand_cmp(s, i, (size_t)best) < 0) best = (long)i;
    }
    return best;
}

/* ---- breeding ---- */

static int within(const struct glora_search *s, size_t params, int tier) {
    size_t max = s->tier_max[tier];
    return params >= s->tier_min[tier] && (max == 0 || params <= max);
}

/* Adds child to the generation if it is within the tier's budget and new.
 * Returns 1 if added, 0 if skipped, <0 on error. */
static int offer(struct glora_search *s, const glora_layer_cfg_t *child, size_t params, int gen,
                 int tier) {
    if (!within(s, params, tier)) return 0;
    if (search_find(s, child) >= 0) return 0;
    int rc = search_add(s, child, params, gen, NULL);
    return rc ? rc : 1;
}

static size_t option_cost(const struct glora_search *s, int l, int t, int k) {
    return s->cost[((size_t)l * GLORA_NTENSORS + t) * GLORA_SPACE_MAX + k];
}

static int option_index(const struct glora_search *s, int l, int t, glora_choice_t c) {
    const glora_space_t *sp = &s->layers[l].space;
    for (int k = 0; k < sp->n[t]; k++)
        if (glora_choice_eq(sp->opt[t][k], c)) return k;
    GLORA_ASSERT(!"choice outside the layer's space");
    return -1;
}

static glora_choice_t draw_option(struct glora_search *s, int l, int t) {
    const glora_space_t *sp = &s->layers[l].space;
    return sp->opt[t][glora_rng_below(&s->rng, (uint64_t)sp->n[t])];
}

static void random_candidate(struct glora_search *s, glora_layer_cfg_t *child) {
    for (int l = 0; l < s->p.n_layers; l++)
        for (int t = 0; t < GLORA_NTENSORS; t++) child[l].t[t] = draw_option(s, l, t);
}

/* Brings a random candidate above max params down to the budget: a gene
 * drawn uniformly among those with a cheaper option is redrawn uniformly
 * among its cheaper options, until the candidate fits. Used only when
 * max_tries uniform draws in a row were all too large (tight budgets, where
 * the official rejection sampling would loop for ever). Returns the new
 * parameter count, or params unchanged if it cannot fit. */
static size_t shrink(struct glora_search *s, glora_layer_cfg_t *child, size_t params, size_t max) {
    int nl = s->p.n_layers;
    while (params > max) {
        uint64_t movable = 0;
        for (int l = 0; l < nl; l++)
            for (int t = 0; t < GLORA_NTENSORS; t++) {
                size_t cur = option_cost(s, l, t, option_index(s, l, t, child[l].t[t]));
                for (int k = 0; k < s->layers[l].space.n[t]; k++)
                    if (option_cost(s, l, t, k) < cur) {
                        movable++;
                        break;
                    }
            }
        if (movable == 0) return params;
        uint64_t pick = glora_rng_below(&s->rng, movable);
        for (int l = 0; l < nl; l++)
            for (int t = 0; t < GLORA_NTENSORS; t++) {
                size_t cur = option_cost(s, l, t, option_index(s, l, t, child[l].t[t]));
                int cheaper[GLORA_SPACE_MAX], nc = 0;
                for (int k = 0; k < s->layers[l].space.n[t]; k++)
                    if (option_cost(s, l, t, k) < cur) cheaper[nc++] = k;
                if (nc == 0) continue;
                if (pick-- > 0) continue;
                int k = cheaper[glora_rng_below(&s->rng, (uint64_t)nc)];
                child[l].t[t] = s->layers[l].space.opt[t][k];
                params -= cur - option_cost(s, l, t, k);
                goto next;
            }
    next:;
    }
    return params;
}

/* fill_budget: brings a random candidate below the tier's lower bound up:
 * a gene drawn uniformly among those with a costlier option that still
 * fits under max is redrawn uniformly among those options, until the
 * candidate reaches min. Returns the new parameter count (below min only
 * when no gene can grow within max). */
static size_t grow(struct glora_search *s, glora_layer_cfg_t *child, size_t params, size_t min,
                   size_t max) {
    int nl = s->p.n_layers;
    while (params < min) {
        uint64_t movable = 0;
        for (int pass = 0; pass < 2; pass++) {
            uint64_t pick = pass ? glora_rng_below(&s->rng, movable) : 0;
            for (int l = 0; l < nl; l++)
                for (int t = 0; t < GLORA_NTENSORS; t++) {
                    size_t cur = option_cost(s, l, t, option_index(s, l, t, child[l].t[t]));
                    int dearer[GLORA_SPACE_MAX], nd = 0;
                    for (int k = 0; k < s->layers[l].space.n[t]; k++) {
                        size_t c = option_cost(s, l, t, k);
                        if (c > cur && params - cur + c <= max) dearer[nd++] = k;
                    }
                    if (nd == 0) continue;
                    if (pass == 0) {
                        movable++;
                        continue;
                    }
                    if (pick-- > 0) continue;
                    int k = dearer[glora_rng_below(&s->rng, (uint64_t)nd)];
                    child[l].t[t] = s->layers[l].space.opt[t][k];
                    params = params - cur + option_cost(s, l, t, k);
                    goto next;
                }
            if (movable == 0) return params;
        }
    next:;
    }
    return params;
}

static void mutate(struct glora_search *s, glora_layer_cfg_t *child, const size_t *parents, int np) {
    size_t pi = parents[glora_rng_below(&s->rng, (uint64_t)np)];
    memcpy(child, genes_of(s, pi), (size_t)s->p.n_layers * sizeof *child);
    for (int l = 0; l < s->p.n_layers; l++)
        for (int t = 0; t < GLORA_NTENSORS; t++)
            if (glora_rng_uniform(&s->rng) < s->o.mutation_prob) child[l].t[t] = draw_option(s, l, t);
}

/* Two distinct parents when there are two (identical parents could only
 * reproduce a candidate already seen). */
static void crossover(struct glora_search *s, glora_layer_cfg_t *child, const size_t *parents,
                      int np) {
    uint64_t i = glora_rng_below(&s->rng, (uint64_t)np), j = i;
    if (np > 1) {
        j = glora_rng_below(&s->rng, (uint64_t)np - 1);
        if (j >= i) j++;
    }
    const glora_layer_cfg_t *a = genes_of(s, parents[i]), *b = genes_of(s, parents[j]);
    for (int l = 0; l < s->p.n_layers; l++)
        for (int t = 0; t < GLORA_NTENSORS; t++)
            child[l].t[t] = (glora_rng_u64(&s->rng) >> 63) ? b[l].t[t] : a[l].t[t];
}

enum { MAKE_RANDOM, MAKE_MUTATION, MAKE_CROSSOVER };

/* Up to `want` new children of one kind for one tier, in at most
 * want * max_tries attempts; *got counts the children added. */
static int breed(struct glora_search *s, int how, size_t want, int gen, int tier,
                 glora_layer_cfg_t *child, size_t *got) {
    const size_t *parents = s->parents + (size_t)tier * (size_t)s->o.parents;
    int np = s->n_parents[tier];
    uint64_t tries = (uint64_t)want * (uint64_t)s->o.max_tries;
    int over = 0; /* random draws in a row above the budget */
    *got = 0;
    while (*got < want && tries-- > 0) {
        if (how == MAKE_MUTATION) mutate(s, child, parents, np);
        else if (how == MAKE_CROSSOVER) crossover(s, child, parents, np);
        else random_candidate(s, child);
        size_t params = glora_search_params(&s->p, child);
        size_t max = s->tier_max[tier];
        if (how == MAKE_RANDOM && max != 0 && params > max) {
            if (++over < s->o.max_tries) continue;
            params = shrink(s, child, params, max);
        }
        over = 0;
        if (how == MAKE_RANDOM && s->o.fill_budget && params < s->tier_min[tier])
            params = grow(s, child, params, s->tier_min[tier], max);
        int rc = offer(s, child, params, gen, tier);
        if (rc < 0) return rc;
        *got += (size_t)rc;
    }
    return 0;
}

/* ---- one generation ---- */

/* The tier's parents: the best `parents` of its old parents and the new
 * candidates within its budget, i.e. of everything evaluated within it. */
static int rank_parents(struct glora_search *s, int tier) {
    size_t *par = s->parents + (size_t)tier * (size_t)s->o.parents;
    size_t cap = (size_t)s->n_parents[tier] + s->pop_n;
    size_t *pool = malloc((cap ? cap : 1) * sizeof *pool);
    if (!pool) return glora_error(GLORA_ENOMEM, "search: out of memory");
    size_t n = 0;
    for (int i = 0; i < s->n_parents[tier]; i++) pool[n++] = par[i];
    for (size_t i = 0; i < s->pop_n; i++)
        if (within(s, s->c[s->pop_start + i].params, tier)) pool[n++] = s->pop_start + i;
    for (size_t i = 1; i < n; i++) { /* insertion sort: the pool is small */
        size_t v = pool[i], j = i;
        while (j > 0 && search_cand_cmp(s, v, pool[j - 1]) < 0) {
            pool[j] = pool[j - 1];
            j--;
        }
        pool[j] = v;
    }
    s->n_parents[tier] = n < (size_t)s->o.parents ? (int)n : s->o.parents;
    memcpy(par, pool, (size_t)s->n_parents[tier] * sizeof *pool);
    free(pool);
    return 0;
}

void search_mean_losses(const double *item_loss, size_t n, size_t n_items, double *loss) {
    for (size_t i = 0; i < n; i++) {
        double sum = 0;
        for (size_t k = 0; k < n_items; k++) sum += item_loss[i * n_items + k];
        loss[i] = sum / (double)n_items;
    }
}

/* Accuracy and mean loss of n candidates in this process (the score
 * callback over every item). */
static int score_local(struct glora_search *s, const glora_layer_cfg_t **cands, size_t n, double *acc,
                       double *loss) {
    const size_t ni = s->p.n_items;
    size_t bytes;
    if (glora_size_mul(n, ni * sizeof(double), &bytes))
        return glora_error(GLORA_ENOMEM, "search: a generation too large to score");
    uint64_t *correct = calloc(n, sizeof *correct);
    double *item = malloc(bytes ? bytes : 1);
    int rc = correct && item ? s->p.score(s->p.ctx, cands, n, 0, ni, correct, item)
                             : glora_error(GLORA_ENOMEM, "search: out of memory");
    if (!rc) {
        search_mean_losses(item, n, ni, loss);
        for (size_t i = 0; i < n; i++) acc[i] = (double)correct[i] / (double)ni;
    }
    free(correct);
    free(item);
    return rc;
}

/* Accuracy (and, for the loss fitnesses, mean loss) of the n new
 * candidates from start: distributed over the MPI ranks when there are
 * several and the problem can share the work, else in this process. */
static int evaluate_new(struct glora_search *s, size_t start, size_t n_new, int gen) {
    int rc = 0;
    const glora_layer_cfg_t **cands = malloc(n_new * sizeof *cands);
    double *acc = malloc(2 * n_new * sizeof *acc), *loss = acc ? acc + n_new : NULL;
    if (!cands || !acc) {
        free(cands);
        free(acc);
        return glora_error(GLORA_ENOMEM, "search: out of memory");
    }
    for (size_t i = 0; i < n_new; i++) {
        cands[i] = genes_of(s, start + i);
        acc[i] = loss[i] = NAN;
    }
    if (glora_comm_size() > 1 && (SEARCH_NEEDS_LOSS(s) ? s->p.score != NULL : s->p.count != NULL))
        rc = search_eval_distributed(s, start, n_new, acc, SEARCH_NEEDS_LOSS(s) ? loss : NULL);
    else if (SEARCH_NEEDS_LOSS(s))
        rc = score_local(s, cands, n_new, acc, loss);
    else
        rc = s->p.evaluate(s->p.ctx, cands, n_new, acc);
    for (size_t i = 0; !rc && i < n_new; i++) {
        if (!isfinite(acc[i]))
            rc = glora_error(GLORA_ESTATE, "search: evaluator returned no accuracy for "
                                           "candidate %zu of generation %d", i, gen);
        else if (acc[i] < 0 || acc[i] > 1) /* checkpoints hold fractions */
            rc = glora_error(GLORA_ESTATE, "search: evaluator returned accuracy %g, not in "
                                           "[0, 1], for candidate %zu of generation %d",
                             acc[i], i, gen);
        else if (SEARCH_NEEDS_LOSS(s) && !(loss[i] >= 0 && isfinite(loss[i])))
            rc = glora_error(GLORA_ESTATE, "search: evaluator returned loss %g for candidate %zu "
                                           "of generation %d", loss[i], i, gen);
        s->c[start + i].acc = acc[i];
        s->c[start + i].loss = loss[i];
    }
    free(cands);
    free(acc);
    return rc;
}

static int run_generation(struct glora_search *s, const glora_search_hooks_t *hooks) {
    double (*clock)(void) = s->o.clock ? s->o.clock : glora_now;
    double t0 = clock();
    int gen = s->generation + 1;
    size_t nl = (size_t)s->p.n_layers;
    glora_layer_cfg_t *child = malloc(nl * sizeof *child);
    if (!child) return glora_error(GLORA_ENOMEM, "search: out of memory");
    size_t start = s->n;
    int rc = 0;
    /* Tier by tier, in a fixed order: mutations, crossovers, random fill. */
    for (int tier = 0; tier < s->n_tiers && !rc; tier++) {
        size_t have = 0, got = 0;
        if (gen > 0 && s->n_parents[tier] > 0) {
            rc = breed(s, MAKE_MUTATION, (size_t)s->o.mutations, gen, tier, child, &got);
            have += got;
            if (!rc) rc = breed(s, MAKE_CROSSOVER, (size_t)s->o.crossovers, gen, tier, child, &got);
            have += got;
        }
        if (!rc && have < (size_t)s->o.population)
            rc = breed(s, MAKE_RANDOM, (size_t)s->o.population - have, gen, tier, child, &got);
        /* Generation 0 of the main tier must find something; a tighter tier
         * may stay empty (then its best-under file is not written). */
        if (!rc && gen == 0 && tier == 0 && got == 0) {
            char lo[32], hi[32];
            glora_search_budget_str(s->tier_min[0], lo);
            glora_search_budget_str(s->tier_max[0], hi);
            rc = glora_error(GLORA_EINVAL,
                             "option 'search.min_params'/'search.max_params': no candidate of the "
                             "search space within [%s, %s] parameters",
                             lo, s->tier_max[0] ? hi : "unbounded");
            glora_error_hint("widen the budget or the search space");
        }
    }
    free(child);
    if (rc) return rc;
    size_t n_new = s->n - start;

    if (hooks && hooks->batch) hooks->batch(hooks->ctx, gen, n_new);
    if (n_new > 0 && (rc = evaluate_new(s, start, n_new, gen))) return rc;
    s->pop_start = start;
    s->pop_n = n_new;
    for (int tier = 0; tier < s->n_tiers && !rc; tier++) rc = rank_parents(s, tier);
    if (rc) return rc;
    s->generation = gen;

    glora_search_gen_t *h = &s->hist[s->n_hist++];
    memset(h, 0, sizeof *h);
    h->generation = gen;
    double sum = 0;
    for (int i = 0; i < s->n_parents[0]; i++) sum += s->c[s->parents[i]].acc;
    if (s->n_parents[0] > 0) {
        h->best_acc = s->c[s->parents[0]].acc;
        h->best_params = s->c[s->parents[0]].params;
        h->parents_mean_acc = sum / s->n_parents[0];
        h->best_loss = s->c[s->parents[0]].loss;
    } else {
        h->best_loss = NAN;
    }
    h->evaluated = n_new;
    h->evaluated_total = s->n;
    h->seconds = clock() - t0;
    return 0;
}

static int run_local(glora_search_t *s, const char *dir, const glora_search_hooks_t *hooks) {
    int rc = glora_mkdir_p(dir);
    if (rc) return rc;
    size_t plen = strlen(dir) + 32;
    char *ckpt = malloc(plen);
    if (!ckpt) return glora_error(GLORA_ENOMEM, "search: out of memory");
    snprintf(ckpt, plen, "%s/checkpoint.json", dir);
    if (s->generation >= 0) rc = search_outputs_write(s, dir);
    while (!rc && s->generation < s->o.generations &&
           (s->o.stop_after < 0 || s->generation < s->o.stop_after)) {
        rc = run_generation(s, hooks);
        if (!rc) rc = search_checkpoint_write(s, ckpt);
        if (!rc) rc = search_outputs_write(s, dir);
        if (!rc && hooks && hooks->generation) hooks->generation(hooks->ctx, &s->hist[s->n_hist - 1]);
    }
    free(ckpt);
    return rc;
}

int glora_search_run(glora_search_t *s, const char *dir, const glora_search_hooks_t *hooks) {
    if (glora_comm_size() == 1) return run_local(s, dir, hooks);
    if (glora_comm_rank() != 0) return search_serve(s);
    return search_end_serving(run_local(s, dir, hooks));
}
