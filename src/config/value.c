/* Typed values: YAML scalars and sequences -> int, number, bool, string,
 * enum, size and lists of them, with range and choice checks, and the
 * canonical text that dump, hash and diff compare. */
#include "config/config-impl.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "glora/common.h"

/* ---- YAML scalars -------------------------------------------------------- */

/* Plain (unquoted) only when the text cannot read back as anything else:
 * no YAML indicator, not null-like, not empty, no leading/trailing space. */
static int plain_safe(const char *s) {
    if (*s == '\0' || !strcmp(s, "~") || !strcasecmp(s, "null")) return 0;
    if (!isalnum((unsigned char)s[0]) && s[0] != '_' && s[0] != '.' && s[0] != '/') return 0;
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("_-./+", *p)) return 0;
    return 1;
}

void cfg_buf_scalar(sbuf_t *b, const char *s) {
    if (plain_safe(s)) {
        sb_puts(b, s);
        return;
    }
    sb_puts(b, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[8];
        if (*p == '"' || *p == '\\') {
            esc[0] = '\\', esc[1] = (char)*p, esc[2] = '\0';
        } else if (*p < 0x20 || *p == 0x7f) {
            snprintf(esc, sizeof esc, "\\x%02x", *p);
        } else {
            esc[0] = (char)*p, esc[1] = '\0';
        }
        sb_puts(b, esc);
    }
    sb_puts(b, "\"");
}

/* ---- "did you mean" ----------------------------------------------------- */

size_t cfg_distance(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la > 99 || lb > 99) return 100;
    size_t row[100];
    for (size_t j = 0; j <= lb; j++) row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

/* ---- scalar parsers: 0 ok, -1 malformed, -2 out of representable range,
 * -3 (sizes) not a whole number ---------------------------------------- */

/* [+-]? (digits [. digits*] | . digits) ([eE] [+-]? digits)? ; no hex, inf, nan. */
static int number_syntax(const char *s, int allow_sign) {
    const char *p = s;
    size_t digits = 0;
    if (allow_sign && (*p == '+' || *p == '-')) p++;
    while (isdigit((unsigned char)*p)) p++, digits++;
    if (*p == '.') {
        p++;
        while (isdigit((unsigned char)*p)) p++, digits++;
    }
    if (digits == 0) return -1;
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-') p++;
        if (!isdigit((unsigned char)*p)) return -1;
        while (isdigit((unsigned char)*p)) p++;
    }
    return (int)(p - s);
}

static int parse_int(const char *s, int64_t *out) {
    const char *p = s + (*s == '+' || *s == '-');
    if (*p == '\0') return -1;
    for (; *p; p++)
        if (!isdigit((unsigned char)*p)) return -1;
    errno = 0;
    long long v = strtoll(s, NULL, 10);
    if (errno == ERANGE) return -2;
    *out = v;
    return 0;
}

static int parse_number(const char *s, double *out) {
    int len = number_syntax(s, 1);
    if (len < 0 || s[len] != '\0') return -1;
    double v = strtod(s, NULL);
    if (!isfinite(v)) return -2;
    *out = v;
    return 0;
}

static int parse_bool(const char *s, int *out) {
    static const char *const yes[] = {"true", "yes", "on"}, *const no[] = {"false", "no", "off"};
    for (int i = 0; i < 3; i++) {
        if (!strcasecmp(s, yes[i])) return *out = 1, 0;
        if (!strcasecmp(s, no[i])) return *out = 0, 0;
    }
    return -1;
}

/* Decimal digits, optional fraction and exponent, optional K/M/G suffix,
 * computed exactly in integers: 1.2M is 1200000, 1.5 is not a size. */
