/* The evaluation stage: accuracy of a model (with a subnet) on a split. */
#include "glora/pipeline.h"
#include "glora/common.h"
#include "util/comm.h"

#include <stdlib.h>

int glora_eval_correct(const glora_vit_t *m, const glora_vit_linears_t *lin, glora_vit_acts_t *acts,
                       const glora_dataset_t *ds, size_t *correct) {
    const size_t per = glora_dataset_example_size(ds), batch = acts->max_batch;
    *correct = 0;
    if (ds->n == 0) return GLORA_OK;
    /* Under MPI each rank counts its span of the images; the counts are
     * summed (integers: exact), so every rank returns the split's count. */
    size_t lo, hi;
    glora_comm_span(ds->n, glora_comm_rank(), glora_comm_size(), &lo, &hi);
    uint64_t ok = 0;
    float *x = lo < hi ? malloc((hi - lo < batch ? hi - lo : batch) * per * sizeof(float)) : NULL;
    int rc = lo < hi && !x ? glora_error(GLORA_ENOMEM, "evaluation: out of memory for a batch of %zu images",
                                         batch)
                           : GLORA_OK;
    for (size_t start = lo; !rc && start < hi; start += batch) {
        size_t B = hi - start < batch ? hi - start : batch;
        glora_dataset_slice(ds, start, B, x);
        ok += glora_vit_count_correct(m, lin, acts, x, ds->y + start, B);
    }
    free(x);
    if ((rc = glora_comm_check(rc))) return rc;
    glora_comm_sum_u64(&ok, 1);
    *correct = (size_t)ok;
    return GLORA_OK;
}

int glora_evaluate(const glora_vit_t *m, const glora_layer_cfg_t *cfg, const glora_dataset_t *ds,
                   size_t batch, size_t *correct) {
    glora_vit_linears_t *lin = NULL;
    glora_vit_acts_t *acts = NULL;
    *correct = 0;
    if (ds->n == 0) return GLORA_OK;
    if (batch == 0) batch = 256;
    if (batch > ds->n) batch = ds->n;
    int rc = glora_vit_linears_create(&lin, m);
    if (!rc) rc = glora_vit_acts_create(&acts, m, batch, 0);
    if (!rc) {
        glora_vit_linears_set(lin, m, cfg);
        rc = glora_eval_correct(m, lin, acts, ds, correct);
    }
    glora_vit_linears_free(lin);
    glora_vit_acts_free(acts);
    return rc;
}
