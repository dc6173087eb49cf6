/*
 * glora/data.h - image classification datasets: IDX files (MNIST,
 * Fashion-MNIST), subsets, k-shot selection and domain-shifted copies.
 *
 * IDX layout, byte by byte (all integers big-endian), plain or gzipped
 * (a file starting with 1f 8b is read through zlib):
 *
 *   images:  u32 magic 0x00000803     (0x08 = unsigned bytes, 3 dimensions)
 *            u32 n, u32 rows, u32 cols
 *            n * rows * cols bytes     pixel values 0..255, row-major
 *   labels:  u32 magic 0x00000801     (unsigned bytes, 1 dimension)
 *            u32 n
 *            n bytes                   class of each image
 *
 * glora_idx_load accepts a pair only if both magics are right, both files
 * hold exactly what their header announces (no missing, no trailing bytes;
 * for gzipped files the whole stream is decompressed and its CRC checked),
 * the counts agree, 1 <= rows, cols <= 4096, and the requested range lies
 * inside the files. Memory is never sized from an unchecked header: plain
 * files are checked against their size first, gzipped ones are read into a
 * buffer that grows with the bytes actually decompressed.
 */
#ifndef GLORA_DATA_H
#define GLORA_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "glora/config.h"
#include "glora/model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* n examples of c x h x w floats. Pixels p in [0, 1] (byte / 255) are
 * stored normalised: x = (p - mean) / std, so p = x * std + mean. */
typedef struct {
    size_t n;
    int c, h, w;
    float *x;          /* n * c * h * w, example-major, then channel, row, col */
    int *y;            /* n labels in [0, num_classes) */
    int num_classes;   /* max label + 1 over the whole label file it came from */
    float mean, std;   /* the normalisation x went through */
    /* Splits read from image files keep their pixels as bytes instead (x is
     * then NULL): u8 holds n * c * h * w bytes in x's layout, normalised per
     * channel when read (glora_dataset_batch): ((float)p / 255.0f -
     * cmean[ch]) / cstd[ch], the IDX loader's expression. */
    uint8_t *u8;
    float cmean[3], cstd[3];
    /* num_classes names (an image folder's class folders), or NULL (IDX
     * files, list files); owned, freed by glora_dataset_free. */
    char **class_names;
} glora_dataset_t;

/* ---- reading pixels ------------------------------------------------------
 * Every consumer (training, the search's fitness, evaluation, benchmarks)
 * reads pixels through these two and never through ds->x, so the storage can
 * change (8-bit pixels normalised per batch) without touching them. */

/* Values of one example: c * h * w. */
size_t glora_dataset_example_size(const glora_dataset_t *ds);
/* The normalised pixels of examples idx[0], ..., idx[n-1] (each < ds->n)
 * into out, n * c * h * w floats, example after example. */
void glora_dataset_batch(const glora_dataset_t *ds, const uint32_t *idx, size_t n, float *out);
/* The same for examples start, ..., start + n - 1. */
void glora_dataset_slice(const glora_dataset_t *ds, size_t start, size_t n, float *out);

/* ---- splits: THE way a command reads data -------------------------------
 * A split is described by config keys in ONE place, the macros below, and
 * read by glora_split_from_config + glora_split_load; a new kind of source
 * (a list file, an image folder) is added there and every command has it. */

typedef struct {
    const char *images, *labels; /* IDX pair (plain or gzipped); images NULL: no split */
    size_t start, count;         /* examples [start, start + count), count 0: to the end */
    int kshot;                   /* > 0: keep k examples of each class (glora_dataset_kshot) */
    uint64_t kshot_seed;
    float mean, std;             /* normalisation */
    const char *shift;           /* NULL or "clean": none; else glora_dataset_shift's kind */
    uint64_t shift_seed;
    int resize;                  /* fit the model's image size (bilinear, grey repeated) */
    /* Image files (glora/image.h) instead of an IDX pair: */
    const char *list, *root;     /* VTAB-1k / NOAH list file, paths relative to root */
    const char *folder;          /* torchvision ImageFolder tree */
    int size;                    /* side of the decoded images (0: the model's) */
    int img_resize;              /* GLORA_RESIZE_*: squash, shorter or no */
    int interp;                  /* GLORA_INTERP_* */
    double crop_pct;             /* shorter: resize to floor(size / crop_pct), crop size */
    float means[3], stds[3];     /* per-channel normalisation (one value: all channels) */
    int nnorm;                   /* values given in means and stds: 1 or 3 */
    int nstd;                    /* (while reading the config: values in stds) */
    size_t max_memory;           /* most bytes of decoded pixels to hold (0: no cap);
                                  * from a config: data.max_memory, or when unset
                                  * glora_split_default_max_memory() */
    const char *cache;           /* directory for decoded-split caches (NULL: none) */
    /* A timm config.json beside the model (glora_split_timm_defaults): its
     * path ("" when none) and which fields took their value from it. */
    char timm_config[1024];
    unsigned from_timm;          /* GLORA_SPLIT_FROM_* bits */
} glora_split_t;

