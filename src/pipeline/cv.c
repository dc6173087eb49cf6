/* The cross-validated search (search.cv_folds, issue #13): the folds of the
 * labelled data, one supernet per fold trained on the others, then the
 * search scoring each candidate on every fold with the supernet that never
 * saw it (see glora/pipeline.h, glora_cv_folds, and pipeline-impl.h,
 * pipeline_cv_search). */
#include "glora/pipeline.h"
#include "glora/common.h"
#include "pipeline/pipeline-impl.h"
#include "util/comm.h"
#include "util/fileio.h"
#include "util/rng.h"
#include "util/strbuf.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int glora_cv_folds(const int *y, size_t n, int k, uint64_t seed, int *fold) {
    if (k < 2 || (size_t)k > n)
        return glora_error(GLORA_EINVAL, "cross-validation: %d folds of %zu examples (needs 2 <= folds <= examples)",
                           k, n);
    if (n > UINT32_MAX) return glora_error(GLORA_EINVAL, "cross-validation: %zu examples are too many", n);
    int classes = 0;
    for (size_t i = 0; i < n; i++) {
        if (y[i] < 0) return glora_error(GLORA_EINVAL, "cross-validation: label %d of example %zu is negative", y[i], i);
        if (y[i] >= classes) classes = y[i] + 1;
    }
    size_t *first = calloc((size_t)classes + 1, sizeof *first), *count = calloc((size_t)classes + 1, sizeof *count);
    uint32_t *order = malloc(n * sizeof *order);
    if (!first || !count || !order) {
        free(first), free(count), free(order);
        return glora_error(GLORA_ENOMEM, "cross-validation: out of memory");
    }
    /* The examples grouped by class, each group in ascending order, then
     * shuffled by a stream of its own (forked off seed by the class). */
    for (size_t i = 0; i < n; i++) count[y[i]]++;
    for (int c = 0; c < classes; c++) first[c + 1] = first[c] + count[c];
    memset(count, 0, (size_t)classes * sizeof *count);
    for (size_t i = 0; i < n; i++) order[first[y[i]] + count[y[i]]++] = (uint32_t)i;
    glora_rng_t base;
    glora_rng_seed(&base, seed);
    for (int c = 0; c < classes; c++) {
        glora_rng_t r;
        glora_rng_fork(&base, (uint64_t)c, &r);
        glora_rng_shuffle(&r, order + first[c], count[c]);
    }
    /* Dealt in turn, the deal going on from one class to the next: every
     * fold gets within one of n / k examples and of each class's count / k. */
    for (size_t p = 0; p < n; p++) fold[order[p]] = (int)(p % (size_t)k);
    free(first), free(count), free(order);
    return GLORA_OK;
}

/* ---- the labelled data ------------------------------------------------------ */

/* Two splits read from the same file's overlapping examples (the same list
 * or folder counts as overlapping): pooled, an image would be in a fold and
 * in the supernet trained without it. */
static int overlap(const glora_split_t *a, const glora_split_t *b) {
    if (strcmp(glora_split_source(a), glora_split_source(b)) != 0) return 0;
    if (!a->images || !b->images) return 1;
    size_t ae = a->count ? a->start + a->count : SIZE_MAX, be = b->count ? b->start + b->count : SIZE_MAX;
    return a->start < be && b->start < ae;
}

/* a followed by b into *out: the same storage, image shape and
 * normalisation (checked by the caller); a's class names. */
static int concat(const glora_dataset_t *a, const glora_dataset_t *b, glora_dataset_t *out) {
    size_t n = a->n + b->n, per = glora_dataset_example_size(a);
    memset(out, 0, sizeof *out);
    if (a->n == 0 || b->n == 0)
        return glora_error(GLORA_EINVAL, "config key 'search.cv_folds': the %s split is empty",
                           a->n == 0 ? "supernet's training" : "search's");
    uint32_t *idx = malloc((n ? n : 1) * sizeof *idx);
    if (!idx) return glora_error(GLORA_ENOMEM, "cross-validation: out of memory");
    for (size_t i = 0; i < a->n; i++) idx[i] = (uint32_t)i;
    int rc = glora_dataset_take(a, idx, a->n, out); /* a's metadata, and room to grow */
    free(idx);
    if (rc) return rc;
    void *px = out->u8 ? (void *)out->u8 : (void *)out->x;
    size_t esz = out->u8 ? 1 : sizeof(float), bytes;
    if (glora_size_mul(n, per * esz, &bytes)) {
        glora_dataset_free(out);
        return glora_error(GLORA_ENOMEM, "cross-validation: %zu examples are too many", n);
    }
    void *grown = realloc(px, bytes ? bytes : 1);
    int *y = grown ? realloc(out->y, (n ? n : 1) * sizeof *y) : NULL;
    if (grown) {
        if (out->u8) out->u8 = grown;
        else out->x = grown;
    }
    if (y) out->y = y;
    if (!grown || !y) {
        glora_dataset_free(out);
        return glora_error(GLORA_ENOMEM, "cross-validation: out of memory");
    }
    memcpy((char *)grown + a->n * per * esz, b->u8 ? (const void *)b->u8 : (const void *)b->x, b->n * per * esz);
    memcpy(out->y + a->n, b->y, b->n * sizeof *y);
    out->n = n;
    if (b->num_classes > out->num_classes && !out->class_names) out->num_classes = b->num_classes;
    return GLORA_OK;
}

