/* The search's fitness: top-1 accuracy of many candidate subnets of one
 * supernet on one split (see glora/search.h). */
#include "glora/common.h"
#include "util/parallel.h"
#include "glora/search.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* -log softmax(z)[y] of one row of V logits, in double (a function of the
 * row alone). */
static double row_loss(const float *z, int V, int y) {
    if (y < 0 || y >= V) return INFINITY; /* the engine refuses it */
    double mx = z[0], sum = 0;
    for (int k = 1; k < V; k++)
        if (z[k] > mx) mx = z[k];
    for (int k = 0; k < V; k++) sum += exp((double)z[k] - mx);
    return log(sum) - ((double)z[y] - mx);
}

/* Top-1 correct of the images whose tokens (n, T, C) are given; with loss,
 * each image's loss into loss[0..n). */
static size_t count_from_tokens(const glora_vit_t *m, const glora_vit_linears_t *lin,
                                glora_vit_acts_t *ac, const float *tokens, const int *y, size_t n,
                                double *loss) {
    const size_t per = (size_t)m->arch.tokens * (size_t)m->arch.dim;
    const int V = m->arch.num_classes;
    size_t correct = 0;
    for (size_t start = 0; start < n; start += ac->max_batch) {
        size_t B = n - start < ac->max_batch ? n - start : ac->max_batch;
        glora_vit_forward_tokens(m, lin, ac, tokens + start * per, B);
        correct += glora_vit_count_top1(m, ac, y + start, B);
        for (size_t b = 0; loss && b < B; b++)
            loss[start + b] = row_loss(ac->logits + b * (size_t)V, V, y[start + b]);
    }
    return correct;
}

/* The tokens of images [lo, lo + n_img), which no candidate changes, into *out. */
static int embed_all(const glora_vit_t *m, const glora_dataset_t *ds, size_t lo, size_t n_img,
                     size_t batch, glora_vit_acts_t *ws, float **out) {
    const size_t per = (size_t)m->arch.tokens * (size_t)m->arch.dim;
    float *tokens = NULL, *x = NULL;
    if (per > SIZE_MAX / sizeof(float) / n_img || !(tokens = malloc(n_img * per * sizeof(float))) ||
        !(x = malloc(batch * glora_dataset_example_size(ds) * sizeof(float)))) {
        free(tokens);
        return glora_error(GLORA_ENOMEM, "evaluation 'candidates': out of memory for %zu images", n_img);
    }
    for (size_t start = 0; start < n_img; start += batch) {
        size_t B = n_img - start < batch ? n_img - start : batch;
        glora_dataset_slice(ds, lo + start, B, x);
        glora_vit_embed(m, ws, x, B);
        memcpy(tokens + start * per, ws->x0, B * per * sizeof(float));
    }
    free(x);
    *out = tokens;
    return GLORA_OK;
}

int glora_search_fitness(const glora_vit_t *m, const glora_layer_cfg_t *const *cands, size_t n,
                         const glora_dataset_t *ds, size_t batch, double *acc) {
    if (n == 0) return GLORA_OK;
    uint64_t *correct = calloc(n, sizeof *correct);
    if (!correct) return glora_error(GLORA_ENOMEM, "evaluation 'candidates': out of memory");
    int rc = ds->n ? glora_search_fitness_count(m, cands, n, ds, 0, ds->n, batch, correct)
                   : glora_error(GLORA_EINVAL, "evaluation 'candidates': no images");
    for (size_t c = 0; !rc && c < n; c++) acc[c] = (double)correct[c] / (double)ds->n;
    free(correct);
    return rc;
}

int glora_search_fitness_count(const glora_vit_t *m, const glora_layer_cfg_t *const *cands, size_t n,
                               const glora_dataset_t *ds, size_t lo, size_t hi, size_t batch,
                               uint64_t *correct) {
    return glora_search_fitness_score(m, cands, n, ds, lo, hi, batch, correct, NULL);
}

int glora_search_fitness_score(const glora_vit_t *m, const glora_layer_cfg_t *const *cands, size_t n,
                               const glora_dataset_t *ds, size_t lo, size_t hi, size_t batch,
                               uint64_t *correct, double *loss) {
    GLORA_ASSERT(lo <= hi && hi <= ds->n);
    const size_t n_img = hi - lo;
    const int *y = ds->y + lo;
    if (n == 0) return GLORA_OK;
    if (n_img == 0) return glora_error(GLORA_EINVAL, "evaluation 'candidates': no images");
    if (batch == 0 || batch > n_img) batch = n_img;
    /* One candidate per thread, each thread with its own merged weights and
     * activations; kernels inside see an active parallel region and stay on
     * their thread. With fewer candidates than threads, candidates run one
     * after another and the kernels use the threads instead. */
    int nthreads = glora_max_threads();
    int outer = n >= (size_t)nthreads && nthreads > 1;
    int nws = outer ? nthreads : 1;
    glora_vit_linears_t **lin = calloc((size_t)nws, sizeof *lin);
    glora_vit_acts_t **ws = calloc((size_t)nws, sizeof *ws);
    int rc = (lin && ws) ? GLORA_OK : glora_error(GLORA_ENOMEM, "evaluation 'candidates': out of memory");
    for (int t = 0; t < nws && rc == GLORA_OK; t++) {
        rc = glora_vit_linears_create(&lin[t], m);
        /* Each candidate's weights serve n_img / batch forward passes. */
        if (rc == GLORA_OK && n_img > batch) rc = glora_vit_linears_pack(lin[t]);
        if (rc == GLORA_OK) rc = glora_vit_acts_create(&ws[t], m, batch, 0);
    }
    float *tokens = NULL;
    if (rc == GLORA_OK) rc = embed_all(m, ds, lo, n_img, batch, ws[0], &tokens);
    if (rc == GLORA_OK) {
        if (outer) {
            #pragma omp parallel for schedule(dynamic, 1) num_threads(nws)
            for (size_t c = 0; c < n; c++) {
                int t = glora_thread_id();
                glora_vit_linears_set(lin[t], m, cands[c]);
                correct[c] += count_from_tokens(m, lin[t], ws[t], tokens, y, n_img,
                                                loss ? loss + c * ds->n + lo : NULL);
            }
        } else {
            for (size_t c = 0; c < n; c++) {
                glora_vit_linears_set(lin[0], m, cands[c]);
                correct[c] += count_from_tokens(m, lin[0], ws[0], tokens, y, n_img,
                                                loss ? loss + c * ds->n + lo : NULL);
            }
        }
    }
    free(tokens);
    for (int t = 0; t < nws && lin && ws; t++) {
        glora_vit_linears_free(lin[t]);
        glora_vit_acts_free(ws[t]);
    }
    free(lin);
    free(ws);
    return rc;
}
