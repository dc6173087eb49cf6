/* Configs: a YAML tree checked key by key against the caller's schema,
 * --set overrides, and the typed getters. */
#include "config/config-impl.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "glora/common.h"
#include "util/fileio.h"

/* ---- dotted paths ------------------------------------------------------- */

/* Length of the segment starting at p (up to '.' or the end). */
static size_t seg_len(const char *p) { return strcspn(p, "."); }

/* Advances p past one segment and its dot; NULL after the last. */
static const char *seg_next(const char *p) {
    p += seg_len(p);
    return *p == '.' ? p + 1 : NULL;
}

static size_t seg_count(const char *p) {
    size_t n = 0;
    for (; p; p = seg_next(p)) n++;
    return n;
}

int cfg_keycmp(const char *a, const char *b) {
    for (;; a++, b++) {
        int ca = *a == '\0' ? 0 : *a == '.' ? 1 : (unsigned char)*a + 2;
        int cb = *b == '\0' ? 0 : *b == '.' ? 1 : (unsigned char)*b + 2;
        if (ca != cb) return ca - cb;
        if (ca == 0) return 0;
    }
}

enum { MATCH_NONE, MATCH_PREFIX, MATCH_LEAF };

/* How the concrete path relates to a schema pattern: the same key, a map
 * on the way to it, or neither.  "*" matches any one segment. */
static int match(const char *pattern, const char *path) {
    const char *p = pattern, *q = path;
    while (p && q) {
        size_t lp = seg_len(p), lq = seg_len(q);
        if (!(lp == 1 && *p == '*') && (lp != lq || memcmp(p, q, lp) != 0)) return MATCH_NONE;
        p = seg_next(p);
        q = seg_next(q);
    }
    if (q) return MATCH_NONE;
    return p ? MATCH_PREFIX : MATCH_LEAF;
}

/* The schema key for a concrete path; *is_map set when the path is a map
 * that holds schema keys. */
static const glora_config_key_t *find_spec(const glora_config_schema_t *s, const char *path,
                                           int *is_map) {
    *is_map = 0;
    for (size_t i = 0; i < s->nkeys; i++) {
        int m = match(s->keys[i].key, path);
        if (m == MATCH_LEAF) return &s->keys[i];
        if (m == MATCH_PREFIX) *is_map = 1;
    }
    return NULL;
}

/* 0 when every segment of a user's key is non-empty and not "*". */
static int check_user_key(const char *path) {
    for (const char *p = path; p; p = seg_next(p)) {
        size_t l = seg_len(p);
        if (l == 0 || (l == 1 && *p == '*')) return -1;
    }
    return 0;
}

/* 1 when s is valid UTF-8 without control characters, as every key a YAML
 * file can give is (libyaml refuses invalid UTF-8): a --set key that is not
 * could not be written back by glora_config_dump. */
static int key_text_ok(const char *s) {
    const unsigned char *p = (const unsigned char *)s;
    static const uint32_t least[4] = {0, 0x80, 0x800, 0x10000}; /* no overlong forms */
    while (*p) {
        int n = *p < 0x80 ? 0 : (*p & 0xe0) == 0xc0 ? 1 : (*p & 0xf0) == 0xe0 ? 2 : (*p & 0xf8) == 0xf0 ? 3 : -1;
        if (n < 0 || *p < 0x20 || *p == 0x7f) return 0;
        uint32_t cp = n ? *p & (0x3fu >> n) : *p;
        for (int i = 1; i <= n; i++) {
            if ((p[i] & 0xc0) != 0x80) return 0;
            cp = cp << 6 | (p[i] & 0x3fu);
        }
        if (cp < least[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) || (cp >= 0x80 && cp < 0xa0)) return 0;
        p += n + 1;
    }
    return 1;
}

/* "key 'x' is unknown (did you mean 'y'?)": the nearest schema path of the
 * same depth (wildcards filled from the user's key), else a key that ends
 * with the same name at another depth. */
