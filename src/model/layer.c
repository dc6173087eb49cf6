/* The GLoRA layer: choices, parameter counting, merging and the gradients of
 * the stored tensors (see glora/layer.h for the formulas). */
#include "glora/layer.h"
#include "glora/common.h"
#include "glora/gemm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const char *const glora_adapter_names[8] = {"Ad", "Au", "Bd", "Bu", "Cd", "Cu", "D", "E"};

const char *glora_tensor_letter(int tensor) {
    static const char *const letters[GLORA_NTENSORS] = {"A", "B", "C", "D", "E"};
    GLORA_ASSERT(tensor >= 0 && tensor < GLORA_NTENSORS);
    return letters[tensor];
}

int glora_choice_valid(int tensor, glora_choice_t c) {
    switch (c.kind) {
    case GLORA_NONE:
    case GLORA_VECTOR: return c.rank == 0;
    case GLORA_SCALAR: return tensor != GLORA_C && c.rank == 0;
    case GLORA_LORA: return tensor <= GLORA_C && c.rank >= 1 && c.rank <= GLORA_MAX_RANK;
    default: return 0;
    }
}

int glora_choice_parse(const char *s, int tensor, int max_rank, glora_choice_t *out) {
    glora_choice_t c = {GLORA_NONE, 0};
    if (strcasecmp(s, "none") == 0) {
        c.kind = GLORA_NONE;
    } else if (strcasecmp(s, "vector") == 0) {
        c.kind = GLORA_VECTOR;
    } else if (strcasecmp(s, "scalar") == 0 || strcasecmp(s, "constant") == 0) {
        c.kind = GLORA_SCALAR;
    } else if (strncasecmp(s, "lora_", 5) == 0) {
        const char *digits = s + 5;
        char *end;
        long r = strtol(digits, &end, 10);
        if (*digits < '0' || *digits > '9' || *end != '\0' || r < 1)
            return glora_error(GLORA_EINVAL, "choice '%s': a LoRA rank must be a positive integer", s);
        if (r > max_rank)
            return glora_error(GLORA_EINVAL, "choice '%s': rank %ld is above the supernet's rank %d",
                               s, r, max_rank);
        c.kind = GLORA_LORA;
        c.rank = (uint8_t)r;
    } else {
        return glora_error(GLORA_EINVAL,
                           "choice '%s': unknown (expected lora_<r>, vector, scalar or none)", s);
    }
    if (!glora_choice_valid(tensor, c))
        return glora_error(GLORA_EINVAL, "choice '%s': not offered for %s (%s)", s,
                           glora_tensor_letter(tensor),
                           tensor == GLORA_C ? "C takes lora_<r>, vector or none"
                                             : "D and E take vector, scalar or none");
    *out = c;
    return GLORA_OK;
}

const char *glora_choice_str(glora_choice_t c, char buf[16]) {
    switch (c.kind) {
    case GLORA_LORA: snprintf(buf, 16, "lora_%d", c.rank); break;
    case GLORA_VECTOR: snprintf(buf, 16, "vector"); break;
    case GLORA_SCALAR: snprintf(buf, 16, "scalar"); break;
    default: snprintf(buf, 16, "none"); break;
    }
    return buf;
}

size_t glora_layer_params(const glora_layer_cfg_t *cfg, int out, int in) {
    size_t o = (size_t)out, i = (size_t)in, n = 0;
    for (int t = GLORA_A; t <= GLORA_B; t++) {
        glora_choice_t c = cfg->t[t];
        n += c.kind == GLORA_LORA ? c.rank * (o + i) : c.kind == GLORA_VECTOR ? o
           : c.kind == GLORA_SCALAR ? 1 : 0;
    }
    glora_choice_t c = cfg->t[GLORA_C];
    n += c.kind == GLORA_LORA ? c.rank * (i + 1) : c.kind == GLORA_VECTOR ? i : 0;
    for (int t = GLORA_D; t <= GLORA_E; t++) {
        c = cfg->t[t];
        n += c.kind == GLORA_VECTOR ? o : c.kind == GLORA_SCALAR ? 1 : 0;
    }
    return n;
}

