/* Unit tests of src/gemm: every kernel this CPU and build run, against a
 * double-precision naive product on odd shapes, every transposition, padded
 * strides and alpha/beta cases; BLAS semantics of beta == 0 and alpha == 0;
 * and bit-identical results for 1, 2 and 3 threads and inside an enclosing
 * parallel region. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "glora/common.h"
#include "glora/gemm.h"
#include "util/parallel.h"
#include "util/rng.h"

static const char *const all_kernels[] = {"avx512", "avx2", "portable", "ref", "cblas"};
#define NKERNELS (sizeof all_kernels / sizeof all_kernels[0])

static float *random_matrix(glora_rng_t *rng, size_t count) {
    float *x = malloc((count ? count : 1) * sizeof *x);
    assert_non_null(x);
    for (size_t i = 0; i < count; i++) x[i] = (float)(2.0 * glora_rng_uniform(rng) - 1.0);
    return x;
}

static size_t pick(glora_rng_t *rng, const size_t *sizes, size_t count) {
    return sizes[glora_rng_below(rng, (uint32_t)count)];
}

/* One product checked element by element against double precision. The
 * bound is the classic one for a length-k dot product in float, with room
 * for the alpha and beta roundings: (k + 4) * 2u * (|alpha| sum|a||b| + |beta c|).
 * Elements of C between n and ldc must come back untouched. */
static void check_product(glora_rng_t *rng, const char *kernel, glora_trans_t ta,
                          glora_trans_t tb, size_t m, size_t n, size_t k, float alpha,
                          float beta) {
    size_t lda = (ta ? m : k) + glora_rng_below(rng, 4);
    size_t ldb = (tb ? k : n) + glora_rng_below(rng, 4);
    size_t ldc = n + glora_rng_below(rng, 4);
    float *a = random_matrix(rng, (ta ? k : m) * lda);
    float *b = random_matrix(rng, (tb ? n : k) * ldb);
    float *c = random_matrix(rng, m * ldc);
    float *c0 = malloc(m * ldc * sizeof *c0);
    assert_non_null(c0);
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < ldc; j++) {
            if (j >= n) c[i * ldc + j] = 1234.5f; /* padding sentinel */
            else if (beta == 0.0f) c[i * ldc + j] = NAN;
        }
    memcpy(c0, c, m * ldc * sizeof *c0);

    glora_sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);

    for (size_t i = 0; i < m; i++) {
        for (size_t j = 0; j < ldc; j++) {
            float got = c[i * ldc + j];
            if (j >= n) {
                if (got != 1234.5f) fail_msg("%s: padding of C at (%zu,%zu) overwritten", kernel, i, j);
                continue;
            }
            double sum = 0.0, mag = 0.0;
            for (size_t p = 0; p < k; p++) {
                double av = ta ? a[p * lda + i] : a[i * lda + p];
                double bv = tb ? b[j * ldb + p] : b[p * ldb + j];
                sum += av * bv;
                mag += fabs(av * bv);
            }
            double want = alpha * sum, bound = fabs((double)alpha) * mag;
            if (beta != 0.0f) {
                want += (double)beta * c0[i * ldc + j];
                bound += fabs((double)beta * c0[i * ldc + j]);
            }
            double tol = (double)(k + 4) * 2.0 * FLT_EPSILON * bound + 1e-30;
            if (!(fabs(got - want) <= tol))
                fail_msg("%s: %c%c m=%zu n=%zu k=%zu alpha=%g beta=%g: C(%zu,%zu) = %.9g, "
                         "want %.9g (tol %.3g)",
                         kernel, ta ? 'T' : 'N', tb ? 'T' : 'N', m, n, k, alpha, beta, i, j,
                         got, want, tol);
        }
    }
    free(a);
    free(b);
    free(c);
    free(c0);
}

static void test_env_applied_at_first_use(void **state) {
    (void)state;
    /* Runs first: nothing has touched the GEMM yet in this process. */
    setenv("GLORA_GEMM", "portable", 1);
    assert_int_equal(glora_gemm_check_env(), GLORA_OK);
    assert_string_equal(glora_gemm_kernel(), "portable");
    unsetenv("GLORA_GEMM");
    assert_int_equal(glora_gemm_set_kernel("auto"), GLORA_OK);
}

