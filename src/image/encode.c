/*
 * Writing 8-bit images as PNG (lossless: 8-bit grey or RGB) or JPEG
 * (libjpeg defaults, 4:2:0 chroma, the given quality), for data preparation
 * (scripts/make-image-data) and tests. Encoded in memory, then written
 * atomically through glora_write_atomic.
 */
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jpeglib.h>
#include <png.h>

#include "glora/common.h"
#include "util/fileio.h"
#include "glora/image.h"

typedef struct {
    uint8_t *data;
    size_t n, cap;
    int oom;
    jmp_buf jump;
    char msg[256];
} membuf_t;

static void png_w_error(png_structp png, png_const_charp msg) {
    membuf_t *m = png_get_error_ptr(png);
    snprintf(m->msg, sizeof m->msg, "%s", msg);
    longjmp(m->jump, 1);
}

static void png_w_warning(png_structp png, png_const_charp msg) {
    (void)png;
    (void)msg;
}

static void png_w_write(png_structp png, png_bytep data, size_t len) {
    membuf_t *m = png_get_io_ptr(png);
    if (m->n + len > m->cap) {
        size_t nc = (m->cap ? m->cap * 2 : 4096) + len;
        uint8_t *d = realloc(m->data, nc);
        if (!d) {
            m->oom = 1;
            png_error(png, "out of memory");
        }
        m->data = d;
        m->cap = nc;
    }
    memcpy(m->data + m->n, data, len);
    m->n += len;
}

static void png_w_flush(png_structp png) {
    (void)png;
}

/* Interleaves row y of the planar image into row (c bytes a pixel). */
static void interleave_row(const glora_image_t *img, int y, uint8_t *row) {
    size_t plane = (size_t)img->h * (size_t)img->w;
    for (int x = 0; x < img->w; x++)
        for (int c = 0; c < img->c; c++)
            row[(size_t)x * (size_t)img->c + (size_t)c] =
                img->px[(size_t)c * plane + (size_t)y * (size_t)img->w + (size_t)x];
}

static int encode_png(const glora_image_t *img, membuf_t *m, const char *path) {
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, m, png_w_error, png_w_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    uint8_t *volatile row = NULL;
    int rc = 0;
    if (!png || !info) {
        rc = glora_error(GLORA_ENOMEM, "image '%s': out of memory", path);
        goto done;
    }
    if (setjmp(m->jump)) {
        rc = glora_error(m->oom ? GLORA_ENOMEM : GLORA_EIO, "image '%s': PNG encoder: %s", path,
                         m->msg);
        goto done;
    }
    png_set_write_fn(png, m, png_w_write, png_w_flush);
    png_set_IHDR(png, info, (png_uint_32)img->w, (png_uint_32)img->h, 8,
                 img->c == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    row = malloc((size_t)img->w * (size_t)img->c);
    if (!row) {
        rc = glora_error(GLORA_ENOMEM, "image '%s': out of memory", path);
        goto done;
    }
    for (int y = 0; y < img->h; y++) {
        interleave_row(img, y, row);
        png_write_row(png, row);
    }
    png_write_end(png, NULL);
done:
    png_destroy_write_struct(png ? &png : NULL, info ? &info : NULL);
    free(row);
    return rc;
}

typedef struct {
    struct jpeg_error_mgr mgr;
    jmp_buf jump;
    char msg[JMSG_LENGTH_MAX];
    unsigned char *out;      /* libjpeg's output buffer: in memory, not a */
    unsigned long outsize;   /* register, so still right after a longjmp */
} jpeg_werr_t;

static void jpeg_w_error(j_common_ptr cinfo) {
    jpeg_werr_t *e = (jpeg_werr_t *)cinfo->err;
    cinfo->err->format_message(cinfo, e->msg);
    longjmp(e->jump, 1);
}

static void jpeg_w_message(j_common_ptr cinfo, int level) {
    (void)cinfo;
    (void)level;
}

static int encode_jpeg(const glora_image_t *img, int quality, membuf_t *m, const char *path) {
    struct jpeg_compress_struct cinfo;
    jpeg_werr_t err;
    uint8_t *volatile row = NULL;
    volatile int rc = 0;
    memset(&cinfo, 0, sizeof cinfo);
    cinfo.err = jpeg_std_error(&err.mgr);
    err.mgr.error_exit = jpeg_w_error;
    err.mgr.emit_message = jpeg_w_message;
    err.out = NULL;
    err.outsize = 0;
    if (setjmp(err.jump)) {
        rc = glora_error(GLORA_EIO, "image '%s': JPEG encoder: %s", path, err.msg);
        goto done;
    }
    jpeg_create_compress(&cinfo);
    jpeg_mem_dest(&cinfo, &err.out, &err.outsize);
    cinfo.image_width = (JDIMENSION)img->w;
    cinfo.image_height = (JDIMENSION)img->h;
    cinfo.input_components = img->c;
    cinfo.in_color_space = img->c == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&cinfo);
    jpeg_set_quality(&cinfo, quality, TRUE);
    jpeg_start_compress(&cinfo, TRUE);
    row = malloc((size_t)img->w * (size_t)img->c);
    if (!row) {
        rc = glora_error(GLORA_ENOMEM, "image '%s': out of memory", path);
        goto done;
    }
    while (cinfo.next_scanline < cinfo.image_height) {
        JSAMPROW rows[1] = {row};
        interleave_row(img, (int)cinfo.next_scanline, row);
        jpeg_write_scanlines(&cinfo, rows, 1);
    }
    jpeg_finish_compress(&cinfo);
    m->data = err.out;
    m->n = err.outsize;
    err.out = NULL;
done:
    jpeg_destroy_compress(&cinfo);
    free(err.out);
    free(row);
    return rc;
}

int glora_image_write(const char *path, const glora_image_t *img, int quality) {
    membuf_t m;
    memset(&m, 0, sizeof m);
    if ((img->c != 1 && img->c != 3) || img->w < 1 || img->h < 1)
        return glora_error(GLORA_EINVAL, "image '%s': cannot write %d x %d x %d", path, img->c,
                           img->h, img->w);
    const char *dot = strrchr(path, '.');
    int rc;
    if (dot && !strcasecmp(dot, ".png")) {
        rc = encode_png(img, &m, path);
    } else if (dot && (!strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg"))) {
        if (quality < 1 || quality > 100)
            return glora_error(GLORA_EINVAL, "image '%s': JPEG quality %d (1..100)", path, quality);
        rc = encode_jpeg(img, quality, &m, path);
    } else {
        return glora_error(GLORA_EINVAL, "image '%s': name must end in .png, .jpg or .jpeg", path);
    }
    if (!rc) rc = glora_write_atomic(path, m.data, m.n);
    free(m.data);
    return rc;
}