static int parse_size(const char *s, size_t *out) {
    const char *p = s + (*s == '+');
    int len = number_syntax(p, 0);
    if (len < 0) return -1;
    int scale = 0;
    const char *suffix = p + len;
    if (*suffix) {
        switch (*suffix) {
        case 'k': case 'K': scale = 3; break;
        case 'm': case 'M': scale = 6; break;
        case 'g': case 'G': scale = 9; break;
        default: return -1;
        }
        if (suffix[1] != '\0') return -1;
    }
    uint64_t mant = 0;
    long exp10 = scale;
    int seen_dot = 0, big = 0;
    const char *q = p;
    for (; q < p + len && *q != 'e' && *q != 'E'; q++) {
        if (*q == '.') {
            seen_dot = 1;
            continue;
        }
        int d = *q - '0';
        if (mant > UINT64_MAX / 10 || (mant == UINT64_MAX / 10 && (uint64_t)d > UINT64_MAX % 10)) {
            /* No room for a 20th significant digit: fine when it is a zero.
             * Otherwise the value is too large, or, after the point, has a
             * fraction no suffix can make whole. */
            if (d != 0) big = seen_dot ? -3 : -2;
            if (!seen_dot) exp10++;
            continue;
        }
        mant = mant * 10 + (uint64_t)d;
        if (seen_dot) exp10--;
    }
    if (big) return big;
    if (q < p + len) {
        errno = 0;
        long e = strtol(q + 1, NULL, 10);
        if (errno == ERANGE || e > 1000 || e < -1000) {
            if (mant == 0) return *out = 0, 0;
            return e > 0 ? -2 : -3;
        }
        exp10 += e;
    }
    for (; exp10 < 0 && mant != 0; exp10++) {
        if (mant % 10) return -3;  /* fractional */
        mant /= 10;
    }
    for (; exp10 > 0 && mant != 0; exp10--) {
        if (mant > UINT64_MAX / 10) return -2;
        mant *= 10;
    }
    if (mant > SIZE_MAX) return -2;
    *out = (size_t)mant;
    return 0;
}

/* Shortest decimal that reads back as the same double. */
static void format_number(char *buf, size_t size, double v) {
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, size, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) return;
    }
}

/* A bound for messages: integers without exponent. */
static void format_bound(char *buf, size_t size, double v) {
    if (v == floor(v) && fabs(v) < 1e15)
        snprintf(buf, size, "%.0f", v);
    else
        format_number(buf, size, v);
}

/* ---- node -> value ------------------------------------------------------ */

static const char *type_phrase(glora_config_type_t t) {
    switch (t) {
    case GLORA_CFG_INT: return "an integer";
    case GLORA_CFG_NUMBER: return "a number";
    case GLORA_CFG_BOOL: return "true or false";
    case GLORA_CFG_STRING: return "a string";
    case GLORA_CFG_ENUM: return "one of";
    case GLORA_CFG_SIZE: return "a size (a whole number, optionally with K, M or G)";
    case GLORA_CFG_STRINGS: return "a list of strings";
    case GLORA_CFG_INTS: return "a list of integers";
    case GLORA_CFG_NUMBERS: return "a list of numbers";
    case GLORA_CFG_SIZES: return "a list of sizes";
    }
    return "?";
}

/* "'fast'", "a list", "a map", "nothing", shortened when long. */
static void found_phrase(char *buf, size_t size, const ynode_t *node) {
    if (node == NULL || (node->kind == YNODE_SCALAR && node->null))
        snprintf(buf, size, "nothing");
    else if (node->kind == YNODE_MAP)
        snprintf(buf, size, "a map");
    else if (node->kind == YNODE_SEQ)
        snprintf(buf, size, "a list");
    else if (strlen(node->text) > 40)
        snprintf(buf, size, "'%.37s...'", node->text);
    else
        snprintf(buf, size, "'%s'", node->text);
}

static void choices_text(char *buf, size_t size, const char *const *choices) {
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; choices && choices[i] && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, "%s%s", i ? ", " : "", choices[i]);
}

/* "must be <type>, found <what>"; element != 0 when the offending node is an
 * item of a list (its own line is reported). */
static int bad_type(const glora_config_key_t *k, const char *name, const ynode_t *node,
                    const cfg_origin_t *o, int line, int element) {
    char found[64];
    found_phrase(found, sizeof found, node);
    const char *in_list = element ? " in the list" : "";
    if (k->type != GLORA_CFG_ENUM && !(k->type == GLORA_CFG_STRINGS && k->choices))
        return cfg_fail(GLORA_EINVAL, o, line, "key '%s' must be %s, found %s%s", name,
                        type_phrase(k->type), found, in_list);
    char list[400], mean[80] = "";
    choices_text(list, sizeof list, k->choices);
    size_t bestd = 3;
    for (size_t i = 0; node && node->kind == YNODE_SCALAR && !node->null && k->choices[i]; i++) {
        size_t d = cfg_distance(node->text, k->choices[i]);
        if (d < bestd) {
            bestd = d;
            snprintf(mean, sizeof mean, " (did you mean '%s'?)", k->choices[i]);
        }
    }
    return cfg_fail(GLORA_EINVAL, o, line, "key '%s' must be %s: %s; found %s%s%s", name,
                    k->type == GLORA_CFG_ENUM ? "one of" : "a list of", list, found, in_list,
                    mean);
}

