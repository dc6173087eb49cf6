/* Unit tests of the training engine (src/train).
 *
 * The whole-model backward is checked against central finite differences of
 * an independent double-precision forward pass written here (naive loops,
 * the GLoRA merge from its formulas), under random layer configurations
 * (sub-rank LoRA slices, vector and scalar forms) and several choices of what
 * trains. The optimiser and schedule are checked against their formulas; the
 * PyTorch step fixture lives in test_train_ref.c. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "glora/common.h"
#include "glora/layer.h"
#include "glora/model.h"
#include "glora/nn.h"
#include "util/parallel.h"
#include "util/rng.h"
#include "glora/train.h"
#include "nn/nn-impl.h"

/* ---- a double-precision reference forward ------------------------------ */

typedef struct {
    const glora_vit_t *m; /* for shapes and offsets only */
    const double *p;      /* all parameters in the model's layout */
} ref_t;

static const double *P(const ref_t *r, const float *fp) { return r->p + (fp - r->m->mem); }

/* W' and b' of layer l under configuration c, from the formulas of include/glora/layer.h. */
static void ref_merge(const ref_t *r, int l, const glora_layer_cfg_t *c, double *w, double *b) {
    const float *fw0, *fb0;
    int out, in;
    glora_vit_layer(r->m, l, &fw0, &fb0, &out, &in);
    const double *w0 = P(r, fw0), *b0 = P(r, fb0);
    for (int o = 0; o < out; o++) {
        for (int i = 0; i < in; i++) w[o * in + i] = w0[o * in + i];
        b[o] = b0[o];
    }
    if (!c || !r->m->adapters) return;
    const glora_adapter_t *fa = &r->m->adapters[l];
    const int R = fa->rank;
    const double *Ad = P(r, fa->Ad), *Au = P(r, fa->Au), *Bd = P(r, fa->Bd), *Bu = P(r, fa->Bu);
    const double *Cd = P(r, fa->Cd), *Cu = P(r, fa->Cu), *D = P(r, fa->D), *E = P(r, fa->E);
    for (int o = 0; o < out; o++) {
        for (int i = 0; i < in; i++) {
            double A = 0, Bv = 0;
            glora_choice_t ca = c->t[GLORA_A], cb = c->t[GLORA_B];
            if (ca.kind == GLORA_LORA)
                for (int k = 0; k < ca.rank; k++) A += Ad[o * R + k] * Au[k * in + i];
            else if (ca.kind == GLORA_VECTOR) A = Ad[o * R];
            else if (ca.kind == GLORA_SCALAR) A = Ad[0];
            if (cb.kind == GLORA_LORA)
                for (int k = 0; k < cb.rank; k++) Bv += Bd[o * R + k] * Bu[k * in + i];
            else if (cb.kind == GLORA_VECTOR) Bv = Bd[o * R];
            else if (cb.kind == GLORA_SCALAR) Bv = Bd[0];
            w[o * in + i] = w0[o * in + i] + w0[o * in + i] * A + Bv;
        }
        glora_choice_t cd = c->t[GLORA_D], ce = c->t[GLORA_E], cc = c->t[GLORA_C];
        double d = cd.kind == GLORA_VECTOR ? D[o] : cd.kind == GLORA_SCALAR ? D[0] : 0;
        double e = ce.kind == GLORA_VECTOR ? E[o] : ce.kind == GLORA_SCALAR ? E[0] : 0;
        double pc = 0;
        for (int i = 0; i < in && cc.kind != GLORA_NONE; i++) {
            double ci = 0;
            if (cc.kind == GLORA_LORA)
                for (int k = 0; k < cc.rank; k++) ci += Cd[i * R + k] * Cu[k];
            else ci = Cd[i * R];
            pc += w0[o * in + i] * ci;
        }
        b[o] = b0[o] + b0[o] * d + e + pc;
    }
}

static void ref_linear(double *y, const double *x, const double *w, const double *b, int n, int in,
                       int out) {
    for (int t = 0; t < n; t++)
        for (int o = 0; o < out; o++) {
            double s = b ? b[o] : 0;
            for (int i = 0; i < in; i++) s += x[t * in + i] * w[o * in + i];
            y[t * out + o] = s;
        }
}

static void ref_layernorm(double *y, const double *x, const double *g, const double *b, int n, int C) {
    for (int t = 0; t < n; t++) {
        double mu = 0, var = 0;
        for (int c = 0; c < C; c++) mu += x[t * C + c];
        mu /= C;
        for (int c = 0; c < C; c++) var += (x[t * C + c] - mu) * (x[t * C + c] - mu);
        var /= C;
        double rs = 1.0 / sqrt(var + 1e-6);
        for (int c = 0; c < C; c++) y[t * C + c] = (x[t * C + c] - mu) * rs * g[c] + b[c];
    }
}

