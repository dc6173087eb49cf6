/* Unit tests of src/nn. Every layer's forward is compared with a naive
 * double-precision version written here; every gradient with central finite
 * differences of that double version (of a random projection R . out, so one
 * backward call with dout = R gives the whole gradient). Then the conventions
 * of glora/nn.h: backward accumulates, NULL gradients are skipped, results are
 * bit-identical for 1, 2 and 3 threads and inside an enclosing parallel
 * region. A few values computed by PyTorch pin the semantics (erf GELU, label
 * smoothing, timm's qkv layout) independently of the reference code here. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "glora/common.h"
#include "glora/gemm.h"
#include "glora/nn.h"
#include "util/parallel.h"
#include "util/rng.h"
#include "nn/nn-impl.h"
#include "nn/nn-math.h"

/* ---------------------------------------------------------------- helpers */

static glora_rng_t rng;

static float *frand(size_t n, float lo, float hi) {
    float *a = malloc((n ? n : 1) * sizeof *a);
    assert_non_null(a);
    for (size_t i = 0; i < n; i++) a[i] = glora_rng_uniform_f(&rng, lo, hi);
    return a;
}

static float *fzeros(size_t n) {
    float *a = calloc(n ? n : 1, sizeof *a);
    assert_non_null(a);
    return a;
}

static double *dzeros(size_t n) {
    double *a = calloc(n ? n : 1, sizeof *a);
    assert_non_null(a);
    return a;
}

static double *to_double(const float *src, size_t n) {
    double *a = dzeros(n);
    for (size_t i = 0; i < n; i++) a[i] = src[i];
    return a;
}

/* |got - want| <= atol + rtol |want| element by element; names the first
 * offender. */
static void check_close(const char *what, const float *got, const double *want, size_t n,
                        double atol, double rtol) {
    for (size_t i = 0; i < n; i++) {
        const double err = fabs((double)got[i] - want[i]);
        if (!(err <= atol + rtol * fabs(want[i]))) {
            fail_msg("%s[%zu]: got %.9g, want %.9g (err %.3g)", what, i, (double)got[i],
                     want[i], err);
        }
    }
}

static double max_abs(const double *a, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++)
        if (fabs(a[i]) > m) m = fabs(a[i]);
    return m;
}

/* A layer's double forward: in[] are its differentiable inputs. */
typedef void (*dfwd_fn)(const void *ctx, double *const *in, double *out);

static double projected(dfwd_fn f, const void *ctx, double *const *in, const double *R,
                        double *out, size_t nout) {
    f(ctx, in, out);
    double s = 0;
    for (size_t i = 0; i < nout; i++) s += R[i] * out[i];
    return s;
}

/* Checks the float gradient got (n values) of input `which` against central
 * differences of R . f(in). Tolerance relative to the largest derivative. */
static void check_grad(const char *what, dfwd_fn f, const void *ctx, double *const *in,
                       int which, size_t n, const float *R, size_t nout, const float *got) {
    double *Rd = to_double(R, nout), *out = dzeros(nout), *fd = dzeros(n);
    const double h = 1e-5;
    for (size_t k = 0; k < n; k++) {
        const double x0 = in[which][k];
        in[which][k] = x0 + h;
        const double lp = projected(f, ctx, in, Rd, out, nout);
        in[which][k] = x0 - h;
        const double lm = projected(f, ctx, in, Rd, out, nout);
        in[which][k] = x0;
        fd[k] = (lp - lm) / (2 * h);
    }
    const double scale = max_abs(fd, n);
    assert_true(scale > 0); /* a gradient that is all zero proves nothing */
    check_close(what, got, fd, n, 2e-4 * scale, 1e-3);
    free(Rd);
    free(out);
    free(fd);
}

/* Backward must add to what the buffer holds: run it into a buffer prefilled
 * with ones and compare with the gradient from zeros plus one. */
static void check_accumulated(const char *what, const float *from_ones, const float *from_zero,
                              size_t n) {
    for (size_t i = 0; i < n; i++) {
        const double want = 1.0 + from_zero[i];
        if (!(fabs(from_ones[i] - want) <= 1e-5 * (1 + fabs(want))))
            fail_msg("%s[%zu] does not accumulate: %.9g, want %.9g", what, i,
                     (double)from_ones[i], want);
    }
}

static void assert_bits_equal(const char *what, const float *a, const float *b, size_t n) {
    if (memcmp(a, b, n * sizeof *a) != 0) {
        size_t i = 0;
        while (i < n && memcmp(a + i, b + i, sizeof *a) == 0) i++;
        fail_msg("%s differs at [%zu]: %.9g vs %.9g", what, i, (double)a[i], (double)b[i]);
    }
}

/* ------------------------------------------------------- double references */

struct ln_ctx { size_t N; int C; double eps; };
static void ref_layernorm(const void *vctx, double *const *in, double *out) {
    const struct ln_ctx *c = vctx;
    const double *x = in[0], *w = in[1], *b = in[2];
    for (size_t n = 0; n < c->N; n++) {
        double m = 0, v = 0;
        for (int i = 0; i < c->C; i++) m += x[n * c->C + i];
        m /= c->C;
        for (int i = 0; i < c->C; i++) v += (x[n * c->C + i] - m) * (x[n * c->C + i] - m);
        v /= c->C;
        for (int i = 0; i < c->C; i++)
            out[n * c->C + i] = (x[n * c->C + i] - m) / sqrt(v + c->eps) * w[i] + b[i];
    }
}

struct lin_ctx { size_t N; int IC, OC; };
static void ref_linear(const void *vctx, double *const *in, double *out) {
    const struct lin_ctx *c = vctx;
    const double *x = in[0], *w = in[1], *b = in[2];
    for (size_t n = 0; n < c->N; n++)
        for (int o = 0; o < c->OC; o++) {
            double s = b ? b[o] : 0;
            for (int i = 0; i < c->IC; i++) s += x[n * c->IC + i] * w[(size_t)o * c->IC + i];
            out[n * c->OC + o] = s;
        }
}

struct att_ctx { size_t B; int T, C, NH; };
static void ref_attention(const void *vctx, double *const *in, double *out) {
    const struct att_ctx *c = vctx;
    const double *qkv = in[0];
    const int hd = c->C / c->NH, T = c->T, C = c->C;
    double *s = dzeros((size_t)T);
    for (size_t b = 0; b < c->B; b++)
        for (int h = 0; h < c->NH; h++)
            for (int i = 0; i < T; i++) {
                /* qkv.reshape(B, T, 3, NH, hd) */
#define QKV(t, which, d) qkv[((b * T + (t)) * 3 + (which)) * C + h * hd + (d)]
                double mx = -INFINITY, sum = 0;
                for (int j = 0; j < T; j++) {
                    double dp = 0;
                    for (int d = 0; d < hd; d++) dp += QKV(i, 0, d) * QKV(j, 1, d);
                    s[j] = dp / sqrt((double)hd);
                    if (s[j] > mx) mx = s[j];
                }
                for (int j = 0; j < T; j++) sum += (s[j] = exp(s[j] - mx));
                for (int d = 0; d < hd; d++) {
                    double o = 0;
                    for (int j = 0; j < T; j++) o += s[j] / sum * QKV(j, 2, d);
                    out[(b * T + i) * C + h * hd + d] = o;
                }
#undef QKV
            }
    free(s);
}

