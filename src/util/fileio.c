/* Atomic writes, whole-file reads and mkdir -p (see util/fileio.h). */
#include "util/fileio.h"
#include "glora/common.h"
#include "util/comm.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/file.h>
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

int glora_open_regular(const char *path, uint64_t *size) {
    /* O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) return glora_error(GLORA_EIO, "cannot open '%s': %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return glora_error(GLORA_EIO, "cannot read '%s': %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return glora_error(GLORA_EIO, "cannot read '%s': not a regular file (%s)", path,
                           S_ISDIR(st.st_mode)    ? "a directory"
                           : S_ISFIFO(st.st_mode) ? "a named pipe"
                           : S_ISSOCK(st.st_mode) ? "a socket"
                           : S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) ? "a device"
                                                                          : "not a plain file");
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0) fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    if (size) *size = (uint64_t)st.st_size;
    return fd;
}

int glora_read_file(const char *path, size_t max_bytes, char **data, size_t *n) {
    *data = NULL;
    *n = 0;
    uint64_t sz;
    int fd = glora_open_regular(path, &sz);
    if (fd < 0) return fd;
    if (sz > max_bytes) {
        close(fd);
        return glora_error(GLORA_EFORMAT, "cannot read '%s': %llu bytes is more than the %zu allowed",
                           path, (unsigned long long)sz, max_bytes);
    }
    size_t size = (size_t)sz;
    char *buf = malloc(size + 1);
    if (!buf) {
        close(fd);
        return glora_error(GLORA_ENOMEM, "cannot read '%s': out of memory", path);
    }
    /* Read at most size bytes: a file that grows meanwhile is read as it was. */
    size_t got = 0;
    int e = 0;
    while (got < size) {
        ssize_t r = read(fd, buf + got, size - got);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) e = errno;
        if (r <= 0) break;
        got += (size_t)r;
    }
    close(fd);
    if (got != size) {
        free(buf);
        return glora_error(GLORA_EIO, "cannot read '%s': %s", path,
                           e ? strerror(e) : "short read (the file shrank while being read)");
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

/* ---- output directory locks ---- */

struct glora_dir_lock {
    int fd;
    char *path;
};

/* The pid written in a lock file, or 0. */
static long lock_holder(int fd) {
    char buf[32] = {0};
    ssize_t r = pread(fd, buf, sizeof buf - 1, 0);
    return r > 0 ? strtol(buf, NULL, 10) : 0;
}

int glora_dir_lock(glora_dir_lock_t **out, const char *dir) {
    size_t n = strlen(dir) + sizeof "/" GLORA_LOCK_NAME;
    char *path = malloc(n);
    if (!path) return glora_error(GLORA_ENOMEM, "cannot lock '%s': out of memory", dir);
    snprintf(path, n, "%s/%s", dir, GLORA_LOCK_NAME);
    int rc = glora_path_lock(out, path, "output directory", dir);
    free(path);
    return rc;
}

int glora_path_lock(glora_dir_lock_t **out, const char *lock_path, const char *what,
                    const char *name) {
    *out = NULL;
    /* Under MPI the job is one writer: rank 0 holds the lock for all ranks
     * (another rank taking it would find rank 0 as the holder). */
    if (!glora_comm_writer()) return GLORA_OK;
    char *path = strdup(lock_path);
    const char *dir = name;
    if (!path) return glora_error(GLORA_ENOMEM, "cannot lock '%s': out of memory", name);
    int rc = GLORA_OK, fd = -1;
    /* The holder removes the file when it is done, so the file locked may
     * have been unlinked meanwhile: retry until the locked file is the one
     * the name points at. */
    for (int tries = 0; tries < 100; tries++) {
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0666);
        if (fd < 0) {
            rc = glora_error(GLORA_EIO, "cannot lock %s '%s': %s", what, dir, strerror(errno));
            break;
        }
        if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
            int e = errno;
            long pid = e == EWOULDBLOCK ? lock_holder(fd) : 0;
            close(fd);
            fd = -1;
            if (e == EWOULDBLOCK) {
                if (pid > 0)
                    rc = glora_error(GLORA_ESTATE, "%s '%s' is in use by another glora (pid %ld)",
                                     what, dir, pid);
                else
                    rc = glora_error(GLORA_ESTATE, "%s '%s' is in use by another glora", what, dir);
                glora_error_hint("wait for it to finish, or write somewhere else");
            } else {
                rc = glora_error(GLORA_EIO, "cannot lock %s '%s': %s", what, dir, strerror(e));
            }
            break;
        }
        struct stat a, b;
        if (fstat(fd, &a) == 0 && stat(path, &b) == 0 && a.st_dev == b.st_dev &&
            a.st_ino == b.st_ino)
            break;
        close(fd);
        fd = -1;
    }
    if (rc == GLORA_OK && fd < 0)
        rc = glora_error(GLORA_EIO, "cannot lock %s '%s': the lock file keeps changing", what,
                         dir);
    if (rc == GLORA_OK) {
        char pid[32];
        int len = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
        if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)len, 0) != len) {
            /* The lock holds without the pid (e.g. disk full): only the
             * message of a second run is poorer. */
        }
        glora_dir_lock_t *l = malloc(sizeof *l);
        if (!l) {
            unlink(path);
            close(fd);
            rc = glora_error(GLORA_ENOMEM, "cannot lock '%s': out of memory", dir);
        } else {
            l->fd = fd;
            l->path = path;
            *out = l;
            return GLORA_OK;
        }
    }
    free(path);
    return rc;
}