/* Mean cross-entropy (label smoothing s) of the model on B images. */
static double ref_loss(const ref_t *r, const glora_layer_cfg_t *cfg, const float *img,
                       const int *y, int B, double s) {
    const glora_vit_t *m = r->m;
    const glora_vit_arch_t *a = &m->arch;
    const int C = a->dim, T = a->tokens, NP = a->num_patches, H = a->mlp_hidden, NH = a->heads;
    const int Pp = a->patch, cin = a->in_chans, S = a->img_size, side = S / Pp, hd = C / NH;
    const int N = B * T, V = a->num_classes;
    double *x = calloc((size_t)N * C, sizeof *x), *h = calloc((size_t)N * C, sizeof *h);
    double *qkv = calloc((size_t)N * 3 * C, sizeof *qkv), *at = calloc((size_t)N * C, sizeof *at);
    double *f1 = calloc((size_t)N * H, sizeof *f1), *o = calloc((size_t)N * C, sizeof *o);
    double *w = calloc((size_t)4 * C * H + 3 * C * C, sizeof *w), *bb = calloc((size_t)3 * C + H, sizeof *bb);
    double loss = 0;
    /* patch embedding + tokens */
    const double *pw = P(r, m->w.patch_w), *pb = P(r, m->w.patch_b);
    const double *cls = P(r, m->w.cls), *pos = P(r, m->w.pos);
    for (int b = 0; b < B; b++) {
        for (int c = 0; c < C; c++) x[(b * T) * C + c] = cls[c] + pos[c];
        for (int pi = 0; pi < NP; pi++) {
            int py = pi / side, px = pi % side;
            for (int c = 0; c < C; c++) {
                double sum = pb[c];
                for (int ci = 0; ci < cin; ci++)
                    for (int ky = 0; ky < Pp; ky++)
                        for (int kx = 0; kx < Pp; kx++)
                            sum += pw[((c * cin + ci) * Pp + ky) * Pp + kx] *
                                   img[((size_t)(b * cin + ci) * S + py * Pp + ky) * S + px * Pp + kx];
                x[(b * T + 1 + pi) * C + c] = sum + pos[(1 + pi) * C + c];
            }
        }
    }
    for (int i = 0; i < a->depth; i++) {
        const glora_vit_block_t *bw = &m->w.blk[i];
        const glora_layer_cfg_t *c0 = cfg ? &cfg[4 * i] : NULL;
        ref_layernorm(h, x, P(r, bw->ln1_w), P(r, bw->ln1_b), N, C);
        ref_merge(r, 4 * i + 0, c0 ? c0 + 0 : NULL, w, bb);
        ref_linear(qkv, h, w, bb, N, C, 3 * C);
        for (int b = 0; b < B; b++)
            for (int hh = 0; hh < NH; hh++)
                for (int t = 0; t < T; t++) {
                    double sc[64], mx = -1e300, sum = 0;
                    for (int u = 0; u < T; u++) {
                        double d = 0;
                        for (int k = 0; k < hd; k++)
                            d += qkv[(b * T + t) * 3 * C + hh * hd + k] *
                                 qkv[(b * T + u) * 3 * C + C + hh * hd + k];
                        sc[u] = d / sqrt((double)hd);
                        if (sc[u] > mx) mx = sc[u];
                    }
                    for (int u = 0; u < T; u++) sum += (sc[u] = exp(sc[u] - mx));
                    for (int k = 0; k < hd; k++) {
                        double acc = 0;
                        for (int u = 0; u < T; u++)
                            acc += sc[u] / sum * qkv[(b * T + u) * 3 * C + 2 * C + hh * hd + k];
                        at[(b * T + t) * C + hh * hd + k] = acc;
                    }
                }
        ref_merge(r, 4 * i + 1, c0 ? c0 + 1 : NULL, w, bb);
        ref_linear(o, at, w, bb, N, C, C);
        for (int k = 0; k < N * C; k++) x[k] += o[k];
        ref_layernorm(h, x, P(r, bw->ln2_w), P(r, bw->ln2_b), N, C);
        ref_merge(r, 4 * i + 2, c0 ? c0 + 2 : NULL, w, bb);
        ref_linear(f1, h, w, bb, N, C, H);
        for (int k = 0; k < N * H; k++) f1[k] = 0.5 * f1[k] * (1 + erf(f1[k] / sqrt(2.0)));
        ref_merge(r, 4 * i + 3, c0 ? c0 + 3 : NULL, w, bb);
        ref_linear(o, f1, w, bb, N, H, C);
        for (int k = 0; k < N * C; k++) x[k] += o[k];
    }
    ref_layernorm(h, x, P(r, m->w.norm_w), P(r, m->w.norm_b), N, C);
    const double *hw = P(r, m->w.head_w), *hb = P(r, m->w.head_b);
    for (int b = 0; b < B; b++) {
        double z[64], mx = -1e300, sum = 0, zs = 0;
        ref_linear(z, h + (size_t)b * T * C, hw, hb, 1, C, V);
        for (int v = 0; v < V; v++) mx = z[v] > mx ? z[v] : mx;
        for (int v = 0; v < V; v++) sum += exp(z[v] - mx);
        double lse = mx + log(sum);
        for (int v = 0; v < V; v++) zs += lse - z[v];
        loss += (1 - s) * (lse - z[y[b]]) + s / V * zs;
    }
    free(x); free(h); free(qkv); free(at); free(f1); free(o); free(w); free(bb);
    return loss / B;
}

/* ---- helpers ----------------------------------------------------------- */

static glora_vit_arch_t tiny_arch(void) {
    glora_vit_arch_t a = {.img_size = 8, .in_chans = 2, .patch = 4, .dim = 8, .depth = 2,
                          .heads = 2, .mlp_hidden = 16, .num_classes = 3};
    assert_int_equal(glora_vit_arch_check(&a), 0);
    return a;
}

static void fill_random(glora_vit_t *m, glora_rng_t *rng, float scale) {
    for (size_t k = 0; k < m->n_floats; k++) m->mem[k] = (float)(glora_rng_normal(rng) * scale);
    /* LayerNorm gains near one, so the network stays well conditioned. */
    for (int i = 0; i < m->n_params; i++)
        if (strstr(m->params[i].name, "norm") && strstr(m->params[i].name, ".weight"))
            for (size_t k = 0; k < m->params[i].numel; k++) m->mem[m->params[i].offset + k] += 1.0f;
}

static glora_choice_t random_choice(glora_rng_t *rng, int t, int R) {
    for (;;) {
        glora_choice_t c = {(uint8_t)glora_rng_below(rng, 4), 0};
        if (c.kind == GLORA_LORA) c.rank = (uint8_t)(1 + glora_rng_below(rng, (uint64_t)R));
        if (glora_choice_valid(t, c)) return c;
    }
}

static void random_cfg(glora_rng_t *rng, glora_layer_cfg_t *cfg, int n, int R) {
    for (int l = 0; l < n; l++)
        for (int t = 0; t < GLORA_NTENSORS; t++) cfg[l].t[t] = random_choice(rng, t, R);
}

/* Runs the float forward + backward and compares every trainable gradient
 * with central differences of ref_loss; returns the worst error relative to
 * the tensor's largest gradient. */