/* The two splits must be read alike to be pooled. */
static int same_reading(const glora_dataset_t *a, const glora_dataset_t *b, const char *sa, const char *sb) {
    const char *what = NULL;
    if (a->c != b->c || a->h != b->h || a->w != b->w) what = "image size or channels";
    else if (!a->u8 != !b->u8) what = "pixel storage (IDX files or image files)";
    else if (a->mean != b->mean || a->std != b->std || memcmp(a->cmean, b->cmean, sizeof a->cmean) ||
             memcmp(a->cstd, b->cstd, sizeof a->cstd))
        what = "normalisation (data.mean, data.std)";
    if (!what) return GLORA_OK;
    int rc = glora_error(GLORA_EINVAL, "config key 'search.cv_folds': the supernet's training split '%s' and the "
                         "search's split '%s' differ in %s, so they cannot be pooled into folds", sa, sb, what);
    glora_error_hint("read both sections' splits alike (the same data.* keys)");
    return rc;
}

/* Everything the cross-validated search holds, freed by one call. */
typedef struct {
    glora_vit_t *bb;
    glora_dataset_t a, b, pool;    /* supernet's data.train, the search's data, both */
    int *fold;
    size_t size[GLORA_SEARCH_MAX_FOLDS];
    glora_vit_t *m[GLORA_SEARCH_MAX_FOLDS];
    glora_dataset_t folds[GLORA_SEARCH_MAX_FOLDS];
    char sha[GLORA_SEARCH_MAX_FOLDS][65];
    char path[GLORA_SEARCH_MAX_FOLDS][2300];
    glora_split_t ts, vs;
} cv_job_t;

static void cv_free(cv_job_t *j) {
    glora_vit_free(j->bb);
    glora_dataset_free(&j->a);
    glora_dataset_free(&j->b);
    glora_dataset_free(&j->pool);
    free(j->fold);
    for (int f = 0; f < GLORA_SEARCH_MAX_FOLDS; f++) {
        glora_vit_free(j->m[f]);
        glora_dataset_free(&j->folds[f]);
    }
}

/* The backbone and the pooled labelled data: the supernet's training split
 * (k-shot selection and all), then the search's split, as the stages read
 * them (image files at the backbone's size). */
static int load_pool(const glora_config_t *scfg, const glora_config_t *ncfg, cv_job_t *j) {
    glora_vit_load_opts_t o = {.heads = (int)glora_config_int(scfg, "model.heads"),
                               .arch = glora_config_string(scfg, "model.arch")};
    int rc = glora_split_from_config(&j->vs, scfg, "data", "data.");
    if (!rc && !glora_split_given(&j->vs)) {
        rc = glora_config_error(scfg, "search.cv_folds", "pools the supernet's training split and the search's "
                                "split (data) into folds, and the search gives no split");
        return rc;
    }
    if (!rc) rc = glora_split_from_config(&j->ts, ncfg, "data.train", "data.");
    if (!rc && !glora_split_given(&j->ts)) {
        rc = glora_config_error(scfg, "search.cv_folds", "pools the supernet's training split (section supernet, "
                                "data.train) and the search's split into folds, and the supernet has none");
        return rc;
    }
    if (!rc && overlap(&j->ts, &j->vs)) {
        rc = glora_config_error(scfg, "search.cv_folds", "pools the supernet's training split and the search's "
                                "split, which share examples of '%s': the folds would repeat images",
                                glora_split_source(&j->vs));
        glora_error_hint("give the search a split of its own (the task's val200) or leave search.cv_folds at 0");
        return rc;
    }
    if (rc || (rc = glora_config_require(scfg, "model.backbone")) ||
        (rc = glora_vit_load_ex(&j->bb, glora_config_string(scfg, "model.backbone"), NULL, &o)))
        return rc;
    /* Sized and shaped for the backbone; the labels are checked against
     * each fold supernet's head when it is built. */
    glora_vit_arch_t arch = j->bb->arch;
    arch.num_classes = INT_MAX;
    if ((rc = glora_split_load(&j->a, &j->ts, &arch)) || (rc = glora_split_load(&j->b, &j->vs, &arch)) ||
        (rc = same_reading(&j->a, &j->b, glora_split_source(&j->ts), glora_split_source(&j->vs))))
        return rc;
    return concat(&j->a, &j->b, &j->pool);
}

