/* glora bench gemm: GFLOP/s of glora_sgemm on the products of ViT layers
 * and, when built with OpenBLAS, OpenBLAS's figure on the same data in the
 * same run (shape by shape, one right after the other, so both see much
 * the same machine load), their ratio and its geometric mean. */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "glora/common.h"
#include "glora/gemm.h"
#include "util/parallel.h"
#include "util/rng.h"

#ifdef GLORA_HAVE_CBLAS
#include <cblas.h>
#endif

typedef struct {
    const char *model; /* "vit-b-16" or "vit-tiny-28" */
    const char *what;  /* the layer and pass */
    glora_trans_t ta, tb;
    size_t m, n, k;
    int quick;         /* part of --quick */
} shape_t;

#define NT GLORA_NOTRANS, GLORA_TRANS
#define NN GLORA_NOTRANS, GLORA_NOTRANS
#define TN GLORA_TRANS, GLORA_NOTRANS

/* Forward y = x W^T (NT), input gradient dx = dy W (NN), weight gradient
 * dW = dy^T x (TN). ViT-B/16: 197 tokens per image, dim 768, MLP 3072.
 * vit-tiny-28: 17 tokens per image, dim 128, MLP 512; batch 64 (1088 rows),
 * the search's val200 (3400 rows) and a few images (68 rows). */
static const shape_t shapes[] = {
    {"vit-b-16", "qkv fwd, 2 img", NT, 394, 2304, 768, 0},
    {"vit-b-16", "qkv fwd, 8 img", NT, 1576, 2304, 768, 1},
    {"vit-b-16", "proj fwd", NT, 1576, 768, 768, 0},
    {"vit-b-16", "fc1 fwd", NT, 1576, 3072, 768, 0},
    {"vit-b-16", "fc2 fwd", NT, 1576, 768, 3072, 1},
    {"vit-b-16", "fc1 fwd, 4096 tok", NT, 4096, 3072, 768, 0},
    {"vit-b-16", "fc1 dx", NN, 1576, 768, 3072, 1},
    {"vit-b-16", "qkv dx", NN, 1576, 768, 2304, 0},
    {"vit-b-16", "fc1 dW", TN, 3072, 768, 1576, 1},
    {"vit-b-16", "qkv dW", TN, 2304, 768, 1576, 0},
    {"vit-tiny-28", "qkv fwd, 4 img", NT, 68, 384, 128, 1},
    {"vit-tiny-28", "fc1 fwd, 4 img", NT, 68, 512, 128, 0},
    {"vit-tiny-28", "qkv fwd", NT, 1088, 384, 128, 1},
    {"vit-tiny-28", "proj fwd", NT, 1088, 128, 128, 0},
    {"vit-tiny-28", "fc1 fwd", NT, 1088, 512, 128, 0},
    {"vit-tiny-28", "fc2 fwd", NT, 1088, 128, 512, 1},
    {"vit-tiny-28", "qkv fwd, val200", NT, 3400, 384, 128, 0},
    {"vit-tiny-28", "fc2 fwd, val200", NT, 3400, 128, 512, 0},
    {"vit-tiny-28", "qkv dx", NN, 1088, 128, 384, 1},
    {"vit-tiny-28", "fc1 dx", NN, 1088, 128, 512, 0},
    {"vit-tiny-28", "fc2 dx", NN, 1088, 512, 128, 0},
    {"vit-tiny-28", "qkv dW", TN, 384, 128, 1088, 1},
    {"vit-tiny-28", "proj dW", TN, 128, 128, 1088, 0},
    {"vit-tiny-28", "fc1 dW", TN, 512, 128, 1088, 0},
};
#define NSHAPES (sizeof shapes / sizeof shapes[0])

static const cli_flag_t flags[] = {
    {"--kernel", NULL, "NAME", "auto, avx512, avx2, portable, ref or cblas (default auto)"},
    {"--quick", NULL, NULL, "a representative third of the shapes, fewer repetitions"},
    {"--reps", NULL, "N", "timed repetitions per shape (default 7, --quick 3)"},
};