static double grad_check(glora_vit_t *m, const unsigned char *mask, const glora_layer_cfg_t *cfg,
                         const float *x, const int *y, int B, float smoothing) {
    glora_grads_t *g;
    glora_vit_linears_t *lin;
    glora_vit_tape_t *acts;
    glora_vit_bwd_t *ws;
    assert_int_equal(glora_grads_create(&g, m, mask), 0);
    assert_int_equal(glora_vit_linears_create(&lin, m), 0);
    assert_int_equal(glora_vit_tape_create(&acts, m, (size_t)B), 0);
    assert_int_equal(glora_vit_bwd_create(&ws, m, (size_t)B), 0);
    for (int i = 0; i < m->n_params; i++) assert_true((g->g[i] != NULL) == (mask[i] != 0));

    glora_vit_train_linears_set(lin, m, cfg);
    glora_vit_train_forward(m, lin, cfg, acts, x, (size_t)B);
    const int V = m->arch.num_classes;
    float *losses = malloc((size_t)B * sizeof(float)), *probs = malloc((size_t)B * V * sizeof(float));
    float *dlogits = calloc((size_t)B * V, sizeof(float));
    glora_xent_forward(losses, probs, glora_vit_tape_logits(acts), y, (size_t)B, V, smoothing);
    glora_grads_zero(g);
    glora_xent_backward(dlogits, probs, y, (size_t)B, V, smoothing, 1.0f / (float)B);
    glora_vit_backward(m, lin, cfg, acts, dlogits, (size_t)B, g, ws);

    double *p = malloc(m->n_floats * sizeof(double));
    for (size_t k = 0; k < m->n_floats; k++) p[k] = m->mem[k];
    ref_t r = {m, p};
    double floss = 0;
    for (int b = 0; b < B; b++) floss += losses[b];
    floss /= B;
    double dloss = ref_loss(&r, cfg, x, y, B, smoothing);
    assert_true(fabs(floss - dloss) <= 1e-5 * (1 + fabs(dloss)));

    /* Which adapter elements cfg reads: zero_unused of a model of ones. */
    glora_vit_t *used = NULL;
    if (cfg && m->adapters) {
        assert_int_equal(glora_vit_create(&used, &m->arch, m->rank), 0);
        for (size_t k = 0; k < used->n_floats; k++) used->mem[k] = 1.0f;
        glora_train_zero_unused(used, cfg);
    }
    double worst = 0;
    const double h = 1e-6;
    for (int i = 0; i < m->n_params; i++) {
        if (!mask[i]) continue;
        const glora_param_t *q = &m->params[i];
        double *fd = malloc(q->numel * sizeof(double)), gmax = 0, emax = 0;
        for (size_t k = 0; k < q->numel; k++) {
            double *pk = &p[q->offset + k], save = *pk;
            *pk = save + h;
            double lp = ref_loss(&r, cfg, x, y, B, smoothing);
            *pk = save - h;
            double lm = ref_loss(&r, cfg, x, y, B, smoothing);
            *pk = save;
            fd[k] = (lp - lm) / (2 * h);
            if (fabs(fd[k]) > gmax) gmax = fabs(fd[k]);
        }
        for (size_t k = 0; k < q->numel; k++) {
            double e = fabs(g->g[i][k] - fd[k]);
            if (e > emax) emax = e;
            /* Elements a configuration never reads get exactly nothing. */
            if (used && used->mem[q->offset + k] == 0.0f && g->g[i][k] != 0.0f) {
                fprintf(stderr, "%s[%zu]: gradient %g where nothing depends on it\n", q->name, k,
                        g->g[i][k]);
                fail();
            }
        }
        double rel = emax / (gmax > 1e-2 ? gmax : 1e-2); /* gradients that vanish (LayerNorm invariances) */
        if (rel > 1e-4) fprintf(stderr, "%s: max |grad - fd| %.3g (max |fd| %.3g)\n", q->name, emax, gmax);
        if (rel > worst) worst = rel;
        free(fd);
    }
    free(p); free(losses); free(probs); free(dlogits);
    glora_vit_free(used);
    glora_grads_free(g);
    glora_vit_linears_free(lin);
    glora_vit_tape_free(acts);
    glora_vit_bwd_free(ws);
    return worst;
}

typedef struct {
    glora_vit_t *m;
    float *x;
    int y[4];
    int B;
    glora_rng_t rng;
} fixture_t;

static int setup(void **state) {
    fixture_t *f = calloc(1, sizeof *f);
    glora_vit_arch_t a = tiny_arch();
    glora_rng_seed(&f->rng, 7);
    if (glora_vit_create(&f->m, &a, 3)) return -1;
    fill_random(f->m, &f->rng, 0.3f);
    f->B = 3;
    size_t n = (size_t)f->B * a.in_chans * a.img_size * a.img_size;
    f->x = malloc(n * sizeof(float));
    for (size_t k = 0; k < n; k++) f->x[k] = (float)glora_rng_normal(&f->rng);
    for (int b = 0; b < f->B; b++) f->y[b] = (int)glora_rng_below(&f->rng, 3);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture_t *f = *state;
    glora_vit_free(f->m);
    free(f->x);
    free(f);
    return 0;
}

/* ---- tests ------------------------------------------------------------- */

static void test_backward_supernet_configs(void **state) {
    fixture_t *f = *state;
    glora_vit_t *m = f->m;
    unsigned char *mask = calloc((size_t)m->n_params, 1);
    assert_int_equal(glora_train_select(m, "adapter,head", mask), 0);
    glora_layer_cfg_t cfg[8];
    for (int trial = 0; trial < 4; trial++) {
        random_cfg(&f->rng, cfg, 8, m->rank);
        double worst = grad_check(m, mask, cfg, f->x, f->y, f->B, trial % 2 ? 0.1f : 0.0f);
        printf("supernet config %d: worst relative gradient error %.3g\n", trial, worst);
        assert_true(worst < 1e-4);
    }
    free(mask);
}

static void test_backward_full(void **state) {
    fixture_t *f = *state;
    glora_vit_t *m = f->m;
    unsigned char *mask = calloc((size_t)m->n_params, 1);
    assert_int_equal(glora_train_select(m, "backbone,head", mask), 0);
    double worst = grad_check(m, mask, NULL, f->x, f->y, f->B, 0.1f);
    printf("full fine-tuning: worst relative gradient error %.3g\n", worst);
    assert_true(worst < 1e-4);
    free(mask);
}

