/* ViTs from Google's original .npz checkpoints (ViT-B_16.npz, ...): the
 * names and layouts of the JAX/Flax code mapped to timm's, as timm's
 * vision_transformer._load_weights maps them (docs/formats.md has the
 * table). Kernels there are [in, out] (HWIO for the patch embedding); the
 * attention's query/key/value kernels are [D, heads, head_dim] and its out
 * kernel [heads, head_dim, D]. */
#include "model-impl.h"

#include "glora/common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Checkpoints saved from the Flax optimizer carry this prefix; timm strips it. */
static const char *prefix_of(const glora_npz_t *z) {
    return glora_npz_find(z, "opt/target/embedding/kernel") ? "opt/target/" : "";
}

/* The array prefix + name (name printf-formatted with one int), checked to
 * have ndim dimensions equal to shape (-1 matches any size). */
static int get(const glora_npz_t *z, const char *prefix, const glora_npz_array_t **out, int ndim,
               const int64_t *shape, const char *fmt, int i) {
    char rel[96], name[128];
    snprintf(rel, sizeof rel, fmt, i);
    snprintf(name, sizeof name, "%s%s", prefix, rel);
    const glora_npz_array_t *a = glora_npz_find(z, name);
    *out = NULL;
    if (!a)
        return glora_error(GLORA_EFORMAT, "entry '%s.npy' in '%s': missing (is this a ViT checkpoint of Google's "
                           "original code?)", name, glora_npz_path(z));
    int ok = a->ndim == ndim;
    for (int d = 0; ok && d < ndim; d++) ok = shape[d] < 0 || shape[d] == a->shape[d];
    if (!ok) {
        char want[128] = "", got[128] = "";
        size_t w = 0, g = 0;
        for (int d = 0; d < ndim; d++)
            w += (size_t)snprintf(want + w, sizeof want - w, shape[d] < 0 ? "%s*" : "%s%lld", d ? ", " : "",
                                  (long long)shape[d]);
        for (int d = 0; d < a->ndim && g < sizeof got; d++)
            g += (size_t)snprintf(got + g, sizeof got - g, "%s%lld", d ? ", " : "", (long long)a->shape[d]);
        return glora_error(GLORA_EFORMAT, "entry '%s.npy' in '%s': shape [%s] expected, found [%s]", name,
                           glora_npz_path(z), want, got);
    }
    *out = a;
    return GLORA_OK;
}

#define SH(...) ((const int64_t[]){__VA_ARGS__})

/* Is rel (the name without the prefix) an array of a classic ViT of this
 * depth? pre_logits counts as one: it is read past, not loaded. */
static int known(const char *rel, int depth) {
    static const char *const top[] = {
        "embedding/kernel", "embedding/bias", "cls", "Transformer/posembed_input/pos_embedding",
        "Transformer/encoder_norm/scale", "Transformer/encoder_norm/bias", "head/kernel", "head/bias",
        "pre_logits/kernel", "pre_logits/bias",
    };
    static const char *const blk[] = {
        "LayerNorm_0/scale", "LayerNorm_0/bias", "LayerNorm_2/scale", "LayerNorm_2/bias",
        "MultiHeadDotProductAttention_1/query/kernel", "MultiHeadDotProductAttention_1/query/bias",
        "MultiHeadDotProductAttention_1/key/kernel", "MultiHeadDotProductAttention_1/key/bias",
        "MultiHeadDotProductAttention_1/value/kernel", "MultiHeadDotProductAttention_1/value/bias",
        "MultiHeadDotProductAttention_1/out/kernel", "MultiHeadDotProductAttention_1/out/bias",
        "MlpBlock_3/Dense_0/kernel", "MlpBlock_3/Dense_0/bias", "MlpBlock_3/Dense_1/kernel", "MlpBlock_3/Dense_1/bias",
    };
    for (size_t i = 0; i < sizeof top / sizeof top[0]; i++)
        if (strcmp(rel, top[i]) == 0) return 1;
    int b, used = 0;
    if (sscanf(rel, "Transformer/encoderblock_%d/%n", &b, &used) != 1 || used == 0 || b < 0 || b >= depth) return 0;
    char canon[48];
    snprintf(canon, sizeof canon, "Transformer/encoderblock_%d/", b);
    if (strncmp(rel, canon, (size_t)used) != 0 || strlen(canon) != (size_t)used) return 0; /* "_01", "_+1" */
    for (size_t i = 0; i < sizeof blk / sizeof blk[0]; i++)
        if (strcmp(rel + used, blk[i]) == 0) return 1;
    return 0;
}

