/* Cache blocks (mc, nc) of the bf16 GEMM at one shape: thread CPU time of
 * the loop nest (bgemm_blocked, gemm-impl.h) with op(B) packed once, as
 * the search's merged weights are, on the calling thread alone (the
 * search runs one candidate per thread), for each "mc,nc" given; the
 * configurations take turns, round after round, and each keeps its
 * fastest round, so that load on a shared machine falls on all of them.
 * The k block depth (BGEMM_KC_PAIRS) is not a setting here: it is part of
 * the bf16 result's definition. Not built by make; from a build directory:
 *   cc -O2 -I../include -Iinclude -I. -I../src -I../src/gemm ../bench/bgemm_blocks.c \
 *      .libs/libglora.a -fopenmp -lopenblas -lcjson -lyaml -lz -lm -o bgemm_blocks
 *   OMP_NUM_THREADS=1 ./bgemm_blocks M N K ROUNDS MC,NC [MC,NC ...]
 * e.g. the search's fc2 at 8 images: ./bgemm_blocks 1576 768 3072 8 240,256 480,256 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "gemm-impl.h"
#include "util/rng.h"

static double thread_cpu(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc < 6) {
        fprintf(stderr, "usage: bgemm_blocks M N K ROUNDS MC,NC [MC,NC ...]\n");
        return 2;
    }
    const size_t M = strtoul(argv[1], NULL, 10), N = strtoul(argv[2], NULL, 10),
                 K = strtoul(argv[3], NULL, 10);
    const int rounds = atoi(argv[4]), nconf = argc - 5;
    const bgemm_kernel_t *base = bgemm_current();
    if (!M || !N || !K || rounds < 1 || nconf > 64 || !base) {
        fprintf(stderr, "bgemm_blocks: bad arguments, or no bf16 kernel with blocks\n");
        return 2;
    }
    float *a = malloc(M * K * sizeof *a), *b = malloc(N * K * sizeof *b), *c = malloc(M * N * sizeof *c);
    size_t words = bgemm_packed_b_words(base, K, N);
    uint32_t *bp = aligned_alloc(64, (words * sizeof *bp + 63) & ~(size_t)63);
    if (!a || !b || !c || !bp) return 1;
    glora_rng_t rng;
    glora_rng_seed(&rng, 1);
    for (size_t i = 0; i < M * K; i++) a[i] = (float)glora_rng_uniform(&rng) - 0.5f;
    for (size_t i = 0; i < N * K; i++) b[i] = (float)glora_rng_uniform(&rng) - 0.5f;
    /* W (N x K) as op(B) = W^T, packed whole as glora_gemm_b_pack does */
    const size_t kp = (K + 1) / 2;
    for (size_t j0 = 0; j0 < N; j0 += base->nr)
        base->pack_b(GLORA_TRANS, K, N - j0 < base->nr ? N - j0 : base->nr, b + j0 * K, K, base->nr,
                     bp + j0 * kp);
    bgemm_kernel_t kern[64];
    double best[64];
    for (int i = 0; i < nconf; i++) {
        unsigned mc = 0, nc = 0;
        kern[i] = *base;
        if (sscanf(argv[5 + i], "%u,%u", &mc, &nc) != 2 || mc % base->mr || nc % base->nr || !mc || !nc) {
            fprintf(stderr, "bgemm_blocks: '%s': want MC,NC, multiples of %zu and %zu\n", argv[5 + i],
                    base->mr, base->nr);
            return 2;
        }
        kern[i].mc = mc;
        kern[i].nc = nc;
        best[i] = 1e30;
    }
    for (int r = 0; r < rounds; r++)
        for (int i = 0; i < nconf; i++) {
            double t0 = thread_cpu();
            for (int q = 0; q < 3; q++)
                if (bgemm_blocked(&kern[i], GLORA_NOTRANS, GLORA_NOTRANS, M, N, K, 1.0f, a, K, NULL, 0,
                                  bp, 0.0f, NULL, NULL, c, N))
                    return 1;
            double t = (thread_cpu() - t0) / 3;
            if (t < best[i]) best[i] = t;
        }
    printf("bf16 GEMM %zu x %zu x %zu, %s, fastest of %d rounds (thread CPU time):\n", M, N, K,
           base->ukernel_name, rounds);
    for (int i = 0; i < nconf; i++)
        printf("  mc %4zu nc %4zu: %8.3f ms  %6.1f GFLOP/s\n", kern[i].mc, kern[i].nc, best[i] * 1e3,
               2.0 * (double)M * (double)N * (double)K / best[i] * 1e-9);
    free(a), free(b), free(c), free(bp);
    return 0;
}
