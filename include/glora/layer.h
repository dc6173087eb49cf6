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