static void test_kernel_names(void **state) {
    (void)state;
    assert_int_equal(glora_gemm_set_kernel("bogus"), GLORA_EINVAL);
    assert_non_null(strstr(glora_errmsg(), "'bogus'"));
    assert_int_equal(glora_gemm_set_kernel("auto"), GLORA_OK);
    const char *best = glora_gemm_kernel();
    assert_string_not_equal(best, "cblas");
    assert_string_not_equal(best, "ref");
    /* "auto" is the first native kernel the CPU runs. */
    for (size_t i = 0; i < 3; i++) {
        if (glora_gemm_set_kernel(all_kernels[i]) == GLORA_OK) {
            assert_string_equal(best, all_kernels[i]);
            break;
        }
    }
    assert_int_equal(glora_gemm_set_kernel("portable"), GLORA_OK);
    assert_string_equal(glora_gemm_ukernel(), "sgemm_portable_6x8");
    assert_int_equal(glora_gemm_set_kernel("auto"), GLORA_OK);
}

static void test_against_double(void **state) {
    (void)state;
    /* 1, primes, and sizes around the tiles (6, 8, 12, 16, 32) and the
     * cache blocks (kc 256/384, mc 120..240). */
    static const size_t small[] = {1, 2, 3, 5, 7, 11, 12, 13, 16, 17, 31, 33, 37, 47, 64, 97};
    static const size_t large[] = {121, 127, 241, 257, 389, 500, 769};
    static const float alphas[] = {1.0f, -0.5f, 2.25f};
    static const float betas[] = {0.0f, 1.0f, -1.5f};
    glora_set_threads(2);
    int ran = 0;
    for (size_t kk = 0; kk < NKERNELS; kk++) {
        if (glora_gemm_set_kernel(all_kernels[kk]) != GLORA_OK) {
            printf("# skipping GEMM kernel %s: %s\n", all_kernels[kk], glora_errmsg());
            continue;
        }
        ran++;
        glora_rng_t rng;
        glora_rng_seed(&rng, 1000 + kk);
        for (int trial = 0; trial < 48; trial++) {
            glora_trans_t ta = (glora_trans_t)(trial & 1), tb = (glora_trans_t)((trial >> 1) & 1);
            /* Mostly small shapes; every fourth case has one large dimension
             * (deep k crosses k blocks; long m or n crosses tiles). */
            size_t m = pick(&rng, small, 16), n = pick(&rng, small, 16), k = pick(&rng, small, 16);
            if (trial % 4 == 3) {
                size_t big = pick(&rng, large, 7);
                switch ((trial / 4) % 3) {
                case 0: k = big; break;
                case 1: m = big; break;
                default: n = big; break;
                }
            }
            check_product(&rng, all_kernels[kk], ta, tb, m, n, k, alphas[trial % 3],
                          betas[(trial / 3) % 3]);
        }
        /* A product large enough for a team of threads, all four forms. */
        for (int t = 0; t < 4; t++)
            check_product(&rng, all_kernels[kk], (glora_trans_t)(t & 1),
                          (glora_trans_t)(t >> 1), 131, 301, 389, 1.0f, t == 0 ? 0.0f : 0.5f);
    }
    assert_true(ran >= 2); /* at least portable and ref */
    glora_gemm_set_kernel("auto");
}

/* alpha == 0 or k == 0: C = beta * C without reading A or B (BLAS). */
static void test_alpha_zero_and_empty(void **state) {
    (void)state;
    float a[6] = {NAN, NAN, NAN, NAN, NAN, NAN}, b[6] = {NAN, NAN, NAN, NAN, NAN, NAN};
    float c[4] = {1, 2, 3, 4};
    glora_sgemm(GLORA_NOTRANS, GLORA_NOTRANS, 2, 2, 3, 0.0f, a, 3, b, 2, 0.5f, c, 2);
    assert_true(c[0] == 0.5f && c[3] == 2.0f);
    c[0] = NAN;
    glora_sgemm(GLORA_NOTRANS, GLORA_NOTRANS, 2, 2, 0, 1.0f, a, 3, b, 2, 0.0f, c, 2);
    for (int i = 0; i < 4; i++) assert_true(c[i] == 0.0f);
    /* m == 0: nothing happens at all. */
    glora_sgemm(GLORA_NOTRANS, GLORA_NOTRANS, 0, 2, 3, 1.0f, a, 3, b, 2, 0.0f, NULL, 2);
}

