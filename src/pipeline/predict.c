/* The prediction stage: logits of a model (with a subnet) for each image of
 * a split, and their softmax top-k. */
#include "glora/pipeline.h"
#include "glora/common.h"
#include "glora/image.h"
#include "util/comm.h"
#include "util/strbuf.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

int glora_predict(const glora_vit_t *m, const glora_layer_cfg_t *cfg, const glora_dataset_t *ds,
                  size_t batch, float *logits) {
    glora_vit_linears_t *lin = NULL;
    glora_vit_acts_t *acts = NULL;
    float *x = NULL;
    if (ds->n == 0) return GLORA_OK;
    if (batch == 0) batch = 256;
    if (batch > ds->n) batch = ds->n;
    const size_t per = glora_dataset_example_size(ds), V = (size_t)m->arch.num_classes;
    int rc = glora_vit_linears_create(&lin, m);
    if (!rc) rc = glora_vit_acts_create(&acts, m, batch, 0);
    if (!rc && !(x = malloc(batch * per * sizeof(float))))
        rc = glora_error(GLORA_ENOMEM, "prediction: out of memory for a batch of %zu images", batch);
    if (!rc) {
        glora_vit_linears_set(lin, m, cfg);
        /* Logits (B, V) of each batch copied out in image order. */
        for (size_t start = 0; start < ds->n; start += batch) {
            size_t B = ds->n - start < batch ? ds->n - start : batch;
            glora_dataset_slice(ds, start, B, x);
            glora_vit_forward(m, lin, acts, x, B);
            for (size_t i = 0; i < B * V; i++) logits[start * V + i] = acts->logits[i];
        }
    }
    free(x);
    glora_vit_linears_free(lin);
    glora_vit_acts_free(acts);
    return rc;
}

int glora_predict_topk(const float *logits, int n_classes, int k, int *cls, double *p) {
    if (k > n_classes) k = n_classes;
    /* Softmax in double, max subtracted: p_c = exp(l_c - max) / sum. */
    double mx = logits[0], sum = 0;
    for (int c = 1; c < n_classes; c++)
        if (logits[c] > mx) mx = logits[c];
    for (int c = 0; c < n_classes; c++) sum += exp((double)logits[c] - mx);
    /* Selection by repeated scans (k is small): the largest logit not yet
     * taken, the lowest class index on ties, as the top-1 argmax does. */
    for (int j = 0; j < k; j++) {
        int best = -1;
        for (int c = 0; c < n_classes; c++) {
            int taken = 0;
            for (int t = 0; t < j; t++) taken |= cls[t] == c;
            if (!taken && (best < 0 || logits[c] > logits[best])) best = c;
        }
        cls[j] = best;
        p[j] = exp((double)logits[best] - mx) / sum;
    }
    return k;
}

/* ---- images to JSON lines ----------------------------------------------- */

/* The images to predict: the split's list or folder, or the files. */
static int images_of(glora_image_list_t *l, const glora_predict_opts_t *o) {
    const glora_split_t *s = o->split;
    memset(l, 0, sizeof *l);
    if (s->list) return glora_image_list_read(l, s->list, s->root, 0);
    if (s->folder) return glora_image_folder_read(l, s->folder);
    const size_t n = (size_t)o->n_files;
    l->paths = calloc(n ? n : 1, sizeof *l->paths);
    l->labels = calloc(n ? n : 1, sizeof *l->labels);
    if (!l->paths || !l->labels) goto oom;
    for (l->n = 0; l->n < n; l->n++)
        if (!(l->paths[l->n] = strdup(o->files[l->n]))) goto oom;
    return GLORA_OK;
oom:
    glora_image_list_free(l);
    return glora_error(GLORA_ENOMEM, "predict: out of memory for %zu paths", n);
}

