/* Portable packing of op(A) and op(B) into the micro-panels the
 * micro-kernels read (layouts in gemm-impl.h). Written for any tile size;
 * an ISA may supply faster versions for its own tile in its kernel file. */
#include "gemm-impl.h"

#include <string.h>

void sgemm_pack_a_portable(glora_trans_t ta, size_t mc, size_t kc, const float *a,
                           size_t lda, size_t mr, float *dst) {
    for (size_t i0 = 0; i0 < mc; i0 += mr, dst += kc * mr) {
        size_t rows = mc - i0 < mr ? mc - i0 : mr;
        if (ta) {
            /* op(A) row i is column i of the stored k x m matrix: each k step
             * is a contiguous run of rows. */
            for (size_t p = 0; p < kc; p++) {
                const float *src = a + p * lda + i0;
                float *d = dst + p * mr;
                for (size_t i = 0; i < rows; i++) d[i] = src[i];
                for (size_t i = rows; i < mr; i++) d[i] = 0.0f;
            }
        } else {
            /* Read each row of A in order; the strided writes stay inside one
             * micro-panel, small enough for L1. */
            for (size_t i = 0; i < rows; i++) {
                const float *src = a + (i0 + i) * lda;
                for (size_t p = 0; p < kc; p++) dst[p * mr + i] = src[p];
            }
            for (size_t i = rows; i < mr; i++)
                for (size_t p = 0; p < kc; p++) dst[p * mr + i] = 0.0f;
        }
    }
}

void sgemm_pack_b_portable(glora_trans_t tb, size_t kc, size_t nc, const float *b,
                           size_t ldb, size_t nr, float *dst) {
    for (size_t j0 = 0; j0 < nc; j0 += nr, dst += kc * nr) {
        size_t cols = nc - j0 < nr ? nc - j0 : nr;
        if (tb) {
            /* op(B) column j is row j of the stored n x k matrix. */
            for (size_t j = 0; j < cols; j++) {
                const float *src = b + (j0 + j) * ldb;
                for (size_t p = 0; p < kc; p++) dst[p * nr + j] = src[p];
            }
            for (size_t j = cols; j < nr; j++)
                for (size_t p = 0; p < kc; p++) dst[p * nr + j] = 0.0f;
        } else {
            for (size_t p = 0; p < kc; p++) {
                const float *src = b + p * ldb + j0;
                float *d = dst + p * nr;
                memcpy(d, src, cols * sizeof *d);
                for (size_t j = cols; j < nr; j++) d[j] = 0.0f;
            }
        }
    }
}
