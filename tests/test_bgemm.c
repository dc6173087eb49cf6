/* Unit tests of the bf16 products (glora_bgemm_*, bf16 packed operands):
 * every bf16 kernel against a double-precision product of the bf16-rounded
 * operands (odd shapes, odd k, tails, several k blocks, transpositions,
 * alpha/beta, bias); the AVX512_BF16 kernel, the emulation and the
 * reference bit-identical (where the CPU has the instruction), including
 * products that underflow, overflow or cancel; the rounding of operands;
 * the same bits for 1, 2 and 3 threads; packed right-hand sides; the
 * AVX-512 packers against the portable ones word for word. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "glora/common.h"
#include "glora/gemm.h"
#include "gemm/gemm-impl.h"
#include "util/parallel.h"
#include "util/rng.h"

static const char *const bkernels[] = {"avx512_bf16", "emulated", "ref"};
#define NBK (sizeof bkernels / sizeof bkernels[0])

static float *random_matrix(glora_rng_t *rng, size_t count) {
    float *x = malloc((count ? count : 1) * sizeof *x);
    assert_non_null(x);
    for (size_t i = 0; i < count; i++) x[i] = (float)(2.0 * glora_rng_uniform(rng) - 1.0);
    return x;
}

static float bits_float(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static uint32_t float_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* The operand rounding: nearest even, ties to even, zero and denormals to
 * signed zero, infinities kept, NaN quiet. */
static void test_round(void **state) {
    (void)state;
    assert_true(glora_bf16_round(1.0f) == 1.0f);
    /* 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties to even (1). */
    assert_true(glora_bf16_round(1.0f + 0x1p-8f) == 1.0f);
    /* 1 + 3 * 2^-8 is halfway between 1 + 2^-7 and 1 + 2^-6: to even. */
    assert_true(glora_bf16_round(1.0f + 3 * 0x1p-8f) == 1.0f + 0x1p-6f);
    assert_true(glora_bf16_round(1.0f + 0x1p-8f + 0x1p-20f) == 1.0f + 0x1p-7f);
    assert_true(glora_bf16_round(-1.0f - 0x1p-8f - 0x1p-20f) == -1.0f - 0x1p-7f);
    assert_int_equal(float_bits(glora_bf16_round(0x1p-140f)), 0);          /* denormal */
    assert_int_equal(float_bits(glora_bf16_round(-0x1p-140f)), 0x80000000u);
    assert_true(glora_bf16_round(0x1p-126f) == 0x1p-126f);
    assert_true(isinf(glora_bf16_round(FLT_MAX)));                          /* rounds up */
    assert_true(isinf(glora_bf16_round(-INFINITY)) && glora_bf16_round(-INFINITY) < 0);
    assert_int_equal(float_bits(glora_bf16_round(bits_float(0x7f800001u))), 0x7fc00000u);
    /* Every float within half an ulp of bf16 rounds as double rounding to
     * 8 significant bits would. */
    glora_rng_t rng;
    glora_rng_seed(&rng, 3);
    for (int t = 0; t < 100000; t++) {
        float x = (float)((2.0 * glora_rng_uniform(&rng) - 1.0) * ldexp(1.0, (int)glora_rng_below(&rng, 60) - 30));
        int e;
        double fr = frexp((double)x, &e);          /* |fr| in [0.5, 1) */
        double want = ldexp(nearbyint(ldexp(fr, 8)), e - 8);
        if (!(glora_bf16_round(x) == (float)want))
            fail_msg("round(%a) = %a, want %a", x, glora_bf16_round(x), want);
    }
}

static float *round_copy(const float *x, size_t count) {
    float *r = malloc((count ? count : 1) * sizeof *r);
    assert_non_null(r);
    for (size_t i = 0; i < count; i++) r[i] = glora_bf16_round(x[i]);
    return r;
}

/* One product against double precision on the bf16-rounded operands. Each
 * pair adds two roundings, each k block's merge one, plus alpha, beta and
 * bias: (k + k / 768 + 6) * u * (|alpha| sum |a b| + |beta c| + |bias|). */
