/* glora bench comm: the cost of glora's MPI communication on this job
 * (util/comm.h): the ordered gradient fold and the broadcast at several
 * sizes, the integer sum of a generation's counts and the status check, so
 * that docs/PERFORMANCE.md's cost model rests on measured latency and
 * bandwidth. Run under mpirun with 2 or more ranks. */
#include "cli/cli.h"
#include "cli/commands.h"

#include "glora/common.h"
#include "util/comm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const glora_config_key_t keys[] = {
    {"bench.repeat", GLORA_CFG_INT, "20", "calls timed per size (the median is reported)", 1, 10000, NULL},
    {"bench.max_mb", GLORA_CFG_INT, "64", "largest message in MB", 1, 4096, NULL},
};
static const glora_config_schema_t schema = GLORA_CONFIG_SCHEMA(keys);

static const cli_flag_t flags[] = {
    {"--repeat", "bench.repeat", "N", "calls per size"},
    {"--max-mb", "bench.max_mb", "MB", "largest message"},
};

static const cli_cmd_t cmd = {
    .name = "bench comm",
    .synopsis = "[options]",
    .summary = "Time of glora's MPI communication per call on this job: the ordered\n"
               "gradient fold (one item per rank, as in data-parallel training), the\n"
               "broadcast (the search's candidates, the fold's result), the sum of a\n"
               "generation's counts and the status check. Run under MPI:\n"
               "  mpirun -np 2 glora bench comm",
    .schema = &schema,
    .flags = flags,
    .n_flags = sizeof flags / sizeof flags[0],
};

static void add_one(void *ctx, float *seg, size_t off, size_t len) {
    const float *mine = ctx;
    for (size_t k = 0; k < len; k++) seg[k] += mine[off + k];
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median_of(double *t, int n) {
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    return t[n / 2];
}

int glora_cmd_bench_comm(int argc, char **argv) {
    cli_args_t args;
    int rc = cli_parse(&cmd, argc, argv, &args);
    if (rc) return rc < 0 ? CLI_OK : rc;
    const int reps = (int)glora_config_int(args.cfg, "bench.repeat");
    const size_t max_floats = (size_t)glora_config_int(args.cfg, "bench.max_mb") << 18;
    const int P = glora_comm_size();
    float *acc = malloc(max_floats * sizeof(float)), *mine = malloc(max_floats * sizeof(float));
    double *t = malloc((size_t)reps * sizeof *t), *all = malloc((size_t)reps * (size_t)P * sizeof *all);
    if (!acc || !mine || !t || !all) {
        free(acc); free(mine); free(t); free(all);
        cli_args_free(&args);
        glora_error(GLORA_ENOMEM, "bench comm: out of memory");
        return cli_fail();
    }
    for (size_t k = 0; k < max_floats; k++) mine[k] = (float)(k % 97) * 0.25f;
    printf("ranks %d; each time is the median over %d calls of the slowest rank\n", P, reps);
    printf("%12s %12s %12s %12s %12s\n", "bytes", "fold_us", "fold_GB/s", "bcast_us", "bcast_GB/s");
    for (size_t n = 256; n <= max_floats; n *= 4) {
        double med[2];
        for (int op = 0; op < 2; op++) {
            for (int i = 0; i < reps; i++) {
                if (glora_comm_rank() == 0) memcpy(acc, mine, n * sizeof(float));
                glora_comm_check(0); /* start together */
                double t0 = glora_now();
                if (op == 0) glora_comm_fold(acc, n, (size_t)P, add_one, mine);
                else glora_comm_bcast(acc, n * sizeof(float), 0);
                t[i] = glora_now() - t0;
            }
            glora_comm_allgatherv(t, (size_t)reps * sizeof *t, all);
            for (int i = 0; i < reps; i++)
                for (int r = 1; r < P; r++)
                    if (all[(size_t)r * reps + i] > all[i]) all[i] = all[(size_t)r * reps + i];
            med[op] = median_of(all, reps);
        }
        double bytes = (double)n * sizeof(float);
        printf("%12.0f %12.1f %12.3f %12.1f %12.3f\n", bytes, med[0] * 1e6, bytes / med[0] / 1e9, med[1] * 1e6,
               bytes / med[1] / 1e9);
    }
    /* A generation's results (150 counts) and a status check. */
    uint64_t counts[150];
    double ts[2];
    for (int op = 0; op < 2; op++) {
        for (int i = 0; i < reps; i++) {
            for (int k = 0; k < 150; k++) counts[k] = (uint64_t)k;
            glora_comm_check(0);
            double t0 = glora_now();
            if (op == 0) glora_comm_sum_u64(counts, 150);
            else glora_comm_check(0);
            t[i] = glora_now() - t0;
        }
        glora_comm_allgatherv(t, (size_t)reps * sizeof *t, all);
        for (int i = 0; i < reps; i++)
            for (int r = 1; r < P; r++)
                if (all[(size_t)r * reps + i] > all[i]) all[i] = all[(size_t)r * reps + i];
        ts[op] = median_of(all, reps);
    }
    printf("sum of 150 counts: %.1f us; status check: %.1f us\n", ts[0] * 1e6, ts[1] * 1e6);
    free(acc);
    free(mine);
    free(t);
    free(all);
    cli_args_free(&args);
    return CLI_OK;
}
