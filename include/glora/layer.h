/*
 * glora/layer.h - the GLoRA layer: choices, configurations, parameter counts,
 * merging and the adapter's gradients.
 *
 * A frozen linear layer (W0: out x in, b0: out) gets five support tensors,
 *     W' = W0 + W0 (.) A + B
 *     b' = b0 + b0 (.) D + E + W0 C
 *     y  = x W'^T + b'
 * each of A..E cut from eight stored tensors (rank R) by a choice:
 *
 *   tensor  lora_r (r <= R)        vector              scalar     none
 *   A       Ad[:, :r] Au[:r, :]    Ad[:, 0] (out x 1)  Ad[0, 0]   0
 *   B       Bd[:, :r] Bu[:r, :]    Bd[:, 0] (out x 1)  Bd[0, 0]   0
 *   C       Cd[:, :r] Cu[:r, :]    Cd[:, 0] (in x 1)   -          0
 *   D       -                      D (out)             D[0]       0
 *   E       -                      E (out)             E[0]       0
 *
 * Shapes of the stored tensors: Ad, Bd (out x R); Au, Bu (R x in);
 * Cd (in x R); Cu (R x 1); D, E (out). See docs/formats.md (GLoRA tensors).
 */
#ifndef GLORA_LAYER_H
#define GLORA_LAYER_H

#include <stddef.h>
#include <stdint.h>

#include "glora/gemm.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The five support tensors, the genes of the search. */
enum { GLORA_A = 0, GLORA_B, GLORA_C, GLORA_D, GLORA_E, GLORA_NTENSORS };

typedef enum {
    GLORA_NONE = 0,
    GLORA_SCALAR = 1,
    GLORA_VECTOR = 2,
    GLORA_LORA = 3,
} glora_kind_t;

/* One choice: a kind, and a rank when the kind is GLORA_LORA (else 0). */
typedef struct {
    uint8_t kind;
    uint8_t rank;
} glora_choice_t;

/* The configuration of one adapted layer: a choice for each of A..E. */
typedef struct {
    glora_choice_t t[GLORA_NTENSORS];
} glora_layer_cfg_t;

/* Largest LoRA rank glora handles. */
#define GLORA_MAX_RANK 64

/* "A".."E" for a tensor index. */
const char *glora_tensor_letter(int tensor);

/* Parses a choice for tensor t: "lora_<r>" (also "LoRA_<r>"), "vector",
 * "scalar" (also "constant"), "none". Checks that the kind is offered for that
 * tensor (no LoRA for D/E, no scalar for C) and 1 <= r <= max_rank.
 * On failure returns GLORA_EINVAL with a message naming the text (no path:
 * callers prefix their own context via glora_errmsg()). */
int glora_choice_parse(const char *s, int tensor, int max_rank, glora_choice_t *out);
/* Canonical spelling ("lora_4", "vector", "scalar", "none") into buf. */
const char *glora_choice_str(glora_choice_t c, char buf[16]);
/* Non-zero if the choice is legal for tensor t (rank not checked beyond >= 1). */
int glora_choice_valid(int tensor, glora_choice_t c);
static inline int glora_choice_eq(glora_choice_t a, glora_choice_t b) {
    return a.kind == b.kind && a.rank == b.rank;
}

/* Trainable parameters of one layer's configuration, official counting:
 * A, B: lora_r r(out+in), vector out, scalar 1; C: lora_r r(in+1), vector in;
 * D, E: vector out, scalar 1; none 0. */
size_t glora_layer_params(const glora_layer_cfg_t *cfg, int out, int in);

/* Largest rank used by a configuration (0 if it uses no LoRA). */
int glora_layer_max_rank(const glora_layer_cfg_t *cfg);

/* The stored tensors of one adapted layer (pointers into a model's memory). */
typedef struct {
    int out, in, rank;
    float *Ad, *Au, *Bd, *Bu, *Cd, *Cu, *D, *E;
} glora_adapter_t;

/* Number of floats of each stored tensor, in the order Ad Au Bd Bu Cd Cu D E. */
void glora_adapter_sizes(int out, int in, int rank, size_t sizes[8]);
/* The official names' suffixes, in the same order: "Ad", "Au", ... */
extern const char *const glora_adapter_names[8];

