/*
 * glora/common.h - status codes, error messages and small shared types.
 *
 * Every library function that can fail returns a glora status (0 on success,
 * a negative GLORA_E* value otherwise) and leaves a one-line message in a
 * thread-local buffer, read with glora_errmsg().  Messages have the shape
 *     <what> '<path, tensor or key>': <why>
 * so that the command-line tool can print "glora: error: <message>".  An
 * optional hint (what the user can do about it) is kept beside it.
 *
 * Bugs (a broken invariant, a NULL that may never be NULL) are not statuses:
 * they abort through GLORA_ASSERT with file and line.
 */
#ifndef GLORA_COMMON_H
#define GLORA_COMMON_H

#include <stddef.h>
#include <stdint.h>

/* GLORA_VERSION_STRING comes from AC_INIT in configure.ac. */
#include "glora/version.h"

#ifdef __cplusplus
extern "C" {
#endif

enum {
    GLORA_OK = 0,
    GLORA_EINVAL = -1,  /* bad argument, bad config value, usage error */
    GLORA_EIO = -2,     /* the operating system refused a read or write */
    GLORA_ENOMEM = -3,  /* allocation failed */
    GLORA_EFORMAT = -4, /* a file's content is malformed or inconsistent */
    GLORA_ESTATE = -5,  /* valid input, but it does not fit the current state
                           (wrong architecture, changed config on resume...) */
};

/* The message of the last failure in this thread ("" when none). */
const char *glora_errmsg(void);
/* A hint for the last failure in this thread, or NULL. */
const char *glora_errhint(void);
/* Sets the thread's message (printf-style) and returns code, so that
 * "return glora_error(GLORA_EINVAL, ...)" reads naturally. Clears the hint. */
int glora_error(int code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Sets the hint for the message that was just set. */
void glora_error_hint(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Forgets the thread's message and hint. */
void glora_error_clear(void);

/* Aborts with file:line and the failed condition. For bugs only. */
#define GLORA_ASSERT(cond)                                                   \
    do {                                                                     \
        if (!(cond)) glora_assert_fail(#cond, __FILE__, __LINE__);           \
    } while (0)
void glora_assert_fail(const char *cond, const char *file, int line)
    __attribute__((noreturn));

/* Overflow-checked size arithmetic: return 0 and store the result, or
 * return -1 when the result does not fit in size_t. */
static inline int glora_size_mul(size_t a, size_t b, size_t *out) {
    return __builtin_mul_overflow(a, b, out) ? -1 : 0;
}
static inline int glora_size_add(size_t a, size_t b, size_t *out) {
    return __builtin_add_overflow(a, b, out) ? -1 : 0;
}

/* Monotonic wall clock in seconds. */
double glora_now(void);

#ifdef __cplusplus
}
#endif
#endif
