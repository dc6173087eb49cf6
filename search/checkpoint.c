/* Search checkpoints: format "glora-search-checkpoint/1" (docs/formats.md).
 * Written by hand, one candidate per line, so that the file stays readable
 * and diffable; read back with cJSON. Doubles are written with the shortest
 * text that reads back to the same bits, so a resumed search continues with
 * exactly the state it would have had. */
#include "search/search-impl.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "glora/common.h"
#include "util/fileio.h"

/* ---- writing ---- */

static void write_options(sbuf_t *b, const glora_search_opts_t *o) {
    sb_printf(b, "  \"options\": {\"population\": %d, \"parents\": %d, \"mutations\": %d, "
                 "\"crossovers\": %d, \"mutation_prob\": ",
              o->population, o->parents, o->mutations, o->crossovers);
    sb_double(b, o->mutation_prob);
    sb_printf(b, ", \"max_tries\": %d, \"generations\": %d, \"min_params\": %zu, "
                 "\"max_params\": %zu, \"seed\": \"%" PRIu64 "\", \"extra_budgets\": [",
              o->max_tries, o->generations, o->min_params, o->max_params, o->seed);
    for (int i = 0; i < o->n_budgets; i++) sb_printf(b, "%s%zu", i ? ", " : "", o->budgets[i]);
    sb_puts(b, "]");
    /* Options added later: written only when not at the default, so that a
     * default search writes the checkpoint it always did. */
    if (o->fitness != GLORA_FITNESS_ACCURACY)
        sb_printf(b, ", \"fitness\": \"%s\"", glora_search_fitness_names[o->fitness]);
    if (o->fill_budget) {
        sb_puts(b, ", \"fill_budget\": true, \"min_budget_fraction\": ");
        sb_double(b, o->min_budget_fraction);
    }
    sb_puts(b, "},\n");
}

void search_gen_json(sbuf_t *b, const glora_search_gen_t *h) {
    sb_printf(b, "{\"generation\": %d, \"best_accuracy\": ", h->generation);
    sb_double(b, h->best_acc);
    sb_printf(b, ", \"best_params\": %zu, \"parents_mean_accuracy\": ", h->best_params);
    sb_double(b, h->parents_mean_acc);
    if (isfinite(h->best_loss)) {
        sb_puts(b, ", \"best_loss\": ");
        sb_double(b, h->best_loss);
    }
    sb_printf(b, ", \"evaluated\": %zu, \"evaluated_total\": %zu, \"seconds\": ", h->evaluated,
              h->evaluated_total);
    sb_double(b, h->seconds);
    sb_puts(b, "}");
}

