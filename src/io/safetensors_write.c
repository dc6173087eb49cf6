/* Writing float32 safetensors files atomically (see glora/safetensors.h). */
#include "glora/safetensors.h"
#include "glora/common.h"
#include "util/fileio.h"
#include "io-impl.h"
#include "util/strbuf.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Name of the first string that appears twice in s[0..n), or NULL. */
static const char *find_duplicate(const char **s, size_t n) {
    qsort(s, n, sizeof *s, cmp_str);
    for (size_t i = 1; i < n; i++)
        if (strcmp(s[i], s[i - 1]) == 0) return s[i];
    return NULL;
}

/* Checks the entries and metadata; fills nbytes[i]. */
static int check_input(const char *path, const glora_st_entry_t *entries, size_t n,
                       const char *const *meta, size_t n_meta, size_t *nbytes) {
    char shown[GLORA_IO_SHOWN_NAME];
    for (size_t i = 0; i < n; i++) {
        const glora_st_entry_t *e = &entries[i];
        if (!e->name || !e->name[0] || strcmp(e->name, "__metadata__") == 0)
            return glora_error(GLORA_EINVAL,
                               "cannot write '%s': tensor %zu has an empty or reserved name",
                               path, i);
        glora_io_show_name(e->name, shown);
        if (e->ndim < 0 || e->ndim > GLORA_ST_MAX_NDIM || (e->ndim > 0 && !e->shape))
            return glora_error(GLORA_EINVAL, "tensor '%s' for '%s': bad number of dimensions %d",
                               shown, path, e->ndim);
        size_t numel = 1;
        for (int d = 0; d < e->ndim; d++) {
            if (e->shape[d] < 0)
                return glora_error(GLORA_EINVAL, "tensor '%s' for '%s': negative dimension %lld",
                                   shown, path, (long long)e->shape[d]);
            if ((uint64_t)e->shape[d] > SIZE_MAX ||
                glora_size_mul(numel, (size_t)e->shape[d], &numel) != 0)
                return glora_error(GLORA_EINVAL, "tensor '%s' for '%s': shape too large",
                                   shown, path);
        }
        if (glora_size_mul(numel, sizeof(float), &nbytes[i]) != 0)
            return glora_error(GLORA_EINVAL, "tensor '%s' for '%s': shape too large", shown, path);
        if (numel > 0 && !e->data)
            return glora_error(GLORA_EINVAL, "tensor '%s' for '%s': no data", shown, path);
    }
    for (size_t i = 0; i < n_meta; i++)
        if (!meta[2 * i] || !meta[2 * i + 1])
            return glora_error(GLORA_EINVAL, "cannot write '%s': metadata pair %zu has a NULL",
                               path, i);

    size_t most = n > n_meta ? n : n_meta;
    const char **names = malloc((most ? most : 1) * sizeof *names);
    if (!names) return glora_error(GLORA_ENOMEM, "cannot write '%s': out of memory", path);
    for (size_t i = 0; i < n; i++) names[i] = entries[i].name;
    const char *dup = find_duplicate(names, n);
    if (dup) {
        glora_io_show_name(dup, shown);
        free(names);
        return glora_error(GLORA_EINVAL, "tensor '%s' for '%s': name appears twice", shown, path);
    }
    for (size_t i = 0; i < n_meta; i++) names[i] = meta[2 * i];
    dup = find_duplicate(names, n_meta);
    if (dup) {
        glora_io_show_name(dup, shown);
        free(names);
        return glora_error(GLORA_EINVAL, "metadata key '%s' for '%s': appears twice", shown, path);
    }
    free(names);
    return GLORA_OK;
}

/* The header JSON, padded with spaces to a multiple of 8 bytes. */
static int build_header(sbuf_t *h, const glora_st_entry_t *entries, size_t n,
                        const char *const *meta, size_t n_meta, const size_t *nbytes) {
    sb_puts(h, "{");
    if (n_meta > 0) {
        sb_puts(h, "\"__metadata__\":{");
        for (size_t i = 0; i < n_meta; i++) {
            if (i) sb_puts(h, ",");
            sb_jstr(h, meta[2 * i]);
            sb_puts(h, ":");
            sb_jstr(h, meta[2 * i + 1]);
        }
        sb_puts(h, "}");
    }
    size_t offset = 0;
    for (size_t i = 0; i < n; i++) {
        if (i || n_meta > 0) sb_puts(h, ",");
        sb_jstr(h, entries[i].name);
        sb_puts(h, ":{\"dtype\":\"F32\",\"shape\":[");
        for (int d = 0; d < entries[i].ndim; d++)
            sb_printf(h, d ? ",%" PRId64 : "%" PRId64, entries[i].shape[d]);
        size_t end;
        if (glora_size_add(offset, nbytes[i], &end) != 0) h->failed = 1;
        sb_printf(h, "],\"data_offsets\":[%zu,%zu]}", offset, end);
        offset = end;
    }
    sb_puts(h, "}");
    while (!h->failed && h->len % 8 != 0) sb_puts(h, " ");
    return h->failed ? -1 : 0;
}

static int write_floats(glora_atomic_file_t *f, const float *x, size_t n) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    return glora_atomic_write(f, x, n * sizeof(float));
#else
    uint8_t buf[4096];
    while (n > 0) {
        size_t k = n < sizeof buf / 4 ? n : sizeof buf / 4;
        for (size_t i = 0; i < k; i++) {
            uint32_t b;
            memcpy(&b, &x[i], 4);
            for (int j = 0; j < 4; j++) buf[4 * i + j] = (uint8_t)(b >> (8 * j));
        }
        int rc = glora_atomic_write(f, buf, 4 * k);
        if (rc) return rc;
        x += k;
        n -= k;
    }
    return GLORA_OK;
#endif
}

int glora_st_write(const char *path, const glora_st_entry_t *entries, size_t n,
                   const char *const *meta, size_t n_meta) {
    size_t *nbytes = malloc((n ? n : 1) * sizeof *nbytes);
    if (!nbytes) return glora_error(GLORA_ENOMEM, "cannot write '%s': out of memory", path);
    sbuf_t h = {0};
    glora_atomic_file_t *f = NULL;
    int rc = check_input(path, entries, n, meta, n_meta, nbytes);
    if (rc) goto done;
    if (build_header(&h, entries, n, meta, n_meta, nbytes) != 0) {
        rc = glora_error(GLORA_ENOMEM, "cannot write '%s': out of memory", path);
        goto done;
    }
    if (h.len > GLORA_ST_MAX_HEADER) {
        rc = glora_error(GLORA_EINVAL, "cannot write '%s': header of %zu bytes exceeds the limit",
                         path, h.len);
        goto done;
    }
    uint8_t len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (uint8_t)((uint64_t)h.len >> (8 * i));
    if ((rc = glora_atomic_open(&f, path)) != GLORA_OK) goto done;
    rc = glora_atomic_write(f, len8, 8);
    if (!rc) rc = glora_atomic_write(f, h.buf, h.len);
    for (size_t i = 0; i < n && !rc; i++)
        rc = write_floats(f, entries[i].data, nbytes[i] / sizeof(float));
    if (rc) {
        glora_atomic_abort(f);
        goto done;
    }
    rc = glora_atomic_commit(f);
done:
    free(h.buf);
    free(nbytes);
    return rc;
}
