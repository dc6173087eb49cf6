/*
 * glora/search.h - evolutionary layer-wise structure search (AutoFormer/NOAH
 * algorithm, as in the official GLoRA code), resumable and deterministic.
 *
 * The engine knows nothing about models: a problem is a list of layers (their
 * out/in sizes, a name and the choices allowed for each of A..E) and ONE batch
 * evaluation callback, called once per generation with all of that
 * generation's new candidates, so that it can parallelise (OpenMP threads, or
 * later MPI ranks) without the algorithm knowing. glora_search_vit_* bind the
 * engine to a glora_vit_t supernet.
 *
 * Algorithm (official semantics, defects fixed):
 *   generation 0: `population` random candidates within [min, max] params;
 *   generations 1..G: `mutations` children of the parents (a parent drawn
 *     uniformly, each gene -- one of A..E of one layer -- redrawn uniformly
 *     from that layer's options with probability `mutation_prob`), then
 *     `crossovers` children of two distinct parents (each gene from either
 *     with equal chance), then random candidates up to `population`;
 *     each kind of child gets at most wanted * max_tries attempts; a child
 *     outside [min, max] or already seen (evaluated before, or already in
 *     this generation) is skipped, so no candidate is evaluated twice;
 *   after each generation's evaluation, including the last one, the parents
 *     are the top `parents` of (parents + new candidates), i.e. of everything
 *     evaluated so far, ranked by accuracy (higher first), then parameters
 *     (fewer first), then the candidate encoding (strcmp, smaller first).
 * Beyond the official code:
 *   - the two parents of a crossover are distinct (the official code may
 *     draw one parent twice, whose child is always a duplicate), and the
 *     random fill is bounded by max_tries like the other children (the
 *     official one loops until it has its candidates);
 *   - tight budgets: when max_tries uniform random draws in a row are all
 *     above the budget (where the official rejection sampling would loop for
 *     ever), the last draw is shrunk to fit: a gene drawn uniformly among
 *     those with a cheaper option is redrawn among its cheaper options until
 *     the candidate fits. With budgets that random draws meet, nothing changes;
 *   - extra budgets: each extra budget below max_params is a tier with its
 *     own parents, bred the same way (mutations, crossovers, random fill up to
 *     `population`) within [min_params, budget], after the main tier and in
 *     the listed order, all in the same generation's batch; every tier's
 *     parents are the best of everything evaluated within its budget. So one
 *     search costs (1 + tiers) x population evaluations per generation and
 *     best-under-<budget>.json is a real search result, not a by-product.
 * Options that leave the official algorithm (off in glora_search_opts_default;
 * the commands' search.fitness key defaults to loglik, which the transfer
 * suite chose; search.preset official pins them all off, docs/config.md):
 *   - fitness loglik or accuracy+loss: the ranking uses each candidate's
 *     mean validation loss (problem score callback) instead of, or after,
 *     the accuracy;
 *   - fill_budget: each tier accepts only candidates of at least
 *     min_budget_fraction of its budget; random ones below are grown to it
 *     (the mirror of the shrinking above; more draws from the stream).
 * All random draws come from one glora_rng_t on the calling thread, in a fixed
 * order; with an evaluator whose results do not depend on the thread count,
 * the whole search (and every checkpoint) is a function of the options, the
 * problem, the evaluator and the seed.
 *
 * Candidate encoding (checkpoints, pareto.json, ranking ties): one token per
 * layer, joined by '|'; a token is the five choices of A..E joined by '.',
 * each "N" (none), "S" (scalar), "V" (vector) or "L<r>" (lora_r), e.g.
 *     "L4.V.S.N.V|N.L2.V.S.S|..."
 *
 * Files written in the output directory after every generation (atomically,
 * checkpoint first, formats in docs/formats.md, "## Search"):
 *   checkpoint.json            "glora-search-checkpoint/1", everything needed to resume
 *   history.jsonl              one JSON object per generation
 *   pareto.json                non-dominated candidates over all evaluated
 *   best.json                  best candidate (through problem->write_spec)
 *   best-under-<budget>.json   best candidate with params <= budget, per extra budget
 */
#ifndef GLORA_SEARCH_H
#define GLORA_SEARCH_H

