/* The attention forward of one (batch, head) pair in AVX-512 registers, for
 * head widths that are a multiple of 16 up to 64 (vit-tiny-28: 32, ViT-B/16:
 * 64). The plain loops of attention.c spend most of their time summing the
 * 16 lanes of short dot products; here the scores of 16 keys are one vector:
 * a block of 16 keys is transposed once (kt[d][key]), then each query's row
 * of scores is hd broadcast-FMAs into one accumulator, a dozen queries at a
 * time. Keys past the last full block (one for 17 tokens) are plain dot
 * products. The weighted sum of V keeps a dozen queries' outputs in
 * registers while it streams the rows of V once.
 *
 * Compiled for AVX-512 by the pragma below whatever the build's flags;
 * attention.c calls in here only after checking the CPU. Every query's
 * scores, softmax and output are computed by the same operations in the same
 * order whatever the group it falls in, so results do not depend on the
 * batch, the threads or the query rows asked for. */
#pragma GCC target("avx512f,avx512vl,avx512bw,avx512dq,fma")
#include <immintrin.h>
#include <math.h>

#include "nn/nn-impl.h"
#include "nn/nn-math.h"
#include "nn/attention-avx512.h"
#include "util/transpose-avx512.h"

#define QG 12     /* queries per register group */
#define MAX_NV 4  /* hd / 16 at most */

/* s[i][0..15] = scale * (q_i . kt columns) for `rows` queries. */
static inline __attribute__((always_inline)) void
scores_tile(float *s, size_t lds, const float *q, size_t ldq, const float *kt, size_t hd,
            const int rows, __m512 vscale) {
    __m512 acc[QG];
#pragma GCC unroll 12
    for (int i = 0; i < rows; i++) acc[i] = _mm512_setzero_ps();
    for (size_t d = 0; d < hd; d++) {
        const __m512 kd = _mm512_load_ps(kt + d * 16);
#pragma GCC unroll 12
        for (int i = 0; i < rows; i++)
            acc[i] = _mm512_fmadd_ps(_mm512_set1_ps(q[(size_t)i * ldq + d]), kd, acc[i]);
    }
#pragma GCC unroll 12
    for (int i = 0; i < rows; i++) _mm512_storeu_ps(s + (size_t)i * lds, _mm512_mul_ps(acc[i], vscale));
}

static void scores_group(float *s, size_t lds, const float *q, size_t ldq, const float *kt,
                         size_t hd, int rows, __m512 vscale) {
    switch (rows) {
#define CASE(R) case R: scores_tile(s, lds, q, ldq, kt, hd, R, vscale); break;
    CASE(1) CASE(2) CASE(3) CASE(4) CASE(5) CASE(6)
    CASE(7) CASE(8) CASE(9) CASE(10) CASE(11) CASE(12)
#undef CASE
    default: break;
    }
}

/* o_i = sum_j a_ij v_j for `rows` queries, NV vectors of 16 per row. */
static inline __attribute__((always_inline)) void
av_tile(float *o, size_t ldo, const float *a, size_t lda, const float *v, size_t ldv, size_t T,
        const int rows, const int NV) {
    __m512 acc[QG][MAX_NV];
#pragma GCC unroll 12
    for (int i = 0; i < rows; i++)
#pragma GCC unroll 4
        for (int c = 0; c < NV; c++) acc[i][c] = _mm512_setzero_ps();
    for (size_t j = 0; j < T; j++) {
        __m512 vj[MAX_NV];
#pragma GCC unroll 4
        for (int c = 0; c < NV; c++) vj[c] = _mm512_loadu_ps(v + j * ldv + (size_t)c * 16);
#pragma GCC unroll 12
        for (int i = 0; i < rows; i++) {
            const __m512 w = _mm512_set1_ps(a[(size_t)i * lda + j]);
#pragma GCC unroll 4
            for (int c = 0; c < NV; c++) acc[i][c] = _mm512_fmadd_ps(w, vj[c], acc[i][c]);
        }
    }
#pragma GCC unroll 12
    for (int i = 0; i < rows; i++)
#pragma GCC unroll 4
        for (int c = 0; c < NV; c++) _mm512_storeu_ps(o + (size_t)i * ldo + (size_t)c * 16, acc[i][c]);
}

/* Rows per AV group: the accumulators (rows x NV vectors) fill at most 24 of
 * the 32 registers. */
static int av_rows_max(int nv) { return nv == 1 ? 12 : nv == 2 ? 12 : nv == 3 ? 8 : 6; }