struct n_ctx { size_t n; };
static void ref_gelu(const void *vctx, double *const *in, double *out) {
    const struct n_ctx *c = vctx;
    for (size_t i = 0; i < c->n; i++) out[i] = 0.5 * in[0][i] * erfc(-in[0][i] / sqrt(2.0));
}

struct tok_ctx { size_t B; int np, C; };
static void ref_tokens(const void *vctx, double *const *in, double *out) {
    const struct tok_ctx *c = vctx;
    const double *pe = in[0], *cls = in[1], *pos = in[2];
    const int T = c->np + 1;
    for (size_t b = 0; b < c->B; b++)
        for (int t = 0; t < T; t++)
            for (int i = 0; i < c->C; i++)
                out[(b * T + t) * c->C + i] =
                    (t == 0 ? cls[i] : pe[(b * c->np + t - 1) * c->C + i]) + pos[t * c->C + i];
}

struct xent_ctx { size_t B; int V; double s; const int *y; };
static void ref_xent(const void *vctx, double *const *in, double *out) {
    const struct xent_ctx *c = vctx;
    const double *z = in[0];
    for (size_t b = 0; b < c->B; b++) {
        double mx = -INFINITY, sum = 0;
        for (int v = 0; v < c->V; v++) mx = fmax(mx, z[b * c->V + v]);
        for (int v = 0; v < c->V; v++) sum += exp(z[b * c->V + v] - mx);
        double loss = 0;
        for (int v = 0; v < c->V; v++) {
            const double q = (v == c->y[b] ? 1 - c->s : 0) + c->s / c->V;
            loss -= q * (z[b * c->V + v] - mx - log(sum));
        }
        out[b] = loss;
    }
}

/* -------------------------------------------------------------- the tests */

static void test_im2col(void **state) {
    (void)state;
    const size_t B = 2;
    const int cin = 3, h = 10, w = 7, p = 3; /* 3x2 patches, ragged edges dropped */
    const int gh = h / p, gw = w / p, K = cin * p * p;
    float *img = frand(B * cin * h * w, -1, 1);
    float *pt = frand(B * gh * gw * K, 5, 6);
    glora_im2col(pt, img, B, cin, h, w, p);
    for (size_t b = 0; b < B; b++)
        for (int py = 0; py < gh; py++)
            for (int px = 0; px < gw; px++)
                for (int ci = 0; ci < cin; ci++)
                    for (int ky = 0; ky < p; ky++)
                        for (int kx = 0; kx < p; kx++) {
                            const float want =
                                img[((b * cin + ci) * h + py * p + ky) * w + px * p + kx];
                            const float got = pt[((b * gh + py) * gw + px) * K +
                                                 (ci * p + ky) * p + kx];
                            assert_true(got == want);
                        }
    free(img);
    free(pt);
}

static void test_tokens(void **state) {
    (void)state;
    struct tok_ctx c = {3, 4, 5};
    const size_t T = c.np + 1, npe = c.B * c.np * c.C, nx = c.B * T * c.C;
    float *pe = frand(npe, -1, 1), *cls = frand(c.C, -1, 1), *pos = frand(T * c.C, -1, 1);
    float *x = fzeros(nx);
    glora_tokens_forward(x, pe, cls, pos, c.B, c.np, c.C);
    double *in[3] = {to_double(pe, npe), to_double(cls, c.C), to_double(pos, T * c.C)};
    double *want = dzeros(nx);
    ref_tokens(&c, in, want);
    check_close("tokens", x, want, nx, 0, 1e-6);

    float *R = frand(nx, -1, 1);
    float *dpe = fzeros(npe), *dcls = fzeros(c.C), *dpos = fzeros(T * c.C);
    glora_tokens_backward(dpe, dcls, dpos, R, c.B, c.np, c.C);
    check_grad("dpe", ref_tokens, &c, in, 0, npe, R, nx, dpe);
    check_grad("dcls", ref_tokens, &c, in, 1, c.C, R, nx, dcls);
    check_grad("dpos", ref_tokens, &c, in, 2, T * c.C, R, nx, dpos);

    /* Accumulation, and each gradient alone equals it computed with the others. */
    float *a = fzeros(npe), *bc = fzeros(c.C), *bp = fzeros(T * c.C);
    for (size_t i = 0; i < npe; i++) a[i] = 1;
    for (int i = 0; i < c.C; i++) bc[i] = 1;
    for (size_t i = 0; i < T * c.C; i++) bp[i] = 1;
    glora_tokens_backward(a, bc, bp, R, c.B, c.np, c.C);
    check_accumulated("dpe", a, dpe, npe);
    check_accumulated("dcls", bc, dcls, c.C);
    check_accumulated("dpos", bp, dpos, T * c.C);
    memset(a, 0, npe * sizeof *a);
    glora_tokens_backward(a, NULL, NULL, R, c.B, c.np, c.C);
    assert_bits_equal("dpe alone", a, dpe, npe);
    memset(bc, 0, c.C * sizeof *bc);
    glora_tokens_backward(NULL, bc, NULL, R, c.B, c.np, c.C);
    assert_bits_equal("dcls alone", bc, dcls, c.C);
    memset(bp, 0, T * c.C * sizeof *bp);
    glora_tokens_backward(NULL, NULL, bp, R, c.B, c.np, c.C);
    assert_bits_equal("dpos alone", bp, dpos, T * c.C);
    glora_tokens_backward(NULL, NULL, NULL, R, c.B, c.np, c.C);

    for (int i = 0; i < 3; i++) free(in[i]);
    free(pe); free(cls); free(pos); free(x); free(want); free(R);
    free(dpe); free(dcls); free(dpos); free(a); free(bc); free(bp);
}

static void test_cls(void **state) {
    (void)state;
    const size_t B = 3;
    const int T = 5, C = 7;
    float *x = frand(B * T * C, -1, 1), *out = fzeros(B * C), *g = frand(B * C, -1, 1);
    glora_cls_forward(out, x, B, T, C);
    for (size_t b = 0; b < B; b++)
        for (int c = 0; c < C; c++) assert_true(out[b * C + c] == x[b * T * C + c]);
    float *dx = fzeros(B * T * C);
    for (size_t i = 0; i < B * T * C; i++) dx[i] = 1;
    glora_cls_backward(dx, g, B, T, C);
    for (size_t b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int c = 0; c < C; c++)
                assert_true(dx[(b * T + t) * C + c] == (t == 0 ? 1 + g[b * C + c] : 1));
    glora_cls_backward(NULL, g, B, T, C);
    free(x); free(out); free(g); free(dx);
}