/* Runs every form of one product with 1, 2 and 3 threads and, for the
 * last, inside a parallel region; all results must be the same bits. */
static void check_deterministic(const char *kernel, size_t m, size_t n, size_t k) {
    glora_rng_t rng;
    glora_rng_seed(&rng, 77);
    float *a = random_matrix(&rng, m * k), *b = random_matrix(&rng, k * n);
    float *c0 = random_matrix(&rng, m * n);
    float *want = malloc(m * n * sizeof *want), *got = malloc(m * n * sizeof *got);
    assert_non_null(want);
    assert_non_null(got);
    for (int form = 0; form < 4; form++) {
        glora_trans_t ta = (glora_trans_t)(form & 1), tb = (glora_trans_t)(form >> 1);
        size_t lda = ta ? m : k, ldb = tb ? k : n;
        for (int threads = 1; threads <= 3; threads++) {
            glora_set_threads(threads);
            float *out = threads == 1 ? want : got;
            memcpy(out, c0, m * n * sizeof *out);
            glora_sgemm(ta, tb, m, n, k, 0.75f, a, lda, b, ldb, 0.5f, out, n);
            if (threads > 1 && memcmp(want, got, m * n * sizeof *got) != 0)
                fail_msg("%s: %c%c %zux%zux%zu differs between 1 and %d threads", kernel,
                         ta ? 'T' : 'N', tb ? 'T' : 'N', m, n, k, threads);
        }
        /* Inside an enclosing region each caller computes alone. */
        float *outs[2] = {got, malloc(m * n * sizeof *got)};
        assert_non_null(outs[1]);
        glora_set_threads(2);
        #pragma omp parallel for num_threads(2)
        for (int t = 0; t < 2; t++) {
            memcpy(outs[t], c0, m * n * sizeof *got);
            glora_sgemm(ta, tb, m, n, k, 0.75f, a, lda, b, ldb, 0.5f, outs[t], n);
        }
        for (int t = 0; t < 2; t++)
            if (memcmp(want, outs[t], m * n * sizeof *got) != 0)
                fail_msg("%s: %c%c %zux%zux%zu differs inside a parallel region", kernel,
                         ta ? 'T' : 'N', tb ? 'T' : 'N', m, n, k);
        free(outs[1]);
    }
    free(a);
    free(b);
    free(c0);
    free(want);
    free(got);
}

static void test_threads_bit_identical(void **state) {
    (void)state;
    for (size_t kk = 0; kk < NKERNELS; kk++) {
        if (strcmp(all_kernels[kk], "cblas") == 0) continue; /* not ours to promise */
        if (glora_gemm_set_kernel(all_kernels[kk]) != GLORA_OK) continue;
        int native = strcmp(all_kernels[kk], "ref") != 0;
        /* Rows split across threads (two sizes), and columns split (few
         * rows, B read in place when not transposed); all with several k
         * blocks. */
        check_deterministic(all_kernels[kk], native ? 300 : 40, 650, native ? 800 : 300);
        if (native) check_deterministic(all_kernels[kk], 200, 300, 400);
        check_deterministic(all_kernels[kk], 20, native ? 1500 : 300, 600);
    }
    glora_set_threads(2);
    glora_gemm_set_kernel("auto");
}

/* The kept packing buffer can be dropped at any time; the next product
 * allocates again and gives the same bits. */
static void test_release_buffer(void **state) {
    (void)state;
    glora_rng_t rng;
    glora_rng_seed(&rng, 5);
    float *a = random_matrix(&rng, 50 * 70), *b = random_matrix(&rng, 70 * 40);
    float c1[50 * 40], c2[50 * 40];
    glora_sgemm(GLORA_NOTRANS, GLORA_NOTRANS, 50, 40, 70, 1.0f, a, 70, b, 40, 0.0f, c1, 40);
    glora_gemm_release();
    glora_gemm_release(); /* twice is fine */
    glora_sgemm(GLORA_NOTRANS, GLORA_NOTRANS, 50, 40, 70, 1.0f, a, 70, b, 40, 0.0f, c2, 40);
    assert_memory_equal(c1, c2, sizeof c1);
    glora_gemm_release();
    free(a);
    free(b);
}

