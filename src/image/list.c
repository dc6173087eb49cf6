/*
 * Where a split's images are: VTAB-1k / NOAH list files and torchvision
 * ImageFolder trees (contracts in glora/image.h).
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "glora/common.h"
#include "util/fileio.h"
#include "glora/image.h"

#define MAX_LIST_BYTES ((size_t)1 << 30)

void glora_image_list_free(glora_image_list_t *l) {
    if (!l) return;
    for (size_t i = 0; i < l->n; i++) free(l->paths[i]);
    free(l->paths);
    free(l->labels);
    if (l->class_names)
        for (int c = 0; c < l->num_classes; c++) free(l->class_names[c]);
    free(l->class_names);
    memset(l, 0, sizeof *l);
}

/* Appends (path, label), growing the arrays geometrically. path is taken. */
static int list_push(glora_image_list_t *l, size_t *cap, char *path, int label) {
    if (l->n == *cap) {
        size_t nc = *cap ? *cap * 2 : 64;
        char **p = realloc(l->paths, nc * sizeof *p);
        if (p) l->paths = p;
        int *y = realloc(l->labels, nc * sizeof *y);
        if (y) l->labels = y;
        if (!p || !y) {
            free(path);
            return glora_error(GLORA_ENOMEM, "image list: out of memory at %zu entries", l->n);
        }
        *cap = nc;
    }
    l->paths[l->n] = path;
    l->labels[l->n] = label;
    l->n++;
    return 0;
}

static char *join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *s = malloc(a + b + 2);
    if (!s) return NULL;
    memcpy(s, dir, a);
    size_t k = a;
    if (a && dir[a - 1] != '/') s[k++] = '/';
    memcpy(s + k, name, b + 1);
    return s;
}

static int is_regular(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int glora_image_list_read(glora_image_list_t *out, const char *list_path, const char *root,
                          int num_classes) {
    char *text = NULL, *base = NULL;
    size_t n = 0, cap = 0;
    int rc;
    memset(out, 0, sizeof *out);
    if ((rc = glora_read_file(list_path, MAX_LIST_BYTES, &text, &n))) return rc;
    if (memchr(text, 0, n)) {
        rc = glora_error(GLORA_EFORMAT, "image list '%s': holds a NUL byte (not a text file)",
                         list_path);
        goto done;
    }
    if (root) {
        base = strdup(root);
    } else {
        const char *slash = strrchr(list_path, '/');
        base = slash ? strndup(list_path, (size_t)(slash - list_path + 1)) : strdup("");
    }
    if (!base) {
        rc = glora_error(GLORA_ENOMEM, "image list '%s': out of memory", list_path);
        goto done;
    }
    long lineno = 0;
    int max_label = -1;
    for (char *line = text, *next; line && *line; line = next) {
        lineno++;
        next = strchr(line, '\n');
        if (next) *next++ = 0;
        size_t len = strlen(line);
        while (len && (line[len - 1] == '\r' || line[len - 1] == ' ' || line[len - 1] == '\t'))
            line[--len] = 0;
        while (*line == ' ' || *line == '\t') line++, len--;
        if (!len) continue;
        char *sp = NULL;
        for (char *p = line + len; p > line; p--)
            if (p[-1] == ' ' || p[-1] == '\t') {
                sp = p - 1;
                break;
            }
        if (!sp) {
            rc = glora_error(GLORA_EFORMAT, "image list '%s' line %ld: no label (expected "
                             "'path label')", list_path, lineno);
            goto done;
        }
        char *lab = sp + 1, *end;
        char *pe = sp;
        while (pe > line && (pe[-1] == ' ' || pe[-1] == '\t')) pe--;
        *pe = 0;
        errno = 0;
        long v = strtol(lab, &end, 10);
        if (*end || end == lab || errno) {
            rc = glora_error(GLORA_EFORMAT, "image list '%s' line %ld: label '%s' is not an "
                             "integer", list_path, lineno, lab);
            goto done;
        }
        long hi = num_classes > 0 ? num_classes : INT_MAX;
        if (v < 0 || v >= hi) {
            rc = glora_error(GLORA_EFORMAT, "image list '%s' line %ld: label %ld out of range "
                             "[0, %ld)", list_path, lineno, v, hi);
            goto done;
        }
        char *path = line[0] == '/' ? strdup(line) : join(base, line);
        if (!path) {
            rc = glora_error(GLORA_ENOMEM, "image list '%s': out of memory", list_path);
            goto done;
        }
        if (!is_regular(path)) {
            rc = glora_error(GLORA_EIO, "image list '%s' line %ld: image '%s' is missing or not "
                             "a regular file", list_path, lineno, path);
            free(path);
            goto done;
        }
        if ((rc = list_push(out, &cap, path, (int)v))) goto done;
        if (v > max_label) max_label = (int)v;
    }
    if (out->n == 0) {
        rc = glora_error(GLORA_EFORMAT, "image list '%s': no images listed", list_path);
        goto done;
    }
    out->num_classes = num_classes > 0 ? num_classes : max_label + 1;
done:
    free(text);
    free(base);
    if (rc) glora_image_list_free(out);
    return rc;
}

/* ---- ImageFolder ------------------------------------------------------- */

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

typedef struct {
    char **v;
    size_t n, cap;
} strvec_t;

static int strvec_push(strvec_t *s, char *x) {
    if (!x) return -1;
    if (s->n == s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 16;
        char **v = realloc(s->v, nc * sizeof *v);
        if (!v) {
            free(x);
            return -1;
        }
        s->v = v;
        s->cap = nc;
    }
    s->v[s->n++] = x;
    return 0;
}

static void strvec_free(strvec_t *s) {
    for (size_t i = 0; i < s->n; i++) free(s->v[i]);
    free(s->v);
    memset(s, 0, sizeof *s);
}

static int has_ext(const char *name, const char *const *exts) {
    const char *dot = strrchr(name, '.');
    if (!dot) return 0;
    for (int i = 0; exts[i]; i++)
        if (!strcasecmp(dot, exts[i])) return 1;
    return 0;
}

static const char *const OK_EXT[] = {".jpg", ".jpeg", ".png", NULL};
static const char *const OTHER_EXT[] = {".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp", NULL};

/* Lists the sub-folders (dirs) or the files (files) of dir, names sorted.
 * Entries are stat'ed, so symbolic links count as what they point to, as
 * os.walk(followlinks=True) and os.scandir's is_dir() do. */
static int read_dir(const char *dir, strvec_t *dirs, strvec_t *files) {
    DIR *d = opendir(dir);
    if (!d) return glora_error(GLORA_EIO, "image folder '%s': %s", dir, strerror(errno));
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char *p = join(dir, e->d_name);
        struct stat st;
        if (!p) {
            rc = glora_error(GLORA_ENOMEM, "image folder '%s': out of memory", dir);
            break;
        }
        int isdir = stat(p, &st) == 0 && S_ISDIR(st.st_mode);
        free(p);
        strvec_t *into = isdir ? dirs : files;
        if (into && strvec_push(into, strdup(e->d_name))) {
            rc = glora_error(GLORA_ENOMEM, "image folder '%s': out of memory", dir);
            break;
        }
    }
    closedir(d);
    /* An empty list has no array (v is NULL), which qsort must not get. */
    if (dirs && dirs->n > 1) qsort(dirs->v, dirs->n, sizeof *dirs->v, cmp_str);
    if (files && files->n > 1) qsort(files->v, files->n, sizeof *files->v, cmp_str);
    return rc;
}

