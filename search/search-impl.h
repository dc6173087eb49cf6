/* Internals of the search engine shared by its files (see glora/search.h). */
#ifndef GLORA_SEARCH_IMPL_H
#define GLORA_SEARCH_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "util/rng.h"
#include "glora/search.h"

#define SEARCH_MAX_TIERS (GLORA_SEARCH_MAX_BUDGETS + 1)

/* One evaluated (or being evaluated) candidate; its genes live in
 * s->genes[i * n_layers ...]. */
typedef struct {
    size_t params;
    double acc;
    double loss;   /* mean loss (fitness other than accuracy), else NAN */
    int gen;   /* generation that produced it */
    char *enc; /* encoding, owned */
} cand_t;

struct glora_search {
    glora_search_problem_t p;     /* p.layers points at layers below */
    glora_search_layer_t *layers;
    glora_search_opts_t o;
    char config_hash[130];
    char supernet_sha256[65];
    char data_sha256[65];

    glora_rng_t rng;
    int generation;               /* last completed generation, -1 before any */

    cand_t *c;                    /* every candidate, in evaluation order */
    glora_layer_cfg_t *genes;
    size_t n, cap;
    uint32_t *table;              /* open addressing: candidate index + 1, 0 free */
    size_t table_cap;             /* power of two */

    size_t pop_start, pop_n;      /* the last generation's candidates */
    /* Budget tiers: tier 0 is [min_params, max_params]; tier i >= 1 is
     * [min_params, the i-th extra budget below max_params], each with its
     * own parents. */
    int n_tiers;
    size_t tier_max[SEARCH_MAX_TIERS]; /* 0: unbounded */
    size_t tier_min[SEARCH_MAX_TIERS]; /* min_params, raised by fill_budget */
    int tier_budget[SEARCH_MAX_TIERS]; /* index into o.budgets, -1 for tier 0 */
    size_t *parents;              /* tier t: parents[t * o.parents ...], best first */
    int n_parents[SEARCH_MAX_TIERS];
    size_t *cost;                 /* params of option k of tensor t of layer l:
                                     cost[(l * GLORA_NTENSORS + t) * GLORA_SPACE_MAX + k] */
    glora_search_gen_t *hist;     /* one per completed generation */
    int n_hist;
};

/* The JSON writers use the library's one string builder. */
#include "util/strbuf.h"

/* Ranking order (by the fitness): accuracy desc (accuracy, accuracy+loss),
 * loss asc (loglik, accuracy+loss), then params asc, encoding asc. <0: a
 * before b. */
int search_cand_cmp(const struct glora_search *s, size_t a, size_t b);

/* Appends a candidate (not yet evaluated) and indexes it. */
int search_add(struct glora_search *s, const glora_layer_cfg_t *genes, size_t params, int gen,
               char *enc_or_null);
/* Index of an identical candidate, or -1. */
long search_find(const struct glora_search *s, const glora_layer_cfg_t *genes);

/* One history entry as a JSON object (no newline). */
void search_gen_json(sbuf_t *b, const glora_search_gen_t *h);
int search_checkpoint_write(const struct glora_search *s, const char *path);
int search_outputs_write(const struct glora_search *s, const char *dir);

/* Distributed evaluation (search/distribute.c), with more than one rank and
 * a problem with a count callback. On rank 0: acc of candidates
 * [start, start + n), shared out over every rank. On the others: serve
 * rank 0's requests until it ends the search; returns its final status.
 * search_end_serving (rank 0) ends the serving with rank 0's status rc and
 * returns the status all ranks agree on. */
int search_eval_distributed(struct glora_search *s, size_t start, size_t n, double *acc,
                            double *loss);
/* Whether the search needs losses (a fitness other than accuracy). */
#define SEARCH_NEEDS_LOSS(s) ((s)->o.fitness != GLORA_FITNESS_ACCURACY)
/* Mean loss of each of n candidates from per-item losses loss[i * n_items
 * + k], summed in item order in double. */
void search_mean_losses(const double *item_loss, size_t n, size_t n_items, double *loss);
int search_serve(struct glora_search *s);
int search_end_serving(int rc);

/* A candidate's spec from model m's layers (vit.c): the write_spec of the
 * ViT bindings, glora_search_vit_t's and glora_search_cv_t's. */
int search_spec_write(const glora_vit_t *m, const char *supernet_sha256, const char *path,
                      const glora_layer_cfg_t *cfg, size_t params, double acc, int generation);

/* Checkpoint validation (checkpoint_check.c): ranges of everything in the
 * JSON (before any value is converted), then consistency of the loaded state. */
struct cJSON;
int search_checkpoint_check_json(const char *path, const struct cJSON *root);
int search_checkpoint_check_state(const struct glora_search *s, const char *path);

#endif