/* RUN/cv/folds.json: which fold every pooled example is in (docs/formats.md). */
static int write_folds(const cv_job_t *j, int k, uint64_t seed, const char *dir) {
    char path[2200];
    snprintf(path, sizeof path, "%s/folds.json", dir);
    sbuf_t b = {0};
    sb_printf(&b, "{\n  \"format\": \"glora-cv-folds/1\",\n  \"folds\": %d,\n  \"seed\": %llu,\n  \"images\": %zu,\n",
              k, (unsigned long long)seed, j->pool.n);
    sb_puts(&b, "  \"sources\": [{\"split\": \"supernet data.train\", \"source\": ");
    sb_jstr(&b, glora_split_source(&j->ts));
    sb_printf(&b, ", \"images\": %zu}, {\"split\": \"search data\", \"source\": ", j->a.n);
    sb_jstr(&b, glora_split_source(&j->vs));
    sb_printf(&b, ", \"images\": %zu}],\n  \"sizes\": [", j->b.n);
    for (int f = 0; f < k; f++) sb_printf(&b, "%s%zu", f ? ", " : "", j->size[f]);
    sb_puts(&b, "],\n  \"fold\": [");
    for (size_t i = 0; i < j->pool.n; i++) sb_printf(&b, "%s%d", i ? (i % 40 ? ", " : ",\n    ") : "", j->fold[i]);
    sb_puts(&b, "]\n}\n");
    int rc = b.failed ? glora_error(GLORA_ENOMEM, "folds '%s': out of memory", path)
                      : glora_write_atomic(path, b.buf, b.len);
    free(b.buf);
    return rc;
}

/* The examples of the pool in fold f (in) or in every other fold (!in),
 * in pool order, into *out. */
static int take_fold(const cv_job_t *j, int f, int in, glora_dataset_t *out) {
    uint32_t *idx = malloc((j->pool.n ? j->pool.n : 1) * sizeof *idx);
    if (!idx) return glora_error(GLORA_ENOMEM, "cross-validation: out of memory");
    size_t n = 0;
    for (size_t i = 0; i < j->pool.n; i++)
        if ((j->fold[i] == f) == !!in) idx[n++] = (uint32_t)i;
    int rc = glora_dataset_take(&j->pool, idx, n, out);
    free(idx);
    return rc;
}

/* Supernet f on the other folds (validated on fold f) into j->path[f]:
 * the supernet section's training, resumed from its checkpoint, and a
 * finished one only reloaded. */
static int train_fold(cv_job_t *j, glora_config_t *ncfg, int f, int k, const glora_stage_hooks_t *h,
                      const pipeline_saved_t *saved, int *stopped) {
    glora_dataset_t train = {0}, val = {0};
    char ck[2400], mp[2400], id[200], line[2600];
    snprintf(ck, sizeof ck, "%s.ckpt", j->path[f]);
    snprintf(mp, sizeof mp, "%s.metrics.jsonl", j->path[f]);
    int rc = take_fold(j, f, 0, &train);
    if (!rc) rc = take_fold(j, f, 1, &val);
    const glora_dataset_t *both[2] = {&train, &val};
    char sha[65];
    if (!rc) rc = pipeline_data_sha256(both, 2, sha);
    if (!rc && ((rc = glora_config_set_string(ncfg, "output", j->path[f])) ||
                (rc = glora_config_set_string(ncfg, "run.checkpoint", ck)) ||
                (rc = glora_config_set_string(ncfg, "run.metrics", mp))))
        goto done;
    snprintf(id, sizeof id, "cv fold %d of %d, data %s", f + 1, k, sha);
    if (!rc && h && h->note) {
        snprintf(line, sizeof line, "cv fold %d/%d: supernet on the other folds' %zu images, validated on this "
                                    "fold's %zu -> %s", f + 1, k, train.n, val.n, j->path[f]);
        h->note(h->ctx, line);
    }
    pipeline_data_t data = {.train = &train, .val = &val, .identity = id};
    glora_train_result_t res = {0};
    if (!rc) rc = glora_comm_check(pipeline_stage_train(GLORA_RECIPE_SUPERNET, ncfg, 1, h, &res, saved, &data));
    if (!rc) *stopped = res.start_epoch + res.epochs_run < (int)glora_config_int(ncfg, "train.epochs");
done:
    glora_dataset_free(&train);
    glora_dataset_free(&val);
    return rc;
}