#define GLORA_SPLIT_FROM_SIZE 1u
#define GLORA_SPLIT_FROM_RESIZE 2u
#define GLORA_SPLIT_FROM_INTERP 4u
#define GLORA_SPLIT_FROM_CROP 8u
#define GLORA_SPLIT_FROM_MEAN 16u
#define GLORA_SPLIT_FROM_STD 32u

/* data.max_memory when the config leaves it unset: half the machine's
 * physical RAM (sysconf), or 0 (no cap) when the system does not say. */
size_t glora_split_default_max_memory(void);

/* Non-zero when the split names a source (images + labels, list, folder). */
int glora_split_given(const glora_split_t *s);
/* The split's source, for messages: images, list or folder path. */
const char *glora_split_source(const glora_split_t *s);

/* The keys of a split under prefix P ("data", "data.train", "val"). */
#define GLORA_SPLIT_KEYS(P, WHAT)                                                                  \
    {P ".images", GLORA_CFG_STRING, NULL, "IDX images of the " WHAT " split (plain or .gz)", 0, 0, NULL}, \
    {P ".labels", GLORA_CFG_STRING, NULL, "IDX labels of the " WHAT " split (plain or .gz)", 0, 0, NULL}, \
    {P ".start", GLORA_CFG_INT, "0", "first example of the " WHAT " split, in file order", 0, 1e9, NULL}, \
    {P ".count", GLORA_CFG_INT, "0", "examples of the " WHAT " split (0: to the end)", 0, 1e9, NULL}, \
    {P ".list", GLORA_CFG_STRING, NULL, "list file of the " WHAT " split: 'path label' lines (VTAB-1k, NOAH)", 0, 0, NULL}, \
    {P ".root", GLORA_CFG_STRING, NULL, "folder the list's paths are relative to (default: the list's)", 0, 0, NULL}, \
    {P ".folder", GLORA_CFG_STRING, NULL, "image folder of the " WHAT " split: one sub-folder per class", 0, 0, NULL}
/* k-shot selection of a split under prefix P. */
#define GLORA_SPLIT_KSHOT_KEYS(P)                                                                  \
    {P ".kshot", GLORA_CFG_INT, "0", "keep k examples of each class (0: all)", 0, 1e6, NULL},      \
    {P ".kshot_seed", GLORA_CFG_INT, "0", "seed of the k-shot draw (nested: the 1-shot set is inside the 2-shot set)", 0, 0, NULL}
/* Normalisation and the preprocessing of image files, shared by the splits
 * of a command; Q is "data." or "". */
#define GLORA_SPLIT_NORM_KEYS(Q)                                                                   \
    {Q "mean", GLORA_CFG_STRING, "0.5", "normalisation mean (pixels in [0, 1]): a number, 3 numbers (one per channel), imagenet or inception", 0, 0, NULL}, \
    {Q "std", GLORA_CFG_STRING, "0.5", "normalisation standard deviation: a number, 3 numbers, imagenet or inception", 0, 0, NULL}, \
    {Q "resize", GLORA_CFG_ENUM, "no", "fit the model's image size: no, yes (IDX: bilinear on the floats, grey repeated; image files: squash), squash (both sides to size), shorter (shorter side to size / crop_pct, centre crop)", 0, 0, glora_split_resize_modes}, \
    {Q "size", GLORA_CFG_INT, "0", "side of the images read from files (0: the model's)", 0, 16384, NULL}, \
    {Q "interpolation", GLORA_CFG_ENUM, "bicubic", "resampling of image files (PIL's): bicubic, bilinear, nearest", 0, 0, glora_split_interps}, \
    {Q "crop_pct", GLORA_CFG_NUMBER, "1", "resize shorter: the shorter side goes to floor(size / crop_pct)", 1e-3, 1, NULL}, \
    {Q "max_memory", GLORA_CFG_SIZE, NULL, "most bytes of decoded image pixels a split may hold (default: half the machine's RAM; 0: no cap); eval, predict and run's final evaluation read a larger split in pieces of this size, training and search refuse it", 0, 0, NULL, GLORA_CFG_NOT_IDENTITY}, \
    {Q "cache", GLORA_CFG_STRING, NULL, "directory where decoded image splits are cached (unset: no cache; under glora run: the run's cache, else RUN/image-cache)", 0, 0, NULL, GLORA_CFG_NOT_IDENTITY}
