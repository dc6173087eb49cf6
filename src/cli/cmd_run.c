/* glora run: the whole pipeline from one YAML file (glora_run_* of
 * glora/pipeline.h: the run section says the run's name, directory, stages
 * and splits; each stage's settings are the section named after it). This
 * file prints what the run does and its summary table. */
#include "cli/cli.h"
#include "cli/commands.h"

#include "glora/common.h"
#include "glora/pipeline.h"

#include <stdio.h>
#include <string.h>

static const cli_flag_t flags[] = {
    {"--name", "name", "NAME", "name of the run"},
    {"--dir", "dir", "DIR", "directory of all runs"},
};

static const cli_cmd_t cmd = {
    .name = "run",
    .synopsis = "CONFIG [--name NAME] [--set KEY=VALUE] [--threads N]",
    .summary =
        "Runs the whole GLoRA pipeline from one YAML file: data check, backbone\n"
        "(pretrained when the file is missing), supernet, search, retrain, merge and a\n"
        "final evaluation, with every artefact under DIR/NAME and a summary table at\n"
        "the end (also DIR/NAME/summary.json). Finished stages are skipped; an\n"
        "interrupted run continues where it stopped (delete DIR/NAME to start over).\n"
        "Each stage's settings are the section of CONFIG named after it, read by that\n"
        "command (see 'glora supernet --help' etc.); only the run section's keys are\n"
        "listed here. --set STAGE.KEY=VALUE sets a key of a stage's section\n"
        "(pretrain, finetune, supernet, search, retrain). With search.cv_folds K >= 2\n"
        "the search stage cuts the labelled data (the supernet's data.train and the\n"
        "search's data) into K folds, trains a supernet per fold on the others\n"
        "(DIR/NAME/cv/) and scores each candidate on every fold with the supernet\n"
        "that never saw it (docs/config.md). Examples:\n"
        "  glora run configs/quickstart.yaml\n"
        "  glora run configs/quickstart.yaml --set supernet.train.epochs=50\n"
        "  glora run configs/suite-glora.yaml --set search.search.cv_folds=4",
    .schema = &glora_run_schema,
    .flags = flags,
    .n_flags = sizeof flags / sizeof flags[0],
    .section = "run", /* the others belong to the stages */
    .pass_set = glora_run_is_stage_key, /* --set STAGE.KEY=VALUE: glora_run_override */
};

static void print_summary(const glora_run_t *r, const glora_config_t *cfg, const glora_run_summary_t *s) {
    size_t nshift;
    const char *const *shifts = glora_config_strings(cfg, "test_shifts", &nshift);
    printf("\n%-34s %12s %10s %10s", "method", "params", "val acc", "test acc");
    for (size_t j = 0; j < nshift; j++) printf(" %10.10s", shifts[j]);
    printf("\n");
    for (int i = 0; i < s->nrows; i++) {
        const glora_run_row_t *row = &s->rows[i];
        printf("%-34s %12zu", row->method, row->params);
        if (row->have_val) printf(" %10.4f", row->val); else printf(" %10s", "-");
        if (row->have_test) printf(" %10.4f", row->test); else printf(" %10s", "-");
        for (size_t j = 0; j < nshift; j++)
            if (row->have_test) printf(" %10.4f", row->shift[j]); else printf(" %10s", "-");
        printf("\n");
    }
    if (nshift > 0) printf("(columns after test acc: accuracy on shifted copies of the test split)\n");
    printf("(params: trainable GLoRA parameters or fine-tuned weights, head excluded)\nstages:");
    for (int i = 0; glora_run_stage_names[i]; i++)
        if (s->seconds[i] >= 0)
            printf(" %s %.0fs%s", glora_run_stage_names[i], s->seconds[i], s->skipped[i] ? " (done before)" : "");
    printf("\nfiles: %s\n", glora_run_dir(r));
}

/* The merged model must score what the retrained adapter scores, on every
 * copy of the test split. */
static void check_merged(const glora_config_t *cfg, const glora_run_summary_t *s) {
    const int adapter_row = s->adapter_row;
    const glora_run_row_t *a = adapter_row >= 0 && adapter_row + 1 < s->nrows ? &s->rows[adapter_row] : NULL;
    if (!a || strcmp(a[1].method, "merged into plain ViT") != 0 || !a->have_test) return;
    size_t nshift;
    const char *const *shifts = glora_config_strings(cfg, "test_shifts", &nshift);
    if (a->test != a[1].test)
        fprintf(stderr, "warning: merged test accuracy %.4f differs from the adapter's %.4f\n", a[1].test, a->test);
    for (size_t j = 0; j < nshift; j++)
        if (a->shift[j] != a[1].shift[j])
            fprintf(stderr, "warning: merged %s accuracy %.4f differs from the adapter's %.4f\n", shifts[j],
                    a[1].shift[j], a->shift[j]);
}

/* The stages, then the final evaluation with its summary. */
static int run(glora_run_t *r, const glora_config_t *cfg, int *stopped) {
    const char *failed;
    cli_progress_t pg;
    glora_stage_hooks_t h;
    cli_progress_hooks(&pg, &h);
    pg.run_dir = glora_run_dir(r);
    if (glora_run_stages(r, &h, &failed, stopped)) {
        int rc = cli_fail();
        if (failed) fprintf(stderr, "run: stage '%s' failed; fix the cause and run the same command again to continue\n", failed);
        return rc;
    }
    if (*stopped) {
        fprintf(stderr, "run: stopped by run.stop_after; run the same command again to continue\n");
        return CLI_OK;
    }
    if (!glora_run_wants_eval(r)) return CLI_OK;
    glora_run_summary_t sum;
    fprintf(stderr, "== eval\n");
    if (glora_run_evaluate(r, &sum)) return cli_fail();
    print_summary(r, cfg, &sum);
    check_merged(cfg, &sum);
    return CLI_OK;
}

int glora_cmd_run(int argc, char **argv) {
    cli_args_t args;
    int rc = cli_parse(&cmd, argc, argv, &args);
    if (rc) return rc < 0 ? CLI_OK : rc;
    const glora_config_t *cfg = args.cfg;
    glora_run_t *r = NULL;
    if (!args.config_path) {
        rc = cli_usage_error("run", "which pipeline? give a YAML config, e.g. configs/quickstart.yaml");
    } else if (glora_run_open(&r, args.config_path, cfg)) {
        rc = cli_fail();
    } else {
        for (int i = 0; i < args.n_passed && rc == CLI_OK; i++)
            if (glora_run_override(r, args.passed[i])) rc = cli_fail();
    }
    if (r && rc == CLI_OK) {
        size_t nst;
        const char *const *st = glora_config_strings(cfg, "stages", &nst);
        double t_all = glora_now();
        fprintf(stderr, "run '%s': stages", glora_config_string(cfg, "name"));
        for (size_t i = 0; i < nst; i++) fprintf(stderr, " %s", st[i]);
        fprintf(stderr, "; files in %s\n", glora_run_dir(r));
        int stopped = 0;
        rc = run(r, cfg, &stopped);
        if (rc == CLI_OK && !stopped) fprintf(stderr, "run '%s' finished in %.0fs\n", glora_config_string(cfg, "name"), glora_now() - t_all);
    }
    glora_run_close(r);
    cli_args_free(&args);
    return rc;
}
