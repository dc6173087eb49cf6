/*
 * glora/model.h - a ViT with timm semantics and GLoRA supernet layers.
 *
 * Architecture: patch embedding (conv, kernel = stride = patch), cls token,
 * learned position embedding, `depth` pre-norm blocks
 *     x = x + proj(attn(norm1(x)));  x = x + fc2(gelu(fc1(norm2(x))))
 * (LayerNorm eps 1e-6, qkv with bias, exact GELU), final norm, linear head on
 * the cls token. Adapted layers: attn.qkv, attn.proj, mlp.fc1, mlp.fc2 of
 * every block (layer index l = 4 * block + site), never the head.
 *
 * Memory: all parameters live in ONE allocation (m->mem) with named views
 * (m->params[i] in timm / official GLoRA names, and the typed pointers of
 * m->w). Files are safetensors with the same names, so checkpoints move
 * between glora and PyTorch without conversion.
 *
 * Metadata keys glora reads and writes (all string values):
 *   glora.heads            number of attention heads
 *   glora.rank             supernet rank R of the GLoRA tensors
 *   glora.kind             "backbone", "supernet", "adapter" or "merged"
 *   glora.backbone_sha256  sha256 of the backbone file an adapter was trained on
 *   glora.subnet           (adapter files) the subnet spec JSON it was trained for
 *   glora.class_names      (files with a head, when known) JSON array of the
 *                          head's num_classes class names, e.g. ["cat", "dog"]
 */
#ifndef GLORA_MODEL_H
#define GLORA_MODEL_H

/* The metadata keys above, and those of glora convert and the merged model
 * (docs/formats.md): write and read them through these names. */
#define GLORA_META_HEADS "glora.heads"
#define GLORA_META_RANK "glora.rank"
#define GLORA_META_KIND "glora.kind"   /* backbone, supernet, adapter, merged; checkpoint, early-stop (state) */
#define GLORA_META_BACKBONE_SHA256 "glora.backbone_sha256" /* the backbone file the tensors belong to */
#define GLORA_META_SUBNET "glora.subnet"                 /* the subnet spec (JSON) of an adapter */
#define GLORA_META_SUBNET_PARAMS "glora.subnet_params"   /* GLoRA parameters folded into a merged model */
#define GLORA_META_CLASS_NAMES "glora.class_names"
#define GLORA_META_SOURCE "glora.source"                 /* glora convert: the input's file name */

#include <stddef.h>

#include "glora/gemm.h"
#include <stdint.h>

#include "glora/layer.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { GLORA_SITE_QKV = 0, GLORA_SITE_PROJ, GLORA_SITE_FC1, GLORA_SITE_FC2, GLORA_SITES };

typedef struct {
    int img_size;    /* square images, img_size x img_size */
    int in_chans;
    int patch;
    int dim;
    int depth;
    int heads;
    int mlp_hidden;
    int num_classes; /* 0: no head (a backbone for a new task's head) */
    int num_patches; /* (img_size / patch)^2 */
    int tokens;      /* num_patches + 1 */
} glora_vit_arch_t;

/* Which part of the model a tensor belongs to; used as bit masks. */
enum {
    GLORA_ROLE_BACKBONE = 1, /* everything of the plain ViT except the head */
    GLORA_ROLE_HEAD = 2,     /* head.weight, head.bias */
    GLORA_ROLE_ADAPTER = 4,  /* the eight GLoRA tensors of each adapted layer */
    GLORA_ROLE_ALL = 7,
};

typedef struct {
    char name[64];
    int ndim;
    int64_t shape[4];
    size_t numel;
    size_t offset; /* in floats, from the start of the model's memory */
    int role;
} glora_param_t;

/* Typed views of one block's tensors. */
typedef struct {
    float *ln1_w, *ln1_b, *qkv_w, *qkv_b, *proj_w, *proj_b;
    float *ln2_w, *ln2_b, *fc1_w, *fc1_b, *fc2_w, *fc2_b;
} glora_vit_block_t;

typedef struct {
    float *patch_w, *patch_b, *cls, *pos;
    glora_vit_block_t *blk; /* depth entries */
    float *norm_w, *norm_b, *head_w, *head_b;
} glora_vit_weights_t;

typedef struct {
    glora_vit_arch_t arch;
    int rank;                  /* GLoRA rank R; 0: no adapter tensors */
    float *mem;                /* all parameters, n_floats of them */
    size_t n_floats;
    glora_param_t *params;     /* n_params named views */
    int n_params;
    glora_vit_weights_t w;     /* typed views into mem */
    glora_adapter_t *adapters; /* 4 * depth, or NULL when rank == 0 */
    char backbone_sha256[65];  /* of the backbone file it was loaded from ("" if none) */
    /* The names of the head's classes, a JSON array of num_classes strings
     * (metadata glora.class_names), or NULL; malloc'd, freed with the model.
     * glora_vit_save writes it with the head; glora_vit_load reads it from
     * the file the head comes from. */
    char *class_names;
    /* Arithmetic of the forward's products with a frozen or merged weight
     * (the adapted linears and the patch embedding; glora/gemm.h). Set it
     * before creating linears; GLORA_FP32 after glora_vit_create. */
    glora_precision_t precision;
} glora_vit_t;

