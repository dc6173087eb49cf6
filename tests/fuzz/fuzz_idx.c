/* IDX image/label pairs, plain and gzipped, through glora_idx_load. Input:
 * byte 0 = mode, bytes 1-2 = length of the image part (little-endian), then
 * the image file, then the label file. Mode bit 0 gzips the images here and
 * bit 1 the labels (so mutations reach the IDX parser through zlib, while
 * seeds that already are gzip files exercise zlib's own checks); bits 2-3
 * are the start, bits 4-6 the count, bit 7 asks for std 0 (to be refused). */
#include "fuzz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "glora/common.h"
#include "glora/data.h"

/* gzip of n bytes at src into a malloc'd buffer. */
static unsigned char *gz(const uint8_t *src, size_t n, size_t *out_n) {
    z_stream z = {0};
    if (deflateInit2(&z, 1, Z_DEFLATED, 16 + 15, 8, Z_DEFAULT_STRATEGY) != Z_OK) return NULL;
    size_t cap = deflateBound(&z, (uLong)n) + 32;
    unsigned char *out = malloc(cap);
    if (!out) {
        deflateEnd(&z);
        return NULL;
    }
    z.next_in = (unsigned char *)src;
    z.avail_in = (uInt)n;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    int rc = deflate(&z, Z_FINISH);
    *out_n = z.total_out;
    deflateEnd(&z);
    if (rc != Z_STREAM_END) {
        free(out);
        return NULL;
    }
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 3) return 0;
    int mode = data[0];
    size_t n_img = (size_t)data[1] | (size_t)data[2] << 8;
    data += 3;
    size -= 3;
    if (n_img > size) n_img = size;
    const uint8_t *img = data, *lab = data + n_img;
    size_t n_lab = size - n_img;
    unsigned char *gi = NULL, *gl = NULL;
    if (mode & 1) {
        gi = gz(img, n_img, &n_img);
        if (!gi) return 0;
        img = gi;
    }
    if (mode & 2) {
        gl = gz(lab, n_lab, &n_lab);
        if (!gl) {
            free(gi);
            return 0;
        }
        lab = gl;
    }
    const char *pi = fuzz_file(0, img, n_img), *pl = fuzz_file(1, lab, n_lab);
    size_t start = (size_t)(mode >> 2 & 3), count = (size_t)(mode >> 4 & 7);
    float std = mode & 0x80 ? 0.0f : 0.5f; /* 0 must be refused */
    glora_dataset_t ds;
    int rc = pi && pl ? glora_idx_load(&ds, pi, pl, start, count, 0.5f, std) : GLORA_EIO;
    if (rc) fuzz_debug("idx");
    if (rc == GLORA_OK) {
        if (std == 0.0f) abort();
        glora_dataset_free(&ds);
    }
    free(gi);
    free(gl);
    return 0;
}

/* A valid pair: 3 images of 2x3 and their labels, plain and gzipped. */
int fuzz_seed(const char *dir) {
    static const uint8_t img[] = {0, 0, 8, 3, 0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0, 3,
                                  0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110,
                                  120, 130, 140, 150, 160, 255};
    static const uint8_t lab[] = {0, 0, 8, 1, 0, 0, 0, 3, 1, 0, 9};
    uint8_t buf[3 + sizeof img + sizeof lab];
    for (int mode = 0; mode < 4; mode++) {
        buf[0] = (uint8_t)(mode | 1 << 4); /* count 1 */
        buf[1] = sizeof img;
        buf[2] = 0;
        memcpy(buf + 3, img, sizeof img);
        memcpy(buf + 3 + sizeof img, lab, sizeof lab);
        char name[32];
        snprintf(name, sizeof name, "pair-mode%d", mode);
        if (fuzz_write(dir, name, buf, sizeof buf)) return 1;
    }
    /* Already gzipped (mode 0): zlib's header, CRC and length checks. */
    size_t ni, nl;
    unsigned char *gi = gz(img, sizeof img, &ni), *gl = gz(lab, sizeof lab, &nl);
    int rc = 1;
    if (gi && gl) {
        size_t n = 3 + ni + nl;
        uint8_t *b = malloc(n);
        if (b) {
            b[0] = 0;
            b[1] = (uint8_t)(ni & 0xff);
            b[2] = (uint8_t)(ni >> 8);
            memcpy(b + 3, gi, ni);
            memcpy(b + 3 + ni, gl, nl);
            rc = fuzz_write(dir, "pair-gz", b, n);
            free(b);
        }
    }
    free(gi);
    free(gl);
    return rc;
}