static void run_linear_case(size_t N, int IC, int OC, int with_bias) {
    struct lin_ctx c = {N, IC, OC};
    const size_t nx = N * IC, nw = (size_t)OC * IC, ny = N * OC;
    float *x = frand(nx, -1, 1), *w = frand(nw, -1, 1), *b = with_bias ? frand(OC, -1, 1) : NULL;
    float *y = frand(ny, 7, 8); /* garbage: forward must overwrite */
    glora_linear_forward(y, x, w, b, N, IC, OC);
    double *in[3] = {to_double(x, nx), to_double(w, nw), b ? to_double(b, OC) : NULL};
    double *want = dzeros(ny);
    ref_linear(&c, in, want);
    check_close("linear", y, want, ny, 1e-5, 1e-5);

    float *R = frand(ny, -1, 1);
    float *dx = fzeros(nx), *dw = fzeros(nw), *db = fzeros(OC);
    glora_linear_backward(dx, dw, b ? db : NULL, R, x, w, N, IC, OC);
    check_grad("linear dinp", ref_linear, &c, in, 0, nx, R, ny, dx);
    check_grad("linear dweight", ref_linear, &c, in, 1, nw, R, ny, dw);
    if (b) check_grad("linear dbias", ref_linear, &c, in, 2, OC, R, ny, db);

    float *ax = fzeros(nx), *aw = fzeros(nw), *ab = fzeros(OC);
    for (size_t i = 0; i < nx; i++) ax[i] = 1;
    for (size_t i = 0; i < nw; i++) aw[i] = 1;
    for (int i = 0; i < OC; i++) ab[i] = 1;
    glora_linear_backward(ax, aw, ab, R, x, w, N, IC, OC);
    check_accumulated("linear dinp", ax, dx, nx);
    check_accumulated("linear dweight", aw, dw, nw);
    if (b) check_accumulated("linear dbias", ab, db, OC);
    memset(ax, 0, nx * sizeof *ax);
    glora_linear_backward(ax, NULL, NULL, R, x, w, N, IC, OC);
    assert_bits_equal("linear dinp alone", ax, dx, nx);
    memset(aw, 0, nw * sizeof *aw);
    glora_linear_backward(NULL, aw, NULL, R, x, w, N, IC, OC);
    assert_bits_equal("linear dweight alone", aw, dw, nw);
    if (b) {
        memset(ab, 0, OC * sizeof *ab);
        glora_linear_backward(NULL, NULL, ab, R, x, w, N, IC, OC);
        assert_bits_equal("linear dbias alone", ab, db, OC);
    }
    for (int i = 0; i < 3; i++) free(in[i]);
    free(x); free(w); free(b); free(y); free(want); free(R);
    free(dx); free(dw); free(db); free(ax); free(aw); free(ab);
}

static void test_linear(void **state) {
    (void)state;
    run_linear_case(7, 12, 10, 1);
    run_linear_case(15, 5, 37, 1); /* OC over one column block of the bias sum */
    run_linear_case(4, 9, 3, 0);
}

static void run_layernorm_case(size_t N, int C, float eps, float spread) {
    struct ln_ctx c = {N, C, eps};
    const size_t nx = N * C;
    float *x = frand(nx, -spread, spread), *w = frand(C, 0.5f, 1.5f), *b = frand(C, -1, 1);
    for (size_t i = 0; i < nx; i++) x[i] += 3.0f; /* a mean far from 0 */
    float *y = frand(nx, 7, 8), *mean = fzeros(N), *rstd = fzeros(N);
    glora_layernorm_forward(y, mean, rstd, x, w, b, N, C, eps);
    double *in[3] = {to_double(x, nx), to_double(w, C), to_double(b, C)};
    double *want = dzeros(nx);
    ref_layernorm(&c, in, want);
    check_close("layernorm", y, want, nx, 1e-5, 1e-4);
    /* Inference passes no mean/rstd and must get the same output. */
    float *y2 = fzeros(nx);
    glora_layernorm_forward(y2, NULL, NULL, x, w, b, N, C, eps);
    assert_bits_equal("layernorm without saved stats", y2, y, nx);

    float *R = frand(nx, -1, 1);
    float *dx = fzeros(nx), *dw = fzeros(C), *db = fzeros(C);
    glora_layernorm_backward(dx, dw, db, R, x, w, mean, rstd, N, C);
    check_grad("layernorm dinp", ref_layernorm, &c, in, 0, nx, R, nx, dx);
    check_grad("layernorm dweight", ref_layernorm, &c, in, 1, C, R, nx, dw);
    check_grad("layernorm dbias", ref_layernorm, &c, in, 2, C, R, nx, db);

    float *ax = fzeros(nx), *aw = fzeros(C), *ab = fzeros(C);
    for (size_t i = 0; i < nx; i++) ax[i] = 1;
    for (int i = 0; i < C; i++) aw[i] = ab[i] = 1;
    glora_layernorm_backward(ax, aw, ab, R, x, w, mean, rstd, N, C);
    check_accumulated("layernorm dinp", ax, dx, nx);
    check_accumulated("layernorm dweight", aw, dw, C);
    check_accumulated("layernorm dbias", ab, db, C);
    memset(ax, 0, nx * sizeof *ax);
    glora_layernorm_backward(ax, NULL, NULL, R, x, w, mean, rstd, N, C);
    assert_bits_equal("layernorm dinp alone", ax, dx, nx);
    memset(aw, 0, C * sizeof *aw);
    glora_layernorm_backward(NULL, aw, NULL, R, x, w, mean, rstd, N, C);
    assert_bits_equal("layernorm dweight alone", aw, dw, C);
    memset(ab, 0, C * sizeof *ab);
    glora_layernorm_backward(NULL, NULL, ab, R, x, w, mean, rstd, N, C);
    assert_bits_equal("layernorm dbias alone", ab, db, C);
    for (int i = 0; i < 3; i++) free(in[i]);
    free(x); free(w); free(b); free(y); free(y2); free(mean); free(rstd); free(want); free(R);
    free(dx); free(dw); free(db); free(ax); free(aw); free(ab);
}

static void test_layernorm(void **state) {
    (void)state;
    run_layernorm_case(7, 12, 1e-6f, 1.0f);
    run_layernorm_case(3, 45, 1e-5f, 2.0f); /* C over one column block */
    /* Nearly constant rows: eps matters and must be inside the root. */
    run_layernorm_case(4, 8, 1e-2f, 0.05f);
}

/* with_grad: also check the backward by finite differences (quadratic in the
 * size: small cases only). */
