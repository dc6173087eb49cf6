/* glora: the command-line tool. Dispatches to one function per command. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "glora/common.h"
#include "glora/gemm.h"
#include "util/parallel.h"
#include "util/comm.h"

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command_t;

static const command_t commands[] = {
    {"run", glora_cmd_run, "the whole pipeline from one YAML file, with a summary table"},
    {"init", glora_cmd_init, "write a freshly initialised ViT backbone (vit-tiny-28, ViT-B/16, or custom)"},
    {"info", glora_cmd_info, "show a model's architecture, tensors and adapted layers"},
    {"eval", glora_cmd_eval, "accuracy and speed of a backbone, supernet subnet or adapter on a data split"},
    {"predict", glora_cmd_predict, "class and top-5 probabilities of each image of a list, folder or files (JSON lines)"},
    {"convert", glora_cmd_convert, "a ViT checkpoint (Google's .npz, timm safetensors) as glora/timm safetensors"},
    {"merge", glora_cmd_merge, "fold a subnet's GLoRA tensors into plain ViT weights"},
    {"pretrain", glora_cmd_pretrain, "train a ViT backbone from scratch"},
    {"finetune", glora_cmd_finetune, "full fine-tuning or linear probe of a backbone (baselines)"},
    {"supernet", glora_cmd_supernet, "train a GLoRA supernet on a frozen backbone"},
    {"search", glora_cmd_search, "evolutionary layer-wise search of a subnet under a parameter budget"},
    {"retrain", glora_cmd_retrain, "train the components a subnet spec chose"},
    {"report", glora_cmd_report, "draw a run's search as an SVG (progress, accuracy vs parameters)"},
    {"make-task", glora_cmd_make_task, "write the transfer suite's tasks (from MNIST / Fashion-MNIST) as IDX files"},
};

static const command_t bench_commands[] = {
    {"gemm", glora_cmd_bench_gemm, "GFLOP/s of the GEMM kernels on ViT shapes (vs OpenBLAS when built with it)"},
    {"train", glora_cmd_bench_train, "supernet training images/s (vs the PyTorch reference)"},
    {"search", glora_cmd_bench_search, "search candidate evaluations/s (vs the PyTorch reference)"},
    {"comm", glora_cmd_bench_comm, "time of the MPI communication per call (run under mpirun)"},
    {"peak", glora_cmd_bench_peak, "this machine's fp32 and bf16 multiply-add peaks (GFLOP/s)"},
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static void usage(FILE *out) {
    fprintf(out,
            "usage: glora <command> [options]\n\n"
            "GLoRA (Generalized LoRA) for vision transformers: train a supernet, search\n"
            "a layer-wise subnet under a parameter budget, retrain it and merge it into\n"
            "plain weights.\n\ncommands:\n");
    for (size_t i = 0; i < COUNT(commands); i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    for (size_t i = 0; i < COUNT(bench_commands); i++) {
        char name[32];
        snprintf(name, sizeof name, "bench %s", bench_commands[i].name);
        fprintf(out, "  %-14s %s\n", name, bench_commands[i].summary);
    }
    fprintf(out, "\n'glora <command> --help' describes a command and its config keys.\n"
                 "Options for every command: --threads N, --set KEY=VALUE, --help.\n");
}

/* GNU OpenMP makes a waiting thread spin 300,000 times before it sleeps. On
 * shared cores (a CI runner, two jobs on one workstation) the thread being
 * waited for is often not running, and glora's short parallel regions then
 * ran 3-10x slower; a short spin (10,000) loses nothing on an idle machine
 * and keeps the speed on a loaded one, where OMP_WAIT_POLICY=passive costs
 * 25% when idle (docs/PERFORMANCE.md). libgomp reads this once, before main,
 * so glora re-executes itself once with GOMP_SPINCOUNT=10000 unless the user
 * set GOMP_SPINCOUNT or OMP_WAIT_POLICY. Not when the user binds threads
 * (OMP_PROC_BIND, OMP_PLACES, GOMP_CPU_AFFINITY): libgomp has then already
 * bound this first thread to the first place, the re-executed process would
 * inherit that one CPU as its whole affinity and run every thread on it
 * (measured: 2 threads at the speed of 1); bound threads do not share
 * cores, which is where the short spin matters. */
static void prefer_short_spins(char **argv) {
#ifdef _OPENMP
    if (getenv("OMP_WAIT_POLICY") || getenv("GOMP_SPINCOUNT")) return;
    if (getenv("OMP_PROC_BIND") || getenv("OMP_PLACES") || getenv("GOMP_CPU_AFFINITY")) return;
    if (setenv("GOMP_SPINCOUNT", "10000", 1) != 0) return;
    /* Remembered so that peers the benchmarks start run as the user would. */
    setenv("GLORA_SET_GOMP_SPINCOUNT", "1", 1);
    execv("/proc/self/exe", argv);
    /* No /proc: carry on with the default. */
#else
    (void)argv;
#endif
}

static int dispatch(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return CLI_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return CLI_OK;
    }
    if (strcmp(cmd, "--version") == 0) {
        printf("glora %s (GEMM kernel: %s, threads: %d)\n", GLORA_VERSION_STRING, glora_gemm_kernel(),
               glora_max_threads());
        return CLI_OK;
    }
    if (strcmp(cmd, "bench") == 0) {
        if (argc < 3 || strcmp(argv[2], "--help") == 0 || strcmp(argv[2], "-h") == 0) {
            FILE *out = argc < 3 ? stderr : stdout;
            fprintf(out, "usage: glora bench <what> [options]\n\n");
            for (size_t i = 0; i < COUNT(bench_commands); i++)
                fprintf(out, "  %-8s %s\n", bench_commands[i].name, bench_commands[i].summary);
            return argc < 3 ? CLI_USAGE : CLI_OK;
        }
        for (size_t i = 0; i < COUNT(bench_commands); i++)
            if (strcmp(argv[2], bench_commands[i].name) == 0)
                return bench_commands[i].run(argc - 2, argv + 2);
        fprintf(stderr, "glora: error: unknown benchmark '%s'\nhint: see 'glora bench --help'\n", argv[2]);
        return CLI_USAGE;
    }
    for (size_t i = 0; i < COUNT(commands); i++)
        if (strcmp(cmd, commands[i].name) == 0) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "glora: error: unknown command '%s'\nhint: see 'glora --help'\n", cmd);
    return CLI_USAGE;
}

/* Under an MPI launcher every rank runs the same command; each command
 * spreads its work over the ranks (util/comm.h) and rank 0 alone prints and
 * writes files. */
int main(int argc, char **argv) {
    prefer_short_spins(argv);
    if (glora_comm_init(&argc, &argv, 1) != GLORA_OK) {
        fprintf(stderr, "glora: error: %s\n", glora_errmsg());
        return CLI_FAIL;
    }
    return glora_comm_finalize(dispatch(argc, argv));
}
