/* Portable packing of bf16 operands: op(A) and op(B) rounded to bf16 (the
 * one rounding of each operand) and laid out as pairs along k in the
 * micro-panels of gemm-impl.h. Valid for any tile; it also defines what
 * the AVX-512 packers (pack_avx512_bf16.c) must produce, bit for bit. */
#include "gemm-impl.h"

void bgemm_pack_a_portable(glora_trans_t ta, size_t mc, size_t k0, size_t k1, const float *a,
                           size_t lda, size_t mr, uint32_t *dst) {
    const size_t kp = (k1 - k0 + 1) / 2;
    for (size_t i0 = 0; i0 < mc; i0 += mr, dst += kp * mr) {
        size_t rows = mc - i0 < mr ? mc - i0 : mr;
        for (size_t p = 0; p < kp; p++) {
            size_t s = k0 + 2 * p;
            uint32_t *d = dst + p * mr;
            for (size_t i = 0; i < rows; i++) {
                /* op(A)[i][s] and op(A)[i][s + 1] (zero past k1). */
                const float *lo = ta ? a + s * lda + i0 + i : a + (i0 + i) * lda + s;
                float hi = s + 1 < k1 ? (ta ? lo[lda] : lo[1]) : 0.0f;
                d[i] = bgemm_pair(*lo, hi);
            }
            for (size_t i = rows; i < mr; i++) d[i] = 0;
        }
    }
}

void bgemm_pack_b_portable(glora_trans_t tb, size_t k, size_t nc, const float *b, size_t ldb,
                           size_t nr, uint32_t *dst) {
    const size_t kp = (k + 1) / 2;
    for (size_t j0 = 0; j0 < nc; j0 += nr, dst += kp * nr) {
        size_t cols = nc - j0 < nr ? nc - j0 : nr;
        for (size_t p = 0; p < kp; p++) {
            size_t s = 2 * p;
            uint32_t *d = dst + p * nr;
            for (size_t j = 0; j < cols; j++) {
                /* op(B)[s][j] and op(B)[s + 1][j] (zero past k). */
                const float *lo = tb ? b + (j0 + j) * ldb + s : b + s * ldb + j0 + j;
                float hi = s + 1 < k ? (tb ? lo[1] : lo[ldb]) : 0.0f;
                d[j] = bgemm_pair(*lo, hi);
            }
            for (size_t j = cols; j < nr; j++) d[j] = 0;
        }
    }
}