int glora_vit_npz_arch(const glora_npz_t *z, glora_vit_arch_t *a, int *heads) {
    const char *px = prefix_of(z);
    const glora_npz_array_t *t;
    int rc;
    if ((rc = get(z, px, &t, 4, SH(-1, -1, -1, -1), "embedding/kernel", 0))) return rc;
    if (t->shape[0] != t->shape[1])
        return glora_error(GLORA_EFORMAT, "entry '%sembedding/kernel.npy' in '%s': non-square patches %lldx%lld", px,
                           glora_npz_path(z), (long long)t->shape[0], (long long)t->shape[1]);
    for (int d = 0; d < 4; d++)
        if (t->shape[d] < 1 || t->shape[d] > 65536)
            return glora_error(GLORA_EFORMAT, "entry '%sembedding/kernel.npy' in '%s': sizes out of range", px,
                               glora_npz_path(z));
    a->patch = (int)t->shape[0];
    a->in_chans = (int)t->shape[2];
    a->dim = (int)t->shape[3];
    if ((rc = get(z, px, &t, 3, SH(1, -1, a->dim), "Transformer/posembed_input/pos_embedding", 0))) return rc;
    int64_t np = t->shape[1] - 1, side = 0;
    while (side * side < np && side < 100000) side++;
    if (np < 1 || side * side != np)
        return glora_error(GLORA_EFORMAT, "entry '%sTransformer/posembed_input/pos_embedding.npy' in '%s': %lld tokens "
                           "is not a square grid plus a cls token", px, glora_npz_path(z), (long long)t->shape[1]);
    a->img_size = (int)(side * a->patch);
    char name[128];
    a->depth = 0;
    for (;;) {
        snprintf(name, sizeof name, "%sTransformer/encoderblock_%d/LayerNorm_0/scale", px, a->depth);
        if (!glora_npz_find(z, name) || a->depth >= 256) break;
        a->depth++;
    }
    if (a->depth == 0)
        return glora_error(GLORA_EFORMAT, "entry '%sTransformer/encoderblock_0/LayerNorm_0/scale.npy' in '%s': missing "
                           "(no transformer blocks)", px, glora_npz_path(z));
    if ((rc = get(z, px, &t, 2, SH(a->dim, -1), "Transformer/encoderblock_%d/MlpBlock_3/Dense_0/kernel", 0))) return rc;
    a->mlp_hidden = (int)t->shape[1];
    if ((rc = get(z, px, &t, 3, SH(a->dim, -1, -1), "Transformer/encoderblock_%d/MultiHeadDotProductAttention_1/query/kernel", 0)))
        return rc;
    if (t->shape[1] < 1 || t->shape[1] * t->shape[2] != a->dim)
        return glora_error(GLORA_EFORMAT, "entry '%sTransformer/encoderblock_0/MultiHeadDotProductAttention_1/query/"
                           "kernel.npy' in '%s': heads x head size %lld x %lld is not the width %d", px,
                           glora_npz_path(z), (long long)t->shape[1], (long long)t->shape[2], a->dim);
    *heads = (int)t->shape[1];
    a->num_classes = 0;
    if (glora_npz_find(z, strcat(strcpy(name, px), "head/kernel"))) {
        if ((rc = get(z, px, &t, 2, SH(a->dim, -1), "head/kernel", 0))) return rc;
        a->num_classes = (int)t->shape[1];
    }
    /* Anything else belongs to another model. */
    size_t plen = strlen(px);
    for (size_t i = 0; i < glora_npz_count(z); i++) {
        const char *n = glora_npz_array(z, i)->name;
        if (strncmp(n, px, plen) != 0 || !known(n + plen, a->depth))
            return glora_error(GLORA_EFORMAT, "entry '%.100s.npy' in '%s': unexpected: not part of a classic ViT "
                               "(hybrid, big_vision and other variants are not supported)", n, glora_npz_path(z));
    }
    return GLORA_OK;
}

