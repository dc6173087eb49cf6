/* Loading and saving ViTs and GLoRA tensors as safetensors files. The
 * architecture is read off the tensor shapes; only the number of heads has to
 * come from metadata or the caller. */
#include "glora/model.h"
#include "glora/common.h"
#include "glora/fileio.h"
#include "glora/safetensors.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Shape of a tensor that must exist, with a message naming file and tensor. */
static const glora_st_tensor_t *need(const glora_st_t *st, const char *name, int ndim, int *rc) {
    const glora_st_tensor_t *t = glora_st_find(st, name);
    if (!t) {
        *rc = glora_error(GLORA_EFORMAT, "tensor '%s' in '%s': missing (is this a timm ViT?)", name,
                          glora_st_path(st));
    } else if (t->ndim != ndim) {
        *rc = glora_error(GLORA_EFORMAT, "tensor '%s' in '%s': %d dimensions expected, found %d",
                          name, glora_st_path(st), ndim, t->ndim);
        t = NULL;
    }
    return t;
}

static int parse_meta_int(const glora_st_t *st, const char *key, int *out) {
    const char *v = st ? glora_st_meta(st, key) : NULL;
    if (!v) return 0;
    char *end;
    long x = strtol(v, &end, 10);
    if (*v == '\0' || *end != '\0' || x < 1 || x > 100000)
        return glora_error(GLORA_EFORMAT, "metadata '%s' in '%s': '%s' is not a positive integer", key,
                           glora_st_path(st), v);
    *out = (int)x;
    return 1;
}

static int derive_arch(const glora_st_t *bb, const glora_st_t *ad, int heads, glora_vit_arch_t *a,
                       int *rank) {
    int rc = GLORA_OK;
    memset(a, 0, sizeof *a);
    const glora_st_tensor_t *pw = need(bb, "patch_embed.proj.weight", 4, &rc);
    if (!pw) return rc;
    if (pw->shape[2] != pw->shape[3])
        return glora_error(GLORA_EFORMAT, "tensor 'patch_embed.proj.weight' in '%s': non-square patches %lldx%lld",
                           glora_st_path(bb), (long long)pw->shape[2], (long long)pw->shape[3]);
    a->dim = (int)pw->shape[0];
    a->in_chans = (int)pw->shape[1];
    a->patch = (int)pw->shape[2];
    const glora_st_tensor_t *pos = need(bb, "pos_embed", 3, &rc);
    if (!pos) return rc;
    int64_t np = pos->shape[1] - 1;
    int64_t side = (int64_t)llround(sqrt((double)(np > 0 ? np : 0)));
    if (np < 1 || side * side != np)
        return glora_error(GLORA_EFORMAT, "tensor 'pos_embed' in '%s': %lld tokens is not a square grid plus a cls token",
                           glora_st_path(bb), (long long)pos->shape[1]);
    a->img_size = (int)(side * a->patch);
    while (1) {
        char name[64];
        snprintf(name, sizeof name, "blocks.%d.norm1.weight", a->depth);
        if (!glora_st_find(bb, name) || a->depth >= 256) break;
        a->depth++;
    }
    if (a->depth == 0)
        return glora_error(GLORA_EFORMAT, "tensor 'blocks.0.norm1.weight' in '%s': missing (no transformer blocks)",
                           glora_st_path(bb));
    const glora_st_tensor_t *fc1 = need(bb, "blocks.0.mlp.fc1.weight", 2, &rc);
    if (!fc1) return rc;
    a->mlp_hidden = (int)fc1->shape[0];
    /* The head: the adapter file's (a new head for the task) wins. */
    const glora_st_tensor_t *head = ad ? glora_st_find(ad, "head.weight") : NULL;
    const glora_st_t *head_file = ad;
    if (!head) { head = glora_st_find(bb, "head.weight"); head_file = bb; }
    if (!head)
        return glora_error(GLORA_EFORMAT, "tensor 'head.weight' in '%s': missing (no classification head)",
                           glora_st_path(bb));
    if (head->ndim != 2)
        return glora_error(GLORA_EFORMAT, "tensor 'head.weight' in '%s': 2 dimensions expected, found %d",
                           glora_st_path(head_file), head->ndim);
    a->num_classes = (int)head->shape[0];

    int meta_heads = 0, m1 = parse_meta_int(bb, "glora.heads", &meta_heads);
    if (m1 < 0) return m1;
    if (m1 == 0 && ad) {
        int m2 = parse_meta_int(ad, "glora.heads", &meta_heads);
        if (m2 < 0) return m2;
    }
    if (heads > 0 && meta_heads > 0 && heads != meta_heads)
        return glora_error(GLORA_ESTATE, "model '%s': the config says %d heads, the file's metadata %d",
                           glora_st_path(bb), heads, meta_heads);
    a->heads = heads > 0 ? heads : meta_heads;
    if (a->heads == 0) {
        int e = glora_error(GLORA_EINVAL, "model '%s': the number of attention heads is not in the file's metadata",
                            glora_st_path(bb));
        glora_error_hint("set it in the config (model.heads) or with --heads");
        return e;
    }
    int rc2 = glora_vit_arch_check(a);
    if (rc2) return glora_error(rc2, "model '%s': %s", glora_st_path(bb), glora_errmsg());

    /* GLoRA rank: from the adapter tensors, wherever they are. */
    *rank = 0;
    const glora_st_t *files[2] = {bb, ad};
    for (int f = 0; f < 2 && *rank == 0; f++) {
        if (!files[f]) continue;
        const glora_st_tensor_t *t = glora_st_find(files[f], "blocks.0.attn.qkv.Ad");
        if (t) {
            if (t->ndim != 2 || t->shape[1] < 1 || t->shape[1] > GLORA_MAX_RANK)
                return glora_error(GLORA_EFORMAT, "tensor 'blocks.0.attn.qkv.Ad' in '%s': shape (out, rank) with rank 1..%d expected",
                                   glora_st_path(files[f]), GLORA_MAX_RANK);
            *rank = (int)t->shape[1];
        }
    }
    if (ad && *rank == 0 && !glora_st_find(ad, "head.weight"))
        return glora_error(GLORA_EFORMAT, "adapter '%s': neither GLoRA tensors nor a head", glora_st_path(ad));
    return GLORA_OK;
}

