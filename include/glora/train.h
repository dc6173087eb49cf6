/*
 * glora/train.h - the training engine: gradients of the whole ViT, AdamW,
 * the learning-rate schedule, checkpoints and the epoch loop.
 *
 * What trains is a per-parameter mask over the model's named table
 * (m->params[i]); frozen tensors get no gradient buffer and no optimiser
 * state at all. Gradients live in ONE allocation laid out like the
 * parameters but holding only the trainable tensors (g->g[i] points into it,
 * or is NULL); AdamW's two moments use that same layout.
 *
 * Determinism: every reduction is summed in a fixed order (the kernels of
 * nn.h and gemm.h guarantee this for theirs), every random draw comes from a
 * glora_rng_t whose state is checkpointed, so a run is a function of its
 * inputs and seed, whatever the number of threads, and a run resumed from a
 * checkpoint ends bit-identical to one never interrupted.
 */
#ifndef GLORA_TRAIN_H
#define GLORA_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "glora/data.h"
#include "glora/layer.h"
#include "glora/model.h"
/* The random stream of initialisation and checkpoints (internal: util/rng.h). */
typedef struct glora_rng glora_rng_t;

#ifdef __cplusplus
extern "C" {
#endif

/* ---- what trains ------------------------------------------------------- */

/* Sets mask[i] (m->n_params entries) to 1 for every parameter matched by one
 * of the comma-separated patterns, 0 otherwise. A pattern is a role word
 * ("backbone", "head", "adapter" - also "glora") or an fnmatch(3) glob over
 * the parameter names ("blocks.*.attn.qkv.*", "head.*"). A pattern matching
 * nothing is an error (a typo would otherwise silently freeze everything). */
int glora_train_select(const glora_vit_t *m, const char *patterns, unsigned char *mask);

/* ---- gradients --------------------------------------------------------- */

typedef struct {
    int n_params;
    float *mem;                /* all trainable gradients, n_floats of them */
    size_t n_floats;
    float **g;                 /* per parameter index: its gradient or NULL */
    size_t *off;               /* per parameter index: offset in mem (valid if g[i]) */
    glora_vit_weights_t w;     /* typed views (NULL for frozen tensors) */
    glora_adapter_t *adapters; /* per adapted layer (NULL members when frozen),
                                  or NULL when the model has no adapters */
} glora_grads_t;

/* Gradient buffers for the parameters with trainable[i] != 0. Training the
 * backbone's adapted linear weights together with their adapter tensors is
 * refused (GLORA_EINVAL): the merged form's W0 gradient is not dW'. */
int glora_grads_create(glora_grads_t **out, const glora_vit_t *m,
                       const unsigned char *trainable);
void glora_grads_free(glora_grads_t *g); /* NULL-safe */
void glora_grads_zero(glora_grads_t *g);

/* ---- training passes ---------------------------------------------------
 *
 * The forward pass of training keeps a compact tape for backward, and each
 * adapted layer computes only what its configuration needs (the formulas,
 * with shapes, are in glora/layer.h):
 *  - configuration none, or no configuration: the frozen linear; its weight
 *    gets a gradient only when the backbone itself trains;
 *  - A a LoRA: the merged W' (out x in); backward forms dW' = G^T X (the one
 *    weight-sized product left, for dAd, dAu from dW' (.) W0) and dX = G W';
 *  - A vector, scalar or none (3/4 of the official space): the row form on
 *    the frozen W0, no merge, no dW': Y0 = X W0^T, dX = (G (.) (1+a)) W0
 *    plus thin terms; A's gradient from Y0, B's from thin products (LoRA) or
 *    row sums of X, C's from W0^T (column sums of G), D's and E's from
 *    column sums of G.
 * Tape, per block: its output (N, C), LayerNorm statistics, and one
 * output per adapted layer (the layer's Y, or Y0 when A is a vector or
 * scalar): 10 N C floats at ViT proportions (H = 4C). LayerNorm outputs,
 * attention, the first residual sum and GELU are recomputed in backward,
 * block by block, by the same kernels: the same bits as in the forward.
 * When a shard's tape and backward workspace with them take at most half
 * of GLORA_TRAIN_LIVE_BYTES, the tape keeps attention's probabilities and
 * output too, or every activation of each block, and backward recomputes
 * less or nothing (the same bits; GLORA_TRAIN_KEEP=0|1|2 in the
 * environment caps the level, for tests). glora_vit_shard_bytes counts
 * what is kept. */

/* Tape of the training forward pass for up to max_batch images. */
typedef struct glora_vit_tape glora_vit_tape_t;
int glora_vit_tape_create(glora_vit_tape_t **out, const glora_vit_t *m, size_t max_batch);
void glora_vit_tape_free(glora_vit_tape_t *t); /* NULL-safe */
/* Logits (B, classes) of the last glora_vit_train_forward. */
const float *glora_vit_tape_logits(const glora_vit_tape_t *t);

/* Sets lin for training under cfg (4 * depth configurations, or NULL):
 * only layers whose A is a LoRA are merged, every other layer points at its
 * frozen W0/b0 (glora_vit_linears_set would do too, merging more). */
void glora_vit_train_linears_set(glora_vit_linears_t *lin, const glora_vit_t *m,
                                 const glora_layer_cfg_t *cfg);
/* Forward pass of B <= max_batch images x (B, Cin, H, W) under cfg with the
 * linears lin (set for cfg), keeping the tape. The logits equal
 * glora_vit_forward's up to float rounding (layers in the row form sum in
 * another order). */
void glora_vit_train_forward(const glora_vit_t *m, const glora_vit_linears_t *lin,
                             const glora_layer_cfg_t *cfg, glora_vit_tape_t *t, const float *x,
                             size_t B);

/* Workspace of the backward pass for up to max_batch images (one
 * allocation: the activation gradients, merged-layer gradients, scratch). */
typedef struct glora_vit_bwd glora_vit_bwd_t;
int glora_vit_bwd_create(glora_vit_bwd_t **out, const glora_vit_t *m, size_t max_batch);
void glora_vit_bwd_free(glora_vit_bwd_t *ws); /* NULL-safe */
/* Bytes of one tape and one backward workspace for max_batch images: the
 * activation memory of one shard in flight. */
size_t glora_vit_shard_bytes(const glora_vit_t *m, size_t max_batch);

/* Backward pass of the whole model for the B images whose training forward
 * (under cfg, with lin) is on the tape t. dlogits (B, classes) is
 * dL/dlogits. cfg holds 4 * depth layer configurations, or NULL when every
 * layer runs its frozen W0/b0 (then adapters get nothing). Accumulates (+=)
 * into the trainable gradients of g; the parts of the graph below the
 * lowest trainable tensor are skipped. Recomputes into the tape's work
 * area (its per-block outputs stay as they are). */
void glora_vit_backward(const glora_vit_t *m, const glora_vit_linears_t *lin,
                        const glora_layer_cfg_t *cfg, glora_vit_tape_t *t,
                        const float *dlogits, size_t B, glora_grads_t *g,
                        glora_vit_bwd_t *ws);

/* Sum of squares of every trainable gradient, in double, in parameter order. */
double glora_grads_sumsq(const glora_grads_t *g);
/* Scales gradients so that their global L2 norm is at most max_norm
 * (max_norm <= 0: no clipping). Returns the norm before clipping. */
double glora_grads_clip(glora_grads_t *g, double max_norm);

/* ---- AdamW ------------------------------------------------------------- */

typedef struct {
    double beta1, beta2, eps, weight_decay;
} glora_adamw_cfg_t;

/* Moments in the gradients' layout; t steps taken so far. */
typedef struct {
    size_t n_floats;
    float *m, *v; /* one allocation: v = m + n_floats */
    int64_t t;
} glora_adamw_t;

int glora_adamw_create(glora_adamw_t **out, const glora_grads_t *g);
void glora_adamw_free(glora_adamw_t *opt); /* NULL-safe */
/* One step at learning rate lr over every trainable tensor (those with zero
 * gradient included, as torch.optim.AdamW does):
 *   p *= 1 - lr wd;  m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;
 *   p -= lr (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps). */
void glora_adamw_step(glora_adamw_t *opt, glora_vit_t *m, const glora_grads_t *g,
                      const glora_adamw_cfg_t *cfg, double lr);

/* ---- schedule ---------------------------------------------------------- */

/* Cosine over `epochs` stepped once per epoch, with a linear warm-up (timm's
 * CosineLRScheduler, as the official GLoRA code uses it): for epoch e
 * (0-based) < warmup: start + e (lr - start) / warmup; else
 * floor + (lr - floor) (1 + cos(pi e / epochs)) / 2. */
typedef struct {
    double lr, warmup_start, floor;
    int epochs, warmup;
} glora_sched_t;
double glora_sched_lr(const glora_sched_t *s, int epoch);
/* Default warm-up epochs for a run: round(epochs * 10 / 500). */
int glora_sched_default_warmup(int epochs);

/* ---- initialisation ---------------------------------------------------- */

/* GLoRA tensors as the official code: down factors (Ad, Bd, Cd) and D, E
 * zero; Au, Bu, Cu xavier uniform. */
void glora_train_init_adapters(glora_vit_t *m, glora_rng_t *rng);
/* A ViT from scratch as timm: linear weights and pos_embed normal with std
 * 0.02 (timm's trunc_normal_ cuts at +-2, absolute: in effect never), biases zero, cls_token normal (std 1e-6),
 * patch conv uniform +-1/sqrt(fan_in) (PyTorch's default), LayerNorms 1/0.
 * Only backbone and head; adapters untouched. */
void glora_train_init_vit(glora_vit_t *m, glora_rng_t *rng);
/* Zeroes every element of layer l's adapter tensors that cfg does not read
 * (unused ranks, columns beyond 0 of vector forms...), so that a subnet's
 * file holds exactly its own parameters and the rest stays at zero. */
void glora_train_zero_unused(glora_vit_t *m, const glora_layer_cfg_t *cfg);
/* Sets mask[i] = 1 for the adapter tensors cfg uses (4 * depth configs). */
void glora_train_mask_subnet(const glora_vit_t *m, const glora_layer_cfg_t *cfg,
                             unsigned char *mask);

/* ---- the loop ---------------------------------------------------------- */

/* What the loop reports (to the callbacks; the library never prints). */
typedef struct {
    int epoch;        /* 0-based */
    int epochs;
    size_t step;      /* steps done in this epoch */
    size_t steps;     /* steps per epoch */
    double lr;
    double loss;      /* mean training loss so far in this epoch */
    double accuracy;  /* training top-1 so far in this epoch */
    double images_per_s;
    double elapsed;   /* seconds of this epoch so far */
    int has_val;
    double val_accuracy;
    double grad_norm; /* of the last step (before clipping) */
} glora_train_progress_t;
typedef void (*glora_train_cb)(const glora_train_progress_t *p, void *ctx);

/* Activation memory (tapes and backward workspaces) of the shards in
 * flight at once, at most: shards beyond it wait their turn (never below
 * one in flight). Results do not depend on it. */
#define GLORA_TRAIN_LIVE_BYTES ((size_t)2 << 30)

typedef enum {
    GLORA_SAMPLING_UNIFORM = 0,
    GLORA_SAMPLING_SANDWICH = 1,
} glora_sampling_t;
/* The names of glora_sampling_t in order ("uniform", "sandwich"), NULL-ended. */
extern const char *const glora_sampling_names[];

typedef struct {
    int epochs;
    size_t batch;
    /* Each batch is cut into this many slices that run forward and backward
     * independently (on separate threads when there are any) and whose
     * gradients are summed in slice order; 0 means 2. Results depend on it
     * (float sums in another order), never on the number of threads. Only
     * min(shards, threads) slices are in flight at once (the others wait
     * their turn), and fewer when their tapes would exceed
     * GLORA_TRAIN_LIVE_BYTES together (at least one: a slice alone then
     * runs on all threads, inside its kernels), so activation memory is that
     * of at most min(shards, threads) * ceil(batch / shards) images: more
     * shards, less memory. */
    int shards;
    /* Arithmetic of the products through the linears' weights: the forward
     * of the adapted linears and the patch embedding, and the input
     * gradients dX = G W of the adapted linears, and dW' = G^T X of a layer
     * whose A is a LoRA (glora/gemm.h, glora_adapter_backward_merged).
     * GLORA_BF16 rounds those operands to bfloat16 (fp32 accumulation);
     * the other weight and adapter gradients (and those formed from dW'),
     * the head, LayerNorm, attention, GELU, the loss and AdamW stay fp32.
     * The validation passes run at this precision too.
     * GLORA_FP32 (0) is the exact path. */
    glora_precision_t precision;
    glora_sched_t sched;          /* its epochs field is taken from epochs */
    glora_adamw_cfg_t adamw;
    double clip_norm;             /* <= 0: none */
    int val_every;                /* validate after every val_every-th epoch and the
                                     last one (<= 1: every epoch); never changes training */
    float label_smoothing;
    uint64_t seed;
    /* Layer configurations: fixed_cfg (4 * depth, e.g. a subnet) used every
     * step; or, when space is non-NULL, every step every layer draws its
     * configuration uniformly from *space (supernet training); or neither:
     * the plain model (frozen W0/b0 everywhere). */
    const glora_layer_cfg_t *fixed_cfg;
    const glora_space_t *space;
    /* How a supernet step (space non-NULL) picks its configurations:
     * GLORA_SAMPLING_UNIFORM (0) as above, the official way; or
     * GLORA_SAMPLING_SANDWICH, a deterministic cycle of four steps over the
     * run (step t counted from 0 across epochs): t % 4 == 0 every layer takes
     * the largest option of each tensor (by kind none < scalar < vector <
     * lora, then rank: the most parameters), t % 4 == 1 the smallest, t % 4
     * in {2, 3} the uniform draw. The uniform draw is made on every step, so
     * the random stream (shuffling, draws) is uniform's. BigNAS's sandwich
     * rule (largest, smallest and two random paths per step, gradients
     * summed) spread over four steps at one path's cost per step. */
    glora_sampling_t sampling;
    /* Checkpoint file written atomically after every epoch (NULL: none);
     * with resume, training continues from it when it exists. */
    const char *checkpoint;
    int resume;
    /* Stop (as if killed) after this many epochs of this call; 0: never.
     * For tests of resuming and for splitting a run over sessions. */
    int stop_after;
    /* Identifies the run's settings; a checkpoint of other settings is
     * refused on resume (GLORA_ESTATE). */
    const char *run_hash;
    glora_train_cb on_step;  /* after every step (may be NULL) */
    glora_train_cb on_epoch; /* after every epoch, val included (may be NULL) */
    void *cb_ctx;
} glora_train_opts_t;

typedef struct {
    int start_epoch;    /* epochs already done when this call started (resume) */
    int epochs_run;     /* epochs this call ran */
    double loss;        /* mean training loss of the last epoch run */
    double accuracy;    /* training top-1 of the last epoch run */
    int has_val;
    double val_accuracy;
    double images_per_s; /* training throughput over this call */
} glora_train_result_t;

/* Trains the tensors with trainable[i] != 0 of m on train for opts->epochs
 * epochs (batches of opts->batch drawn from a permutation redrawn every epoch,
 * last partial batch dropped), measuring val (may be NULL or empty) after
 * each epoch: with a fixed configuration or the plain model, its accuracy;
 * in supernet training, the mean accuracy of four random configurations
 * drawn once from a stream forked off the seed. Returns a status; on
 * success m holds the trained weights and *res (may be NULL) the summary. */
int glora_train_run(glora_vit_t *m, const unsigned char *trainable,
                    const glora_train_opts_t *opts, const glora_dataset_t *train,
                    const glora_dataset_t *val, glora_train_result_t *res);

/* Checkpoint file (safetensors, docs/formats.md "Training checkpoints"): the
 * trainable tensors under their names, "adamw.m.<name>" and "adamw.v.<name>",
 * and metadata glora.kind=checkpoint, glora.epoch (epochs completed),
 * glora.adam_step, glora.rng (four 64-bit words in hex), glora.run_hash. */
#define GLORA_META_EPOCH "glora.epoch"
#define GLORA_META_ADAM_STEP "glora.adam_step"
#define GLORA_META_RNG "glora.rng"
#define GLORA_META_RUN_HASH "glora.run_hash"
int glora_checkpoint_save(const char *path, const glora_vit_t *m, const glora_grads_t *g,
                          const glora_adamw_t *opt, int epoch, const glora_rng_t *rng,
                          const char *run_hash);
/* Restores what glora_checkpoint_save wrote into m / opt / rng / *epoch.
 * Refuses a checkpoint of another run hash or another set of trainable
 * tensors (GLORA_ESTATE). */
int glora_checkpoint_load(const char *path, glora_vit_t *m, const glora_grads_t *g,
                          glora_adamw_t *opt, int *epoch, glora_rng_t *rng,
                          const char *run_hash);

#ifdef __cplusplus
}
#endif
#endif