static void test_backward_partial(void **state) {
    fixture_t *f = *state;
    glora_vit_t *m = f->m;
    unsigned char *mask = calloc((size_t)m->n_params, 1);
    glora_layer_cfg_t cfg[8];
    random_cfg(&f->rng, cfg, 8, m->rank);
    /* Head only (linear probe): the backward stops at the head. */
    assert_int_equal(glora_train_select(m, "head", mask), 0);
    assert_true(grad_check(m, mask, cfg, f->x, f->y, f->B, 0.0f) < 1e-4);
    /* Something in the top block only, and a norm deep down. */
    assert_int_equal(glora_train_select(m, "blocks.1.norm1.*,blocks.1.mlp.fc1.?d,blocks.1.mlp.fc1.?u,"
                                           "blocks.1.mlp.fc1.D,norm.bias", mask), 0);
    assert_true(grad_check(m, mask, cfg, f->x, f->y, f->B, 0.0f) < 1e-4);
    assert_int_equal(glora_train_select(m, "patch_embed.*,cls_token,pos_embed,blocks.0.attn.qkv.[BC]?", mask), 0);
    assert_true(grad_check(m, mask, cfg, f->x, f->y, f->B, 0.0f) < 1e-4);
    free(mask);
}

static void test_select_errors(void **state) {
    fixture_t *f = *state;
    glora_vit_t *m = f->m;
    unsigned char *mask = calloc((size_t)m->n_params, 1);
    assert_int_equal(glora_train_select(m, "blocks.9.*", mask), GLORA_EINVAL);
    assert_non_null(strstr(glora_errmsg(), "blocks.9.*"));
    glora_grads_t *g = NULL;
    /* A weight together with its own adapter. */
    assert_int_equal(glora_train_select(m, "blocks.0.mlp.fc2.*", mask), 0);
    assert_int_equal(glora_grads_create(&g, m, mask), GLORA_EINVAL);
    assert_null(g);
    /* Half a factor pair. */
    assert_int_equal(glora_train_select(m, "blocks.0.mlp.fc2.Ad", mask), 0);
    assert_int_equal(glora_grads_create(&g, m, mask), GLORA_EINVAL);
    /* Frozen tensors get no buffer: the allocation is exactly the trainable size. */
    assert_int_equal(glora_train_select(m, "head", mask), 0);
    assert_int_equal(glora_grads_create(&g, m, mask), 0);
    assert_int_equal(g->n_floats, (size_t)(3 * 8 + 3));
    glora_grads_free(g);
    free(mask);
}

static void test_adamw_formula(void **state) {
    (void)state;
    glora_vit_arch_t a = tiny_arch();
    glora_vit_t *m;
    assert_int_equal(glora_vit_create(&m, &a, 0), 0);
    unsigned char *mask = calloc((size_t)m->n_params, 1);
    assert_int_equal(glora_train_select(m, "head", mask), 0);
    glora_grads_t *g;
    glora_adamw_t *opt;
    assert_int_equal(glora_grads_create(&g, m, mask), 0);
    assert_int_equal(glora_adamw_create(&opt, g), 0);
    glora_rng_t rng;
    glora_rng_seed(&rng, 3);
    const size_t n = g->n_floats;
    double *p = malloc(n * sizeof *p), *mm = calloc(n, sizeof *mm), *vv = calloc(n, sizeof *vv);
    float *head = m->w.head_w; /* head.weight then head.bias, contiguous in both layouts */
    for (size_t k = 0; k < n; k++) p[k] = head[k] = (float)glora_rng_normal(&rng);
    /* The same update in float, one operation at a time: the library (its
     * AVX-512 loop, a masked tail here, or the scalar one with GLORA_NN=plain)
     * must give exactly these bits. */
    float *pf = malloc(n * sizeof *pf), *mf = calloc(n, sizeof *mf), *vf = calloc(n, sizeof *vf);
    for (size_t k = 0; k < n; k++) pf[k] = head[k];
    glora_adamw_cfg_t c = {0.9, 0.999, 1e-8, 0.05};
    for (int t = 1; t <= 5; t++) {
        double lr = 1e-2 / t;
        for (size_t k = 0; k < n; k++) g->mem[k] = (float)glora_rng_normal(&rng) * (k % 5 == 0 ? 0.0f : 1.0f);
        glora_adamw_step(opt, m, g, &c, lr);
        const float b1 = (float)c.beta1, b2 = (float)c.beta2, eps = (float)c.eps;
        const float decay = (float)(1.0 - lr * c.weight_decay), step = (float)(lr / (1.0 - pow(c.beta1, t)));
        const float isb = (float)(1.0 / sqrt(1.0 - pow(c.beta2, t)));
        for (size_t k = 0; k < n; k++) {
            const float gk = g->mem[k];
            mf[k] = b1 * mf[k] + (1.0f - b1) * gk;
            vf[k] = b2 * vf[k] + (1.0f - b2) * gk * gk;
            const float denom = sqrtf(vf[k]) * isb + eps;
            pf[k] = pf[k] * decay - step * mf[k] / denom;
        }
        assert_memory_equal(head, pf, n * sizeof *pf);
        assert_memory_equal(opt->m, mf, n * sizeof *mf);
        assert_memory_equal(opt->v, vf, n * sizeof *vf);
        for (size_t k = 0; k < n; k++) {
            p[k] *= 1 - lr * c.weight_decay;
            mm[k] = c.beta1 * mm[k] + (1 - c.beta1) * g->mem[k];
            vv[k] = c.beta2 * vv[k] + (1 - c.beta2) * (double)g->mem[k] * g->mem[k];
            p[k] -= lr * (mm[k] / (1 - pow(c.beta1, t))) / (sqrt(vv[k] / (1 - pow(c.beta2, t))) + c.eps);
            assert_true(fabs(head[k] - p[k]) <= 1e-5 * (1 + fabs(p[k])));
        }
    }
    assert_int_equal(opt->t, 5);
    free(pf); free(mf); free(vf);
    free(p); free(mm); free(vv); free(mask);
    glora_adamw_free(opt);
    glora_grads_free(g);
    glora_vit_free(m);
}