int search_checkpoint_write(const struct glora_search *s, const char *path) {
    sbuf_t b = {0};
    sb_printf(&b, "{\n  \"format\": \"%s\",\n", GLORA_SEARCH_CHECKPOINT_FORMAT);
    sb_puts(&b, "  \"config_hash\": ");
    sb_jstr(&b, s->config_hash);
    sb_puts(&b, ",\n  \"supernet_sha256\": ");
    sb_jstr(&b, s->supernet_sha256);
    sb_puts(&b, ",\n  \"data_sha256\": ");
    sb_jstr(&b, s->data_sha256);
    sb_puts(&b, ",\n");
    write_options(&b, &s->o);
    sb_puts(&b, "  \"layers\": [\n");
    for (int l = 0; l < s->p.n_layers; l++) {
        char sp[512];
        glora_search_space_str(&s->layers[l].space, sp, sizeof sp);
        sb_puts(&b, "    {\"name\": ");
        sb_jstr(&b, s->layers[l].name);
        sb_printf(&b, ", \"out\": %d, \"in\": %d, \"space\": ", s->layers[l].out,
                  s->layers[l].in);
        sb_jstr(&b, sp);
        sb_puts(&b, l + 1 < s->p.n_layers ? "},\n" : "}\n");
    }
    sb_printf(&b, "  ],\n  \"generation\": %d,\n  \"done\": %s,\n", s->generation,
              s->generation >= s->o.generations ? "true" : "false");
    sb_printf(&b, "  \"rng\": [\"%016" PRIx64 "\", \"%016" PRIx64 "\", \"%016" PRIx64
                  "\", \"%016" PRIx64 "\"],\n",
              s->rng.s[0], s->rng.s[1], s->rng.s[2], s->rng.s[3]);
    for (int t = 0; t < s->n_tiers; t++) {
        const size_t *par = s->parents + (size_t)t * (size_t)s->o.parents;
        if (t == 0) sb_puts(&b, "  \"parents\": [");
        else sb_printf(&b, "%s[", t == 1 ? "  \"budget_parents\": [" : ", ");
        for (int i = 0; i < s->n_parents[t]; i++) sb_printf(&b, "%s%zu", i ? ", " : "", par[i]);
        sb_puts(&b, t == 0 ? "],\n" : "]");
    }
    if (s->n_tiers > 1) sb_puts(&b, "],\n");
    sb_printf(&b, "  \"population\": {\"start\": %zu, \"count\": %zu},\n", s->pop_start,
              s->pop_n);
    sb_puts(&b, "  \"history\": [\n");
    for (int i = 0; i < s->n_hist; i++) {
        sb_puts(&b, "    ");
        search_gen_json(&b, &s->hist[i]);
        sb_puts(&b, i + 1 < s->n_hist ? ",\n" : "\n");
    }
    sb_puts(&b, "  ],\n  \"candidates\": [\n");
    for (size_t i = 0; i < s->n; i++) {
        sb_printf(&b, "    [%d, %zu, ", s->c[i].gen, s->c[i].params);
        sb_double(&b, s->c[i].acc);
        sb_puts(&b, ", ");
        sb_jstr(&b, s->c[i].enc);
        if (SEARCH_NEEDS_LOSS(s)) { /* [generation, params, accuracy, "encoding", loss] */
            sb_puts(&b, ", ");
            sb_double(&b, s->c[i].loss);
        }
        sb_puts(&b, i + 1 < s->n ? "],\n" : "]\n");
    }
    sb_puts(&b, "  ]\n}\n");
    int rc;
    if (b.failed) rc = glora_error(GLORA_ENOMEM, "checkpoint '%s': out of memory", path);
    else rc = glora_write_atomic(path, b.buf, b.len);
    free(b.buf);
    return rc;
}

/* ---- reading ---- */

typedef struct {
    const char *path;
    const cJSON *root;
} rd_t;

static const cJSON *need(rd_t *r, const cJSON *obj, const char *key, int type, int *rc) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v || !(v->type & type)) {
        *rc = glora_error(GLORA_EFORMAT, "checkpoint '%s': key '%s' is missing or has the wrong "
                                         "type", r->path, key);
        return NULL;
    }
    return v;
}

static int need_uint(rd_t *r, const cJSON *obj, const char *key, double max, double *out) {
    int rc = 0;
    const cJSON *v = need(r, obj, key, cJSON_Number, &rc);
    if (!v) return rc;
    double d = v->valuedouble;
    if (!(d >= -1 && d <= max) || d != floor(d))
        return glora_error(GLORA_EFORMAT, "checkpoint '%s': '%s' = %g is out of range", r->path,
                           key, d);
    *out = d;
    return 0;
}

#define CHANGED(what, ...)                                                                    \
    do {                                                                                      \
        rc = glora_error(GLORA_ESTATE, "checkpoint '%s': " what, path, __VA_ARGS__);          \
        glora_error_hint("resume only with the config and supernet the search started with, " \
                         "or start afresh without --resume (in another output directory)");   \
        goto done;                                                                            \
    } while (0)

static int cmp_int_opt(const char *path, const cJSON *opts, const char *key, double now) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(opts, key);
    if (!cJSON_IsNumber(v))
        return glora_error(GLORA_EFORMAT, "checkpoint '%s': options.%s is missing", path, key);
    if (v->valuedouble != now) {
        int rc = glora_error(GLORA_ESTATE,
                             "checkpoint '%s': search.%s changed (checkpoint %.17g, now %.17g)",
                             path, key, v->valuedouble, now);
        glora_error_hint("resume only with the config the search started with, or start "
                         "afresh without --resume");
        return rc;
    }
    return 0;
}

/* The options added after format 1 (fitness, fill_budget), written only
 * when not at their defaults. */
