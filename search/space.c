/* Candidate encodings, search-space rules and budgets (see glora/search.h). */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "glora/common.h"
#include "glora/search.h"

/* One choice as an encoding symbol: N, S, V or L<r>; returns its length. */
static int choice_sym(glora_choice_t c, char *p) {
    switch (c.kind) {
    case GLORA_NONE: p[0] = 'N'; p[1] = 0; return 1;
    case GLORA_SCALAR: p[0] = 'S'; p[1] = 0; return 1;
    case GLORA_VECTOR: p[0] = 'V'; p[1] = 0; return 1;
    default: return sprintf(p, "L%d", (int)c.rank);
    }
}

char *glora_search_encode(const glora_layer_cfg_t *cand, int n_layers) {
    /* a layer is at most 5 * strlen("L64") + 4 dots + 1 bar */
    size_t cap = (size_t)n_layers * 20 + 1, len = 0;
    char *buf = malloc(cap);
    if (!buf) return NULL;
    for (int l = 0; l < n_layers; l++) {
        if (l) buf[len++] = '|';
        for (int t = 0; t < GLORA_NTENSORS; t++) {
            if (t) buf[len++] = '.';
            len += (size_t)choice_sym(cand[l].t[t], buf + len);
        }
    }
    buf[len] = 0;
    return buf;
}

int glora_search_decode(const char *enc, glora_layer_cfg_t *cand, int n_layers) {
    const char *p = enc;
    for (int l = 0; l < n_layers; l++) {
        if (l && *p++ != '|')
            return glora_error(GLORA_EFORMAT, "candidate '%.40s...': expected %d layers",
                               enc, n_layers);
        for (int t = 0; t < GLORA_NTENSORS; t++) {
            if (t && *p++ != '.')
                return glora_error(GLORA_EFORMAT,
                                   "candidate '%.40s...': layer %d needs 5 choices A.B.C.D.E",
                                   enc, l);
            glora_choice_t c = {0, 0};
            if (*p == 'N') c.kind = GLORA_NONE, p++;
            else if (*p == 'S') c.kind = GLORA_SCALAR, p++;
            else if (*p == 'V') c.kind = GLORA_VECTOR, p++;
            else if (*p == 'L' && isdigit((unsigned char)p[1])) {
                int r = 0;
                for (p++; isdigit((unsigned char)*p) && r <= GLORA_MAX_RANK; p++)
                    r = 10 * r + (*p - '0');
                if (r < 1 || r > GLORA_MAX_RANK)
                    return glora_error(GLORA_EFORMAT,
                                       "candidate '%.40s...': layer %d has a rank outside "
                                       "[1, %d]", enc, l, GLORA_MAX_RANK);
                c.kind = GLORA_LORA;
                c.rank = (uint8_t)r;
            } else
                return glora_error(GLORA_EFORMAT,
                                   "candidate '%.40s...': layer %d tensor %s: expected N, S, V "
                                   "or L<rank>", enc, l, glora_tensor_letter(t));
            if (!glora_choice_valid(t, c))
                return glora_error(GLORA_EFORMAT,
                                   "candidate '%.40s...': layer %d: that choice is not offered "
                                   "for tensor %s", enc, l, glora_tensor_letter(t));
            cand[l].t[t] = c;
        }
    }
    if (*p)
        return glora_error(GLORA_EFORMAT, "candidate '%.40s...': more than %d layers", enc,
                           n_layers);
    return 0;
}

void glora_search_space_str(const glora_space_t *sp, char *buf, size_t size) {
    size_t len = 0;
    buf[0] = 0;
    for (int t = 0; t < GLORA_NTENSORS; t++) {
        len += (size_t)snprintf(buf + len, len < size ? size - len : 0, "%s%s=", t ? " " : "",
                                glora_tensor_letter(t));
        for (int k = 0; k < sp->n[t]; k++) {
            char sym[8];
            choice_sym(sp->opt[t][k], sym);
            len += (size_t)snprintf(buf + len, len < size ? size - len : 0, "%s%s", k ? "," : "",
                                    sym);
        }
    }
}

static const char *const kinds[] = {"qkv", "proj", "fc1", "fc2"};

/* Does selector sel pick the layer called name? */
static int selects(const char *sel, const char *name) {
    if (!sel || !sel[0]) return 1;
    for (size_t k = 0; k < sizeof kinds / sizeof *kinds; k++) {
        if (strcmp(sel, kinds[k]) == 0) {
            size_t nl = strlen(name), kl = strlen(kinds[k]);
            return nl > kl && name[nl - kl - 1] == '.' && strcmp(name + nl - kl, kinds[k]) == 0;
        }
    }
    size_t sl = strlen(sel);
    if (strncmp(name, sel, sl) != 0) return 0;
    return name[sl] == 0 || name[sl] == '.'; /* "blocks.1" must not pick blocks.10 */
}

