/* The ViT: parameter layout, merged linears, activations and the forward
 * pass (see glora/model.h). */
#include "glora/model.h"
#include "glora/common.h"
#include "glora/nn.h"
#include "util/bigmem.h"
#include "util/parallel.h"

#include <math.h>
#include <stdint.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LN_EPS 1e-6f

static const char *const site_names[GLORA_SITES] = {"attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2"};

int glora_vit_arch_check(glora_vit_arch_t *a) {
    if (a->img_size <= 0 || a->in_chans <= 0 || a->patch <= 0 || a->dim <= 0 ||
        a->depth <= 0 || a->heads <= 0 || a->mlp_hidden <= 0 || a->num_classes < 0)
        return glora_error(GLORA_EINVAL, "architecture 'vit': every size must be positive");
    /* num_classes 0: a backbone without a head (timm's orig_in21k); its
     * forward pass stops at the final norm's cls rows. */
    if (a->img_size % a->patch != 0)
        return glora_error(GLORA_EINVAL, "architecture 'vit': patch %d does not divide image size %d",
                           a->patch, a->img_size);
    if (a->dim % a->heads != 0)
        return glora_error(GLORA_EINVAL, "architecture 'vit': %d heads do not divide dim %d",
                           a->heads, a->dim);
    /* Keep every tensor far below the range where int sizes could overflow. */
    if (a->img_size > 4096 || a->in_chans > 64 || a->dim > 16384 || a->depth > 256 ||
        a->mlp_hidden > 65536 || a->num_classes > 1000000 || a->heads > 1024)
        return glora_error(GLORA_EINVAL, "architecture 'vit': sizes out of the supported range");
    int side = a->img_size / a->patch;
    a->num_patches = side * side;
    a->tokens = a->num_patches + 1;
    return GLORA_OK;
}

int glora_vit_layers(const glora_vit_t *m) { return GLORA_SITES * m->arch.depth; }

void glora_vit_layer_name(int l, char buf[48]) {
    snprintf(buf, 48, "blocks.%d.%s", l / GLORA_SITES, site_names[l % GLORA_SITES]);
}

int glora_vit_layer_index(const glora_vit_t *m, const char *name) {
    int blk, used = 0;
    if (sscanf(name, "blocks.%d.%n", &blk, &used) != 1 || used == 0) return -1;
    if (blk < 0 || blk >= m->arch.depth) return -1;
    for (int s = 0; s < GLORA_SITES; s++)
        if (strcmp(name + used, site_names[s]) == 0) return blk * GLORA_SITES + s;
    return -1;
}

void glora_arch_layer_shape(const glora_vit_arch_t *a, int l, int *out, int *in) {
    const int C = a->dim, H = a->mlp_hidden;
    switch (l % GLORA_SITES) {
    case GLORA_SITE_QKV: *out = 3 * C; *in = C; break;
    case GLORA_SITE_PROJ: *out = C; *in = C; break;
    case GLORA_SITE_FC1: *out = H; *in = C; break;
    default: *out = C; *in = H; break;
    }
}

void glora_vit_layer(const glora_vit_t *m, int l, const float **w0, const float **b0,
                     int *out, int *in) {
    const glora_vit_block_t *b = &m->w.blk[l / GLORA_SITES];
    glora_arch_layer_shape(&m->arch, l, out, in);
    switch (l % GLORA_SITES) {
    case GLORA_SITE_QKV: *w0 = b->qkv_w; *b0 = b->qkv_b; break;
    case GLORA_SITE_PROJ: *w0 = b->proj_w; *b0 = b->proj_b; break;
    case GLORA_SITE_FC1: *w0 = b->fc1_w; *b0 = b->fc1_b; break;
    default: *w0 = b->fc2_w; *b0 = b->fc2_b; break;
    }
}

size_t glora_arch_config_params(const glora_vit_arch_t *a, const glora_layer_cfg_t *cfg) {
    size_t n = 0;
    for (int l = 0; l < GLORA_SITES * a->depth; l++) {
        int out, in;
        glora_arch_layer_shape(a, l, &out, &in);
        n += glora_layer_params(&cfg[l], out, in);
    }
    return n;
}

size_t glora_vit_config_params(const glora_vit_t *m, const glora_layer_cfg_t *cfg) {
    return glora_arch_config_params(&m->arch, cfg);
}

/* Builds the named parameter table in the canonical order. */
typedef struct {
    glora_param_t *p;
    int n, cap;
    size_t off;
} table_t;