static int resume_new_options(const glora_search_t *s, const char *path, const cJSON *opts) {
    const glora_search_opts_t *o = &s->o;
    int rc = 0;
    /* Absent in checkpoints of searches without them: the defaults. */
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(opts, "fitness");
    const cJSON *fb = cJSON_GetObjectItemCaseSensitive(opts, "fill_budget");
    const cJSON *fr = cJSON_GetObjectItemCaseSensitive(opts, "min_budget_fraction");
    const char *was = cJSON_IsString(f) ? f->valuestring : "accuracy";
    if ((f && !cJSON_IsString(f)) || (fb && !cJSON_IsBool(fb)) || (fr && !cJSON_IsNumber(fr))) {
        rc = glora_error(GLORA_EFORMAT, "checkpoint '%s': options.fitness, fill_budget or "
                                        "min_budget_fraction has the wrong type", path);
        goto done;
    }
    if (strcmp(was, glora_search_fitness_names[o->fitness]) != 0)
        CHANGED("search.fitness changed (checkpoint %s, now %s)", was,
                glora_search_fitness_names[o->fitness]);
    int was_fill = cJSON_IsTrue(fb);
    if (was_fill != (o->fill_budget != 0) ||
        (was_fill && (!fr || fr->valuedouble != o->min_budget_fraction)))
        CHANGED("search.fill_budget or search.min_budget_fraction changed (checkpoint %s %.17g, now "
                "%s %.17g)", was_fill ? "true" : "false", fr ? fr->valuedouble : 0.0,
                o->fill_budget ? "true" : "false", o->fill_budget ? o->min_budget_fraction : 0.0);
done:
    return rc;
}

/* What identifies the run: the supernet, the options, the layers and their
 * spaces, then the config hash (which covers everything else: data, ...). */