/* Domain shift of a split read for one model; Q is "data.". */
#define GLORA_SPLIT_FIT_KEYS(Q)                                                                    \
    {Q "shift", GLORA_CFG_ENUM, "clean", "domain shift applied to the images (docs/formats.md)", 0, 0, glora_shift_kinds}, \
    {Q "shift_seed", GLORA_CFG_INT, "0", "seed of the noisy shift", 0, 0, NULL}

/* "clean", "inverted", "rotated", "noisy", "blurred", NULL. */
extern const char *const glora_shift_kinds[];
/* "no", "yes", "squash", "shorter", NULL and "bicubic", "bilinear",
 * "nearest", NULL. */
extern const char *const glora_split_resize_modes[];
extern const char *const glora_split_interps[];

/* Fills *s from the keys under prefix (the split's own) and norm ("data." or
 * "", the shared normalisation, resize and shift keys); keys the command's
 * schema lacks keep their defaults. When the config names a model file
 * (model.backbone, or a run's backbone) with a timm config.json beside it,
 * that file's values are the defaults of the keys the config does not set
 * (glora_split_timm_defaults). The strings belong to cfg. Returns 0 (or an
 * error naming the key or the config.json); s->images is NULL when the split
 * is not given. */
int glora_split_from_config(glora_split_t *s, const glora_config_t *cfg, const char *prefix,
                            const char *norm);

/* The preprocessing defaults of a timm hub config.json beside model_path
 * (glora_timm_config_beside), as timm's resolve_data_config and eval
 * transform use them: size = pretrained_cfg.input_size (square), resize
 * shorter (resize to floor(size / crop_pct), centre crop), interpolation,
 * crop_pct (timm's 0.875 when absent), mean and std (ImageNet's when
 * absent). Each goes into *s only when the config does not set the key
 * under norm ("data." or ""); s->timm_config and s->from_timm say what was
 * taken. No config.json: *s unchanged. An invalid config.json, or a value
 * glora cannot use for a key the config leaves unset (a non-square size, an
 * interpolation other than bicubic, bilinear, nearest), is an error naming
 * the file. */
int glora_split_timm_defaults(glora_split_t *s, const glora_config_t *cfg, const char *norm,
                              const char *model_path);

/* One line saying the preprocessing s applies to image files for a model
 * of image side model_size, and where each value came from, into buf:
 * "size 224, resize squash, interpolation bicubic, crop_pct 1, mean 0.485
 * 0.456 0.406, std 0.229 0.224 0.225 (...)". */
void glora_split_describe(const glora_split_t *s, int model_size, char *buf, size_t cap);

/* Loads the split into *ds: the IDX range, then the k-shot selection, then
 * the shift; with a model architecture (may be NULL), also resizes when
 * s->resize and checks the images and labels fit it (glora_dataset_fit).
 * On failure *ds is empty and the message names the file. */
int glora_split_load(glora_dataset_t *ds, const glora_split_t *s, const glora_vit_arch_t *arch);

/* The image-file half of glora_split_load (s->list or s->folder): the
 * files decoded in parallel at s->size (0: arch's image size; arch NULL:
 * then data.size is required) with arch's channels (arch NULL: 1 when every
 * image is grey, else 3), kept as bytes; cached under s->cache. */
int glora_split_load_images(glora_dataset_t *ds, const glora_split_t *s,
                            const glora_vit_arch_t *arch);
/* A split of image files read in pieces, for work that can go chunk by
 * chunk (evaluation) under data.max_memory: each piece holds at most
 * max_memory bytes of pixels (all of the split when 0), decoded as
 * glora_split_load would, fitted to arch. No kshot or shift. A split that
 * fits in one piece is that one piece, read through s->cache when set (the
 * pieces of a larger split are not cached). *total is the number of images
 * the pieces will hold. */
typedef struct glora_split_stream glora_split_stream_t;
int glora_split_stream_open(glora_split_stream_t **out, const glora_split_t *s,
                            const glora_vit_arch_t *arch, size_t *total);
