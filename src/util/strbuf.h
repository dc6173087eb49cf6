/* The one growing string of the library, for every text it writes (JSON
 * files, safetensors headers, YAML dumps, reports). Internal: not installed.
 *
 *     sbuf_t b = {0};
 *     sb_puts(&b, "{\"name\": ");
 *     sb_jstr(&b, name);            // quoted and escaped
 *     sb_printf(&b, ", \"n\": %d}", n);
 *     if (b.failed) ... out of memory ...; else use b.buf (b.len bytes)
 *     free(b.buf);
 *
 * After an allocation failure every call is a no-op and failed stays set, so
 * a writer checks once at the end. buf is NUL-terminated once anything (even
 * "") was added, and NULL before. */
#ifndef GLORA_UTIL_STRBUF_H
#define GLORA_UTIL_STRBUF_H

#include <stddef.h>

typedef struct {
    char *buf;
    size_t len, cap;
    int failed;
} sbuf_t;

/* n bytes of s (may hold NULs). */
void sb_add(sbuf_t *b, const char *s, size_t n);
void sb_puts(sbuf_t *b, const char *s);
void sb_printf(sbuf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The shortest %.15g..%.17g text that reads back to v; "null" when not finite. */
void sb_double(sbuf_t *b, double v);
/* s as a JSON string literal: quotes, backslashes and control characters
 * escaped (\uXXXX), other bytes (UTF-8) as they are. */
void sb_jstr(sbuf_t *b, const char *s);

/* A count for people: 1234567 -> "1.23M", 12345 -> "12.3K", 999 -> "999". */
const char *sb_count(double v, char buf[32]);

#endif