int glora_layer_max_rank(const glora_layer_cfg_t *cfg) {
    int r = 0;
    for (int t = 0; t < GLORA_NTENSORS; t++)
        if (cfg->t[t].kind == GLORA_LORA && cfg->t[t].rank > r) r = cfg->t[t].rank;
    return r;
}

void glora_adapter_sizes(int out, int in, int rank, size_t sizes[8]) {
    size_t o = (size_t)out, i = (size_t)in, r = (size_t)rank;
    sizes[0] = o * r; /* Ad */
    sizes[1] = r * i; /* Au */
    sizes[2] = o * r; /* Bd */
    sizes[3] = r * i; /* Bu */
    sizes[4] = i * r; /* Cd */
    sizes[5] = r;     /* Cu */
    sizes[6] = o;     /* D */
    sizes[7] = o;     /* E */
}

/* dst (rows x cols) = Xd[:, :r] Xu[:r, :], Xd is rows x R, Xu is R x cols. */
static void lora_product(float *dst, const float *xd, const float *xu, int rows, int cols,
                         int r, int R) {
    glora_sgemm(GLORA_NOTRANS, GLORA_NOTRANS, (size_t)rows, (size_t)cols, (size_t)r, 1.0f,
                xd, (size_t)R, xu, (size_t)cols, 0.0f, dst, (size_t)cols);
}

void glora_adapter_merge(float *w, float *b, const float *w0, const float *b0,
                         const glora_adapter_t *ad, const glora_layer_cfg_t *cfg,
                         float *a_scratch) {
    /* w = W0 + W0 (.) A + B.  With A = lora the product is formed in the
     * scratch first; vector/scalar forms broadcast without a matrix. The
     * search merges every candidate's weights, so the loops are vectorised
     * (-O2 leaves them scalar: w, w0 and the scratch might alias). */
    const int out = ad->out, in = ad->in, R = ad->rank;
    const size_t n = (size_t)out * in;
    glora_choice_t A = cfg->t[GLORA_A], B = cfg->t[GLORA_B], C = cfg->t[GLORA_C];
    glora_choice_t D = cfg->t[GLORA_D], E = cfg->t[GLORA_E];

    if (A.kind == GLORA_LORA) {
        GLORA_ASSERT(a_scratch && A.rank <= R);
        lora_product(a_scratch, ad->Ad, ad->Au, out, in, A.rank, R);
#pragma omp simd
        for (size_t k = 0; k < n; k++) w[k] = w0[k] + w0[k] * a_scratch[k];
    } else if (A.kind == GLORA_VECTOR) {
        for (int o = 0; o < out; o++) {
            float s = 1.0f + ad->Ad[(size_t)o * R];
            const float *src = w0 + (size_t)o * in;
            float *dst = w + (size_t)o * in;
#pragma omp simd
            for (int i = 0; i < in; i++) dst[i] = src[i] * s;
        }
    } else if (A.kind == GLORA_SCALAR) {
        float s = 1.0f + ad->Ad[0];
#pragma omp simd
        for (size_t k = 0; k < n; k++) w[k] = w0[k] * s;
    } else {
        memcpy(w, w0, n * sizeof *w);
    }

    if (B.kind == GLORA_LORA) {
        GLORA_ASSERT(B.rank <= R);
        glora_sgemm(GLORA_NOTRANS, GLORA_NOTRANS, (size_t)out, (size_t)in, B.rank, 1.0f,
                    ad->Bd, (size_t)R, ad->Bu, (size_t)in, 1.0f, w, (size_t)in);
    } else if (B.kind == GLORA_VECTOR) {
        for (int o = 0; o < out; o++) {
            float s = ad->Bd[(size_t)o * R];
            float *dst = w + (size_t)o * in;
#pragma omp simd
            for (int i = 0; i < in; i++) dst[i] += s;
        }
    } else if (B.kind == GLORA_SCALAR) {
        float s = ad->Bd[0];
#pragma omp simd
        for (size_t k = 0; k < n; k++) w[k] += s;
    }

    /* b = b0 + b0 (.) D + E + W0 C, with the prompt term on the frozen W0. */
    for (int o = 0; o < out; o++) {
        float bo = b0 ? b0[o] : 0.0f;
        float d = D.kind == GLORA_VECTOR ? ad->D[o] : D.kind == GLORA_SCALAR ? ad->D[0] : 0.0f;
        float e = E.kind == GLORA_VECTOR ? ad->E[o] : E.kind == GLORA_SCALAR ? ad->E[0] : 0.0f;
        b[o] = bo + bo * d + e;
    }
    if (C.kind != GLORA_NONE) {
        /* c (in) = Cd[:, :r] Cu[:r] or Cd[:, 0]; then b += W0 c. */
        float cvec_stack[1024];
        float *cvec = in <= 1024 ? cvec_stack : malloc((size_t)in * sizeof *cvec);
        GLORA_ASSERT(cvec);
        for (int i = 0; i < in; i++) {
            const float *cd = ad->Cd + (size_t)i * R;
            if (C.kind == GLORA_LORA) {
                float s = 0.0f;
                for (int r = 0; r < C.rank; r++) s += cd[r] * ad->Cu[r];
                cvec[i] = s;
            } else {
                cvec[i] = cd[0];
            }
        }
        for (int o = 0; o < out; o++) {
            const float *row = w0 + (size_t)o * in;
            float s = 0.0f;
#pragma omp simd reduction(+ : s)
            for (int i = 0; i < in; i++) s += row[i] * cvec[i];
            b[o] += s;
        }
        if (cvec != cvec_stack) free(cvec);
    }
}

