/* glora bench peak: this machine's fp32 and bf16 multiply-add peaks
 * (glora_gemm_peak), the limits the other benchmarks' figures are put
 * against. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "glora/common.h"
#include "glora/gemm.h"
#include "util/parallel.h"

static const cli_flag_t flags[] = {
    {"--seconds", NULL, "S", "time per precision (default 1)"},
    {"--json", NULL, NULL, "one JSON line"},
};

static const cli_cmd_t cmd = {
    .name = "bench peak",
    .synopsis = "[--threads N] [--seconds S] [--json]",
    .summary = "Measures this machine's multiply-add peak: independent chains of 512-bit\n"
               "VFMADD231PS (fp32, 32 FLOP each) and VDPBF16PS (bf16, 64 FLOP each) in\n"
               "registers on N threads (default 2) for S seconds each. The bench search and\n"
               "train figures are put against these numbers (docs/PERFORMANCE.md).",
    .flags = flags,
    .n_flags = sizeof flags / sizeof flags[0],
    .threads_help = "threads (default 2)",
};

int glora_cmd_bench_peak(int argc, char **argv) {
    cli_args_t args;
    int rc = cli_parse(&cmd, argc, argv, &args);
    if (rc) return rc < 0 ? CLI_OK : rc;
    int threads = args.threads ? args.threads : 2, json = cli_switch(&cmd, &args, "--json");
    double seconds = 1.0;
    const char *s = cli_value(&cmd, &args, "--seconds");
    if (s) {
        char *end;
        errno = 0;
        seconds = strtod(s, &end);
        if (errno || end == s || *end || !(seconds > 0) || seconds > 1024)
            return cli_usage_error(cmd.name, "--seconds '%s': expected a number of seconds above 0, at most 1024", s);
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
