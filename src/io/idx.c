/* Loading IDX image/label pairs, plain or gzipped (see glora/data.h). */
#include "glora/data.h"
#include "glora/common.h"
#include "util/fileio.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define IDX_IMAGES_MAGIC 0x00000803u
#define IDX_LABELS_MAGIC 0x00000801u
#define IDX_MAX_SIDE 4096u
/* A gzipped file's size says nothing about its content: refuse headers that
 * announce more than this (MNIST's training images are 47 MB). */
#define IDX_MAX_GZ_BYTES ((uint64_t)1 << 30)
/* gzread takes an unsigned int: read in pieces no larger than this. */
#define READ_PIECE ((size_t)1 << 24)

/* One open IDX file: gzread also reads plain files, unchanged. */
typedef struct {
    gzFile gz;
    const char *path;
    int gzipped;
    uint64_t size;   /* on disk */
    uint32_t n;      /* items, from the header */
    uint32_t rows, cols;
} idx_t;

static int idx_open(idx_t *f, const char *path) {
    memset(f, 0, sizeof *f);
    f->path = path;
    int fd = glora_open_regular(path, &f->size);
    if (fd < 0) return fd;
    unsigned char head[2] = {0, 0};
    f->gzipped = pread(fd, head, 2, 0) == 2 && head[0] == 0x1f && head[1] == 0x8b;
    f->gz = gzdopen(fd, "rb"); /* owns fd from here */
    if (!f->gz) {
        close(fd);
        return glora_error(GLORA_EIO, "cannot open '%s': out of memory", path);
    }
    gzbuffer(f->gz, 1u << 17);
    return GLORA_OK;
}

static void idx_close(idx_t *f) {
    if (f->gz) gzclose(f->gz);
    f->gz = NULL;
}

/* Reads exactly n bytes; running out is "truncated", a zlib failure (bad
 * data, CRC mismatch) is reported as zlib words it. */
static int idx_read(idx_t *f, void *dst, size_t n) {
    unsigned char *p = dst;
    while (n > 0) {
        unsigned piece = (unsigned)(n < READ_PIECE ? n : READ_PIECE);
        int got = gzread(f->gz, p, piece);
        int zerr;
        const char *zmsg = gzerror(f->gz, &zerr);
        if (got < 0 || (zerr != Z_OK && zerr != Z_BUF_ERROR))
            return glora_error(GLORA_EFORMAT, "IDX file '%s': corrupt compressed data: %s",
                               f->path, zmsg);
        if (got == 0)
            return glora_error(GLORA_EFORMAT, "IDX file '%s': truncated: %zu more bytes expected%s",
                               f->path, n, zerr == Z_BUF_ERROR ? " (gzip stream cut short)" : "");
        p += got;
        n -= (size_t)got;
    }
    return GLORA_OK;
}

static int idx_skip(idx_t *f, uint64_t n) {
    unsigned char scratch[1 << 16];
    while (n > 0) {
        size_t piece = n < sizeof scratch ? (size_t)n : sizeof scratch;
        int rc = idx_read(f, scratch, piece);
        if (rc) return rc;
        n -= piece;
    }
    return GLORA_OK;
}

/* Reads n bytes into a malloc'd buffer that grows with what actually
 * arrives, so a lying header cannot make us allocate much more than the
 * data it comes with. */
static int idx_read_grow(idx_t *f, size_t n, uint8_t **out) {
    *out = NULL;
    size_t cap = n < ((size_t)1 << 20) ? n : ((size_t)1 << 20), have = 0;
    uint8_t *buf = malloc(cap ? cap : 1);
    if (!buf) return glora_error(GLORA_ENOMEM, "IDX file '%s': out of memory", f->path);
    while (have < n) {
        if (have == cap) {
            size_t next = cap * 2 < n ? cap * 2 : n;
            uint8_t *grown = realloc(buf, next);
            if (!grown) {
                free(buf);
                return glora_error(GLORA_ENOMEM, "IDX file '%s': out of memory", f->path);
            }
            buf = grown;
            cap = next;
        }
        int rc = idx_read(f, buf + have, cap - have);
        if (rc) {
            free(buf);
            return rc;
        }
        have = cap;
    }
    *out = buf;
    return GLORA_OK;
}