static int unknown_key(const glora_config_schema_t *s, const char *path, const cfg_origin_t *o,
                       int line) {
    char best[256] = "", cand[256];
    size_t bestd = (size_t)-1, nseg = seg_count(path);
    for (size_t i = 0; i < s->nkeys; i++) {
        const char *p = s->keys[i].key, *q = path;
        size_t used = 0, k;
        for (k = 0; k < nseg && p; k++, p = seg_next(p), q = seg_next(q)) {
            int star = seg_len(p) == 1 && *p == '*';
            const char *src = star ? q : p;
            int w = snprintf(cand + used, sizeof cand - used, "%s%.*s", k ? "." : "",
                             (int)seg_len(src), src);
            if (w < 0 || (size_t)w >= sizeof cand - used) break;
            used += (size_t)w;
        }
        if (k < nseg) continue;
        size_t d = cfg_distance(cand, path);
        const char *last = strrchr(cand, '.') ? strrchr(cand, '.') + 1 : cand;
        size_t allowed = strlen(last) < 5 ? 1 : strlen(last) / 3 > 2 ? strlen(last) / 3 : 2;
        if (d <= allowed && d < bestd) {
            bestd = d;
            snprintf(best, sizeof best, "%s", cand);
        }
    }
    if (best[0] == '\0') {
        const char *last = strrchr(path, '.') ? strrchr(path, '.') + 1 : path;
        for (size_t i = 0; i < s->nkeys && best[0] == '\0'; i++) {
            const char *klast = strrchr(s->keys[i].key, '.');
            if (klast && !strcmp(klast + 1, last) && !strchr(s->keys[i].key, '*'))
                snprintf(best, sizeof best, "%s", s->keys[i].key);
        }
    }
    int rc;
    if (best[0])
        rc = cfg_fail(GLORA_EINVAL, o, line, "key '%s' is unknown (did you mean '%s'?)", path,
                      best);
    else
        rc = cfg_fail(GLORA_EINVAL, o, line, "key '%s' is unknown", path);
    glora_error_hint("the command's --help lists the keys it reads");
    return rc;
}

/* ---- entries ------------------------------------------------------------ */

/* Index of key in the sorted entries, or where it would go (*found = 0). */
static size_t entry_pos(const glora_config_t *c, const char *key, int *found) {
    size_t lo = 0, hi = c->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int r = cfg_keycmp(c->e[mid].key, key);
        if (r == 0) return *found = 1, mid;
        if (r < 0) lo = mid + 1; else hi = mid;
    }
    *found = 0;
    return lo;
}

static void entry_clear(cfg_entry_t *e) {
    free(e->key);
    free(e->segs);
    free(e->assignment);
    cfg_value_clear(&e->v);
}

/* Stores v (taken over) for key, replacing an earlier --set value; a key
 * given twice in the file is an error. */
static int put(glora_config_t *c, const char *key, const glora_config_key_t *spec,
               cfg_value_t *v, int line, const cfg_origin_t *o) {
    int found;
    size_t at = entry_pos(c, key, &found);
    if (found && line > 0 && c->e[at].line > 0) {
        cfg_value_clear(v);
        return cfg_fail(GLORA_EINVAL, o, line, "key '%s' appears twice (first on line %d)", key,
                        c->e[at].line);
    }
    cfg_entry_t e = {.spec = spec, .line = line};
    e.key = strdup(key);
    e.segs = strdup(key);
    e.assignment = o->file ? NULL : strdup(o->assignment);
    if (!e.key || !e.segs || (o->file == NULL && e.assignment == NULL)) {
        entry_clear(&e);
        cfg_value_clear(v);
        return glora_error(GLORA_ENOMEM, "out of memory");
    }
    for (char *p = e.segs; *p; p++)
        if (*p == '.') *p = '\0';
    e.v = *v;
    memset(v, 0, sizeof *v);
    if (found) {
        entry_clear(&c->e[at]);
        c->e[at] = e;
        return 0;
    }
    if (c->n == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 16, bytes;
        cfg_entry_t *ne = NULL;
        if (!glora_size_mul(cap, sizeof *ne, &bytes)) ne = realloc(c->e, bytes);
        if (ne == NULL) {
            entry_clear(&e);
            return glora_error(GLORA_ENOMEM, "out of memory");
        }
        c->e = ne;
        c->cap = cap;
    }
    memmove(&c->e[at + 1], &c->e[at], (c->n - at) * sizeof *c->e);
    c->e[at] = e;
    c->n++;
    return 0;
}