/* dst (cols, rows) = src (rows, cols)^T, in cache-sized tiles. */
static void transpose(float *dst, const float *src, size_t rows, size_t cols) {
    enum { TILE = 32 };
    for (size_t i0 = 0; i0 < rows; i0 += TILE)
        for (size_t j0 = 0; j0 < cols; j0 += TILE)
            for (size_t i = i0; i < rows && i < i0 + TILE; i++)
                for (size_t j = j0; j < cols && j < j0 + TILE; j++) dst[j * rows + i] = src[i * cols + j];
}

static float *param(glora_vit_t *m, const char *fmt, int i) {
    char name[64];
    snprintf(name, sizeof name, fmt, i);
    const glora_param_t *p = glora_vit_param(m, name);
    GLORA_ASSERT(p);
    return m->mem + p->offset;
}

typedef struct {
    glora_vit_t *m;
    const glora_npz_t *z;
    const char *px;
    float *tmp; /* the largest array that needs a transpose */
} ctx_t;

/* An array read as it is (shape checked) into dst. */
static int plain(ctx_t *c, float *dst, int ndim, const int64_t *shape, const char *fmt, int i) {
    const glora_npz_array_t *a;
    int rc = get(c->z, c->px, &a, ndim, shape, fmt, i);
    return rc ? rc : glora_npz_read_f32(c->z, a, dst, a->numel);
}

/* A kernel [rows, cols] (trailing dimensions flattened into cols, leading
 * ones into rows) read and transposed into dst (cols, rows). */
static int transposed(ctx_t *c, float *dst, int ndim, const int64_t *shape, int lead, const char *fmt, int i) {
    const glora_npz_array_t *a;
    int rc = get(c->z, c->px, &a, ndim, shape, fmt, i);
    if (rc || (rc = glora_npz_read_f32(c->z, a, c->tmp, a->numel))) return rc;
    size_t rows = 1;
    for (int d = 0; d < lead; d++) rows *= (size_t)shape[d];
    transpose(dst, c->tmp, rows, a->numel / rows);
    return GLORA_OK;
}

