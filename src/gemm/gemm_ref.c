/* The reference product: a plain triple loop with a float accumulator per
 * element, summed over k in order. Correct for every shape and stride. */
#include "glora/gemm.h"
#include "util/parallel.h"

void glora_sgemm_ref(glora_trans_t ta, glora_trans_t tb, size_t m, size_t n, size_t k,
                     float alpha, const float *a, size_t lda, const float *b, size_t ldb,
                     float beta, float *c, size_t ldc) {
    /* Rows are independent: any team gives the same bits. Inside an
     * enclosing parallel region, run on the calling thread (glora/gemm.h). */
    #pragma omp parallel for schedule(static) if (m * n * k > 65536 && !glora_in_parallel())
    for (size_t i = 0; i < m; i++) {
        for (size_t j = 0; j < n; j++) {
            float acc = 0.0f;
            for (size_t p = 0; p < k; p++) {
                float av = ta ? a[p * lda + i] : a[i * lda + p];
                float bv = tb ? b[j * ldb + p] : b[p * ldb + j];
                acc += av * bv;
            }
            float *cij = &c[i * ldc + j];
            *cij = alpha * acc + (beta == 0.0f ? 0.0f : beta * *cij);
        }
    }
}