static int check_range(const glora_config_key_t *k, const char *name, double v,
                       const char *text, const cfg_origin_t *o, int line) {
    if (!(k->min < k->max) || (v >= k->min && v <= k->max)) return 0;
    char lo[40], hi[40];
    format_bound(lo, sizeof lo, k->min);
    format_bound(hi, sizeof hi, k->max);
    return cfg_fail(GLORA_EINVAL, o, line, "key '%s' must be between %s and %s, found %s",
                    name, lo, hi, text);
}

/* Parses one scalar of the element type of k into slot i of v (or the
 * scalar fields when list is 0) and appends its canonical text to canon. */
static int scalar_into(cfg_value_t *v, size_t i, const glora_config_key_t *k, const char *name,
                       const ynode_t *node, const cfg_origin_t *o, int list, sbuf_t *canon) {
    int line = node->line;
    if (node->kind != YNODE_SCALAR || node->null) return bad_type(k, name, node, o, line, list);
    const char *s = node->text;
    char tmp[40];
    int rc;
    switch (k->type) {
    case GLORA_CFG_INT:
    case GLORA_CFG_INTS: {
        int64_t x;
        if ((rc = parse_int(s, &x)) == -1) return bad_type(k, name, node, o, line, list);
        if (rc == -2) return cfg_fail(GLORA_EINVAL, o, line, "key '%s': %s is too large", name, s);
        if ((rc = check_range(k, name, (double)x, s, o, line))) return rc;
        if (list) v->ints[i] = x; else v->i = x;
        sb_printf(canon, "%" PRId64, x);
        return 0;
    }
    case GLORA_CFG_NUMBER:
    case GLORA_CFG_NUMBERS: {
        double x;
        if ((rc = parse_number(s, &x)) == -1) return bad_type(k, name, node, o, line, list);
        if (rc == -2) return cfg_fail(GLORA_EINVAL, o, line, "key '%s': %s is too large", name, s);
        if ((rc = check_range(k, name, x, s, o, line))) return rc;
        if (list) v->nums[i] = x; else v->d = x;
        format_number(tmp, sizeof tmp, x);
        sb_puts(canon, tmp);
        return 0;
    }
    case GLORA_CFG_SIZE:
    case GLORA_CFG_SIZES: {
        size_t x = 0;
        rc = parse_size(s, &x);
        if (rc == -1) return bad_type(k, name, node, o, line, list);
        if (rc == -2) return cfg_fail(GLORA_EINVAL, o, line, "key '%s': %s is too large", name, s);
        if (rc == -3)
            return cfg_fail(GLORA_EINVAL, o, line, "key '%s' must be a whole number, found '%s'",
                            name, s);
        if ((rc = check_range(k, name, (double)x, s, o, line))) return rc;
        if (list) v->sizes[i] = x; else v->z = x;
        sb_printf(canon, "%zu", x);
        return 0;
    }
    case GLORA_CFG_BOOL: {
        int x;
        if (parse_bool(s, &x)) return bad_type(k, name, node, o, line, 0);
        v->b = x;
        sb_puts(canon, x ? "true" : "false");
        return 0;
    }
    case GLORA_CFG_ENUM:
    case GLORA_CFG_STRING:
    case GLORA_CFG_STRINGS: {
        if (k->choices) {
            size_t j = 0;
            while (k->choices[j] && strcmp(k->choices[j], s)) j++;
            if (k->choices[j] == NULL) return bad_type(k, name, node, o, line, list);
        }
        char *copy = strdup(s);
        if (copy == NULL) return glora_error(GLORA_ENOMEM, "out of memory");
        if (list) v->strs[i] = copy; else v->s = copy;
        cfg_buf_scalar(canon, s);
        return 0;
    }
    }
    return glora_error(GLORA_EINVAL, "key '%s': bad type in schema", name);
}