int pipeline_cv_search(const glora_config_t *scfg, glora_config_t *ncfg, const char *cv_dir,
                       const glora_stage_hooks_t *h, const pipeline_saved_t *saved, int *stopped) {
    const int k = (int)glora_config_int(scfg, "search.cv_folds");
    const uint64_t seed = (uint64_t)glora_config_int(scfg, "search.seed");
    cv_job_t *j = calloc(1, sizeof *j);
    int rc;
    *stopped = 0;
    if (!j) return glora_error(GLORA_ENOMEM, "cross-validation: out of memory");
    GLORA_ASSERT(k >= 2 && k <= GLORA_SEARCH_MAX_FOLDS);
    /* The search's own options first: a mistake there must not wait for
     * K supernets to train. */
    glora_search_opts_t opts;
    if ((rc = glora_search_opts_from_config(scfg, &opts)) || (rc = load_pool(scfg, ncfg, j))) goto done;
    if ((size_t)k > j->pool.n) {
        rc = glora_config_error(scfg, "search.cv_folds", "is %d, more than the %zu labelled images (the supernet's "
                                "%zu training images and the search's %zu)", k, j->pool.n, j->a.n, j->b.n);
        goto done;
    }
    if (!(j->fold = malloc(j->pool.n * sizeof *j->fold))) {
        rc = glora_error(GLORA_ENOMEM, "cross-validation: out of memory");
        goto done;
    }
    if ((rc = glora_cv_folds(j->pool.y, j->pool.n, k, seed, j->fold))) goto done;
    size_t most = 0;
    for (size_t i = 0; i < j->pool.n; i++) j->size[j->fold[i]]++;
    for (int f = 0; f < k; f++) most = j->size[f] > most ? j->size[f] : most;
    const int64_t batch = glora_config_int(ncfg, "train.batch");
    if (j->pool.n - most < (size_t)batch) {
        rc = glora_config_error(scfg, "search.cv_folds", "is %d: a fold's supernet would train on %zu images, fewer "
                                "than the supernet's train.batch %lld", k, j->pool.n - most, (long long)batch);
        goto done;
    }
    if ((rc = glora_mkdir_p(cv_dir))) goto done;
    if (glora_comm_writer()) rc = write_folds(j, k, seed, cv_dir);
    if ((rc = glora_comm_check(rc))) goto done;
    if (h && h->note) {
        char line[512];
        snprintf(line, sizeof line, "cv: %d folds of %zu labelled images (the supernet's %zu training images and "
                                    "the search's %zu), stratified by class, drawn by search.seed %llu: %s/folds.json",
                 k, j->pool.n, j->a.n, j->b.n, (unsigned long long)seed, cv_dir);
        h->note(h->ctx, line);
    }
    for (int f = 0; f < k && !rc && !*stopped; f++) {
        snprintf(j->path[f], sizeof j->path[f], "%s/supernet-fold%d.safetensors", cv_dir, f + 1);
        rc = train_fold(j, ncfg, f, k, h, saved, stopped);
    }
    if (rc || *stopped) goto done;
    /* Each fold's supernet (as the search loads a supernet) and its fold. */
    glora_vit_load_opts_t o = {.heads = (int)glora_config_int(scfg, "model.heads"),
                               .arch = glora_config_string(scfg, "model.arch")};
    for (int f = 0; f < k && !rc; f++) {
        if (!(rc = glora_vit_load_ex(&j->m[f], glora_config_string(scfg, "model.backbone"), j->path[f], &o)) &&
            !(rc = glora_sha256_file(j->path[f], j->sha[f])))
            rc = take_fold(j, f, 1, &j->folds[f]);
        if (!rc) glora_precision_from_config(scfg, "search.precision", j->m[f], f == 0 ? h : NULL);
    }
    if (rc) goto done;
    const glora_vit_t *m[GLORA_SEARCH_MAX_FOLDS];
    const glora_dataset_t *folds[GLORA_SEARCH_MAX_FOLDS];
    const char *shas[GLORA_SEARCH_MAX_FOLDS];
    for (int f = 0; f < k; f++) m[f] = j->m[f], folds[f] = &j->folds[f], shas[f] = j->sha[f];
    const pipeline_cv_t cv = {.k = k, .m = m, .folds = folds, .sha256 = shas};
    rc = pipeline_stage_search(scfg, 1, h, saved, &cv);
done:
    cv_free(j);
    free(j);
    return rc;
}
