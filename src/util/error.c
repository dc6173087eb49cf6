/* Thread-local error message and hint (see glora/common.h). */
#include "glora/common.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static _Thread_local char errmsg[1024];
static _Thread_local char errhint[512];

const char *glora_errmsg(void) { return errmsg; }

const char *glora_errhint(void) { return errhint[0] ? errhint : NULL; }

int glora_error(int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errmsg, sizeof errmsg, fmt, ap);
    va_end(ap);
    errhint[0] = '\0';
    return code;
}

void glora_error_hint(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errhint, sizeof errhint, fmt, ap);
    va_end(ap);
}

void glora_error_clear(void) {
    errmsg[0] = '\0';
    errhint[0] = '\0';
}

void glora_assert_fail(const char *cond, const char *file, int line) {
    fprintf(stderr, "glora: internal error: %s:%d: assertion '%s' failed\n",
            file, line, cond);
    abort();
}

double glora_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
