/* glora_gemm_peak: this machine's multiply-add throughput, measured, for
 * the benchmarks' "physical limit" lines: chains of independent 512-bit
 * VFMADD231PS (fp32: 32 FLOP each) or VDPBF16PS (bf16: 64 FLOP each, two
 * products per lane) on every thread, registers only. */
#pragma GCC target("avx512f,avx512vl,avx512bw,avx512dq,avx512bf16,fma")
#include <immintrin.h>

#include "gemm-impl.h"

#include "glora/common.h"
#include "util/parallel.h"
#include "util/cpu.h"

static volatile float peak_sink;

#define CHAINS 16
#define STEPS 4096

/* One thread's share: STEPS x CHAINS instructions per round, until the
 * time is up; returns the instructions executed. A sink keeps the
 * results alive. */
static double run_fp32(double seconds, float *sink) {
    __m512 acc[CHAINS];
    const __m512 x = _mm512_set1_ps(0.999f), y = _mm512_set1_ps(1e-3f);
    for (int i = 0; i < CHAINS; i++) acc[i] = _mm512_set1_ps((float)i);
    double t0 = glora_now(), n = 0;
    do {
        for (int s = 0; s < STEPS; s++) {
            #pragma GCC unroll 16
            for (int i = 0; i < CHAINS; i++) acc[i] = _mm512_fmadd_ps(acc[i], x, y);
        }
        n += (double)STEPS * CHAINS;
    } while (glora_now() - t0 < seconds);
    __m512 t = acc[0];
    for (int i = 1; i < CHAINS; i++) t = _mm512_add_ps(t, acc[i]);
    *sink = _mm512_reduce_add_ps(t);
    return n;
}

static double run_bf16(double seconds, float *sink) {
    __m512 acc[CHAINS];
    const __m512bh x = (__m512bh)_mm512_set1_epi32(0x3f803f80), y = (__m512bh)_mm512_set1_epi32(0x3a803a80);
    for (int i = 0; i < CHAINS; i++) acc[i] = _mm512_set1_ps((float)i);
    double t0 = glora_now(), n = 0;
    do {
        for (int s = 0; s < STEPS; s++) {
            #pragma GCC unroll 16
            for (int i = 0; i < CHAINS; i++) acc[i] = _mm512_dpbf16_ps(acc[i], x, y);
        }
        n += (double)STEPS * CHAINS;
    } while (glora_now() - t0 < seconds);
    __m512 t = acc[0];
    for (int i = 1; i < CHAINS; i++) t = _mm512_add_ps(t, acc[i]);
    *sink = _mm512_reduce_add_ps(t);
    return n;
}

int glora_gemm_peak(glora_precision_t prec, double seconds, double *gflops) {
    *gflops = 0;
    if (prec == GLORA_BF16 ? glora_bgemm_emulated() : !util_cpu_avx512())
        return glora_error(GLORA_EINVAL, "peak '%s': needs %s", glora_precision_name(prec),
                           prec == GLORA_BF16 ? "AVX512_BF16" : "AVX-512");
    const int threads = glora_max_threads();
    double total = 0, t0 = glora_now();
    #pragma omp parallel num_threads(threads) reduction(+ : total)
    {
        float s = 0;
        total += prec == GLORA_BF16 ? run_bf16(seconds, &s) : run_fp32(seconds, &s);
        peak_sink = s;
    }
    double dt = glora_now() - t0;
    *gflops = total * (prec == GLORA_BF16 ? 64.0 : 32.0) / dt * 1e-9;
    return GLORA_OK;
}