static void test_schedule(void **state) {
    (void)state;
    /* The official recipe: 500 epochs, 10 warm-up from 1e-6, floor 1e-5. */
    assert_int_equal(glora_sched_default_warmup(500), 10);
    assert_int_equal(glora_sched_default_warmup(100), 2);
    assert_int_equal(glora_sched_default_warmup(200), 4);
    assert_int_equal(glora_sched_default_warmup(6), 0);
    assert_int_equal(glora_sched_default_warmup(25), 1); /* 0.5 rounds up */
    glora_sched_t s = {.lr = 1e-3, .warmup_start = 1e-6, .floor = 1e-5, .epochs = 100, .warmup = 2};
    assert_true(fabs(glora_sched_lr(&s, 0) - 1e-6) < 1e-15);
    assert_true(fabs(glora_sched_lr(&s, 1) - (1e-6 + (1e-3 - 1e-6) / 2)) < 1e-15);
    double e2 = 1e-5 + 0.5 * (1e-3 - 1e-5) * (1 + cos(M_PI * 2 / 100));
    assert_true(fabs(glora_sched_lr(&s, 2) - e2) < 1e-15);
    assert_true(fabs(glora_sched_lr(&s, 50) - (1e-5 + 0.5 * (1e-3 - 1e-5))) < 1e-15);
    for (int e = 3; e < 100; e++) assert_true(glora_sched_lr(&s, e) < glora_sched_lr(&s, e - 1));
    assert_true(glora_sched_lr(&s, 99) > 1e-5);
    s.warmup = 0;
    assert_true(fabs(glora_sched_lr(&s, 0) - 1e-3) < 1e-15);
}

static void test_clip(void **state) {
    (void)state;
    glora_vit_arch_t a = tiny_arch();
    glora_vit_t *m;
    assert_int_equal(glora_vit_create(&m, &a, 0), 0);
    unsigned char *mask = calloc((size_t)m->n_params, 1);
    assert_int_equal(glora_train_select(m, "norm.*,head.*", mask), 0);
    glora_grads_t *g;
    assert_int_equal(glora_grads_create(&g, m, mask), 0);
    for (size_t k = 0; k < g->n_floats; k++) g->mem[k] = (k % 2) ? 3.0f : -4.0f;
    double want = 0;
    for (size_t k = 0; k < g->n_floats; k++) want += (k % 2) ? 9.0 : 16.0;
    double norm = glora_grads_clip(g, 0.0);
    assert_true(fabs(norm - sqrt(want)) < 1e-9 * norm);
    glora_grads_clip(g, 1.0);
    assert_true(fabs(sqrt(glora_grads_sumsq(g)) - 1.0) < 1e-5);
    glora_grads_free(g);
    glora_vit_free(m);
    free(mask);
}

static void test_zero_unused_and_mask(void **state) {
    fixture_t *f = *state;
    glora_vit_arch_t a = tiny_arch();
    glora_vit_t *m;
    assert_int_equal(glora_vit_create(&m, &a, 3), 0);
    memcpy(m->mem, f->m->mem, m->n_floats * sizeof(float));
    glora_layer_cfg_t cfg[8];
    random_cfg(&f->rng, cfg, 8, 3);
    cfg[0].t[GLORA_A] = (glora_choice_t){GLORA_LORA, 2};
    cfg[0].t[GLORA_B] = (glora_choice_t){GLORA_VECTOR, 0};
    cfg[0].t[GLORA_C] = (glora_choice_t){GLORA_NONE, 0};
    cfg[0].t[GLORA_D] = (glora_choice_t){GLORA_SCALAR, 0};
    glora_train_zero_unused(m, cfg);
    /* The merged layers are unchanged by zeroing what they don't read. */
    glora_vit_linears_t *l1, *l2;
    assert_int_equal(glora_vit_linears_create(&l1, m), 0);
    assert_int_equal(glora_vit_linears_create(&l2, f->m), 0);
    glora_vit_linears_set(l1, m, cfg);
    glora_vit_linears_set(l2, f->m, cfg);
    for (int l = 0; l < 8; l++) {
        const float *w0, *b0;
        int o, i;
        glora_vit_layer(m, l, &w0, &b0, &o, &i);
        for (int k = 0; k < o * i; k++) assert_true(l1->w[l][k] == l2->w[l][k]);
        for (int k = 0; k < o; k++) assert_true(l1->b[l][k] == l2->b[l][k]);
    }
    const glora_adapter_t *ad = &m->adapters[0];
    assert_true(ad->Ad[2] == 0.0f && ad->Ad[1] != 0.0f && ad->Au[2 * ad->in] == 0.0f);
    assert_true(ad->Bd[1] == 0.0f && ad->Bd[0] != 0.0f && ad->Bu[0] == 0.0f);
    assert_true(ad->Cd[0] == 0.0f && ad->Cu[0] == 0.0f && ad->D[1] == 0.0f && ad->D[0] != 0.0f);
    unsigned char *mask = calloc((size_t)m->n_params, 1);
    glora_train_mask_subnet(m, cfg, mask);
    assert_int_equal(mask[glora_vit_param(m, "blocks.0.attn.qkv.Ad") - m->params], 1);
    assert_int_equal(mask[glora_vit_param(m, "blocks.0.attn.qkv.Cd") - m->params], 0);
    assert_int_equal(mask[glora_vit_param(m, "blocks.0.attn.qkv.D") - m->params], 1);
    assert_int_equal(mask[glora_vit_param(m, "head.weight") - m->params], 0);
    free(mask);
    glora_vit_linears_free(l1);
    glora_vit_linears_free(l2);
    glora_vit_free(m);
}


/* ---- the loop ------------------------------------------------------------ */

/* Two classes a small ViT separates: bright top half vs bright bottom half. */
static void toy_data(glora_rng_t *rng, float *x, int *y, size_t n, int side) {
    for (size_t i = 0; i < n; i++) {
        y[i] = (int)(i % 2);
        for (int r = 0; r < side; r++)
            for (int c = 0; c < side; c++)
                x[(i * side + r) * side + c] = (float)(0.3 * glora_rng_normal(rng)) +
                                              ((r < side / 2) == (y[i] == 0) ? 1.0f : -1.0f);
    }
}

static glora_vit_t *toy_model(int rank) {
    glora_vit_arch_t a = {.img_size = 8, .in_chans = 1, .patch = 4, .dim = 16, .depth = 2,
                          .heads = 2, .mlp_hidden = 32, .num_classes = 2};
    glora_vit_t *m;
    assert_int_equal(glora_vit_create(&m, &a, rank), 0);
    glora_rng_t rng;
    glora_rng_seed(&rng, 11);
    glora_train_init_vit(m, &rng);
    glora_train_init_adapters(m, &rng);
    return m;
}