static void check_product(glora_rng_t *rng, const char *kernel, glora_trans_t ta,
                          glora_trans_t tb, size_t m, size_t n, size_t k, float alpha,
                          float beta, int with_bias) {
    size_t lda = (ta ? m : k) + glora_rng_below(rng, 3);
    size_t ldb = (tb ? k : n) + glora_rng_below(rng, 3);
    size_t ldc = n + glora_rng_below(rng, 3);
    float *a = random_matrix(rng, (ta ? k : m) * lda);
    float *b = random_matrix(rng, (tb ? n : k) * ldb);
    float *c = random_matrix(rng, m * ldc), *bias = with_bias ? random_matrix(rng, n) : NULL;
    float *ar = round_copy(a, (ta ? k : m) * lda), *br = round_copy(b, (tb ? n : k) * ldb);
    float *c0 = malloc(m * ldc * sizeof *c0);
    assert_non_null(c0);
    for (size_t i = 0; i < m; i++)
        for (size_t j = n; j < ldc; j++) c[i * ldc + j] = 1234.5f;
    if (beta == 0.0f)
        for (size_t i = 0; i < m; i++)
            for (size_t j = 0; j < n; j++) c[i * ldc + j] = NAN;
    memcpy(c0, c, m * ldc * sizeof *c0);
    glora_bgemm_bias(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, bias, c, ldc);
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < ldc; j++) {
            float got = c[i * ldc + j];
            if (j >= n) {
                if (got != 1234.5f) fail_msg("%s: padding of C overwritten", kernel);
                continue;
            }
            double sum = 0.0, mag = 0.0;
            for (size_t p = 0; p < k; p++) {
                double av = ta ? ar[p * lda + i] : ar[i * lda + p];
                double bv = tb ? br[j * ldb + p] : br[p * ldb + j];
                sum += av * bv;
                mag += fabs(av * bv);
            }
            double want = alpha * sum, bound = fabs((double)alpha) * mag;
            if (beta != 0.0f) {
                want += (double)beta * c0[i * ldc + j];
                bound += fabs((double)beta * c0[i * ldc + j]);
            }
            if (bias) {
                want += bias[j];
                bound += fabs(bias[j]);
            }
            double tol = (double)(k + k / 768 + 6) * FLT_EPSILON * bound + 1e-30;
            if (!(fabs(got - want) <= tol))
                fail_msg("%s: %c%c m=%zu n=%zu k=%zu alpha=%g beta=%g: C(%zu,%zu) = %.9g, "
                         "want %.9g (tol %.3g)", kernel, ta ? 'T' : 'N', tb ? 'T' : 'N', m, n,
                         k, alpha, beta, i, j, got, want, tol);
        }
    free(a); free(b); free(c); free(c0); free(ar); free(br); free(bias);
}

static void test_against_double(void **state) {
    (void)state;
    static const size_t sizes[] = {1, 2, 3, 5, 11, 12, 13, 17, 31, 32, 33, 47, 97};
    static const size_t depths[] = {1, 2, 3, 7, 64, 65, 767, 768, 769, 1601};
    static const float alphas[] = {1.0f, -0.5f};
    static const float betas[] = {0.0f, 1.0f, -1.5f};
    glora_rng_t rng;
    glora_rng_seed(&rng, 17);
    for (size_t kk = 0; kk < NBK; kk++) {
        if (glora_bgemm_set_kernel(bkernels[kk]) != GLORA_OK) {
            glora_error_clear();
            continue;
        }
        int slow = strcmp(bkernels[kk], "avx512_bf16") != 0;
        for (int t = 0; t < (slow ? 16 : 48); t++) {
            size_t m = sizes[glora_rng_below(&rng, 13)], n = sizes[glora_rng_below(&rng, 13)];
            size_t k = depths[glora_rng_below(&rng, slow ? 8 : 10)];
            check_product(&rng, bkernels[kk], (glora_trans_t)(t & 1), (glora_trans_t)((t >> 1) & 1),
                          m, n, k, alphas[t % 2], betas[t % 3], t % 5 == 0);
        }
        /* Tiles across several row and column panels and k blocks. */
        check_product(&rng, bkernels[kk], GLORA_NOTRANS, GLORA_TRANS, slow ? 29 : 261,
                      slow ? 37 : 300, slow ? 801 : 1601, 1.0f, 0.0f, 1);
    }
    glora_bgemm_set_kernel("auto");
}