static void run_attention_case(size_t B, int T, int C, int NH, int with_grad) {
    struct att_ctx c = {B, T, C, NH};
    const size_t nq = B * T * 3 * C, no = B * T * C, na = B * NH * T * T;
    float *qkv = frand(nq, -1.5f, 1.5f), *out = frand(no, 7, 8), *att = fzeros(na);
    glora_attention_forward(out, att, qkv, B, T, C, NH);
    double *in[1] = {to_double(qkv, nq)};
    double *want = dzeros(no);
    ref_attention(&c, in, want);
    check_close("attention", out, want, no, 1e-5, 1e-4);
    for (size_t r = 0; r < B * NH * T; r++) { /* saved rows are distributions */
        double s = 0;
        for (int j = 0; j < T; j++) s += att[r * T + j];
        assert_true(fabs(s - 1) < 1e-5);
    }

    float *R = frand(no, -1, 1), *datt = fzeros(na);
    float *dq = fzeros(nq);
    glora_attention_backward(dq, datt, R, qkv, att, B, T, C, NH);
    if (with_grad) check_grad("attention dqkv", ref_attention, &c, in, 0, nq, R, no, dq);
    float *aq = fzeros(nq);
    for (size_t i = 0; i < nq; i++) aq[i] = 1;
    glora_attention_backward(aq, datt, R, qkv, att, B, T, C, NH);
    check_accumulated("attention dqkv", aq, dq, nq);
    glora_attention_backward(NULL, datt, R, qkv, att, B, T, C, NH);

    /* The cls-token-only forward gives token 0's rows of the full one, bit
     * for bit. */
    float *o1 = fzeros(B * C), *a1 = fzeros(B * NH * T);
    glora_attention_forward_first(o1, a1, qkv, B, T, C, NH);
    for (size_t b = 0; b < B; b++) {
        assert_bits_equal("attention first: out", o1 + b * C, out + b * T * C, (size_t)C);
        for (int h = 0; h < NH; h++)
            assert_bits_equal("attention first: att", a1 + (b * NH + h) * T,
                              att + (b * NH + h) * T * T, (size_t)T);
    }
    free(o1); free(a1);
    free(in[0]);
    free(qkv); free(out); free(att); free(want); free(R); free(datt); free(dq); free(aq);
}

static void test_attention(void **state) {
    (void)state;
    run_attention_case(3, 5, 12, 3, 1);
    run_attention_case(2, 4, 8, 1, 1);
    run_attention_case(1, 1, 6, 2, 1); /* a single token attends to itself */
    run_attention_case(2, 7, 10, 5, 1); /* hd = 2 */
    /* Head widths of the AVX-512 kernel (multiples of 16), where the CPU has
     * it: full blocks of 16 keys, a remainder, and a short last query group. */
    run_attention_case(2, 17, 128, 4, 0); /* vit-tiny-28: hd 32, 17 tokens */
    run_attention_case(1, 37, 128, 2, 0); /* hd 64, two blocks and 5 keys */
    run_attention_case(2, 16, 48, 1, 0); /* hd 48, exactly one block */
    run_attention_case(1, 29, 32, 2, 0); /* hd 16, 29 queries in 3 groups */
    run_attention_case(1, 3, 64, 4, 1); /* fewer keys than a block */
    run_attention_case(1, 300, 32, 1, 0); /* 300 keys: softmax in two pieces */

    /* timm's Attention (qkv.reshape(B,T,3,NH,hd), softmax(q k^T hd^-0.5) v,
     * heads concatenated) run by PyTorch on qkv[i] = sin(0.7 i), B=1 T=3
     * C=4 NH=2. */
    static const double want[12] = {-0.1306891068, -0.2373751540, -0.3550000074,
                                    -0.3913519100, -0.2822383508, -0.3612584729,
                                    0.2917475725,  0.4493646108,  0.4825111736,
                                    0.5052222382,  0.1733585137,  0.1865899366};
    float qkv[36], out[12], att[18];
    for (int i = 0; i < 36; i++) qkv[i] = (float)sin(0.7 * i);
    glora_attention_forward(out, att, qkv, 1, 3, 4, 2);
    check_close("attention vs torch", out, want, 12, 1e-6, 1e-5);
}

/* The attention backward in double precision from the same float inputs
 * (qkv, the saved probabilities att, dout); adds to dqkv, like the kernel.
 * dp_ij = g_i . v_j, ds_ij = a_ij (dp_ij - sum_k a_ik dp_ik) / sqrt(hd),
 * dq_i = sum_j ds_ij k_j, dk_j = sum_i ds_ij q_i, dv_j = sum_i a_ij g_i. */
static void ref_attention_backward(double *dqkv, const float *dout, const float *qkv,
                                   const float *att, size_t B, int T, int C, int NH) {
    const int hd = C / NH;
    double *dp = dzeros((size_t)T);
    for (size_t b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            const float *a = att + (b * NH + h) * (size_t)T * T;
#define QKV(t, which, d) qkv[((b * T + (t)) * 3 + (which)) * C + h * hd + (d)]
#define DQKV(t, which, d) dqkv[((b * T + (t)) * 3 + (which)) * C + h * hd + (d)]
#define G(t, d) dout[(b * T + (t)) * C + h * hd + (d)]
            for (int i = 0; i < T; i++) {
                double s = 0;
                for (int j = 0; j < T; j++) {
                    dp[j] = 0;
                    for (int d = 0; d < hd; d++) dp[j] += (double)G(i, d) * QKV(j, 2, d);
                    s += a[i * T + j] * dp[j];
                }
                for (int j = 0; j < T; j++) {
                    const double ds = a[i * T + j] * (dp[j] - s) / sqrt((double)hd);
                    for (int d = 0; d < hd; d++) {
                        DQKV(i, 0, d) += ds * QKV(j, 1, d);
                        DQKV(j, 1, d) += ds * QKV(i, 0, d);
                        DQKV(j, 2, d) += (double)a[i * T + j] * G(i, d);
                    }
                }
            }
#undef G
#undef DQKV
#undef QKV
        }
    free(dp);
}

/* The AVX-512 attention backward against the plain loops (bit for bit: the
 * same operations in the same order per element, datt included) and both
 * against the double-precision backward, on a dqkv that already holds
 * values (the kernels accumulate). Where the CPU lacks AVX-512 (or
 * GLORA_NN=plain) only the plain loops are checked. */
