/* Atomic writes, whole-file reads and mkdir -p (see glora/fileio.h). */
#include "glora/fileio.h"
#include "glora/common.h"
#include "util/comm.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* On MPI ranks other than 0 (util/comm.h) the file is written nowhere:
 * fd is -1 and every step succeeds, so that code running on every rank
 * writes each output once. */
struct glora_atomic_file {
    int fd;
    char *path;
    char *tmp;
};

/* Directory part of path ("." when it has none), malloc'd. */
static char *dir_of(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return strdup(".");
    if (slash == path) return strdup("/");
    return strndup(path, (size_t)(slash - path));
}

int glora_atomic_open(glora_atomic_file_t **out, const char *path) {
    *out = NULL;
    glora_atomic_file_t *f = calloc(1, sizeof *f);
    size_t n = strlen(path) + 32;
    if (!f || !(f->path = strdup(path)) || !(f->tmp = malloc(n))) {
        if (f) { free(f->path); free(f); }
        return glora_error(GLORA_ENOMEM, "cannot write '%s': out of memory", path);
    }
    snprintf(f->tmp, n, "%s.tmp.XXXXXX", path);
    if (!glora_comm_writer()) {
        f->fd = -1;
        *out = f;
        return GLORA_OK;
    }
    f->fd = mkstemp(f->tmp);
    if (f->fd < 0) {
        int e = errno;
        free(f->tmp); free(f->path); free(f);
        return glora_error(GLORA_EIO, "cannot write '%s': %s", path, strerror(e));
    }
    /* mkstemp makes 0600 files; outputs are ordinary files. */
    mode_t um = umask(0);
    umask(um);
    fchmod(f->fd, 0666 & ~um);
    *out = f;
    return GLORA_OK;
}

int glora_atomic_write(glora_atomic_file_t *f, const void *data, size_t n) {
    const char *p = data;
    if (f->fd < 0) return GLORA_OK;
    while (n > 0) {
        ssize_t w = write(f->fd, p, n > (1u << 30) ? (1u << 30) : n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return glora_error(GLORA_EIO, "cannot write '%s': %s", f->path, strerror(errno));
        }
        p += w;
        n -= (size_t)w;
    }
    return GLORA_OK;
}

static void atomic_free(glora_atomic_file_t *f) {
    free(f->tmp);
    free(f->path);
    free(f);
}

int glora_atomic_commit(glora_atomic_file_t *f) {
    int rc = GLORA_OK;
    if (f->fd < 0) {
        atomic_free(f);
        return rc;
    }
    if (fsync(f->fd) != 0)
        rc = glora_error(GLORA_EIO, "cannot write '%s': fsync: %s", f->path, strerror(errno));
    if (close(f->fd) != 0 && rc == GLORA_OK)
        rc = glora_error(GLORA_EIO, "cannot write '%s': close: %s", f->path, strerror(errno));
    if (rc == GLORA_OK && rename(f->tmp, f->path) != 0)
        rc = glora_error(GLORA_EIO, "cannot write '%s': rename: %s", f->path, strerror(errno));
    if (rc != GLORA_OK) {
        unlink(f->tmp);
    } else {
        /* Make the rename itself durable. */
        char *dir = dir_of(f->path);
        int dfd = dir ? open(dir, O_RDONLY | O_DIRECTORY) : -1;
        if (dfd >= 0) { fsync(dfd); close(dfd); }
        free(dir);
    }
    atomic_free(f);
    return rc;
}

void glora_atomic_abort(glora_atomic_file_t *f) {
    if (!f) return;
    if (f->fd >= 0) {
        close(f->fd);
        unlink(f->tmp);
    }
    atomic_free(f);
}

int glora_write_atomic(const char *path, const void *data, size_t n) {
    glora_atomic_file_t *f;
    int rc = glora_atomic_open(&f, path);
    if (rc) return rc;
    rc = glora_atomic_write(f, data, n);
    if (rc) { glora_atomic_abort(f); return rc; }
    return glora_atomic_commit(f);
}

int glora_read_file(const char *path, size_t max_bytes, char **data, size_t *n) {
    *data = NULL;
    *n = 0;
    FILE *fp = fopen(path, "rb");
    if (!fp) return glora_error(GLORA_EIO, "cannot open '%s': %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(fp), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(fp);
        return glora_error(GLORA_EIO, "cannot read '%s': not a regular file", path);
    }
    if ((uint64_t)st.st_size > max_bytes) {
        fclose(fp);
        return glora_error(GLORA_EFORMAT, "cannot read '%s': %lld bytes is more than the %zu allowed",
                           path, (long long)st.st_size, max_bytes);
    }
    size_t size = (size_t)st.st_size;
    char *buf = malloc(size + 1);
    if (!buf) {
        fclose(fp);
        return glora_error(GLORA_ENOMEM, "cannot read '%s': out of memory", path);
    }
    size_t got = fread(buf, 1, size, fp);
    int err = ferror(fp);
    fclose(fp);
    if (err || got != size) {
        free(buf);
        return glora_error(GLORA_EIO, "cannot read '%s': short read", path);
    }
    buf[size] = '\0';
    *data = buf;
    *n = size;
    return GLORA_OK;
}

int glora_mkdir_p(const char *path) {
    char buf[PATH_MAX];
    size_t len = strlen(path);
    if (!glora_comm_writer()) return GLORA_OK; /* rank 0 creates it */
    if (len == 0 || len >= sizeof buf)
        return glora_error(GLORA_EINVAL, "cannot create directory '%s': bad path", path);
    memcpy(buf, path, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (buf[i] == '/' || buf[i] == '\0') {
            char c = buf[i];
            buf[i] = '\0';
            if (mkdir(buf, 0777) != 0 && errno != EEXIST)
                return glora_error(GLORA_EIO, "cannot create directory '%s': %s", buf, strerror(errno));
            buf[i] = c;
        }
    }
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return glora_error(GLORA_EIO, "cannot create directory '%s': a file is in the way", path);
    return GLORA_OK;
}