/* Operands chosen so that many products underflow (flushed), a few
 * overflow, and sums cancel to tiny values; also large dynamic range. */
static float *nasty_matrix(glora_rng_t *rng, size_t count) {
    float *x = malloc((count ? count : 1) * sizeof *x);
    assert_non_null(x);
    for (size_t i = 0; i < count; i++) {
        double v = 2.0 * glora_rng_uniform(rng) - 1.0;
        switch (glora_rng_below(rng, 8)) {
        case 0: v *= 0x1p-63; break;   /* products near 2^-126 */
        case 1: v *= 0x1p-70; break;   /* products below it */
        case 2: v *= 0x1p63; break;    /* products near overflow */
        case 3: v = 0.0; break;
        case 4: v = ldexp(1.0, (int)glora_rng_below(rng, 40) - 20); break;
        case 5: v *= 0x1p-128; break;  /* denormal operands: to zero */
        default: break;
        }
        x[i] = (float)v;
    }
    return x;
}

static int same_bits(const float *x, const float *y, size_t count, size_t *where) {
    for (size_t i = 0; i < count; i++) {
        if (isnan(x[i]) && isnan(y[i])) continue; /* payloads may differ */
        if (memcmp(&x[i], &y[i], sizeof x[i]) != 0) {
            *where = i;
            return 0;
        }
    }
    return 1;
}

static void run_kernel(const char *name, glora_trans_t ta, glora_trans_t tb, size_t m, size_t n,
                       size_t k, const float *a, const float *b, float beta, const float *bias,
                       const float *c0, float *c) {
    memcpy(c, c0, m * n * sizeof *c);
    if (strcmp(name, "ref") == 0) {
        glora_bgemm_ref(ta, tb, m, n, k, 1.0f, a, ta ? m : k, b, tb ? k : n, beta, bias, c, n);
        return;
    }
    assert_int_equal(glora_bgemm_set_kernel(name), GLORA_OK);
    glora_bgemm_bias(ta, tb, m, n, k, 1.0f, a, ta ? m : k, b, tb ? k : n, beta, bias, c, n);
}

/* The hardware kernel, the emulation and the reference agree bit for bit. */
static void test_emulation_bits(void **state) {
    (void)state;
    if (glora_bgemm_set_kernel("avx512_bf16") != GLORA_OK) {
        glora_error_clear();
        print_message("no AVX512_BF16 here: emulation checked against the reference only\n");
    }
    int hw = strcmp(glora_bgemm_kernel(), "avx512_bf16") == 0;
    static const size_t shapes[][3] = {{1, 1, 1}, {13, 33, 3}, {17, 64, 129}, {25, 40, 769},
                                       {12, 32, 1537}, {7, 5, 2}};
    glora_rng_t rng;
    glora_rng_seed(&rng, 23);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int t = 0; t < 8; t++) {
            glora_trans_t ta = (glora_trans_t)(t & 1), tb = (glora_trans_t)((t >> 1) & 1);
            size_t m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
            int nasty = t >= 4;
            float *a = nasty ? nasty_matrix(&rng, m * k) : random_matrix(&rng, m * k);
            float *b = nasty ? nasty_matrix(&rng, k * n) : random_matrix(&rng, k * n);
            float *c0 = random_matrix(&rng, m * n), *bias = random_matrix(&rng, n);
            float *r = malloc(m * n * sizeof *r), *e = malloc(m * n * sizeof *e);
            float *h = malloc(m * n * sizeof *h);
            assert_true(r && e && h);
            float beta = t % 2 ? 0.75f : 0.0f;
            const float *bi = t % 3 ? bias : NULL;
            run_kernel("ref", ta, tb, m, n, k, a, b, beta, bi, c0, r);
            run_kernel("emulated", ta, tb, m, n, k, a, b, beta, bi, c0, e);
            size_t at;
            if (!same_bits(r, e, m * n, &at))
                fail_msg("emulated != ref at %zu (%zux%zux%zu, %d): %a vs %a", at, m, n, k, t,
                         e[at], r[at]);
            if (hw) {
                run_kernel("avx512_bf16", ta, tb, m, n, k, a, b, beta, bi, c0, h);
                if (!same_bits(h, e, m * n, &at))
                    fail_msg("avx512_bf16 != emulated at %zu (%zux%zux%zu, %d): %a vs %a", at, m,
                             n, k, t, h[at], e[at]);
            }
            free(a); free(b); free(c0); free(bias); free(r); free(e); free(h);
        }
    glora_bgemm_set_kernel("auto");
}