int glora_vit_npz_fill(glora_vit_t *m, const glora_npz_t *z, int with_head) {
    const glora_vit_arch_t *A = &m->arch;
    const int64_t D = A->dim, M = A->mlp_hidden, P = A->patch, C = A->in_chans, H = A->heads, HD = D / H,
                  K = A->num_classes;
    size_t most = (size_t)(D * (M > D ? M : D));
    if ((size_t)(P * P * C * D) > most) most = (size_t)(P * P * C * D);
    if (with_head && (size_t)(D * K) > most) most = (size_t)(D * K);
    ctx_t c = {m, z, prefix_of(z), malloc(most * sizeof(float))};
    if (!c.tmp) return glora_error(GLORA_ENOMEM, "npz archive '%s': out of memory", glora_npz_path(z));
    int rc = GLORA_OK;
#define TRY(x) do { if ((rc = (x))) goto out; } while (0)
    /* Patch embedding: HWIO [P, P, C, D] -> OIHW [D, C, P, P]. */
    {
        const glora_npz_array_t *a;
        TRY(get(z, c.px, &a, 4, SH(P, P, C, D), "embedding/kernel", 0));
        TRY(glora_npz_read_f32(z, a, c.tmp, a->numel));
        float *w = param(m, "patch_embed.proj.weight", 0);
        for (int64_t y = 0; y < P; y++)
            for (int64_t x = 0; x < P; x++)
                for (int64_t ch = 0; ch < C; ch++)
                    for (int64_t d = 0; d < D; d++)
                        w[((d * C + ch) * P + y) * P + x] = c.tmp[((y * P + x) * C + ch) * D + d];
    }
    TRY(plain(&c, param(m, "patch_embed.proj.bias", 0), 1, SH(D), "embedding/bias", 0));
    TRY(plain(&c, param(m, "cls_token", 0), 3, SH(1, 1, D), "cls", 0));
    TRY(plain(&c, param(m, "pos_embed", 0), 3, SH(1, A->tokens, D), "Transformer/posembed_input/pos_embedding", 0));
    static const char *const qkv[3] = {"query", "key", "value"};
    for (int i = 0; i < A->depth; i++) {
#define B "Transformer/encoderblock_%d/"
#define MHA B "MultiHeadDotProductAttention_1/"
        TRY(plain(&c, param(m, "blocks.%d.norm1.weight", i), 1, SH(D), B "LayerNorm_0/scale", i));
        TRY(plain(&c, param(m, "blocks.%d.norm1.bias", i), 1, SH(D), B "LayerNorm_0/bias", i));
        /* query/key/value kernels [D, H, HD] flattened to [D, D], transposed,
         * stacked into qkv.weight [3D, D]; biases [H, HD] into qkv.bias. */
        float *w = param(m, "blocks.%d.attn.qkv.weight", i), *b = param(m, "blocks.%d.attn.qkv.bias", i);
        for (int k = 0; k < 3; k++) {
            char fmt[160];
            snprintf(fmt, sizeof fmt, "Transformer/encoderblock_%%d/MultiHeadDotProductAttention_1/%s/kernel", qkv[k]);
            TRY(transposed(&c, w + (size_t)k * D * D, 3, SH(D, H, HD), 1, fmt, i));
            snprintf(fmt, sizeof fmt, "Transformer/encoderblock_%%d/MultiHeadDotProductAttention_1/%s/bias", qkv[k]);
            TRY(plain(&c, b + (size_t)k * D, 2, SH(H, HD), fmt, i));
        }
        /* out kernel [H, HD, D] = [D_in, D] -> proj.weight [D, D_in]. */
        TRY(transposed(&c, param(m, "blocks.%d.attn.proj.weight", i), 3, SH(H, HD, D), 2, MHA "out/kernel", i));
        TRY(plain(&c, param(m, "blocks.%d.attn.proj.bias", i), 1, SH(D), MHA "out/bias", i));
        TRY(plain(&c, param(m, "blocks.%d.norm2.weight", i), 1, SH(D), B "LayerNorm_2/scale", i));
        TRY(plain(&c, param(m, "blocks.%d.norm2.bias", i), 1, SH(D), B "LayerNorm_2/bias", i));
        TRY(transposed(&c, param(m, "blocks.%d.mlp.fc1.weight", i), 2, SH(D, M), 1, B "MlpBlock_3/Dense_0/kernel", i));
        TRY(plain(&c, param(m, "blocks.%d.mlp.fc1.bias", i), 1, SH(M), B "MlpBlock_3/Dense_0/bias", i));
        TRY(transposed(&c, param(m, "blocks.%d.mlp.fc2.weight", i), 2, SH(M, D), 1, B "MlpBlock_3/Dense_1/kernel", i));
        TRY(plain(&c, param(m, "blocks.%d.mlp.fc2.bias", i), 1, SH(D), B "MlpBlock_3/Dense_1/bias", i));
#undef MHA
#undef B
    }
    TRY(plain(&c, param(m, "norm.weight", 0), 1, SH(D), "Transformer/encoder_norm/scale", 0));
    TRY(plain(&c, param(m, "norm.bias", 0), 1, SH(D), "Transformer/encoder_norm/bias", 0));
    if (with_head && K > 0) {
        TRY(transposed(&c, param(m, "head.weight", 0), 2, SH(D, K), 1, "head/kernel", 0));
        TRY(plain(&c, param(m, "head.bias", 0), 1, SH(K), "head/bias", 0));
    }
#undef TRY
out:
    free(c.tmp);
    return rc;
}
