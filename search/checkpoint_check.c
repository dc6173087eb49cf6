/* Validation of search checkpoints (docs/formats.md, "checkpoint.json"):
 * a range check of every value in the JSON before any of it is converted
 * (so no out-of-range double is cast to an integer), and a consistency check
 * of the state once it is loaded. Every message names the key. */
#include "search/search-impl.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "glora/common.h"
#include "util/json-check.h"

#define BAD(...) glora_error(GLORA_EFORMAT, __VA_ARGS__)

/* v is a JSON number that is an integer in [lo, hi]. */
static int is_int_in(const cJSON *v, double lo, double hi) {
    return cJSON_IsNumber(v) && v->valuedouble >= lo && v->valuedouble <= hi &&
           v->valuedouble == floor(v->valuedouble);
}

static int is_acc(const cJSON *v) {
    return cJSON_IsNumber(v) && isfinite(v->valuedouble) && v->valuedouble >= 0 &&
           v->valuedouble <= 1;
}

/* A parent list: distinct candidate indices. */
static int check_parents(const char *path, const cJSON *list, const char *key, size_t n_cand) {
    if (!cJSON_IsArray(list)) return BAD("checkpoint '%s': key '%s' is not a list", path, key);
    int i = 0;
    for (const cJSON *e = list->child; e; e = e->next, i++) {
        if (!is_int_in(e, 0, (double)n_cand - 1))
            return BAD("checkpoint '%s': key '%s[%d]' is not a candidate index (0 to %zu)", path,
                       key, i, n_cand ? n_cand - 1 : 0);
        for (const cJSON *f = list->child; f != e; f = f->next)
            if (f->valuedouble == e->valuedouble)
                return BAD("checkpoint '%s': key '%s[%d]': candidate %.0f is a parent twice",
                           path, key, i, e->valuedouble);
    }
    return 0;
}

/* rng: four 16-digit hex words, not all zero (xoshiro256** never reaches
 * that state and stays in it for ever). */
static int check_rng(const char *path, const cJSON *root) {
    const cJSON *rng = cJSON_GetObjectItemCaseSensitive(root, "rng");
    if (!cJSON_IsArray(rng) || cJSON_GetArraySize(rng) != 4)
        return BAD("checkpoint '%s': key 'rng' is not a list of 4 words", path);
    int nonzero = 0, i = 0;
    for (const cJSON *w = rng->child; w; w = w->next, i++) {
        if (!cJSON_IsString(w) || strlen(w->valuestring) != 16 ||
            strspn(w->valuestring, "0123456789abcdefABCDEF") != 16)
            return BAD("checkpoint '%s': key 'rng[%d]' is not 16 hex digits", path, i);
        nonzero |= strspn(w->valuestring, "0") != 16;
    }
    if (!nonzero)
        return BAD("checkpoint '%s': key 'rng' is all zeros, which is not a state of the "
                   "generator", path);
    return 0;
}

/* candidates: [generation, params, accuracy, "encoding"] or, with a fitness
 * other than accuracy, [generation, params, accuracy, "encoding", loss], all
 * of one form; generations in order (the engine appends them generation by
 * generation); *n counts them. */
static int check_candidates(const char *path, const cJSON *cands, double gen, size_t *n) {
    if (!cJSON_IsArray(cands)) return BAD("checkpoint '%s': key 'candidates' is not a list", path);
    double prev_gen = 0;
    *n = 0;
    for (const cJSON *e = cands->child; e; e = e->next, ++*n) {
        int size = cJSON_IsArray(e) ? cJSON_GetArraySize(e) : 0;
        if ((size != 4 && size != 5) || (*n > 0 && size != cJSON_GetArraySize(cands->child)))
            return BAD("checkpoint '%s': key 'candidates[%zu]' is not [generation, params, "
                       "accuracy, \"encoding\"] (or with a loss after the encoding, as every "
                       "other candidate)", path, *n);
        const cJSON *cg = e->child, *cp = cg->next, *ca = cp->next, *ce = ca->next, *cl = ce->next;
        if (cl && !(cJSON_IsNumber(cl) && isfinite(cl->valuedouble) && cl->valuedouble >= 0))
            return BAD("checkpoint '%s': key 'candidates[%zu][4]' (loss) is not a non-negative "
                       "number", path, *n);
        if (!is_int_in(cg, prev_gen, gen))
            return BAD("checkpoint '%s': key 'candidates[%zu][0]' (generation) is not an "
                       "integer from %.0f (the previous candidate's) to %.0f ('generation')",
                       path, *n, prev_gen, gen);
        prev_gen = cg->valuedouble;
        if (!is_int_in(cp, 0, 9007199254740992.0))
            return BAD("checkpoint '%s': key 'candidates[%zu][1]' (params) is not a "
                       "non-negative integer", path, *n);
        if (!is_acc(ca))
            return BAD("checkpoint '%s': key 'candidates[%zu][2]' (accuracy) is not a number "
                       "from 0 to 1", path, *n);
        if (!cJSON_IsString(ce))
            return BAD("checkpoint '%s': key 'candidates[%zu][3]' (encoding) is not a string",
                       path, *n);
    }
    if (*n == 0) return BAD("checkpoint '%s': key 'candidates' is empty", path);
    return 0;
}

