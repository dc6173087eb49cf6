/* Shared command-line plumbing (see cli.h). */
#include "cli/cli.h"
#include "util/strbuf.h"

#include "glora/common.h"
#include "util/parallel.h"
#include "util/comm.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int cli_fail(void) {
    glora_comm_note_failure(glora_errmsg(), glora_errhint()); /* util/comm.h */
    fprintf(stderr, "glora: error: %s\n", glora_errmsg());
    if (glora_errhint()) fprintf(stderr, "hint: %s\n", glora_errhint());
    return CLI_FAIL;
}

int cli_usage_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "glora: error: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\nhint: see 'glora %s --help'\n", cmd);
    va_end(ap);
    return CLI_USAGE;
}

int cli_is_tty(void) { return isatty(STDERR_FILENO); }

const char *cli_human(double v, char buf[32]) { return sb_count(v, buf); }

void cli_help(const cli_cmd_t *cmd, FILE *out) {
    fprintf(out, "usage: glora %s %s\n\n%s\n", cmd->name, cmd->synopsis, cmd->summary);
    fprintf(out, "\noptions:\n");
    for (size_t i = 0; i < cmd->n_flags; i++) {
        char left[64];
        snprintf(left, sizeof left, "%s%s%s", cmd->flags[i].flag, cmd->flags[i].arg ? " " : "",
                 cmd->flags[i].arg ? cmd->flags[i].arg : "");
        fprintf(out, "  %-24s %s", left, cmd->flags[i].help);
        if (cmd->flags[i].key) fprintf(out, " (= --set %s)", cmd->flags[i].key);
        fprintf(out, "\n");
    }
    if (cmd->schema) {
        fprintf(out, "  %-24s %s\n", "--set KEY=VALUE", "override one config key (repeatable)");
        fprintf(out, "  %-24s %s\n", "--section NAME", "read only the map under NAME of CONFIG (one file for a whole run)");
    }
    fprintf(out, "  %-24s %s\n", "--threads N",
            cmd->threads_help ? cmd->threads_help : "OpenMP threads (default: all cores; results do not depend on it)");
    fprintf(out, "  %-24s %s\n", "-h, --help", "show this help");
    if (!cmd->schema || cmd->schema->nkeys == 0) return;
    fprintf(out, "\nconfig keys (YAML file and --set; see docs/config.md):\n");
    for (size_t i = 0; i < cmd->schema->nkeys; i++) {
        const glora_config_key_t *k = &cmd->schema->keys[i];
        char desc[160];
        glora_config_describe(k, desc, sizeof desc);
        fprintf(out, "  %-28s %s", k->key, k->help);
        fprintf(out, " [%s", desc);
        if (k->def) fprintf(out, "; default %s", k->def[0] ? k->def : "\"\"");
        fprintf(out, "]\n");
    }
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* The config (its section when given) with the --set assignments applied. */
static int load_config(const cli_cmd_t *cmd, cli_args_t *args, const char *const *sets, int n_sets) {
    if (args->section && !args->config_path) return cli_usage_error(cmd->name, "--section needs a config file");
    if ((args->section ? glora_config_load_section(&args->cfg, args->config_path, args->section, cmd->schema)
                       : glora_config_load(&args->cfg, args->config_path, cmd->schema)) != GLORA_OK)
        return cli_fail();
    for (int i = 0; i < n_sets; i++)
        if (glora_config_set(args->cfg, sets[i]) != GLORA_OK) return cli_fail();
    return CLI_OK;
}

/* The config assignments of a command line: --set's and the flags' (those
 * built here owned). */
typedef struct {
    const char *sets[256];
    int n_sets;
    char *owned[256];
    int n_owned;
} cli_sets_t;

/* --set v: a key of the command's, or one it passes on (cmd->pass_set). */
static int take_set(const cli_cmd_t *cmd, const char *v, cli_args_t *args, cli_sets_t *s) {
    if (!v || !strchr(v, '=')) return cli_usage_error(cmd->name, "--set takes KEY=VALUE");
    if (cmd->pass_set && cmd->pass_set(v)) {
        if (args->n_passed == 256) return cli_usage_error(cmd->name, "too many --set options");
        args->passed[args->n_passed++] = v;
        return CLI_OK;
    }
    if (!cmd->schema) return cli_usage_error(cmd->name, "'glora %s' takes no config keys", cmd->name);
    if (s->n_sets == 256) return cli_usage_error(cmd->name, "too many --set options");
    s->sets[s->n_sets++] = v;
    return CLI_OK;
}

/* The flag argv[*i] (maybe "--flag=value"; its value may be argv[*i + 1],
 * then *i moves past it): a switch, a value the command reads, or a config
 * key's assignment. */
static int take_flag(const cli_cmd_t *cmd, int argc, char **argv, int *i, cli_args_t *args, cli_sets_t *s) {
    const char *a = argv[*i], *eq = strchr(a, '=');
    size_t alen = eq ? (size_t)(eq - a) : strlen(a), fi;
    for (fi = 0; fi < cmd->n_flags; fi++)
        if (strlen(cmd->flags[fi].flag) == alen && strncmp(cmd->flags[fi].flag, a, alen) == 0) break;
    if (fi == cmd->n_flags) return cli_usage_error(cmd->name, "unknown option '%s'", a);
    const cli_flag_t *f = &cmd->flags[fi];
    if (!f->arg) {
        if (eq) return cli_usage_error(cmd->name, "%s takes no value", f->flag);
        args->switches |= 1u << fi;
        return CLI_OK;
    }
    const char *v = eq ? eq + 1 : (*i + 1 < argc ? argv[++*i] : NULL);
    if (!v) return cli_usage_error(cmd->name, "%s needs a value (%s)", f->flag, f->arg);
    if (!f->key) {
        args->values[fi] = v;
        return CLI_OK;
    }
    size_t n = strlen(f->key) + strlen(v) + 2;
    char *assign = malloc(n);
    if (!assign || s->n_sets == 256 || s->n_owned == 256) {
        free(assign);
        return cli_usage_error(cmd->name, "too many options");
    }
    snprintf(assign, n, "%s=%s", f->key, v);
    s->owned[s->n_owned++] = assign;
    s->sets[s->n_sets++] = assign;
    return CLI_OK;
}

int cli_parse(const cli_cmd_t *cmd, int argc, char **argv, cli_args_t *args) {
    GLORA_ASSERT(cmd->n_flags <= 32 && cmd->max_positional <= 256);
    memset(args, 0, sizeof *args);
    for (int i = 1; cmd->section && i < argc; i++)
        if (strcmp(argv[i], "--section") == 0)
            return cli_usage_error(cmd->name, "%s reads its own '%s' section; no --section", cmd->name, cmd->section);
    cli_sets_t s = {.n_sets = 0};
    int rc = CLI_OK;
    for (int i = 1; i < argc && rc == CLI_OK; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            cli_help(cmd, stdout);
            rc = -1;
            break;
        }
        if (strcmp(a, "--threads") == 0) {
            char *end;
            long n = i + 1 < argc ? strtol(argv[i + 1], &end, 10) : 0;
            if (i + 1 >= argc || *end || n < 1 || n > 1024) {
                rc = cli_usage_error(cmd->name, "--threads takes a number of threads from 1 to 1024");
                break;
            }
            args->threads = (int)n;
            i++;
        } else if (strcmp(a, "--section") == 0) {
            if (i + 1 >= argc || !cmd->schema)
                rc = cli_usage_error(cmd->name, "--section takes the name of a top-level key of the config");
            else
                args->section = argv[++i];
        } else if (strcmp(a, "--set") == 0 || strncmp(a, "--set=", 6) == 0) {
            rc = take_set(cmd, a[5] == '=' ? a + 6 : (i + 1 < argc ? argv[++i] : NULL), args, &s);
        } else if (a[0] == '-' && a[1] != '\0') {
            rc = take_flag(cmd, argc, argv, &i, args, &s);
        } else if (cmd->schema && !args->config_path && (ends_with(a, ".yaml") || ends_with(a, ".yml"))) {
            args->config_path = a; /* the config */
        } else if (args->n_positional < cmd->max_positional) {
            args->positional[args->n_positional++] = a; /* one of the command's own */
        } else {
            rc = cli_usage_error(cmd->name, "unexpected argument '%s'", a);
        }
    }
    if (cmd->section && args->config_path) args->section = cmd->section;
    if (rc == CLI_OK && cmd->schema) rc = load_config(cmd, args, s.sets, s.n_sets);
    for (int i = 0; i < s.n_owned; i++) free(s.owned[i]);
    if (rc == CLI_OK && args->threads > 0) glora_set_threads(args->threads);
    if (rc != CLI_OK) cli_args_free(args);
    return rc;
}

