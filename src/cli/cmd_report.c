/* glora report: an SVG of a search (progress per generation; accuracy vs
 * parameters of every evaluated candidate with the Pareto front and the
 * baselines). Plain C: no plotting library. */
#include "cli/cli.h"
#include "cli/commands.h"

#include "glora/common.h"
#include "util/fileio.h"
#include "glora/search.h"

#include <stdio.h>
#include <stdlib.h>

static const cli_flag_t flags[] = {
    {"--search", NULL, "DIR", "the search's output directory (default RUN_DIR/search)"},
    {"--baselines", NULL, "FILE", "baselines JSON (default RUN_DIR/baselines.json when present)"},
    {"-o", NULL, "FILE", "SVG to write (default RUN_DIR/report.svg)"},
    {"--output", NULL, "FILE", "the same as -o"},
};

static const cli_cmd_t cmd = {
    .name = "report",
    .synopsis = "RUN_DIR [--search DIR] [--baselines FILE] [-o OUT.svg]",
    .summary = "Draws a run's search as an SVG: best and parents' mean validation accuracy per\n"
               "generation, and validation accuracy against trainable parameters for every\n"
               "evaluated candidate, with the Pareto front and the baselines marked.\n"
               "Baselines JSON: [{\"name\": \"LoRA r=4\", \"params\": 49152, \"val_accuracy\": 0.81}, ...]",
    .flags = flags,
    .n_flags = sizeof flags / sizeof flags[0],
    .max_positional = 1,
};

int glora_cmd_report(int argc, char **argv) {
    cli_args_t args;
    int rc = cli_parse(&cmd, argc, argv, &args);
    if (rc) return rc < 0 ? CLI_OK : rc;
    const char *run_dir = args.n_positional ? args.positional[0] : NULL;
    const char *search_dir = cli_value(&cmd, &args, "--search"), *baselines_path = cli_value(&cmd, &args, "--baselines");
    const char *out_path = cli_value(&cmd, &args, "--output");
    if (cli_value(&cmd, &args, "-o")) out_path = cli_value(&cmd, &args, "-o");
    if (!run_dir) return cli_usage_error("report", "which run? give RUN_DIR");
    char sdir[4096], ckpt[4200], bpath[4200], opath[4200];
    snprintf(sdir, sizeof sdir, "%s", search_dir ? search_dir : run_dir);
    if (!search_dir) snprintf(sdir, sizeof sdir, "%s/search", run_dir);
    snprintf(ckpt, sizeof ckpt, "%s/checkpoint.json", sdir);
    snprintf(bpath, sizeof bpath, "%s", baselines_path ? baselines_path : "");
    if (!baselines_path) snprintf(bpath, sizeof bpath, "%s/baselines.json", run_dir);
    snprintf(opath, sizeof opath, "%s", out_path ? out_path : "");
    if (!out_path) snprintf(opath, sizeof opath, "%s/report.svg", run_dir);

    if (glora_output_lock(opath) || glora_search_report(ckpt, bpath, baselines_path != NULL, opath)) return cli_fail();
    fprintf(stderr, "wrote '%s'\n", opath);
    return CLI_OK;
}
