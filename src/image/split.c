/*
 * Decoded splits: parallel decoding into one 8-bit block, the on-disk cache
 * and the chunked reader (contracts in glora/image.h).
 *
 * Cache file, byte by byte (integers little-endian):
 *   8 bytes   "GLIMGC01"
 *   32 bytes  key: SHA-256 of the preprocessing, the selected paths and
 *             labels, and the SHA-256 of each selected file's bytes
 *   u64 n, u32 c, u32 h, u32 w, u32 num_classes
 *   n x i32   labels
 *   n*c*h*w   pixel bytes, image-major, then channel, row, column
 * A file whose key, header or size does not match is ignored (and
 * replaced), never partly used.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "glora/common.h"
#include "util/fileio.h"
#include "glora/image.h"

#define CACHE_MAGIC "GLIMGC01"
#define CACHE_HEADER (8 + 32 + 8 + 4 * 4)
#define MAX_IMAGE_FILE ((size_t)1 << 30)

void glora_image_split_free(glora_image_split_t *s) {
    if (!s) return;
    free(s->px);
    free(s->y);
    memset(s, 0, sizeof *s);
}

size_t glora_image_split_bytes(size_t n, const glora_image_prep_t *prep) {
    size_t c = prep->channels ? (size_t)prep->channels : 3;
    size_t per = c * (size_t)prep->size * (size_t)prep->size, b;
    if (glora_size_mul(per, n, &b)) return SIZE_MAX;
    return b;
}

static int check_range(const glora_image_list_t *list, size_t start, size_t *count) {
    if (start > list->n || (*count && *count > list->n - start))
        return glora_error(GLORA_EINVAL, "image split: range [%zu, %zu) is outside the %zu "
                           "listed images", start, start + *count, list->n);
    if (*count == 0) *count = list->n - start;
    if (*count == 0)
        return glora_error(GLORA_EINVAL, "image split: no images from index %zu on", start);
    return 0;
}

/* Decodes images [start, start + n) of list into out (allocated here), in
 * parallel. On failure the message is the one of the lowest failing index,
 * whatever the number of threads. */
static int decode_range(glora_image_split_t *out, const glora_image_list_t *list, size_t start,
                        size_t n, const glora_image_prep_t *prep) {
    int rc = glora_image_prep_check(prep);
    memset(out, 0, sizeof *out);
    if (rc) return rc;
    const int auto_c = prep->channels == 0;   /* grey or colour, as the images are */
    size_t plane = (size_t)prep->size * (size_t)prep->size;
    size_t per = (auto_c ? 3 : (size_t)prep->channels) * plane;
    size_t bytes = glora_image_split_bytes(n, prep);
    if (bytes == SIZE_MAX) return glora_error(GLORA_ENOMEM, "image split: size overflow");
    out->px = malloc(bytes ? bytes : 1);
    out->y = malloc(sizeof *out->y * n);
    if (!out->px || !out->y) {
        glora_image_split_free(out);
        return glora_error(GLORA_ENOMEM, "image split: out of memory for %zu images of %zu x "
                           "%d x %d", n, per / plane, prep->size, prep->size);
    }
    out->n = n;
    out->c = auto_c ? 3 : prep->channels;
    int colour = 0;   /* some image had 3 channels (auto only) */
    out->h = out->w = prep->size;
    out->num_classes = list->num_classes;
    size_t first_bad = SIZE_MAX;
    int bad_rc = 0;
    char bad_msg[1024] = "";
#pragma omp parallel for schedule(dynamic, 1) reduction(|| : colour)
    for (size_t i = 0; i < n; i++) {
        glora_image_t img;
        const char *path = list->paths[start + i];
        int r = glora_image_load(&img, path, prep);
        if (!r && auto_c && img.c == 1) {
            r = glora_image_convert(&img, 3);
            if (r) glora_image_free(&img);
        } else if (!r && auto_c) {
            colour = 1;
        }
        if (r) {
#pragma omp critical(glora_image_decode_error)
            if (i < first_bad) {
                first_bad = i;
                bad_rc = r;
                snprintf(bad_msg, sizeof bad_msg, "%s", glora_errmsg());
            }
            continue;
        }
        memcpy(out->px + i * per, img.px, per);
        out->y[i] = list->labels[start + i];
        glora_image_free(&img);
    }
    if (first_bad != SIZE_MAX) {
        glora_image_split_free(out);
        return glora_error(bad_rc, "%s", bad_msg);
    }
    if (auto_c && !colour) {   /* every image grey: keep one of the three planes */
        for (size_t i = 0; i < n; i++) memmove(out->px + i * plane, out->px + i * per, plane);
        size_t keep = n * plane;
        uint8_t *px = realloc(out->px, keep > 0 ? keep : 1);
        if (px) out->px = px;
        out->c = 1;
    }
    return 0;
}