void cfg_value_clear(cfg_value_t *v) {
    free(v->s);
    for (size_t i = 0; v->strs && i < v->n; i++) free(v->strs[i]);
    free(v->strs);
    free(v->ints);
    free(v->nums);
    free(v->sizes);
    free(v->canon);
    memset(v, 0, sizeof *v);
}

static int is_list(glora_config_type_t t) {
    return t == GLORA_CFG_STRINGS || t == GLORA_CFG_INTS || t == GLORA_CFG_NUMBERS ||
           t == GLORA_CFG_SIZES;
}

int cfg_value_from_node(cfg_value_t *v, const glora_config_key_t *k, const char *name,
                        const ynode_t *node, const cfg_origin_t *o) {
    sbuf_t canon = {0};
    int rc = 0;
    memset(v, 0, sizeof *v);
    if (node == NULL) return bad_type(k, name, NULL, o, 0, 0);  /* empty text */
    if (!is_list(k->type)) {
        rc = scalar_into(v, 0, k, name, node, o, 0, &canon);
    } else if (node->kind != YNODE_SEQ) {
        rc = bad_type(k, name, node, o, node->line, 0);
    } else {
        size_t n = node->n ? node->n : 1;
        if (k->type == GLORA_CFG_STRINGS) v->strs = calloc(n, sizeof *v->strs);
        if (k->type == GLORA_CFG_INTS) v->ints = calloc(n, sizeof *v->ints);
        if (k->type == GLORA_CFG_NUMBERS) v->nums = calloc(n, sizeof *v->nums);
        if (k->type == GLORA_CFG_SIZES) v->sizes = calloc(n, sizeof *v->sizes);
        if (!v->strs && !v->ints && !v->nums && !v->sizes)
            rc = glora_error(GLORA_ENOMEM, "out of memory");
        sb_puts(&canon, "[");
        for (size_t i = 0; rc == 0 && i < node->n; i++) {
            if (i) sb_puts(&canon, ", ");
            rc = scalar_into(v, i, k, name, node->items[i], o, 1, &canon);
            v->n = i + 1;  /* so that clear frees the strings made so far */
        }
        sb_puts(&canon, "]");
    }
    if (rc == 0 && canon.failed) rc = glora_error(GLORA_ENOMEM, "out of memory");
    v->canon = canon.buf;
    if (rc) cfg_value_clear(v);
    return rc;
}

/* ---- help --------------------------------------------------------------- */

const char *glora_config_type_name(glora_config_type_t type) {
    switch (type) {
    case GLORA_CFG_INT: return "int";
    case GLORA_CFG_NUMBER: return "number";
    case GLORA_CFG_BOOL: return "bool";
    case GLORA_CFG_STRING: return "string";
    case GLORA_CFG_ENUM: return "enum";
    case GLORA_CFG_SIZE: return "size";
    case GLORA_CFG_STRINGS: return "list of strings";
    case GLORA_CFG_INTS: return "list of ints";
    case GLORA_CFG_NUMBERS: return "list of numbers";
    case GLORA_CFG_SIZES: return "list of sizes";
    }
    return "?";
}

void glora_config_describe(const glora_config_key_t *key, char *buf, size_t size) {
    char list[400], lo[40], hi[40];
    if (size == 0) return;
    if (key->type == GLORA_CFG_ENUM || (key->type == GLORA_CFG_STRINGS && key->choices)) {
        choices_text(list, sizeof list, key->choices);
        snprintf(buf, size, "%s%s", key->type == GLORA_CFG_ENUM ? "one of: " : "list of: ", list);
    } else if (key->min < key->max && key->type != GLORA_CFG_BOOL &&
               key->type != GLORA_CFG_STRING && key->type != GLORA_CFG_STRINGS) {
        format_bound(lo, sizeof lo, key->min);
        format_bound(hi, sizeof hi, key->max);
        snprintf(buf, size, "%s in [%s, %s]", glora_config_type_name(key->type), lo, hi);
    } else {
        snprintf(buf, size, "%s", glora_config_type_name(key->type));
    }
}