/* Folds a configuration into a plain linear layer:
 *   w (out x in) = W0 + W0 (.) A + B,  b (out) = b0 + b0 (.) D + E + W0 C.
 * b0 may be NULL (a linear without bias: then b = E + W0 C). w and b must not
 * alias w0 / b0. a is scratch of out*in floats used when A is lora (may be
 * NULL otherwise). Single-threaded: callers parallelise across layers or
 * candidates. */
void glora_adapter_merge(float *w, float *b, const float *w0, const float *b0,
                         const glora_adapter_t *ad, const glora_layer_cfg_t *cfg,
                         float *a_scratch);

/* Gradients of the stored tensors given the gradients of the merged layer:
 * dw (out x in) = dL/dW' (may be NULL when neither A nor B is used) and
 * db (out) = dL/db'. Accumulates (+=) into the non-NULL pointers of grad,
 * touching only what the configuration uses (the used rank slice, column 0,
 * element 0). scratch holds out*in floats (used when A or B is lora). */
void glora_adapter_backward(glora_adapter_t *grad, const float *dw, const float *db,
                            const float *w0, const float *b0, const glora_adapter_t *ad,
                            const glora_layer_cfg_t *cfg, float *scratch);

/* Backward of a layer whose A is a LoRA (the merged form, W' = the merged
 * weight), for G = dy (N, out) and X = x (N, in): dw (out, in) receives
 * dL/dW' = G^T X and db (out) dL/db' = sum_n G[n, :], then
 * glora_adapter_backward(grad, dw, db, ...) accumulates the stored
 * tensors' gradients (grad may not be NULL). prec is the arithmetic of
 * G^T X (glora/gemm.h): with GLORA_BF16, G and X rounded to bfloat16 and
 * summed in fp32 (fp32 output), as the weight-gradient product of a bf16
 * autocast; db and the gradients formed from dw are fp32 either way.
 * scratch holds out*in floats. */
void glora_adapter_backward_merged(glora_adapter_t *grad, float *dw, float *db, const float *dy,
                                   const float *x, size_t N, const float *w0, const float *b0,
                                   const glora_adapter_t *ad, const glora_layer_cfg_t *cfg,
                                   float *scratch, glora_precision_t prec);

/* ---- training without dL/dW': the row form of a layer ------------------
 *
 * Supernet training runs every layer whose A is not a LoRA without merging,
 * and never forms the out x in gradient dL/dW' for it. Shapes: X (N, in)
 * the layer's input, W0 (out, in), G = dL/dY (N, out), r the rank a LoRA
 * choice uses, R the stored rank (leading dimension of Ad, Bd, Cd).
 * a (out) is A's column (vector: Ad[:, 0]; scalar: Ad[0, 0] everywhere;
 * none: 0), beta likewise from Bd, s_n = sum_i X[n, i] (N) the row sums.
 *
 *   forward    Y0 = X W0^T                               (N, out): the one GEMM
 *              Y  = Y0 (.) (1 + a)^T + b' + X Bm^T       Bm = the B matrix:
 *                   X Bm^T = (X Bu_r^T) Bd_r^T            lora: P (N, r) thin
 *                          = s beta^T                     vector / scalar
 *   gradients  g      = sum_n G[n, :]                     (out) = dL/db'
 *              dAd[o, 0] = sum_n G[n, o] Y0[n, o]         vector
 *              dAd[0, 0] = sum_o sum_n G[n, o] Y0[n, o]   scalar
 *                (since (W0 (.) a 1^T) x = a (.) (W0 x): no dW' needed)
 *              dBd_r  = G^T P,  P = X Bu_r^T              lora (out, r), P (N, r)
 *              dBu_r  = Q^T X,  Q = G Bd_r                lora (r, in), Q (N, r)
 *              dBd[o, 0] = sum_n G[n, o] s_n              vector
 *              dBd[0, 0] = sum_n s_n sum_o G[n, o]        scalar
 *              dc = W0^T g (in): dCd_r = dc Cu_r^T, dCu_r = Cd_r^T dc (lora),
 *                   dCd[:, 0] = dc (vector)
 *              dD = g (.) b0 (vector) or its sum (scalar);
 *              dE = g (vector) or its sum (scalar)
 *   input      dX = (G (.) (1 + a)^T) W0 + G Bm            (N, in): the one GEMM
 *                   G Bm = Q Bu_r (lora), (G beta) 1^T (vector),
 *                          beta (G 1) 1^T (scalar)
 *
 * So a step costs the forward GEMM, the dX GEMM and O(N (in + out) r) more;
 * only a LoRA A (dA = dW' (.) W0, whose factors need all of dW' = G^T X)
 * keeps the merged form and glora_adapter_backward. */

