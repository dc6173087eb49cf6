/*
 * JPEG and PNG decoding into planar 8-bit images (see glora/image.h for the
 * pixel contract). Both libraries report fatal errors by calling back; the
 * callbacks longjmp to the decoder, which frees what it holds and returns a
 * status whose message names the file. Neither library ever prints: their
 * warning hooks are silenced (a truncated JPEG, which libjpeg only warns
 * about, is made an error, as PIL refuses it too).
 */
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>
#include <png.h>

#include "glora/common.h"
#include "util/fileio.h"
#include "glora/image.h"

/* Image files larger than this are refused before reading them whole. */
#define MAX_FILE_BYTES ((size_t)1 << 30)

void glora_image_free(glora_image_t *img) {
    if (!img) return;
    free(img->px);
    memset(img, 0, sizeof *img);
}

/* Allocates a c x h x w image after checking the dimensions. */
static int image_alloc(glora_image_t *img, int c, long h, long w, const char *name) {
    if (w < 1 || h < 1)
        return glora_error(GLORA_EFORMAT, "image '%s': empty image (%ld x %ld)", name, w, h);
    if ((size_t)w * (size_t)h > GLORA_IMAGE_MAX_PIXELS)
        return glora_error(GLORA_EFORMAT, "image '%s': %ld x %ld pixels is over the limit of "
                           "%zu", name, w, h, GLORA_IMAGE_MAX_PIXELS);
    img->px = malloc((size_t)c * (size_t)h * (size_t)w);
    if (!img->px)
        return glora_error(GLORA_ENOMEM, "image '%s': out of memory for %ld x %ld", name, w, h);
    img->c = c;
    img->h = (int)h;
    img->w = (int)w;
    return 0;
}

/* ---- JPEG -------------------------------------------------------------- */

typedef struct {
    struct jpeg_error_mgr mgr;
    jmp_buf jump;
    char msg[JMSG_LENGTH_MAX];
} jpeg_err_t;

static void jpeg_on_error(j_common_ptr cinfo) {
    jpeg_err_t *e = (jpeg_err_t *)cinfo->err;
    cinfo->err->format_message(cinfo, e->msg);
    longjmp(e->jump, 1);
}

/* Warnings are silent except a premature end of data, which is fatal. */
static void jpeg_on_message(j_common_ptr cinfo, int level) {
    jpeg_err_t *e = (jpeg_err_t *)cinfo->err;
    if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF) {
        snprintf(e->msg, sizeof e->msg, "truncated file (premature end of JPEG data)");
        longjmp(e->jump, 1);
    }
}

static int decode_jpeg(glora_image_t *img, const uint8_t *data, size_t n, const char *name) {
    struct jpeg_decompress_struct cinfo;
    jpeg_err_t err;
    uint8_t *volatile row = NULL;   /* volatile: set after setjmp, freed after longjmp */
    int rc = 0;

    memset(img, 0, sizeof *img);
    memset(&cinfo, 0, sizeof cinfo);   /* destroy is then safe whenever we jump */
    cinfo.err = jpeg_std_error(&err.mgr);
    err.mgr.error_exit = jpeg_on_error;
    err.mgr.emit_message = jpeg_on_message;
    err.msg[0] = 0;
    if (setjmp(err.jump)) {
        rc = glora_error(GLORA_EFORMAT, "image '%s': bad JPEG: %s", name, err.msg);
        goto done;
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, data, (unsigned long)n);
    jpeg_read_header(&cinfo, TRUE);
    int c;
    if (cinfo.jpeg_color_space == JCS_GRAYSCALE) {
        cinfo.out_color_space = JCS_GRAYSCALE;
        c = 1;
    } else if (cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK) {
        rc = glora_error(GLORA_EFORMAT, "image '%s': CMYK JPEGs are not supported", name);
        goto done;
    } else {
        cinfo.out_color_space = JCS_RGB;
        c = 3;
    }
    /* A Huffman-coded scan spends at least one bit on every block of its
     * components (a DC code, or a DC and an end-of-block code), so dimensions
     * whose blocks the n bytes cannot hold are a lie: refused before libjpeg
     * (whole-image coefficient buffers for progressive files) or we allocate
     * for them. An arithmetic-coded file can legitimately hold far more
     * blocks a byte and is bounded by GLORA_IMAGE_MAX_PIXELS alone. */
    if (!cinfo.arith_code) {
        double blocks = 0;
        for (int ci = 0; ci < cinfo.num_components; ci++)
            blocks += (double)cinfo.comp_info[ci].width_in_blocks *
                      (double)cinfo.comp_info[ci].height_in_blocks;
        if (blocks > 8.0 * (double)n) {
            rc = glora_error(GLORA_EFORMAT, "image '%s': %lu x %lu pixels cannot come out of a "
                             "%zu-byte JPEG (truncated or corrupt)", name,
                             (unsigned long)cinfo.image_width, (unsigned long)cinfo.image_height, n);
            goto done;
        }
    }
    /* libjpeg's defaults are PIL's: JDCT_ISLOW, fancy upsampling, no scaling. */
    rc = image_alloc(img, c, (long)cinfo.image_height, (long)cinfo.image_width, name);
    if (rc) goto done;
    jpeg_start_decompress(&cinfo);
    if ((int)cinfo.output_components != c) {
        rc = glora_error(GLORA_EFORMAT, "image '%s': JPEG decoder gave %d components, "
                         "expected %d", name, cinfo.output_components, c);
        goto done;
    }
    size_t w = (size_t)img->w, plane = (size_t)img->h * w;
    row = malloc(w * (size_t)c);
    if (!row) {
        rc = glora_error(GLORA_ENOMEM, "image '%s': out of memory", name);
        goto done;
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        size_t y = cinfo.output_scanline;
        JSAMPROW rows[1] = {row};
        jpeg_read_scanlines(&cinfo, rows, 1);
        for (int ch = 0; ch < c; ch++) {
            uint8_t *dst = img->px + (size_t)ch * plane + y * w;
            for (size_t x = 0; x < w; x++) dst[x] = row[x * (size_t)c + (size_t)ch];
        }
    }
    jpeg_finish_decompress(&cinfo);
done:
    jpeg_destroy_decompress(&cinfo);
    free(row);
    if (rc) glora_image_free(img);
    return rc;
}

