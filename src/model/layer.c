/* The GLoRA layer: choices, parameter counting, merging and the gradients of
 * the stored tensors (see glora/layer.h for the formulas). */
#include "glora/layer.h"
#include "glora/common.h"
#include "glora/gemm.h"
#include "glora/nn.h"
#include "nn/nn-impl.h"

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

void glora_adapter_bias(float *b, const float *w0, const float *b0, const glora_adapter_t *ad,
                        const glora_layer_cfg_t *cfg) {
    const int out = ad->out, in = ad->in, R = ad->rank;
    glora_choice_t C = cfg->t[GLORA_C], D = cfg->t[GLORA_D], E = cfg->t[GLORA_E];
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

void glora_adapter_merge(float *w, float *b, const float *w0, const float *b0,
                         const glora_adapter_t *ad, const glora_layer_cfg_t *cfg,
                         float *a_scratch) {
    /* w = W0 + W0 (.) A + B.  With A = lora the product is formed in the
     * scratch first; vector/scalar forms broadcast without a matrix. The
     * search merges every candidate's weights, so the loops are vectorised
     * (-O2 leaves them scalar: w, w0 and the scratch might alias). */
    const int out = ad->out, in = ad->in, R = ad->rank;
    const size_t n = (size_t)out * in;
    glora_choice_t A = cfg->t[GLORA_A], B = cfg->t[GLORA_B];
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

    glora_adapter_bias(b, w0, b0, ad, cfg);
}

/* dc (in) = W0^T db, each dc[i] summed in double over o = 0, 1, ... from
 * 0. W0 is read row by row: walking its columns (stride in) missed the
 * cache on every element at ViT-B/16. The order per element is that of the
 * column walk, and a product of two floats is exact in double, so vector
 * width and contraction change nothing: the same bits on every clone. */
NN_CLONES static void w0t_db(double *dc, const float *w0, const float *db, int out, int in) {
    for (int i = 0; i < in; i++) dc[i] = 0.0;
    for (int o = 0; o < out; o++) {
        const float *row = w0 + (size_t)o * in;
        const double d = db[o];
#pragma omp simd
        for (int i = 0; i < in; i++) dc[i] += (double)row[i] * d;
    }
}

/* The gradients of C, D, E from db = dL/db' (out). */
static void bias_backward(glora_adapter_t *grad, const float *db, const float *w0, const float *b0,
                          const glora_adapter_t *ad, const glora_layer_cfg_t *cfg) {
    const int out = ad->out, in = ad->in, R = ad->rank;
    glora_choice_t C = cfg->t[GLORA_C], D = cfg->t[GLORA_D], E = cfg->t[GLORA_E];
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
        double dc_stack[1024];
        double *dcs = in <= 1024 ? dc_stack : malloc((size_t)in * sizeof *dcs);
        GLORA_ASSERT(dcs);
        w0t_db(dcs, w0, db, out, in);
        for (int i = 0; i < in; i++) {
            float dc = (float)dcs[i];
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
        if (dcs != dc_stack) free(dcs);
    }
}

void glora_adapter_backward(glora_adapter_t *grad, const float *dw, const float *db,
                            const float *w0, const float *b0, const glora_adapter_t *ad,
                            const glora_layer_cfg_t *cfg, float *scratch) {
    const int out = ad->out, in = ad->in, R = ad->rank;
    const size_t n = (size_t)out * in;
    glora_choice_t A = cfg->t[GLORA_A], B = cfg->t[GLORA_B];

    /* dL/dA = dW' (.) W0 (elementwise); dL/dB = dW'. */
    if (A.kind != GLORA_NONE && grad->Ad) {
        GLORA_ASSERT(dw);
        if (A.kind == GLORA_LORA) {
            GLORA_ASSERT(scratch);
            /* Elementwise (vectorised: -O2 left it scalar, the arrays
             * might alias), 1% of a ViT-B/16 training step. */
#pragma omp simd
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

    bias_backward(grad, db, w0, b0, ad, cfg);
}

/* ---- the row form (see glora/layer.h for the formulas) ------------------ */

#define COL_BLOCK 256

size_t glora_adapter_rows_scratch(size_t N, int out, int R) {
    /* Gs (N, out), P and Q (N, R) each, s, G 1 and t (N) each, g, ga and
     * gb (out) each */
    return N * (size_t)out + 2 * N * (size_t)R + 3 * N + 3 * (size_t)out;
}

/* The column reductions of G (N, out) that the gradients need, in one pass
 * over G (at ViT-B/16 it is megabytes per layer, read from memory):
 * ga[o] += sum_n G[n, o] Y0[n, o], gb[o] += sum_n G[n, o] s[n], gc[o] +=
 * sum_n G[n, o], each skipped when its output is NULL. Columns in blocks,
 * rows in order inside each: every column's sum has one order for any
 * thread count, the same as three separate passes (a product rounded, then
 * a sum; G times 1 is G), and the same on every clone. */
NN_CLONES static void col_dots(float *ga, const float *y0, float *gb, const float *s, float *gc,
                               const float *g, size_t N, size_t out) {
    const size_t nblk = (out + COL_BLOCK - 1) / COL_BLOCK;
    const int avx512 = nn_use_avx512();
#pragma omp parallel for schedule(static) if (N * out >= (1u << 18) && nblk > 1)
    for (size_t blk = 0; blk < nblk; blk++) {
        const size_t j0 = blk * COL_BLOCK, nj = out - j0 < COL_BLOCK ? out - j0 : COL_BLOCK;
        if (avx512) {
            /* The sums in registers: the same bits (rows_avx512.c). */
            nn_col_dots_avx512(ga, y0, gb, s, gc, g, N, out, j0, nj);
            continue;
        }
        float a[COL_BLOCK] = {0}, b[COL_BLOCK] = {0}, c[COL_BLOCK] = {0};
        for (size_t n = 0; n < N; n++) {
            const float *gn = g + n * out + j0;
            if (ga) {
                const float *yn = y0 + n * out + j0;
#pragma omp simd
                for (size_t j = 0; j < nj; j++) a[j] += gn[j] * yn[j];
            }
            if (gb) {
                const float sn = s[n];
#pragma omp simd
                for (size_t j = 0; j < nj; j++) b[j] += gn[j] * sn;
            }
            if (gc) {
#pragma omp simd
                for (size_t j = 0; j < nj; j++) c[j] += gn[j];
            }
        }
        for (size_t j = 0; j < nj; j++) {
            if (ga) ga[j0 + j] += a[j];
            if (gb) gb[j0 + j] += b[j];
            if (gc) gc[j0 + j] += c[j];
        }
    }
}

void glora_adapter_backward_merged(glora_adapter_t *grad, float *dw, float *db, const float *dy,
                                   const float *x, size_t N, const float *w0, const float *b0,
                                   const glora_adapter_t *ad, const glora_layer_cfg_t *cfg,
                                   float *scratch, glora_precision_t prec) {
    const size_t out = (size_t)ad->out, in = (size_t)ad->in;
    GLORA_ASSERT(grad && !glora_adapter_rowform(cfg));
    /* dW' (out, in) = G^T X: k = N rows, the one weight-sized product. */
    glora_gemm_bias(prec, GLORA_TRANS, GLORA_NOTRANS, out, in, N, 1.0f, dy, out, x, in, 0.0f, NULL,
                    dw, in);
    /* db = the column sums of G, rows in order from 0 per column, added to
     * a zeroed db: the sums glora_linear_backward's bias gradient forms
     * (the same bits), with col_dots's sums in registers. */
    memset(db, 0, out * sizeof *db);
    col_dots(NULL, NULL, NULL, NULL, db, dy, N, out);
    glora_adapter_backward(grad, dw, db, w0, b0, ad, cfg, scratch);
}

/* s[n] = sum_j x[n, j] (cols j), or with beta, sum_j x[n, j] beta[j]. */
static void row_sums(float *s, const float *x, const float *beta, size_t N, size_t cols) {
#pragma omp parallel for schedule(static) if (N * cols >= (1u << 18))
    for (size_t n = 0; n < N; n++) {
        const float *xn = x + n * cols;
        float acc = 0.0f;
        if (beta) {
#pragma omp simd reduction(+ : acc)
            for (size_t j = 0; j < cols; j++) acc += xn[j] * beta[j];
        } else {
#pragma omp simd reduction(+ : acc)
            for (size_t j = 0; j < cols; j++) acc += xn[j];
        }
        s[n] = acc;
    }
}

/* Adds X Bm^T (B's term of the output) to y; P (N, R) / s (N) in scratch. */
static void b_term_forward(float *y, const float *x, size_t N, const glora_adapter_t *ad,
                           glora_choice_t B, float *scratch) {
    const size_t out = (size_t)ad->out, in = (size_t)ad->in, R = (size_t)ad->rank;
    if (B.kind == GLORA_LORA) {
        /* P (N, r) = X Bu_r^T; y += P Bd_r^T */
        float *P = scratch;
        glora_sgemm(GLORA_NOTRANS, GLORA_TRANS, N, B.rank, in, 1.0f, x, in, ad->Bu, in, 0.0f, P,
                    B.rank);
        glora_sgemm(GLORA_NOTRANS, GLORA_TRANS, N, out, B.rank, 1.0f, P, B.rank, ad->Bd, R, 1.0f, y,
                    out);
    } else if (B.kind == GLORA_VECTOR || B.kind == GLORA_SCALAR) {
        /* y[n, o] += s_n beta_o */
        float *s = scratch;
        row_sums(s, x, NULL, N, in);
        /* beta_o = Bd[o, 0], copied out of its stride R so the rows'
         * loop vectorises (the same products and sums). */
        float beta_stack[1024];
        float *beta = out <= 1024 ? beta_stack : malloc(out * sizeof *beta);
        GLORA_ASSERT(beta);
        for (size_t o = 0; o < out; o++) beta[o] = ad->Bd[o * R];
#pragma omp parallel for schedule(static) if (N * out >= (1u << 18))
        for (size_t n = 0; n < N; n++) {
            float *yn = y + n * out;
            const float sn = s[n];
            if (B.kind == GLORA_SCALAR) {
                const float v = sn * ad->Bd[0];
#pragma omp simd
                for (size_t o = 0; o < out; o++) yn[o] += v;
            } else {
#pragma omp simd
                for (size_t o = 0; o < out; o++) yn[o] += sn * beta[o];
            }
        }
        if (beta != beta_stack) free(beta);
    }
}

void glora_adapter_finish_rows(float *y, const float *y0, const float *x, size_t N,
                               const float *bp, const glora_adapter_t *ad,
                               const glora_layer_cfg_t *cfg, float *scratch) {
    /* y[n, o] = y0[n, o] (1 + a_o) + b'_o, then B's term */
    const size_t out = (size_t)ad->out, R = (size_t)ad->rank;
    glora_choice_t A = cfg->t[GLORA_A];
    GLORA_ASSERT(glora_adapter_needs_y0(cfg));
    float one_a_stack[1024];
    float *one_a = out <= 1024 ? one_a_stack : malloc(out * sizeof *one_a);
    GLORA_ASSERT(one_a);
    for (size_t o = 0; o < out; o++) one_a[o] = 1.0f + (A.kind == GLORA_SCALAR ? ad->Ad[0] : ad->Ad[o * R]);
#pragma omp parallel for schedule(static) if (N * out >= (1u << 18))
    for (size_t n = 0; n < N; n++) {
        const float *y0n = y0 + n * out;
        float *yn = y + n * out;
#pragma omp simd
        for (size_t o = 0; o < out; o++) yn[o] = y0n[o] * one_a[o] + bp[o];
    }
    if (one_a != one_a_stack) free(one_a);
    b_term_forward(y, x, N, ad, cfg->t[GLORA_B], scratch);
}

void glora_adapter_forward_rows(float *y, float *y0, const float *x, size_t N, const float *w0,
                                const float *bp, const glora_adapter_t *ad,
                                const glora_layer_cfg_t *cfg, float *scratch,
                                glora_precision_t prec) {
    const size_t out = (size_t)ad->out, in = (size_t)ad->in;
    GLORA_ASSERT(glora_adapter_rowform(cfg));
    if (glora_adapter_needs_y0(cfg)) {
        /* Y0 = X W0^T kept for backward, Y built from it */
        glora_gemm_bias(prec, GLORA_NOTRANS, GLORA_TRANS, N, out, in, 1.0f, x, in, w0, in, 0.0f, NULL,
                        y0, out);
        glora_adapter_finish_rows(y, y0, x, N, bp, ad, cfg, scratch);
    } else {
        /* A none: Y = X W0^T + b' + B's term */
        glora_gemm_bias(prec, GLORA_NOTRANS, GLORA_TRANS, N, out, in, 1.0f, x, in, w0, in, 0.0f, bp, y,
                        out);
        b_term_forward(y, x, N, ad, cfg->t[GLORA_B], scratch);
    }
}

/* The row form's scratch, laid out by glora_adapter_rows_scratch. */
typedef struct {
    float *Gs, *P, *Q, *s, *g1, *t, *g, *ga, *gb;
    int have_q, have_g1; /* Q = G Bd_r, g1 = G 1 hold for this call */
} rows_ws_t;

/* A vector / scalar, from ga[o] = sum_n G[n, o] Y0[n, o]: dAd[o] += ga[o]
 * (summed over o for scalar). */
static void rows_grad_a(glora_adapter_t *grad, const float *ga, size_t out, size_t R,
                        glora_choice_t A) {
    if (A.kind == GLORA_VECTOR) {
        for (size_t o = 0; o < out; o++) grad->Ad[o * R] += ga[o];
    } else {
        double tot = 0.0;
        for (size_t o = 0; o < out; o++) tot += ga[o];
        grad->Ad[0] += (float)tot;
    }
}

/* B: thin products (lora) or row sums of X (vector, scalar); with a LoRA
 * B, Q = G Bd_r is formed too when dX needs it (need_q). grad may be NULL.
 * A vector B's column sums gb[o] = sum_n G[n, o] s_n are formed by the
 * caller (with s = X 1 in w->s). */
static void rows_grad_b(glora_adapter_t *grad, const float *dy, const float *x, size_t N,
                        const glora_adapter_t *ad, glora_choice_t B, int need_q, rows_ws_t *w) {
    const size_t out = (size_t)ad->out, in = (size_t)ad->in, R = (size_t)ad->rank;
    if (B.kind == GLORA_LORA) {
        if (grad) {
            /* P (N, r) = X Bu_r^T; dBd_r += G^T P */
            const size_t r = (size_t)B.rank;
            glora_sgemm(GLORA_NOTRANS, GLORA_TRANS, N, r, in, 1.0f, x, in, ad->Bu, in, 0.0f, w->P, r);
            if (N >= r) {
                /* As dBd_r^T (r, out) += P^T G, in Gs (free until rows_dx):
                 * A = P^T is r rows to pack, G is read in place as B,
                 * where G^T P packs all of G (megabytes at ViT-B) as A.
                 * Each element is the same chain of multiply-adds over n
                 * in the same k blocks (a product does not depend on the
                 * order of its factors) onto the same start (beta 1):
                 * the same bits. */
                float *T = w->Gs;
                for (size_t o = 0; o < out; o++)
                    for (size_t q = 0; q < r; q++) T[q * out + o] = grad->Bd[o * R + q];
                glora_sgemm(GLORA_TRANS, GLORA_NOTRANS, r, out, N, 1.0f, w->P, r, dy, out, 1.0f, T,
                            out);
                for (size_t o = 0; o < out; o++)
                    for (size_t q = 0; q < r; q++) grad->Bd[o * R + q] = T[q * out + o];
            } else {
                glora_sgemm(GLORA_TRANS, GLORA_NOTRANS, out, r, N, 1.0f, dy, out, w->P, r, 1.0f,
                            grad->Bd, R);
            }
        }
        if (grad || need_q) {
            /* Q (N, r) = G Bd_r; dBu_r += Q^T X */
            glora_sgemm(GLORA_NOTRANS, GLORA_NOTRANS, N, B.rank, out, 1.0f, dy, out, ad->Bd, R, 0.0f,
                        w->Q, B.rank);
            w->have_q = 1;
            if (grad)
                glora_sgemm(GLORA_TRANS, GLORA_NOTRANS, B.rank, in, N, 1.0f, w->Q, B.rank, x, in,
                            1.0f, grad->Bu, in);
        }
    } else if (B.kind == GLORA_VECTOR && grad) {
        /* dBd[o, 0] += sum_n G[n, o] s_n */
        for (size_t o = 0; o < out; o++) grad->Bd[o * R] += w->gb[o];
    } else if (B.kind == GLORA_SCALAR && grad) {
        /* dBd[0, 0] += sum_n s_n (G 1)_n */
        row_sums(w->s, x, NULL, N, in);
        row_sums(w->g1, dy, NULL, N, out);
        w->have_g1 = 1;
        double tot = 0.0;
        for (size_t n = 0; n < N; n++) tot += (double)w->s[n] * w->g1[n];
        grad->Bd[0] += (float)tot;
    }
}

/* dX = (G (.) (1 + a)^T) W0 + G Bm; the product with the frozen W0 in
 * precision prec, B's thin terms in fp32. */
NN_CLONES static void rows_dx(float *dx, const float *dy, size_t N, const float *w0,
                              const glora_adapter_t *ad, const glora_layer_cfg_t *cfg,
                              glora_precision_t prec, rows_ws_t *w) {
    const size_t out = (size_t)ad->out, in = (size_t)ad->in, R = (size_t)ad->rank;
    glora_choice_t A = cfg->t[GLORA_A], B = cfg->t[GLORA_B];
    if (A.kind == GLORA_VECTOR) {
        /* 1 + a_o copied out of Ad's stride R once, so that the rows'
         * loop vectorises (the same sums and products). */
        float one_a_stack[1024];
        float *one_a = out <= 1024 ? one_a_stack : malloc(out * sizeof *one_a);
        GLORA_ASSERT(one_a);
        for (size_t o = 0; o < out; o++) one_a[o] = 1.0f + ad->Ad[o * R];
#pragma omp parallel for schedule(static) if (N * out >= (1u << 18))
        for (size_t n = 0; n < N; n++) {
            const float *gn = dy + n * out;
            float *gs = w->Gs + n * out;
#pragma omp simd
            for (size_t o = 0; o < out; o++) gs[o] = gn[o] * one_a[o];
        }
        if (one_a != one_a_stack) free(one_a);
        glora_gemm_bias(prec, GLORA_NOTRANS, GLORA_NOTRANS, N, in, out, 1.0f, w->Gs, out, w0, in,
                        0.0f, NULL, dx, in);
    } else {
        const float alpha = A.kind == GLORA_SCALAR ? 1.0f + ad->Ad[0] : 1.0f;
        glora_gemm_bias(prec, GLORA_NOTRANS, GLORA_NOTRANS, N, in, out, alpha, dy, out, w0, in,
                        0.0f, NULL, dx, in);
    }
    if (B.kind == GLORA_LORA) {
        GLORA_ASSERT(w->have_q);
        glora_sgemm(GLORA_NOTRANS, GLORA_NOTRANS, N, in, B.rank, 1.0f, w->Q, B.rank, ad->Bu, in, 1.0f,
                    dx, in);
    } else if (B.kind == GLORA_VECTOR || B.kind == GLORA_SCALAR) {
        if (B.kind == GLORA_VECTOR) {
            /* t_n = sum_o G[n, o] beta_o, beta_o = Bd[o, 0] (strided: copied) */
            for (size_t o = 0; o < out; o++) w->g[o] = ad->Bd[o * R];
            row_sums(w->t, dy, w->g, N, out);
        } else {
            if (!w->have_g1) row_sums(w->g1, dy, NULL, N, out);
            for (size_t n = 0; n < N; n++) w->t[n] = ad->Bd[0] * w->g1[n];
        }
#pragma omp parallel for schedule(static) if (N * in >= (1u << 18))
        for (size_t n = 0; n < N; n++) {
            float *dxn = dx + n * in;
            const float tn = w->t[n];
#pragma omp simd
            for (size_t i = 0; i < in; i++) dxn[i] += tn;
        }
    }
}

void glora_adapter_backward_rows(glora_adapter_t *grad, float *dx, const float *dy,
                                 const float *x, const float *y0, size_t N, const float *w0,
                                 const float *b0, const glora_adapter_t *ad,
                                 const glora_layer_cfg_t *cfg, float *scratch,
                                 glora_precision_t prec) {
    const size_t out = (size_t)ad->out, R = (size_t)ad->rank;
    GLORA_ASSERT(glora_adapter_rowform(cfg));
    rows_ws_t w = {.Gs = scratch};
    w.P = w.Gs + N * out;
    w.Q = w.P + N * R;
    w.s = w.Q + N * R;
    w.g1 = w.s + N;
    w.t = w.g1 + N;
    w.g = w.t + N;
    w.ga = w.g + out;
    w.gb = w.ga + out;
    if (grad && !(grad->Ad || grad->Bd || grad->Cd || grad->D || grad->E)) grad = NULL;

    /* The column sums of G the gradients need, in one pass: A's (with Y0),
     * a vector B's (with s = X 1), and g = dL/db' for C, D, E. */
    const glora_choice_t B = cfg->t[GLORA_B];
    const int need_a = grad && grad->Ad && glora_adapter_needs_y0(cfg);
    const int need_b = grad && grad->Bd && B.kind == GLORA_VECTOR;
    const int need_g = grad && (grad->Cd || grad->D || grad->E);
    if (need_b) row_sums(w.s, x, NULL, N, (size_t)ad->in);
    if (need_a || need_b || need_g) {
        GLORA_ASSERT(!need_a || y0);
        if (need_a) memset(w.ga, 0, out * sizeof *w.ga);
        if (need_b) memset(w.gb, 0, out * sizeof *w.gb);
        if (need_g) memset(w.g, 0, out * sizeof *w.g);
        col_dots(need_a ? w.ga : NULL, y0, need_b ? w.gb : NULL, w.s, need_g ? w.g : NULL, dy, N,
                 out);
    }
    if (need_a) rows_grad_a(grad, w.ga, out, R, cfg->t[GLORA_A]);
    rows_grad_b(grad && grad->Bd ? grad : NULL, dy, x, N, ad, B, dx != NULL, &w);
    /* C, D, E from g = dL/db' = column sums of G. */
    if (need_g) bias_backward(grad, w.g, w0, b0, ad, cfg);
    if (dx) rows_dx(dx, dy, N, w0, ad, cfg, prec, &w);
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
