/* VTAB-1k / NOAH list files ("relative/path label" lines) through
 * glora_image_list_read, with num_classes 0 (labels up to 2^31) and 10.
 * The listed images must exist: the harness makes a scratch folder once
 * with a.jpg, b.png, "dir with space/im 1.png" and sub/c.jpg (empty files:
 * the reader only checks that they are regular files) and passes it as the
 * root; it is removed at exit. An accepted list must hold n > 0 entries,
 * each path under the root (or absolute), each label in [0, num_classes). */
#include "fuzz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "glora/common.h"
#include "glora/image.h"

static const char *const files[] = {"a.jpg", "b.png", "dir with space/im 1.png", "sub/c.jpg"};
static const char *const dirs[] = {"dir with space", "sub"};
static char root[96];

static void cleanup(void) {
    char p[160];
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", root, files[i]);
        unlink(p);
    }
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", root, dirs[i]);
        rmdir(p);
    }
    rmdir(root);
}

/* 0 once the scratch folder exists (made on the first call), -1 if it
 * cannot be made. */
static int make_root(void) {
    static int state = 0; /* 0 not tried, 1 made, -1 failed */
    if (state) return state > 0 ? 0 : -1;
    state = -1;
    const char *tmp = getenv("TMPDIR");
    char made[96], p[160];
    snprintf(made, sizeof made, "%.60s/glora-fuzz-list.XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (!mkdtemp(made)) return -1;
    char *abs = realpath(made, NULL); /* absolute even for a relative TMPDIR */
    if (!abs || strlen(abs) >= sizeof root) {
        free(abs);
        rmdir(made);
        return -1;
    }
    snprintf(root, sizeof root, "%s", abs);
    free(abs);
    atexit(cleanup);
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", root, dirs[i]);
        if (mkdir(p, 0700)) return -1;
    }
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        if (fuzz_write(root, files[i], "", 0)) return -1;
    state = 1;
    return 0;
}

static void check(const glora_image_list_t *l, int num_classes) {
    if (l->n == 0 || !l->paths || !l->labels || l->class_names) abort();
    if (num_classes > 0 && l->num_classes != num_classes) abort();
    for (size_t i = 0; i < l->n; i++) {
        if (l->labels[i] < 0 || l->labels[i] >= l->num_classes) abort();
        if (l->paths[i][0] != '/') abort(); /* the root is absolute, and so are absolute lines */
        struct stat st;
        if (stat(l->paths[i], &st) != 0 || !S_ISREG(st.st_mode)) abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (make_root()) return 0;
    const char *path = fuzz_file(0, data, size);
    if (!path) return 0;
    static const int classes[] = {0, 10};
    for (int k = 0; k < 2; k++) {
        glora_image_list_t l;
        int rc = glora_image_list_read(&l, path, root, classes[k]);
        if (rc) {
            fuzz_debug("list");
            if (l.n || l.paths || l.labels) abort(); /* a refused list is left empty */
            continue;
        }
        check(&l, classes[k]);
        glora_image_list_free(&l);
    }
    return 0;
}