/* Non-zero when cfg runs in the row form (A is not a LoRA). */
static inline int glora_adapter_rowform(const glora_layer_cfg_t *cfg) {
    return cfg->t[GLORA_A].kind != GLORA_LORA;
}
/* Non-zero when the row form needs Y0 kept for backward (A vector/scalar). */
static inline int glora_adapter_needs_y0(const glora_layer_cfg_t *cfg) {
    return cfg->t[GLORA_A].kind == GLORA_VECTOR || cfg->t[GLORA_A].kind == GLORA_SCALAR;
}

/* b' (out) = b0 + b0 (.) D + E + W0 C (b0 may be NULL): the bias half of
 * glora_adapter_merge, the same bits. */
void glora_adapter_bias(float *b, const float *w0, const float *b0, const glora_adapter_t *ad,
                        const glora_layer_cfg_t *cfg);

/* Floats of scratch the row form needs for N rows of a layer (out, R). */
size_t glora_adapter_rows_scratch(size_t N, int out, int R);

/* Row-form forward: y (N, out) = the layer of x (N, in) with bias bp = b'
 * (glora_adapter_bias). When glora_adapter_needs_y0, y0 (N, out) receives
 * X W0^T (else y0 is not touched and may be NULL). prec is the arithmetic
 * of the product with the frozen W0 (glora/gemm.h); B's thin products and
 * everything else stay fp32. */
void glora_adapter_forward_rows(float *y, float *y0, const float *x, size_t N, const float *w0,
                                const float *bp, const glora_adapter_t *ad,
                                const glora_layer_cfg_t *cfg, float *scratch,
                                glora_precision_t prec);
/* Rebuilds y (N, out) from y0 and x the same way (the same bits) as
 * glora_adapter_forward_rows did, for a configuration that needs_y0. */
void glora_adapter_finish_rows(float *y, const float *y0, const float *x, size_t N,
                               const float *bp, const glora_adapter_t *ad,
                               const glora_layer_cfg_t *cfg, float *scratch);
/* Row-form backward: given dy = G (N, out), x (N, in) and, when the
 * configuration needs it, y0 (N, out), accumulates (+=) the gradients of
 * the stored tensors the configuration uses into the non-NULL members of
 * grad (grad may be NULL: nothing trains) and, when dx is not NULL,
 * OVERWRITES dx (N, in) with dL/dX. prec is the arithmetic of dX's product
 * with the frozen W0; the gradients of the stored tensors are fp32. */
void glora_adapter_backward_rows(glora_adapter_t *grad, float *dx, const float *dy,
                                 const float *x, const float *y0, size_t N, const float *w0,
                                 const float *b0, const glora_adapter_t *ad,
                                 const glora_layer_cfg_t *cfg, float *scratch,
                                 glora_precision_t prec);

/* The official search space at rank R: A, B in {lora_R, vector, scalar, none},
 * C in {lora_R, vector, none}, D, E in {scalar, vector, none}. */
#define GLORA_SPACE_MAX 16
typedef struct {
    glora_choice_t opt[GLORA_NTENSORS][GLORA_SPACE_MAX];
    int n[GLORA_NTENSORS];
} glora_space_t;
void glora_space_official(glora_space_t *s, int rank);
/* Number of configurations of a space (product of the option counts). */
size_t glora_space_size(const glora_space_t *s);
/* Configuration number i (0 <= i < glora_space_size) in a fixed order:
 * A slowest, E fastest, options in the order listed. */
void glora_space_config(const glora_space_t *s, size_t i, glora_layer_cfg_t *cfg);

#ifdef __cplusplus
}
#endif
#endif