/* The cache key of a selection under prep (see the file comment). */
static int cache_key(uint8_t key[32], const glora_image_list_t *list, size_t start, size_t n,
                     const glora_image_prep_t *prep) {
    uint8_t(*digest)[32] = malloc(32 * (n ? n : 1));
    if (!digest) return glora_error(GLORA_ENOMEM, "image cache: out of memory");
    size_t first_bad = SIZE_MAX;
    int bad_rc = 0;
    char bad_msg[1024] = "";
#pragma omp parallel for schedule(dynamic, 4)
    for (size_t i = 0; i < n; i++) {
        char *data = NULL;
        size_t len = 0;
        int r = glora_read_file(list->paths[start + i], MAX_IMAGE_FILE, &data, &len);
        if (r) {
#pragma omp critical(glora_image_key_error)
            if (i < first_bad) {
                first_bad = i;
                bad_rc = r;
                snprintf(bad_msg, sizeof bad_msg, "%s", glora_errmsg());
            }
            continue;
        }
        glora_sha256_t s;
        glora_sha256_init(&s);
        glora_sha256_update(&s, data, len);
        glora_sha256_final(&s, digest[i]);
        free(data);
    }
    if (first_bad != SIZE_MAX) {
        free(digest);
        return glora_error(bad_rc, "%s", bad_msg);
    }
    glora_sha256_t s;
    char head[256];
    int k = snprintf(head, sizeof head, "glora image cache v1\nchannels %d\nsize %d\nresize %s\n"
                     "interpolation %s\ncrop_pct %.17g\nimages %zu\n", prep->channels,
                     prep->size, glora_image_resize_name(prep->resize),
                     glora_image_interp_name(prep->interp),
                     prep->resize == GLORA_RESIZE_SHORTER ? prep->crop_pct : 1.0, n);
    glora_sha256_init(&s);
    glora_sha256_update(&s, head, (size_t)k);
    for (size_t i = 0; i < n; i++) {
        char lab[32];
        int m = snprintf(lab, sizeof lab, "\t%d\n", list->labels[start + i]);
        glora_sha256_update(&s, list->paths[start + i], strlen(list->paths[start + i]));
        glora_sha256_update(&s, lab, (size_t)m);
        glora_sha256_update(&s, digest[i], 32);
    }
    glora_sha256_final(&s, key);
    free(digest);
    return 0;
}