/* One image's JSON line into b (docs/formats.md). */
static void json_line(sbuf_t *b, const char *path, const float *logits, int V, const char *name,
                      int with_logits) {
    int cls[5];
    double p[5];
    int k = glora_predict_topk(logits, V, 5, cls, p);
    sb_puts(b, "{\"path\": ");
    sb_jstr(b, path);
    sb_printf(b, ", \"class\": %d", cls[0]);
    if (name) {
        sb_puts(b, ", \"name\": ");
        sb_jstr(b, name);
    }
    sb_puts(b, ", \"top5\": [");
    for (int j = 0; j < k; j++) {
        sb_printf(b, "%s{\"class\": %d, \"p\": ", j ? ", " : "", cls[j]);
        sb_double(b, p[j]);
        sb_puts(b, "}");
    }
    sb_puts(b, "]");
    if (with_logits) {
        sb_puts(b, ", \"logits\": [");
        for (int c = 0; c < V; c++) {
            if (c) sb_puts(b, ", ");
            sb_double(b, logits[c]);
        }
        sb_puts(b, "]");
    }
    sb_puts(b, "}\n");
}

typedef struct {
    const glora_predict_opts_t *o;
    glora_image_list_t list;
    glora_image_prep_t prep;
    size_t batch;
    float *mine, *all;       /* this rank's logits of a piece; the piece's, gathered */
    sbuf_t line;
    char **model_names;      /* the model's glora.class_names, parsed (or NULL) */
} job_t;

/* The model's class names (a checked JSON array of num_classes strings). */
static int model_names(job_t *j) {
    const glora_vit_t *m = j->o->model;
    if (!m->class_names) return GLORA_OK;
    cJSON *a = cJSON_Parse(m->class_names);
    const int n = m->arch.num_classes;
    int rc = a && cJSON_GetArraySize(a) == n && (j->model_names = calloc((size_t)n, sizeof(char *)))
                 ? GLORA_OK
                 : glora_error(GLORA_ENOMEM, "predict: cannot read the model's class names");
    for (int c = 0; !rc && c < n; c++) {
        const cJSON *s = cJSON_GetArrayItem(a, c);
        if (!cJSON_IsString(s) || !(j->model_names[c] = strdup(s->valuestring)))
            rc = glora_error(GLORA_ENOMEM, "predict: cannot read the model's class names");
    }
    cJSON_Delete(a);
    return rc;
}

/* This rank's images of the piece [p0, p0 + pn): whole batches of it, so
 * every image is in the batch it would be in one process. Their logits
 * into j->mine; *lo, *n say which. */
static int piece_mine(job_t *j, size_t p0, size_t pn, size_t *lo, size_t *n) {
    const glora_split_t *s = j->o->split;
    size_t blo, bhi, nb = (pn + j->batch - 1) / j->batch;
    glora_comm_span(nb, glora_comm_rank(), glora_comm_size(), &blo, &bhi);
    *lo = p0 + blo * j->batch;
    *n = bhi * j->batch < pn ? (bhi - blo) * j->batch : pn - blo * j->batch;
    if (blo == bhi) *n = 0;
    if (*n == 0) return GLORA_OK;
    glora_image_split_t sp = {0};
    int rc = glora_image_split_load(&sp, &j->list, *lo, *n, &j->prep, NULL, NULL);
    if (rc) return rc;
    glora_dataset_t ds = {.n = sp.n, .c = sp.c, .h = sp.h, .w = sp.w, .u8 = sp.px, .y = sp.y,
                          .num_classes = j->o->model->arch.num_classes};
    for (int c = 0; c < 3; c++) {
        ds.cmean[c] = s->means[s->nnorm == 3 ? c : 0];
        ds.cstd[c] = s->stds[s->nnorm == 3 ? c : 0];
    }
    ds.mean = ds.cmean[0];
    ds.std = ds.cstd[0];
    rc = glora_predict(j->o->model, j->o->cfg, &ds, j->batch, j->mine);
    glora_image_split_free(&sp);
    return rc;
}