static int resume_identity(glora_search_t *s, rd_t *r) {
    const char *path = r->path;
    const cJSON *root = r->root, *v;
    int rc = 0;
    if (!(v = need(r, root, "format", cJSON_String, &rc))) goto done;
    if (strcmp(v->valuestring, GLORA_SEARCH_CHECKPOINT_FORMAT) != 0) {
        rc = glora_error(GLORA_EFORMAT, "checkpoint '%s': format '%s', expected '%s'", path,
                         v->valuestring, GLORA_SEARCH_CHECKPOINT_FORMAT);
        goto done;
    }
    if (!(v = need(r, root, "supernet_sha256", cJSON_String, &rc))) goto done;
    if (strcmp(v->valuestring, s->supernet_sha256) != 0)
        CHANGED("the supernet changed (sha256 %.12s... when the search started, now %.12s...)",
                v->valuestring, s->supernet_sha256);
    if (!(v = need(r, root, "data_sha256", cJSON_String, &rc))) goto done;
    if (strcmp(v->valuestring, s->data_sha256) != 0)
        CHANGED("the validation data changed (sha256 %.12s... when the search started, now "
                "%.12s...)", v->valuestring, s->data_sha256);
    const cJSON *opts;
    if (!(opts = need(r, root, "options", cJSON_Object, &rc))) goto done;
    const glora_search_opts_t *o = &s->o;
    struct { const char *key; double now; } ints[] = {
        {"population", o->population}, {"parents", o->parents},
        {"mutations", o->mutations},   {"crossovers", o->crossovers},
        {"mutation_prob", o->mutation_prob}, {"max_tries", o->max_tries},
        {"generations", o->generations}, {"min_params", (double)o->min_params},
        {"max_params", (double)o->max_params},
    };
    for (size_t i = 0; i < sizeof ints / sizeof *ints; i++)
        if ((rc = cmp_int_opt(path, opts, ints[i].key, ints[i].now))) goto done;
    if (!(v = need(r, opts, "seed", cJSON_String, &rc))) goto done;
    {
        char now[32];
        snprintf(now, sizeof now, "%" PRIu64, o->seed);
        if (strcmp(v->valuestring, now) != 0)
            CHANGED("search.seed changed (checkpoint %s, now %s)", v->valuestring, now);
    }
    if (!(v = need(r, opts, "extra_budgets", cJSON_Array, &rc))) goto done;
    {
        int nb = cJSON_GetArraySize(v), same = nb == o->n_budgets;
        for (int i = 0; same && i < nb; i++) {
            const cJSON *e = cJSON_GetArrayItem(v, i);
            same = cJSON_IsNumber(e) && e->valuedouble == (double)o->budgets[i];
        }
        if (!same) CHANGED("search.extra_budgets changed (%d budgets in the checkpoint, %d now, "
                           "or different values)", nb, o->n_budgets);
    }
    if ((rc = resume_new_options(s, path, opts))) goto done;
    const cJSON *layers;
    if (!(layers = need(r, root, "layers", cJSON_Array, &rc))) goto done;
    if (cJSON_GetArraySize(layers) != s->p.n_layers)
        CHANGED("the model changed (%d adapted layers in the checkpoint, %d now)",
                cJSON_GetArraySize(layers), s->p.n_layers);
    for (int l = 0; l < s->p.n_layers; l++) {
        const cJSON *L = cJSON_GetArrayItem(layers, l), *nm, *sp;
        double out, in;
        if (!cJSON_IsObject(L)) {
            rc = glora_error(GLORA_EFORMAT, "checkpoint '%s': layers[%d] is not an object",
                             path, l);
            goto done;
        }
        if (!(nm = need(r, L, "name", cJSON_String, &rc))) goto done;
        if (!(sp = need(r, L, "space", cJSON_String, &rc))) goto done;
        if ((rc = need_uint(r, L, "out", 1e9, &out)) || (rc = need_uint(r, L, "in", 1e9, &in)))
            goto done;
        const glora_search_layer_t *cur = &s->layers[l];
        if (strcmp(nm->valuestring, cur->name) != 0 || out != cur->out || in != cur->in)
            CHANGED("the model changed (layer %d: %s %gx%g in the checkpoint, %s %dx%d now)", l,
                    nm->valuestring, out, in, cur->name, cur->out, cur->in);
        char now[512];
        glora_search_space_str(&cur->space, now, sizeof now);
        if (strcmp(now, sp->valuestring) != 0)
            CHANGED("search.space changed for layer %s (checkpoint \"%s\", now \"%s\")",
                    cur->name, sp->valuestring, now);
    }
    if (!(v = need(r, root, "config_hash", cJSON_String, &rc))) goto done;
    if (strcmp(v->valuestring, s->config_hash) != 0)
        CHANGED("the config changed outside the search options (config hash %.16s... when the "
                "search started, now %.16s...): e.g. the data, the model paths or the output",
                v->valuestring, s->config_hash);
done:
    return rc;
}

/* The generator state: four 64-bit words as 16 hex digits each. */
static int resume_rng(glora_search_t *s, rd_t *r) {
    const char *path = r->path;
    int rc = 0;
    const cJSON *v = need(r, r->root, "rng", cJSON_Array, &rc);
    if (!v) return rc;
    if (cJSON_GetArraySize(v) != 4)
        return glora_error(GLORA_EFORMAT, "checkpoint '%s': 'rng' needs 4 words", path);
    for (int i = 0; i < 4; i++) {
        const cJSON *w = cJSON_GetArrayItem(v, i);
        char *end;
        if (!cJSON_IsString(w) || strlen(w->valuestring) != 16)
            return glora_error(GLORA_EFORMAT, "checkpoint '%s': rng[%d] is not 16 hex digits",
                               path, i);
        s->rng.s[i] = strtoull(w->valuestring, &end, 16);
        if (*end)
            return glora_error(GLORA_EFORMAT, "checkpoint '%s': rng[%d] is not 16 hex digits",
                               path, i);
    }
    return 0;
}