/* parents and budget_parents (one list per extra budget). */
static int check_all_parents(const char *path, const cJSON *root, size_t n) {
    int rc = check_parents(path, cJSON_GetObjectItemCaseSensitive(root, "parents"), "parents", n);
    if (rc) return rc;
    const cJSON *bp = cJSON_GetObjectItemCaseSensitive(root, "budget_parents");
    if (!bp) return 0;
    if (!cJSON_IsArray(bp)) return BAD("checkpoint '%s': key 'budget_parents' is not a list", path);
    int i = 0;
    for (const cJSON *e = bp->child; e; e = e->next, i++) {
        char key[48];
        snprintf(key, sizeof key, "budget_parents[%d]", i);
        if ((rc = check_parents(path, e, key, n))) return rc;
    }
    return 0;
}

/* history[i], whose generation's candidates start at *c (advanced past
 * them); *total counts the candidates up to it. */
static int check_history_entry(const char *path, const cJSON *e, int i, size_t n, const cJSON **c,
                               double *total) {
    const cJSON *x[7];
    static const char *const keys[7] = {"generation", "best_accuracy", "best_params",
                                        "parents_mean_accuracy", "evaluated",
                                        "evaluated_total", "seconds"};
    for (int k = 0; k < 7; k++) {
        x[k] = cJSON_GetObjectItemCaseSensitive(e, keys[k]);
        int ok = k == 1 || k == 3 ? is_acc(x[k])
                 : k == 6 ? cJSON_IsNumber(x[k]) && x[k]->valuedouble >= 0 &&
                                x[k]->valuedouble < 1e12
                 : k == 0 ? is_int_in(x[k], i, i)
                          : is_int_in(x[k], 0, (double)n);
        if (!ok && k == 2) ok = is_int_in(x[k], 0, 9007199254740992.0);
        if (!ok) {
            const char *want = k == 0 ? "its index" : k == 1 || k == 3 ? "a number from 0 to 1"
                               : k == 6 ? "a number of seconds" : "a count of candidates";
            return BAD("checkpoint '%s': key 'history[%d].%s' is missing or not %s", path, i,
                       keys[k], want);
        }
    }
    const cJSON *bl = cJSON_GetObjectItemCaseSensitive(e, "best_loss");
    if (bl && !(cJSON_IsNumber(bl) && isfinite(bl->valuedouble) && bl->valuedouble >= 0))
        return BAD("checkpoint '%s': key 'history[%d].best_loss' is not a non-negative number", path, i);
    size_t made = 0;
    for (; *c && (*c)->child->valuedouble == i; *c = (*c)->next) made++;
    *total += (double)made;
    if (x[4]->valuedouble != (double)made)
        return BAD("checkpoint '%s': key 'history[%d].evaluated' says %.0f but %zu candidates "
                   "are of generation %d", path, i, x[4]->valuedouble, made, i);
    if (x[5]->valuedouble != *total)
        return BAD("checkpoint '%s': key 'history[%d].evaluated_total' says %.0f but the "
                   "candidates up to generation %d are %.0f", path, i, x[5]->valuedouble, i,
                   *total);
    return 0;
}