/* ---- schema ------------------------------------------------------------- */

static int parse_text(cfg_value_t *v, const glora_config_key_t *k, const char *text,
                      const cfg_origin_t *o) {
    ynode_t *root;
    int rc = ytree_parse(&root, text, strlen(text), o);
    if (rc == 0) rc = cfg_value_from_node(v, k, k->key, root, o);
    ytree_free(root);
    return rc;
}

static int schema_fail(const glora_config_key_t *k, const char *why) {
    return glora_error(GLORA_EINVAL, "config schema key '%s': %s", k->key ? k->key : "(null)",
                       why);
}

int glora_config_schema_check(const glora_config_schema_t *s) {
    GLORA_ASSERT(s != NULL && (s->keys != NULL || s->nkeys == 0));
    for (size_t i = 0; i < s->nkeys; i++) {
        const glora_config_key_t *k = &s->keys[i];
        if (k->key == NULL || k->key[0] == '\0') return schema_fail(k, "empty key");
        for (const char *p = k->key; p; p = seg_next(p)) {
            size_t l = seg_len(p);
            if (l == 1 && *p == '*') continue;
            if (l == 0 || strspn(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                    "0123456789_-") < l)
                return schema_fail(k, "segments must be non-empty [A-Za-z0-9_-] or '*'");
        }
        if (k->type < GLORA_CFG_INT || k->type > GLORA_CFG_SIZES)
            return schema_fail(k, "unknown type");
        if (k->type == GLORA_CFG_ENUM && (k->choices == NULL || k->choices[0] == NULL))
            return schema_fail(k, "an enum needs choices");
        for (size_t j = 0; j < i; j++) {
            const char *p = k->key, *q = s->keys[j].key;
            while (p && q && seg_len(p) == seg_len(q) && !memcmp(p, q, seg_len(p)))
                p = seg_next(p), q = seg_next(q);
            if (!p || !q) return schema_fail(k, "clashes with another key (same key, or "
                                                "both a value and a map)");
            if ((seg_len(p) == 1 && *p == '*') != (seg_len(q) == 1 && *q == '*'))
                return schema_fail(k, "'*' and named keys in the same map");
        }
        if (k->def) {
            cfg_value_t v;
            cfg_origin_t o = {.assignment = k->def, .label = "config schema: default"};
            if (parse_text(&v, k, k->def, &o)) return GLORA_EINVAL;  /* names the key */
            cfg_value_clear(&v);
        }
        if (k->legacy) {
            if (!(k->flags & GLORA_CFG_IDENTITY_IF_SET))
                return schema_fail(k, "a legacy value needs GLORA_CFG_IDENTITY_IF_SET");
            cfg_value_t v;
            cfg_origin_t o = {.assignment = k->legacy, .label = "config schema: legacy value"};
            if (parse_text(&v, k, k->legacy, &o)) return GLORA_EINVAL;
            int canonical = strcmp(v.canon, k->legacy) == 0;
            cfg_value_clear(&v);
            if (!canonical) return schema_fail(k, "the legacy value must be written canonically");
        }
    }
    return 0;
}

/* ---- load / set / free -------------------------------------------------- */

void glora_config_free(glora_config_t *c) {
    if (c == NULL) return;
    for (size_t i = 0; i < c->n; i++) entry_clear(&c->e[i]);
    free(c->e);
    for (size_t i = 0; c->defaults && i < c->schema->nkeys; i++) cfg_value_clear(&c->defaults[i]);
    free(c->defaults);
    free(c->has_default);
    free(c->file);
    free(c);
}

/* Checks every (key, value) of map node against the schema; prefix is the
 * dotted path of the map ("" at the top). */