/* Calls a tile function's instance for (rows, nv), both known at compile
 * time inside it: CASE(R, NV) is the caller's "case R: call; break;", and
 * the row counts per nv are av_rows_max's. */
#define TILE_ROWS6(C, NV) C(1, NV) C(2, NV) C(3, NV) C(4, NV) C(5, NV) C(6, NV)
#define TILE_ROWS8(C, NV) TILE_ROWS6(C, NV) C(7, NV) C(8, NV)
#define TILE_ROWS12(C, NV) TILE_ROWS8(C, NV) C(9, NV) C(10, NV) C(11, NV) C(12, NV)
#define TILE_DISPATCH(C)                                                             \
    switch (nv) {                                                                    \
    case 1: switch (rows) { TILE_ROWS12(C, 1) default: break; } break;               \
    case 2: switch (rows) { TILE_ROWS12(C, 2) default: break; } break;               \
    case 3: switch (rows) { TILE_ROWS8(C, 3) default: break; } break;                \
    default: switch (rows) { TILE_ROWS6(C, 4) default: break; } break;               \
    }

static void av_group(float *o, size_t ldo, const float *a, size_t lda, const float *v, size_t ldv,
                     size_t T, int rows, int nv) {
#define CASE(R, NV) case R: av_tile(o, ldo, a, lda, v, ldv, T, R, NV); break;
    TILE_DISPATCH(CASE)
#undef CASE
}

/* Softmax of one row of n scores in place: nn_softmax_exp_row's
 * numerators, their lane sums reduced in a fixed order (GCC compiles the
 * plain loop's sum as serial adds), then each times 1 / sum. */
static void softmax_row(float *a, size_t n) {
    const size_t full = n / 16 * 16;
    const __mmask16 tm = (__mmask16)((1u << (n % 16)) - 1u);
    const __m512 vs = nn_softmax_exp_row(a, n);
    const __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(vs));
    for (size_t j = 0; j < full; j += 16)
        _mm512_storeu_ps(a + j, _mm512_mul_ps(_mm512_loadu_ps(a + j), inv));
    if (tm)
        _mm512_mask_storeu_ps(a + full, tm, _mm512_mul_ps(_mm512_maskz_loadu_ps(tm, a + full), inv));
}

int nn_attn_avx512_fits(size_t hd) { return hd % 16 == 0 && hd / 16 >= 1 && hd / 16 <= MAX_NV; }

/* The first nq queries of one pair: scores into a (row i at a + i*T),
 * softmax in place, outputs at o0 + i*Cs. base points at q of token 0;
 * rows are 3*Cs apart. */
void nn_attn_fwd_pair_avx512(float *o0, float *a, const float *base, size_t T, size_t Cs,
                             size_t hd, float scale, size_t nq) {
    const size_t C3 = 3 * Cs, nfull = T / 16, q0 = 0, q1 = nq;
    const int nv = (int)(hd / 16);
    const __m512 vscale = _mm512_set1_ps(scale);
    float kt[MAX_NV * 16 * 16] __attribute__((aligned(64)));
    const float *k0 = base + Cs, *v0 = base + 2 * Cs;
    const size_t qg = nn_attn_group_rows(nq, QG);

    /* Scores of the full blocks of 16 keys. */
    for (size_t jb = 0; jb < nfull; jb++) {
        const float *kb = k0 + jb * 16 * C3;
        for (int c = 0; c < nv; c++) {
            __m512 r[16];
            for (int j = 0; j < 16; j++) r[j] = _mm512_loadu_ps(kb + (size_t)j * C3 + (size_t)c * 16);
            glora_transpose16_avx512(r);
            for (int d = 0; d < 16; d++) _mm512_store_ps(kt + ((size_t)c * 16 + d) * 16, r[d]);
        }
        for (size_t i = q0; i < q1; i += qg) {
            size_t rows = q1 - i < qg ? q1 - i : qg;
            scores_group(a + i * T + jb * 16, T, base + i * C3, C3, kt, hd, (int)rows, vscale);
        }
    }
    /* The remaining keys, one dot product each. */
    for (size_t j = nfull * 16; j < T; j++) {
        const float *kj = k0 + j * C3;
        for (size_t i = q0; i < q1; i++) {
            const float *qi = base + i * C3;
            __m512 acc = _mm512_mul_ps(_mm512_loadu_ps(qi), _mm512_loadu_ps(kj));
            for (int c = 1; c < nv; c++)
                acc = _mm512_fmadd_ps(_mm512_loadu_ps(qi + c * 16), _mm512_loadu_ps(kj + c * 16), acc);
            a[i * T + j] = _mm512_reduce_add_ps(acc) * scale;
        }
    }
    for (size_t i = q0; i < q1; i++) softmax_row(a + i * T, T);
    /* Outputs. */
    const size_t ag = nn_attn_group_rows(nq, (size_t)av_rows_max(nv));
    for (size_t i = q0; i < q1; i += ag) {
        size_t rows = q1 - i < ag ? q1 - i : ag;
        av_group(o0 + i * Cs, Cs, a + i * T, T, v0, C3, T, (int)rows, nv);
    }
}

