/* The macro-kernel: one mc x nc tile of C from a packed A block (mc x kc)
 * and a packed B block (kc x nc). The A micro-panel of the outer loop
 * (MR x kc) stays in L1 while the inner loop streams the B micro-panels
 * from L2, where the B block was sized to fit. */
#include "gemm-impl.h"

void sgemm_macro(const sgemm_kernel_t *kern, size_t mc, size_t nc, size_t kc,
                 float alpha, const float *apack, const float *bpack, float beta,
                 float *c, size_t ldc) {
    const size_t mr = kern->mr, nr = kern->nr;
    sgemm_ukernel_fn ukernel = kern->ukernel;
    for (size_t ir = 0; ir < mc; ir += mr) {
        size_t rows = mc - ir < mr ? mc - ir : mr;
        const float *ap = apack + ir * kc;
        for (size_t jr = 0; jr < nc; jr += nr) {
            size_t cols = nc - jr < nr ? nc - jr : nr;
            ukernel(kc, ap, bpack + jr * kc, c + ir * ldc + jr, ldc, rows, cols,
                    alpha, beta);
        }
    }
}