static void test_threads_bit_identical(void **state) {
    (void)state;
    glora_rng_t rng;
    glora_rng_seed(&rng, 29);
    const size_t shapes[][3] = {{300, 200, 900}, {20, 700, 500}};
    for (size_t kk = 0; kk < 2; kk++) {
        if (glora_bgemm_set_kernel(bkernels[kk]) != GLORA_OK) {
            glora_error_clear();
            continue;
        }
        int slow = kk == 1;
        for (size_t s = 0; s < 2; s++) {
            size_t m = shapes[s][0] / (slow ? 4 : 1), n = shapes[s][1] / (slow ? 4 : 1),
                   k = shapes[s][2];
            float *a = random_matrix(&rng, m * k), *b = random_matrix(&rng, k * n);
            float *c[3];
            for (int t = 1; t <= 3; t++) {
                c[t - 1] = malloc(m * n * sizeof(float));
                assert_non_null(c[t - 1]);
                glora_set_threads(t);
                glora_bgemm_bias(GLORA_NOTRANS, GLORA_TRANS, m, n, k, 1.0f, a, k, b, k, 0.0f,
                                 NULL, c[t - 1], n);
            }
            assert_memory_equal(c[0], c[1], m * n * sizeof(float));
            assert_memory_equal(c[0], c[2], m * n * sizeof(float));
            for (int t = 0; t < 3; t++) free(c[t]);
            free(a);
            free(b);
        }
    }
    glora_set_threads(2);
    glora_bgemm_set_kernel("auto");
}

/* A right-hand side packed once in bf16: the same bits as glora_bgemm_bias,
 * for row batches and column ranges, and after the kernel changed. */
