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
} glora_split_t;

/* The keys of a split under prefix P ("data", "data.train", "val"). */
#define GLORA_SPLIT_KEYS(P, WHAT)                                                                  \
    {P ".images", GLORA_CFG_STRING, NULL, "IDX images of the " WHAT " split (plain or .gz)", 0, 0, NULL}, \
    {P ".labels", GLORA_CFG_STRING, NULL, "IDX labels of the " WHAT " split (plain or .gz)", 0, 0, NULL}, \
    {P ".start", GLORA_CFG_INT, "0", "first example of the " WHAT " split, in file order", 0, 1e9, NULL}, \
    {P ".count", GLORA_CFG_INT, "0", "examples of the " WHAT " split (0: to the end)", 0, 1e9, NULL}
/* k-shot selection of a split under prefix P. */
#define GLORA_SPLIT_KSHOT_KEYS(P)                                                                  \
    {P ".kshot", GLORA_CFG_INT, "0", "keep k examples of each class (0: all)", 0, 1e6, NULL},      \
    {P ".kshot_seed", GLORA_CFG_INT, "0", "seed of the k-shot draw (nested: the 1-shot set is inside the 2-shot set)", 0, 0, NULL}
/* Normalisation shared by the splits of a command; Q is "data." or "". */
#define GLORA_SPLIT_NORM_KEYS(Q)                                                                   \
    {Q "mean", GLORA_CFG_NUMBER, "0.5", "normalisation mean (pixels in [0, 1])", 0, 0, NULL},      \
    {Q "std", GLORA_CFG_NUMBER, "0.5", "normalisation standard deviation", 1e-6, 1e6, NULL}
/* Resizing and domain shift of a split read for one model; Q is "data.". */
#define GLORA_SPLIT_FIT_KEYS(Q)                                                                    \
    {Q "resize", GLORA_CFG_BOOL, "no", "resize images (bilinear) and repeat grey channels to fit the model", 0, 0, NULL}, \
    {Q "shift", GLORA_CFG_ENUM, "clean", "domain shift applied to the images (docs/formats.md)", 0, 0, glora_shift_kinds}, \
    {Q "shift_seed", GLORA_CFG_INT, "0", "seed of the noisy shift", 0, 0, NULL}

/* "clean", "inverted", "rotated", "noisy", "blurred", NULL. */
extern const char *const glora_shift_kinds[];

/* Fills *s from the keys under prefix (the split's own) and norm ("data." or
 * "", the shared normalisation, resize and shift keys); keys the command's
 * schema lacks keep their defaults. The strings belong to cfg. Returns 0;
 * s->images is NULL when the split is not given. */
int glora_split_from_config(glora_split_t *s, const glora_config_t *cfg, const char *prefix,
                            const char *norm);

/* Loads the split into *ds: the IDX range, then the k-shot selection, then
 * the shift; with a model architecture (may be NULL), also resizes when
 * s->resize and checks the images and labels fit it (glora_dataset_fit).
 * On failure *ds is empty and the message names the file. */
int glora_split_load(glora_dataset_t *ds, const glora_split_t *s, const glora_vit_arch_t *arch);

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

/* Frees x and y and zeroes *ds; NULL-safe, and safe on a zeroed dataset. */
void glora_dataset_free(glora_dataset_t *ds);

/* Copies examples src[idx[0]], ..., src[idx[n-1]] (in that order; repeats
 * allowed) into *out, which the caller later frees. Same c, h, w,
 * num_classes and normalisation as src. */
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