static void run_attention_backward_case(size_t B, int T, int C, int NH) {
    const size_t nq = B * T * 3 * C, no = B * T * C, na = B * NH * T * T;
    float *qkv = frand(nq, -1.5f, 1.5f), *att = fzeros(na), *out = fzeros(no);
    glora_attention_forward(out, att, qkv, B, T, C, NH);
    float *g = frand(no, -1, 1), *init = frand(nq, -0.5f, 0.5f);
    /* A few exact zeros in dout, and token 0's whole row: its dot
     * products are sums of signed zeros (the kernel starts each lane from
     * its first product, the plain loop from +0). */
    for (size_t i = 0; i < no; i += 97) g[i] = 0.0f;
    for (int i = 0; i < C; i++) g[i] = 0.0f;
    float *plain = fzeros(nq), *fast = fzeros(nq), *da_plain = fzeros(na), *da_fast = fzeros(na);
    memcpy(plain, init, nq * sizeof *plain);
    memcpy(fast, init, nq * sizeof *fast);
    nn_attention_backward_with(0, 0, plain, da_plain, g, qkv, att, B, T, C, NH);
    if (nn_use_avx512()) {
        nn_attention_backward_with(1, 0, fast, da_fast, g, qkv, att, B, T, C, NH);
        assert_bits_equal("attention backward: AVX-512 dqkv vs plain", fast, plain, nq);
        assert_bits_equal("attention backward: AVX-512 ds vs plain", da_fast, da_plain, na);
    }
    /* The public entry runs one of the two. */
    float *pub = fzeros(nq);
    memcpy(pub, init, nq * sizeof *pub);
    glora_attention_backward(pub, da_fast, g, qkv, att, B, T, C, NH);
    assert_bits_equal("attention backward: public vs plain", pub, plain, nq);

    double *want = to_double(init, nq);
    ref_attention_backward(want, g, qkv, att, B, T, C, NH);
    double mx = 0;
    for (size_t i = 0; i < nq; i++) mx = fmax(mx, fabs(want[i]));
    check_close("attention backward vs double", plain, want, nq, 1e-5 * mx, 1e-4);

    /* The fused definition (bf16 training): the AVX-512 kernel against its
     * plain loops bit for bit, the public entry, and both against double. */
    float *fplain = fzeros(nq), *ffast = fzeros(nq);
    memcpy(fplain, init, nq * sizeof *fplain);
    memcpy(ffast, init, nq * sizeof *ffast);
    nn_attention_backward_with(0, 1, fplain, da_plain, g, qkv, att, B, T, C, NH);
    if (nn_use_avx512()) {
        nn_attention_backward_with(1, 1, ffast, da_fast, g, qkv, att, B, T, C, NH);
        assert_bits_equal("fused attention backward: AVX-512 dqkv vs plain", ffast, fplain, nq);
        assert_bits_equal("fused attention backward: AVX-512 ds vs plain", da_fast, da_plain, na);
    }
    memcpy(pub, init, nq * sizeof *pub);
    glora_attention_backward_fma(pub, da_fast, g, qkv, att, B, T, C, NH);
    assert_bits_equal("fused attention backward: public vs plain", pub, fplain, nq);
    check_close("fused attention backward vs double", fplain, want, nq, 1e-5 * mx, 1e-4);
    /* It is another order: somewhere it must differ from the unfused bits
     * (else the switch did nothing). */
    if (T >= 16 && C / NH >= 16) {
        size_t differ = 0;
        for (size_t i = 0; i < nq; i++) differ += memcmp(&fplain[i], &plain[i], sizeof(float)) != 0;
        assert_true(differ > 0);
    }
    free(fplain); free(ffast);
    free(qkv); free(att); free(out); free(g); free(init); free(plain); free(fast);
    free(da_plain); free(da_fast); free(pub); free(want);
}

static void test_attention_backward_kernels(void **state) {
    (void)state;
    run_attention_backward_case(1, 197, 128, 2); /* ViT-B/16: 197 tokens, hd 64 */
    run_attention_backward_case(2, 17, 128, 4);  /* vit-tiny-28: hd 32 */
    run_attention_backward_case(1, 7, 48, 1);    /* hd 48, fewer keys than a block */
    run_attention_backward_case(3, 29, 32, 2);   /* hd 16, 29 tokens */
    run_attention_backward_case(1, 32, 64, 1);   /* whole blocks only */
    run_attention_backward_case(1, 1, 64, 1);    /* one token */
    run_attention_backward_case(2, 11, 40, 2);   /* hd 20: the plain loops on every CPU */
    /* No tokens: nothing to do, on either build. */
    float dq = 1.0f, da = 1.0f, none = 0.0f;
    for (int fused = 0; fused < 2; fused++) {
        nn_attention_backward_with(0, fused, &dq, &da, &none, &none, &none, 2, 0, 64, 1);
        if (nn_use_avx512())
            nn_attention_backward_with(1, fused, &dq, &da, &none, &none, &none, 2, 0, 64, 1);
    }
    assert_true(dq == 1.0f && da == 1.0f);
}

/* ------------------------------------------------- bf16 attention forward
 *
 * Against double precision on the bf16-rounded operands: the scores and
 * probabilities from q and k rounded once, and the output from v and the
 * kernel's own probabilities rounded once (the only roundings besides the
 * fp32 accumulation). Then the hardware kernel against the emulation bit
 * for bit (where the CPU has AVX512_BF16), the public entry, the cls-only
 * entry, and 1 against 2 threads. */
static double bf(float x) { return (double)glora_bf16_round(x); }

static void run_attention_bf16_case(size_t B, int T, int C, int NH, float range) {
    const size_t nq = B * T * 3 * C, no = B * T * C, na = B * NH * T * T;
    const int hd = C / NH;
    float *qkv = frand(nq, -range, range), *out = fzeros(no), *att = fzeros(na);
    nn_attention_forward_bf16_with(0, out, att, qkv, B, T, C, NH, (size_t)T);
    const double u = ldexp(1.0, -24), scale = 1.0 / sqrt((double)hd);
    double *s = dzeros((size_t)T);
    for (size_t b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
#define QKV(t, which, d) qkv[((b * T + (t)) * 3 + (which)) * C + h * hd + (d)]
            const float *a = att + (b * NH + h) * (size_t)T * T;
            for (int i = 0; i < T; i++) {
                double mx = -INFINITY, sum = 0, dsb = 0;
                for (int j = 0; j < T; j++) {
                    double dot = 0, mag = 0;
                    for (int d = 0; d < hd; d++) {
                        dot += bf(QKV(i, 0, d)) * bf(QKV(j, 1, d));
                        mag += fabs(bf(QKV(i, 0, d)) * bf(QKV(j, 1, d)));
                    }
                    s[j] = dot * scale;
                    dsb = fmax(dsb, ((hd + 1) / 2 + 2) * u * mag * scale + 2 * u * fabs(s[j]));
                    mx = fmax(mx, s[j]);
                }
                for (int j = 0; j < T; j++) sum += exp(s[j] - mx);
                for (int j = 0; j < T; j++) {
                    /* Each score off by dsb moves a probability by at most
                     * 2 dsb relative, plus exp's and the division's error. */
                    const double want = exp(s[j] - mx) / sum, got = a[i * T + j];
                    if (fabs(got - want) > want * (2.2 * dsb + 1e-6) + 1e-30) {
                        fail_msg("bf16 attention probability (b %zu h %d i %d j %d): %.9g, want %.9g",
                                 b, h, i, j, got, want);
                    }
                }
                for (int d = 0; d < hd; d++) {
                    double want = 0, mag = 0, full = 0;
                    for (int j = 0; j < T; j++) {
                        want += bf(a[i * T + j]) * bf(QKV(j, 2, d));
                        mag += fabs(bf(a[i * T + j]) * bf(QKV(j, 2, d)));
                        full += (double)a[i * T + j] * bf(QKV(j, 2, d));
                    }
                    const double got = out[(b * T + i) * C + h * hd + d];
                    if (fabs(got - want) > ((T + 1) / 2 + 2) * u * mag) {
                        fail_msg("bf16 attention output (b %zu h %d i %d d %d): %.9g, want %.9g",
                                 b, h, i, d, got, want);
                    }
                    /* P's rounding is the only other error: 2^-8 relative. */
                    assert_true(fabs(got - full) <= 1.01 * ldexp(1.0, -8) * mag + ((T + 1) / 2 + 2) * u * mag);
                }
            }
#undef QKV
        }
    if (nn_use_avx512() && !glora_bgemm_emulated() && nn_attn_bf16_avx512_fits((size_t)hd)) {
        float *o2 = fzeros(no), *a2 = fzeros(na);
        nn_attention_forward_bf16_with(1, o2, a2, qkv, B, T, C, NH, (size_t)T);
        assert_bits_equal("bf16 attention: AVX512_BF16 output vs emulation", o2, out, no);
        assert_bits_equal("bf16 attention: AVX512_BF16 probabilities vs emulation", a2, att, na);
        free(o2); free(a2);
    }
    const int saved = glora_max_threads();
    for (int th = 1; th <= 2; th++) {
        glora_set_threads(th);
        float *o2 = fzeros(no), *a2 = fzeros(na), *o1 = fzeros(B * C), *a1 = fzeros(B * NH * T);
        glora_attention_forward_bf16(o2, a2, qkv, B, T, C, NH);
        assert_bits_equal("bf16 attention: public entry vs emulation", o2, out, no);
        assert_bits_equal("bf16 attention: public probabilities vs emulation", a2, att, na);
        glora_attention_forward_first_bf16(o1, a1, qkv, B, T, C, NH);
        for (size_t b = 0; b < B; b++) {
            assert_bits_equal("bf16 attention: cls output", o1 + b * C, out + b * T * C, (size_t)C);
            for (int h = 0; h < NH; h++)
                assert_bits_equal("bf16 attention: cls probabilities", a1 + (b * NH + h) * T,
                                  att + (b * NH + h) * (size_t)T * T, (size_t)T);
        }
        free(o2); free(a2); free(o1); free(a1);
    }
    glora_set_threads(saved);
    free(qkv); free(out); free(att); free(s);
}