static void print_epoch(const glora_train_progress_t *p, void *ctx) {
    (void)ctx;
    if (getenv("GLORA_TEST_VERBOSE"))
        printf("  epoch %d: lr %.3g loss %.4f acc %.3f val %.3f |g| %.3g\n", p->epoch + 1, p->lr,
               p->loss, p->accuracy, p->val_accuracy, p->grad_norm);
}

static glora_train_opts_t toy_opts(void) {
    glora_train_opts_t o = {0};
    o.epochs = 15;
    o.batch = 8;
    o.sched = (glora_sched_t){.lr = 1e-2, .warmup_start = 1e-6, .floor = 1e-5, .warmup = 1};
    o.adamw = (glora_adamw_cfg_t){0.9, 0.999, 1e-8, 1e-4};
    o.label_smoothing = 0.1f;
    o.seed = 42;
    o.on_epoch = print_epoch;
    return o;
}

static void test_loop_learns_and_resumes(void **state) {
    (void)state;
    enum { N = 68 }; /* 8 full batches and a dropped partial one */
    float *x = malloc((size_t)N * 64 * sizeof(float));
    int y[N];
    glora_rng_t rng;
    glora_rng_seed(&rng, 5);
    toy_data(&rng, x, y, N, 8);
    glora_dataset_t train = {.n = N, .c = 1, .h = 8, .w = 8, .x = x, .y = y, .num_classes = 2};
    glora_dataset_t val = train;
    val.n = 20;

    /* From scratch, everything trains. */
    glora_vit_t *m = toy_model(0);
    unsigned char *mask = calloc((size_t)m->n_params, 1);
    assert_int_equal(glora_train_select(m, "all", mask), 0);
    glora_train_opts_t o = toy_opts();
    glora_train_result_t res;
    assert_int_equal(glora_train_run(m, mask, &o, &train, &val, &res), 0);
    printf("toy pretraining: loss %.4f, accuracy %.3f, val %.3f\n", res.loss, res.accuracy,
           res.val_accuracy);
    assert_int_equal(res.epochs_run, 15);
    assert_true(res.accuracy > 0.95 && res.has_val && res.val_accuracy > 0.95);

    /* Supernet training on top: uninterrupted vs stopped after 2 epochs and
     * resumed, and vs another number of threads: the same bits. */
    glora_vit_t *ref = toy_model(2), *run = toy_model(2);
    for (int i = 0; i < m->n_params; i++) { /* the trained backbone and head, by name */
        const glora_param_t *q = glora_vit_param(ref, m->params[i].name);
        assert_non_null(q);
        memcpy(ref->mem + q->offset, m->mem + m->params[i].offset, q->numel * sizeof(float));
    }
    memcpy(run->mem, ref->mem, ref->n_floats * sizeof(float));
    glora_vit_t *run1 = toy_model(2);
    memcpy(run1->mem, ref->mem, ref->n_floats * sizeof(float));
    unsigned char *smask = calloc((size_t)ref->n_params, 1);
    assert_int_equal(glora_train_select(ref, "adapter,head", smask), 0);
    glora_space_t space;
    glora_space_official(&space, 2);
    char dir[] = "/tmp/glora-test-train-XXXXXX", ck[64], ck1[64];
    assert_non_null(mkdtemp(dir));
    snprintf(ck, sizeof ck, "%s/ck.safetensors", dir);
    snprintf(ck1, sizeof ck1, "%s/ck1.safetensors", dir);
    o = toy_opts();
    o.epochs = 4;
    o.space = &space;
    o.clip_norm = 1.0;
    o.run_hash = "toy";
    assert_int_equal(glora_train_run(ref, smask, &o, &train, &val, &res), 0);
    o.checkpoint = ck;
    o.resume = 1;
    o.stop_after = 2;
    assert_int_equal(glora_train_run(run, smask, &o, &train, &val, &res), 0);
    assert_int_equal(res.epochs_run, 2);
    assert_memory_not_equal(run->mem, ref->mem, ref->n_floats * sizeof(float));
    /* A fresh process: the model as loaded, then resumed. */
    glora_vit_free(run);
    run = toy_model(2);
    memcpy(run->mem, run1->mem, ref->n_floats * sizeof(float));
    o.stop_after = 0;
    assert_int_equal(glora_train_run(run, smask, &o, &train, &val, &res), 0);
    assert_int_equal(res.start_epoch, 2);
    assert_int_equal(res.epochs_run, 2);
    assert_memory_equal(run->mem, ref->mem, ref->n_floats * sizeof(float));
    /* One thread instead of the default. */
    int threads = glora_max_threads();
    glora_set_threads(1);
    o.checkpoint = ck1;
    assert_int_equal(glora_train_run(run1, smask, &o, &train, &val, &res), 0);
    glora_set_threads(threads);
    assert_memory_equal(run1->mem, ref->mem, ref->n_floats * sizeof(float));
    /* Resuming with other settings is refused. */
    o.run_hash = "other";
    assert_int_equal(glora_train_run(run1, smask, &o, &train, &val, &res), GLORA_ESTATE);
    /* Validating every third epoch (and after the last) trains the same
     * weights and ends on the same validation accuracy. */
    glora_train_result_t every;
    o = toy_opts();
    o.epochs = 4;
    o.space = &space;
    o.clip_norm = 1.0;
    memcpy(run1->mem, run->mem, ref->n_floats * sizeof(float)); /* any start will do */
    memcpy(ref->mem, run->mem, ref->n_floats * sizeof(float));
    assert_int_equal(glora_train_run(ref, smask, &o, &train, &val, &every), 0);
    o.val_every = 3;
    assert_int_equal(glora_train_run(run1, smask, &o, &train, &val, &res), 0);
    assert_memory_equal(run1->mem, ref->mem, ref->n_floats * sizeof(float));
    assert_true(res.has_val && res.val_accuracy == every.val_accuracy);
    unlink(ck);
    unlink(ck1);
    rmdir(dir);
    free(smask); free(mask); free(x);
    glora_vit_free(m); glora_vit_free(ref); glora_vit_free(run); glora_vit_free(run1);
}