/* A thin product (op(B) one micro-panel wide, A not transposed, deep k:
 * the LoRA terms' N x r products, whose A the loop nest reads in place)
 * gives the bits of the same columns of a wider product (several panels:
 * A packed), for every kernel, with beta 0 and 1, several k blocks, odd
 * rows, B of both forms. */
static void test_thin_bits(void **state) {
    (void)state;
    static const size_t shapes[][3] = {{37, 4, 3072}, {200, 1, 777}, {13, 32, 1601},
                                       {50, 17, 600}, {12, 8, 300}};
    glora_rng_t rng;
    glora_rng_seed(&rng, 13);
    for (size_t kk = 0; kk < NKERNELS; kk++) {
        /* cblas: not ours to promise; ref: no loop nest */
        if (strcmp(all_kernels[kk], "cblas") == 0 || strcmp(all_kernels[kk], "ref") == 0) continue;
        if (glora_gemm_set_kernel(all_kernels[kk]) != GLORA_OK) {
            glora_error_clear();
            continue;
        }
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            for (int t = 0; t < 4; t++) {
                glora_trans_t tb = (glora_trans_t)(t & 1);
                const float beta = t & 2 ? 1.0f : 0.0f, alpha = t == 3 ? -0.5f : 1.0f;
                size_t m = shapes[s][0], n = shapes[s][1], k = shapes[s][2], nw = n + 70;
                float *a = random_matrix(&rng, m * k), *b = random_matrix(&rng, k * nw);
                float *c0 = random_matrix(&rng, m * nw);
                float *cw = malloc(m * nw * sizeof *cw), *ct = malloc(m * n * sizeof *ct);
                assert_true(cw && ct);
                memcpy(cw, c0, m * nw * sizeof *cw);
                for (size_t i = 0; i < m; i++) memcpy(ct + i * n, c0 + i * nw, n * sizeof *ct);
                /* op(B) (k x nw): stored k x nw, or nw x k transposed; its
                 * first n columns are the thin product's B. */
                glora_sgemm(GLORA_NOTRANS, tb, m, nw, k, alpha, a, k, b, tb ? k : nw, beta, cw, nw);
                glora_sgemm(GLORA_NOTRANS, tb, m, n, k, alpha, a, k, b, tb ? k : nw, beta, ct, n);
                for (size_t i = 0; i < m; i++)
                    if (memcmp(ct + i * n, cw + i * nw, n * sizeof *ct) != 0)
                        fail_msg("%s: thin %zux%zux%zu (%d) row %zu differs from the wide product",
                                 all_kernels[kk], m, n, k, t, i);
                free(a); free(b); free(c0); free(cw); free(ct);
            }
    }
    glora_gemm_set_kernel("auto");
}

/* A right-hand side packed once gives the same bits as glora_sgemm, for
 * every kernel, both forms of A and B, batches of several sizes against one
 * packing, and after the kernel changed under it (it then reads B itself). */