/* Every candidate evaluated so far, in order, up to generation gen. */
static int resume_candidates(glora_search_t *s, rd_t *r, double gen) {
    const char *path = r->path;
    int rc = 0;
    glora_layer_cfg_t *cand = NULL;
    const cJSON *cands;
    if (!(cands = need(r, r->root, "candidates", cJSON_Array, &rc))) goto done;
    cand = malloc((size_t)s->p.n_layers * sizeof *cand);
    if (!cand) {
        rc = glora_error(GLORA_ENOMEM, "checkpoint '%s': out of memory", path);
        goto done;
    }
    size_t i = 0;
    const int want = SEARCH_NEEDS_LOSS(s) ? 5 : 4;
    for (const cJSON *e = cands->child; e; e = e->next, i++) {
        const cJSON *g = cJSON_GetArrayItem(e, 0), *p = cJSON_GetArrayItem(e, 1),
                    *a = cJSON_GetArrayItem(e, 2), *en = cJSON_GetArrayItem(e, 3),
                    *ls = cJSON_GetArrayItem(e, 4);
        if (!cJSON_IsArray(e) || cJSON_GetArraySize(e) != want) {
            rc = glora_error(GLORA_EFORMAT, "checkpoint '%s': candidates[%zu] has %d entries; search.fitness "
                                            "%s needs %s", path, i, cJSON_GetArraySize(e),
                             glora_search_fitness_names[s->o.fitness],
                             want == 5 ? "[generation, params, accuracy, \"encoding\", loss]"
                                       : "[generation, params, accuracy, \"encoding\"]");
            goto done;
        }
        if (!cJSON_IsNumber(g) ||
            !cJSON_IsNumber(p) || !cJSON_IsNumber(a) || !cJSON_IsString(en) ||
            g->valuedouble < 0 || g->valuedouble > gen || p->valuedouble < 0) {
            rc = glora_error(GLORA_EFORMAT, "checkpoint '%s': candidates[%zu] is not "
                                            "[generation, params, accuracy, \"encoding\"]",
                             path, i);
            goto done;
        }
        if ((rc = glora_search_decode(en->valuestring, cand, s->p.n_layers))) {
            rc = glora_error(GLORA_EFORMAT, "checkpoint '%s': candidates[%zu]: %s", path, i,
                             glora_errmsg());
            goto done;
        }
        size_t params = glora_search_params(&s->p, cand);
        if ((double)params != p->valuedouble || search_find(s, cand) >= 0) {
            rc = glora_error(GLORA_EFORMAT, "checkpoint '%s': candidates[%zu] has a wrong "
                                            "parameter count or is a duplicate", path, i);
            goto done;
        }
        char *enc = strdup(en->valuestring);
        if (!enc || (rc = search_add(s, cand, params, (int)g->valuedouble, enc))) {
            if (!enc) rc = glora_error(GLORA_ENOMEM, "checkpoint '%s': out of memory", path);
            goto done;
        }
        s->c[s->n - 1].acc = a->valuedouble;
        if (ls) s->c[s->n - 1].loss = ls->valuedouble;
    }
done:
    free(cand);
    return rc;
}

/* The population (a span of the candidates) and the parents of each budget
 * tier (candidate indices). */
static int resume_parents(glora_search_t *s, rd_t *r) {
    const char *path = r->path;
    const cJSON *root = r->root, *v;
    const glora_search_opts_t *o = &s->o;
    int rc = 0;
    const cJSON *pop;
    double ps, pc;
    if (!(pop = need(r, root, "population", cJSON_Object, &rc))) return rc;
    if ((rc = need_uint(r, pop, "start", (double)s->n, &ps)) ||
        (rc = need_uint(r, pop, "count", (double)s->n, &pc)))
        return rc;
    if (ps + pc > (double)s->n || ps < 0 || pc < 0)
        return glora_error(GLORA_EFORMAT, "checkpoint '%s': population is outside the candidates",
                           path);
    s->pop_start = (size_t)ps;
    s->pop_n = (size_t)pc;
    const cJSON *tiers[SEARCH_MAX_TIERS];
    if (!(tiers[0] = need(r, root, "parents", cJSON_Array, &rc))) return rc;
    if (s->n_tiers > 1) {
        const cJSON *bp = need(r, root, "budget_parents", cJSON_Array, &rc);
        if (!bp) return rc;
        if (cJSON_GetArraySize(bp) != s->n_tiers - 1)
            return glora_error(GLORA_EFORMAT, "checkpoint '%s': 'budget_parents' has %d lists, "
                                              "expected %d", path, cJSON_GetArraySize(bp),
                               s->n_tiers - 1);
        for (int t = 1; t < s->n_tiers; t++) tiers[t] = cJSON_GetArrayItem(bp, t - 1);
    }
    for (int t = 0; t < s->n_tiers; t++) {
        v = tiers[t];
        if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) > o->parents ||
            (t == 0 && cJSON_GetArraySize(v) < 1))
            return glora_error(GLORA_EFORMAT, "checkpoint '%s': parents of budget tier %d: not "
                                              "a list of at most %d candidates", path, t,
                               o->parents);
        size_t *par = s->parents + (size_t)t * (size_t)o->parents;
        s->n_parents[t] = 0;
        for (const cJSON *e = v->child; e; e = e->next) {
            if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble >= (double)s->n)
                return glora_error(GLORA_EFORMAT, "checkpoint '%s': a parent is not a candidate "
                                                  "index", path);
            par[s->n_parents[t]++] = (size_t)e->valuedouble;
        }
    }
    return 0;
}