int glora_search_space_apply(glora_search_layer_t *layers, int n_layers,
                             const glora_search_space_rule_t *rule, int max_rank) {
    const char *key = rule->key ? rule->key : "search.space";
    glora_space_t parsed;
    memset(&parsed, 0, sizeof parsed);
    for (int t = 0; t < GLORA_NTENSORS; t++) {
        if (!rule->choices[t]) continue;
        const char *T = glora_tensor_letter(t);
        if (rule->n[t] == 0)
            return glora_error(GLORA_EINVAL, "search space '%s.%s': the list of choices is empty",
                               key, T);
        if (rule->n[t] > GLORA_SPACE_MAX)
            return glora_error(GLORA_EINVAL,
                               "search space '%s.%s': %zu choices, at most %d allowed", key, T,
                               rule->n[t], GLORA_SPACE_MAX);
        for (size_t k = 0; k < rule->n[t]; k++) {
            glora_choice_t c;
            const char *txt = rule->choices[t][k] ? rule->choices[t][k] : "";
            if (glora_choice_parse(txt, t, max_rank, &c) != 0) {
                int rc = glora_error(GLORA_EINVAL, "search space '%s.%s': %s", key, T,
                                     glora_errmsg());
                if (strncmp(txt, "lora_", 5) == 0 || strncmp(txt, "LoRA_", 5) == 0)
                    glora_error_hint("ranks must be between 1 and the supernet's rank %d",
                                     max_rank);
                return rc;
            }
            for (int j = 0; j < parsed.n[t]; j++)
                if (glora_choice_eq(parsed.opt[t][j], c))
                    return glora_error(GLORA_EINVAL,
                                       "search space '%s.%s': choice '%s' is listed twice", key,
                                       T, txt);
            parsed.opt[t][parsed.n[t]++] = c;
        }
    }
    int matched = 0;
    for (int l = 0; l < n_layers; l++) {
        if (!selects(rule->select, layers[l].name)) continue;
        matched++;
        for (int t = 0; t < GLORA_NTENSORS; t++) {
            if (!rule->choices[t]) continue;
            memcpy(layers[l].space.opt[t], parsed.opt[t], sizeof parsed.opt[t]);
            layers[l].space.n[t] = parsed.n[t];
        }
    }
    if (!matched)
        return glora_error(GLORA_ESTATE, "search space '%s': layers '%s' match no adapted layer",
                           key, rule->select ? rule->select : "");
    return 0;
}

int glora_search_parse_budget(const char *text, const char *key, size_t *out) {
    const char *k = key ? key : "budget";
    if (!text || !*text)
        return glora_error(GLORA_EINVAL, "budget '%s': empty", k);
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    double mult = 1;
    if (end == text || errno)
        return glora_error(GLORA_EINVAL, "budget '%s': '%s' is not a number (e.g. 300000, 300K, "
                                         "1.5M)", k, text);
    if (*end == 'k' || *end == 'K') mult = 1e3, end++;
    else if (*end == 'm' || *end == 'M') mult = 1e6, end++;
    if (*end)
        return glora_error(GLORA_EINVAL, "budget '%s': '%s' has trailing text (use K or M)", k,
                           text);
    double p = v * mult;
    if (!(p >= 0) || p > 9.0e15)
        return glora_error(GLORA_EINVAL, "budget '%s': '%s' is out of range", k, text);
    double r = nearbyint(p);
    if (fabs(p - r) > 1e-6 * (p > 1 ? p : 1))
        return glora_error(GLORA_EINVAL, "budget '%s': '%s' is not a whole number of parameters",
                           k, text);
    *out = (size_t)r;
    return 0;
}

void glora_search_budget_str(size_t budget, char buf[32]) {
    if (budget && budget % 1000000 == 0) snprintf(buf, 32, "%zuM", budget / 1000000);
    else if (budget && budget % 1000 == 0) snprintf(buf, 32, "%zuK", budget / 1000);
    else snprintf(buf, 32, "%zu", budget);
}

int glora_space_build(glora_space_t *sp, const char *const *const lists[GLORA_NTENSORS],
                      const size_t n[GLORA_NTENSORS], int rank, const char *key) {
    glora_search_layer_t one;
    memset(&one, 0, sizeof one);
    glora_space_official(&one.space, rank);
    glora_search_space_rule_t rule = {.select = NULL, .key = key};
    for (int t = 0; t < GLORA_NTENSORS; t++)
        if (n[t] > 0) {
            rule.choices[t] = lists[t];
            rule.n[t] = n[t];
        }
    int rc = glora_search_space_apply(&one, 1, &rule, rank);
    if (!rc) *sp = one.space;
    return rc;
}