/* Frees *ds and fills it with the next piece; ds->n == 0 when done. */
int glora_split_stream_next(glora_split_stream_t *st, glora_dataset_t *ds);
void glora_split_stream_close(glora_split_stream_t *st);   /* NULL-safe */
/* The path of image i of the stream's split (0: the image at data.start), as
 * opened, or NULL past the end; the name of class c, or NULL when the split
 * has no class names (list files) or c is out of range. Owned by st. */
const char *glora_split_stream_path(const glora_split_stream_t *st, size_t i);
const char *glora_split_stream_class_name(const glora_split_stream_t *st, int c);
/* Parses a data.mean / data.std value: a number, 3 numbers (separated by
 * commas or spaces, brackets allowed), "imagenet" or "inception" (is_std
 * picks the std of the named ones) into v[0..*n-1]; errors name key. */
int glora_split_parse_norm(const glora_config_t *cfg, const char *key, const char *text,
                           int is_std, float v[3], int *n);
/* Replaces a byte dataset's u8 by the normalised floats x (in place; a no-op
 * for float datasets). Needs one mean and std for all channels. */
int glora_dataset_to_float(glora_dataset_t *ds);
/* Turns a 1-channel byte dataset into 3 identical channels. */
int glora_dataset_repeat_grey(glora_dataset_t *ds);
/* Makes a loaded split fit arch: resized when s->resize and the size differs,
 * then checked (image size and channels, labels below the classes). On
 * failure frees *ds. */
int glora_dataset_fit(glora_dataset_t *ds, const glora_split_t *s, const glora_vit_arch_t *arch);

/* Loads examples [start, start + count) of an IDX image/label pair into *ds
 * (count 0: up to the end), normalised with mean and std (std > 0; the glora
 * protocol uses 0.5 and 0.5). On failure *ds is empty and the message names
 * the offending file. Free with glora_dataset_free. */
int glora_idx_load(glora_dataset_t *ds, const char *images_path, const char *labels_path,
                   size_t start, size_t count, float mean, float std);

/* ds's class names as a JSON array (the model metadata glora.class_names),
 * malloc'd; NULL when ds has none or out of memory (ds->class_names set). */
char *glora_dataset_class_names_json(const glora_dataset_t *ds);

/* Frees x, y, u8 and the class names and zeroes *ds; NULL-safe, and safe on
 * a zeroed dataset. */
void glora_dataset_free(glora_dataset_t *ds);

/* Copies examples src[idx[0]], ..., src[idx[n-1]] (in that order; repeats
 * allowed) into *out, which the caller later frees. Same c, h, w,
 * num_classes, class names (copied) and normalisation as src. */
int glora_dataset_take(const glora_dataset_t *src, const uint32_t *idx, size_t n,
                       glora_dataset_t *out);

/* k examples of each class 0..num_classes-1, drawn from src by seed: the
 * examples of class c are shuffled with a stream forked from seed by label c
 * and the first k kept, so for one seed the 1-shot set is inside the 2-shot
 * set, and so on. The output keeps src's order (ascending index). A class
 * with fewer than k examples is an error naming the class. */
int glora_dataset_kshot(const glora_dataset_t *src, int k, uint64_t seed,
                        glora_dataset_t *out);

/* A deterministic domain-shifted copy of src (same normalisation). Every kind
 * works on pixels p = x * std + mean in [0, 1], then normalises again:
 *   "clean"     p unchanged (a copy);
 *   "inverted"  1 - p;
 *   "rotated"   the image turned 30 degrees counter-clockwise (as displayed,
 *               row 0 on top) about its centre ((w-1)/2, (h-1)/2), bilinear
 *               sampling, pixels from outside the image are 0;
 *   "noisy"     p + N(0, 0.3^2), clipped to [0, 1]; example i draws from
 *               a stream forked from seed by label i (seed only matters here);
 *   "blurred"   5x5 binomial filter ([1 4 6 4 1]/16 along rows and columns,
 *               close to a Gaussian of sigma 1), edges repeated outward.
 * Each channel is transformed on its own. Unknown kinds are an error that
 * lists the known ones. */
int glora_dataset_shift(const glora_dataset_t *src, const char *kind, uint64_t seed,
                        glora_dataset_t *out);

/* The i-th shift kind ("clean", "inverted", ...), NULL past the last. */
const char *glora_dataset_shift_kind(int i);

#ifdef __cplusplus
}
#endif
#endif
