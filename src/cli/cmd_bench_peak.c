/* glora bench peak: this machine's fp32 and bf16 multiply-add peaks
 * (glora_gemm_peak), the limits the other benchmarks' figures are put
 * against. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "glora/common.h"
#include "glora/gemm.h"
#include "util/parallel.h"

int glora_cmd_bench_peak(int argc, char **argv) {
    int threads = 2, json = 0;
    double seconds = 1.0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: glora bench peak [--threads N] [--seconds S] [--json]\n\n"
                   "Measures this machine's multiply-add peak: independent chains of 512-bit\n"
                   "VFMADD231PS (fp32, 32 FLOP each) and VDPBF16PS (bf16, 64 FLOP each) in\n"
                   "registers on N threads for S seconds each. The bench search and train\n"
                   "figures are put against these numbers (docs/PERFORMANCE.md).\n\n"
                   "  --threads N   threads (default 2)\n"
                   "  --seconds S   time per precision (default 1)\n"
                   "  --json        one JSON line\n");
            return 0;
        } else if (!strcmp(argv[i], "--json")) {
            json = 1;
        } else if ((!strcmp(argv[i], "--threads") || !strcmp(argv[i], "--seconds")) && i + 1 < argc) {
            char *end;
            errno = 0;
            double v = strtod(argv[++i], &end);
            if (errno || *end || !(v > 0) || v > 1024) {
                fprintf(stderr, "glora: error: bad value '%s'\nhint: see 'glora bench peak --help'\n",
                        argv[i]);
                return 2;
            }
            if (!strcmp(argv[i - 1], "--threads")) threads = (int)v;
            else seconds = v;
        } else {
            fprintf(stderr, "glora: error: unknown or incomplete option '%s'\n"
                            "hint: see 'glora bench peak --help'\n", argv[i]);
            return 2;
        }
    }
    glora_set_threads(threads);
    double fp32 = 0, bf16 = 0;
    int rc32 = glora_gemm_peak(GLORA_FP32, seconds, &fp32);
    if (rc32) fprintf(stderr, "glora: warning: %s\n", glora_errmsg());
    int rc16 = glora_gemm_peak(GLORA_BF16, seconds, &bf16);
    if (rc16) fprintf(stderr, "glora: warning: %s\n", glora_errmsg());
    if (json)
        printf("{\"bench\": \"peak\", \"threads\": %d, \"fp32_gflop_per_s\": %.1f, "
               "\"bf16_gflop_per_s\": %.1f}\n", threads, fp32, bf16);
    else
        printf("glora bench peak: %d threads\n  fp32 (512-bit FMA)  %8.1f GFLOP/s\n"
               "  bf16 (VDPBF16PS)    %8.1f GFLOP/s\n", threads, fp32, bf16);
    return rc32 && rc16 ? 1 : 0;
}