void glora_dir_unlock(glora_dir_lock_t *l) {
    if (!l) return;
    unlink(l->path); /* while still holding the lock: see glora_dir_lock */
    close(l->fd);
    free(l->path);
    free(l);
}

/* Output locks held until exit (glora_output_lock). */
static glora_dir_lock_t **held;
static size_t n_held;

static void release_held(void) {
    for (size_t i = 0; i < n_held; i++) glora_dir_unlock(held[i]);
    free(held);
    held = NULL;
    n_held = 0;
}

int glora_output_lock(const char *output) {
    if (!glora_comm_writer()) return GLORA_OK;
    struct stat st;
    int is_dir = stat(output, &st) == 0 && S_ISDIR(st.st_mode);
    size_t n = strlen(output) + sizeof "/" GLORA_LOCK_NAME;
    char *path = malloc(n);
    if (!path) return glora_error(GLORA_ENOMEM, "cannot lock '%s': out of memory", output);
    snprintf(path, n, is_dir ? "%s/" GLORA_LOCK_NAME : "%s.lock", output);
    for (size_t i = 0; i < n_held; i++) {
        if (strcmp(held[i]->path, path) == 0) {
            free(path);
            return GLORA_OK;
        }
    }
    glora_dir_lock_t **grown = realloc(held, (n_held + 1) * sizeof *held);
    int rc = grown ? GLORA_OK : glora_error(GLORA_ENOMEM, "cannot lock '%s': out of memory", output);
    if (grown) held = grown;
    if (!rc) rc = glora_path_lock(&held[n_held], path, is_dir ? "output directory" : "output", output);
    free(path);
    if (rc) return rc;
    static int registered;
    if (!registered) registered = atexit(release_held) == 0;
    n_held++;
    return is_dir ? GLORA_OK : glora_clean_temps_of(output, NULL);
}

/* ---- leftover temporaries ---- */

/* "<name>.tmp.XXXXXX" as glora_atomic_open makes them (mkstemp's six
 * letters and digits). */