/* The lines of images [p0, p0 + pn) from their gathered logits. */
static int piece_write(job_t *j, size_t p0, size_t pn) {
    const glora_predict_opts_t *o = j->o;
    const int V = o->model->arch.num_classes;
    const char *const *names = o->class_names      ? o->class_names
                               : j->model_names    ? (const char *const *)j->model_names
                                                   : (const char *const *)j->list.class_names;
    const int n_names = o->class_names ? o->n_class_names
                        : j->model_names ? V
                        : j->list.class_names ? j->list.num_classes : 0;
    for (size_t i = 0; i < pn; i++) {
        const float *l = j->all + i * (size_t)V;
        int top;
        double p;
        glora_predict_topk(l, V, 1, &top, &p);
        j->line.len = 0;
        json_line(&j->line, j->list.paths[p0 + i], l, V, top < n_names ? names[top] : NULL, o->with_logits);
        if (j->line.failed) return glora_error(GLORA_ENOMEM, "predict: out of memory for an output line");
        int rc = o->write(o->ctx, j->line.buf, j->line.len);
        if (rc) return rc;
    }
    return GLORA_OK;
}

/* The range of the list, the preprocessing and the piece size. */
static int job_setup(job_t *j, size_t *start, size_t *count, size_t *piece) {
    const glora_predict_opts_t *o = j->o;
    const glora_split_t *s = o->split;
    const glora_vit_arch_t *a = &o->model->arch;
    const char *src = s->list || s->folder ? glora_split_source(s) : "image files";
    j->prep = (glora_image_prep_t){.channels = a->in_chans, .size = s->size ? s->size : a->img_size,
                                   .resize = (glora_resize_t)s->img_resize,
                                   .interp = (glora_interp_t)s->interp, .crop_pct = s->crop_pct};
    if (j->prep.size != a->img_size) {
        int rc = glora_error(GLORA_EINVAL, "data '%s': data.size is %d, the model takes %d x %d images", src,
                             j->prep.size, a->img_size, a->img_size);
        glora_error_hint("leave data.size unset (the model's size)");
        return rc;
    }
    *start = s->list || s->folder ? s->start : 0;
    *count = s->list || s->folder ? s->count : 0;
    if (*start > j->list.n || (*count && *count > j->list.n - *start))
        return glora_error(GLORA_EINVAL, "data '%s': examples [%zu, %zu) asked, the split has %zu", src, *start,
                           *start + *count, j->list.n);
    if (*count == 0) *count = j->list.n - *start;
    if (*count == 0) return glora_error(GLORA_EINVAL, "data '%s': the split is empty", src);
    const size_t per = glora_image_split_bytes(1, &j->prep);
    *piece = s->max_memory ? s->max_memory / per : *count;
    if (*piece == 0)
        return glora_error(GLORA_EINVAL, "data '%s': data.max_memory (%zu bytes) holds not one decoded image "
                           "of %zu bytes", src, s->max_memory, per);
    if (*piece > *count) *piece = *count;
    j->batch = o->batch ? o->batch : 256;
    const size_t V = (size_t)a->num_classes;
    j->mine = malloc(*piece * V * sizeof(float));
    j->all = malloc(*piece * V * sizeof(float));
    if (!j->mine || !j->all)
        return glora_error(GLORA_ENOMEM, "predict: out of memory for the logits of %zu images", *piece);
    return GLORA_OK;
}

int glora_predict_images(const glora_predict_opts_t *o, size_t *n_done) {
    job_t j = {.o = o};
    size_t start = 0, count = 0, piece = 0;
    *n_done = 0;
    const size_t V = (size_t)o->model->arch.num_classes;
    int rc = images_of(&j.list, o);
    if (!rc) rc = model_names(&j);
    if (!rc) rc = job_setup(&j, &start, &count, &piece);
    /* Piece by piece (data.max_memory), each spread over the ranks in whole
     * batches and gathered in order: the lines one process writes. */
    for (size_t p0 = start; !rc && p0 < start + count; p0 += piece) {
        const size_t pn = start + count - p0 < piece ? start + count - p0 : piece;
        size_t lo, n;
        rc = glora_comm_check(piece_mine(&j, p0, pn, &lo, &n));
        if (rc) break;
        glora_comm_allgatherv(j.mine, n * V * sizeof(float), j.all);
        rc = glora_comm_check(glora_comm_writer() ? piece_write(&j, p0, pn) : GLORA_OK);
        *n_done += pn;
    }
    free(j.line.buf);
    free(j.mine);
    free(j.all);
    for (int c = 0; j.model_names && c < o->model->arch.num_classes; c++) free(j.model_names[c]);
    free(j.model_names);
    glora_image_list_free(&j.list);
    return rc;
}
