/* The growing string (see strbuf.h). */
#include "util/strbuf.h"
#include "glora/common.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void reserve(sbuf_t *b, size_t extra) {
    size_t need;
    if (b->failed) return;
    if (glora_size_add(b->len, extra, &need) || glora_size_add(need, 1, &need)) {
        b->failed = 1;
        return;
    }
    if (need <= b->cap) return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    char *p = realloc(b->buf, cap);
    if (!p) {
        b->failed = 1;
        return;
    }
    b->buf = p;
    b->cap = cap;
}

void sb_add(sbuf_t *b, const char *s, size_t n) {
    reserve(b, n);
    if (b->failed) return;
    memcpy(b->buf + b->len, s, n);
    b->len += n;
    b->buf[b->len] = '\0';
}

void sb_puts(sbuf_t *b, const char *s) { sb_add(b, s, strlen(s)); }

void sb_printf(sbuf_t *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = 1;
        return;
    }
    reserve(b, (size_t)n);
    if (b->failed) return;
    va_start(ap, fmt);
    vsnprintf(b->buf + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void sb_double(sbuf_t *b, double v) {
    char tmp[40];
    if (!isfinite(v)) {
        sb_puts(b, "null");
        return;
    }
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*g", prec, v);
        if (strtod(tmp, NULL) == v) break;
    }
    sb_puts(b, tmp);
}

void sb_jstr(sbuf_t *b, const char *s) {
    sb_puts(b, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            char esc[2] = {'\\', (char)*p};
            sb_add(b, esc, 2);
        } else if (*p < 0x20) {
            sb_printf(b, "\\u%04x", *p);
        } else {
            sb_add(b, (const char *)p, 1);
        }
    }
    sb_puts(b, "\"");
}

const char *sb_count(double v, char buf[32]) {
    if (v >= 1e9) snprintf(buf, 32, "%.2fG", v / 1e9);
    else if (v >= 1e6) snprintf(buf, 32, "%.2fM", v / 1e6);
    else if (v >= 1e4) snprintf(buf, 32, "%.1fK", v / 1e3);
    else snprintf(buf, 32, "%.0f", v);
    return buf;
}
