/* The "cblas" kernel: OpenBLAS behind glora_sgemm, for cross-checks and
 * benchmarks only ("auto" never picks it). */
#include "config.h"
#include "gemm-impl.h"

#ifdef GLORA_HAVE_CBLAS
#include <cblas.h>
#include <limits.h>

#include "util/parallel.h"

int sgemm_cblas(glora_trans_t ta, glora_trans_t tb, size_t m, size_t n, size_t k,
                float alpha, const float *a, size_t lda, const float *b, size_t ldb,
                float beta, float *c, size_t ldc) {
    if (m > INT_MAX || n > INT_MAX || k > INT_MAX || lda > INT_MAX || ldb > INT_MAX ||
        ldc > INT_MAX)
        return -1;
    /* OpenBLAS keeps its own thread pool: size it like glora's team. (Inside
     * an enclosing parallel region it is left alone; OpenBLAS serialises
     * concurrent callers itself.) */
    if (!glora_in_parallel()) {
        int threads = glora_max_threads();
        if (openblas_get_num_threads() != threads) openblas_set_num_threads(threads);
    }
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans,
                tb ? CblasTrans : CblasNoTrans, (int)m, (int)n, (int)k, alpha, a,
                (int)lda, b, (int)ldb, beta, c, (int)ldc);
    return 0;
}
#else
int sgemm_cblas(glora_trans_t ta, glora_trans_t tb, size_t m, size_t n, size_t k,
                float alpha, const float *a, size_t lda, const float *b, size_t ldb,
                float beta, float *c, size_t ldc) {
    return -1;
}
#endif