/* One training step (forward, loss, backward) in bf16 against fp32, under
 * supernet configurations. A bf16 operand is its fp32 value within a
 * relative 2^-9 (8 significant bits, round to nearest), so a product of two
 * is within about 2^-8 of the exact one, relative to the sum of |terms|;
 * the products accumulate in fp32 (error ~2^-24, negligible). The tiny
 * model's forward runs 9 such products one after another (the patch
 * embedding and 4 linears per block, 2 blocks) and its backward about as
 * many input-gradient products (and, in a layer whose A is a LoRA, the
 * dW' = G^T X its GLoRA gradients come from), and to first order their
 * relative errors add: the loss within 9 * 2^-8 and the gradients (as one vector, L2)
 * within 18 * 2^-8 of fp32's. Rounding errors of random sign mostly cancel,
 * so the bounds are loose; the differences must not be zero either (the
 * bf16 path really ran). And a bf16 run is the same bits on any number of
 * threads. */
static void step_grads(glora_vit_t *m, const unsigned char *mask, const glora_layer_cfg_t *cfg,
                       const float *x, const int *y, int B, glora_precision_t prec, double *loss,
                       float *grad_out) {
    glora_grads_t *g;
    glora_vit_linears_t *lin;
    glora_vit_tape_t *t;
    glora_vit_bwd_t *ws;
    assert_int_equal(glora_grads_create(&g, m, mask), 0);
    assert_int_equal(glora_vit_linears_create(&lin, m), 0);
    lin->precision = prec;
    assert_int_equal(glora_vit_tape_create(&t, m, (size_t)B), 0);
    assert_int_equal(glora_vit_bwd_create(&ws, m, (size_t)B), 0);
    glora_vit_train_linears_set(lin, m, cfg);
    glora_vit_train_forward(m, lin, cfg, t, x, (size_t)B);
    const int V = m->arch.num_classes;
    float *losses = malloc((size_t)B * sizeof(float)), *probs = malloc((size_t)B * V * sizeof(float));
    float *dlogits = calloc((size_t)B * V, sizeof(float));
    glora_xent_forward(losses, probs, glora_vit_tape_logits(t), y, (size_t)B, V, 0.0f);
    glora_grads_zero(g);
    glora_xent_backward(dlogits, probs, y, (size_t)B, V, 0.0f, 1.0f / (float)B);
    glora_vit_backward(m, lin, cfg, t, dlogits, (size_t)B, g, ws);
    *loss = 0;
    for (int b = 0; b < B; b++) *loss += losses[b] / B;
    memcpy(grad_out, g->mem, g->n_floats * sizeof(float));
    free(losses); free(probs); free(dlogits);
    glora_grads_free(g);
    glora_vit_linears_free(lin);
    glora_vit_tape_free(t);
    glora_vit_bwd_free(ws);
}

/* The mask of the parameters `which` selects (glora_train_select), and in
 * *n the floats of their gradients. */
static unsigned char *trained_mask(const glora_vit_t *m, const char *which, size_t *n) {
    unsigned char *mask = calloc((size_t)m->n_params, 1);
    assert_non_null(mask);
    assert_int_equal(glora_train_select(m, which, mask), 0);
    glora_grads_t *probe;
    assert_int_equal(glora_grads_create(&probe, m, mask), 0);
    *n = probe->n_floats;
    glora_grads_free(probe);
    return mask;
}

static void test_bf16_step_close(void **state) {
    fixture_t *f = *state;
    glora_vit_t *m = f->m;
    size_t n;
    unsigned char *mask = trained_mask(m, "adapter,head", &n);
    float *g32 = malloc(n * sizeof(float)), *g16 = malloc(n * sizeof(float));
    glora_layer_cfg_t cfg[8];
    double worst_loss = 0, worst_grad = 0;
    for (int trial = 0; trial < 6; trial++) {
        random_cfg(&f->rng, cfg, 8, m->rank);
        double l32, l16, d2 = 0, n2 = 0;
        step_grads(m, mask, cfg, f->x, f->y, f->B, GLORA_FP32, &l32, g32);
        step_grads(m, mask, cfg, f->x, f->y, f->B, GLORA_BF16, &l16, g16);
        for (size_t k = 0; k < n; k++) {
            d2 += ((double)g16[k] - g32[k]) * ((double)g16[k] - g32[k]);
            n2 += (double)g32[k] * g32[k];
        }
        const double el = fabs(l16 - l32) / fabs(l32), eg = sqrt(d2 / n2);
        printf("bf16 step %d: loss %.6f vs fp32 %.6f (rel %.2g), gradients rel L2 %.2g\n", trial, l16,
               l32, el, eg);
        assert_true(el <= 9 * 0x1p-8 && eg <= 18 * 0x1p-8);
        assert_true(eg > 0);
        if (el > worst_loss) worst_loss = el;
        if (eg > worst_grad) worst_grad = eg;
    }
    printf("bf16 step: worst loss rel %.2g (bound %.2g), gradients %.2g (bound %.2g)\n", worst_loss,
           9 * 0x1p-8, worst_grad, 18 * 0x1p-8);
    free(g32); free(g16); free(mask);
}

/* The tape's keep levels (vit_backward.c: 0 recomputes the block's
 * activations in backward, 1 keeps attention's, 2 every one) give the same
 * loss and gradients, bit for bit, in fp32 and bf16, over random supernet
 * configurations: a kept activation is the recomputed one. */
static void test_keep_levels_same_bits(void **state) {
    fixture_t *f = *state;
    glora_vit_t *m = f->m;
    size_t n;
    unsigned char *mask = trained_mask(m, "adapter,head,blocks.*.norm*", &n);
    float *g[3];
    for (int lv = 0; lv < 3; lv++) g[lv] = malloc(n * sizeof(float));
    glora_layer_cfg_t cfg[8];
    const char *old = getenv("GLORA_TRAIN_KEEP");
    for (int trial = 0; trial < 4; trial++) {
        random_cfg(&f->rng, cfg, 8, m->rank);
        const glora_precision_t prec = trial % 2 ? GLORA_BF16 : GLORA_FP32;
        double loss[3];
        for (int lv = 0; lv < 3; lv++) {
            char v[2] = {(char)('0' + lv), 0};
            setenv("GLORA_TRAIN_KEEP", v, 1);
            step_grads(m, mask, cfg, f->x, f->y, f->B, prec, &loss[lv], g[lv]);
        }
        for (int lv = 1; lv < 3; lv++) {
            assert_memory_equal(&loss[lv], &loss[0], sizeof(double));
            assert_memory_equal(g[lv], g[0], n * sizeof(float));
        }
        size_t nz = 0;
        for (size_t k = 0; k < n; k++) nz += g[0][k] != 0.0f;
        assert_true(nz > n / 4); /* the gradients are there to compare */
    }
    if (old) setenv("GLORA_TRAIN_KEEP", old, 1); else unsetenv("GLORA_TRAIN_KEEP");
    for (int lv = 0; lv < 3; lv++) free(g[lv]);
    free(mask);
}