static void test_attention_bf16(void **state) {
    (void)state;
    run_attention_bf16_case(1, 197, 128, 2, 2.0f); /* ViT-B/16: 197 tokens, hd 64 */
    run_attention_bf16_case(2, 17, 128, 4, 2.0f);  /* vit-tiny-28: hd 32 */
    run_attention_bf16_case(1, 37, 192, 2, 1.5f);  /* hd 96: output columns split */
    run_attention_bf16_case(1, 33, 256, 2, 1.0f);  /* hd 128 */
    run_attention_bf16_case(1, 32, 64, 2, 3.0f);   /* whole blocks of keys only */
    run_attention_bf16_case(3, 1, 64, 1, 2.0f);    /* one token */
    run_attention_bf16_case(2, 16, 64, 1, 8.0f);   /* one block; peaked softmax */
    run_attention_bf16_case(2, 7, 10, 2, 2.0f);    /* hd 5 (odd): emulation on every CPU */
    run_attention_bf16_case(1, 9, 48, 3, 2.0f);    /* hd 16: emulation on every CPU */
}

static void test_gelu(void **state) {
    (void)state;
    const size_t n = 67;
    struct n_ctx c = {n};
    float *x = frand(n, -5, 5), *y = fzeros(n);
    x[0] = 0; x[1] = -9; x[2] = 9; x[3] = -6;
    glora_gelu_forward(y, x, n);
    double *in[1] = {to_double(x, n)};
    double *want = dzeros(n);
    ref_gelu(&c, in, want);
    /* Relative accuracy even far left, where 1 + erf cancels. */
    check_close("gelu", y, want, n, 1e-30, 1e-5);
    float *R = frand(n, -1, 1), *dx = fzeros(n), *ax = fzeros(n);
    glora_gelu_backward(dx, x, R, n);
    check_grad("gelu dinp", ref_gelu, &c, in, 0, n, R, n, dx);
    for (size_t i = 0; i < n; i++) ax[i] = 1;
    glora_gelu_backward(ax, x, R, n);
    check_accumulated("gelu dinp", ax, dx, n);
    glora_gelu_backward(NULL, x, R, n);

    /* torch.nn.functional.gelu (approximate='none') in float64; the tanh
     * form would be off by ~1e-4 at x = -2. (PyTorch's float32 CPU kernel
     * approximates erf and is itself off by 4e-5 relative at x = -3.) */
    static const float tx[] = {-3.0f, -2.0f, -0.5f, 0.25f, 1.0f, 2.5f};
    static const double ty[] = {-0.004049694095, -0.0455002639, -0.1542687694,
                                0.1496765814,    0.8413447461,  2.484475837};
    float ty_got[6];
    glora_gelu_forward(ty_got, tx, 6);
    check_close("gelu vs torch", ty_got, ty, 6, 1e-30, 1e-6);
    free(x); free(y); free(in[0]); free(want); free(R); free(dx); free(ax);
}

/* The vectorisable exp and normal CDF behind softmax and GELU, swept densely
 * against libm in double. */