static void test_packed(void **state) {
    (void)state;
    static const size_t shapes[][3] = {{17, 384, 128}, {200, 97, 769}, {5, 33, 3}};
    glora_rng_t rng;
    glora_rng_seed(&rng, 31);
    glora_sgemm_b_t pb = {0};
    for (size_t s = 0; s < 3; s++)
        for (int tb = 0; tb < 2; tb++) {
            size_t m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
            float *a = random_matrix(&rng, m * k), *b = random_matrix(&rng, k * n);
            float *bias = random_matrix(&rng, n);
            float *c1 = malloc(m * n * sizeof *c1), *c2 = malloc(m * n * sizeof *c2);
            assert_true(c1 && c2);
            assert_int_equal(glora_gemm_b_pack(&pb, GLORA_BF16, (glora_trans_t)tb, k, n, b,
                                               tb ? k : n), GLORA_OK);
            glora_bgemm_bias(GLORA_NOTRANS, (glora_trans_t)tb, m, n, k, 1.0f, a, k, b,
                             tb ? k : n, 0.0f, bias, c1, n);
            size_t half = m / 2;
            glora_sgemm_packed(GLORA_NOTRANS, half, 0, n, 1.0f, a, k, &pb, 0.0f, bias, c2, n);
            glora_sgemm_packed(GLORA_NOTRANS, m - half, 0, n, 1.0f, a + half * k, k, &pb, 0.0f,
                               bias, c2 + half * n, n);
            assert_memory_equal(c1, c2, m * n * sizeof *c1);
            /* Columns from 32 on, into a narrower C. */
            if (n > 32) {
                size_t nj = n - 32;
                const float *bj = tb ? b + 32 * k : b + 32;
                glora_bgemm_bias(GLORA_NOTRANS, (glora_trans_t)tb, m, nj, k, 1.0f, a, k, bj,
                                 tb ? k : n, 0.0f, NULL, c1, nj);
                glora_sgemm_packed(GLORA_NOTRANS, m, 32, nj, 1.0f, a, k, &pb, 0.0f, NULL, c2, nj);
                assert_memory_equal(c1, c2, m * nj * sizeof *c1);
            }
            /* The kernel changed since packing: b itself, the same bits. */
            glora_bgemm_set_kernel("ref");
            glora_sgemm_packed(GLORA_NOTRANS, m, 0, n, 1.0f, a, k, &pb, 0.0f, bias, c2, n);
            glora_bgemm_set_kernel("auto");
            glora_bgemm_bias(GLORA_NOTRANS, (glora_trans_t)tb, m, n, k, 1.0f, a, k, b,
                             tb ? k : n, 0.0f, bias, c1, n);
            assert_memory_equal(c1, c2, m * n * sizeof *c1);
            free(a); free(b); free(bias); free(c1); free(c2);
        }
    glora_sgemm_b_free(&pb);
}

/* A non-idempotent elementwise epilogue: applied twice or skipped, it shows. */
static void ep_affine(float *out, const float *in, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = 3.0f * in[i] + 1.0f;
}

/* glora_sgemm_packed_ep, fp32 and bf16: its epilogue runs exactly once on
 * every element, whatever the tiles, column chunks (n > nc), k blocks,
 * threads and column offset, the same bits as the product followed by the
 * epilogue; the bf16 one within the double-precision bound of the
 * bf16-rounded operands (3 times the product's, plus one rounding). Then
 * glora_gemm_b_panels_only: true on the panels of the kernel in use at a
 * panel boundary, where a product with b let go (NULL) gives the same
 * bits; false off a boundary and once a kernel without panels is chosen. */