/* The AVX-512 column sums of the row form's backward (rows_avx512.c) are
 * the plain loops' bits: per column, from zero, rows in order, each
 * product rounded before its add; onto sums that already hold values,
 * with any of the three left out, at widths around the vector and block
 * sizes and a column block off the row start. */
static void test_col_dots_bits(void **state) {
    (void)state;
    if (!nn_use_avx512()) {
        printf("col_dots: no AVX-512 here, nothing to compare\n");
        return;
    }
    glora_rng_t rng;
    glora_rng_seed(&rng, 21);
    const size_t Ns[] = {1, 17, 100}, njs[] = {1, 15, 16, 17, 63, 64, 65, 200, 256};
    for (size_t a = 0; a < sizeof Ns / sizeof Ns[0]; a++)
        for (size_t b = 0; b < sizeof njs / sizeof njs[0]; b++)
            for (int which = 1; which < 8; which++) {
                const size_t N = Ns[a], nj = njs[b], j0 = 5, ld = j0 + nj + 3;
                float *g = malloc(N * ld * sizeof(float)), *y = malloc(N * ld * sizeof(float));
                float *sv = malloc(N * sizeof(float)), out[2][3][300];
                for (size_t k = 0; k < N * ld; k++) {
                    g[k] = (float)glora_rng_normal(&rng);
                    y[k] = (float)glora_rng_normal(&rng) * 1e3f;
                }
                for (size_t n = 0; n < N; n++) sv[n] = (float)glora_rng_normal(&rng);
                for (size_t j = 0; j < 300; j++)
                    out[0][0][j] = out[0][1][j] = out[0][2][j] = (float)glora_rng_normal(&rng);
                memcpy(out[1], out[0], sizeof out[0]);
                float *ga = which & 1 ? out[0][0] : NULL, *gb = which & 2 ? out[0][1] : NULL,
                      *gc = which & 4 ? out[0][2] : NULL;
                for (size_t j = j0; j < j0 + nj; j++) {
                    float sa = 0, sb = 0, sc = 0;
                    for (size_t n = 0; n < N; n++) {
                        const float gv = g[n * ld + j];
                        float pa = gv * y[n * ld + j], pb = gv * sv[n];
                        sa += pa;
                        sb += pb;
                        sc += gv;
                    }
                    if (ga) ga[j] += sa;
                    if (gb) gb[j] += sb;
                    if (gc) gc[j] += sc;
                }
                nn_col_dots_avx512(which & 1 ? out[1][0] : NULL, y, which & 2 ? out[1][1] : NULL, sv,
                                   which & 4 ? out[1][2] : NULL, g, N, ld, j0, nj);
                assert_memory_equal(out[0], out[1], sizeof out[0]);
                free(g); free(y); free(sv);
            }
}

static void test_bf16_run_threads(void **state) {
    (void)state;
    enum { N = 32 };
    float *x = malloc((size_t)N * 64 * sizeof(float));
    int y[N];
    glora_rng_t rng;
    glora_rng_seed(&rng, 9);
    toy_data(&rng, x, y, N, 8);
    glora_dataset_t train = {.n = N, .c = 1, .h = 8, .w = 8, .x = x, .y = y, .num_classes = 2};
    glora_vit_t *a = toy_model(2), *b = toy_model(2), *c = toy_model(2);
    unsigned char *mask = calloc((size_t)a->n_params, 1);
    assert_int_equal(glora_train_select(a, "adapter,head", mask), 0);
    glora_space_t space;
    glora_space_official(&space, 2);
    glora_train_opts_t o = toy_opts();
    o.epochs = 2;
    o.space = &space;
    o.shards = 3;
    o.precision = GLORA_BF16;
    glora_train_result_t r16, r32;
    assert_int_equal(glora_train_run(a, mask, &o, &train, &train, &r16), 0);
    assert_int_equal(a->precision, GLORA_FP32); /* the model's setting is given back */
    int threads = glora_max_threads();
    glora_set_threads(1);
    assert_int_equal(glora_train_run(b, mask, &o, &train, &train, NULL), 0);
    glora_set_threads(threads);
    assert_memory_equal(a->mem, b->mem, a->n_floats * sizeof(float));
    /* fp32 trains other bits, to a similar loss */
    o.precision = GLORA_FP32;
    assert_int_equal(glora_train_run(c, mask, &o, &train, &train, &r32), 0);
    assert_memory_not_equal(a->mem, c->mem, a->n_floats * sizeof(float));
    printf("toy supernet, 2 epochs: loss bf16 %.4f, fp32 %.4f\n", r16.loss, r32.loss);
    assert_true(fabs(r16.loss - r32.loss) <= 0.05 * r32.loss);
    free(mask); free(x);
    glora_vit_free(a); glora_vit_free(b); glora_vit_free(c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backward_supernet_configs),
        cmocka_unit_test(test_backward_full),
        cmocka_unit_test(test_backward_partial),
        cmocka_unit_test(test_select_errors),
        cmocka_unit_test(test_zero_unused_and_mask),
        cmocka_unit_test(test_adamw_formula),
        cmocka_unit_test(test_schedule),
        cmocka_unit_test(test_clip),
        cmocka_unit_test(test_loop_learns_and_resumes),
        cmocka_unit_test(test_bf16_step_close),
        cmocka_unit_test(test_bf16_run_threads),
        cmocka_unit_test(test_keep_levels_same_bits),
        cmocka_unit_test(test_col_dots_bits),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
