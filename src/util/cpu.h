/* Whether the CPU runs the hand-written kernels' instruction sets, checked
 * at run time: AVX-512 (F, VL, BW, DQ) with FMA for src/gemm's and
 * src/nn's AVX-512 files, AVX2 with FMA for src/gemm's AVX2 kernel. The
 * callers must be compiled for the baseline ISA. */
#ifndef GLORA_UTIL_CPU_H
#define GLORA_UTIL_CPU_H

static inline int util_cpu_avx512(void) {
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

static inline int util_cpu_avx2(void) {
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

#endif