static void test_packed_epilogue(void **state) {
    (void)state;
    static const size_t shapes[][3] = {{300, 600, 900}, {17, 97, 33}, {40, 1000, 1601}};
    glora_rng_t rng;
    glora_rng_seed(&rng, 37);
    glora_sgemm_b_t pb = {0};
    for (int prec = 0; prec < 2; prec++)
        for (size_t s = 0; s < 3; s++) {
            size_t m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
            float *a = random_matrix(&rng, m * k), *b = random_matrix(&rng, k * n);
            float *bias = random_matrix(&rng, n);
            float *c1 = malloc(m * n * sizeof *c1), *c2 = malloc(m * n * sizeof *c2);
            assert_true(c1 && c2);
            const glora_precision_t p = prec ? GLORA_BF16 : GLORA_FP32;
            assert_int_equal(glora_gemm_b_pack(&pb, p, GLORA_TRANS, k, n, b, k), GLORA_OK);
            glora_sgemm_packed(GLORA_NOTRANS, m, 0, n, 1.0f, a, k, &pb, 0.0f, bias, c1, n);
            for (size_t i = 0; i < m; i++) ep_affine(c1 + i * n, c1 + i * n, n);
            for (int t = 1; t <= 3; t++) {
                glora_set_threads(t);
                for (size_t i = 0; i < m * n; i++) c2[i] = NAN;
                glora_sgemm_packed_ep(GLORA_NOTRANS, m, 0, n, 1.0f, a, k, &pb, 0.0f, bias, ep_affine,
                                      c2, n);
                assert_memory_equal(c1, c2, m * n * sizeof *c1);
            }
            glora_set_threads(2);
            if (prec) { /* against double on the rounded operands */
                for (size_t i = 0; i < m; i += 7)
                    for (size_t j = 0; j < n; j += 5) {
                        double sum = 0, mag = 0;
                        for (size_t q = 0; q < k; q++) {
                            double v = (double)glora_bf16_round(a[i * k + q]) *
                                       glora_bf16_round(b[j * k + q]);
                            sum += v;
                            mag += fabs(v);
                        }
                        double want = 3.0 * (sum + bias[j]) + 1.0;
                        double tol = 3.0 * (double)(k + k / 768 + 6) * FLT_EPSILON * (mag + fabs(bias[j])) +
                                     FLT_EPSILON * fabs(want) + 1e-30;
                        if (!(fabs(c2[i * n + j] - want) <= tol))
                            fail_msg("bf16 epilogue m=%zu n=%zu k=%zu: C(%zu,%zu) = %.9g, want %.9g",
                                     m, n, k, i, j, c2[i * n + j], want);
                    }
            }
            /* Columns from 32 on (a panel boundary), b let go. */
            if (glora_gemm_b_panels_only(&pb, 0)) {
                assert_true(glora_gemm_b_panels_only(&pb, 32));
                assert_false(glora_gemm_b_panels_only(&pb, 5));
                pb.b = NULL;
                size_t nj = n - 32;
                float *c3 = malloc(m * nj * sizeof *c3);
                assert_non_null(c3);
                glora_sgemm_packed_ep(GLORA_NOTRANS, m, 32, nj, 1.0f, a, k, &pb, 0.0f, bias + 32,
                                      ep_affine, c3, nj);
                for (size_t i = 0; i < m; i++)
                    assert_memory_equal(c3 + i * nj, c1 + i * n + 32, nj * sizeof *c3);
                free(c3);
                pb.b = b;
            }
            /* A kernel without panels: b itself, the epilogue after. */
            if (prec) glora_bgemm_set_kernel("ref");
            else assert_int_equal(glora_gemm_set_kernel("ref"), GLORA_OK);
            assert_false(glora_gemm_b_panels_only(&pb, 0));
            glora_sgemm_packed_ep(GLORA_NOTRANS, m, 0, n, 1.0f, a, k, &pb, 0.0f, bias, ep_affine, c2, n);
            glora_bgemm_set_kernel("auto");
            glora_gemm_set_kernel("auto");
            if (prec) assert_memory_equal(c1, c2, m * n * sizeof *c1); /* ref: the same bits */
            free(a); free(b); free(bias); free(c1); free(c2);
        }
    glora_sgemm_b_free(&pb);
}

/* The AVX-512 packers (pack_avx512_bf16.c) write the portable packers'
 * words exactly, for every form of op(A) and op(B): odd k (the missing
 * partner), k ranges starting off zero and odd, partial panels (1-31
 * columns, 1-11 rows), leading dimensions past the width, and values
 * that round up, tie, overflow to infinity, are denormal, zero, infinite
 * or NaN. The destination starts as garbage, so padding must be written. */