static void test_vector_math(void **state) {
    (void)state;
    double worst = 0;
    for (int i = 0; i <= 200000; i++) {
        const float a = -87.0f * (float)i / 200000.0f;
        const double want = exp((double)a), got = nn_exp_neg(a);
        worst = fmax(worst, fabs(got / want - 1));
    }
    assert_true(nn_exp_neg(-1000.0f) > 0 && nn_exp_neg(-1000.0f) < 2e-38f);
    assert_true(nn_exp_neg(0.0f) == 1.0f);
    if (worst > 3e-7) fail_msg("exp: relative error %.3g", worst);

    double wc = 0, wp = 0;
    for (int i = 0; i <= 200000; i++) {
        const float x = -12.0f + 24.0f * (float)i / 200000.0f;
        float pdf;
        const double cdf = nn_normcdf_pdf(x, &pdf);
        const double wantc = 0.5 * erfc(-(double)x / sqrt(2.0));
        const double wantp = exp(-0.5 * (double)x * x) / sqrt(2 * M_PI);
        wc = fmax(wc, fabs(cdf / wantc - 1));
        wp = fmax(wp, fabs(pdf / wantp - 1));
    }
    if (wc > 1e-6 || wp > 1e-6) fail_msg("normal cdf/pdf: relative error %.3g / %.3g", wc, wp);
    float pdf;
    assert_true(nn_normcdf_pdf(-40.0f, &pdf) < 1e-32f && nn_normcdf_pdf(40.0f, &pdf) == 1.0f);

    /* The same sweep through the GELU kernels that run here (the AVX-512 +
     * FMA build on such CPUs, the plain one under GLORA_NN=plain): x Phi(x)
     * and Phi(x) + x phi(x), relative to libm in double. */
    const size_t n = 200001;
    float *x = fzeros(n), *y = fzeros(n), *d = fzeros(n), *one = fzeros(n);
    for (size_t i = 0; i < n; i++) {
        x[i] = -12.0f + 24.0f * (float)i / (float)(n - 1);
        one[i] = 1.0f;
    }
    glora_gelu_forward(y, x, n);
    glora_gelu_backward(d, x, one, n);
    double wy = 0, wd = 0;
    for (size_t i = 0; i < n; i++) {
        const double xi = x[i], cdf = 0.5 * erfc(-xi / sqrt(2.0));
        const double xpdf = xi * exp(-0.5 * xi * xi) / sqrt(2 * M_PI), dwant = cdf + xpdf;
        if (xi != 0) wy = fmax(wy, fabs(y[i] / (xi * cdf) - 1));
        /* d gelu/dx is a sum that cancels near x = -0.75: error relative
         * to the size of its terms. */
        wd = fmax(wd, fabs(d[i] - dwant) / (cdf + fabs(xpdf)));
    }
    if (wy > 1e-6 || wd > 1e-6) fail_msg("gelu kernels: relative error %.3g / %.3g", wy, wd);

    /* The forward with its derivative, then the gradient from it (what a
     * recomputing backward runs): the same bits as glora_gelu_forward and
     * glora_gelu_backward into zeros, on the sweep (zeros and signed zeros
     * in dout included). */
    float *g = frand(n, -1, 1), *y2 = fzeros(n), *dd = fzeros(n), *dref = fzeros(n);
    for (size_t i = 0; i < n; i += 101) g[i] = 0.0f;
    for (size_t i = 50; i < n; i += 103) g[i] = -0.0f;
    glora_gelu_forward_deriv(y2, dd, x, n);
    assert_bits_equal("gelu forward with derivative: out", y2, y, n);
    glora_gelu_backward(dref, x, g, n);
    glora_gelu_backward_deriv(dd, g, n);
    assert_bits_equal("gelu backward from the derivative", dd, dref, n);
    free(g); free(y2); free(dd); free(dref);
    free(x); free(y); free(d); free(one);
}

static void test_add(void **state) {
    (void)state;
    const size_t n = 41;
    float *a = frand(n, -1, 1), *b = frand(n, -1, 1), *o = fzeros(n);
    glora_add(o, a, b, n);
    for (size_t i = 0; i < n; i++) assert_true(o[i] == a[i] + b[i]);
    glora_add(a, a, b, n); /* in place */
    assert_bits_equal("add in place", a, o, n);
    free(a); free(b); free(o);
}

static void run_xent_case(size_t B, int V, float s) {
    int *y = malloc(B * sizeof *y);
    for (size_t b = 0; b < B; b++) y[b] = (int)glora_rng_below(&rng, (uint64_t)V);
    struct xent_ctx c = {B, V, s, y};
    float *z = frand(B * V, -4, 4), *loss = fzeros(B), *p = fzeros(B * V);
    z[0] = 60; /* large logits must not overflow */
    glora_xent_forward(loss, p, z, y, B, V, s);
    double *in[1] = {to_double(z, B * V)};
    double *want = dzeros(B);
    ref_xent(&c, in, want);
    check_close("xent", loss, want, B, 1e-5, 1e-5);
    float *R = frand(B, 0.5f, 1.5f), *dz = fzeros(B * V), *az = fzeros(B * V);
    /* dlogits = scale (p - q) is the gradient of scale * sum_b loss_b; a
     * per-example dout is folded into the projection by scaling rows. */
    for (size_t b = 0; b < B; b++) {
        glora_xent_backward(dz + b * V, p + b * V, y + b, 1, V, s, R[b]);
    }
    if (V > 1) check_grad("xent dlogits", ref_xent, &c, in, 0, B * V, R, B, dz);
    for (size_t i = 0; i < B * V; i++) az[i] = 1;
    for (size_t b = 0; b < B; b++)
        glora_xent_backward(az + b * V, p + b * V, y + b, 1, V, s, R[b]);
    check_accumulated("xent dlogits", az, dz, B * V);
    glora_xent_backward(NULL, p, y, B, V, s, 1.0f);
    free(y); free(z); free(loss); free(p); free(in[0]); free(want); free(R); free(dz); free(az);
}

static void test_xent(void **state) {
    (void)state;
    run_xent_case(5, 10, 0.0f);
    run_xent_case(3, 7, 0.1f);
    run_xent_case(2, 1, 0.3f); /* one class: loss 0 */

    /* torch.nn.CrossEntropyLoss(label_smoothing=0.1, reduction='none') */
    static const float z[2 * 3] = {1.0f, 2.0f, 0.5f, -1.0f, 0.0f, 3.0f};
    static const int y[2] = {0, 2};
    static const double want[2] = {1.447702117, 0.2992172371};
    float loss[2], p[6];
    glora_xent_forward(loss, p, z, y, 2, 3, 0.1f);
    check_close("xent vs torch", loss, want, 2, 1e-6, 1e-6);
    /* Batch-mean gradient: (p - q) / B. */
    float d[6] = {0};
    glora_xent_backward(d, p, y, 2, 3, 0.1f, 0.5f);
    const double q00 = 0.9 + 0.1 / 3;
    assert_true(fabs(d[0] - 0.5 * (p[0] - q00)) < 1e-7);
}

/* ------------------------------------------- threads: identical bits always */

/* Forward and backward of every layer on a vit-tiny-28-sized batch, large
 * enough that each kernel opens a parallel region. Results go to one buffer. */
struct net_case {
    size_t B;
    int T, C, NH, H, V;
    float *img, *pw, *pb, *cls, *pos, *lnw, *lnb, *qw, *qb, *hw, *hb, *R;
    int *y;
};