/* ---- PNG --------------------------------------------------------------- */

typedef struct {
    const uint8_t *data;
    size_t n, pos;
    jmp_buf jump;
    char msg[256];
} png_ctx_t;

static void png_on_error(png_structp png, png_const_charp msg) {
    png_ctx_t *ctx = png_get_error_ptr(png);
    snprintf(ctx->msg, sizeof ctx->msg, "%s", msg);
    longjmp(ctx->jump, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg) {
    (void)png;
    (void)msg;
}

static void png_on_read(png_structp png, png_bytep out, size_t len) {
    png_ctx_t *ctx = png_get_io_ptr(png);
    if (len > ctx->n - ctx->pos) png_error(png, "truncated file");
    memcpy(out, ctx->data + ctx->pos, len);
    ctx->pos += len;
}

/* Whether every chunk up to IEND lies inside the n bytes. libpng allocates
 * a chunk's declared length before reading it, and its length limit is only
 * a warning (a 57-byte file declared a 1.4 GB tEXt chunk): glora, which has
 * the whole file, checks first. */
static int png_chunks_fit(const uint8_t *b, size_t n) {
    size_t pos = 8;
    while (n - pos >= 12) {
        size_t len = (size_t)b[pos] << 24 | (size_t)b[pos + 1] << 16 | (size_t)b[pos + 2] << 8 | b[pos + 3];
        if (len > n - pos - 12) return 0;
        if (memcmp(b + pos + 4, "IEND", 4) == 0) return 1;
        pos += 12 + len;
    }
    /* No IEND. Bytes left over that cannot hold a whole chunk are a
     * truncated one, whose header libpng would still read and allocate for
     * (a 44-byte file ending in 11 bytes of a 1.7 GB tEXt). */
    return pos == n; /* nothing left: libpng reports the missing IEND */
}

/* Interleaved rows of ch channels of depth 8 or 16 bits -> img's first
 * img->c planes of 8 bits (16-bit values rounded as PIL does). */
static void png_rows_to_planes(glora_image_t *img, const uint8_t *buf, size_t rowbytes, int ch, int depth) {
    const size_t w = (size_t)img->w, h = (size_t)img->h, plane = w * h;
    for (size_t y = 0; y < h; y++) {
        const uint8_t *src = buf + y * rowbytes;
        for (int k = 0; k < img->c; k++) {
            uint8_t *dst = img->px + (size_t)k * plane + y * w;
            if (depth == 8) {
                for (size_t x = 0; x < w; x++) dst[x] = src[x * (size_t)ch + (size_t)k];
            } else {
                for (size_t x = 0; x < w; x++) {
                    const uint8_t *p = src + 2 * (x * (size_t)ch + (size_t)k);
                    uint32_t v = (uint32_t)p[0] << 8 | p[1];   /* big-endian */
                    dst[x] = (uint8_t)((v * 255u + 32767u) / 65535u);
                }
            }
        }
    }
}

static int decode_png(glora_image_t *img, const uint8_t *data, size_t n, const char *name) {
    png_structp png = NULL;
    png_infop info = NULL;
    png_bytep *rows = NULL;
    uint8_t *buf = NULL;
    int c = 1;
    /* volatile: changed after setjmp and read after a longjmp */
    png_bytep *volatile vrows = NULL;
    uint8_t *volatile vbuf = NULL;
    png_ctx_t ctx = {.data = data, .n = n, .pos = 0};
    int rc = 0;

    memset(img, 0, sizeof *img);
    if (!png_chunks_fit(data, n))
        return glora_error(GLORA_EFORMAT, "image '%s': bad PNG: a chunk runs past the end of the "
                           "file (truncated or corrupt)", name);
    png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &ctx, png_on_error, png_on_warning);
    if (png) info = png_create_info_struct(png);
    if (!png || !info) {
        rc = glora_error(GLORA_ENOMEM, "image '%s': out of memory", name);
        goto done;
    }
    if (setjmp(ctx.jump)) {
        rc = glora_error(GLORA_EFORMAT, "image '%s': bad PNG: %s", name, ctx.msg);
        goto done;
    }
    png_set_read_fn(png, &ctx, png_on_read);
    /* No decompressed chunk (zTXt, iCCP) beyond 16 MiB or the file's size. */
    png_set_chunk_malloc_max(png, n > ((size_t)16 << 20) ? n : ((size_t)16 << 20));
    /* A bad CRC is an error in every chunk, as PIL refuses it too. */
    png_set_crc_action(png, PNG_CRC_DEFAULT, PNG_CRC_ERROR_QUIT);
    png_read_info(png, info);
    png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    if ((size_t)w * (size_t)h > GLORA_IMAGE_MAX_PIXELS || w < 1 || h < 1) {
        rc = glora_error(GLORA_EFORMAT, "image '%s': %lu x %lu pixels is empty or over the "
                         "limit of %zu", name, (unsigned long)w, (unsigned long)h,
                         GLORA_IMAGE_MAX_PIXELS);
        goto done;
    }
    int ctype = png_get_color_type(png, info);
    if (ctype == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (ctype == PNG_COLOR_TYPE_GRAY && png_get_bit_depth(png, info) < 8)
        png_set_expand_gray_1_2_4_to_8(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    int ch = png_get_channels(png, info), depth = png_get_bit_depth(png, info);
    size_t rowbytes = png_get_rowbytes(png, info);
    if ((depth != 8 && depth != 16) || ch < 1 || ch > 4 ||
        rowbytes != (size_t)w * (size_t)ch * (size_t)(depth / 8)) {
        rc = glora_error(GLORA_EFORMAT, "image '%s': unexpected PNG layout (%d channels of %d "
                         "bits)", name, ch, depth);
        goto done;
    }
    /* The rows come out of at most n bytes of deflate data (1032:1 at
     * most), and a decoded row is at most 32 times its packed bytes (1-bit
     * palette with tRNS to RGBA): dimensions beyond that are a lie, refused
     * before allocating for them. */
    if ((double)rowbytes * (double)h > 32.0 * (1032.0 * (double)n + 1024.0)) {
        rc = glora_error(GLORA_EFORMAT, "image '%s': %lu x %lu pixels cannot come out of a "
                         "%zu-byte PNG (truncated or corrupt)", name, (unsigned long)w,
                         (unsigned long)h, n);
        goto done;
    }
    vbuf = buf = malloc(rowbytes * h);
    vrows = rows = malloc(sizeof *rows * h);
    if (!buf || !rows) {
        rc = glora_error(GLORA_ENOMEM, "image '%s': out of memory for %lu x %lu", name,
                         (unsigned long)w, (unsigned long)h);
        goto done;
    }
    for (png_uint_32 y = 0; y < h; y++) rows[y] = buf + y * rowbytes;
    png_read_image(png, rows);
    png_read_end(png, NULL);

    c = ch <= 2 ? 1 : 3;     /* alpha (2nd or 4th channel) dropped */
    rc = image_alloc(img, c, (long)h, (long)w, name);
    if (!rc) png_rows_to_planes(img, buf, rowbytes, ch, depth);
done:
    rows = vrows;
    buf = vbuf;
    png_destroy_read_struct(png ? &png : NULL, info ? &info : NULL, NULL);
    free(rows);
    free(buf);
    if (rc) glora_image_free(img);
    return rc;
}

int glora_image_decode_mem(glora_image_t *img, const void *data, size_t n, const char *name) {
    static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    const uint8_t *b = data;
    memset(img, 0, sizeof *img);
    if (n >= 3 && b[0] == 0xff && b[1] == 0xd8 && b[2] == 0xff) return decode_jpeg(img, b, n, name);
    if (n >= 8 && memcmp(b, png_sig, 8) == 0) return decode_png(img, b, n, name);
    return glora_error(GLORA_EFORMAT, "image '%s': not a JPEG or PNG file", name);
}

int glora_image_decode(glora_image_t *img, const char *path) {
    char *data = NULL;
    size_t n = 0;
    memset(img, 0, sizeof *img);
    int rc = glora_read_file(path, MAX_FILE_BYTES, &data, &n);
    if (rc) return rc;
    rc = glora_image_decode_mem(img, data, n, path);
    free(data);
    return rc;
}