void glora_adapter_backward(glora_adapter_t *grad, const float *dw, const float *db,
                            const float *w0, const float *b0, const glora_adapter_t *ad,
                            const glora_layer_cfg_t *cfg, float *scratch) {
    const int out = ad->out, in = ad->in, R = ad->rank;
    const size_t n = (size_t)out * in;
    glora_choice_t A = cfg->t[GLORA_A], B = cfg->t[GLORA_B], C = cfg->t[GLORA_C];
    glora_choice_t D = cfg->t[GLORA_D], E = cfg->t[GLORA_E];

    /* dL/dA = dW' (.) W0 (elementwise); dL/dB = dW'. */
    if (A.kind != GLORA_NONE && grad->Ad) {
        GLORA_ASSERT(dw);
        if (A.kind == GLORA_LORA) {
            GLORA_ASSERT(scratch);
            for (size_t k = 0; k < n; k++) scratch[k] = dw[k] * w0[k];
            /* dAd[:, :r] += dA Au[:r, :]^T ; dAu[:r, :] += Ad[:, :r]^T dA */
            glora_sgemm(GLORA_NOTRANS, GLORA_TRANS, (size_t)out, A.rank, (size_t)in, 1.0f,
                        scratch, (size_t)in, ad->Au, (size_t)in, 1.0f, grad->Ad, (size_t)R);
            glora_sgemm(GLORA_TRANS, GLORA_NOTRANS, A.rank, (size_t)in, (size_t)out, 1.0f,
                        ad->Ad, (size_t)R, scratch, (size_t)in, 1.0f, grad->Au, (size_t)in);
        } else {
            double total = 0.0;
            for (int o = 0; o < out; o++) {
                const float *g = dw + (size_t)o * in, *w = w0 + (size_t)o * in;
                double s = 0.0;
                for (int i = 0; i < in; i++) s += (double)g[i] * w[i];
                if (A.kind == GLORA_VECTOR) grad->Ad[(size_t)o * R] += (float)s;
                total += s;
            }
            if (A.kind == GLORA_SCALAR) grad->Ad[0] += (float)total;
        }
    }
    if (B.kind != GLORA_NONE && grad->Bd) {
        GLORA_ASSERT(dw);
        if (B.kind == GLORA_LORA) {
            glora_sgemm(GLORA_NOTRANS, GLORA_TRANS, (size_t)out, B.rank, (size_t)in, 1.0f,
                        dw, (size_t)in, ad->Bu, (size_t)in, 1.0f, grad->Bd, (size_t)R);
            glora_sgemm(GLORA_TRANS, GLORA_NOTRANS, B.rank, (size_t)in, (size_t)out, 1.0f,
                        ad->Bd, (size_t)R, dw, (size_t)in, 1.0f, grad->Bu, (size_t)in);
        } else {
            double total = 0.0;
            for (int o = 0; o < out; o++) {
                const float *g = dw + (size_t)o * in;
                double s = 0.0;
                for (int i = 0; i < in; i++) s += g[i];
                if (B.kind == GLORA_VECTOR) grad->Bd[(size_t)o * R] += (float)s;
                total += s;
            }
            if (B.kind == GLORA_SCALAR) grad->Bd[0] += (float)total;
        }
    }

    /* b' = b0 + b0 (.) D + E + W0 c:  dD = db (.) b0, dE = db, dc = W0^T db. */
    if (D.kind != GLORA_NONE && grad->D && b0) {
        if (D.kind == GLORA_VECTOR) {
            for (int o = 0; o < out; o++) grad->D[o] += db[o] * b0[o];
        } else {
            double s = 0.0;
            for (int o = 0; o < out; o++) s += (double)db[o] * b0[o];
            grad->D[0] += (float)s;
        }
    }
    if (E.kind != GLORA_NONE && grad->E) {
        if (E.kind == GLORA_VECTOR) {
            for (int o = 0; o < out; o++) grad->E[o] += db[o];
        } else {
            double s = 0.0;
            for (int o = 0; o < out; o++) s += db[o];
            grad->E[0] += (float)s;
        }
    }
    if (C.kind != GLORA_NONE && grad->Cd) {
        for (int i = 0; i < in; i++) {
            double s = 0.0;
            for (int o = 0; o < out; o++) s += (double)w0[(size_t)o * in + i] * db[o];
            float dc = (float)s;
            float *gcd = grad->Cd + (size_t)i * R;
            const float *cd = ad->Cd + (size_t)i * R;
            if (C.kind == GLORA_LORA) {
                /* c_i = sum_r Cd[i, r] Cu[r] */
                for (int r = 0; r < C.rank; r++) {
                    gcd[r] += dc * ad->Cu[r];
                    grad->Cu[r] += dc * cd[r];
                }
            } else {
                gcd[0] += dc;
            }
        }
    }
}

