/* The attention forward of the search's inference pass, fp32 against bf16:
 * thread CPU time of glora_attention_forward and glora_attention_forward_bf16
 * on B images of T tokens (C channels, NH heads) on the calling thread
 * alone (the search runs one candidate per thread), the two taking turns
 * round after round, each keeping its fastest round, so that load on a
 * shared machine falls on both. Prints GFLOP/s over the two products
 * (4 T^2 C per image). Not built by make; from a build directory:
 *   cc -O2 -I../include -I../src ../bench/attention_bf16.c .libs/libglora.a \
 *      -fopenmp -lopenblas -lcjson -lyaml -lz -lm -o attention_bf16
 *   OMP_NUM_THREADS=1 ./attention_bf16 [B T C NH ROUNDS]   (default 8 197 768 12 10) */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "glora/nn.h"
#include "util/rng.h"

static double thread_cpu(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(int argc, char **argv) {
    const size_t B = argc > 1 ? strtoul(argv[1], NULL, 10) : 8;
    const int T = argc > 2 ? atoi(argv[2]) : 197, C = argc > 3 ? atoi(argv[3]) : 768,
              NH = argc > 4 ? atoi(argv[4]) : 12, rounds = argc > 5 ? atoi(argv[5]) : 10;
    if (B < 1 || T < 1 || NH < 1 || C % NH || rounds < 1) {
        fprintf(stderr, "usage: attention_bf16 [B T C NH ROUNDS]\n");
        return 2;
    }
    const size_t nq = B * T * 3 * (size_t)C, no = B * T * (size_t)C, na = B * NH * (size_t)T * T;
    float *qkv = malloc(nq * sizeof *qkv), *out = malloc(no * sizeof *out), *att = malloc(na * sizeof *att);
    if (!qkv || !out || !att) return 1;
    glora_rng_t rng;
    glora_rng_seed(&rng, 1);
    for (size_t i = 0; i < nq; i++) qkv[i] = glora_rng_uniform_f(&rng, -2.0f, 2.0f);
    double best[2] = {1e30, 1e30};
    for (int r = 0; r < rounds; r++)
        for (int v = 0; v < 2; v++) {
            const double t0 = thread_cpu();
            if (v) glora_attention_forward_bf16(out, att, qkv, B, T, C, NH);
            else glora_attention_forward(out, att, qkv, B, T, C, NH);
            const double t = thread_cpu() - t0;
            if (t < best[v]) best[v] = t;
        }
    const double flop = 4.0 * (double)T * T * C * (double)B;
    printf("attention B %zu T %d C %d NH %d: fp32 %.2f ms (%.1f GFLOP/s), bf16 %.2f ms (%.1f GFLOP/s), "
           "bf16/fp32 time %.3f\n", B, T, C, NH, 1e3 * best[0], flop / best[0] * 1e-9, 1e3 * best[1],
           flop / best[1] * 1e-9, best[1] / best[0]);
    free(qkv); free(out); free(att);
    return 0;
}