int search_checkpoint_check_json(const char *path, const cJSON *root) {
    char dup[256];
    int d = glora_json_find_dup(root, dup, sizeof dup), rc;
    if (d < 0) return glora_error(GLORA_ENOMEM, "checkpoint '%s': out of memory", path);
    if (d) return BAD("checkpoint '%s': key '%s' appears twice", path, dup);
    if (!cJSON_IsObject(root)) return BAD("checkpoint '%s': not a JSON object", path);

    const cJSON *g = cJSON_GetObjectItemCaseSensitive(root, "generation");
    if (!is_int_in(g, 0, INT32_MAX - 1))
        return BAD("checkpoint '%s': key 'generation' is not an integer from 0 to %d", path,
                   INT32_MAX - 1);
    double gen = g->valuedouble;

    const cJSON *done = cJSON_GetObjectItemCaseSensitive(root, "done");
    if (done && !cJSON_IsBool(done))
        return BAD("checkpoint '%s': key 'done' is not true or false", path);
    if ((rc = check_rng(path, root))) return rc;
    const cJSON *cands = cJSON_GetObjectItemCaseSensitive(root, "candidates");
    size_t n = 0;
    if ((rc = check_candidates(path, cands, gen, &n))) return rc;

    const cJSON *pop = cJSON_GetObjectItemCaseSensitive(root, "population");
    const cJSON *ps = cJSON_GetObjectItemCaseSensitive(pop, "start"),
                *pc = cJSON_GetObjectItemCaseSensitive(pop, "count");
    if (!cJSON_IsObject(pop) || !is_int_in(ps, 0, (double)n) || !is_int_in(pc, 0, (double)n) ||
        ps->valuedouble + pc->valuedouble != (double)n)
        return BAD("checkpoint '%s': key 'population' is not {\"start\", \"count\"} of the "
                   "last candidates (start + count = %zu)", path, n);
    if ((rc = check_all_parents(path, root, n))) return rc;

    /* history: one entry per generation 0..generation, counting the
     * candidates above. */
    const cJSON *hist = cJSON_GetObjectItemCaseSensitive(root, "history");
    if (!cJSON_IsArray(hist) || cJSON_GetArraySize(hist) != (int)gen + 1)
        return BAD("checkpoint '%s': key 'history' is not a list of %.0f entries (generations "
                   "0 to 'generation')", path, gen + 1);
    double total = 0;
    const cJSON *c = cands->child;
    int i = 0;
    for (const cJSON *e = hist->child; e; e = e->next, i++)
        if ((rc = check_history_entry(path, e, i, n, &c, &total))) return rc;
    if (pc->valuedouble != (double)cJSON_GetArraySize(cands) - ps->valuedouble ||
        pc->valuedouble != cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(hist, (int)gen),
                                                            "evaluated")->valuedouble)
        return BAD("checkpoint '%s': key 'population' is not the candidates of the last "
                   "generation", path);
    return 0;
}

int search_checkpoint_check_state(const struct glora_search *s, const char *path) {
    if (s->n_hist < 1) return BAD("checkpoint '%s': key 'history' is empty", path);
    /* Parents: within their tier's budget, ranked best first. */
    for (int t = 0; t < s->n_tiers; t++) {
        const size_t *par = s->parents + (size_t)t * (size_t)s->o.parents;
        const char *key = t ? "budget_parents" : "parents";
        for (int i = 0; i < s->n_parents[t]; i++) {
            size_t p = s->c[par[i]].params;
            if (p < s->tier_min[t] || (s->tier_max[t] && p > s->tier_max[t]))
                return BAD("checkpoint '%s': key '%s': candidate %zu (%zu parameters) is outside "
                           "the budget of tier %d", path, key, par[i], p, t);
            if (i > 0 && search_cand_cmp(s, par[i - 1], par[i]) >= 0)
                return BAD("checkpoint '%s': key '%s': candidates %zu and %zu are not ranked "
                           "best first", path, key, par[i - 1], par[i]);
        }
    }
    /* The last history entry describes those parents. */
    const glora_search_gen_t *h = &s->hist[s->n_hist - 1];
    double sum = 0;
    for (int i = 0; i < s->n_parents[0]; i++) sum += s->c[s->parents[i]].acc;
    if (s->n_parents[0] > 0 &&
        (h->best_acc != s->c[s->parents[0]].acc || h->best_params != s->c[s->parents[0]].params ||
         h->parents_mean_acc != sum / s->n_parents[0]))
        return BAD("checkpoint '%s': key 'history[%d]' (best_accuracy, best_params, "
                   "parents_mean_accuracy) does not match the parents", path, s->n_hist - 1);
    return 0;
}