static int is_temp_name(const char *name) {
    size_t len = strlen(name);
    if (len < 12) return 0;
    const char *tail = name + len - 11;
    if (memcmp(tail, ".tmp.", 5) != 0) return 0;
    for (int i = 5; i < 11; i++) {
        char c = tail[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')))
            return 0;
    }
    return 1;
}

/* Removes the leftover temporaries in dir, and in its subdirectories down to
 * depth more levels; with base, only base's own ("<base>.tmp.XXXXXX"), and a
 * directory that cannot be listed is then nothing to clean. */
static int clean_dir(const char *dir, int depth, const char *base, int *removed) {
    DIR *d = opendir(dir);
    if (!d) {
        if (base || errno == ENOENT || errno == ENOTDIR) return GLORA_OK;
        return glora_error(GLORA_EIO, "cannot list '%s': %s", dir, strerror(errno));
    }
    size_t blen = base ? strlen(base) : 0;
    int rc = GLORA_OK;
    struct dirent *e;
    while (rc == GLORA_OK && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' && (!e->d_name[1] || (e->d_name[1] == '.' && !e->d_name[2])))
            continue;
        if (base && (strlen(e->d_name) != blen + 11 || strncmp(e->d_name, base, blen) != 0 ||
                     !is_temp_name(e->d_name)))
            continue;
        size_t n = strlen(dir) + strlen(e->d_name) + 2;
        char *p = malloc(n);
        if (!p) {
            rc = glora_error(GLORA_ENOMEM, "cannot clean '%s': out of memory", dir);
            break;
        }
        snprintf(p, n, "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(p, &st) == 0) {
            if (S_ISREG(st.st_mode) && is_temp_name(e->d_name)) {
                if (unlink(p) == 0) (*removed)++;
                else if (errno != ENOENT)
                    rc = glora_error(GLORA_EIO, "cannot remove the leftover temporary '%s': %s",
                                     p, strerror(errno));
            } else if (S_ISDIR(st.st_mode) && depth > 0) {
                rc = clean_dir(p, depth - 1, base, removed);
            }
        }
        free(p);
    }
    closedir(d);
    return rc;
}

int glora_clean_temps(const char *dir, int depth, int *removed) {
    int n = 0;
    int rc = clean_dir(dir, depth, NULL, &n);
    if (removed) *removed = n;
    return rc;
}

int glora_clean_temps_of(const char *path, int *removed) {
    int n = 0;
    if (removed) *removed = 0;
    char *dir = dir_of(path);
    if (!dir) return glora_error(GLORA_ENOMEM, "cannot clean '%s': out of memory", path);
    const char *slash = strrchr(path, '/');
    int rc = clean_dir(dir, 0, slash ? slash + 1 : path, &n);
    free(dir);
    if (removed) *removed = n;
    return rc;
}

/* ---- JSON-lines logs that a new run replaces only once it has a line ---- */

struct glora_lines {
    int fd;
    char *path, *tmp; /* tmp: a fresh log not yet renamed over path */
};

int glora_lines_open(glora_lines_t **out, const char *path, int append) {
    *out = NULL;
    glora_lines_t *l = calloc(1, sizeof *l);
    if (!l || !(l->path = strdup(path))) {
        free(l);
        return glora_error(GLORA_ENOMEM, "cannot write '%s': out of memory", path);
    }
    if (append) {
        l->fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0666);
    } else {
        size_t n = strlen(path) + 16;
        if ((l->tmp = malloc(n)) != NULL) {
            snprintf(l->tmp, n, "%s.tmp.XXXXXX", path);
            l->fd = mkstemp(l->tmp);
            if (l->fd >= 0) {
                mode_t um = umask(0);
                umask(um);
                fchmod(l->fd, 0666 & ~um);
            }
        } else {
            l->fd = -1;
            errno = ENOMEM;
        }
    }
    if (l->fd < 0) {
        int e = errno;
        free(l->tmp);
        free(l->path);
        free(l);
        return glora_error(GLORA_EIO, "cannot write '%s': %s", path, strerror(e));
    }
    *out = l;
    return GLORA_OK;
}

int glora_lines_write(glora_lines_t *l, const char *line) {
    size_t n = strlen(line);
    size_t off = 0;
    while (off < n) {
        ssize_t w = write(l->fd, line + off, n - off);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0)
            return glora_error(GLORA_EIO, "cannot write '%s': %s", l->path, strerror(errno));
        off += (size_t)w;
    }
    if (l->tmp) {
        /* The first line is complete: now the new log replaces the old. */
        if (fsync(l->fd) != 0 || rename(l->tmp, l->path) != 0)
            return glora_error(GLORA_EIO, "cannot write '%s': %s", l->path, strerror(errno));
        free(l->tmp);
        l->tmp = NULL;
    }
    return GLORA_OK;
}

int glora_lines_close(glora_lines_t *l) {
    if (!l) return GLORA_OK;
    int rc = GLORA_OK;
    if (l->tmp) unlink(l->tmp); /* nothing written: the previous log stays */
    else if (fsync(l->fd) != 0 && errno != EINVAL)
        rc = glora_error(GLORA_EIO, "cannot write '%s': %s", l->path, strerror(errno));
    if (close(l->fd) != 0 && rc == GLORA_OK)
        rc = glora_error(GLORA_EIO, "cannot write '%s': %s", l->path, strerror(errno));
    free(l->tmp);
    free(l->path);
    free(l);
    return rc;
}