#include <stddef.h>
#include <stdint.h>

#include "glora/config.h"
#include "glora/data.h"
#include "glora/layer.h"
#include "glora/model.h"

#ifdef __cplusplus
extern "C" {
#endif

#define GLORA_SEARCH_CHECKPOINT_FORMAT "glora-search-checkpoint/1"
#define GLORA_SEARCH_MAX_BUDGETS 16
#define GLORA_SEARCH_MAX_FOLDS 64 /* search.cv_folds */

/* One searchable layer. name is used in outputs ("blocks.0.attn.qkv"). */
typedef struct {
    int out, in;
    char name[48];
    glora_space_t space;
} glora_search_layer_t;

/* Accuracy of n candidates (cands[i] points at n_layers configurations) into
 * acc[0..n). Must be a pure function of the candidate (not of n, the order,
 * or the thread count). Returns a glora status. */
typedef int (*glora_search_eval_fn)(void *ctx, const glora_layer_cfg_t *const *cands, size_t n,
                                    double *acc);
/* Distributed form of an evaluator whose accuracy is a fraction of n_items
 * items (images) counted right: adds to correct[i] the number of items in
 * [lo, hi) that candidate i gets right, for i < n. Must be a pure function
 * of the candidate and the items, and correct / n_items must equal what the
 * glora_search_eval_fn returns. */
typedef int (*glora_search_count_fn)(void *ctx, const glora_layer_cfg_t *const *cands, size_t n,
                                     size_t lo, size_t hi, uint64_t *correct);
/* Scores for the finer fitnesses (search.fitness loglik, accuracy+loss):
 * like count, adds to correct[i] the items in [lo, hi) candidate i gets
 * right, and writes the loss of each of them (the negative log-likelihood
 * of its true class, computed in double) to loss[i * n_items + k] for k in
 * [lo, hi). Each loss must be a pure function of the candidate and the
 * item (not of lo, hi, n or the threads): the engine sums them per
 * candidate in item order, in double, so 1 process and any number of MPI
 * ranks give the same bits. */
typedef int (*glora_search_score_fn)(void *ctx, const glora_layer_cfg_t *const *cands, size_t n,
                                     size_t lo, size_t hi, uint64_t *correct, double *loss);
/* Writes a subnet spec of cfg to path (best.json, best-under-*.json). */
typedef int (*glora_search_spec_fn)(void *ctx, const char *path, const glora_layer_cfg_t *cfg,
                                    size_t params, double acc, int generation);

typedef struct {
    int n_layers;
    const glora_search_layer_t *layers; /* n_layers, copied by glora_search_create */
    glora_search_eval_fn evaluate;
    glora_search_spec_fn write_spec;    /* NULL: no best*.json files */
    /* Optional (both or neither): with several MPI ranks, each generation's
     * (candidate, item) pairs are split statically over the ranks, each
     * rank counts its share through `count`, and the counts are summed. */
    glora_search_count_fn count;
    size_t n_items;
    /* Needed by the fitnesses other than accuracy (with n_items). */
    glora_search_score_fn score;
    void *ctx;                          /* passed to both callbacks */
    /* Identity of what the evaluator scores on (e.g. the sha256 of the
     * validation images and labels), compared on resume; NULL = "". */
    const char *data_sha256;
} glora_search_problem_t;

/* What ranks the candidates (search.fitness). */
typedef enum {
    GLORA_FITNESS_ACCURACY = 0, /* top-1 accuracy, then fewer parameters (official) */
    GLORA_FITNESS_LOGLIK,       /* mean log-likelihood of the true class (higher first),
                                   then fewer parameters */
    GLORA_FITNESS_ACC_LOSS      /* accuracy, then mean loss (lower first), then fewer
                                   parameters */
} glora_search_fitness_t;
extern const char *const glora_search_fitness_names[]; /* "accuracy", "loglik", "accuracy+loss", NULL */
extern const char *const glora_search_presets[];       /* "none", "official", NULL */

typedef struct {
    int population;       /* 50 */
    int parents;          /* 10 */
    int mutations;        /* 25 */
    int crossovers;       /* 25 */
    double mutation_prob; /* 0.2 */
    int max_tries;        /* 10 attempts per wanted child */
    int generations;      /* 20: generations 1..20 after the random generation 0 */
    size_t min_params, max_params; /* budget; max 0 means no upper bound */
    uint64_t seed;
    size_t budgets[GLORA_SEARCH_MAX_BUDGETS]; /* extra budgets (>= min_params): tiers
                                                 searched alongside, best-under-<b>.json */
    int n_budgets;
    glora_search_fitness_t fitness; /* GLORA_FITNESS_ACCURACY here (a bare fitness
                                       callback has no loss); the search.fitness
                                       key's default is loglik */
    /* Candidates that use the budget: with fill_budget, every tier accepts
     * only candidates of at least ceil(min_budget_fraction x its budget)
     * parameters (and min_params), and a random candidate below that is grown
     * (a gene with a costlier option that still fits is redrawn among those
     * options, until it reaches the bound). Needs max_params > 0. */
    int fill_budget;                /* 0 */
    double min_budget_fraction;     /* in (0, 1], 0.9 by default */
    /* Not part of the search's identity (not checkpointed or compared): */
    int stop_after;       /* >= 0: return after generation stop_after is
                             checkpointed, as if killed (tests); -1: never */
    double (*clock)(void); /* seconds for history; NULL: glora_now */
} glora_search_opts_t;

/* The official options; budget [0, unbounded], seed 0, no extra budgets. */
void glora_search_opts_default(glora_search_opts_t *o);
/* Checks option ranges; messages name the option ("search.parents"). */
int glora_search_opts_check(const glora_search_opts_t *o);

/* Statistics of one generation, as in history.jsonl. */
typedef struct {
    int generation;
    double best_acc;          /* best over everything evaluated so far */
    size_t best_params;
    double parents_mean_acc;  /* mean accuracy of the parents after ranking */
    double best_loss;         /* mean loss of the best (NAN with fitness accuracy) */
    size_t evaluated;         /* new candidates of this generation */
    size_t evaluated_total;
    double seconds;           /* wall time of the generation */
} glora_search_gen_t;

/* Progress callbacks (the library never prints). Both may be NULL. */
typedef struct {
    /* Before a generation's batch is evaluated. */
    void (*batch)(void *ctx, int generation, size_t n_candidates);
    /* After a generation is ranked and its files are written. */
    void (*generation)(void *ctx, const glora_search_gen_t *g);
    void *ctx;
} glora_search_hooks_t;

typedef struct glora_search glora_search_t;

/* A fresh search (generation -1, nothing evaluated). config_hash and
 * supernet_sha256 (may be NULL = "") identify the run in checkpoints: a
 * resume refuses to continue when either differs. */
int glora_search_create(glora_search_t **out, const glora_search_problem_t *p,
                        const glora_search_opts_t *o, const char *config_hash,
                        const char *supernet_sha256);
void glora_search_free(glora_search_t *s); /* NULL-safe */

/* Loads the state of a checkpoint file into a fresh search. Refuses (ESTATE,
 * message saying what changed) a checkpoint whose options, layers, spaces,
 * config hash, supernet or data identity differ from the search's. */
int glora_search_resume(glora_search_t *s, const char *checkpoint_path);

/* Runs the remaining generations; after each, writes the checkpoint and the
 * outputs into dir (created if needed). Under MPI (several ranks), every
 * rank calls it: rank 0 runs the search (random stream, population,
 * checkpoint, outputs, hooks), and the other ranks only evaluate their share
 * of each generation (problem count callback; without one rank 0 evaluates
 * alone); every rank returns the same status. Before the first new generation it
 * rewrites the outputs of the state it starts from, so a run killed between
 * writing the checkpoint and the outputs ends up complete. Returns 0 when the
 * search is finished or stopped by opts.stop_after. After a failure the
 * search object may only be freed. */
int glora_search_run(glora_search_t *s, const char *dir, const glora_search_hooks_t *hooks);

/* Last completed generation (-1 before generation 0), and whether all are done. */
int glora_search_generation(const glora_search_t *s);
int glora_search_done(const glora_search_t *s);
size_t glora_search_n_evaluated(const glora_search_t *s);
/* Candidate i (in evaluation order) of everything evaluated: its layer
 * configurations (n_layers, owned by s), and optionally params / acc /
 * generation. */
const glora_layer_cfg_t *glora_search_candidate(const glora_search_t *s, size_t i,
                                                size_t *params, double *acc, int *generation);
/* Mean validation loss of candidate i (NAN with fitness accuracy). */
double glora_search_candidate_loss(const glora_search_t *s, size_t i);
/* Index of the best candidate overall (budget 0) or with params <= budget;
 * -1 when there is none. */
long glora_search_best(const glora_search_t *s, size_t budget);
/* Encoding of candidate i (owned by s). */
const char *glora_search_encoding(const glora_search_t *s, size_t i);

/* Official parameter count of a candidate. */
size_t glora_search_params(const glora_search_problem_t *p, const glora_layer_cfg_t *cand);

/* Encodes a candidate (n_layers configurations) into a malloc'd string. */
char *glora_search_encode(const glora_layer_cfg_t *cand, int n_layers);
/* Decodes an encoding into cand[0..n_layers); EFORMAT with a message on a
 * malformed text, a wrong number of layers or an illegal choice. */
int glora_search_decode(const char *enc, glora_layer_cfg_t *cand, int n_layers);

/* Parses a budget: a plain non-negative number, or with a K (x1e3) or M (x1e6)
 * suffix, case-insensitive ("300K", "1.5M"); the result must be a whole
 * number. key names the setting in messages. */
int glora_search_parse_budget(const char *text, const char *key, size_t *out);
/* The file name part of a budget: "1M", "300K", "1500K" or the plain number. */
void glora_search_budget_str(size_t budget, char buf[32]);

/* Search space rules. Each rule replaces, on the layers it selects, the
 * options of the tensors it lists (choices[t] non-NULL) by the parsed choice
 * strings. select: NULL or "" (every layer), a layer kind "qkv", "proj",
 * "fc1", "fc2" (name ends in that), "blocks.<i>" (every layer of block i)
 * or a full layer name. Errors name key + ".A".. : GLORA_EINVAL for a bad
 * list (empty, unknown choice, rank above max_rank, kind not offered (C
 * scalar, D/E lora), duplicate choice, more than GLORA_SPACE_MAX options),
 * GLORA_ESTATE for a selector that matches no layer of this model.
 *
 * This is THE builder of search spaces: the search's per-layer spaces
 * (rules over glora_search_vit_layers) and the supernet's one space (a rule
 * over one layer, glora_space_build) both go through it. */
typedef struct {
    const char *select;
    const char *const *choices[GLORA_NTENSORS]; /* NULL: keep */
    size_t n[GLORA_NTENSORS];
    const char *key;                            /* "search.space" etc. */
} glora_search_space_rule_t;
int glora_search_space_apply(glora_search_layer_t *layers, int n_layers,
                             const glora_search_space_rule_t *rule, int max_rank);
/* The one space of supernet training: official at rank, then the tensors
 * whose list is non-empty (lists[t], n[t]) replaced by those choices. Errors
 * as glora_search_space_apply, naming key + ".A".. */
int glora_space_build(glora_space_t *sp, const char *const *const lists[GLORA_NTENSORS],
                      const size_t n[GLORA_NTENSORS], int rank, const char *key);
/* A layer's space as text, "A=L4,V,S,N B=L4,V,S,N C=L4,V,N D=S,V,N E=S,V,N". */
void glora_search_space_str(const glora_space_t *sp, char *buf, size_t size);

/* ---- Settings from a config ---- */

/* The keys of the search (search.*), in one place for every command that
 * searches. */
#define GLORA_SEARCH_SPACE_KEYS(prefix, def, what)                                                          \
    {prefix ".A", GLORA_CFG_STRINGS, def, "choices of A " what " (lora_<r>, vector, scalar, none)", 0, 0, NULL}, \
    {prefix ".B", GLORA_CFG_STRINGS, def, "choices of B " what " (lora_<r>, vector, scalar, none)", 0, 0, NULL}, \
    {prefix ".C", GLORA_CFG_STRINGS, def, "choices of C " what " (lora_<r>, vector, none)", 0, 0, NULL},         \
    {prefix ".D", GLORA_CFG_STRINGS, def, "choices of D " what " (vector, scalar, none)", 0, 0, NULL},           \
    {prefix ".E", GLORA_CFG_STRINGS, def, "choices of E " what " (vector, scalar, none)", 0, 0, NULL}

#define GLORA_SEARCH_KEYS \
    {"search.population", GLORA_CFG_INT, "50", "candidates per generation", 1, 1000000, NULL}, \
    {"search.parents", GLORA_CFG_INT, "10", "top candidates kept as parents", 1, 1000000, NULL}, \
    {"search.mutations", GLORA_CFG_INT, "25", "mutated children per generation", 0, 1000000, NULL}, \
    {"search.crossovers", GLORA_CFG_INT, "25", "crossover children per generation", 0, 1000000, NULL}, \
    {"search.mutation_prob", GLORA_CFG_NUMBER, "0.2", "probability that a mutation redraws a gene", 0, 1, NULL}, \
    {"search.max_tries", GLORA_CFG_INT, "10", "attempts per wanted child", 1, 1000000, NULL}, \
    {"search.generations", GLORA_CFG_INT, "20", "generations after the random generation 0", 0, 1000000, NULL}, \
    {"search.seed", GLORA_CFG_INT, "1", "random seed of the search", 0, 9007199254740992.0, NULL}, \
    {"search.min_params", GLORA_CFG_SIZE, "0", "fewest GLoRA parameters of a candidate (K/M suffix)", 0, 0, NULL}, \
    {"search.max_params", GLORA_CFG_SIZE, "0", "most GLoRA parameters of a candidate (0: no limit)", 0, 0, NULL}, \
    {"search.extra_budgets", GLORA_CFG_SIZES, "[]", "smaller budgets searched alongside (a population each), for best-under-<budget>.json", 0, 0, NULL}, \
    {"search.preset", GLORA_CFG_ENUM, "none", "official: pin the official algorithm (population 50, parents 10, mutations 25, crossovers 25, mutation_prob 0.2, max_tries 10, generations 20, fitness accuracy, fill_budget false, the official space); a key set to another value is an error", 0, 0, glora_search_presets, GLORA_CFG_IDENTITY_IF_SET}, \
    {"search.fitness", GLORA_CFG_ENUM, "loglik", "what ranks candidates: loglik (mean log-likelihood of the true class, then fewer parameters; chosen by the transfer suite, docs/RESULTS.md), accuracy (top-1, then fewer parameters: the official ranking), accuracy+loss (accuracy, then mean loss, then fewer parameters)", 0, 0, glora_search_fitness_names, GLORA_CFG_IDENTITY_IF_SET, "accuracy"}, \
    {"search.fill_budget", GLORA_CFG_BOOL, "false", "accept only candidates using at least min_budget_fraction of their budget (max_params, each extra budget); random ones are grown to it", 0, 0, NULL, GLORA_CFG_IDENTITY_IF_SET}, \
    {"search.min_budget_fraction", GLORA_CFG_NUMBER, "0.9", "with fill_budget: the fraction of the budget a candidate must use", 0, 1, NULL, GLORA_CFG_IDENTITY_IF_SET}, \
    {"search.cv_folds", GLORA_CFG_INT, "0", "K >= 2: score candidates by K-fold cross-validation (glora run only): the supernet section's data.train and this data split pooled into K folds (stratified, drawn by search.seed), K supernets trained as the supernet section says, each on all folds but one, every candidate scored on each fold by the supernet that never saw it, accuracy and loss pooled over all the folds' images; retrain, merge and eval still use the run's own supernet. 0 or 1: off (one supernet, scored on this split)", 0, GLORA_SEARCH_MAX_FOLDS, NULL, GLORA_CFG_IDENTITY_IF_SET}, \
    {"search.batch", GLORA_CFG_INT, "32", "images per forward pass of one candidate (results do not depend on it)", 1, 65536, NULL, GLORA_CFG_NOT_IDENTITY}, \
    {"search.space.ranks", GLORA_CFG_INTS, "[]", "LoRA ranks of the default space (default: the supernet's)", 1, 64, NULL}, \
    GLORA_SEARCH_SPACE_KEYS("search.space", "[]", "for every layer (default: official)"), \
    GLORA_SEARCH_SPACE_KEYS("search.space.override.*", "[]", "for the layers named by *: qkv, proj, fc1, fc2, block<i>, block<i>_<kind>")

/* The options from the search.* keys, checked (glora_search_opts_check). */
int glora_search_opts_from_config(const glora_config_t *cfg, glora_search_opts_t *o);
/* The per-layer spaces of layers L (glora_search_vit_layers of m) from the
 * search.space.* keys: official at the supernet's rank (or at each of
 * search.space.ranks), then search.space.A..E, then the overrides (layer
 * kinds, then blocks, then single layers: the most specific wins), all
 * through glora_search_space_apply. Errors name the key. */
int glora_search_space_from_config(const glora_config_t *cfg, const glora_vit_t *m, glora_search_layer_t *L);

/* Draws a search as an SVG into out_path (atomically): best and parents'
 * mean validation accuracy per generation from checkpoint_path, and the
 * accuracy against parameters of every evaluated candidate with the Pareto
 * front and the baselines of baselines_path (a JSON list of {name, params,
 * val_accuracy}; a missing file is an error only when baselines_required).
 * The checkpoint must pass the range and duplicate-key checks a resume
 * makes; the baselines must have no key twice, params >= 0 and val_accuracy
 * in [0, 1]: anything else is refused, naming the file and the key. */
int glora_search_report(const char *checkpoint_path, const char *baselines_path, int baselines_required,
                        const char *out_path);

/* ---- Binding to a ViT supernet ---- */

/* The search's fitness: the top-1 accuracy of each of n candidate
 * configurations (cands[i] points at 4 * depth layer configurations) of the
 * supernet m on the split ds, into acc[0..n). The images' tokens are computed
 * once (batch images at a time), then candidates run in parallel (one per
 * thread, each on its own workspace with batch `batch`), so acc is the same
 * for any number of threads and any batch. */
int glora_search_fitness(const glora_vit_t *m, const glora_layer_cfg_t *const *cands, size_t n,
                         const glora_dataset_t *ds, size_t batch, double *acc);
/* The same as counts on images [lo, hi) of ds only: adds the number of them
 * candidate i gets right to correct[i] (exact; the distributed search sums
 * such counts over ranks, glora_search_fitness divides them by ds->n). */
int glora_search_fitness_count(const glora_vit_t *m, const glora_layer_cfg_t *const *cands, size_t n,
                               const glora_dataset_t *ds, size_t lo, size_t hi, size_t batch,
                               uint64_t *correct);

/* The counts of glora_search_fitness_count and, for each image k in [lo,
 * hi), the loss of candidate i on it, -log softmax(logits)[label] computed
 * in double from the float logits, into loss[i * ds->n + k]. */
int glora_search_fitness_score(const glora_vit_t *m, const glora_layer_cfg_t *const *cands, size_t n,
                               const glora_dataset_t *ds, size_t lo, size_t hi, size_t batch,
                               uint64_t *correct, double *loss);

/* Buffers of the fitness kept from one call to the next (each thread's
 * merged weights, packed only in bf16 or when a candidate sees several
 * batches, and activations, the tokens): fresh pages for
 * a ViT-B/16's weights cost more than scoring a few images. NULL when out
 * of memory; glora_search_ws_free(NULL) is a no-op. A workspace serves one
 * caller at a time, any model, batch and thread count (it is remade to
 * fit), with the same results as a fresh one. */
typedef struct glora_search_ws glora_search_ws_t;
glora_search_ws_t *glora_search_ws_new(void);
void glora_search_ws_free(glora_search_ws_t *ws);
/* glora_search_fitness_score on the buffers of ws. */
int glora_search_fitness_score_ws(glora_search_ws_t *ws, const glora_vit_t *m,
                                  const glora_layer_cfg_t *const *cands, size_t n,
                                  const glora_dataset_t *ds, size_t lo, size_t hi, size_t batch,
                                  uint64_t *correct, double *loss);

/* layers[0 .. 4*depth) with the model's names and shapes and the official
 * space at the model's rank. Caller frees *layers. */
int glora_search_vit_layers(const glora_vit_t *m, glora_search_layer_t **layers);

/* Context of the ViT evaluator and spec writer. */
typedef struct {
    const glora_vit_t *m;
    const glora_dataset_t *data; /* the split candidates are scored on */
    size_t batch;              /* images per forward pass of one candidate */
    char supernet_sha256[65];  /* into the specs */
    /* Live counter: called on the calling thread after each chunk of the
     * batch with the candidates done so far (may be NULL). */
    void (*tick)(void *ctx, size_t done, size_t total);
    void *tick_ctx;
    /* Buffers kept between evaluations (the caller's), or NULL for fresh
     * ones on every call. */
    glora_search_ws_t *ws;
} glora_search_vit_t;

/* The glora_search_eval_fn for ctx = glora_search_vit_t*: top-1 accuracy on
 * the split through glora_search_fitness. */
int glora_search_vit_evaluate(void *ctx, const glora_layer_cfg_t *const *cands, size_t n,
                              double *acc);
/* The glora_search_count_fn for ctx = glora_search_vit_t* (n_items =
 * ds->n): correct top-1 predictions on images [lo, hi) (glora_search_fitness_count). */
int glora_search_vit_count(void *ctx, const glora_layer_cfg_t *const *cands, size_t n, size_t lo,
                           size_t hi, uint64_t *correct);
/* The glora_search_score_fn for ctx = glora_search_vit_t* (n_items =
 * ds->n): glora_search_fitness_score. */
int glora_search_vit_score(void *ctx, const glora_layer_cfg_t *const *cands, size_t n, size_t lo,
                           size_t hi, uint64_t *correct, double *loss);
/* The glora_search_spec_fn for ctx = glora_search_vit_t*: glora_spec_write. */
int glora_search_vit_write_spec(void *ctx, const char *path, const glora_layer_cfg_t *cfg,
                                size_t params, double acc, int generation);

/* ---- Binding to K supernets, by cross-validation (search.cv_folds) ----
 * The labelled data is cut into k folds; supernet m[f] was trained on every
 * fold but f. A candidate is scored on each fold f with m[f] (the images it
 * never trained on), and the folds are pooled: the problem's items are the
 * images of folds[0], then folds[1], ... (n_items = glora_search_cv_items),
 * so a candidate's accuracy is its correct predictions over all folds
 * divided by all their images, and its mean loss (search.fitness loglik,
 * accuracy+loss) the mean over all of them. With folds of equal size that
 * is the mean of the per-fold accuracies (losses). Everything else --
 * ranking, tie-breaks, budgets, MPI distribution over (candidate, item)
 * pairs -- is the engine's, unchanged. The supernets must share the
 * architecture and rank (the layers come from m[0]). */
typedef struct {
    int k;                               /* folds, >= 2 */
    const glora_vit_t *const *m;         /* k supernets, m[f] trained without fold f */
    const glora_dataset_t *const *folds; /* k splits, fold f scored by m[f] */
    size_t batch;                        /* images per forward pass of one candidate */
    /* The model and the supernet file the specs name (best.json: retrain
     * and merge use them); NULL: m[0], "". */
    const glora_vit_t *spec_model;
    char supernet_sha256[65];
    void (*tick)(void *ctx, size_t done, size_t total); /* as glora_search_vit_t's (may be NULL) */
    void *tick_ctx;
    /* k workspaces, one per supernet (the caller's), or NULL for fresh
     * buffers on every call. */
    glora_search_ws_t *const *ws;
} glora_search_cv_t;

/* The images of all the folds: the problem's n_items. */
size_t glora_search_cv_items(const glora_search_cv_t *v);
/* The callbacks of the problem for ctx = glora_search_cv_t*, as the
 * glora_search_vit_* ones on the pooled items. */
int glora_search_cv_evaluate(void *ctx, const glora_layer_cfg_t *const *cands, size_t n, double *acc);
int glora_search_cv_count(void *ctx, const glora_layer_cfg_t *const *cands, size_t n, size_t lo,
                          size_t hi, uint64_t *correct);
int glora_search_cv_score(void *ctx, const glora_layer_cfg_t *const *cands, size_t n, size_t lo,
                          size_t hi, uint64_t *correct, double *loss);
int glora_search_cv_write_spec(void *ctx, const char *path, const glora_layer_cfg_t *cfg,
                               size_t params, double acc, int generation);

#ifdef __cplusplus
}
#endif
#endif
