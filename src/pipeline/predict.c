/* The prediction stage: logits of a model (with a subnet) for each image of
 * a split, and their softmax top-k. */
#include "glora/pipeline.h"
#include "glora/common.h"

#include <math.h>
#include <stdlib.h>

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
