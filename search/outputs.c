/* The search's result files: history.jsonl, pareto.json, best.json and
 * best-under-<budget>.json (formats in docs/formats.md, "## Search"). All are
 * functions of the search state alone, so a resumed search rewrites them
 * identically. */
#include "search/search-impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "glora/common.h"
#include "util/fileio.h"

static int write_sb(sbuf_t *b, const char *path) {
    int rc;
    if (b->failed) rc = glora_error(GLORA_ENOMEM, "search output '%s': out of memory", path);
    else rc = glora_write_atomic(path, b->buf, b->len);
    free(b->buf);
    memset(b, 0, sizeof *b);
    return rc;
}

static int pareto_cmp(const void *pa, const void *pb, void *ctx) {
    const struct glora_search *s = ctx;
    size_t a = *(const size_t *)pa, b = *(const size_t *)pb;
    if (s->c[a].params != s->c[b].params) return s->c[a].params < s->c[b].params ? -1 : 1;
    return search_cand_cmp(s, a, b);
}

/* Candidates that no other beats on both counts (fewer or equal params and
 * higher or equal accuracy, one of them strictly), by params ascending. */
static int write_pareto(const struct glora_search *s, const char *path) {
    size_t *idx = malloc((s->n ? s->n : 1) * sizeof *idx);
    if (!idx) return glora_error(GLORA_ENOMEM, "search output '%s': out of memory", path);
    for (size_t i = 0; i < s->n; i++) idx[i] = i;
    qsort_r(idx, s->n, sizeof *idx, pareto_cmp, (void *)s);
    sbuf_t b = {0};
    sb_puts(&b, "[");
    int first = 1, have_prev = 0;
    double prev_best = 0; /* best accuracy among strictly fewer params */
    for (size_t g = 0; g < s->n;) {
        size_t e = g;
        while (e < s->n && s->c[idx[e]].params == s->c[idx[g]].params) e++;
        double top = s->c[idx[g]].acc; /* sorted by accuracy within equal params */
        if (!have_prev || top > prev_best) {
            for (size_t k = g; k < e && s->c[idx[k]].acc == top; k++) {
                const cand_t *c = &s->c[idx[k]];
                const glora_layer_cfg_t *cfg = s->genes + idx[k] * (size_t)s->p.n_layers;
                sb_printf(&b, "%s\n  {\"params\": %zu, \"accuracy\": ", first ? "" : ",",
                          c->params);
                sb_double(&b, c->acc);
                sb_printf(&b, ", \"generation\": %d, \"candidate\": ", c->gen);
                sb_jstr(&b, c->enc);
                sb_puts(&b, ",\n   \"layers\": {");
                for (int l = 0; l < s->p.n_layers; l++) {
                    sb_printf(&b, "%s\n     ", l ? "," : "");
                    sb_jstr(&b, s->layers[l].name);
                    sb_puts(&b, ": {");
                    for (int t = 0; t < GLORA_NTENSORS; t++) {
                        char buf[16];
                        sb_printf(&b, "%s\"%s\": \"%s\"", t ? ", " : "", glora_tensor_letter(t),
                                  glora_choice_str(cfg[l].t[t], buf));
                    }
                    sb_puts(&b, "}");
                }
                sb_puts(&b, "}}");
                first = 0;
            }
            prev_best = top;
            have_prev = 1;
        }
        g = e;
    }
    sb_puts(&b, "\n]\n");
    free(idx);
    return write_sb(&b, path);
}

int search_outputs_write(const struct glora_search *s, const char *dir) {
    size_t plen = strlen(dir) + 64;
    char *path = malloc(plen);
    if (!path) return glora_error(GLORA_ENOMEM, "search outputs: out of memory");
    sbuf_t b = {0};
    for (int i = 0; i < s->n_hist; i++) {
        search_gen_json(&b, &s->hist[i]);
        sb_puts(&b, "\n");
    }
    if (!b.buf) sb_puts(&b, "");
    snprintf(path, plen, "%s/history.jsonl", dir);
    int rc = write_sb(&b, path);
    if (!rc) {
        snprintf(path, plen, "%s/pareto.json", dir);
        rc = write_pareto(s, path);
    }
    if (!rc && s->p.write_spec) {
        long best = glora_search_best(s, 0);
        if (best >= 0) {
            const cand_t *c = &s->c[best];
            snprintf(path, plen, "%s/best.json", dir);
            rc = s->p.write_spec(s->p.ctx, path, s->genes + (size_t)best * (size_t)s->p.n_layers,
                                 c->params, c->acc, c->gen);
        }
        for (int i = 0; !rc && i < s->o.n_budgets; i++) {
            long k = glora_search_best(s, s->o.budgets[i]);
            if (k < 0) continue; /* nothing evaluated under that budget (yet) */
            char name[32];
            glora_search_budget_str(s->o.budgets[i], name);
            snprintf(path, plen, "%s/best-under-%s.json", dir, name);
            const cand_t *c = &s->c[k];
            rc = s->p.write_spec(s->p.ctx, path, s->genes + (size_t)k * (size_t)s->p.n_layers,
                                 c->params, c->acc, c->gen);
        }
    }
    free(path);
    return rc;
}
