/*
 * glora/tasks.h - the transfer suite's tasks: 1k classification tasks in the
 * shape of VTAB-1k, made deterministically from the real MNIST and
 * Fashion-MNIST images (the suite in docs/formats.md, "A transfer suite").
 *
 * Every task is 28x28 grey images with byte pixels. Natural tasks are the
 * source images with their own labels; specialized ones change the kind of
 * image (a negative, an edge map) and keep the labels; structured ones
 * compose the source images and take the label from the composition, so the
 * label is the transform (VTAB's dSprites / smallNORB / CLEVR analogues):
 *
 *   orientation  the image shrunk to 20x20 (area average), centred, turned
 *                counter-clockwise by 45*k + u degrees, u uniform in
 *                [-15, 15) (bilinear, 0 outside); label k in 0..7
 *   location     the image shrunk to 14x14 (2x2 means) with its top-left
 *                corner at (7*(k/3) + jr, 7*(k%3) + jc), jr, jc uniform in
 *                {-1, 0, 1} and clamped to [0, 14]; label k in 0..8
 *   counting     n = k + 1 images (1..6), each shrunk to 8x8, in n distinct
 *                cells of a 3x3 grid (cells start at 0, 9, 18), each at a
 *                random offset inside its cell (0..1, or 0..2 in the last
 *                row/column), composed by maximum; label k in 0..5
 *   size         the image shrunk to s x s, s = 8, 12, 16, 20 or 24 (label
 *                k in 0..4), top-left corner uniform in [0, 28 - s]
 *   inverted     255 - p
 *   sketch       the Sobel gradient magnitude (edges repeated outward),
 *                scaled so the image's largest value is 255 (all 0 if flat)
 *
 * Pixel values are computed in double precision and rounded to the nearest
 * byte. Structured labels are balanced: examples 8b..8b+7 (K b.. K b + K - 1
 * for K classes) take a permutation of the K labels. Example i of a split
 * draws from its own stream, forked by i from the split's stream, which is
 * forked by the split (0 train, 1 test) from a seed that is the FNV-1a hash
 * of the task's name: the first n examples do not depend on how many are
 * made, and a task is the same on every machine. One-to-one tasks use
 * source image i for example i; counting draws its images uniformly (with
 * replacement) from the source.
 */
#ifndef GLORA_TASKS_H
#define GLORA_TASKS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* n grey images of h x w bytes and their labels. */
typedef struct {
    size_t n;
    int h, w;
    uint8_t *pixels; /* n * h * w, image after image, row-major */
    uint8_t *labels; /* n */
} glora_images_t;

typedef struct {
    const char *name;     /* "orientation-1k" */
    const char *group;    /* "natural", "structured" or "specialized" */
    const char *source;   /* the images it is made from: "mnist" or "fashion-mnist" */
    const char *upstream; /* the dataset its backbone was pretrained on */
    const char *kind;     /* the transform: "identity", "orientation", ... */
    int num_classes;
    int one_to_one;       /* example i is made from source image i alone */
    const char *about;    /* one line for --list and the docs */
} glora_task_t;

/* The i-th task of the suite, NULL past the last. */
const glora_task_t *glora_task_at(int i);
/* The task called name; NULL (with a message listing the tasks) if none. */
const glora_task_t *glora_task_find(const char *name);

/* Makes n examples of task t from the source images src (28x28; their
 * labels are used by natural and specialized tasks only) on stream split
 * (0 train, 1 test) into *out, which the caller frees. One-to-one tasks
 * need n <= src->n. */
int glora_task_make(const glora_task_t *t, const glora_images_t *src, size_t n, int split,
                    glora_images_t *out);

/* Reads an IDX image/label pair (plain or gzipped, checked as
 * glora_idx_load does) into *out, bytes unchanged. */
int glora_images_load(glora_images_t *out, const char *images_path, const char *labels_path);
/* Writes *s as a plain IDX pair (docs/formats.md), each file atomically. */
int glora_images_write(const glora_images_t *s, const char *images_path, const char *labels_path);
/* Frees and zeroes *s; NULL-safe. */
void glora_images_free(glora_images_t *s);

/* Writes task t into out_dir/<name>/: train-{images-idx3,labels-idx1}-ubyte
 * (n_train examples from the source's training file) and
 * test-{images-idx3,labels-idx1}-ubyte (n_test from its t10k file). The
 * source files are data_dir/<source>/{train,t10k}-{images-idx3,labels-idx1}-ubyte,
 * plain or with .gz appended (what scripts/get-data puts there). */
int glora_task_write(const glora_task_t *t, const char *data_dir, const char *out_dir, size_t n_train,
                     size_t n_test);

#ifdef __cplusplus
}
#endif
#endif
