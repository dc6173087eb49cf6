/* Helpers shared by the harnesses (see fuzz.h). */
#include "fuzz.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>

#include "glora/common.h"
#include <sys/mman.h>
#include <unistd.h>

static int fds[4] = {-1, -1, -1, -1};
static char paths[4][32];

const char *fuzz_file(int slot, const void *data, size_t n) {
    if (slot < 0 || slot > 3) return NULL;
    if (fds[slot] < 0) {
        fds[slot] = memfd_create("glora-fuzz", MFD_CLOEXEC);
        if (fds[slot] < 0) return NULL;
        snprintf(paths[slot], sizeof paths[slot], "/proc/self/fd/%d", fds[slot]);
    }
    int fd = fds[slot];
    if (ftruncate(fd, 0) != 0) return NULL;
    const char *p = data;
    size_t off = 0;
    while (off < n) {
        ssize_t w = pwrite(fd, p + off, n - off, (off_t)off);
        if (w <= 0) return NULL;
        off += (size_t)w;
    }
    return paths[slot];
}

int fuzz_write(const char *dir, const char *name, const void *data, size_t n) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(data, 1, n, f);
    return (fclose(f) == 0 && w == n) ? 0 : -1;
}

void fuzz_debug(const char *what) {
    static int on = -1;
    if (on < 0) on = getenv("FUZZ_DEBUG") != NULL;
    if (on) fprintf(stderr, "%s: %s\n", what, glora_errmsg());
}