/* Checks an architecture (positive sizes, patch divides the image, heads
 * divide dim) and fills num_patches / tokens. */
int glora_vit_arch_check(glora_vit_arch_t *arch);

/* A zero-initialised model of the given architecture with adapter tensors of
 * the given rank (0 for none). */
int glora_vit_create(glora_vit_t **out, const glora_vit_arch_t *arch, int rank);
void glora_vit_free(glora_vit_t *m); /* NULL-safe */

/* Loads a backbone file (plain timm ViT), then optionally an adapter file
 * (supernet or retrained adapter: GLoRA tensors and possibly a new head, which
 * replaces the backbone's). heads: number of attention heads when the files'
 * metadata doesn't say (0: metadata required). Architecture numbers come from
 * the tensor shapes; every tensor is checked against them. */
int glora_vit_load(glora_vit_t **out, const char *backbone_path, const char *adapter_path,
                   int heads);

/* glora_vit_load with more ways to learn the number of heads, and other
 * backbone formats. The backbone may be
 *   - a safetensors file with timm's names (any classic timm ViT / DeiT:
 *     Ti/S/B/L, patch 16 or 32, 224 or 384; without a head, as timm's
 *     orig_in21k files, the model has num_classes 0 and its forward pass
 *     gives no logits: training commands add a new head for the task);
 *   - a NumPy .npz with Google's original names (ViT-B_16.npz and kin),
 *     mapped to timm's as timm's _load_weights does (docs/formats.md);
 *     its pre_logits arrays are ignored, as timm 0.6.5 does.
 * The number of heads comes from every source that gives one, which must
 * agree: opts->heads, the files' glora.heads metadata, the .npz query
 * kernels' shape, opts->arch naming a timm architecture (glora/timm.h; its
 * dim, depth, patch and image size must fit the tensors), and a timm hub
 * config.json in the backbone's directory (its architecture or
 * model_args.num_heads; its num_classes must match the backbone's head).
 * Tensors of other ViT variants (fc_norm, norm_pre, dist_token, reg_token,
 * layer scale, ...) are refused with a message naming the tensor. */
typedef struct {
    int heads;        /* 0: from the files, config.json or arch */
    const char *arch; /* a timm architecture name (model.arch), or NULL */
} glora_vit_load_opts_t;

int glora_vit_load_ex(glora_vit_t **out, const char *backbone_path, const char *adapter_path,
                      const glora_vit_load_opts_t *opts);

/* Writes the tensors whose role is in role_mask as F32 safetensors (a model
 * without a head writes no head tensors), atomically, with glora.heads /
 * glora.rank metadata plus the extra key/value pairs in meta (n_meta pairs,
 * may be 0). */
int glora_vit_save(const glora_vit_t *m, const char *path, int role_mask,
                   const char *const *meta, size_t n_meta);

/* Finds a parameter by name (NULL if absent). */
const glora_param_t *glora_vit_param(const glora_vit_t *m, const char *name);

/* Number of adapted layers (4 * depth), and layer l's name ("blocks.3.mlp.fc1"),
 * shapes and frozen weights. */
int glora_vit_layers(const glora_vit_t *m);
void glora_vit_layer_name(int l, char buf[48]);
/* Parses "blocks.<i>.<site>" into a layer index; -1 if not one. */
int glora_vit_layer_index(const glora_vit_t *m, const char *name);
void glora_vit_layer(const glora_vit_t *m, int l, const float **w0, const float **b0,
                     int *out, int *in);

/* Shape (out x in) of adapted layer l of an architecture. */
void glora_arch_layer_shape(const glora_vit_arch_t *a, int l, int *out, int *in);
/* Official parameter count of a whole configuration (4 * depth layers). */
size_t glora_arch_config_params(const glora_vit_arch_t *a, const glora_layer_cfg_t *cfg);
size_t glora_vit_config_params(const glora_vit_t *m, const glora_layer_cfg_t *cfg);

/* The linear weights a forward pass uses: for each adapted layer either the
 * frozen W0/b0 (configuration all none, or cfg NULL) or merged W'/b' held in
 * this object's own memory. */
typedef struct {
    int n;             /* 4 * depth */
    const float **w;   /* n pointers; NULL for a merged layer kept packed only */
    const float **b;
    float *mem;        /* storage of merged layers (packed only: their biases) */
    float *scratch;    /* out*in floats for merging */
    glora_sgemm_b_t *packed; /* n packed weights, or NULL (glora_vit_linears_pack) */
    glora_precision_t precision; /* the model's when created */
    float *merge_w;    /* packed only: one layer's merged weight, before packing */
} glora_vit_linears_t;

