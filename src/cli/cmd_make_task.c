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

static const char help[] =
    "usage: glora make-task NAME... | all | --list [--data DIR] [--out DIR] [--train N] [--test N]\n\n"
    "Writes tasks of the transfer suite (docs/formats.md, glora/tasks.h) as plain IDX\n"
    "files under OUT/NAME/: train-{images-idx3,labels-idx1}-ubyte made from the source's\n"
    "training file (examples 0..799 train800, 800..999 val200, 1000.. a holdout no run\n"
    "reads) and test-{images-idx3,labels-idx1}-ubyte made from its t10k file. Every task is\n"
    "a deterministic function of its name and the source images.\n\n"
    "  --list      the tasks: name, group, source images, upstream of the backbone,\n"
    "              classes, what the label is\n"
    "  --data DIR  where scripts/get-data put mnist/ and fashion-mnist/ (default data)\n"
    "  --out DIR   where the tasks go (default data/suite)\n"
    "  --train N   examples of the train file (default 2000)\n"
    "  --test N    examples of the test file (default 10000)\n";

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
    const char *data = "data", *out = "data/suite";
    size_t n_train = 2000, n_test = 10000;
    const char *names[64];
    int n_names = 0, list = 0, rc;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(help, stdout);
            return CLI_OK;
        }
        if (strcmp(a, "--list") == 0) {
            list = 1;
            continue;
        }
        if (a[0] == '-') {
            if (i + 1 >= argc) return cli_usage_error("make-task", "%s: needs a value", a);
            const char *v = argv[++i];
            if (strcmp(a, "--data") == 0) data = v;
            else if (strcmp(a, "--out") == 0) out = v;
            else if (strcmp(a, "--train") == 0) { if ((rc = parse_count(a, v, &n_train))) return rc; }
            else if (strcmp(a, "--test") == 0) { if ((rc = parse_count(a, v, &n_test))) return rc; }
            else return cli_usage_error("make-task", "unknown option '%s'", a);
            continue;
        }
        if (n_names == (int)(sizeof names / sizeof names[0]))
            return cli_usage_error("make-task", "too many task names");
        names[n_names++] = a;
    }
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
