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

/* Buffers of the fitness kept between calls (glora/search.h): each thread's
 * merged (packed) weights and activations, the images' tokens. A ViT-B/16's
 * packed weights are 170 (bf16) to 340 MB (fp32) a thread; fresh pages for them on
 * every call cost more than the forward passes of a few images. */
struct glora_search_ws {
    const glora_vit_t *m;     /* what lin and acts were made for: the model, */
    glora_vit_arch_t arch;    /* its shape (a model freed and another made at */
    int rank;                 /* the same address must not pass for it) */
    int cap;                  /* entries of lin and acts */
    glora_vit_linears_t **lin;
    glora_vit_acts_t **acts;
    float *tokens, *x;
    size_t tokens_cap, x_cap; /* floats */
};

glora_search_ws_t *glora_search_ws_new(void) { return calloc(1, sizeof(glora_search_ws_t)); }

void glora_search_ws_free(glora_search_ws_t *ws) {
    if (!ws) return;
    for (int t = 0; t < ws->cap; t++) {
        glora_vit_linears_free(ws->lin[t]);
        glora_vit_acts_free(ws->acts[t]);
    }
    free(ws->lin);
    free(ws->acts);
    free(ws->tokens);
    free(ws->x);
    free(ws);
}

/* A buffer of at least n floats at *p (capacity *cap), kept when it is. */
static int ws_floats(float **p, size_t *cap, size_t n) {
    if (n <= *cap) return GLORA_OK;
    free(*p);
    *cap = 0;
    if (n > SIZE_MAX / sizeof(float) || !(*p = malloc(n * sizeof(float)))) return GLORA_ENOMEM;
    *cap = n;
    return GLORA_OK;
}

/* Makes lin[0 .. nws) and acts[0 .. nws) fit model m (its precision) and
 * batch, keeping what already does. With pack, the weights are kept packed
 * only (glora_vit_linears_pack_only): each layer merged into one
 * layer-sized buffer and packed from there, so a thread holds no merged
 * fp32 copy of the model beside the packed one (ViT-B/16: 340 MB a
 * thread). */
static int ws_fit(glora_search_ws_t *ws, const glora_vit_t *m, int nws, size_t batch, int pack) {
    if (nws > ws->cap) {
        glora_vit_linears_t **lin = realloc(ws->lin, (size_t)nws * sizeof *lin);
        if (lin) ws->lin = lin;
        glora_vit_acts_t **acts = lin ? realloc(ws->acts, (size_t)nws * sizeof *acts) : NULL;
        if (acts) ws->acts = acts;
        if (!lin || !acts) return glora_error(GLORA_ENOMEM, "evaluation 'candidates': out of memory");
        for (int t = ws->cap; t < nws; t++) ws->lin[t] = NULL, ws->acts[t] = NULL;
        ws->cap = nws;
    }
    int rc = GLORA_OK;
    const int same = ws->m == m && ws->rank == m->rank && !memcmp(&ws->arch, &m->arch, sizeof m->arch);
    for (int t = 0; t < ws->cap && rc == GLORA_OK; t++) {
        /* A GEMM kernel chosen since it was packed only may need the
         * merged weights: made again (as packed only if it can be). */
        if (ws->lin[t] && (!same || ws->lin[t]->precision != m->precision ||
                           (ws->lin[t]->merge_w && !glora_vit_linears_packed_only(ws->lin[t])))) {
            glora_vit_linears_free(ws->lin[t]);
            ws->lin[t] = NULL;
        }
        if (ws->acts[t] && (!same || ws->acts[t]->max_batch != batch)) {
            glora_vit_acts_free(ws->acts[t]);
            ws->acts[t] = NULL;
        }
        if (t >= nws) continue;
        if (!ws->lin[t]) rc = glora_vit_linears_create(&ws->lin[t], m);
        if (rc == GLORA_OK && pack) rc = glora_vit_linears_pack_only(ws->lin[t], m);
        if (rc == GLORA_OK && !ws->acts[t]) rc = glora_vit_acts_create(&ws->acts[t], m, batch, 0);
    }
    ws->m = m;
    ws->arch = m->arch;
    ws->rank = m->rank;
    return rc;
}

/* The tokens of images [lo, lo + n_img), which no candidate changes, into
 * ws->tokens, batch images at a time through acts. */
static int embed_all(const glora_vit_t *m, const glora_dataset_t *ds, size_t lo, size_t n_img,
                     size_t batch, glora_vit_acts_t *acts, glora_search_ws_t *ws) {
    const size_t per = (size_t)m->arch.tokens * (size_t)m->arch.dim;
    if (per > SIZE_MAX / sizeof(float) / n_img || ws_floats(&ws->tokens, &ws->tokens_cap, n_img * per) ||
        ws_floats(&ws->x, &ws->x_cap, batch * glora_dataset_example_size(ds)))
        return glora_error(GLORA_ENOMEM, "evaluation 'candidates': out of memory for %zu images", n_img);
    for (size_t start = 0; start < n_img; start += batch) {
        size_t B = n_img - start < batch ? n_img - start : batch;
        glora_dataset_slice(ds, lo + start, B, ws->x);
        glora_vit_embed(m, acts, ws->x, B);
        memcpy(ws->tokens + start * per, acts->x0, B * per * sizeof(float));
    }
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
    glora_search_ws_t *ws = glora_search_ws_new();
    int rc = ws ? glora_search_fitness_score_ws(ws, m, cands, n, ds, lo, hi, batch, correct, loss)
                : glora_error(GLORA_ENOMEM, "evaluation 'candidates': out of memory");
    glora_search_ws_free(ws);
    return rc;
}

int glora_search_fitness_score_ws(glora_search_ws_t *ws, const glora_vit_t *m,
                                  const glora_layer_cfg_t *const *cands, size_t n,
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
    /* Packed when a candidate's weights serve several batches, and in bf16
     * always: bf16 panels are half the size of the merged fp32 weights,
     * and packing them up front is the work the products would do on the
     * one batch. fp32 with one batch a candidate keeps the merged weights
     * unpacked (its panels would be as big). */
    int rc = ws_fit(ws, m, nws, batch, n_img > batch || m->precision == GLORA_BF16);
    if (rc == GLORA_OK) rc = embed_all(m, ds, lo, n_img, batch, ws->acts[0], ws);
    if (rc != GLORA_OK) return rc;
    const float *tokens = ws->tokens;
    if (outer) {
        #pragma omp parallel for schedule(dynamic, 1) num_threads(nws)
        for (size_t c = 0; c < n; c++) {
            int t = glora_thread_id();
            glora_vit_linears_set(ws->lin[t], m, cands[c]);
            correct[c] += count_from_tokens(m, ws->lin[t], ws->acts[t], tokens, y, n_img,
                                            loss ? loss + c * ds->n + lo : NULL);
        }
    } else {
        for (size_t c = 0; c < n; c++) {
            glora_vit_linears_set(ws->lin[0], m, cands[c]);
            correct[c] += count_from_tokens(m, ws->lin[0], ws->acts[0], tokens, y, n_img,
                                            loss ? loss + c * ds->n + lo : NULL);
        }
    }
    return GLORA_OK;
}