/* Loads every parameter found in st whose role is in mask; tensors of st
 * that the model has no place for are an error. */
static int fill_from(glora_vit_t *m, const glora_st_t *st, int mask, unsigned char *loaded) {
    for (size_t i = 0; i < glora_st_count(st); i++) {
        const glora_st_tensor_t *t = glora_st_tensor(st, i);
        const glora_param_t *p = glora_vit_param(m, t->name);
        if (!p)
            return glora_error(GLORA_EFORMAT, "tensor '%s' in '%s': not part of a ViT with GLoRA layers",
                               t->name, glora_st_path(st));
        if (!(p->role & mask)) continue;
        int rc = glora_st_load_f32(st, p->name, p->ndim, p->shape, m->mem + p->offset);
        if (rc) return rc;
        loaded[p - m->params] = 1;
    }
    return GLORA_OK;
}

int glora_vit_load(glora_vit_t **out, const char *backbone_path, const char *adapter_path, int heads) {
    *out = NULL;
    glora_st_t *bb = NULL, *ad = NULL;
    glora_vit_t *m = NULL;
    unsigned char *loaded = NULL;
    glora_vit_arch_t arch;
    int rank;
    int rc = glora_st_open(&bb, backbone_path);
    if (!rc && adapter_path) rc = glora_st_open(&ad, adapter_path);
    if (!rc) rc = derive_arch(bb, ad, heads, &arch, &rank);
    if (!rc) rc = glora_vit_create(&m, &arch, rank);
    if (!rc && !(loaded = calloc((size_t)m->n_params, 1)))
        rc = glora_error(GLORA_ENOMEM, "model '%s': out of memory", backbone_path);
    if (rc) goto out;
    /* The backbone file gives the plain ViT (and possibly GLoRA tensors, as
     * the official code's state dict does); the adapter file gives GLoRA
     * tensors and a head, which replace the backbone's. */
    int head_from_adapter = ad && glora_st_find(ad, "head.weight");
    rc = fill_from(m, bb, GLORA_ROLE_BACKBONE | GLORA_ROLE_ADAPTER | (head_from_adapter ? 0 : GLORA_ROLE_HEAD),
                   loaded);
    if (!rc && ad) {
        /* A GLoRA tensor in both files is ambiguous: refuse it. */
        for (size_t i = 0; i < glora_st_count(ad) && !rc; i++) {
            const glora_st_tensor_t *t = glora_st_tensor(ad, i);
            const glora_param_t *p = glora_vit_param(m, t->name);
            if (p && p->role == GLORA_ROLE_ADAPTER && loaded[p - m->params])
                rc = glora_error(GLORA_EFORMAT, "tensor '%s' in '%s': also in the backbone '%s'",
                                 t->name, adapter_path, backbone_path);
            else if (p && p->role == GLORA_ROLE_BACKBONE)
                rc = glora_error(GLORA_EFORMAT, "tensor '%s' in '%s': a backbone tensor in an adapter file",
                                 t->name, adapter_path);
        }
        if (!rc) rc = fill_from(m, ad, GLORA_ROLE_ADAPTER | GLORA_ROLE_HEAD, loaded);
    }
    for (int i = 0; i < m->n_params && !rc; i++) {
        if (!loaded[i]) {
            const char *where = m->params[i].role == GLORA_ROLE_ADAPTER && ad ? adapter_path : backbone_path;
            rc = glora_error(GLORA_EFORMAT, "tensor '%s' in '%s': missing", m->params[i].name, where);
        }
    }
    if (!rc) {
        const char *sha = glora_st_meta(ad ? ad : bb, "glora.backbone_sha256");
        if (ad && sha) {
            snprintf(m->backbone_sha256, sizeof m->backbone_sha256, "%s", sha);
        }
        char actual[65];
        rc = glora_sha256_file(backbone_path, actual);
        if (!rc && ad && sha && strcmp(sha, actual) != 0) {
            rc = glora_error(GLORA_ESTATE, "adapter '%s': trained on a backbone with sha256 %.12s..., but '%s' has %.12s...",
                             adapter_path, sha, backbone_path, actual);
            glora_error_hint("pass the backbone file the adapter was trained on");
        }
        if (!rc) memcpy(m->backbone_sha256, actual, sizeof actual);
    }
out:
    free(loaded);
    glora_st_close(bb);
    glora_st_close(ad);
    if (rc) {
        glora_vit_free(m);
        return rc;
    }
    *out = m;
    return GLORA_OK;
}