static const cli_cmd_t cmd = {
    .name = "bench gemm",
    .synopsis = "[--threads N] [--kernel NAME] [--quick] [--reps N]",
    .summary = "Times glora_sgemm on the matrix products of ViT-B/16 and vit-tiny-28 layers\n"
               "(forward NT, input-gradient NN, weight-gradient TN) and prints GFLOP/s, the\n"
               "median of several timed repetitions after a warm-up."
#ifdef GLORA_HAVE_CBLAS
               "\n\nOpenBLAS runs on the same data, turn\n"
               "about with glora; the ratio is glora / OpenBLAS, with its geometric mean over\n"
               "all shapes and over the vit-tiny-28 ones."
#endif
    ,
    .flags = flags,
    .n_flags = sizeof flags / sizeof flags[0],
    .threads_help = "threads for glora (and OpenBLAS); default: OpenMP's",
};

typedef void (*product_fn)(const shape_t *s, const float *a, const float *b, float *c);

static void run_glora(const shape_t *s, const float *a, const float *b, float *c) {
    glora_sgemm(s->ta, s->tb, s->m, s->n, s->k, 1.0f, a, s->ta ? s->m : s->k, b,
                s->tb ? s->k : s->n, 0.0f, c, s->n);
}

#ifdef GLORA_HAVE_CBLAS
static void run_openblas(const shape_t *s, const float *a, const float *b, float *c) {
    cblas_sgemm(CblasRowMajor, s->ta ? CblasTrans : CblasNoTrans,
                s->tb ? CblasTrans : CblasNoTrans, (int)s->m, (int)s->n, (int)s->k, 1.0f,
                a, (int)(s->ta ? s->m : s->k), b, (int)(s->tb ? s->k : s->n), 0.0f, c,
                (int)s->n);
}
#endif

/* Seconds for `calls` back-to-back products. */
static double time_calls(product_fn fn, const shape_t *s, const float *a, const float *b,
                         float *c, int calls) {
    double t0 = glora_now();
    for (int i = 0; i < calls; i++) fn(s, a, b, c);
    return glora_now() - t0;
}

/* Times reps repetitions of fn on shape s into t (seconds per product).
 * Both libraries keep idle worker threads spinning for a while after a
 * call (OpenBLAS about 0.1 s, GNU OpenMP a few ms): with a team, wait that
 * out first so that neither is timed while the other's threads still take
 * the cores. Then warm up (page faults, caches) and size a repetition to
 * at least min_seconds. */
static void time_reps(product_fn fn, const shape_t *s, const float *a, const float *b,
                      float *c, int reps, double min_seconds, int threads, double *t) {
    if (threads > 1) {
        struct timespec settle = {0, 150000000};
        nanosleep(&settle, NULL);
    }
    fn(s, a, b, c);
    double once = time_calls(fn, s, a, b, c, 1);
    int calls = once >= min_seconds ? 1 : (int)(min_seconds / (once + 1e-9)) + 1;
    for (int r = 0; r < reps; r++) t[r] = time_calls(fn, s, a, b, c, calls) / calls;
}


/* What runs, on what, under which load; the table's header. */
static void print_header(int threads, int reps, int with_openblas) {
    printf("glora bench gemm: kernel %s (%s), %d thread%s, median of %d reps\n",
           glora_gemm_kernel(), glora_gemm_ukernel(), threads, threads == 1 ? "" : "s", reps);
#ifdef GLORA_HAVE_CBLAS
    printf("beside OpenBLAS, core %s (%s)\n", openblas_get_corename(), openblas_get_config());
#endif
    double load[3];
    if (getloadavg(load, 3) == 3) printf("load average at start: %.2f\n", load[0]);
    if (threads > 1 && !getenv("OMP_WAIT_POLICY"))
        printf("note: OMP_WAIT_POLICY is unset: GNU OpenMP threads busy-wait up to ~3 ms in\n"
               "      every barrier, which costs more than a small product when the machine\n"
               "      is loaded (OMP_WAIT_POLICY=passive avoids it)\n");
    printf("%-4s %-12s %-18s %6s %6s %6s %10s", "form", "model", "layer", "M", "N", "K",
           "glora GF/s");
    if (with_openblas) printf(" %13s %6s", "OpenBLAS GF/s", "ratio");
    printf("\n");
}