/* Nothing may follow the announced items (checked by reading for gzipped
 * files: it also makes zlib verify the stream's CRC). */
static int idx_expect_end(idx_t *f) {
    unsigned char extra;
    int got = gzread(f->gz, &extra, 1);
    int zerr;
    const char *zmsg = gzerror(f->gz, &zerr);
    if (got < 0 || (zerr != Z_OK && zerr != Z_BUF_ERROR))
        return glora_error(GLORA_EFORMAT, "IDX file '%s': corrupt compressed data: %s", f->path,
                           zmsg);
    if (got > 0)
        return glora_error(GLORA_EFORMAT,
                           "IDX file '%s': trailing bytes after the %u items its header announces",
                           f->path, f->n);
    if (zerr == Z_BUF_ERROR)
        return glora_error(GLORA_EFORMAT, "IDX file '%s': truncated gzip stream", f->path);
    return GLORA_OK;
}

static uint32_t be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Reads and checks the header; for plain files also checks the file size
 * against it. */
static int idx_header(idx_t *f, uint32_t magic) {
    int images = magic == IDX_IMAGES_MAGIC;
    unsigned char h[16];
    size_t hlen = images ? 16 : 8;
    int rc = idx_read(f, h, 4);
    if (rc) return rc;
    uint32_t m = be32(h);
    if (m != magic) {
        rc = glora_error(GLORA_EFORMAT, "IDX file '%s': magic 0x%08x, expected 0x%08x (%s)",
                         f->path, m, magic,
                         images ? "unsigned-byte images" : "unsigned-byte labels");
        if (m == (images ? IDX_LABELS_MAGIC : IDX_IMAGES_MAGIC))
            glora_error_hint("images and labels files swapped?");
        return rc;
    }
    if ((rc = idx_read(f, h + 4, hlen - 4)) != GLORA_OK) return rc;
    f->n = be32(h + 4);
    f->rows = images ? be32(h + 8) : 1;
    f->cols = images ? be32(h + 12) : 1;
    if (f->n == 0) return glora_error(GLORA_EFORMAT, "IDX file '%s': holds no items", f->path);
    if (f->rows == 0 || f->cols == 0 || f->rows > IDX_MAX_SIDE || f->cols > IDX_MAX_SIDE)
        return glora_error(GLORA_EFORMAT, "IDX file '%s': image size %ux%u out of range 1..%u",
                           f->path, f->rows, f->cols, IDX_MAX_SIDE);
    uint64_t want = hlen + (uint64_t)f->n * f->rows * f->cols;
    if (f->gzipped && want > IDX_MAX_GZ_BYTES)
        return glora_error(GLORA_EFORMAT,
                           "IDX file '%s': its header announces %u items of %ux%u, more than "
                           "the %llu bytes glora reads from a compressed file",
                           f->path, f->n, f->rows, f->cols, (unsigned long long)IDX_MAX_GZ_BYTES);
    if (!f->gzipped) {
        if (f->size < want)
            return glora_error(GLORA_EFORMAT,
                               "IDX file '%s': truncated: its header announces %u items "
                               "(%llu bytes), the file has %llu",
                               f->path, f->n, (unsigned long long)want,
                               (unsigned long long)f->size);
        if (f->size > want)
            return glora_error(GLORA_EFORMAT,
                               "IDX file '%s': %llu trailing bytes after the %u items its "
                               "header announces",
                               f->path, (unsigned long long)(f->size - want), f->n);
    }
    return GLORA_OK;
}