static void test_packers(void **state) {
    (void)state;
    if (glora_bgemm_set_kernel("avx512_bf16") != GLORA_OK) {
        glora_error_clear();
        skip();
    }
    glora_bgemm_set_kernel("auto");
    static const float special[] = {0.0f, -0.0f, 0x1p-130f, -0x1p-140f, FLT_MAX, -FLT_MAX,
                                    INFINITY, -INFINITY, 1.0f + 0x1p-8f, 1.0f + 3 * 0x1p-8f,
                                    0x1p-126f, 65504.0f};
    static const size_t widths[] = {1, 5, 11, 12, 13, 16, 17, 24, 31, 32, 33, 45, 64, 97};
    static const size_t depths[] = {1, 2, 3, 4, 7, 31, 32, 33, 64, 65};
    glora_rng_t rng;
    glora_rng_seed(&rng, 41);
    for (int t = 0; t < 400; t++) {
        glora_trans_t tr = (glora_trans_t)(t & 1);
        size_t w = widths[glora_rng_below(&rng, 14)], k = depths[glora_rng_below(&rng, 10)];
        size_t k0 = t % 3 == 0 ? glora_rng_below(&rng, 4) : 0, k1 = k0 + k;
        /* The stored matrix: k1 x w when its rows are k steps (op(A)^T,
         * op(B) = B), else w x k1; ld up to 2 past its width. */
        int is_b = (t & 2) != 0, kmajor = is_b ? !tr : tr;
        size_t rows = kmajor ? k1 : w, ld = (kmajor ? w : k1) + glora_rng_below(&rng, 3);
        float *src = random_matrix(&rng, rows * ld);
        for (size_t i = 0; i < rows * ld; i++)
            if (glora_rng_below(&rng, 6) == 0)
                src[i] = special[glora_rng_below(&rng, sizeof special / sizeof special[0])];
            else if (glora_rng_below(&rng, 50) == 0)
                src[i] = bits_float(0x7f800001u + (uint32_t)glora_rng_below(&rng, 1000)); /* NaN */
        size_t words = (w + 32) * ((k1 + 1) / 2 + 1); /* past either tile's panels */
        uint32_t *d1 = malloc(words * sizeof *d1), *d2 = malloc(words * sizeof *d2);
        assert_true(d1 && d2);
        for (size_t i = 0; i < words; i++) d1[i] = d2[i] = 0xdeadbeefu;
        const char *what;
        if (is_b) { /* op(B), k from 0: w columns in panels of 32 */
            what = "B";
            k0 = 0;
            bgemm_pack_b_portable(tr, k1, w, src, ld, 32, d1);
            bgemm_avx512_pack_b(tr, k1, w, src, ld, 32, d2);
        } else {     /* op(A), k steps [k0, k1): w rows in panels of 12 */
            what = "A";
            bgemm_pack_a_portable(tr, w, k0, k1, src, ld, 12, d1);
            bgemm_avx512_pack_a(tr, w, k0, k1, src, ld, 12, d2);
        }
        for (size_t i = 0; i < words; i++)
            if (d1[i] != d2[i])
                fail_msg("pack %s%s w=%zu k=[%zu,%zu) ld=%zu: word %zu is %08x, portable %08x",
                         what, tr ? "^T" : "", w, k0, k1, ld, i, d2[i], d1[i]);
        free(src); free(d1); free(d2);
    }
}

static void test_names(void **state) {
    (void)state;
    assert_int_equal(glora_bgemm_set_kernel("bogus"), GLORA_EINVAL);
    assert_non_null(strstr(glora_errmsg(), "'bogus'"));
    glora_error_clear();
    assert_int_equal(glora_bgemm_set_kernel("emulated"), GLORA_OK);
    assert_string_equal(glora_bgemm_ukernel(), "bgemm_emulated_12x32");
    assert_true(glora_bgemm_emulated());
    assert_int_equal(glora_bgemm_set_kernel("auto"), GLORA_OK);
    glora_precision_t p;
    assert_int_equal(glora_precision_parse("bf16", "x", &p), GLORA_OK);
    assert_int_equal(p, GLORA_BF16);
    assert_int_equal(glora_precision_parse("fp16", "cfg.yaml: search.precision", &p),
                     GLORA_EINVAL);
    assert_non_null(strstr(glora_errmsg(), "search.precision"));
    glora_error_clear();
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_round),
        cmocka_unit_test(test_against_double),
        cmocka_unit_test(test_emulation_bits),
        cmocka_unit_test(test_threads_bit_identical),
        cmocka_unit_test(test_packed),
        cmocka_unit_test(test_packed_epilogue),
        cmocka_unit_test(test_packers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
