/* Internals shared by the files of src/io. */
#ifndef GLORA_IO_IMPL_H
#define GLORA_IO_IMPL_H

#include <stddef.h>
#include <string.h>

/* Names from files go into one-line messages: show at most this many bytes,
 * with control characters replaced, so a hostile name cannot break the line
 * or flood the message. */
#define GLORA_IO_SHOWN_NAME 120

static inline void glora_io_show_name(const char *name, char out[GLORA_IO_SHOWN_NAME]) {
    if (!name) name = "(null)";
    size_t len = strlen(name), keep = len;
    if (keep > GLORA_IO_SHOWN_NAME - 4) keep = GLORA_IO_SHOWN_NAME - 4;
    for (size_t i = 0; i < keep; i++) {
        unsigned char c = (unsigned char)name[i];
        out[i] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    if (keep < len) {
        memcpy(out + keep, "...", 4);
    } else {
        out[keep] = '\0';
    }
}

#endif