/* Collects every folder of the tree under dir (dir included) into all. */
static int walk_dirs(const char *dir, strvec_t *all, int depth) {
    strvec_t sub = {0};
    int rc = 0;
    if (depth > 64) return glora_error(GLORA_EFORMAT, "image folder '%s': nested too deep", dir);
    if (strvec_push(all, strdup(dir)))
        return glora_error(GLORA_ENOMEM, "image folder '%s': out of memory", dir);
    if ((rc = read_dir(dir, &sub, NULL))) goto done;
    for (size_t i = 0; i < sub.n && !rc; i++) {
        char *p = join(dir, sub.v[i]);
        if (!p) {
            rc = glora_error(GLORA_ENOMEM, "image folder '%s': out of memory", dir);
            break;
        }
        rc = walk_dirs(p, all, depth + 1);
        free(p);
    }
done:
    strvec_free(&sub);
    return rc;
}

/* Adds the images of one class folder (its whole sub-tree) with label. */
static int add_class(glora_image_list_t *out, size_t *cap, const char *cdir, int label) {
    strvec_t dirs = {0};
    int rc = walk_dirs(cdir, &dirs, 0);
    size_t before = out->n;
    /* os.walk's tuples sorted: by folder path, then names inside. */
    if (!rc) qsort(dirs.v, dirs.n, sizeof *dirs.v, cmp_str);
    for (size_t i = 0; i < dirs.n && !rc; i++) {
        strvec_t files = {0};
        rc = read_dir(dirs.v[i], NULL, &files);
        for (size_t j = 0; j < files.n && !rc; j++) {
            char *p = join(dirs.v[i], files.v[j]);
            if (!p) {
                rc = glora_error(GLORA_ENOMEM, "image folder '%s': out of memory", cdir);
            } else if (has_ext(files.v[j], OTHER_EXT)) {
                rc = glora_error(GLORA_EFORMAT, "image folder '%s': '%s' is an image format "
                                 "glora does not read (JPEG and PNG only)", cdir, p);
                free(p);
            } else if (has_ext(files.v[j], OK_EXT)) {
                rc = list_push(out, cap, p, label);
            } else {
                free(p);
            }
        }
        strvec_free(&files);
    }
    strvec_free(&dirs);
    if (!rc && out->n == before)
        rc = glora_error(GLORA_EFORMAT, "image folder '%s': class folder has no .jpg, .jpeg or "
                         ".png files", cdir);
    return rc;
}

int glora_image_folder_read(glora_image_list_t *out, const char *dir) {
    strvec_t classes = {0};
    size_t cap = 0;
    int rc;
    memset(out, 0, sizeof *out);
    if ((rc = read_dir(dir, &classes, NULL))) goto done;
    if (classes.n == 0) {
        rc = glora_error(GLORA_EFORMAT, "image folder '%s': no class sub-folders", dir);
        goto done;
    }
    if (classes.n > INT_MAX / 2) {
        rc = glora_error(GLORA_EFORMAT, "image folder '%s': too many classes", dir);
        goto done;
    }
    for (size_t c = 0; c < classes.n && !rc; c++) {
        char *cdir = join(dir, classes.v[c]);
        if (!cdir) {
            rc = glora_error(GLORA_ENOMEM, "image folder '%s': out of memory", dir);
            break;
        }
        rc = add_class(out, &cap, cdir, (int)c);
        free(cdir);
    }
    if (rc) goto done;
    out->num_classes = (int)classes.n;
    out->class_names = classes.v;     /* taken: sorted names, one per class */
    classes.v = NULL;
    classes.n = 0;
done:
    strvec_free(&classes);
    if (rc) glora_image_list_free(out);
    return rc;
}