int glora_vit_save(const glora_vit_t *m, const char *path, int role_mask,
                   const char *const *meta, size_t n_meta) {
    glora_st_entry_t *e = calloc((size_t)m->n_params, sizeof *e);
    const char **kv = calloc(2 * (n_meta + 2), sizeof *kv);
    if (!e || !kv) {
        free(e);
        free(kv);
        return glora_error(GLORA_ENOMEM, "cannot write '%s': out of memory", path);
    }
    size_t n = 0;
    for (int i = 0; i < m->n_params; i++) {
        const glora_param_t *p = &m->params[i];
        if (!(p->role & role_mask)) continue;
        e[n].name = p->name;
        e[n].ndim = p->ndim;
        e[n].shape = p->shape;
        e[n].data = m->mem + p->offset;
        n++;
    }
    char heads[16], rank[16];
    snprintf(heads, sizeof heads, "%d", m->arch.heads);
    snprintf(rank, sizeof rank, "%d", m->rank);
    size_t nk = 0;
    kv[nk++] = "glora.heads";
    kv[nk++] = heads;
    if (m->rank > 0 && (role_mask & GLORA_ROLE_ADAPTER)) {
        kv[nk++] = "glora.rank";
        kv[nk++] = rank;
    }
    for (size_t i = 0; i < 2 * n_meta; i++) kv[nk++] = meta[i];
    int rc = glora_st_write(path, e, n, kv, nk / 2);
    free(e);
    free(kv);
    return rc;
}