static void test_packed_b(void **state) {
    (void)state;
    static const size_t shapes[][3] = {{17, 384, 128}, {544, 512, 128}, {37, 33, 700},
                                       {1, 5, 3}, {130, 97, 389}};
    glora_rng_t rng;
    glora_rng_seed(&rng, 11);
    glora_sgemm_b_t pb = {0};
    for (size_t kk = 0; kk < NKERNELS; kk++) {
        /* OpenBLAS's bits may depend on how the rows are split. */
        if (strcmp(all_kernels[kk], "cblas") == 0) continue;
        if (glora_gemm_set_kernel(all_kernels[kk]) != GLORA_OK) continue;
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            for (int t = 0; t < 4; t++) {
                glora_trans_t ta = (glora_trans_t)(t & 1), tb = (glora_trans_t)(t >> 1);
                size_t m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
                float *a = random_matrix(&rng, m * k), *b = random_matrix(&rng, k * n);
                float *c1 = random_matrix(&rng, m * n), *c2 = malloc(m * n * sizeof *c2);
                assert_non_null(c2);
                memcpy(c2, c1, m * n * sizeof *c2);
                assert_int_equal(glora_sgemm_b_pack(&pb, tb, k, n, b, tb ? k : n), GLORA_OK);
                /* Two batches of rows against the one packing. */
                size_t half = m / 2;
                glora_sgemm(ta, tb, m, n, k, 1.5f, a, ta ? m : k, b, tb ? k : n, 0.5f, c1, n);
                if (ta) {
                    glora_sgemm_packed(ta, m, 0, n, 1.5f, a, m, &pb, 0.5f, NULL, c2, n);
                } else {
                    glora_sgemm_packed(ta, half, 0, n, 1.5f, a, k, &pb, 0.5f, NULL, c2, n);
                    glora_sgemm_packed(ta, m - half, 0, n, 1.5f, a + half * k, k, &pb, 0.5f,
                                       NULL, c2 + half * n, n);
                }
                if (memcmp(c1, c2, m * n * sizeof *c1) != 0)
                    fail_msg("%s: packed %c%c %zux%zux%zu differs from glora_sgemm",
                             all_kernels[kk], ta ? 'T' : 'N', tb ? 'T' : 'N', m, n, k);
                /* Columns from the second panel on (or any, unpacked) with a
                 * bias: the product's bits, then the bias added. */
                size_t j0 = n > 32 ? 32 : n / 2, nj = n - j0;
                float *bias = random_matrix(&rng, n);
                const float *bj = tb ? b + j0 * k : b + j0;
                glora_sgemm(ta, tb, m, nj, k, 1.0f, a, ta ? m : k, bj, tb ? k : n, 0.0f, c1, nj);
                for (size_t i = 0; i < m; i++)
                    for (size_t j = 0; j < nj; j++) c1[i * nj + j] += bias[j];
                glora_sgemm_packed(ta, m, j0, nj, 1.0f, a, ta ? m : k, &pb, 0.0f, bias, c2, nj);
                if (nj && memcmp(c1, c2, m * nj * sizeof *c1) != 0)
                    fail_msg("%s: packed %c%c columns %zu.. with bias differ", all_kernels[kk],
                             ta ? 'T' : 'N', tb ? 'T' : 'N', j0);
                /* glora_sgemm_bias likewise, over the whole product. */
                float *bias_n = random_matrix(&rng, n);
                glora_sgemm(ta, tb, m, n, k, 1.0f, a, ta ? m : k, b, tb ? k : n, 0.0f, c1, n);
                for (size_t i = 0; i < m; i++)
                    for (size_t j = 0; j < n; j++) c1[i * n + j] += bias_n[j];
                glora_sgemm_bias(ta, tb, m, n, k, 1.0f, a, ta ? m : k, b, tb ? k : n, 0.0f,
                                 bias_n, c2, n);
                assert_memory_equal(c1, c2, m * n * sizeof *c1);
                free(bias_n);
                free(bias);
                /* Another kernel than the one packed for: the same bits as
                 * that kernel's own product. */
                glora_gemm_set_kernel("ref");
                glora_sgemm(ta, tb, m, n, k, 1.0f, a, ta ? m : k, b, tb ? k : n, 0.0f, c1, n);
                glora_sgemm_packed(ta, m, 0, n, 1.0f, a, ta ? m : k, &pb, 0.0f, NULL, c2, n);
                assert_memory_equal(c1, c2, m * n * sizeof *c1);
                glora_gemm_set_kernel(all_kernels[kk]);
                free(a); free(b); free(c1); free(c2);
            }
    }
    glora_sgemm_b_free(&pb);
    glora_sgemm_b_free(&pb); /* twice is fine */
    glora_sgemm_b_free(NULL);
    glora_gemm_set_kernel("auto");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_env_applied_at_first_use),
        cmocka_unit_test(test_kernel_names),
        cmocka_unit_test(test_alpha_zero_and_empty),
        cmocka_unit_test(test_against_double),
        cmocka_unit_test(test_threads_bit_identical),
        cmocka_unit_test(test_release_buffer),
        cmocka_unit_test(test_packed_b),
        cmocka_unit_test(test_thin_bits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