static int add_param(table_t *t, int role, int ndim, const int64_t *shape, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int add_param(table_t *t, int role, int ndim, const int64_t *shape, const char *fmt, ...) {
    if (t->n == t->cap) {
        int cap = t->cap ? 2 * t->cap : 64;
        glora_param_t *p = realloc(t->p, (size_t)cap * sizeof *p);
        if (!p) return glora_error(GLORA_ENOMEM, "model 'vit': out of memory");
        t->p = p;
        t->cap = cap;
    }
    glora_param_t *q = &t->p[t->n++];
    memset(q, 0, sizeof *q);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(q->name, sizeof q->name, fmt, ap);
    va_end(ap);
    q->ndim = ndim;
    q->numel = 1;
    for (int d = 0; d < ndim; d++) {
        q->shape[d] = shape[d];
        q->numel *= (size_t)shape[d];
    }
    q->offset = t->off;
    q->role = role;
    t->off += q->numel;
    return GLORA_OK;
}

#define SHAPE(...) ((const int64_t[]){__VA_ARGS__})

static int build_table(table_t *t, const glora_vit_arch_t *a, int rank) {
    const int64_t C = a->dim, H = a->mlp_hidden, P = a->patch;
    int rc = 0;
    rc |= add_param(t, GLORA_ROLE_BACKBONE, 4, SHAPE(C, a->in_chans, P, P), "patch_embed.proj.weight");
    rc |= add_param(t, GLORA_ROLE_BACKBONE, 1, SHAPE(C), "patch_embed.proj.bias");
    rc |= add_param(t, GLORA_ROLE_BACKBONE, 3, SHAPE(1, 1, C), "cls_token");
    rc |= add_param(t, GLORA_ROLE_BACKBONE, 3, SHAPE(1, a->tokens, C), "pos_embed");
    for (int i = 0; i < a->depth && rc == 0; i++) {
        rc |= add_param(t, GLORA_ROLE_BACKBONE, 1, SHAPE(C), "blocks.%d.norm1.weight", i);
        rc |= add_param(t, GLORA_ROLE_BACKBONE, 1, SHAPE(C), "blocks.%d.norm1.bias", i);
        rc |= add_param(t, GLORA_ROLE_BACKBONE, 2, SHAPE(3 * C, C), "blocks.%d.attn.qkv.weight", i);
        rc |= add_param(t, GLORA_ROLE_BACKBONE, 1, SHAPE(3 * C), "blocks.%d.attn.qkv.bias", i);
        rc |= add_param(t, GLORA_ROLE_BACKBONE, 2, SHAPE(C, C), "blocks.%d.attn.proj.weight", i);
        rc |= add_param(t, GLORA_ROLE_BACKBONE, 1, SHAPE(C), "blocks.%d.attn.proj.bias", i);
        rc |= add_param(t, GLORA_ROLE_BACKBONE, 1, SHAPE(C), "blocks.%d.norm2.weight", i);
        rc |= add_param(t, GLORA_ROLE_BACKBONE, 1, SHAPE(C), "blocks.%d.norm2.bias", i);
        rc |= add_param(t, GLORA_ROLE_BACKBONE, 2, SHAPE(H, C), "blocks.%d.mlp.fc1.weight", i);
        rc |= add_param(t, GLORA_ROLE_BACKBONE, 1, SHAPE(H), "blocks.%d.mlp.fc1.bias", i);
        rc |= add_param(t, GLORA_ROLE_BACKBONE, 2, SHAPE(C, H), "blocks.%d.mlp.fc2.weight", i);
        rc |= add_param(t, GLORA_ROLE_BACKBONE, 1, SHAPE(C), "blocks.%d.mlp.fc2.bias", i);
    }
    rc |= add_param(t, GLORA_ROLE_BACKBONE, 1, SHAPE(C), "norm.weight");
    rc |= add_param(t, GLORA_ROLE_BACKBONE, 1, SHAPE(C), "norm.bias");
    rc |= add_param(t, GLORA_ROLE_HEAD, 2, SHAPE(a->num_classes, C), "head.weight");
    rc |= add_param(t, GLORA_ROLE_HEAD, 1, SHAPE(a->num_classes), "head.bias");
    if (rank > 0) {
        for (int l = 0; l < GLORA_SITES * a->depth && rc == 0; l++) {
            int o, i;
            glora_arch_layer_shape(a, l, &o, &i);
            int64_t out = o, in = i;
            const char *site = site_names[l % GLORA_SITES];
            int blk = l / GLORA_SITES, R = rank;
            rc |= add_param(t, GLORA_ROLE_ADAPTER, 2, SHAPE(out, R), "blocks.%d.%s.Ad", blk, site);
            rc |= add_param(t, GLORA_ROLE_ADAPTER, 2, SHAPE(R, in), "blocks.%d.%s.Au", blk, site);
            rc |= add_param(t, GLORA_ROLE_ADAPTER, 2, SHAPE(out, R), "blocks.%d.%s.Bd", blk, site);
            rc |= add_param(t, GLORA_ROLE_ADAPTER, 2, SHAPE(R, in), "blocks.%d.%s.Bu", blk, site);
            rc |= add_param(t, GLORA_ROLE_ADAPTER, 2, SHAPE(in, R), "blocks.%d.%s.Cd", blk, site);
            rc |= add_param(t, GLORA_ROLE_ADAPTER, 2, SHAPE(R, 1), "blocks.%d.%s.Cu", blk, site);
            rc |= add_param(t, GLORA_ROLE_ADAPTER, 1, SHAPE(out), "blocks.%d.%s.D", blk, site);
            rc |= add_param(t, GLORA_ROLE_ADAPTER, 1, SHAPE(out), "blocks.%d.%s.E", blk, site);
        }
    }
    return rc ? GLORA_ENOMEM : GLORA_OK;
}

int glora_vit_create(glora_vit_t **out, const glora_vit_arch_t *arch, int rank) {
    *out = NULL;
    glora_vit_arch_t a = *arch;
    int rc = glora_vit_arch_check(&a);
    if (rc) return rc;
    if (rank < 0 || rank > GLORA_MAX_RANK)
        return glora_error(GLORA_EINVAL, "model 'vit': GLoRA rank %d outside 0..%d", rank, GLORA_MAX_RANK);
    glora_vit_t *m = calloc(1, sizeof *m);
    table_t t = {0};
    if (!m) return glora_error(GLORA_ENOMEM, "model 'vit': out of memory");
    m->arch = a;
    m->rank = rank;
    if ((rc = build_table(&t, &a, rank)) != 0) goto fail;
    m->params = t.p;
    m->n_params = t.n;
    m->n_floats = t.off;
    m->mem = calloc(m->n_floats, sizeof(float));
    m->w.blk = calloc((size_t)a.depth, sizeof *m->w.blk);
    if (rank > 0) m->adapters = calloc((size_t)GLORA_SITES * a.depth, sizeof *m->adapters);
    if (!m->mem || !m->w.blk || (rank > 0 && !m->adapters)) {
        rc = glora_error(GLORA_ENOMEM, "model 'vit': out of memory for %zu parameters", m->n_floats);
        goto fail;
    }
    /* Typed views follow the table order exactly. */
    float *p = m->mem;
    const glora_param_t *q = m->params;
#define NEXT() (p + (q++)->offset)
    m->w.patch_w = NEXT(); m->w.patch_b = NEXT(); m->w.cls = NEXT(); m->w.pos = NEXT();
    for (int i = 0; i < a.depth; i++) {
        glora_vit_block_t *b = &m->w.blk[i];
        b->ln1_w = NEXT(); b->ln1_b = NEXT(); b->qkv_w = NEXT(); b->qkv_b = NEXT();
        b->proj_w = NEXT(); b->proj_b = NEXT(); b->ln2_w = NEXT(); b->ln2_b = NEXT();
        b->fc1_w = NEXT(); b->fc1_b = NEXT(); b->fc2_w = NEXT(); b->fc2_b = NEXT();
    }
    m->w.norm_w = NEXT(); m->w.norm_b = NEXT(); m->w.head_w = NEXT(); m->w.head_b = NEXT();
    for (int l = 0; rank > 0 && l < GLORA_SITES * a.depth; l++) {
        glora_adapter_t *ad = &m->adapters[l];
        const float *w0, *b0;
        glora_vit_layer(m, l, &w0, &b0, &ad->out, &ad->in);
        ad->rank = rank;
        ad->Ad = NEXT(); ad->Au = NEXT(); ad->Bd = NEXT(); ad->Bu = NEXT();
        ad->Cd = NEXT(); ad->Cu = NEXT(); ad->D = NEXT(); ad->E = NEXT();
    }
#undef NEXT
    GLORA_ASSERT(q == m->params + m->n_params);
    /* LayerNorms start as the identity, as in timm. */
    for (int i = 0; i < m->n_params; i++) {
        const char *dot = strrchr(m->params[i].name, '.');
        if (dot && strcmp(dot, ".weight") == 0 && strstr(m->params[i].name, "norm"))
            for (size_t k = 0; k < m->params[i].numel; k++) m->mem[m->params[i].offset + k] = 1.0f;
    }
    *out = m;
    return GLORA_OK;
fail:
    if (m) { m->params = t.p; glora_vit_free(m); } else free(t.p);
    return rc;
}

void glora_vit_free(glora_vit_t *m) {
    if (!m) return;
    free(m->mem);
    free(m->params);
    free(m->w.blk);
    free(m->adapters);
    free(m->class_names);
    free(m);
}

const glora_param_t *glora_vit_param(const glora_vit_t *m, const char *name) {
    for (int i = 0; i < m->n_params; i++)
        if (strcmp(m->params[i].name, name) == 0) return &m->params[i];
    return NULL;
}

/* ---- merged linears ---------------------------------------------------- */

int glora_vit_linears_create(glora_vit_linears_t **out, const glora_vit_t *m) {
    *out = NULL;
    glora_vit_linears_t *lin = calloc(1, sizeof *lin);
    if (!lin) return glora_error(GLORA_ENOMEM, "model 'vit': out of memory");
    lin->n = glora_vit_layers(m);
    lin->precision = m->precision;
    size_t total = 0, largest = 0;
    for (int l = 0; l < lin->n; l++) {
        const float *w0, *b0;
        int o, i;
        glora_vit_layer(m, l, &w0, &b0, &o, &i);
        total += (size_t)o * i + (size_t)o;
        if ((size_t)o * i > largest) largest = (size_t)o * i;
    }
    lin->w = calloc((size_t)lin->n, sizeof *lin->w);
    lin->b = calloc((size_t)lin->n, sizeof *lin->b);
    lin->mem = m->rank > 0 ? glora_big_alloc(total, sizeof(float)) : NULL;
    lin->scratch = m->rank > 0 ? glora_big_alloc(largest, sizeof(float)) : NULL;
    if (!lin->w || !lin->b || (m->rank > 0 && (!lin->mem || !lin->scratch))) {
        glora_vit_linears_free(lin);
        return glora_error(GLORA_ENOMEM, "model 'vit': out of memory for merged weights");
    }
    glora_vit_linears_set(lin, m, NULL);
    *out = lin;
    return GLORA_OK;
}

void glora_vit_linears_free(glora_vit_linears_t *lin) {
    if (!lin) return;
    for (int l = 0; lin->packed && l < lin->n; l++) glora_sgemm_b_free(&lin->packed[l]);
    free(lin->packed);
    free(lin->w);
    free(lin->b);
    free(lin->mem);
    free(lin->scratch);
    free(lin);
}

/* Packs layer l's current weight (as op(B) = W^T, k = in, n = out). A
 * failed allocation leaves the layer unpacked, which still works. */
static void pack_layer(glora_vit_linears_t *lin, const glora_vit_t *m, int l) {
    const float *w0, *b0;
    int o, i;
    glora_vit_layer(m, l, &w0, &b0, &o, &i);
    if (glora_gemm_b_pack(&lin->packed[l], lin->precision, GLORA_TRANS, (size_t)i, (size_t)o,
                          lin->w[l], (size_t)i))
        glora_error_clear();
}

int glora_vit_linears_pack(glora_vit_linears_t *lin) {
    if (lin->packed) return GLORA_OK;
    lin->packed = calloc((size_t)lin->n, sizeof *lin->packed);
    if (!lin->packed) return glora_error(GLORA_ENOMEM, "model 'vit': out of memory");
    return GLORA_OK;
}

int glora_vit_linears_pack_only(glora_vit_linears_t *lin, const glora_vit_t *m) {
    if (lin->merge_w) return GLORA_OK;
    int rc = glora_vit_linears_pack(lin);
    if (rc != GLORA_OK || m->rank == 0) return rc; /* nothing is ever merged */
    /* W0 packed: every layer's panels allocated, as big as any merge needs. */
    glora_vit_linears_set(lin, m, NULL);
    size_t biases = 0, largest = 0;
    for (int l = 0; l < lin->n; l++) {
        if (!glora_gemm_b_panels_only(&lin->packed[l], 0))
            return GLORA_OK; /* products would read the merged weight */
        const float *w0, *b0;
        int o, i;
        glora_vit_layer(m, l, &w0, &b0, &o, &i);
        biases += (size_t)o;
        if ((size_t)o * i > largest) largest = (size_t)o * i;
    }
    /* Biases first, then the one layer's weight (64-byte aligned). */
    size_t wstart = (biases + 15) & ~(size_t)15;
    float *mem = glora_big_alloc(wstart + largest, sizeof(float));
    if (!mem) return glora_error(GLORA_ENOMEM, "model 'vit': out of memory for merged weights");
    free(lin->mem);
    lin->mem = mem;
    lin->merge_w = mem + wstart;
    return GLORA_OK;
}

int glora_vit_linears_packed_only(const glora_vit_linears_t *lin) {
    return lin->merge_w && glora_gemm_b_panels_only(&lin->packed[0], 0);
}

static int cfg_is_none(const glora_layer_cfg_t *c) {
    for (int t = 0; t < GLORA_NTENSORS; t++)
        if (c->t[t].kind != GLORA_NONE) return 0;
    return 1;
}

void glora_vit_linears_set(glora_vit_linears_t *lin, const glora_vit_t *m,
                           const glora_layer_cfg_t *cfg) {
    size_t off = 0;
    for (int l = 0; l < lin->n; l++) {
        const float *w0, *b0;
        int o, i;
        glora_vit_layer(m, l, &w0, &b0, &o, &i);
        if (!cfg || cfg_is_none(&cfg[l])) {
            lin->w[l] = w0;
            lin->b[l] = b0;
            if (lin->packed) pack_layer(lin, m, l);
        } else if (lin->merge_w) {
            /* Packed only: merged into the one layer-sized buffer (in cache
             * while it is packed), which the next layer's merge reuses. */
            GLORA_ASSERT(glora_layer_max_rank(&cfg[l]) <= m->rank);
            float *b = lin->mem + off;
            glora_adapter_merge(lin->merge_w, b, w0, b0, &m->adapters[l], &cfg[l], lin->scratch);
            lin->w[l] = lin->merge_w;
            lin->b[l] = b;
            pack_layer(lin, m, l);
            /* The kernel in use packed W0 here before (pack_only), into
             * panels as big: packing again allocates nothing, cannot fail. */
            GLORA_ASSERT(glora_gemm_b_panels_only(&lin->packed[l], 0));
            lin->packed[l].b = NULL;
            lin->w[l] = NULL;
        } else {
            GLORA_ASSERT(m->rank > 0 && glora_layer_max_rank(&cfg[l]) <= m->rank);
            float *w = lin->mem + off, *b = w + (size_t)o * i;
            glora_adapter_merge(w, b, w0, b0, &m->adapters[l], &cfg[l], lin->scratch);
            lin->w[l] = w;
            lin->b[l] = b;
            /* Packed right after its merge, while the merged weight is in cache. */
            if (lin->packed) pack_layer(lin, m, l);
        }
        off += (lin->merge_w ? 0 : (size_t)o * i) + (size_t)o;
    }
}

/* ---- activations ------------------------------------------------------- */

int glora_vit_acts_create(glora_vit_acts_t **out, const glora_vit_t *m, size_t max_batch,
                          int keep_all) {
    *out = NULL;
    const glora_vit_arch_t *a = &m->arch;
    const size_t B = max_batch, T = (size_t)a->tokens, C = (size_t)a->dim,
                 H = (size_t)a->mlp_hidden, NH = (size_t)a->heads, N = B * T;
    const size_t kk = (size_t)a->in_chans * a->patch * a->patch;
    size_t per_block = N * C * 6 + N * 4 + N * 3 * C + B * NH * T * T + N * H * 2;
    size_t nblocks = keep_all ? (size_t)a->depth : 1;
    size_t total = B * a->num_patches * kk + B * a->num_patches * C + N * C /* x0 */ +
                   per_block * nblocks + N * C + 2 * N + B * C + B * a->num_classes;
    if (max_batch == 0 || max_batch > (1u << 24))
        return glora_error(GLORA_EINVAL, "model 'vit': batch size %zu out of range", max_batch);
    glora_vit_acts_t *ac = calloc(1, sizeof *ac);
    if (!ac) return glora_error(GLORA_ENOMEM, "model 'vit': out of memory");
    ac->max_batch = B;
    ac->keep_all = keep_all;
    ac->mem = glora_big_alloc(total, sizeof(float));
    ac->blk = calloc((size_t)a->depth, sizeof *ac->blk);
    if (!ac->mem || !ac->blk) {
        glora_vit_acts_free(ac);
        return glora_error(GLORA_ENOMEM, "model 'vit': out of memory for activations of batch %zu",
                           max_batch);
    }
    float *p = ac->mem;
#define TAKE(n) (p += (n), p - (n))
    ac->patches = TAKE(B * a->num_patches * kk);
    ac->pe = TAKE(B * a->num_patches * C);
    ac->x0 = TAKE(N * C);
    for (size_t i = 0; i < nblocks; i++) {
        glora_vit_block_acts_t *b = &ac->blk[i];
        b->ln1 = TAKE(N * C); b->ln1_mean = TAKE(N); b->ln1_rstd = TAKE(N);
        b->qkv = TAKE(N * 3 * C); b->att = TAKE(B * NH * T * T); b->attn = TAKE(N * C);
        b->res1 = TAKE(N * C);
        b->ln2 = TAKE(N * C); b->ln2_mean = TAKE(N); b->ln2_rstd = TAKE(N);
        b->fc1 = TAKE(N * H); b->gelu = TAKE(N * H); b->res2 = TAKE(N * C);
    }
    for (size_t i = nblocks; i < (size_t)a->depth; i++) ac->blk[i] = ac->blk[0];
    ac->lnf = TAKE(N * C); ac->lnf_mean = TAKE(N); ac->lnf_rstd = TAKE(N);
    ac->cls = TAKE(B * C);
    ac->logits = TAKE(B * a->num_classes);
#undef TAKE
    GLORA_ASSERT((size_t)(p - ac->mem) <= total);
    *out = ac;
    return GLORA_OK;
}

void glora_vit_acts_free(glora_vit_acts_t *a) {
    if (!a) return;
    free(a->mem);
    free(a->blk);
    free(a);
}

/* ---- forward ----------------------------------------------------------- */

static void last_block_cls(const glora_vit_t *m, const glora_vit_linears_t *lin,
                           glora_vit_acts_t *ac, const float *xin, size_t B);

/* Attention in bf16 (glora_attention_forward_bf16): in inference (a
 * workspace that keeps one block's activations: search, eval, predict,
 * training's validation) under precision bf16. Training's forward keeps
 * fp32 attention, whose probabilities its backward needs. */
static int attn_bf16(const glora_vit_t *m, const glora_vit_acts_t *ac) {
    return m->precision == GLORA_BF16 && !ac->keep_all;
}

/* Adapted layer l on N rows, through its packed weight when there is one. */
static void adapted_forward(const glora_vit_linears_t *lin, int l, float *out, const float *inp,
                            size_t N, int IC, int OC) {
    if (lin->packed)
        glora_linear_forward_packed(out, inp, &lin->packed[l], lin->b[l], N, IC, OC);
    else if (lin->precision == GLORA_BF16)
        glora_bgemm_bias(GLORA_NOTRANS, GLORA_TRANS, N, (size_t)OC, (size_t)IC, 1.0f, inp,
                         (size_t)IC, lin->w[l], (size_t)IC, 0.0f, lin->b[l], out, (size_t)OC);
    else
        glora_linear_forward(out, inp, lin->w[l], lin->b[l], N, IC, OC);
}

/* fc1 and GELU on N rows into gelu: with packed weights and no need for
 * the pre-activation (inference), GELU runs on each block of the product's
 * rows as soon as it is done, while still in cache (the same bits: GELU is
 * elementwise, and glora_gelu_forward_serial is glora_gelu_forward's
 * kernel); otherwise the product into fc1, then a GELU pass. */
static void fc1_gelu_forward(const glora_vit_linears_t *lin, int l, float *fc1, float *gelu,
                             const float *inp, size_t N, int IC, int OC, int keep_fc1) {
    if (lin->packed && !keep_fc1) {
        GLORA_ASSERT(lin->packed[l].k == (size_t)IC && lin->packed[l].n == (size_t)OC);
        glora_sgemm_packed_ep(GLORA_NOTRANS, N, 0, (size_t)OC, 1.0f, inp, (size_t)IC, &lin->packed[l],
                              0.0f, lin->b[l], glora_gelu_forward_serial, gelu, (size_t)OC);
        return;
    }
    adapted_forward(lin, l, fc1, inp, N, IC, OC);
    glora_gelu_forward(gelu, fc1, N * (size_t)OC);
}

void glora_vit_embed(const glora_vit_t *m, glora_vit_acts_t *ac, const float *x, size_t B) {
    const glora_vit_arch_t *a = &m->arch;
    const int C = a->dim, NP = a->num_patches, kk = a->in_chans * a->patch * a->patch;
    GLORA_ASSERT(B >= 1 && B <= ac->max_batch);
    glora_im2col(ac->patches, x, B, a->in_chans, a->img_size, a->img_size, a->patch);
    if (m->precision == GLORA_BF16)
        glora_bgemm_bias(GLORA_NOTRANS, GLORA_TRANS, B * NP, (size_t)C, (size_t)kk, 1.0f,
                         ac->patches, (size_t)kk, m->w.patch_w, (size_t)kk, 0.0f, m->w.patch_b,
                         ac->pe, (size_t)C);
    else
        glora_linear_forward(ac->pe, ac->patches, m->w.patch_w, m->w.patch_b, B * NP, kk, C);
    glora_tokens_forward(ac->x0, ac->pe, m->w.cls, m->w.pos, B, NP, C);
}

void glora_vit_forward(const glora_vit_t *m, const glora_vit_linears_t *lin,
                       glora_vit_acts_t *ac, const float *x, size_t B) {
    glora_vit_embed(m, ac, x, B);
    glora_vit_forward_tokens(m, lin, ac, ac->x0, B);
}

void glora_vit_forward_tokens(const glora_vit_t *m, const glora_vit_linears_t *lin,
                              glora_vit_acts_t *ac, const float *x0, size_t B) {
    const glora_vit_arch_t *a = &m->arch;
    const int T = a->tokens, C = a->dim, H = a->mlp_hidden, NH = a->heads;
    const size_t N = B * (size_t)T;
    GLORA_ASSERT(B >= 1 && B <= ac->max_batch);
    const float *xin = x0;
    for (int i = 0; i < a->depth; i++) {
        const glora_vit_block_t *w = &m->w.blk[i];
        glora_vit_block_acts_t *b = &ac->blk[i];
        const int l = i * GLORA_SITES;
        /* With one set of buffers for all blocks (inference), the block
         * input is the previous block's res2, which this block overwrites
         * only at its end, after its last read of xin (the first residual
         * add); and the last block runs for the cls token only. */
        if (!ac->keep_all && i == a->depth - 1) {
            last_block_cls(m, lin, ac, xin, B);
            if (a->num_classes > 0)
                glora_linear_forward(ac->logits, ac->cls, m->w.head_w, m->w.head_b, B, C, a->num_classes);
            return;
        }
        glora_layernorm_forward(b->ln1, b->ln1_mean, b->ln1_rstd, xin, w->ln1_w, w->ln1_b, N, C, LN_EPS);
        adapted_forward(lin, l + GLORA_SITE_QKV, b->qkv, b->ln1, N, C, 3 * C);
        if (attn_bf16(m, ac))
            glora_attention_forward_bf16(b->attn, b->att, b->qkv, B, T, C, NH);
        else
            glora_attention_forward(b->attn, b->att, b->qkv, B, T, C, NH);
        adapted_forward(lin, l + GLORA_SITE_PROJ, b->res1, b->attn, N, C, C);
        glora_add(b->res1, b->res1, xin, N * (size_t)C);
        glora_layernorm_forward(b->ln2, b->ln2_mean, b->ln2_rstd, b->res1, w->ln2_w, w->ln2_b, N, C, LN_EPS);
        fc1_gelu_forward(lin, l + GLORA_SITE_FC1, b->fc1, b->gelu, b->ln2, N, C, H, ac->keep_all);
        adapted_forward(lin, l + GLORA_SITE_FC2, b->res2, b->gelu, N, H, C);
        glora_add(b->res2, b->res2, b->res1, N * (size_t)C);
        xin = b->res2;
    }
    glora_layernorm_forward(ac->lnf, ac->lnf_mean, ac->lnf_rstd, xin, m->w.norm_w, m->w.norm_b, N, C, LN_EPS);
    glora_cls_forward(ac->cls, ac->lnf, B, T, C);
    if (a->num_classes > 0)
        glora_linear_forward(ac->logits, ac->cls, m->w.head_w, m->w.head_b, B, C, a->num_classes);
}

/* The last block and the final norm for the cls token alone, which is all
 * the head reads: every token still gives its key and value, but only the
 * cls token's query (with packed weights, which can be cut by columns),
 * projection and MLP run (three quarters of the block's work skipped for 17
 * tokens). The cls rows are packed one after the other
 * (B, C) in the block's buffers. Every kernel computes a row the same way
 * whatever the rows beside it, so the logits equal the full pass's bit for
 * bit. */
static void last_block_cls(const glora_vit_t *m, const glora_vit_linears_t *lin,
                           glora_vit_acts_t *ac, const float *xin, size_t B) {
    const glora_vit_arch_t *a = &m->arch;
    const int T = a->tokens, C = a->dim, H = a->mlp_hidden, i = a->depth - 1;
    const int l = i * GLORA_SITES;
    const size_t N = B * (size_t)T, Cs = (size_t)C;
    const glora_vit_block_t *w = &m->w.blk[i];
    glora_vit_block_acts_t *b = &ac->blk[i];
    glora_layernorm_forward(b->ln1, b->ln1_mean, b->ln1_rstd, xin, w->ln1_w, w->ln1_b, N, C, LN_EPS);
    const glora_sgemm_b_t *wq = lin->packed ? &lin->packed[l + GLORA_SITE_QKV] : NULL;
    if (wq && (lin->w[l + GLORA_SITE_QKV] || glora_gemm_b_panels_only(wq, Cs))) {
        /* Keys and values of every token, the query of the cls token only
         * (its rows are T*C apart in ln1 and T*3C in qkv); from the panels
         * when the key columns start on a panel's boundary, otherwise from
         * the weight itself. Packed only, at other widths, every column of
         * every token instead. */
        const float *bq = lin->b[l + GLORA_SITE_QKV];
        glora_sgemm_packed(GLORA_NOTRANS, N, Cs, 2 * Cs, 1.0f, b->ln1, Cs, wq, 0.0f, bq + Cs,
                           b->qkv + Cs, 3 * Cs);
        glora_sgemm_packed(GLORA_NOTRANS, B, 0, Cs, 1.0f, b->ln1, (size_t)T * Cs, wq, 0.0f, bq,
                           b->qkv, (size_t)T * 3 * Cs);
    } else {
        adapted_forward(lin, l + GLORA_SITE_QKV, b->qkv, b->ln1, N, C, 3 * C);
    }
    if (attn_bf16(m, ac))
        glora_attention_forward_first_bf16(b->attn, b->att, b->qkv, B, T, C, a->heads);
    else
        glora_attention_forward_first(b->attn, b->att, b->qkv, B, T, C, a->heads);
    adapted_forward(lin, l + GLORA_SITE_PROJ, b->res1, b->attn, B, C, C);
    for (size_t k = 0; k < B; k++)
        glora_add(b->res1 + k * Cs, b->res1 + k * Cs, xin + k * (size_t)T * Cs, Cs);
    glora_layernorm_forward(b->ln2, b->ln2_mean, b->ln2_rstd, b->res1, w->ln2_w, w->ln2_b, B, C, LN_EPS);
    fc1_gelu_forward(lin, l + GLORA_SITE_FC1, b->fc1, b->gelu, b->ln2, B, C, H, 0);
    adapted_forward(lin, l + GLORA_SITE_FC2, b->res2, b->gelu, B, H, C);
    glora_add(b->res2, b->res2, b->res1, B * Cs);
    glora_layernorm_forward(ac->cls, ac->lnf_mean, ac->lnf_rstd, b->res2, m->w.norm_w, m->w.norm_b,
                            B, C, LN_EPS);
}

static int argmax(const float *v, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (v[i] > v[best]) best = i;
    return best;
}

size_t glora_vit_count_correct(const glora_vit_t *m, const glora_vit_linears_t *lin,
                               glora_vit_acts_t *ac, const float *x, const int *y, size_t n) {
    const glora_vit_arch_t *a = &m->arch;
    const size_t per = (size_t)a->in_chans * a->img_size * a->img_size;
    size_t correct = 0;
    for (size_t start = 0; start < n; start += ac->max_batch) {
        size_t B = n - start < ac->max_batch ? n - start : ac->max_batch;
        glora_vit_forward(m, lin, ac, x + start * per, B);
        correct += glora_vit_count_top1(m, ac, y + start, B);
    }
    return correct;
}

size_t glora_vit_count_top1(const glora_vit_t *m, const glora_vit_acts_t *ac, const int *y, size_t B) {
    const int V = m->arch.num_classes;
    size_t correct = 0;
    for (size_t b = 0; b < B; b++) correct += argmax(ac->logits + b * V, V) == y[b];
    return correct;
}
