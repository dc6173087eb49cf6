/* Binding of the search engine to a ViT supernet: layers and spaces from the
 * model, fitness through glora_search_fitness, subnet specs through
 * glora_spec_write (see glora/search.h). */
#include <stdlib.h>
#include <string.h>

#include "glora/common.h"
#include "util/parallel.h"
#include "glora/search.h"
#include "glora/spec.h"
#include "search/search-impl.h"

/* glora_search_fitness_score on v's buffers, or fresh ones. */
static int score(glora_search_vit_t *v, const glora_layer_cfg_t *const *cands, size_t n, size_t lo,
                 size_t hi, uint64_t *correct, double *loss) {
    if (!v->ws)
        return glora_search_fitness_score(v->m, cands, n, v->data, lo, hi, v->batch, correct, loss);
    return glora_search_fitness_score_ws(v->ws, v->m, cands, n, v->data, lo, hi, v->batch, correct,
                                         loss);
}

int glora_search_vit_layers(const glora_vit_t *m, glora_search_layer_t **layers) {
    *layers = NULL;
    if (m->rank < 1)
        return glora_error(GLORA_ESTATE, "search model: has no GLoRA tensors (rank 0); a "
                                         "supernet is needed");
    int n = glora_vit_layers(m);
    glora_search_layer_t *L = calloc((size_t)n, sizeof *L);
    if (!L) return glora_error(GLORA_ENOMEM, "search model: out of memory");
    for (int l = 0; l < n; l++) {
        const float *w0, *b0;
        glora_vit_layer(m, l, &w0, &b0, &L[l].out, &L[l].in);
        glora_vit_layer_name(l, L[l].name);
        glora_space_official(&L[l].space, m->rank);
    }
    *layers = L;
    return 0;
}

/* glora_search_fitness on v's buffers. */
static int evaluate_chunk(glora_search_vit_t *v, const glora_layer_cfg_t *const *cands, size_t n,
                          double *acc) {
    const size_t ni = v->data->n;
    uint64_t *correct = calloc(n, sizeof *correct);
    if (!correct) return glora_error(GLORA_ENOMEM, "evaluation 'candidates': out of memory");
    int rc = ni ? score(v, cands, n, 0, ni, correct, NULL)
                : glora_error(GLORA_EINVAL, "evaluation 'candidates': no images");
    for (size_t c = 0; !rc && c < n; c++) acc[c] = (double)correct[c] / (double)ni;
    free(correct);
    return rc;
}

int glora_search_vit_evaluate(void *ctx, const glora_layer_cfg_t *const *cands, size_t n,
                              double *acc) {
    glora_search_vit_t *v = ctx;
    if (!v->tick) return evaluate_chunk(v, cands, n, acc);
    /* Chunks of two candidates per thread, so the counter moves; each
     * candidate's accuracy does not depend on which chunk it is in. */
    size_t chunk = 2 * (size_t)glora_max_threads();
    v->tick(v->tick_ctx, 0, n);
    for (size_t i = 0; i < n; i += chunk) {
        size_t k = n - i < chunk ? n - i : chunk;
        int rc = evaluate_chunk(v, cands + i, k, acc + i);
        if (rc) return rc;
        v->tick(v->tick_ctx, i + k, n);
    }
    return 0;
}

int glora_search_vit_count(void *ctx, const glora_layer_cfg_t *const *cands, size_t n, size_t lo,
                           size_t hi, uint64_t *correct) {
    glora_search_vit_t *v = ctx;
    return score(v, cands, n, lo, hi, correct, NULL);
}

int glora_search_vit_score(void *ctx, const glora_layer_cfg_t *const *cands, size_t n, size_t lo,
                           size_t hi, uint64_t *correct, double *loss) {
    glora_search_vit_t *v = ctx;
    const size_t ni = v->data->n;
    /* With a counter (one process, every image): chunks as in evaluate. */
    if (!v->tick || lo != 0 || hi != ni)
        return score(v, cands, n, lo, hi, correct, loss);
    size_t chunk = 2 * (size_t)glora_max_threads();
    v->tick(v->tick_ctx, 0, n);
    for (size_t i = 0; i < n; i += chunk) {
        size_t k = n - i < chunk ? n - i : chunk;
        int rc = score(v, cands + i, k, lo, hi, correct + i, loss + i * ni);
        if (rc) return rc;
        v->tick(v->tick_ctx, i + k, n);
    }
    return 0;
}

int search_spec_write(const glora_vit_t *m, const char *supernet_sha256, const char *path,
                      const glora_layer_cfg_t *cfg, size_t params, double acc, int generation) {
    glora_spec_t spec;
    memset(&spec, 0, sizeof spec);
    int rc = glora_spec_from_model(&spec, m, cfg, supernet_sha256);
    if (rc) return rc;
    GLORA_ASSERT(spec.params == params);
    spec.has_val = 1;
    spec.val_accuracy = acc;
    spec.generation = generation;
    rc = glora_spec_write(&spec, path);
    glora_spec_free(&spec);
    return rc;
}

int glora_search_vit_write_spec(void *ctx, const char *path, const glora_layer_cfg_t *cfg,
                                size_t params, double acc, int generation) {
    const glora_search_vit_t *v = ctx;
    return search_spec_write(v->m, v->supernet_sha256, path, cfg, params, acc, generation);
}