static void put_le(uint8_t *p, uint64_t v, int bytes) {
    for (int i = 0; i < bytes; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, int bytes) {
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

/* Loads the cache at path into out if it matches key and the expected
 * shape exactly; returns 1 when loaded, 0 when absent or not matching. */
static int cache_read(glora_image_split_t *out, const char *path, const uint8_t key[32],
                      size_t n, const glora_image_prep_t *prep, int num_classes) {
    uint8_t h[CACHE_HEADER] = {0};
    FILE *f = fopen(path, "rb");
    memset(out, 0, sizeof *out);
    if (!f) return 0;
    int ok = fread(h, 1, sizeof h, f) == sizeof h && !memcmp(h, CACHE_MAGIC, 8) &&
             !memcmp(h + 8, key, 32) && get_le(h + 40, 8) == n &&
             (prep->channels ? get_le(h + 48, 4) == (uint64_t)prep->channels
                             : get_le(h + 48, 4) == 1 || get_le(h + 48, 4) == 3) &&
             get_le(h + 52, 4) == (uint64_t)prep->size && get_le(h + 56, 4) == (uint64_t)prep->size &&
             get_le(h + 60, 4) == (uint64_t)num_classes;
    glora_image_prep_t as_stored = *prep;
    as_stored.channels = (int)get_le(h + 48, 4);
    size_t bytes = glora_image_split_bytes(n, &as_stored);
    struct stat st;
    if (ok) ok = bytes != SIZE_MAX && fstat(fileno(f), &st) == 0 &&
                 (uint64_t)st.st_size == CACHE_HEADER + 4 * (uint64_t)n + bytes;
    if (ok) {
        uint8_t *lab = malloc(4 * n);
        out->px = malloc(bytes ? bytes : 1);
        out->y = malloc(sizeof *out->y * n);
        ok = lab && out->px && out->y && fread(lab, 1, 4 * n, f) == 4 * n &&
             fread(out->px, 1, bytes, f) == bytes;
        for (size_t i = 0; ok && i < n; i++) { /* a label out of range: not our cache */
            out->y[i] = (int)(int32_t)get_le(lab + 4 * i, 4);
            ok = out->y[i] >= 0 && out->y[i] < num_classes;
        }
        free(lab);
    }
    fclose(f);
    if (!ok) {
        glora_image_split_free(out);
        return 0;
    }
    out->n = n;
    out->c = as_stored.channels;
    out->h = out->w = prep->size;
    out->num_classes = num_classes;
    return 1;
}

static int cache_write(const char *path, const uint8_t key[32], const glora_image_split_t *s) {
    uint8_t h[CACHE_HEADER];
    memcpy(h, CACHE_MAGIC, 8);
    memcpy(h + 8, key, 32);
    put_le(h + 40, s->n, 8);
    put_le(h + 48, (uint64_t)s->c, 4);
    put_le(h + 52, (uint64_t)s->h, 4);
    put_le(h + 56, (uint64_t)s->w, 4);
    put_le(h + 60, (uint64_t)s->num_classes, 4);
    uint8_t *lab = malloc(4 * (s->n ? s->n : 1));
    if (!lab) return glora_error(GLORA_ENOMEM, "image cache '%s': out of memory", path);
    for (size_t i = 0; i < s->n; i++) put_le(lab + 4 * i, (uint32_t)s->y[i], 4);
    glora_atomic_file_t *f = NULL;
    int rc = glora_atomic_open(&f, path);
    if (!rc) rc = glora_atomic_write(f, h, sizeof h);
    if (!rc) rc = glora_atomic_write(f, lab, 4 * s->n);
    if (!rc) rc = glora_atomic_write(f, s->px, s->n * (size_t)s->c * (size_t)s->h * (size_t)s->w);
    if (!rc) {
        rc = glora_atomic_commit(f);
        f = NULL;
    }
    glora_atomic_abort(f);
    free(lab);
    return rc;
}

int glora_image_split_load(glora_image_split_t *out, const glora_image_list_t *list,
                           size_t start, size_t count, const glora_image_prep_t *prep,
                           const char *cache_path, int *cache_hit) {
    uint8_t key[32];
    int rc;
    memset(out, 0, sizeof *out);
    if (cache_hit) *cache_hit = 0;
    if ((rc = glora_image_prep_check(prep)) || (rc = check_range(list, start, &count))) return rc;
    if (!cache_path) return decode_range(out, list, start, count, prep);
    if ((rc = cache_key(key, list, start, count, prep))) return rc;
    if (cache_read(out, cache_path, key, count, prep, list->num_classes)) {
        if (cache_hit) *cache_hit = 1;
        return 0;
    }
    if ((rc = decode_range(out, list, start, count, prep))) return rc;
    if ((rc = cache_write(cache_path, key, out))) glora_image_split_free(out);
    return rc;
}

/* ---- streaming --------------------------------------------------------- */

struct glora_image_stream {
    const glora_image_list_t *list;
    glora_image_prep_t prep;
    size_t pos, end, chunk;
};

int glora_image_stream_open(glora_image_stream_t **out, const glora_image_list_t *list,
                            size_t start, size_t count, const glora_image_prep_t *prep,
                            size_t chunk) {
    int rc;
    *out = NULL;
    if ((rc = glora_image_prep_check(prep)) || (rc = check_range(list, start, &count))) return rc;
    if (chunk == 0) return glora_error(GLORA_EINVAL, "image stream: chunk of 0 images");
    glora_image_stream_t *s = malloc(sizeof *s);
    if (!s) return glora_error(GLORA_ENOMEM, "image stream: out of memory");
    s->list = list;
    s->prep = *prep;
    s->pos = start;
    s->end = start + count;
    s->chunk = chunk;
    *out = s;
    return 0;
}

int glora_image_stream_next(glora_image_stream_t *s, glora_image_split_t *chunk) {
    glora_image_split_free(chunk);
    if (s->pos >= s->end) return 0;
    size_t n = s->end - s->pos < s->chunk ? s->end - s->pos : s->chunk;
    int rc = decode_range(chunk, s->list, s->pos, n, &s->prep);
    if (!rc) s->pos += n;
    return rc;
}

size_t glora_image_stream_pos(const glora_image_stream_t *s) {
    return s->pos;
}

void glora_image_stream_close(glora_image_stream_t *s) {
    free(s);
}
