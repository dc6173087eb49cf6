/* Opening and validating safetensors files (see glora/safetensors.h for the
 * format and the rules enforced here). */
#include "glora/safetensors.h"
#include "glora/common.h"
#include "util/fileio.h"
#include "io-impl.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

struct glora_st {
    char *path;
    const uint8_t *base;       /* whole file (mapping or caller's buffer) */
    size_t size;
    int mapped;                /* munmap base on close */
    const uint8_t *buf;        /* data buffer: base + 8 + N */
    size_t buf_size;
    glora_st_tensor_t *tensors; /* sorted by offset */
    size_t n;
    const glora_st_tensor_t **by_name; /* the tensors sorted by name */
    const char **meta;         /* key, value, key, value... */
    size_t n_meta;
    char *strings;             /* arena holding all names, keys and values */
};

/* Largest integer a double holds exactly: the bound for JSON integers. */
#define MAX_JSON_INT 9007199254740992.0

/* Memory cJSON may use beyond the file's own size. */
#define PARSE_SLACK ((size_t)16 << 20)

void glora_st_release(const glora_st_t *st, const glora_st_tensor_t *t) {
    if (!st->mapped || t->nbytes == 0) return;
    /* Whole pages inside the tensor only: its neighbours stay mapped. */
    long page = sysconf(_SC_PAGESIZE);
    if (page <= 0) return;
    uintptr_t begin = (uintptr_t)t->data, end = begin + t->nbytes, p = (uintptr_t)page;
    begin = (begin + p - 1) / p * p;
    end = end / p * p;
    if (end > begin) madvise((void *)begin, end - begin, MADV_DONTNEED);
}

const char *glora_st_path(const glora_st_t *st) { return st->path; }
size_t glora_st_count(const glora_st_t *st) { return st->n; }
size_t glora_st_meta_count(const glora_st_t *st) { return st->n_meta; }

const glora_st_tensor_t *glora_st_tensor(const glora_st_t *st, size_t i) {
    GLORA_ASSERT(i < st->n);
    return &st->tensors[i];
}

void glora_st_meta_at(const glora_st_t *st, size_t i, const char **key,
                      const char **value) {
    GLORA_ASSERT(i < st->n_meta);
    *key = st->meta[2 * i];
    *value = st->meta[2 * i + 1];
}

const char *glora_st_meta(const glora_st_t *st, const char *key) {
    for (size_t i = 0; i < st->n_meta; i++)
        if (strcmp(st->meta[2 * i], key) == 0) return st->meta[2 * i + 1];
    return NULL;
}

