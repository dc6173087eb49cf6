/* The bf16 micro-kernel on its own, against the peak on the same thread:
 * thread CPU time of bgemm_avx512bf16_12x32 (gemm-impl.h) sweeping one
 * packed A micro-panel (12 rows x KCP pairs, in L1) across PANELS packed B
 * micro-panels (KCP pairs x 32 columns each; 8 panels of 384 pairs are the
 * loop nest's B block, 384 KiB, in L2), C 12 x 32*PANELS written with beta
 * 0, as the loop nest's inner two loops run it; and, in turns with it,
 * glora_gemm_peak's own loop (independent VDPBF16PS chains in registers) with
 * 16 chains (what `glora bench peak` runs) and with 24 (as many as the
 * tile's accumulators). Each keeps its fastest of ROUNDS rounds, so load on
 * a shared machine falls on all of them. Not built by make; from a build
 * directory:
 *   cc -O2 -I../include -Iinclude -I. -I../src -I../src/gemm ../bench/bgemm_ukernel.c \
 *      .libs/libglora.a -fopenmp -lopenblas -lcjson -lyaml -lz -lm -o bgemm_ukernel
 *   ./bgemm_ukernel [KCP [PANELS [ROUNDS]]]      (default 384 8 20) */
#pragma GCC target("avx512f,avx512vl,avx512bw,avx512dq,avx512bf16,fma")
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "gemm-impl.h"
#include "glora/common.h"

static double thread_cpu(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

#define PEAK(CH)                                                                                \
    static double peak##CH(double sec) {                                                         \
        __m512 acc[CH];                                                                          \
        const __m512bh x = (__m512bh)_mm512_set1_epi32(0x3f803f80),                              \
                       y = (__m512bh)_mm512_set1_epi32(0x3a803a80);                              \
        for (int i = 0; i < CH; i++) acc[i] = _mm512_set1_ps((float)i);                         \
        double t0 = thread_cpu(), n = 0;                                                         \
        do {                                                                                     \
            for (int s = 0; s < 4096; s++) {                                                     \
                _Pragma("GCC unroll 32") for (int i = 0; i < CH; i++) acc[i] =                   \
                    _mm512_dpbf16_ps(acc[i], x, y);                                              \
            }                                                                                    \
            n += 4096.0 * CH;                                                                    \
        } while (thread_cpu() - t0 < sec);                                                       \
        __m512 t = acc[0];                                                                       \
        for (int i = 1; i < CH; i++) t = _mm512_add_ps(t, acc[i]);                               \
        volatile float sink = _mm512_reduce_add_ps(t);                                           \
        (void)sink;                                                                              \
        return n * 64.0 / (thread_cpu() - t0) * 1e-9;                                           \
    }
PEAK(16)
PEAK(24)

int main(int argc, char **argv) {
    const size_t kcp = argc > 1 ? strtoul(argv[1], NULL, 10) : 384;
    const size_t panels = argc > 2 ? strtoul(argv[2], NULL, 10) : 8;
    const int rounds = argc > 3 ? atoi(argv[3]) : 20;
    if (!kcp || !panels || rounds < 1 || glora_bgemm_set_kernel("avx512_bf16") != GLORA_OK) {
        fprintf(stderr, "bgemm_ukernel: bad arguments, or no AVX512_BF16\n");
        return 2;
    }
    uint32_t *ap = aligned_alloc(64, 12 * kcp * 4), *bp = aligned_alloc(64, panels * kcp * 32 * 4);
    float *c = aligned_alloc(64, 12 * panels * 32 * 4);
    if (!ap || !bp || !c) return 1;
    /* bf16 values near 1 and 1/128: no overflow, no denormals */
    for (size_t i = 0; i < 12 * kcp; i++) ap[i] = 0x3f803f80u ^ (uint32_t)(i & 0x7f);
    for (size_t i = 0; i < panels * kcp * 32; i++) bp[i] = 0x3c003c00u ^ (uint32_t)(i & 0xff);
    double best_k = 0, best16 = 0, best24 = 0;
    for (int r = 0; r < rounds; r++) {
        double p = peak16(0.05);
        if (p > best16) best16 = p;
        p = peak24(0.05);
        if (p > best24) best24 = p;
        double t0 = thread_cpu(), t;
        long calls = 0;
        do {
            for (int q = 0; q < 20; q++)
                for (size_t j = 0; j < panels; j++)
                    bgemm_avx512bf16_12x32(kcp, ap, bp + j * kcp * 32, c + j * 32, panels * 32, 12,
                                           32, 1.0f, 0.0f, NULL);
            calls += 20 * (long)panels;
        } while ((t = thread_cpu() - t0) < 0.05);
        double g = 2.0 * 12 * 32 * 2 * (double)kcp * (double)calls / t * 1e-9;
        if (g > best_k) best_k = g;
    }
    printf("bf16 micro-kernel, 1 thread, A 12 x %zu pairs, B %zu panels (%zu KiB), fastest of %d "
           "rounds (thread CPU time):\n", kcp, panels, panels * kcp * 32 * 4 / 1024, rounds);
    printf("  micro-kernel          %7.1f GFLOP/s\n", best_k);
    printf("  peak loop, 16 chains  %7.1f GFLOP/s (glora bench peak's); kernel = %.1f%% of it\n",
           best16, 100 * best_k / best16);
    printf("  peak loop, 24 chains  %7.1f GFLOP/s; kernel = %.1f%% of it\n", best24,
           100 * best_k / best24);
    free(ap);
    free(bp);
    free(c);
    return 0;
}
