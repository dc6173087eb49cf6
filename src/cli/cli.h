/*
 * cli.h - what the glora commands share: error reporting in the one format
 * users see, and parsing of "[CONFIG] [--set key=value] [--flag value]".
 *
 * Every command parses its arguments here. A command with a config reads
 * a YAML file checked against its schema; its flags are shortcuts for --set
 * of one key (e.g. --model F is --set model.backbone=F), so a command line
 * and a config file say the same things. The commands without a config
 * (report, make-task, the benchmarks) declare flags that set no key and read
 * their values with cli_value.
 */
#ifndef GLORA_CLI_H
#define GLORA_CLI_H

#include <stdio.h>

#include "glora/config.h"
#include "glora/pipeline.h"

/* Exit statuses. */
enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2 };

/* Prints "glora: error: <glora_errmsg()>" (and "hint: ..." when there is
 * one) on stderr; returns CLI_FAIL. */
int cli_fail(void);
/* Prints "glora: error: <text>" and "hint: ..." for a usage error; returns
 * CLI_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

typedef struct {
    const char *flag;    /* "--model" */
    const char *key;     /* config key it sets; NULL: a switch (arg NULL) or a value
                          * the command reads itself (cli_value) */
    const char *arg;     /* name of its argument in help ("FILE"), NULL for a switch */
    const char *help;
} cli_flag_t;

typedef struct {
    const char *name;      /* "eval" or "bench gemm" */
    const char *synopsis;  /* "[CONFIG] [options]" */
    const char *summary;   /* what the command does, a few lines */
    const glora_config_schema_t *schema;
    const cli_flag_t *flags;
    size_t n_flags;
    int max_positional;    /* positional arguments besides CONFIG (usually 0) */
    const char *section;   /* the one section of CONFIG it reads (glora run: "run"), or NULL; then --section is refused */
    const char *positional_help; /* e.g. "MODEL" */
    /* Non-NULL: a --set KEY=VALUE it returns non-zero for is not one of the
     * command's keys but passed on in cli_args_t.passed (glora run: a
     * stage's STAGE.KEY=VALUE). */
    int (*pass_set)(const char *assignment);
    const char *threads_help; /* --threads in help, NULL: "OpenMP threads (default: all cores; ...)" */
} cli_cmd_t;

typedef struct {
    glora_config_t *cfg;
    const char *config_path;   /* NULL when none was given */
    const char *section;       /* --section NAME: the part of the config read */
    const char *positional[256]; /* extra positional arguments (max_positional <= 256) */
    int n_positional;
    unsigned switches;         /* bit i set when switch flags[i] was given (n_flags <= 32) */
    const char *values[32];    /* the value of flags[i] without a key (the last given), or NULL */
    int threads;               /* --threads N (0: default) */
    const char *passed[256];   /* the --set assignments cmd->pass_set took, in order */
    int n_passed;
} cli_args_t;

/* Parses argv[1..] (argv[0] is the command name). Returns CLI_OK with args
 * filled, or the exit status to return: CLI_USAGE / CLI_FAIL after printing
 * the error, or -1 after printing --help (exit 0). --threads N is accepted by
 * every command and applied. The first positional argument that ends in
 * .yaml/.yml is the config. */
int cli_parse(const cli_cmd_t *cmd, int argc, char **argv, cli_args_t *args);
void cli_args_free(cli_args_t *args);
/* Non-zero when the switch flag (e.g. "--json") was given. */
int cli_switch(const cli_cmd_t *cmd, const cli_args_t *args, const char *flag);
/* The value given to a flag that sets no config key (e.g. "--out"), or NULL
 * when it was not given. */
const char *cli_value(const cli_cmd_t *cmd, const cli_args_t *args, const char *flag);
/* Prints the command's help: synopsis, summary, flags and the config keys. */
void cli_help(const cli_cmd_t *cmd, FILE *out);

/* A stage command as a call on a loaded config: what `glora <stage>` runs
 * after parsing its arguments. run returns the exit status (after printing
 * any error). */
typedef struct {
    const cli_cmd_t *cmd;
    int (*run)(const glora_config_t *cfg, int resume);
} cli_stage_t;

/* glora <stage>: parses argv (cli_parse), then stage->run(cfg, --resume given). */
int cli_run_stage(const cli_stage_t *stage, int argc, char **argv);

/* What the stages show while they run (progress.c): the header of a
 * training or search, live progress lines when stderr is a terminal, the
 * results. */
typedef struct {
    int tty;
    char header[256];    /* printed with the first report: none before an error */
    double last_print;
    int generations, gen, resume;
    const char *dir;     /* the search's output directory */
    const char *run_dir; /* glora run: DIR/NAME */
} cli_progress_t;
/* *h printing through pg (both the caller's, pg outliving the calls). */
void cli_progress_hooks(cli_progress_t *pg, glora_stage_hooks_t *h);

/* The "env ..." prefix that starts a PyTorch peer benchmark: OpenBLAS's
 * core type and L2 size unset together (its own AVX-512 kernels), and the
 * OpenMP spin count as the user had it (glora sets a short one for itself). */
const char *cli_peer_env(void);

/* A benchmark peer script of the source tree (rel, e.g.
 * "bench/bench_train.py"): under the working directory, or up to three
 * directories above the running binary (build/, build/.libs/). 1 and its
 * path in out when found. */
int cli_find_bench_script(const char *rel, char *out, size_t size);

/* Non-zero when stderr is a terminal (live progress lines). */
int cli_is_tty(void);

/* qsort comparison of doubles, and the median of v[0..n) (sorts v). */
int cli_cmp_double(const void *x, const void *y);
double cli_median(double *v, int n);

/* Human-readable counts: 1234567 -> "1.23M". */
const char *cli_human(double v, char buf[32]);

#endif
