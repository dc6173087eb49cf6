/* Loading and saving ViTs and GLoRA tensors as safetensors files. The
 * architecture is read off the tensor shapes; only the number of heads has to
 * come from metadata or the caller. */
#include "glora/model.h"
#include "glora/common.h"
#include "util/fileio.h"
#include "glora/npz.h"
#include "glora/safetensors.h"
#include "glora/timm.h"
#include "model-impl.h"

#include <cjson/cJSON.h>
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

/* glora.class_names must be a JSON array of n strings (each 1..1024 bytes). */
static int class_names_check(const char *json, int n, const char *path) {
    cJSON *a = cJSON_Parse(json);
    int k = a && cJSON_IsArray(a) ? cJSON_GetArraySize(a) : -1, ok = k == n;
    for (int i = 0; ok && i < k; i++) {
        const cJSON *s = cJSON_GetArrayItem(a, i);
        ok = cJSON_IsString(s) && s->valuestring[0] && strlen(s->valuestring) <= 1024;
    }
    cJSON_Delete(a);
    if (ok) return GLORA_OK;
    return glora_error(GLORA_EFORMAT, "model '%s': metadata %s must be a JSON array of %d class names "
                       "(non-empty strings), one per class of the head", path, GLORA_META_CLASS_NAMES, n);
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

/* Tensors of timm ViT variants glora does not implement: refused by name
 * before the shapes are read, so the message says what is wrong. */
static int refuse_variants(const glora_st_t *st) {
    static const char *const what[][2] = {
        {"dist_token", "a distillation token (DeiT distilled)"},
        {"head_dist.", "a distillation head (DeiT distilled)"},
        {"fc_norm.", "fc_norm (average pooling)"},
        {"norm_pre.", "norm_pre (a pre-norm, as in CLIP)"},
        {"reg_token", "register tokens"},
        {"attn_pool.", "attention pooling"},
        {".ls1.", "layer scale"},
        {".ls2.", "layer scale"},
        {".q_norm.", "q/k normalisation"},
        {".k_norm.", "q/k normalisation"},
        {"patch_embed.backbone.", "a hybrid (CNN) stem"},
        {"patch_embed.norm.", "a patch-embedding norm"},
        {"pre_logits.", "a pre-logits layer"},
    };
    for (size_t i = 0; i < glora_st_count(st); i++) {
        const char *name = glora_st_tensor(st, i)->name;
        for (size_t k = 0; k < sizeof what / sizeof what[0]; k++) {
            if (strstr(name, what[k][0]))
                return glora_error(GLORA_EFORMAT,
                                   "tensor '%.80s' in '%s': %s is not supported (glora loads the classic timm "
                                   "ViT / DeiT: cls token, learned positions, pre-norm blocks, final norm, head)",
                                   name, glora_st_path(st), what[k][1]);
        }
    }
    return GLORA_OK;
}

/* The architecture a backbone safetensors file's tensor shapes give (all but
 * the heads); num_classes 0 when it has no head. */
static int st_arch(const glora_st_t *bb, glora_vit_arch_t *a) {
    int rc = refuse_variants(bb);
    if (rc) return rc;
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
    const glora_st_tensor_t *head = glora_st_find(bb, "head.weight");
    if (head && head->ndim != 2)
        return glora_error(GLORA_EFORMAT, "tensor 'head.weight' in '%s': 2 dimensions expected, found %d",
                           glora_st_path(bb), head->ndim);
    if (!head && glora_st_find(bb, "head.bias"))
        return glora_error(GLORA_EFORMAT, "tensor 'head.weight' in '%s': missing (head.bias is there)", glora_st_path(bb));
    a->num_classes = head ? (int)head->shape[0] : 0;
    return GLORA_OK;
}

/* The number of attention heads, which no tensor shape of a timm file gives:
 * from every source that says something, and they must agree. */
typedef struct {
    int n;
    int value[6];
    char from[6][1200];
} heads_t;

static void heads_add(heads_t *h, int value, const char *fmt, const char *arg) {
    if (value <= 0 || h->n == 6) return;
    h->value[h->n] = value;
    snprintf(h->from[h->n], sizeof h->from[0], fmt, arg);
    h->n++;
}

/* A timm architecture named by model.arch or config.json must fit the file. */
static int arch_fits(const glora_timm_arch_t *t, const glora_vit_arch_t *a, const char *path, const char *from) {
    if (t->dim == a->dim && t->depth == a->depth && t->patch == a->patch && t->img_size == a->img_size)
        return GLORA_OK;
    return glora_error(GLORA_ESTATE, "model '%s': %s names %s (dim %d, depth %d, patch %d, %dx%d images), but the "
                       "file's tensors give dim %d, depth %d, patch %d, %dx%d images", path, from, t->name, t->dim,
                       t->depth, t->patch, t->img_size, t->img_size, a->dim, a->depth, a->patch, a->img_size,
                       a->img_size);
}

static int resolve_heads(const char *bb_path, const glora_st_t *bb, const glora_st_t *ad, int file_heads,
                         const glora_vit_load_opts_t *o, glora_vit_arch_t *a) {
    heads_t h = {0};
    int meta = 0, rc;
    heads_add(&h, o->heads, "the config (model.heads)%s", "");
    if ((rc = parse_meta_int(bb, GLORA_META_HEADS, &meta)) < 0) return rc;
    heads_add(&h, meta, "the metadata of '%s'", bb_path);
    heads_add(&h, file_heads, "the query kernels of '%s'", bb_path);
    meta = 0;
    if ((rc = parse_meta_int(ad, GLORA_META_HEADS, &meta)) < 0) return rc;
    if (ad) heads_add(&h, meta, "the metadata of '%s'", glora_st_path(ad));
    if (o->arch && o->arch[0]) {
        const glora_timm_arch_t *t = glora_timm_arch_find(o->arch);
        if (!t) {
            int e = glora_error(GLORA_EINVAL, "model.arch '%.96s': not a timm architecture glora knows", o->arch);
            glora_error_hint("one of: %s", glora_timm_arch_names());
            return e;
        }
        if ((rc = arch_fits(t, a, bb_path, "model.arch"))) return rc;
        heads_add(&h, t->heads, "model.arch '%s'", t->name);
    }
    glora_timm_config_t cfg = {.num_classes = -1};
    int found;
    char cpath[1100];
    if ((rc = glora_timm_config_beside(bb_path, &cfg, &found, cpath, sizeof cpath))) return rc;
    if (found) {
        if (cfg.num_classes >= 0 && cfg.num_classes != a->num_classes)
            return glora_error(GLORA_ESTATE, "config '%s': num_classes %d, but '%s' has a head of %d classes "
                               "(is this config.json for another model?)", cpath, cfg.num_classes, bb_path,
                               a->num_classes);
        if (cfg.architecture[0]) {
            const glora_timm_arch_t *t = glora_timm_arch_find(cfg.architecture);
            char from[1200];
            snprintf(from, sizeof from, "'%s'", cpath);
            if (t && (rc = arch_fits(t, a, bb_path, from))) return rc;
            if (t) heads_add(&h, t->heads, "'%s' (its architecture)", cpath);
        }
        heads_add(&h, cfg.num_heads, "'%s' (model_args.num_heads)", cpath);
    }
    for (int i = 1; i < h.n; i++) {
        if (h.value[i] != h.value[0])
            return glora_error(GLORA_ESTATE, "model '%s': %s says %d attention heads, %s says %d", bb_path,
                               h.from[0], h.value[0], h.from[i], h.value[i]);
    }
    if (h.n == 0) {
        int e = glora_error(GLORA_EINVAL, "model '%s': the number of attention heads is not known (not in the "
                            "file's metadata, no timm config.json beside it)", bb_path);
        glora_error_hint("name the timm architecture with model.arch (one of: %s), or set model.heads (--heads)",
                         glora_timm_arch_names());
        return e;
    }
    a->heads = h.value[0];
    return GLORA_OK;
}

static int derive_arch(const char *bb_path, const glora_st_t *bb, const glora_npz_t *npz, const glora_st_t *ad,
                       const glora_vit_load_opts_t *o, glora_vit_arch_t *a, int *rank) {
    int rc, file_heads = 0;
    memset(a, 0, sizeof *a);
    if (npz) rc = glora_vit_npz_arch(npz, a, &file_heads);
    else rc = st_arch(bb, a);
    if (rc) return rc;
    /* The head: the adapter file's (a new head for the task) wins. */
    const glora_st_tensor_t *head = ad ? glora_st_find(ad, "head.weight") : NULL;
    if (head && head->ndim != 2)
        return glora_error(GLORA_EFORMAT, "tensor 'head.weight' in '%s': 2 dimensions expected, found %d",
                           glora_st_path(ad), head->ndim);
    if ((rc = resolve_heads(bb_path, bb, ad, file_heads, o, a))) return rc;
    if (head) a->num_classes = (int)head->shape[0];
    int rc2 = glora_vit_arch_check(a);
    if (rc2) return glora_error(rc2, "model '%s': %s", bb_path, glora_errmsg());

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
            return glora_error(GLORA_EFORMAT, "tensor '%s' in '%s': unexpected: not part of a classic timm ViT "
                               "with GLoRA layers", t->name, glora_st_path(st));
        if (!(p->role & mask)) continue;
        int rc = glora_st_load_f32(st, p->name, p->ndim, p->shape, m->mem + p->offset);
        if (rc) return rc;
        glora_st_release(st, t); /* no second copy of the file resident */
        loaded[p - m->params] = 1;
    }
    return GLORA_OK;
}

