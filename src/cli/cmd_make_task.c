/* glora make-task: writes the transfer suite's tasks as IDX files
 * (glora_task_write; the tasks are described in glora/tasks.h). */
#include "cli/cli.h"
#include "cli/commands.h"

#include "glora/common.h"
#include "util/fileio.h"
#include "glora/tasks.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const cli_flag_t flags[] = {
    {"--list", NULL, NULL, "list the tasks: name, group, source, upstream, classes, what the label is"},
    {"--data", NULL, "DIR", "where scripts/get-data put mnist/ and fashion-mnist/ (default data)"},
    {"--out", NULL, "DIR", "where the tasks go (default data/suite)"},
    {"--train", NULL, "N", "examples of the train file (default 2000)"},
    {"--test", NULL, "N", "examples of the test file (default 10000)"},
};

static const cli_cmd_t cmd = {
    .name = "make-task",
    .synopsis = "NAME... | all | --list [--data DIR] [--out DIR] [--train N] [--test N]",
    .summary =
        "Writes tasks of the transfer suite (docs/formats.md, glora/tasks.h) as plain IDX\n"
        "files under OUT/NAME/: train-{images-idx3,labels-idx1}-ubyte made from the source's\n"
        "training file (examples 0..799 train800, 800..999 val200, 1000.. a holdout no run\n"
        "reads) and test-{images-idx3,labels-idx1}-ubyte made from its t10k file. Every task is\n"
        "a deterministic function of its name and the source images.",
    .flags = flags,
    .n_flags = sizeof flags / sizeof flags[0],
    .max_positional = 64, /* task names */
};

static int parse_count(const char *flag, const char *s, size_t *out) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || v == 0 || v > 1000000)
        return cli_usage_error("make-task", "%s '%s': expected a count from 1 to 1000000", flag, s);
    *out = (size_t)v;
    return CLI_OK;
}

int glora_cmd_make_task(int argc, char **argv) {
    cli_args_t args;
    int rc = cli_parse(&cmd, argc, argv, &args);
    if (rc) return rc < 0 ? CLI_OK : rc;
    const char *data = cli_value(&cmd, &args, "--data"), *out = cli_value(&cmd, &args, "--out");
    const char *train = cli_value(&cmd, &args, "--train"), *test = cli_value(&cmd, &args, "--test");
    size_t n_train = 2000, n_test = 10000;
    if (!data) data = "data";
    if (!out) out = "data/suite";
    if ((train && (rc = parse_count("--train", train, &n_train))) || (test && (rc = parse_count("--test", test, &n_test))))
        return rc;
    const char *const *names = args.positional;
    int n_names = args.n_positional, list = cli_switch(&cmd, &args, "--list");
    if (list) {
        for (int i = 0; glora_task_at(i); i++) {
            const glora_task_t *t = glora_task_at(i);
            printf("%s %s %s %s %d %s\n", t->name, t->group, t->source, t->upstream, t->num_classes, t->about);
        }
        return CLI_OK;
    }
    if (n_names == 0) return cli_usage_error("make-task", "name the tasks to make (or 'all', or --list)");
    if (glora_mkdir_p(out) || glora_output_lock(out)) return cli_fail(); /* one writer of OUT */
    for (int k = 0; k < n_names; k++) {
        if (strcmp(names[k], "all") == 0) {
            for (int i = 0; glora_task_at(i); i++) {
                if (glora_task_write(glora_task_at(i), data, out, n_train, n_test)) return cli_fail();
                fprintf(stderr, "wrote %s/%s\n", out, glora_task_at(i)->name);
            }
            continue;
        }
        const glora_task_t *t = glora_task_find(names[k]);
        if (!t) return cli_fail();
        if (glora_task_write(t, data, out, n_train, n_test)) return cli_fail();
        fprintf(stderr, "wrote %s/%s\n", out, t->name);
    }
    return CLI_OK;
}