/* ------------------------------------------------------------ backward
 *
 * The backward of one pair in AVX-512 registers, giving the same bits as
 * attention.c's plain loops (attn_bwd_pair, whose avx512f clone is what an
 * AVX-512 CPU runs otherwise): every element of dq, dk, dv and ds goes
 * through the same operations in the same order; only the loops around them
 * are blocked. The build is ISO C (-std=c11, so -ffp-contract=off): the
 * plain loops multiply and add separately, and so does this code (no FMA).
 * What the plain loops compile to, and so what this code repeats:
 *
 *  - dp_ij = dot(g_i, v_j): an "omp simd" reduction over hd in 16 lanes:
 *    lane l sums g[16c+l] v[16c+l] over c in order (from 0), then the 16
 *    lanes are summed one after another from 0 (no tree).
 *  - s_i = sum_j a_ij dp_ij: the same over T: lane l sums the j = l mod 16
 *    of the whole vectors, the last T mod 16 terms go one by one into
 *    lane 0, then the lanes are summed in order from 0.
 *  - ds_ij = a_ij (dp_ij - s_i) scale, as written.
 *  - dv_j += a_ij g_i and dk_j += ds_ij q_i for i = 0, 1, ... in turn;
 *    dq_i += ds_ij k_j for j = 0, 1, ... in turn (each a product, rounded,
 *    then a sum, rounded).
 *
 * Blocking: dp for a block of 16 keys is one vector per query (the keys'
 * V rows transposed once, as the forward's scores); the three accumulations
 * keep a block of output rows in registers while they stream the rows they
 * add (as the forward's weighted sum of V).
 *
 * With `fused` (the backward of bf16 training, glora_attention_backward_fma)
 * every product-and-sum above is one fused multiply-add instead: dp_ij is
 * one chain from +0 over d = l + 16 c (l = 0..15 outer, c inner), and dv,
 * dk, dq add their terms in the same order as above, each term one FMA;
 * the softmax step is unchanged. attention.c's attn_bwd_pair_fused is the
 * same definition in plain C (fmaf): the same bits. */

/* dp for `rows` queries against one transposed block of 16 values
 * (vt[d][key]): lane j of the result is dot(g_i, v_j) in the plain loop's
 * order (lane partials over c, then lanes 0..15 summed from 0). */
static inline __attribute__((always_inline)) void
dp_tile(float *dp, size_t ldp, __mmask16 m, const float *g, size_t ldg, const float *vt,
        const int rows, const int nv, const int fused) {
    __m512 f[QG];
#pragma GCC unroll 12
    for (int i = 0; i < rows; i++) f[i] = _mm512_setzero_ps();
    for (int l = 0; l < 16; l++) {
        __m512 vd[MAX_NV];
#pragma GCC unroll 4
        for (int c = 0; c < nv; c++) vd[c] = _mm512_load_ps(vt + (size_t)(16 * c + l) * 16);
#pragma GCC unroll 12
        for (int i = 0; i < rows; i++) {
            const float *gi = g + (size_t)i * ldg + l;
            if (fused) {
                /* One chain of fused multiply-adds per key from +0, over
                 * d = l + 16 c: l outer, c inner (attn_bwd_pair_fused). */
#pragma GCC unroll 4
                for (int c = 0; c < nv; c++)
                    f[i] = _mm512_fmadd_ps(_mm512_set1_ps(gi[16 * c]), vd[c], f[i]);
                continue;
            }
            /* Lane l's partial: its first product alone (the plain loop
             * starts from 0: only the sign of an all-zero partial differs,
             * and the lane sum below, from +0, cannot see it). */
            __m512 p = _mm512_mul_ps(_mm512_set1_ps(gi[0]), vd[0]);
#pragma GCC unroll 4
            for (int c = 1; c < nv; c++)
                p = _mm512_add_ps(p, _mm512_mul_ps(_mm512_set1_ps(gi[16 * c]), vd[c]));
            f[i] = _mm512_add_ps(f[i], p);
        }
    }
#pragma GCC unroll 12
    for (int i = 0; i < rows; i++) _mm512_mask_storeu_ps(dp + (size_t)i * ldp, m, f[i]);
}

