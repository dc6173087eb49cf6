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
#include <string.h>

static const cli_flag_t flags[] = {
    {"--search", NULL, "DIR", "the search's output directory (default RUN_DIR/search)"},
    {"--baselines", NULL, "FILE", "baselines JSON (default RUN_DIR/baselines.json when present)"},
    {"-o", NULL, "FILE", "SVG to write (default RUN_DIR/report.svg)"},
};

static const cli_cmd_t cmd = {
    .name = "report",
    .synopsis = "RUN_DIR [--search DIR] [--baselines FILE] [-o OUT.svg]",
    .summary = "Draws a run's search as an SVG: best and parents' mean validation accuracy per\n"
               "generation, and validation accuracy against trainable parameters for every\n"
               "evaluated candidate, with the Pareto front and the baselines marked.\n"
               "Baselines JSON: [{\"name\": \"LoRA r=4\", \"params\": 49152, \"val_accuracy\": 0.81}, ...]",
    .flags = flags,
    .n_flags = 0, /* parsed here: they take values but set no config key */
    .max_positional = 1,
};

int glora_cmd_report(int argc, char **argv) {
    const char *run_dir = NULL, *search_dir = NULL, *baselines_path = NULL, *out_path = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            cli_help(&cmd, stdout);
            printf("  --search DIR             %s\n  --baselines FILE         %s\n  -o FILE                  %s\n",
                   flags[0].help, flags[1].help, flags[2].help);
            return CLI_OK;
        }
        const char **slot = strcmp(a, "--search") == 0 ? &search_dir : strcmp(a, "--baselines") == 0 ? &baselines_path
                          : strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0 ? &out_path : NULL;
        if (slot) {
            if (i + 1 >= argc) return cli_usage_error("report", "%s needs a value", a);
            *slot = argv[++i];
        } else if (a[0] == '-') {
            return cli_usage_error("report", "unknown option '%s'", a);
        } else if (!run_dir) {
            run_dir = a;
        } else {
            return cli_usage_error("report", "unexpected argument '%s'", a);
        }
    }
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