static int walk(glora_config_t *c, const cfg_origin_t *o, const char *prefix,
                const ynode_t *map) {
    for (size_t i = 0; i < map->n; i++) {
        const ynode_t *kn = map->keys[i], *vn = map->items[i];
        for (size_t j = 0; j < i; j++)
            if (!strcmp(map->keys[j]->text, kn->text))
                return cfg_fail(GLORA_EINVAL, o, kn->line,
                                "key '%s%s%s' appears twice (first on line %d)", prefix,
                                *prefix ? "." : "", kn->text, map->keys[j]->line);
        size_t len = strlen(prefix) + strlen(kn->text) + 2;
        char *path = malloc(len);
        if (path == NULL) return glora_error(GLORA_ENOMEM, "out of memory");
        snprintf(path, len, "%s%s%s", prefix, *prefix ? "." : "", kn->text);
        int rc = 0, is_map;
        const glora_config_key_t *spec = find_spec(c->schema, path, &is_map);
        if (check_user_key(kn->text)) {
            rc = cfg_fail(GLORA_EINVAL, o, kn->line, "key '%s' is not a valid key (empty part "
                          "or '*')", path);
        } else if (spec) {
            cfg_value_t v;
            rc = cfg_value_from_node(&v, spec, path, vn, o);
            if (rc == 0) rc = put(c, path, spec, &v, kn->line, o);
        } else if (is_map && vn->kind == YNODE_MAP) {
            rc = walk(c, o, path, vn);
        } else if (is_map && !(vn->kind == YNODE_SCALAR && vn->null)) {
            rc = cfg_fail(GLORA_EINVAL, o, vn->line, "key '%s' must be a map of keys, found %s",
                          path, vn->kind == YNODE_SEQ ? "a list" : "a value");
        } else if (!is_map) {
            rc = unknown_key(c->schema, path, o, kn->line);
        }
        free(path);
        if (rc) return rc;
    }
    return 0;
}

/* The value under the top-level key `section` of a file holding the
 * configs of several commands; the other top-level keys are not looked at
 * (they belong to other commands), except that none may repeat `section`. */
static int find_section(const ynode_t *root, const char *section, const cfg_origin_t *o,
                        const ynode_t **out) {
    char have[200] = "";
    size_t used = 0, at = SIZE_MAX;
    *out = NULL;
    if (root && root->kind != YNODE_MAP && !(root->kind == YNODE_SCALAR && root->null))
        return cfg_fail(GLORA_EINVAL, o, root->line, "the top level must be a map of sections");
    for (size_t i = 0; root && root->kind == YNODE_MAP && i < root->n; i++) {
        const ynode_t *k = root->keys[i];
        if (strcmp(k->text, section) == 0) {
            if (at != SIZE_MAX)
                return cfg_fail(GLORA_EINVAL, o, k->line, "section '%s' appears twice (first "
                                "on line %d)", section, root->keys[at]->line);
            at = i;
        }
        if (used < sizeof have)
            used += (size_t)snprintf(have + used, sizeof have - used, "%s%s", used ? ", " : "",
                                     k->text);
    }
    if (at == SIZE_MAX)
        return cfg_fail(GLORA_EINVAL, o, 0, "no section '%s' at the top level%s%s%s", section,
                        used ? " (found: " : "", have, used ? ")" : "");
    *out = root->items[at];
    return 0;
}