int glora_vit_load(glora_vit_t **out, const char *backbone_path, const char *adapter_path, int heads) {
    glora_vit_load_opts_t o = {.heads = heads};
    return glora_vit_load_ex(out, backbone_path, adapter_path, &o);
}

int glora_vit_load_ex(glora_vit_t **out, const char *backbone_path, const char *adapter_path,
                      const glora_vit_load_opts_t *opts) {
    *out = NULL;
    glora_st_t *bb = NULL, *ad = NULL;
    glora_npz_t *npz = NULL;
    glora_vit_t *m = NULL;
    unsigned char *loaded = NULL;
    glora_vit_arch_t arch;
    int rank, rc;
    /* A NumPy .npz (Google's original checkpoints) or a safetensors file. */
    size_t plen = strlen(backbone_path);
    int is_npz = glora_npz_sniff(backbone_path) || (plen > 4 && strcmp(backbone_path + plen - 4, ".npz") == 0);
    if (is_npz) rc = glora_npz_open(&npz, backbone_path);
    else rc = glora_st_open(&bb, backbone_path);
    if (!rc && adapter_path) rc = glora_st_open(&ad, adapter_path);
    if (!rc) rc = derive_arch(backbone_path, bb, npz, ad, opts, &arch, &rank);
    if (!rc) rc = glora_vit_create(&m, &arch, rank);
    if (!rc && !(loaded = calloc((size_t)m->n_params, 1)))
        rc = glora_error(GLORA_ENOMEM, "model '%s': out of memory", backbone_path);
    if (rc) goto out;
    /* The backbone file gives the plain ViT (and possibly GLoRA tensors, as
     * the official code's state dict does); the adapter file gives GLoRA
     * tensors and a head, which replace the backbone's. */
    int head_from_adapter = ad && glora_st_find(ad, "head.weight");
    if (npz) {
        rc = glora_vit_npz_fill(m, npz, !head_from_adapter);
        for (int i = 0; i < m->n_params; i++)
            loaded[i] = m->params[i].role == GLORA_ROLE_BACKBONE || (!head_from_adapter && m->params[i].role == GLORA_ROLE_HEAD);
    } else {
        rc = fill_from(m, bb, GLORA_ROLE_BACKBONE | GLORA_ROLE_ADAPTER | (head_from_adapter ? 0 : GLORA_ROLE_HEAD),
                       loaded);
    }
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
        if (!loaded[i] && m->params[i].numel > 0) {
            const char *where = m->params[i].role == GLORA_ROLE_ADAPTER && ad ? adapter_path : backbone_path;
            rc = glora_error(GLORA_EFORMAT, "tensor '%s' in '%s': missing", m->params[i].name, where);
        }
    }
    if (!rc) {
        const char *sha = ad ? glora_st_meta(ad, GLORA_META_BACKBONE_SHA256) : NULL;
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
    /* The class names of the file the head comes from. */
    if (!rc) {
        const glora_st_t *from = ad && glora_st_find(ad, "head.weight") ? ad : bb;
        const char *names = from ? glora_st_meta(from, GLORA_META_CLASS_NAMES) : NULL;
        if (names) rc = class_names_check(names, m->arch.num_classes, ad && from == ad ? adapter_path : backbone_path);
        if (names && !rc && !(m->class_names = strdup(names)))
            rc = glora_error(GLORA_ENOMEM, "model '%s': out of memory", backbone_path);
    }
out:
    free(loaded);
    glora_st_close(bb);
    glora_npz_close(npz);
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
    const char **kv = calloc(2 * (n_meta + 3), sizeof *kv);
    if (!e || !kv) {
        free(e);
        free(kv);
        return glora_error(GLORA_ENOMEM, "cannot write '%s': out of memory", path);
    }
    size_t n = 0;
    for (int i = 0; i < m->n_params; i++) {
        const glora_param_t *p = &m->params[i];
        if (!(p->role & role_mask) || p->numel == 0) continue; /* no head: no head tensors */
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
    kv[nk++] = GLORA_META_HEADS;
    kv[nk++] = heads;
    if (m->rank > 0 && (role_mask & GLORA_ROLE_ADAPTER)) {
        kv[nk++] = GLORA_META_RANK;
        kv[nk++] = rank;
    }
    if (m->class_names && (role_mask & GLORA_ROLE_HEAD)) {
        kv[nk++] = GLORA_META_CLASS_NAMES;
        kv[nk++] = m->class_names;
    }
    for (size_t i = 0; i < 2 * n_meta; i++) kv[nk++] = meta[i];
    int rc = glora_st_write(path, e, n, kv, nk / 2);
    free(e);
    free(kv);
    return rc;
}
