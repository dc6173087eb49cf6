/* The effective configuration written out: as YAML (runs keep the config
 * they ran with), as a hash (a resumed search refuses a changed config) and
 * as a list of differences (to say what changed). */
#include "config/config-impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "glora/common.h"
#include "util/fileio.h"

static int pair_cmp(const void *a, const void *b) {
    return cfg_keycmp(((const cfg_pair_t *)a)->key, ((const cfg_pair_t *)b)->key);
}

int cfg_effective(const glora_config_t *c, cfg_pair_t **out, size_t *n) {
    size_t cap, m = 0;
    *out = NULL;
    *n = 0;
    if (glora_size_add(c->n, c->schema->nkeys + 1, &cap))
        return glora_error(GLORA_ENOMEM, "out of memory");
    cfg_pair_t *p = calloc(cap, sizeof *p);
    if (p == NULL) return glora_error(GLORA_ENOMEM, "out of memory");
    for (size_t i = 0; i < c->n; i++) p[m++] = (cfg_pair_t){c->e[i].key, c->e[i].v.canon, c->e[i].spec};
    for (size_t i = 0; i < c->schema->nkeys; i++) {
        const char *key = c->schema->keys[i].key;
        if (!c->has_default[i] || strchr(key, '*')) continue;
        int given = 0;
        for (size_t j = 0; j < c->n && !given; j++) given = c->e[j].spec == &c->schema->keys[i];
        if (!given) p[m++] = (cfg_pair_t){key, c->defaults[i].canon, &c->schema->keys[i]};
    }
    qsort(p, m, sizeof *p, pair_cmp);
    *out = p;
    *n = m;
    return 0;
}

/* Segment k of a dotted key, as pointer and length. */
static const char *segment(const char *key, size_t k, size_t *len) {
    for (; k > 0 && key; k--) {
        key = strchr(key, '.');
        if (key) key++;
    }
    *len = key ? strcspn(key, ".") : 0;
    return key;
}

static size_t segments(const char *key) {
    size_t n = 1;
    for (; *key; key++) n += *key == '.';
    return n;
}

int glora_config_dump(const glora_config_t *c, char **yaml_out) {
    GLORA_ASSERT(c != NULL && yaml_out != NULL);
    cfg_pair_t *p;
    size_t n;
    *yaml_out = NULL;
    int rc = cfg_effective(c, &p, &n);
    if (rc) return rc;
    sbuf_t b = {0};
    sb_puts(&b, "");
    for (size_t i = 0; i < n; i++) {
        size_t depth = segments(p[i].key), shared = 0;
        /* Maps already opened by the previous key stay open. */
        if (i > 0) {
            size_t pdepth = segments(p[i - 1].key);
            while (shared + 1 < depth && shared + 1 < pdepth) {
                size_t la, lb;
                const char *a = segment(p[i].key, shared, &la);
                const char *b2 = segment(p[i - 1].key, shared, &lb);
                if (la != lb || memcmp(a, b2, la)) break;
                shared++;
            }
        }
        for (size_t k = shared; k < depth; k++) {
            size_t len;
            const char *s = segment(p[i].key, k, &len);
            char *name = strndup(s, len);
            if (name == NULL) b.failed = 1;
            for (size_t t = 0; t < k && name; t++) sb_puts(&b, "  ");
            if (name) cfg_buf_scalar(&b, name);
            free(name);
            sb_puts(&b, ":");
            if (k + 1 == depth) {
                sb_puts(&b, " ");
                sb_puts(&b, p[i].canon);
            }
            sb_puts(&b, "\n");
        }
    }
    free(p);
    if (b.failed) {
        free(b.buf);
        return glora_error(GLORA_ENOMEM, "out of memory");
    }
    *yaml_out = b.buf;
    return 0;
}

/* Whether a key's value belongs to the run's identity (config.h: the flags). */
static int in_identity(const glora_config_t *c, const cfg_pair_t *p) {
    if (p->spec->flags & GLORA_CFG_NOT_IDENTITY) return 0;
    if (!(p->spec->flags & GLORA_CFG_IDENTITY_IF_SET)) return 1;
    if (p->spec->legacy) return strcmp(p->canon, p->spec->legacy) != 0;
    size_t k = (size_t)(p->spec - c->schema->keys);
    return !(c->has_default[k] && strcmp(p->canon, c->defaults[k].canon) == 0);
}

int glora_config_hash(const glora_config_t *c, char hex[65]) {
    GLORA_ASSERT(c != NULL);
    cfg_pair_t *p;
    size_t n;
    hex[0] = '\0';
    int rc = cfg_effective(c, &p, &n);
    if (rc) return rc;
    glora_sha256_t s;
    glora_sha256_init(&s);
    for (size_t i = 0; i < n; i++) {
        if (!in_identity(c, &p[i])) continue;
        glora_sha256_update(&s, p[i].key, strlen(p[i].key) + 1);
        glora_sha256_update(&s, p[i].canon, strlen(p[i].canon) + 1);
    }
    free(p);
    uint8_t d[32];
    glora_sha256_final(&s, d);
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", d[i]);
    return 0;
}

int glora_config_diff(const glora_config_t *old, const glora_config_t *new_, char **summary) {
    GLORA_ASSERT(old != NULL && new_ != NULL);
    cfg_pair_t *a = NULL, *b = NULL;
    size_t na, nb, i = 0, j = 0;
    int count = 0, rc;
    if (summary) *summary = NULL;
    if ((rc = cfg_effective(old, &a, &na)) || (rc = cfg_effective(new_, &b, &nb))) {
        free(a);
        return rc;
    }
    sbuf_t t = {0};
    sb_puts(&t, "");
    while (i < na || j < nb) {
        if (i < na && (a[i].spec->flags & GLORA_CFG_NOT_IDENTITY)) { i++; continue; }
        if (j < nb && (b[j].spec->flags & GLORA_CFG_NOT_IDENTITY)) { j++; continue; }
        int r = i == na ? 1 : j == nb ? -1 : cfg_keycmp(a[i].key, b[j].key);
        const char *sep = count ? "; " : "";
        if (r == 0) {
            if (strcmp(a[i].canon, b[j].canon)) {
                sb_puts(&t, sep);
                sb_puts(&t, a[i].key);
                sb_puts(&t, " changed from ");
                sb_puts(&t, a[i].canon);
                sb_puts(&t, " to ");
                sb_puts(&t, b[j].canon);
                count++;
            }
            i++, j++;
        } else if (r < 0) {
            sb_puts(&t, sep);
            sb_puts(&t, a[i].key);
            sb_puts(&t, " removed (was ");
            sb_puts(&t, a[i].canon);
            sb_puts(&t, ")");
            count++, i++;
        } else {
            sb_puts(&t, sep);
            sb_puts(&t, b[j].key);
            sb_puts(&t, " added (");
            sb_puts(&t, b[j].canon);
            sb_puts(&t, ")");
            count++, j++;
        }
    }
    free(a);
    free(b);
    if (t.failed) {
        free(t.buf);
        return glora_error(GLORA_ENOMEM, "out of memory");
    }
    if (summary) *summary = t.buf; else free(t.buf);
    return count;
}
