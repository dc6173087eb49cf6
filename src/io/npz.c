/* Reading NumPy .npz archives: a zip central-directory parser and a .npy
 * header parser that trust no size without checking it (see glora/npz.h). */
#include "glora/npz.h"
#include "glora/common.h"
#include "util/fileio.h"
#include "io-impl.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define CHUNK (1u << 20)           /* bytes per pread / inflate piece */
#define MAX_NPY_HEADER 65536u      /* numpy itself refuses > 10,000 by default */
#define MAX_CENTRAL_DIR (64u << 20)
#define EOCD_MIN 22u
#define EOCD_SEARCH (EOCD_MIN + 65535u)

typedef struct {
    glora_npz_array_t a;
    char *entry;         /* the zip entry's name ("<key>.npy"), malloc'd */
    uint64_t local_off;  /* local header */
    uint64_t data_off;   /* first byte of the (compressed) data */
    uint64_t csize, usize;
    uint32_t crc;
    int method;          /* 0 stored, 8 deflated */
    uint32_t npy_header; /* bytes of the .npy preamble before the array data */
} entry_t;

struct glora_npz {
    char *path;
    int fd;
    uint64_t size;
    entry_t *e;
    size_t n;
};

static uint16_t le16(const unsigned char *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t le32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t le64(const unsigned char *p) { return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32; }

/* Reads exactly n bytes at off. */
static int read_at(const glora_npz_t *z, void *buf, size_t n, uint64_t off, const char *what) {
    unsigned char *p = buf;
    if (off > z->size || n > z->size - off)
        return glora_error(GLORA_EFORMAT, "npz archive '%s': %s at offset %llu runs past the end of the file "
                           "(truncated?)", z->path, what, (unsigned long long)off);
    while (n > 0) {
        ssize_t r = pread(z->fd, p, n, (off_t)off);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return glora_error(GLORA_EIO, "npz archive '%s': cannot read %s: %s", z->path, what, strerror(errno));
        if (r == 0)
            return glora_error(GLORA_EFORMAT, "npz archive '%s': %s: the file ended early (truncated?)", z->path, what);
        p += r;
        n -= (size_t)r;
        off += (uint64_t)r;
    }
    return GLORA_OK;
}

/* ---- sequential reading of one entry's uncompressed bytes --------------- */

typedef struct {
    const glora_npz_t *z;
    const entry_t *e;
    z_stream zs;
    int zinit, ended;
    uint64_t cpos, upos; /* compressed bytes fed, uncompressed bytes produced */
    uLong crc;
    unsigned char in[CHUNK];
} stream_t;

static int entry_error(const glora_npz_t *z, const entry_t *e, int code, const char *why) {
    char shown[GLORA_IO_SHOWN_NAME];
    glora_io_show_name(e->entry, shown);
    return glora_error(code, "entry '%s' in '%s': %s", shown, z->path, why);
}

static int stream_open(stream_t **out, const glora_npz_t *z, const entry_t *e) {
    stream_t *s = calloc(1, sizeof *s);
    if (!s) return glora_error(GLORA_ENOMEM, "npz archive '%s': out of memory", z->path);
    s->z = z;
    s->e = e;
    s->crc = crc32(0L, Z_NULL, 0);
    if (e->method == 8) {
        if (inflateInit2(&s->zs, -MAX_WBITS) != Z_OK) {
            free(s);
            return entry_error(z, e, GLORA_ENOMEM, "cannot start inflating (out of memory)");
        }
        s->zinit = 1;
    }
    *out = s;
    return GLORA_OK;
}

static void stream_close(stream_t *s) {
    if (!s) return;
    if (s->zinit) inflateEnd(&s->zs);
    free(s);
}

/* Produces exactly n more uncompressed bytes into dst. */
static int stream_read(stream_t *s, void *dst, size_t n) {
    const entry_t *e = s->e;
    if (n > e->usize - s->upos) return entry_error(s->z, e, GLORA_EFORMAT, "data shorter than its header says");
    if (e->method == 0) {
        int rc = read_at(s->z, dst, n, e->data_off + s->upos, "array data");
        if (rc) return rc;
    } else {
        unsigned char *p = dst;
        size_t left = n;
        while (left > 0) {
            if (s->ended) return entry_error(s->z, e, GLORA_EFORMAT, "deflate stream ends before the stated size");
            if (s->zs.avail_in == 0) {
                uint64_t more = e->csize - s->cpos;
                if (more == 0) return entry_error(s->z, e, GLORA_EFORMAT, "deflate stream truncated");
                if (more > CHUNK) more = CHUNK;
                int rc = read_at(s->z, s->in, (size_t)more, e->data_off + s->cpos, "compressed data");
                if (rc) return rc;
                s->cpos += more;
                s->zs.next_in = s->in;
                s->zs.avail_in = (uInt)more;
            }
            size_t piece = left > CHUNK ? CHUNK : left;
            s->zs.next_out = p;
            s->zs.avail_out = (uInt)piece;
            int zr = inflate(&s->zs, Z_NO_FLUSH);
            size_t got = piece - s->zs.avail_out;
            if (zr == Z_STREAM_END) s->ended = 1;
            else if (zr != Z_OK && !(zr == Z_BUF_ERROR && got > 0))
                return entry_error(s->z, e, GLORA_EFORMAT, "corrupt deflate data");
            p += got;
            left -= got;
        }
    }
    /* crc32 takes an unsigned int length: feed it in pieces. */
    const unsigned char *q = dst;
    for (size_t done = 0; done < n;) {
        size_t k = n - done > (1u << 30) ? (1u << 30) : n - done;
        s->crc = crc32(s->crc, q + done, (uInt)k);
        done += k;
    }
    s->upos += n;
    return GLORA_OK;
}

/* After the last byte: the stream must end here and the CRC must match. */
static int stream_finish(stream_t *s) {
    const entry_t *e = s->e;
    if (e->method == 8 && !s->ended) {
        unsigned char extra;
        s->zs.next_out = &extra;
        s->zs.avail_out = 1;
        if (s->zs.avail_in == 0 && s->cpos < e->csize) {
            uint64_t more = e->csize - s->cpos;
            if (more > CHUNK) more = CHUNK;
            int rc = read_at(s->z, s->in, (size_t)more, e->data_off + s->cpos, "compressed data");
            if (rc) return rc;
            s->cpos += more;
            s->zs.next_in = s->in;
            s->zs.avail_in = (uInt)more;
        }
        int zr = inflate(&s->zs, Z_NO_FLUSH);
        if (zr != Z_STREAM_END || s->zs.avail_out == 0)
            return entry_error(s->z, e, GLORA_EFORMAT, "deflate data longer than the stated size, or corrupt");
    }
    if (s->crc != e->crc) return entry_error(s->z, e, GLORA_EFORMAT, "CRC-32 mismatch (corrupt data)");
    return GLORA_OK;
}

/* ---- the .npy header ----------------------------------------------------- */

static const char *skip_ws(const char *p, const char *end) {
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
    return p;
}

/* A quoted Python string literal without escapes into out (cap bytes). */
static const char *parse_str(const char *p, const char *end, char *out, size_t cap) {
    if (p >= end || (*p != '\'' && *p != '"')) return NULL;
    char q = *p++;
    size_t n = 0;
    while (p < end && *p != q) {
        if (*p == '\\' || n + 1 >= cap) return NULL;
        out[n++] = *p++;
    }
    if (p >= end) return NULL;
    out[n] = '\0';
    return p + 1;
}

static int npy_fail(const glora_npz_t *z, const entry_t *e, const char *why) {
    return entry_error(z, e, GLORA_EFORMAT, why);
}

/* Parses "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }". */
static int parse_npy_dict(const glora_npz_t *z, entry_t *e, const char *h, size_t len) {
    const char *p = h, *end = h + len;
    int have[3] = {0, 0, 0};
    char key[32], val[16];
    p = skip_ws(p, end);
    if (p >= end || *p++ != '{') return npy_fail(z, e, ".npy header is not a Python dict");
    for (;;) {
        p = skip_ws(p, end);
        if (p < end && *p == '}') { p++; break; }
        if (!(p = parse_str(p, end, key, sizeof key))) return npy_fail(z, e, ".npy header: bad key");
        p = skip_ws(p, end);
        if (p >= end || *p++ != ':') return npy_fail(z, e, ".npy header: ':' expected after a key");
        p = skip_ws(p, end);
        int k = strcmp(key, "descr") == 0 ? 0 : strcmp(key, "fortran_order") == 0 ? 1 : strcmp(key, "shape") == 0 ? 2 : -1;
        if (k < 0) return npy_fail(z, e, ".npy header: unknown key (only descr, fortran_order, shape)");
        if (have[k]) return npy_fail(z, e, ".npy header: a key appears twice");
        have[k] = 1;
        if (k == 0) {
            if (!(p = parse_str(p, end, val, sizeof val))) return npy_fail(z, e, ".npy header: descr is not a simple dtype string");
            if (strlen(val) != 3 || (val[0] != '<' && val[0] != '>') || val[1] != 'f' ||
                (val[2] != '2' && val[2] != '4' && val[2] != '8')) {
                char why[96];
                snprintf(why, sizeof why, "dtype '%.8s' is not supported (float16/32/64 only)", val);
                return npy_fail(z, e, why);
            }
            memcpy(e->a.descr, val, 4);
            e->a.itemsize = val[2] - '0';
        } else if (k == 1) {
            if (end - p >= 5 && memcmp(p, "False", 5) == 0) p += 5;
            else if (end - p >= 4 && memcmp(p, "True", 4) == 0)
                return npy_fail(z, e, "fortran_order True is not supported (save the array in C order)");
            else return npy_fail(z, e, ".npy header: fortran_order must be True or False");
        } else {
            if (p >= end || *p++ != '(') return npy_fail(z, e, ".npy header: shape is not a tuple");
            e->a.ndim = 0;
            for (;;) {
                p = skip_ws(p, end);
                if (p < end && *p == ')') { p++; break; }
                if (p >= end || *p < '0' || *p > '9') return npy_fail(z, e, ".npy header: shape must hold non-negative integers");
                uint64_t v = 0;
                while (p < end && *p >= '0' && *p <= '9') {
                    v = v * 10 + (uint64_t)(*p++ - '0');
                    if (v > ((uint64_t)1 << 48)) return npy_fail(z, e, ".npy header: a dimension is too large");
                }
                if (e->a.ndim >= GLORA_NPZ_MAX_NDIM) return npy_fail(z, e, ".npy header: too many dimensions");
                e->a.shape[e->a.ndim++] = (int64_t)v;
                p = skip_ws(p, end);
                if (p < end && *p == ',') p++;
                else if (p < end && *p == ')') { p++; break; }
                else return npy_fail(z, e, ".npy header: bad shape tuple");
            }
        }
        p = skip_ws(p, end);
        if (p < end && *p == ',') { p++; continue; }
        if (p < end && *p == '}') { p++; break; }
        return npy_fail(z, e, ".npy header: ',' or '}' expected");
    }
    if (skip_ws(p, end) != end) return npy_fail(z, e, ".npy header: text after the dict");
    if (!have[0] || !have[1] || !have[2]) return npy_fail(z, e, ".npy header: descr, fortran_order or shape missing");
    size_t numel = 1, bytes;
    for (int d = 0; d < e->a.ndim; d++)
        if (glora_size_mul(numel, (size_t)e->a.shape[d], &numel)) return npy_fail(z, e, "shape overflows");
    if (glora_size_mul(numel, (size_t)e->a.itemsize, &bytes) || (uint64_t)bytes != e->usize - e->npy_header) {
        char why[160];
        snprintf(why, sizeof why, "shape and dtype give %zu values of %d bytes, but the entry holds %llu bytes of data",
                 numel, e->a.itemsize, (unsigned long long)(e->usize - e->npy_header));
        return npy_fail(z, e, why);
    }
    e->a.numel = numel;
    return GLORA_OK;
}

static int read_npy_header(const glora_npz_t *z, entry_t *e) {
    stream_t *s;
    int rc = stream_open(&s, z, e);
    if (rc) return rc;
    unsigned char pre[12];
    char *h = NULL;
    if (e->usize < 10) { rc = npy_fail(z, e, "too short for a .npy file"); goto out; }
    if ((rc = stream_read(s, pre, 10))) goto out;
    if (memcmp(pre, "\x93NUMPY", 6) != 0) { rc = npy_fail(z, e, "not a .npy file (bad magic)"); goto out; }
    uint32_t hlen, pre_len;
    if (pre[6] == 1) {
        hlen = le16(pre + 8);
        pre_len = 10;
    } else if (pre[6] == 2 || pre[6] == 3) {
        if (e->usize < 12) { rc = npy_fail(z, e, "too short for a .npy file"); goto out; }
        if ((rc = stream_read(s, pre + 10, 2))) goto out;
        hlen = le32(pre + 8);
        pre_len = 12;
    } else {
        rc = npy_fail(z, e, ".npy format version not 1, 2 or 3");
        goto out;
    }
    if (hlen > MAX_NPY_HEADER || hlen > e->usize - pre_len) {
        rc = npy_fail(z, e, ".npy header length beyond the entry (or over 64 KiB)");
        goto out;
    }
    if (!(h = malloc(hlen + 1u))) { rc = glora_error(GLORA_ENOMEM, "npz archive '%s': out of memory", z->path); goto out; }
    if ((rc = stream_read(s, h, hlen))) goto out;
    h[hlen] = '\0';
    if (memchr(h, '\0', hlen)) { rc = npy_fail(z, e, ".npy header holds a NUL byte"); goto out; }
    e->npy_header = pre_len + hlen;
    rc = parse_npy_dict(z, e, h, hlen);
out:
    free(h);
    stream_close(s);
    return rc;
}

/* ---- the zip directory --------------------------------------------------- */

/* Reads the zip64 extra field of a central header: the 64-bit values of
 * the fields that hold 0xFFFFFFFF, in the order usize, csize, offset. */
static int zip64_extra(const unsigned char *x, size_t xlen, uint64_t *usize, uint64_t *csize, uint64_t *off) {
    while (xlen >= 4) {
        uint16_t id = le16(x), len = le16(x + 2);
        if ((size_t)len > xlen - 4) return -1;
        if (id == 0x0001) {
            const unsigned char *p = x + 4;
            size_t left = len;
            uint64_t *f[3] = {usize, csize, off};
            for (int i = 0; i < 3; i++) {
                if (*f[i] != 0xffffffffu) continue;
                if (left < 8) return -1;
                *f[i] = le64(p);
                p += 8;
                left -= 8;
            }
            return 0;
        }
        x += 4 + len;
        xlen -= 4 + (size_t)len;
    }
    return 0;
}

static int find_directory(glora_npz_t *z, uint64_t *cd_off, uint64_t *cd_size, uint64_t *count, uint64_t *cd_end) {
    size_t tail = z->size < EOCD_SEARCH ? (size_t)z->size : EOCD_SEARCH;
    if (tail < EOCD_MIN) return glora_error(GLORA_EFORMAT, "npz archive '%s': too short for a zip file", z->path);
    unsigned char *t = malloc(tail);
    if (!t) return glora_error(GLORA_ENOMEM, "npz archive '%s': out of memory", z->path);
    int rc = read_at(z, t, tail, z->size - tail, "end of central directory");
    if (rc) { free(t); return rc; }
    long at = -1;
    for (long p = (long)tail - (long)EOCD_MIN; p >= 0; p--) {
        if (le32(t + p) == 0x06054b50u && (size_t)p + EOCD_MIN + le16(t + p + 20) == tail) { at = p; break; }
    }
    if (at < 0) {
        free(t);
        return glora_error(GLORA_EFORMAT, "npz archive '%s': no zip end-of-central-directory record "
                           "(not a zip file, or truncated)", z->path);
    }
    const unsigned char *r = t + at;
    uint64_t eocd = z->size - tail + (uint64_t)at;
    uint16_t disk = le16(r + 4), cd_disk = le16(r + 6), n_disk = le16(r + 8), n_all = le16(r + 10);
    *cd_size = le32(r + 12);
    *cd_off = le32(r + 16);
    *count = n_all;
    *cd_end = eocd;
    free(t);
    if (disk != 0 || cd_disk != 0 || n_disk != n_all)
        return glora_error(GLORA_EFORMAT, "npz archive '%s': multi-disk zip archives are not supported", z->path);
    if (n_all == 0xffffu || *cd_size == 0xffffffffu || *cd_off == 0xffffffffu) {
        unsigned char loc[20], r64[56];
        if (eocd < 20 || (rc = read_at(z, loc, 20, eocd - 20, "zip64 locator"))) goto no64;
        if (le32(loc) != 0x07064b50u) goto no64;
        uint64_t off64 = le64(loc + 8);
        if (off64 > eocd - 20 || eocd - 20 - off64 < 56) goto no64;
        if ((rc = read_at(z, r64, 56, off64, "zip64 end of central directory"))) return rc;
        if (le32(r64) != 0x06064b50u) goto no64;
        if (le32(r64 + 16) != 0 || le32(r64 + 20) != 0 || le64(r64 + 24) != le64(r64 + 32))
            return glora_error(GLORA_EFORMAT, "npz archive '%s': multi-disk zip archives are not supported", z->path);
        *count = le64(r64 + 32);
        *cd_size = le64(r64 + 40);
        *cd_off = le64(r64 + 48);
        *cd_end = off64;
    }
    if (*cd_off > *cd_end || *cd_size != *cd_end - *cd_off)
        return glora_error(GLORA_EFORMAT, "npz archive '%s': central directory offset/size do not match the file "
                           "(truncated or not a zip file?)", z->path);
    if (*cd_size > MAX_CENTRAL_DIR || *count > *cd_size / 46)
        return glora_error(GLORA_EFORMAT, "npz archive '%s': %llu entries cannot fit a central directory of %llu bytes",
                           z->path, (unsigned long long)*count, (unsigned long long)*cd_size);
    return GLORA_OK;
no64:
    if (rc) return rc;
    return glora_error(GLORA_EFORMAT, "npz archive '%s': zip64 fields without a valid zip64 end record", z->path);
}

static int read_entry(glora_npz_t *z, entry_t *e, const unsigned char *cd, size_t cd_len, size_t *pos,
                      uint64_t data_end) {
    size_t p = *pos;
    if (cd_len - p < 46 || le32(cd + p) != 0x02014b50u)
        return glora_error(GLORA_EFORMAT, "npz archive '%s': central directory entry %zu is malformed", z->path,
                           (size_t)(e - z->e));
    const unsigned char *h = cd + p;
    uint16_t flags = le16(h + 8), method = le16(h + 10), nl = le16(h + 28), xl = le16(h + 30), cl = le16(h + 32);
    if ((size_t)nl + xl + cl > cd_len - p - 46)
        return glora_error(GLORA_EFORMAT, "npz archive '%s': central directory entry %zu runs past the directory",
                           z->path, (size_t)(e - z->e));
    if (nl == 0 || memchr(h + 46, '\0', nl))
        return glora_error(GLORA_EFORMAT, "npz archive '%s': central directory entry %zu has an empty or binary name",
                           z->path, (size_t)(e - z->e));
    if (!(e->entry = malloc((size_t)nl + 1)))
        return glora_error(GLORA_ENOMEM, "npz archive '%s': out of memory", z->path);
    memcpy(e->entry, h + 46, nl);
    e->entry[nl] = '\0';
    e->crc = le32(h + 16);
    e->csize = le32(h + 20);
    e->usize = le32(h + 24);
    e->local_off = le32(h + 42);
    e->method = method;
    if (zip64_extra(h + 46 + nl, xl, &e->usize, &e->csize, &e->local_off))
        return entry_error(z, e, GLORA_EFORMAT, "malformed zip64 extra field");
    *pos = p + 46 + nl + xl + cl;
    if (flags & 0x41) return entry_error(z, e, GLORA_EFORMAT, "encrypted zip entries are not supported");
    if (method != 0 && method != 8) return entry_error(z, e, GLORA_EFORMAT, "compression method not stored or deflate");
    if (method == 0 && e->csize != e->usize)
        return entry_error(z, e, GLORA_EFORMAT, "stored entry with different compressed and uncompressed sizes");
    if (nl < 5 || strcmp(e->entry + nl - 4, ".npy") != 0)
        return entry_error(z, e, GLORA_EFORMAT, "not a .npy array (names in an .npz end in .npy)");
    /* The local header: signature, name and method must agree. */
    unsigned char lh[30];
    if (e->local_off > data_end || data_end - e->local_off < 30)
        return entry_error(z, e, GLORA_EFORMAT, "local header offset outside the archive's data");
    int rc = read_at(z, lh, 30, e->local_off, "local header");
    if (rc) return rc;
    uint16_t lnl = le16(lh + 26), lxl = le16(lh + 28);
    if (le32(lh) != 0x04034b50u) return entry_error(z, e, GLORA_EFORMAT, "bad local header signature");
    if (le16(lh + 8) != method) return entry_error(z, e, GLORA_EFORMAT, "local header and central directory disagree on the method");
    if (lnl != nl) return entry_error(z, e, GLORA_EFORMAT, "local header and central directory disagree on the name");
    uint64_t data = e->local_off + 30 + lnl + lxl;
    if (data > data_end || e->csize > data_end - data)
        return entry_error(z, e, GLORA_EFORMAT, "data runs past the end of the archive's data (truncated?)");
    char *lname = malloc(lnl);
    if (!lname) return glora_error(GLORA_ENOMEM, "npz archive '%s': out of memory", z->path);
    rc = read_at(z, lname, lnl, e->local_off + 30, "local header name");
    int same = !rc && memcmp(lname, e->entry, nl) == 0;
    free(lname);
    if (rc) return rc;
    if (!same) return entry_error(z, e, GLORA_EFORMAT, "local header and central directory disagree on the name");
    /* Deflate expands at most about 1032:1: a larger claim is hostile. */
    if (method == 8 && e->usize / 1032 > e->csize + 1)
        return entry_error(z, e, GLORA_EFORMAT, "uncompressed size impossible for its compressed size");
    e->data_off = data;
    return read_npy_header(z, e);
}

/* Entry names are shown in messages with ".npy"; the key is a copy
 * without it. */
static int split_keys(glora_npz_t *z) {
    for (size_t i = 0; i < z->n; i++) {
        size_t len = strlen(z->e[i].entry) - 4;
        char *key = malloc(len + 1);
        if (!key) return glora_error(GLORA_ENOMEM, "npz archive '%s': out of memory", z->path);
        memcpy(key, z->e[i].entry, len);
        key[len] = '\0';
        z->e[i].a.name = key;
        for (size_t j = 0; j < i; j++)
            if (strcmp(z->e[j].a.name, key) == 0) return entry_error(z, &z->e[i], GLORA_EFORMAT, "appears twice in the archive");
    }
    return GLORA_OK;
}

int glora_npz_open(glora_npz_t **out, const char *path) {
    *out = NULL;
    glora_npz_t *z = calloc(1, sizeof *z);
    unsigned char *cd = NULL;
    int rc = GLORA_OK;
    if (z) z->fd = -1;
    if (!z || !(z->path = strdup(path))) {
        free(z);
        return glora_error(GLORA_ENOMEM, "npz archive '%s': out of memory", path);
    }
    /* Not open(): a named pipe would block it until a writer comes. */
    int fd = glora_open_regular(path, &z->size);
    if (fd < 0) {
        rc = fd;
        goto out;
    }
    z->fd = fd;
    uint64_t cd_off = 0, cd_size = 0, count = 0, cd_end = 0;
    if ((rc = find_directory(z, &cd_off, &cd_size, &count, &cd_end))) goto out;
    if (count == 0) {
        rc = glora_error(GLORA_EFORMAT, "npz archive '%s': holds no arrays", path);
        goto out;
    }
    cd = malloc((size_t)cd_size);
    z->e = calloc((size_t)count, sizeof *z->e);
    if (!cd || !z->e) {
        rc = glora_error(GLORA_ENOMEM, "npz archive '%s': out of memory", path);
        goto out;
    }
    if ((rc = read_at(z, cd, (size_t)cd_size, cd_off, "central directory"))) goto out;
    size_t pos = 0;
    for (uint64_t i = 0; i < count && !rc; i++) {
        z->n++;
        rc = read_entry(z, &z->e[i], cd, (size_t)cd_size, &pos, cd_off);
    }
    if (!rc && pos != cd_size)
        rc = glora_error(GLORA_EFORMAT, "npz archive '%s': %llu bytes of central directory left over", path,
                         (unsigned long long)(cd_size - pos));
    if (!rc) rc = split_keys(z);
out:
    free(cd);
    if (rc) {
        glora_npz_close(z);
        return rc;
    }
    *out = z;
    return GLORA_OK;
}

void glora_npz_close(glora_npz_t *z) {
    if (!z) return;
    for (size_t i = 0; i < z->n; i++) {
        free((char *)z->e[i].a.name);
        free(z->e[i].entry);
    }
    free(z->e);
    if (z->fd >= 0) close(z->fd);
    free(z->path);
    free(z);
}

const char *glora_npz_path(const glora_npz_t *z) { return z->path; }
size_t glora_npz_count(const glora_npz_t *z) { return z->n; }
const glora_npz_array_t *glora_npz_array(const glora_npz_t *z, size_t i) { return i < z->n ? &z->e[i].a : NULL; }

const glora_npz_array_t *glora_npz_find(const glora_npz_t *z, const char *name) {
    for (size_t i = 0; i < z->n; i++)
        if (strcmp(z->e[i].a.name, name) == 0) return &z->e[i].a;
    return NULL;
}

/* ---- conversion ---------------------------------------------------------- */

static float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, man = h & 0x3ffu, bits;
    if (exp == 0) {
        float mag = (float)man * 0x1p-24f;
        return sign ? -mag : mag;
    }
    bits = exp == 0x1f ? sign | 0x7f800000u | (man << 13) : sign | ((exp + 112u) << 23) | (man << 13);
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static void convert(const unsigned char *src, float *dst, size_t n, const char *descr) {
    int big = descr[0] == '>', size = descr[2] - '0';
    unsigned char b[8];
    for (size_t i = 0; i < n; i++, src += size) {
        for (int k = 0; k < size; k++) b[k] = big ? src[size - 1 - k] : src[k];
        if (size == 2) {
            dst[i] = half_to_float(le16(b));
        } else if (size == 4) {
            uint32_t u = le32(b);
            memcpy(&dst[i], &u, 4);
        } else {
            uint64_t u = le64(b);
            double d;
            memcpy(&d, &u, 8);
            dst[i] = (float)d;
        }
    }
}

int glora_npz_read_f32(const glora_npz_t *z, const glora_npz_array_t *a, float *dst, size_t n) {
    const entry_t *e = (const entry_t *)a; /* a is the first member */
    if (n != a->numel) {
        char why[96];
        snprintf(why, sizeof why, "%zu values, but the destination holds %zu", a->numel, n);
        return entry_error(z, e, GLORA_EINVAL, why);
    }
    stream_t *s;
    int rc = stream_open(&s, z, e);
    if (rc) return rc;
    unsigned char *buf = NULL;
    unsigned char skip[4096];
    for (uint32_t left = e->npy_header; left > 0 && !rc;) {
        uint32_t k = left > sizeof skip ? (uint32_t)sizeof skip : left;
        rc = stream_read(s, skip, k);
        left -= k;
    }
    const int native = a->descr[0] == '<' && a->itemsize == 4 && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__;
    if (!rc && native) {
        rc = stream_read(s, dst, n * sizeof(float)); /* no copy: straight into dst */
    } else if (!rc) {
        size_t per = CHUNK / (size_t)a->itemsize;
        if (!(buf = malloc(CHUNK))) rc = glora_error(GLORA_ENOMEM, "npz archive '%s': out of memory", z->path);
        for (size_t done = 0; done < n && !rc;) {
            size_t k = n - done < per ? n - done : per;
            rc = stream_read(s, buf, k * (size_t)a->itemsize);
            if (!rc) convert(buf, dst + done, k, a->descr);
            done += k;
        }
    }
    if (!rc) rc = stream_finish(s);
    free(buf);
    stream_close(s);
    return rc;
}

int glora_npz_sniff(const char *path) {
    /* Only a regular file can be an archive: a FIFO is not opened for
     * reading here (it would wait for a writer), and its reader says why. */
    uint64_t size;
    int fd = glora_open_regular(path, &size);
    if (fd < 0) {
        glora_error_clear();
        return 0;
    }
    unsigned char m[4];
    int yes = size >= 4 && read(fd, m, 4) == 4 && m[0] == 'P' && m[1] == 'K' &&
              ((m[2] == 3 && m[3] == 4) || (m[2] == 5 && m[3] == 6));
    close(fd);
    return yes;
}