const glora_st_tensor_t *glora_st_find(const glora_st_t *st, const char *name) {
    size_t lo = 0, hi = st->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(st->by_name[mid]->name, name);
        if (c == 0) return st->by_name[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

void glora_st_close(glora_st_t *st) {
    if (!st) return;
    if (st->mapped) munmap((void *)st->base, st->size);
    free(st->path);
    free(st->tensors);
    free(st->by_name);
    free(st->meta);
    free(st->strings);
    free(st);
}

/* ---- validation ---------------------------------------------------------- */

/* Parsing state: the file being opened and the arena names are copied to. */
typedef struct {
    glora_st_t *st;
    const char *path;
    char *arena;
    size_t arena_used, arena_size;
} parser_t;

static int file_error(const parser_t *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int file_error(const parser_t *p, const char *fmt, ...) {
    char why[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    return glora_error(GLORA_EFORMAT, "safetensors file '%s': %s", p->path, why);
}

static int tensor_error(const parser_t *p, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int tensor_error(const parser_t *p, const char *name, const char *fmt, ...) {
    char why[512], shown[GLORA_IO_SHOWN_NAME];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    glora_io_show_name(name, shown);
    return glora_error(GLORA_EFORMAT, "tensor '%s' in '%s': %s", shown, p->path, why);
}

static const char *arena_copy(parser_t *p, const char *s) {
    size_t len = strlen(s) + 1;
    GLORA_ASSERT(p->arena_used + len <= p->arena_size);
    char *dst = p->arena + p->arena_used;
    memcpy(dst, s, len);
    p->arena_used += len;
    return dst;
}

/* An exact non-negative JSON integer (as cJSON's double) or -1 with the
 * reason in *why. */
static int json_uint(const cJSON *v, uint64_t *out, const char **why) {
    if (!cJSON_IsNumber(v)) { *why = "not a number"; return -1; }
    double d = v->valuedouble;
    if (d < 0) { *why = "negative"; return -1; }
    if (!(d <= MAX_JSON_INT)) { *why = "too large"; return -1; }
    if (d != floor(d)) { *why = "not an integer"; return -1; }
    *out = (uint64_t)d;
    return 0;
}

static int parse_dtype(const char *s, glora_st_dtype_t *out) {
    for (int d = 0; d < GLORA_ST_NDTYPES; d++)
        if (strcmp(s, glora_st_dtype_name((glora_st_dtype_t)d)) == 0) {
            *out = (glora_st_dtype_t)d;
            return 0;
        }
    return -1;
}

/* One entry of the header into t (name already set). */
static int parse_tensor(parser_t *p, const cJSON *e, glora_st_tensor_t *t) {
    const char *name = e->string;
    if (!cJSON_IsObject(e)) return tensor_error(p, name, "entry is not a JSON object");
    const cJSON *dtype = NULL, *shape = NULL, *offsets = NULL;
    for (const cJSON *f = e->child; f; f = f->next) {
        const cJSON **slot = strcmp(f->string, "dtype") == 0          ? &dtype
                             : strcmp(f->string, "shape") == 0        ? &shape
                             : strcmp(f->string, "data_offsets") == 0 ? &offsets
                                                                      : NULL;
        if (!slot) continue; /* unknown fields are ignored, as upstream does */
        if (*slot) return tensor_error(p, name, "field '%s' appears twice", f->string);
        *slot = f;
    }
    if (!dtype) return tensor_error(p, name, "no 'dtype'");
    if (!shape) return tensor_error(p, name, "no 'shape'");
    if (!offsets) return tensor_error(p, name, "no 'data_offsets'");

    if (!cJSON_IsString(dtype) || parse_dtype(dtype->valuestring, &t->dtype) != 0) {
        char shown[GLORA_IO_SHOWN_NAME];
        glora_io_show_name(cJSON_IsString(dtype) ? dtype->valuestring : "(not a string)",
                           shown);
        return tensor_error(p, name, "unknown dtype '%s'", shown);
    }

    if (!cJSON_IsArray(shape)) return tensor_error(p, name, "shape is not a list");
    int ndim = cJSON_GetArraySize(shape);
    if (ndim > GLORA_ST_MAX_NDIM)
        return tensor_error(p, name, "%d dimensions, at most %d supported", ndim,
                            GLORA_ST_MAX_NDIM);
    t->ndim = ndim;
    size_t numel = 1;
    int k = 0;
    for (const cJSON *d = shape->child; d; d = d->next, k++) {
        uint64_t v;
        const char *why;
        if (cJSON_IsNumber(d) && d->valuedouble < 0)
            return tensor_error(p, name, "negative dimension %g in shape", d->valuedouble);
        if (json_uint(d, &v, &why) != 0)
            return tensor_error(p, name, "dimension %d of shape is %s", k, why);
        if (v > SIZE_MAX || glora_size_mul(numel, (size_t)v, &numel) != 0)
            return tensor_error(p, name, "shape has more elements than fit in memory");
        t->shape[k] = (int64_t)v;
    }
    t->numel = numel;
    if (glora_size_mul(numel, glora_st_dtype_size(t->dtype), &t->nbytes) != 0)
        return tensor_error(p, name, "shape has more bytes than fit in memory");

    if (!cJSON_IsArray(offsets) || cJSON_GetArraySize(offsets) != 2)
        return tensor_error(p, name, "data_offsets is not a list of two integers");
    uint64_t begin, end;
    const char *why;
    if (json_uint(offsets->child, &begin, &why) != 0)
        return tensor_error(p, name, "data_offsets begin is %s", why);
    if (json_uint(offsets->child->next, &end, &why) != 0)
        return tensor_error(p, name, "data_offsets end is %s", why);
    if (begin > end)
        return tensor_error(p, name, "data_offsets [%llu, %llu]: begin after end",
                            (unsigned long long)begin, (unsigned long long)end);
    if (end > p->st->buf_size)
        return tensor_error(p, name,
                            "data_offsets [%llu, %llu] out of range: the data buffer "
                            "holds %zu bytes",
                            (unsigned long long)begin, (unsigned long long)end,
                            p->st->buf_size);
    if (end - begin != t->nbytes)
        return tensor_error(p, name,
                            "data_offsets [%llu, %llu] span %llu bytes, but %zu %s "
                            "values need %zu",
                            (unsigned long long)begin, (unsigned long long)end,
                            (unsigned long long)(end - begin), t->numel,
                            glora_st_dtype_name(t->dtype), t->nbytes);
    t->offset = (size_t)begin;
    t->data = p->st->buf + begin;
    return GLORA_OK;
}

static int parse_metadata(parser_t *p, const cJSON *m) {
    glora_st_t *st = p->st;
    if (cJSON_IsNull(m)) return GLORA_OK;
    if (!cJSON_IsObject(m)) return file_error(p, "__metadata__ is not a JSON object");
    size_t n = (size_t)cJSON_GetArraySize(m);
    st->meta = calloc(2 * n + 1, sizeof *st->meta);
    if (!st->meta) return glora_error(GLORA_ENOMEM, "safetensors file '%s': out of memory", p->path);
    for (const cJSON *kv = m->child; kv; kv = kv->next) {
        char shown[GLORA_IO_SHOWN_NAME];
        glora_io_show_name(kv->string, shown);
        if (!cJSON_IsString(kv))
            return file_error(p, "__metadata__ value of '%s' is not a string", shown);
        if (glora_st_meta(st, kv->string))
            return file_error(p, "__metadata__ key '%s' appears twice", shown);
        st->meta[2 * st->n_meta] = arena_copy(p, kv->string);
        st->meta[2 * st->n_meta + 1] = arena_copy(p, kv->valuestring);
        st->n_meta++;
    }
    return GLORA_OK;
}

static int cmp_offset(const void *a, const void *b) {
    const glora_st_tensor_t *x = a, *y = b;
    if (x->offset != y->offset) return x->offset < y->offset ? -1 : 1;
    if (x->nbytes != y->nbytes) return x->nbytes < y->nbytes ? -1 : 1;
    return strcmp(x->name, y->name);
}

static int cmp_name(const void *a, const void *b) {
    const glora_st_tensor_t *const *x = a, *const *y = b;
    return strcmp((*x)->name, (*y)->name);
}

/* Checks that the tensors, already sorted by offset, tile the data buffer. */
static int check_layout(parser_t *p) {
    glora_st_t *st = p->st;
    size_t covered = 0;
    for (size_t i = 0; i < st->n; i++) {
        const glora_st_tensor_t *t = &st->tensors[i];
        if (t->offset > covered)
            return tensor_error(p, t->name,
                                "gap before it: bytes [%zu, %zu) of the data buffer "
                                "belong to no tensor",
                                covered, t->offset);
        if (t->offset < covered) {
            char other[GLORA_IO_SHOWN_NAME];
            glora_io_show_name(st->tensors[i - 1].name, other);
            return tensor_error(p, t->name, "data_offsets [%zu, %zu] overlap tensor '%s'",
                                t->offset, t->offset + t->nbytes, other);
        }
        covered = t->offset + t->nbytes;
    }
    if (covered != st->buf_size)
        return file_error(p,
                          "the data buffer holds %zu bytes but the tensors cover "
                          "only %zu: trailing bytes",
                          st->buf_size, covered);
    return GLORA_OK;
}

/* Builds the name index and rejects duplicate names. */
static int index_names(parser_t *p) {
    glora_st_t *st = p->st;
    st->by_name = malloc((st->n ? st->n : 1) * sizeof *st->by_name);
    if (!st->by_name) return glora_error(GLORA_ENOMEM, "safetensors file '%s': out of memory", p->path);
    for (size_t i = 0; i < st->n; i++) st->by_name[i] = &st->tensors[i];
    qsort(st->by_name, st->n, sizeof *st->by_name, cmp_name);
    for (size_t i = 1; i < st->n; i++)
        if (strcmp(st->by_name[i]->name, st->by_name[i - 1]->name) == 0)
            return tensor_error(p, st->by_name[i]->name, "name appears twice");
    return GLORA_OK;
}

/* Upper bound on the number of JSON values in text[0..n): each value after
 * the first is preceded by ',' or opens with '[' / '{' / ':'. Used to bound
 * cJSON's memory before parsing. */
static size_t count_json_values(const char *text, size_t n) {
    size_t count = 1;
    int in_string = 0;
    for (size_t i = 0; i < n; i++) {
        char c = text[i];
        if (in_string) {
            if (c == '\\') i++;
            else if (c == '"') in_string = 0;
        } else if (c == '"') {
            in_string = 1;
        } else if (c == ',' || c == '[' || c == '{' || c == ':') {
            count++;
        }
    }
    return count;
}

static int parse_header(parser_t *p) {
    glora_st_t *st = p->st;
    if (st->size < 8)
        return file_error(p, "truncated: %zu bytes, too short for the 8-byte header length",
                          st->size);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | st->base[i];
    if (n > GLORA_ST_MAX_HEADER)
        return file_error(p, "header length %llu exceeds the limit of %u bytes",
                          (unsigned long long)n, GLORA_ST_MAX_HEADER);
    if (n > st->size - 8)
        return file_error(p, "truncated: header length %llu but only %zu bytes follow",
                          (unsigned long long)n, st->size - 8);
    if (n < 2) return file_error(p, "header of %llu bytes is too short for a JSON object",
                                 (unsigned long long)n);
    const char *text = (const char *)st->base + 8;
    const char *nul = memchr(text, '\0', (size_t)n);
    if (nul) return file_error(p, "header holds a NUL byte at offset %zu", (size_t)(nul - text) + 8);
    st->buf = st->base + 8 + n;
    st->buf_size = st->size - 8 - (size_t)n;

    /* cJSON allocates one node per value plus a copy of each string (with
     * the allocator's overhead): bound that before parsing. */
    size_t values = count_json_values(text, (size_t)n), budget, need;
    if (glora_size_add(st->size, PARSE_SLACK, &budget) != 0) budget = SIZE_MAX;
    if (glora_size_mul(values, sizeof(cJSON) + 32, &need) != 0 ||
        glora_size_add(need, (size_t)n, &need) != 0 || need > budget)
        return file_error(p, "header holds too many JSON values (%zu) for a %zu-byte file",
                          values, st->size);

    char *copy = malloc((size_t)n + 1);
    p->arena = malloc((size_t)n + 1); /* names and strings are shorter than the header */
    if (!copy || !p->arena) {
        free(copy);
        return glora_error(GLORA_ENOMEM, "safetensors file '%s': out of memory", p->path);
    }
    p->arena_size = (size_t)n + 1;
    st->strings = p->arena;
    memcpy(copy, text, (size_t)n);
    copy[n] = '\0';
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(copy, &end, 1);
    if (!root) {
        size_t at = end ? (size_t)(end - copy) + 8 : 8;
        free(copy);
        return file_error(p, "header is not valid JSON (error at byte %zu)", at);
    }
    int rc = GLORA_OK;
    if (!cJSON_IsObject(root)) {
        rc = file_error(p, "header is not a JSON object");
        goto done;
    }

    size_t entries = (size_t)cJSON_GetArraySize(root);
    st->tensors = calloc(entries ? entries : 1, sizeof *st->tensors);
    if (!st->tensors) {
        rc = glora_error(GLORA_ENOMEM, "safetensors file '%s': out of memory", p->path);
        goto done;
    }
    int seen_meta = 0;
    for (const cJSON *e = root->child; e; e = e->next) {
        if (strcmp(e->string, "__metadata__") == 0) {
            if (seen_meta++) {
                rc = file_error(p, "__metadata__ appears twice");
                goto done;
            }
            if ((rc = parse_metadata(p, e)) != GLORA_OK) goto done;
            continue;
        }
        glora_st_tensor_t *t = &st->tensors[st->n];
        if ((rc = parse_tensor(p, e, t)) != GLORA_OK) goto done;
        t->name = arena_copy(p, e->string);
        st->n++;
    }
    /* File order first: the name index points into the sorted array. */
    qsort(st->tensors, st->n, sizeof *st->tensors, cmp_offset);
    if ((rc = index_names(p)) != GLORA_OK) goto done;
    rc = check_layout(p);
done:
    cJSON_Delete(root);
    free(copy);
    return rc;
}

static int open_common(glora_st_t **out, glora_st_t *st, const char *path) {
    parser_t p = {.st = st, .path = path};
    st->path = strdup(path);
    int rc = st->path ? parse_header(&p)
                      : glora_error(GLORA_ENOMEM, "safetensors file '%s': out of memory", path);
    if (rc != GLORA_OK) {
        glora_st_close(st);
        return rc;
    }
    *out = st;
    return GLORA_OK;
}

int glora_st_open_buffer(glora_st_t **out, const void *data, size_t n, const char *name) {
    *out = NULL;
    glora_st_t *st = calloc(1, sizeof *st);
    if (!st) return glora_error(GLORA_ENOMEM, "safetensors file '%s': out of memory", name);
    st->base = data;
    st->size = n;
    return open_common(out, st, name);
}

int glora_st_open(glora_st_t **out, const char *path) {
    *out = NULL;
    uint64_t fsize;
    int fd = glora_open_regular(path, &fsize);
    if (fd < 0) return fd;
    struct stat sb;
    sb.st_size = (off_t)fsize;
    if (sb.st_size < 8) {
        close(fd);
        return glora_error(GLORA_EFORMAT,
                           "safetensors file '%s': truncated: %lld bytes, too short for "
                           "the 8-byte header length",
                           path, (long long)sb.st_size);
    }
    if ((uint64_t)sb.st_size > SIZE_MAX) {
        close(fd);
        return glora_error(GLORA_EIO, "cannot read '%s': too large to map", path);
    }
    size_t size = (size_t)sb.st_size;
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (map == MAP_FAILED) return glora_error(GLORA_EIO, "cannot map '%s': %s", path, strerror(e));
    glora_st_t *st = calloc(1, sizeof *st);
    if (!st) {
        munmap(map, size);
        return glora_error(GLORA_ENOMEM, "safetensors file '%s': out of memory", path);
    }
    st->base = map;
    st->size = size;
    st->mapped = 1;
    return open_common(out, st, path);
}

/* ---- expectations ---------------------------------------------------------- */

static void format_shape(char *buf, size_t cap, int ndim, const int64_t *shape) {
    size_t len = 0;
    len += (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && len < cap; i++)
        len += (size_t)snprintf(buf + len, cap - len, i ? ", %lld" : "%lld",
                                (long long)shape[i]);
    if (len < cap) snprintf(buf + len, cap - len, "]");
}

int glora_st_expect(const glora_st_t *st, const char *name, int ndim,
                    const int64_t *shape, const glora_st_tensor_t **out) {
    if (out) *out = NULL;
    char shown[GLORA_IO_SHOWN_NAME];
    glora_io_show_name(name, shown);
    const glora_st_tensor_t *t = glora_st_find(st, name);
    if (!t) return glora_error(GLORA_ESTATE, "tensor '%s' in '%s': missing", shown, st->path);
    int same = t->ndim == ndim;
    for (int i = 0; same && i < ndim; i++)
        if (shape[i] != -1 && shape[i] != t->shape[i]) same = 0;
    if (!same) {
        char want[200], found[200];
        format_shape(want, sizeof want, ndim, shape);
        format_shape(found, sizeof found, t->ndim, t->shape);
        return glora_error(GLORA_ESTATE, "tensor '%s' in '%s': shape %s expected, found %s",
                           shown, st->path, want, found);
    }
    if (out) *out = t;
    return GLORA_OK;
}

int glora_st_load_f32(const glora_st_t *st, const char *name, int ndim,
                      const int64_t *shape, float *dst) {
    const glora_st_tensor_t *t;
    int rc = glora_st_expect(st, name, ndim, shape, &t);
    if (rc != GLORA_OK) return rc;
    return glora_st_read_f32(st, t, dst, t->numel);
}