int glora_cmd_bench_gemm(int argc, char **argv) {
    cli_args_t args;
    int rc = cli_parse(&cmd, argc, argv, &args);
    if (rc) return rc < 0 ? CLI_OK : rc;
    int threads = glora_max_threads(), reps = 0, quick = cli_switch(&cmd, &args, "--quick");
    const char *kernel = cli_value(&cmd, &args, "--kernel"), *r = cli_value(&cmd, &args, "--reps");
    if (!kernel) kernel = "auto";
    if (r) {
        char *end;
        errno = 0;
        long v = strtol(r, &end, 10);
        if (errno || end == r || *end || v < 1 || v > 1024)
            return cli_usage_error(cmd.name, "--reps '%s': expected a count from 1 to 1024", r);
        reps = (int)v;
    }
    if (glora_gemm_check_env() != GLORA_OK || glora_gemm_set_kernel(kernel) != GLORA_OK) {
        fprintf(stderr, "glora: error: %s\n", glora_errmsg());
        if (glora_errhint()) fprintf(stderr, "hint: %s\n", glora_errhint());
        return 2;
    }
    if (reps == 0) reps = quick ? 3 : 7;
    const double min_rep_seconds = quick ? 0.002 : 0.01;
    glora_set_threads(threads);
#ifdef GLORA_HAVE_CBLAS
    openblas_set_num_threads(threads);
    const int with_openblas = 1;
#else
    const int with_openblas = 0;
#endif

    /* One set of buffers, big enough for every shape. */
    size_t amax = 0, bmax = 0, cmax = 0;
    for (size_t s = 0; s < NSHAPES; s++) {
        if (shapes[s].m * shapes[s].k > amax) amax = shapes[s].m * shapes[s].k;
        if (shapes[s].k * shapes[s].n > bmax) bmax = shapes[s].k * shapes[s].n;
        if (shapes[s].m * shapes[s].n > cmax) cmax = shapes[s].m * shapes[s].n;
    }
    float *a = malloc(amax * sizeof *a), *b = malloc(bmax * sizeof *b);
    float *c = malloc(cmax * sizeof *c);
    double *times = malloc(2 * (size_t)reps * sizeof *times);
    if (!a || !b || !c || !times) {
        fprintf(stderr, "glora: error: bench gemm: out of memory for %zu floats\n",
                amax + bmax + cmax);
        free(a), free(b), free(c), free(times);
        return 1;
    }
    glora_rng_t rng;
    glora_rng_seed(&rng, 1);
    for (size_t i = 0; i < amax; i++) a[i] = (float)(2.0 * glora_rng_uniform(&rng) - 1.0);
    for (size_t i = 0; i < bmax; i++) b[i] = (float)(2.0 * glora_rng_uniform(&rng) - 1.0);

    print_header(threads, reps, with_openblas);
    double load[3];

    double log_all = 0.0, log_tiny = 0.0;
    int n_all = 0, n_tiny = 0;
    for (size_t si = 0; si < NSHAPES; si++) {
        const shape_t *s = &shapes[si];
        if (quick && !s->quick) continue;
        double flops = 2.0 * (double)s->m * (double)s->n * (double)s->k;
        double *t_glora = times, *t_blas = times + reps;
        time_reps(run_glora, s, a, b, c, reps, min_rep_seconds, threads, t_glora);
#ifdef GLORA_HAVE_CBLAS
        time_reps(run_openblas, s, a, b, c, reps, min_rep_seconds, threads, t_blas);
#endif
        double gf = flops / cli_median(t_glora, reps) * 1e-9;
        printf("%-4s %-12s %-18s %6zu %6zu %6zu %10.1f", s->ta ? "TN" : s->tb ? "NT" : "NN",
               s->model, s->what, s->m, s->n, s->k, gf);
        if (with_openblas) {
            double gf_blas = flops / cli_median(t_blas, reps) * 1e-9, ratio = gf / gf_blas;
            printf(" %13.1f %6.2f", gf_blas, ratio);
            log_all += log(ratio);
            n_all++;
            if (strcmp(s->model, "vit-tiny-28") == 0) {
                log_tiny += log(ratio);
                n_tiny++;
            }
        }
        printf("\n");
        fflush(stdout);
    }
    if (with_openblas) {
        printf("geometric mean of glora/OpenBLAS: %.3f over all %d shapes, %.3f over the %d "
               "vit-tiny-28 shapes\n",
               exp(log_all / n_all), n_all, exp(log_tiny / n_tiny), n_tiny);
    }
    if (getloadavg(load, 3) == 3) printf("load average at end: %.2f\n", load[0]);
    free(a), free(b), free(c), free(times);
    return 0;
}
