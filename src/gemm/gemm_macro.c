/* The macro-kernel: one mc x nc tile of C for one k block, from packed
 * micro-panels. The A micro-panel of the outer loop (MR x kc) stays in L1
 * while the inner loop streams the B micro-panels from L2, where the tile's
 * B block (kc x nc) was sized to fit. */
#include "gemm-impl.h"

void sgemm_macro(const sgemm_kernel_t *kern, size_t mc, size_t nc, size_t kc,
                 float alpha, const float *apack, size_t a_stride, size_t lda_direct,
                 const float *bpack, size_t b_stride, size_t ldbp, float beta,
                 const float *bias, float *c, size_t ldc) {
    const size_t mr = kern->mr, nr = kern->nr;
    for (size_t ir = 0; ir < mc; ir += mr, apack += a_stride) {
        size_t rows = mc - ir < mr ? mc - ir : mr;
        const float *bp = bpack;
        for (size_t jr = 0; jr < nc; jr += nr, bp += b_stride) {
            size_t cols = nc - jr < nr ? nc - jr : nr;
            const float *bj = bias ? bias + jr : NULL;
            if (lda_direct)
                kern->ukernel_da(kc, apack, lda_direct, bp, ldbp, c + ir * ldc + jr, ldc, rows,
                                 cols, alpha, beta, bj);
            else
                kern->ukernel(kc, apack, bp, ldbp, c + ir * ldc + jr, ldc, rows, cols, alpha,
                              beta, bj);
        }
    }
}