static size_t run_all(const struct net_case *k, float *res) {
    const size_t B = k->B, T = k->T, C = k->C, np = T - 1, N = B * T;
    const int P = 7, K = 49;
    float *pat = fzeros(B * np * K), *pe = fzeros(B * np * C), *x = fzeros(N * C);
    float *ln = fzeros(N * C), *mean = fzeros(N), *rstd = fzeros(N);
    float *qkv = fzeros(N * 3 * C), *att = fzeros(B * k->NH * T * T), *ao = fzeros(N * C);
    float *hid = fzeros(N * k->H), *act = fzeros(N * k->H), *clsv = fzeros(B * k->H);
    float *loss = fzeros(B), *probs = fzeros(B * k->V);
    size_t o = 0;
#define SAVE(p, n) (res ? memcpy(res + o, (p), (n) * sizeof(float)) : NULL, o += (n))
    glora_im2col(pat, k->img, B, 1, 28, 28, P);
    glora_linear_forward(pe, pat, k->pw, k->pb, B * np, K, C);
    glora_tokens_forward(x, pe, k->cls, k->pos, B, np, C);
    glora_layernorm_forward(ln, mean, rstd, x, k->lnw, k->lnb, N, C, 1e-6f);
    glora_linear_forward(qkv, ln, k->qw, k->qb, N, C, 3 * C);
    glora_attention_forward(ao, att, qkv, B, T, C, k->NH);
    glora_add(ao, ao, x, N * C);
    glora_linear_forward(hid, ao, k->hw, k->hb, N, C, k->H);
    glora_gelu_forward(act, hid, N * k->H);
    glora_cls_forward(clsv, act, B, T, k->H); /* the cls hidden units are the logits */
    glora_xent_forward(loss, probs, clsv, k->y, B, k->V, 0.1f);
    SAVE(pat, B * np * K); SAVE(pe, B * np * C); SAVE(x, N * C); SAVE(ln, N * C);
    SAVE(mean, N); SAVE(rstd, N); SAVE(qkv, N * 3 * C); SAVE(att, B * k->NH * T * T);
    SAVE(ao, N * C); SAVE(hid, N * k->H); SAVE(act, N * k->H); SAVE(loss, B);
    SAVE(probs, B * k->V);

    float *dclsv = fzeros(B * k->H), *dact = fzeros(N * k->H), *dhid = fzeros(N * k->H);
    float *dhw = fzeros((size_t)k->H * C), *dhb = fzeros(k->H), *dao = fzeros(N * C);
    float *dqkv = fzeros(N * 3 * C), *datt = fzeros(B * k->NH * T * T);
    float *dqw = fzeros(3 * C * C), *dqb = fzeros(3 * C), *dln = fzeros(N * C);
    float *dlnw = fzeros(C), *dlnb = fzeros(C), *dx = fzeros(N * C), *dpe = fzeros(B * np * C);
    float *dcls = fzeros(C), *dpos = fzeros(T * C), *dpw = fzeros(C * K), *dpb = fzeros(C);
    glora_xent_backward(dclsv, probs, k->y, B, k->V, 0.1f, 1.0f / B);
    glora_cls_backward(dact, dclsv, B, T, k->H);
    for (size_t i = 0; i < N * k->H; i++) dact[i] += k->R[i]; /* gradient everywhere */
    glora_gelu_backward(dhid, hid, dact, N * k->H);
    glora_linear_backward(dao, dhw, dhb, dhid, ao, k->hw, N, C, k->H);
    memcpy(dx, dao, N * C * sizeof(float)); /* the residual branch */
    glora_attention_backward(dqkv, datt, dao, qkv, att, B, T, C, k->NH);
    glora_linear_backward(dln, dqw, dqb, dqkv, ln, k->qw, N, C, 3 * C);
    glora_layernorm_backward(dx, dlnw, dlnb, dln, x, k->lnw, mean, rstd, N, C);
    glora_tokens_backward(dpe, dcls, dpos, dx, B, np, C);
    glora_linear_backward(NULL, dpw, dpb, dpe, pat, k->pw, B * np, K, C);
    SAVE(dclsv, B * k->H); SAVE(dhid, N * k->H); SAVE(dhw, (size_t)k->H * C); SAVE(dhb, k->H);
    SAVE(dao, N * C); SAVE(dqkv, N * 3 * C); SAVE(dqw, 3 * C * C); SAVE(dqb, 3 * C);
    SAVE(dln, N * C); SAVE(dlnw, C); SAVE(dlnb, C); SAVE(dx, N * C); SAVE(dpe, B * np * C);
    SAVE(dcls, C); SAVE(dpos, T * C); SAVE(dpw, C * K); SAVE(dpb, C);
#undef SAVE
    float *bufs[] = {pat, pe, x, ln, mean, rstd, qkv, att, ao, hid, act, clsv, loss,
                     probs, dclsv, dact, dhid, dhw, dhb, dao, dqkv, datt, dqw, dqb, dln, dlnw,
                     dlnb, dx, dpe, dcls, dpos, dpw, dpb};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) free(bufs[i]);
    return o;
}

static void net_case_init(struct net_case *k, size_t B) {
    k->B = B; k->T = 17; k->C = 128; k->NH = 4; k->H = 512; k->V = 512;
    const size_t C = k->C;
    k->img = frand(B * 28 * 28, -1, 1);
    k->pw = frand(C * 49, -0.2f, 0.2f); k->pb = frand(C, -0.1f, 0.1f);
    k->cls = frand(C, -1, 1); k->pos = frand(k->T * C, -1, 1);
    k->lnw = frand(C, 0.5f, 1.5f); k->lnb = frand(C, -0.5f, 0.5f);
    k->qw = frand(3 * C * C, -0.15f, 0.15f); k->qb = frand(3 * C, -0.1f, 0.1f);
    k->hw = frand(k->H * C, -0.15f, 0.15f); k->hb = frand(k->H, -0.1f, 0.1f);
    k->R = frand(B * k->T * k->H, -1e-3f, 1e-3f);
    k->y = malloc(B * sizeof *k->y);
    for (size_t b = 0; b < B; b++) k->y[b] = (int)glora_rng_below(&rng, (uint64_t)k->V);
}

static void net_case_free(struct net_case *k) {
    free(k->img); free(k->pw); free(k->pb); free(k->cls); free(k->pos); free(k->lnw);
    free(k->lnb); free(k->qw); free(k->qb); free(k->hw); free(k->hb); free(k->R); free(k->y);
}

static void test_threads_bit_identical(void **state) {
    (void)state;
    struct net_case k;
    net_case_init(&k, 37); /* odd batch: uneven shares for 2 and 3 threads */
    const size_t n = run_all(&k, NULL);
    float *r1 = fzeros(n), *r2 = fzeros(n), *r3 = fzeros(n);
    const int saved = glora_max_threads();
    glora_set_threads(1);
    run_all(&k, r1);
    glora_set_threads(2);
    assert_int_equal(run_all(&k, r2), n);
    assert_bits_equal("2 threads vs 1", r2, r1, n);
    glora_set_threads(3);
    assert_int_equal(run_all(&k, r3), n);
    assert_bits_equal("3 threads vs 1", r3, r1, n);

    /* Inside an enclosing parallel region (the search evaluates candidates in
     * parallel) each thread runs the kernels alone and gets the same bits. */
    glora_set_threads(2);
    int bad = 0;
#pragma omp parallel reduction(| : bad)
    {
        float *mine = fzeros(n);
        run_all(&k, mine);
        bad |= memcmp(mine, r1, n * sizeof(float)) != 0;
        free(mine);
    }
    assert_int_equal(bad, 0);
    glora_set_threads(saved);
    free(r1); free(r2); free(r3);
    net_case_free(&k);
}

int main(void) {
    glora_rng_seed(&rng, 20261124);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_im2col),    cmocka_unit_test(test_tokens),
        cmocka_unit_test(test_cls),       cmocka_unit_test(test_linear),
        cmocka_unit_test(test_layernorm), cmocka_unit_test(test_attention),
        cmocka_unit_test(test_attention_backward_kernels),
        cmocka_unit_test(test_attention_bf16),
        cmocka_unit_test(test_gelu),      cmocka_unit_test(test_vector_math),
        cmocka_unit_test(test_add),
        cmocka_unit_test(test_xent),      cmocka_unit_test(test_threads_bit_identical),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