/* One history entry per generation 0..gen. */
static int resume_history(glora_search_t *s, rd_t *r, double gen) {
    const char *path = r->path;
    int rc = 0;
    const cJSON *v = need(r, r->root, "history", cJSON_Array, &rc);
    if (!v) return rc;
    if (cJSON_GetArraySize(v) != (int)gen + 1)
        return glora_error(GLORA_EFORMAT, "checkpoint '%s': 'history' has %d entries for "
                                          "generation %g", path, cJSON_GetArraySize(v), gen);
    s->n_hist = 0;
    for (const cJSON *e = v->child; e; e = e->next) {
        glora_search_gen_t *h = &s->hist[s->n_hist];
        double d[7];
        const char *keys[7] = {"generation", "best_accuracy", "best_params",
                               "parents_mean_accuracy", "evaluated", "evaluated_total",
                               "seconds"};
        for (int k = 0; k < 7; k++) {
            const cJSON *x = cJSON_GetObjectItemCaseSensitive(e, keys[k]);
            if (!cJSON_IsNumber(x))
                return glora_error(GLORA_EFORMAT, "checkpoint '%s': history[%d].%s is missing",
                                   path, s->n_hist, keys[k]);
            d[k] = x->valuedouble;
        }
        *h = (glora_search_gen_t){(int)d[0], d[1], (size_t)d[2], d[3], NAN, (size_t)d[4],
                                  (size_t)d[5], d[6]};
        const cJSON *bl = cJSON_GetObjectItemCaseSensitive(e, "best_loss");
        if (cJSON_IsNumber(bl)) h->best_loss = bl->valuedouble;
        s->n_hist++;
    }
    return 0;
}

int glora_search_resume(glora_search_t *s, const char *path) {
    if (s->generation >= 0 || s->n > 0)
        return glora_error(GLORA_ESTATE, "checkpoint '%s': the search has already started", path);
    char *text = NULL;
    size_t n;
    int rc = glora_read_file(path, (size_t)1 << 32, &text, &n);
    if (rc) return rc;
    cJSON *root = cJSON_ParseWithLength(text, n);
    free(text);
    if (!root) return glora_error(GLORA_EFORMAT, "checkpoint '%s': not valid JSON", path);
    rd_t r = {path, root};
    double gen;
    if ((rc = search_checkpoint_check_json(path, root)) || (rc = resume_identity(s, &r)) ||
        (rc = need_uint(&r, root, "generation", (double)s->o.generations, &gen)) ||
        (rc = resume_rng(s, &r)) || (rc = resume_candidates(s, &r, gen)) ||
        (rc = resume_parents(s, &r)) || (rc = resume_history(s, &r, gen)))
        goto done;
    s->generation = (int)gen;
    rc = search_checkpoint_check_state(s, path);
done:
    if (rc && s->n > 0) { /* leave the object as fresh as it was */
        for (size_t k = 0; k < s->n; k++) free(s->c[k].enc);
        s->n = 0;
        memset(s->table, 0, s->table_cap * sizeof *s->table);
        memset(s->n_parents, 0, sizeof s->n_parents);
        s->n_hist = 0;
        s->pop_start = s->pop_n = 0;
        glora_rng_seed(&s->rng, s->o.seed);
    }
    cJSON_Delete(root);
    return rc;
}