/* dp_tile with its shape and the fused choice as constants (one inlined
 * body per case). */
static void dp_group(float *dp, size_t ldp, __mmask16 m, const float *g, size_t ldg,
                     const float *vt, int rows, int nv, int fused) {
#define CASE(R, NV, F) case R: dp_tile(dp, ldp, m, g, ldg, vt, R, NV, F); break;
#define ROWS(NV, F) switch (rows) { CASE(1, NV, F) CASE(2, NV, F) CASE(3, NV, F) CASE(4, NV, F) \
    CASE(5, NV, F) CASE(6, NV, F) CASE(7, NV, F) CASE(8, NV, F) CASE(9, NV, F) CASE(10, NV, F) \
    CASE(11, NV, F) CASE(12, NV, F) default: break; }
#define NVS(F) switch (nv) { case 1: ROWS(1, F) break; case 2: ROWS(2, F) break; \
    case 3: ROWS(3, F) break; default: ROWS(4, F) break; }
    if (fused)
        NVS(1)
    else
        NVS(0)
#undef NVS
#undef ROWS
#undef CASE
}

/* y_r += sum over t = 0..n-1, in order, of w[r*ldr + t*ldt] x_t, for
 * `rows` rows y_r (at y + r*ldy, NV vectors of 16), each term a product
 * then a sum; x_t at x + t*ldx. */
static inline __attribute__((always_inline)) void
acc_tile(float *y, size_t ldy, const float *w, size_t ldr, size_t ldt, const float *x, size_t ldx,
         size_t n, const int rows, const int NV, const int fused) {
    __m512 acc[QG][MAX_NV];
#pragma GCC unroll 12
    for (int r = 0; r < rows; r++)
#pragma GCC unroll 4
        for (int c = 0; c < NV; c++) acc[r][c] = _mm512_loadu_ps(y + (size_t)r * ldy + (size_t)c * 16);
    for (size_t t = 0; t < n; t++) {
        __m512 xt[MAX_NV];
#pragma GCC unroll 4
        for (int c = 0; c < NV; c++) xt[c] = _mm512_loadu_ps(x + t * ldx + (size_t)c * 16);
        const float *wt = w + t * ldt;
#pragma GCC unroll 12
        for (int r = 0; r < rows; r++) {
            const __m512 s = _mm512_set1_ps(wt[(size_t)r * ldr]);
#pragma GCC unroll 4
            for (int c = 0; c < NV; c++)
                acc[r][c] = fused ? _mm512_fmadd_ps(s, xt[c], acc[r][c])
                                  : _mm512_add_ps(acc[r][c], _mm512_mul_ps(s, xt[c]));
        }
    }
#pragma GCC unroll 12
    for (int r = 0; r < rows; r++)
#pragma GCC unroll 4
        for (int c = 0; c < NV; c++) _mm512_storeu_ps(y + (size_t)r * ldy + (size_t)c * 16, acc[r][c]);
}

static void acc_group(float *y, size_t ldy, const float *w, size_t ldr, size_t ldt, const float *x,
                      size_t ldx, size_t n, int rows, int nv) {
#define CASE(R, NV) case R: acc_tile(y, ldy, w, ldr, ldt, x, ldx, n, R, NV, 0); break;
    TILE_DISPATCH(CASE)
#undef CASE
}

static void acc_group_fused(float *y, size_t ldy, const float *w, size_t ldr, size_t ldt,
                            const float *x, size_t ldx, size_t n, int rows, int nv) {
#define CASE(R, NV) case R: acc_tile(y, ldy, w, ldr, ldt, x, ldx, n, R, NV, 1); break;
    TILE_DISPATCH(CASE)
#undef CASE
}

/* y rows 0..m-1 (ldy apart) += the weighted rows of x, in groups that fit
 * the registers; row r's weight for term t is w[r*ldr + t*ldt]. */
static void acc_rows(float *y, size_t ldy, size_t m, const float *w, size_t ldr, size_t ldt,
                     const float *x, size_t ldx, size_t n, int nv, int fused) {
    const size_t rg = nn_attn_group_rows(m, (size_t)av_rows_max(nv));
    for (size_t r = 0; r < m; r += rg) {
        const size_t rows = m - r < rg ? m - r : rg;
        if (fused)
            acc_group_fused(y + r * ldy, ldy, w + r * ldr, ldr, ldt, x, ldx, n, (int)rows, nv);
        else
            acc_group(y + r * ldy, ldy, w + r * ldr, ldr, ldt, x, ldx, n, (int)rows, nv);
    }
}