void glora_dataset_free(glora_dataset_t *ds) {
    if (!ds) return;
    free(ds->x);
    free(ds->u8);
    free(ds->y);
    if (ds->class_names)
        for (int c = 0; c < ds->num_classes; c++) free(ds->class_names[c]);
    free(ds->class_names);
    memset(ds, 0, sizeof *ds);
}

int glora_idx_load(glora_dataset_t *ds, const char *images_path, const char *labels_path,
                   size_t start, size_t count, float mean, float std) {
    memset(ds, 0, sizeof *ds);
    if (!(std > 0) || !isfinite(std) || !isfinite(mean))
        return glora_error(GLORA_EINVAL, "normalisation of '%s': std %g must be positive and "
                           "mean %g finite", images_path, std, mean);
    idx_t img = {0}, lab = {0};
    uint8_t *labels = NULL, *pixels = NULL;
    int rc;
    if ((rc = idx_open(&lab, labels_path)) != GLORA_OK) goto done;
    if ((rc = idx_header(&lab, IDX_LABELS_MAGIC)) != GLORA_OK) goto done;
    if ((rc = idx_open(&img, images_path)) != GLORA_OK) goto done;
    if ((rc = idx_header(&img, IDX_IMAGES_MAGIC)) != GLORA_OK) goto done;
    if (img.n != lab.n) {
        rc = glora_error(GLORA_EFORMAT, "IDX files '%s' and '%s': %u images but %u labels",
                         images_path, labels_path, img.n, lab.n);
        goto done;
    }
    if (count == 0 && start < img.n) count = img.n - start;
    if (start >= img.n || count > img.n - start) {
        rc = glora_error(GLORA_EINVAL,
                         "IDX file '%s': examples [%zu, %zu) requested, it holds %u", images_path,
                         start, start + count, img.n);
        goto done;
    }

    /* All labels are read: num_classes must not depend on the range taken. */
    if ((rc = idx_read_grow(&lab, lab.n, &labels)) != GLORA_OK) goto done;
    if ((rc = idx_expect_end(&lab)) != GLORA_OK) goto done;
    int max_label = 0;
    for (uint32_t i = 0; i < lab.n; i++)
        if (labels[i] > max_label) max_label = labels[i];

    size_t image = (size_t)img.rows * img.cols, nbytes;
    if (glora_size_mul(count, image, &nbytes) != 0) {
        rc = glora_error(GLORA_ENOMEM, "IDX file '%s': too large", images_path);
        goto done;
    }
    if ((rc = idx_skip(&img, (uint64_t)start * image)) != GLORA_OK) goto done;
    if ((rc = idx_read_grow(&img, nbytes, &pixels)) != GLORA_OK) goto done;
    if (img.gzipped) {
        if ((rc = idx_skip(&img, (uint64_t)(img.n - start - count) * image)) != GLORA_OK) goto done;
        if ((rc = idx_expect_end(&img)) != GLORA_OK) goto done;
    }

    ds->x = malloc(nbytes * sizeof *ds->x);
    ds->y = malloc(count * sizeof *ds->y);
    if (!ds->x || !ds->y) {
        rc = glora_error(GLORA_ENOMEM, "IDX file '%s': out of memory", images_path);
        goto done;
    }
    float lut[256];
    for (int v = 0; v < 256; v++) lut[v] = ((float)v / 255.0f - mean) / std;
    for (size_t i = 0; i < nbytes; i++) ds->x[i] = lut[pixels[i]];
    for (size_t i = 0; i < count; i++) ds->y[i] = labels[start + i];
    ds->n = count;
    ds->c = 1;
    ds->h = (int)img.rows;
    ds->w = (int)img.cols;
    ds->num_classes = max_label + 1;
    ds->mean = mean;
    ds->std = std;
done:
    idx_close(&img);
    idx_close(&lab);
    free(labels);
    free(pixels);
    if (rc != GLORA_OK) glora_dataset_free(ds);
    return rc;
}