static int load_impl(glora_config_t **out, const char *path, const char *section,
                     const glora_config_schema_t *schema) {
    int rc;
    char *text = NULL;
    size_t n;
    ynode_t *root = NULL;
    *out = NULL;
    if ((rc = glora_config_schema_check(schema))) return rc;
    glora_config_t *c = calloc(1, sizeof *c);
    if (c == NULL) return glora_error(GLORA_ENOMEM, "out of memory");
    c->schema = schema;
    c->defaults = calloc(schema->nkeys + 1, sizeof *c->defaults);
    c->has_default = calloc(schema->nkeys + 1, sizeof *c->has_default);
    if (!c->defaults || !c->has_default || (path && !(c->file = strdup(path)))) {
        rc = glora_error(GLORA_ENOMEM, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < schema->nkeys; i++) {
        const glora_config_key_t *k = &schema->keys[i];
        cfg_origin_t o = {.assignment = k->def, .label = "config schema: default"};
        if (k->def == NULL) continue;
        if ((rc = parse_text(&c->defaults[i], k, k->def, &o))) goto fail;
        c->has_default[i] = 1;
    }
    if (path == NULL) goto done;
    if ((rc = glora_read_file(path, CFG_MAX_BYTES, &text, &n))) goto fail;
    cfg_origin_t o = {.file = path};
    if ((rc = ytree_parse(&root, text, n, &o))) goto fail;
    const ynode_t *top = root;  /* the map this config reads */
    if (section && (rc = find_section(root, section, &o, &top))) goto fail;
    if (top && top->kind == YNODE_MAP) {
        if ((rc = walk(c, &o, "", top))) goto fail;
    } else if (top && !(top->kind == YNODE_SCALAR && top->null)) {
        const char *found = top->kind == YNODE_SEQ ? "a list" : "a single value";
        if (section)
            rc = cfg_fail(GLORA_EINVAL, &o, top->line, "section '%s' must be a map of keys, "
                          "found %s", section, found);
        else
            rc = cfg_fail(GLORA_EINVAL, &o, top->line, "the top level must be a map of keys "
                          "(key: value), found %s", found);
        goto fail;
    }
done:
    ytree_free(root);
    free(text);
    *out = c;
    return 0;
fail:
    ytree_free(root);
    free(text);
    glora_config_free(c);
    return rc;
}

int glora_config_load(glora_config_t **out, const char *path,
                      const glora_config_schema_t *schema) {
    return load_impl(out, path, NULL, schema);
}

int glora_config_load_section(glora_config_t **out, const char *path, const char *section,
                              const glora_config_schema_t *schema) {
    GLORA_ASSERT(section != NULL);
    return load_impl(out, path, section, schema);
}

int glora_config_set(glora_config_t *c, const char *assignment) {
    GLORA_ASSERT(c != NULL && assignment != NULL);
    cfg_origin_t o = {.assignment = assignment};
    const char *eq = strchr(assignment, '=');
    const char *start = assignment, *end = eq;
    while (start < end && (*start == ' ' || *start == '\t')) start++;
    while (end > start && (end[-1] == ' ' || end[-1] == '\t')) end--;
    if (eq == NULL || end == start) {
        int rc = cfg_fail(GLORA_EINVAL, &o, 0, "expected key=value");
        glora_error_hint("for example --set train.lr=1e-4 "
                         "or --set 'search.space.A=[lora_4, none]'");
        return rc;
    }
    char *key = strndup(start, (size_t)(end - start));
    if (key == NULL) return glora_error(GLORA_ENOMEM, "out of memory");
    int rc = 0, is_map;
    const glora_config_key_t *spec = find_spec(c->schema, key, &is_map);
    ynode_t *root = NULL;
    cfg_value_t v;
    if (check_user_key(key) || strpbrk(key, " \t") || !key_text_ok(key)) {
        rc = cfg_fail(GLORA_EINVAL, &o, 0, "'%s' is not a valid key", key);
    } else if (spec == NULL && is_map) {
        rc = cfg_fail(GLORA_EINVAL, &o, 0, "key '%s' is a map of keys, not a value; set one "
                      "of its keys", key);
    } else if (spec == NULL) {
        rc = unknown_key(c->schema, key, &o, 0);
    } else if ((rc = ytree_parse(&root, eq + 1, strlen(eq + 1), &o)) == 0 &&
               (rc = cfg_value_from_node(&v, spec, key, root, &o)) == 0) {
        rc = put(c, key, spec, &v, 0, &o);
    }
    ytree_free(root);
    free(key);
    return rc;
}

/* ---- getters ------------------------------------------------------------ */

/* Aborts like GLORA_ASSERT, naming the key: a getter's misuse is a bug in
 * the command, and the key is what its author needs to find it. */
#define KEY_ASSERT(cond, why, key)                                           \
    do {                                                                     \
        if (!(cond)) key_bug(why, key, __FILE__, __LINE__);                  \
    } while (0)
__attribute__((noreturn)) static void key_bug(const char *why, const char *key,
                                              const char *file, int line) {
    char what[300];
    snprintf(what, sizeof what, "config key '%.200s' %s", key, why);
    glora_assert_fail(what, file, line);
}

int glora_config_set_string(glora_config_t *c, const char *key, const char *value) {
    GLORA_ASSERT(c != NULL && key != NULL && value != NULL);
    int is_map;
    const glora_config_key_t *spec = find_spec(c->schema, key, &is_map);
    KEY_ASSERT(spec != NULL && spec->type == GLORA_CFG_STRING && strchr(key, '*') == NULL,
               "is not a string key of the schema", key);
    cfg_value_t v = {0};
    sbuf_t canon = {0}, text = {0};
    v.s = strdup(value);
    cfg_buf_scalar(&canon, value);
    v.canon = canon.buf;
    sb_printf(&text, "%s=%s", key, value); /* what messages about the key quote */
    cfg_origin_t o = {.assignment = text.buf};
    int rc = !v.s || canon.failed || text.failed ? glora_error(GLORA_ENOMEM, "out of memory")
                                                 : put(c, key, spec, &v, 0, &o);
    cfg_value_clear(&v); /* put took the value, or it is freed here */
    free(text.buf);
    return rc;
}

/* The schema key of a concrete key given to a getter. */
static const glora_config_key_t *spec_of(const glora_config_t *c, const char *key) {
    GLORA_ASSERT(c != NULL && key != NULL);
    int is_map;
    KEY_ASSERT(strchr(key, '*') == NULL, "names no key ('*' is for the schema)", key);
    const glora_config_key_t *spec = find_spec(c->schema, key, &is_map);
    KEY_ASSERT(spec != NULL, "is not declared by the schema", key);
    return spec;
}

/* The value of key (given, else default, else NULL) after checking that
 * the schema declares it with one of the types t1, t2. */
static const cfg_value_t *lookup(const glora_config_t *c, const char *key,
                                 glora_config_type_t t1, glora_config_type_t t2, int *given) {
    const glora_config_key_t *spec = spec_of(c, key);
    KEY_ASSERT(spec->type == t1 || spec->type == t2, "is read with the getter of another type",
               key);
    int found;
    size_t at = entry_pos(c, key, &found);
    if (given) *given = found;
    if (found) return &c->e[at].v;
    size_t idx = (size_t)(spec - c->schema->keys);
    return c->has_default[idx] ? &c->defaults[idx] : NULL;
}

int64_t glora_config_int(const glora_config_t *c, const char *key) {
    const cfg_value_t *v = lookup(c, key, GLORA_CFG_INT, GLORA_CFG_INT, NULL);
    KEY_ASSERT(v != NULL, "has no value (no default: glora_config_require it first)", key);
    return v->i;
}

double glora_config_number(const glora_config_t *c, const char *key) {
    const cfg_value_t *v = lookup(c, key, GLORA_CFG_NUMBER, GLORA_CFG_NUMBER, NULL);
    KEY_ASSERT(v != NULL, "has no value (no default: glora_config_require it first)", key);
    return v->d;
}

bool glora_config_bool(const glora_config_t *c, const char *key) {
    const cfg_value_t *v = lookup(c, key, GLORA_CFG_BOOL, GLORA_CFG_BOOL, NULL);
    KEY_ASSERT(v != NULL, "has no value (no default: glora_config_require it first)", key);
    return v->b != 0;
}

size_t glora_config_size(const glora_config_t *c, const char *key) {
    const cfg_value_t *v = lookup(c, key, GLORA_CFG_SIZE, GLORA_CFG_SIZE, NULL);
    KEY_ASSERT(v != NULL, "has no value (no default: glora_config_require it first)", key);
    return v->z;
}

const char *glora_config_string(const glora_config_t *c, const char *key) {
    const cfg_value_t *v = lookup(c, key, GLORA_CFG_STRING, GLORA_CFG_ENUM, NULL);
    return v ? v->s : NULL;
}

const char *const *glora_config_strings(const glora_config_t *c, const char *key, size_t *n) {
    const cfg_value_t *v = lookup(c, key, GLORA_CFG_STRINGS, GLORA_CFG_STRINGS, NULL);
    *n = v ? v->n : 0;
    return v ? (const char *const *)v->strs : NULL;
}

const int64_t *glora_config_ints(const glora_config_t *c, const char *key, size_t *n) {
    const cfg_value_t *v = lookup(c, key, GLORA_CFG_INTS, GLORA_CFG_INTS, NULL);
    *n = v ? v->n : 0;
    return v ? v->ints : NULL;
}

const double *glora_config_numbers(const glora_config_t *c, const char *key, size_t *n) {
    const cfg_value_t *v = lookup(c, key, GLORA_CFG_NUMBERS, GLORA_CFG_NUMBERS, NULL);
    *n = v ? v->n : 0;
    return v ? v->nums : NULL;
}

const size_t *glora_config_sizes(const glora_config_t *c, const char *key, size_t *n) {
    const cfg_value_t *v = lookup(c, key, GLORA_CFG_SIZES, GLORA_CFG_SIZES, NULL);
    *n = v ? v->n : 0;
    return v ? v->sizes : NULL;
}

bool glora_config_has(const glora_config_t *c, const char *key) {
    GLORA_ASSERT(c != NULL && key != NULL);
    int is_map;
    return strchr(key, '*') == NULL && find_spec(c->schema, key, &is_map) != NULL;
}

bool glora_config_is_set(const glora_config_t *c, const char *key) {
    int found;
    spec_of(c, key);
    entry_pos(c, key, &found);
    return found != 0;
}

int glora_config_require(const glora_config_t *c, const char *key) {
    int found;
    const glora_config_key_t *spec = spec_of(c, key);
    entry_pos(c, key, &found);
    if (found || c->has_default[spec - c->schema->keys]) return 0;
    int rc = c->file
                 ? glora_error(GLORA_EINVAL, "config '%s': key '%s' is required", c->file, key)
                 : glora_error(GLORA_EINVAL, "config: key '%s' is required", key);
    glora_error_hint("give it in the config file or with --set %s=...", key);
    return rc;
}

const char *glora_config_map_key(const glora_config_t *c, const char *map, size_t i) {
    GLORA_ASSERT(c != NULL && map != NULL);
    size_t depth = seg_count(map), mlen = strlen(map);
    int wild = 0;
    for (size_t k = 0; k < c->schema->nkeys && !wild; k++) {
        const char *p = c->schema->keys[k].key;
        size_t d = 0;
        for (const char *q = map; p && q; p = seg_next(p), q = seg_next(q), d++) {
            int star = seg_len(p) == 1 && *p == '*';
            if (!star && (seg_len(p) != seg_len(q) || memcmp(p, q, seg_len(p)))) break;
        }
        wild = d == depth && p && seg_len(p) == 1 && *p == '*';
    }
    KEY_ASSERT(wild, "is not a map of the schema with a '*' key", map);
    const char *prev = NULL;
    size_t prevlen = 0, count = 0;
    for (size_t k = 0; k < c->n; k++) {
        const char *key = c->e[k].key;
        if (strncmp(key, map, mlen) != 0 || key[mlen] != '.') continue;
        const char *name = key + mlen + 1;
        size_t len = seg_len(name);
        if (prev && len == prevlen && !memcmp(prev, name, len)) continue;
        if (count++ == i) return c->e[k].segs + (name - key);
        prev = name, prevlen = len;
    }
    return NULL;
}

int glora_config_error(const glora_config_t *c, const char *key, const char *fmt, ...) {
    GLORA_ASSERT(c != NULL && key != NULL);
    char why[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    /* The entry of the key itself, else the first one inside it (for a map). */
    int found;
    size_t at = entry_pos(c, key, &found), klen = strlen(key);
    const cfg_entry_t *e = NULL;
    if (found || (at < c->n && !strncmp(c->e[at].key, key, klen) && c->e[at].key[klen] == '.'))
        e = &c->e[at];
    if (e && e->assignment)
        return glora_error(GLORA_EINVAL, "--set '%s': key '%s' %s", e->assignment, key, why);
    if (e && c->file)
        return glora_error(GLORA_EINVAL, "config '%s': line %d: key '%s' %s", c->file, e->line,
                           key, why);
    if (c->file) return glora_error(GLORA_EINVAL, "config '%s': key '%s' %s", c->file, key, why);
    return glora_error(GLORA_EINVAL, "config: key '%s' %s", key, why);
}