/* ds = a (dp - s) scale in place over one row of T, s = sum_j a_j dp_j in
 * the plain loop's order (see above). */
static void softmax_bwd_row(float *d, const float *a, size_t T, float scale) {
    float lane[16] __attribute__((aligned(64)));
    const size_t full = T / 16 * 16;
    const __mmask16 tm = (__mmask16)((1u << (T % 16)) - 1u);
    __m512 acc = _mm512_setzero_ps();
    for (size_t j = 0; j < full; j += 16)
        acc = _mm512_add_ps(acc, _mm512_mul_ps(_mm512_loadu_ps(a + j), _mm512_loadu_ps(d + j)));
    _mm512_store_ps(lane, acc);
    for (size_t j = full; j < T; j++) lane[0] = lane[0] + a[j] * d[j];
    float s = 0.0f;
    for (int l = 0; l < 16; l++) s = s + lane[l];
    const __m512 vs = _mm512_set1_ps(s), vscale = _mm512_set1_ps(scale);
    for (size_t j = 0; j < full; j += 16) {
        const __m512 t = _mm512_mul_ps(_mm512_loadu_ps(a + j), _mm512_sub_ps(_mm512_loadu_ps(d + j), vs));
        _mm512_storeu_ps(d + j, _mm512_mul_ps(t, vscale));
    }
    if (tm) {
        const __m512 t = _mm512_mul_ps(_mm512_maskz_loadu_ps(tm, a + full),
                                       _mm512_sub_ps(_mm512_maskz_loadu_ps(tm, d + full), vs));
        _mm512_mask_storeu_ps(d + full, tm, _mm512_mul_ps(t, vscale));
    }
}

/* Backward of one pair: dbase is dq of token 0 (dq, dk, dv of a token are
 * Cs apart, tokens 3*Cs apart; accumulated into), da the pair's (T, T)
 * scratch (left holding ds), g0 dout of token 0 (rows Cs apart), base q of
 * token 0, a the pair's probabilities. */
void nn_attn_bwd_pair_avx512(float *dbase, float *da, const float *g0, const float *base,
                             const float *a, size_t T, size_t Cs, size_t hd, float scale,
                             int fused) {
    if (T == 0) return; /* nothing to do (and no groups of rows to size) */
    const size_t C3 = 3 * Cs, nblk = (T + 15) / 16;
    const int nv = (int)(hd / 16);
    float vt[MAX_NV * 16 * 16] __attribute__((aligned(64)));
    const float *v0 = base + 2 * Cs;
    const size_t qg = nn_attn_group_rows(T, QG);

    /* dp = dO V^T, 16 keys at a time; the last block's missing keys are
     * zero rows whose lanes are not stored. */
    for (size_t jb = 0; jb < nblk; jb++) {
        const size_t j0 = jb * 16, nk = T - j0 < 16 ? T - j0 : 16;
        const __mmask16 m = nk == 16 ? (__mmask16)0xffff : (__mmask16)((1u << nk) - 1u);
        for (int c = 0; c < nv; c++) {
            __m512 r[16];
            for (size_t j = 0; j < 16; j++)
                r[j] = j < nk ? _mm512_loadu_ps(v0 + (j0 + j) * C3 + (size_t)c * 16) : _mm512_setzero_ps();
            glora_transpose16_avx512(r);
            for (int d = 0; d < 16; d++) _mm512_store_ps(vt + ((size_t)c * 16 + d) * 16, r[d]);
        }
        for (size_t i = 0; i < T; i += qg) {
            const size_t rows = T - i < qg ? T - i : qg;
            dp_group(da + i * T + j0, T, m, g0 + i * Cs, Cs, vt, (int)rows, nv, fused);
        }
    }
    /* Through the softmax. */
    for (size_t i = 0; i < T; i++) softmax_bwd_row(da + i * T, a + i * T, T, scale);
    /* dv_j += sum_i a_ij g_i; dk_j += sum_i ds_ij q_i (i in order). */
    acc_rows(dbase + 2 * Cs, C3, T, a, 1, T, g0, Cs, T, nv, fused);
    acc_rows(dbase + Cs, C3, T, da, 1, T, base, C3, T, nv, fused);
    /* dq_i += sum_j ds_ij k_j (j in order). */
    acc_rows(dbase, C3, T, da, T, 1, base + Cs, C3, T, nv, fused);
}