void glora_space_official(glora_space_t *s, int rank) {
    memset(s, 0, sizeof *s);
    glora_choice_t lora = {GLORA_LORA, (uint8_t)rank}, vec = {GLORA_VECTOR, 0},
                   sca = {GLORA_SCALAR, 0}, none = {GLORA_NONE, 0};
    for (int t = GLORA_A; t <= GLORA_B; t++) {
        s->opt[t][0] = lora; s->opt[t][1] = vec; s->opt[t][2] = sca; s->opt[t][3] = none;
        s->n[t] = 4;
    }
    s->opt[GLORA_C][0] = lora; s->opt[GLORA_C][1] = vec; s->opt[GLORA_C][2] = none;
    s->n[GLORA_C] = 3;
    for (int t = GLORA_D; t <= GLORA_E; t++) {
        s->opt[t][0] = sca; s->opt[t][1] = vec; s->opt[t][2] = none;
        s->n[t] = 3;
    }
}

size_t glora_space_size(const glora_space_t *s) {
    size_t n = 1;
    for (int t = 0; t < GLORA_NTENSORS; t++) n *= (size_t)s->n[t];
    return n;
}

void glora_space_config(const glora_space_t *s, size_t i, glora_layer_cfg_t *cfg) {
    for (int t = GLORA_NTENSORS - 1; t >= 0; t--) {
        cfg->t[t] = s->opt[t][i % (size_t)s->n[t]];
        i /= (size_t)s->n[t];
    }
}