void cli_args_free(cli_args_t *args) {
    glora_config_free(args->cfg);
    args->cfg = NULL;
}

int cli_switch(const cli_cmd_t *cmd, const cli_args_t *args, const char *flag) {
    for (size_t i = 0; i < cmd->n_flags; i++)
        if (strcmp(cmd->flags[i].flag, flag) == 0) return (args->switches >> i) & 1u;
    GLORA_ASSERT(!"switch not declared by the command");
    return 0;
}

const char *cli_value(const cli_cmd_t *cmd, const cli_args_t *args, const char *flag) {
    for (size_t i = 0; i < cmd->n_flags; i++)
        if (strcmp(cmd->flags[i].flag, flag) == 0) return args->values[i];
    GLORA_ASSERT(!"value flag not declared by the command");
    return NULL;
}

int cli_run_stage(const cli_stage_t *stage, int argc, char **argv) {
    cli_args_t args;
    int rc = cli_parse(stage->cmd, argc, argv, &args);
    if (rc) return rc < 0 ? CLI_OK : rc;
    int resume = 0;
    for (size_t i = 0; i < stage->cmd->n_flags; i++)
        if (strcmp(stage->cmd->flags[i].flag, "--resume") == 0) resume = cli_switch(stage->cmd, &args, "--resume");
    rc = stage->run(args.cfg, resume);
    cli_args_free(&args);
    return rc;
}

const char *cli_peer_env(void) {
    return getenv("GLORA_SET_GOMP_SPINCOUNT") ? "env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE -u GOMP_SPINCOUNT"
                                                : "env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE";
}

int cli_find_bench_script(const char *rel, char *out, size_t size) {
    if (access(rel, R_OK) == 0) {
        int n = snprintf(out, size, "%s", rel);
        return n > 0 && (size_t)n < size;
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return 0;
    exe[n] = 0;
    /* build/glora, build/.libs/glora (libtool) or a VPATH build beside src */
    for (int up = 0; up < 3; up++) {
        char *slash = strrchr(exe, '/');
        if (!slash) return 0;
        *slash = 0;
        int k = snprintf(out, size, "%s/%s", exe, rel);
        if (k > 0 && (size_t)k < size && access(out, R_OK) == 0) return 1;
    }
    return 0;
}

int cli_cmp_double(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

double cli_median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cli_cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}