int glora_vit_linears_create(glora_vit_linears_t **out, const glora_vit_t *m);
void glora_vit_linears_free(glora_vit_linears_t *lin);
/* From now on keep every layer's weight packed for the GEMM as well, packed
 * again by each glora_vit_linears_set: worth it when one configuration
 * serves several forward passes (the search's batches of one candidate).
 * GLORA_OK or GLORA_ENOMEM. */
int glora_vit_linears_pack(glora_vit_linears_t *lin);
/* glora_vit_linears_pack, and a merged layer's weight is then kept packed
 * only: merged into one layer-sized buffer and packed from there, so that
 * no merged copy of the whole model is kept (ViT-B/16: 340 MB less; the
 * same bits). w[l] is then NULL for a merged layer. Only when the GEMM
 * kernel of lin's precision packs panels (glora_gemm_b_panels_only);
 * otherwise lin just keeps its merged weights beside the packed ones. The
 * kernel must not change while lin is in use (an assertion fails in
 * glora_vit_linears_set otherwise); glora_vit_linears_packed_only says
 * whether lin is packed only for the kernel in use. GLORA_OK or
 * GLORA_ENOMEM. */
int glora_vit_linears_pack_only(glora_vit_linears_t *lin, const glora_vit_t *m);
/* Non-zero when lin keeps its merged weights packed only, for the kernel
 * in use. */
int glora_vit_linears_packed_only(const glora_vit_linears_t *lin);
/* Points every layer at W0/b0 (cfg NULL) or merges the configuration
 * cfg[0 .. 4*depth). Runs on the calling thread. */
void glora_vit_linears_set(glora_vit_linears_t *lin, const glora_vit_t *m,
                           const glora_layer_cfg_t *cfg);

/* Activations of one block, as the forward pass leaves them (N = B * T). */
typedef struct {
    float *ln1, *ln1_mean, *ln1_rstd; /* (N, C), (N), (N) */
    float *qkv;                       /* (N, 3C) */
    float *att;                       /* (B, NH, T, T) softmax probabilities */
    float *attn;                      /* (N, C) attention output, before proj */
    float *res1;                      /* (N, C) x + proj(attn) */
    float *ln2, *ln2_mean, *ln2_rstd; /* (N, C), (N), (N) */
    float *fc1;                       /* (N, H) before GELU */
    float *gelu;                      /* (N, H) */
    float *res2;                      /* (N, C) block output */
} glora_vit_block_acts_t;

/* Workspace of a forward pass for up to max_batch images. With keep_all
 * every block keeps its own activations (training: backward reads them);
 * without, blocks share one set (inference: memory of one block). */
typedef struct {
    size_t max_batch;
    int keep_all;
    float *mem;
    float *patches;                /* (B, NP, Cin*P*P) */
    float *pe;                     /* (B, NP, C) */
    float *x0;                     /* (N, C) tokens in */
    glora_vit_block_acts_t *blk;   /* depth entries */
    float *lnf, *lnf_mean, *lnf_rstd; /* (N, C), (N), (N) final norm */
    float *cls;                    /* (B, C) */
    float *logits;                 /* (B, classes) */
} glora_vit_acts_t;

int glora_vit_acts_create(glora_vit_acts_t **out, const glora_vit_t *m, size_t max_batch,
                          int keep_all);
void glora_vit_acts_free(glora_vit_acts_t *a);

/* Forward pass of B <= max_batch images x (B, Cin, H, W) with the given
 * linears; logits land in a->logits (B, classes), and the final norm's cls
 * rows in a->cls. With an inference workspace (keep_all 0) the last block
 * runs for the cls token alone, so of the other activations only the
 * earlier blocks' are meaningful; the logits are the same bits either way. */
void glora_vit_forward(const glora_vit_t *m, const glora_vit_linears_t *lin,
                       glora_vit_acts_t *a, const float *x, size_t B);

/* The two halves of glora_vit_forward, for callers that reuse the first:
 * the patch embedding and token sequence of B images x into a->x0 (B, T, C),
 * the part of the pass no adapter touches; then the blocks, the final norm
 * and the head from tokens x0 (B, T, C), which are only read (x0 may be a
 * copy of a->x0 kept elsewhere). */
void glora_vit_embed(const glora_vit_t *m, glora_vit_acts_t *a, const float *x, size_t B);
void glora_vit_forward_tokens(const glora_vit_t *m, const glora_vit_linears_t *lin,
                              glora_vit_acts_t *a, const float *x0, size_t B);

/* Top-1 correct predictions of the B logits rows in a->logits against y. */
size_t glora_vit_count_top1(const glora_vit_t *m, const glora_vit_acts_t *a, const int *y, size_t B);

/* Top-1 correct predictions over n images (x: n images, y: labels), in
 * batches of the workspace's max_batch. */
size_t glora_vit_count_correct(const glora_vit_t *m, const glora_vit_linears_t *lin,
                               glora_vit_acts_t *a, const float *x, const int *y, size_t n);


#ifdef __cplusplus
}
#endif
#endif
