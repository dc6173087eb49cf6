/* Kernel dispatch. (Placeholder dispatch to the reference kernel until the
 * blocked kernels land.) */
#include "glora/gemm.h"
#include "glora/common.h"

#include <string.h>

void glora_sgemm(glora_trans_t ta, glora_trans_t tb, size_t m, size_t n, size_t k,
                 float alpha, const float *a, size_t lda, const float *b, size_t ldb,
                 float beta, float *c, size_t ldc) {
    glora_sgemm_ref(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

int glora_gemm_set_kernel(const char *name) {
    if (strcmp(name, "ref") == 0 || strcmp(name, "auto") == 0) return GLORA_OK;
    return glora_error(GLORA_EINVAL, "unknown GEMM kernel '%s': only 'ref' is built", name);
}

const char *glora_gemm_kernel(void) { return "ref"; }
