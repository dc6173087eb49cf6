/* Search checkpoints ("glora-search-checkpoint/1") through
 * glora_search_resume against a small fixed search (two ViT blocks, budget
 * tiers); a resumed search must then run one more generation cleanly.
 * fuzz_seed writes real checkpoints of that search after 0, 1 and 4
 * generations, so mutations start past the identity checks. */
#include "fuzz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "glora/common.h"
#include "util/fileio.h"
#include "glora/search.h"

static glora_search_layer_t layers[8];
static glora_search_opts_t opts;

static double zero_clock(void) { return 0; }

/* A pure function of the candidate, in [0, 1]. */
static int eval(void *ctx, const glora_layer_cfg_t *const *cands, size_t n, double *acc) {
    (void)ctx;
    for (size_t i = 0; i < n; i++) {
        uint64_t h = 1469598103934665603u;
        for (int l = 0; l < 8; l++)
            for (int t = 0; t < GLORA_NTENSORS; t++)
                h = (h ^ (uint64_t)(cands[i][l].t[t].kind * 16 + cands[i][l].t[t].rank)) *
                    1099511628211u;
        acc[i] = (double)(h % 1000) / 1000.0;
    }
    return 0;
}

static void setup(void) {
    static int done;
    if (done) return;
    done = 1;
    static const char *site[4] = {"attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2"};
    for (int b = 0; b < 2; b++) {
        int shapes[4][2] = {{48, 16}, {16, 16}, {32, 16}, {16, 32}};
        for (int s = 0; s < 4; s++) {
            glora_search_layer_t *l = &layers[4 * b + s];
            l->out = shapes[s][0];
            l->in = shapes[s][1];
            snprintf(l->name, sizeof l->name, "blocks.%d.%s", b, site[s]);
            glora_space_official(&l->space, 2);
        }
    }
    glora_search_opts_default(&opts);
    opts.population = 8;
    opts.parents = 3;
    opts.mutations = 3;
    opts.crossovers = 3;
    opts.generations = 4;
    opts.min_params = 100;
    opts.max_params = 2000;
    opts.seed = 11;
    opts.budgets[0] = 1000;
    opts.n_budgets = 1;
    opts.clock = zero_clock;
}

static glora_search_problem_t problem(void) {
    return (glora_search_problem_t){.n_layers = 8, .layers = layers, .evaluate = eval,
                                    .data_sha256 = "fuzz-data"};
}

static char *scratch(void) {
    /* tmpfs when there is one: every output is fsynced */
    char *d = strdup(access("/dev/shm", W_OK) == 0 ? "/dev/shm/glora-fuzz-ckpt-XXXXXX"
                                                   : "/tmp/glora-fuzz-ckpt-XXXXXX");
    if (d && !mkdtemp(d)) {
        free(d);
        return NULL;
    }
    return d;
}

static void rm_dir(const char *dir) {
    static const char *const names[] = {"checkpoint.json", "history.jsonl", "pareto.json",
                                        "best.json", "best-under-1K.json"};
    char p[512];
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        unlink(p);
    }
    rmdir(dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    setup();
    const char *path = fuzz_file(0, data, size);
    if (!path) return 0;
    glora_search_problem_t p = problem();
    glora_search_t *s;
    if (glora_search_create(&s, &p, &opts, "fuzz-config", "fuzz-supernet") != GLORA_OK) abort();
    int rc = glora_search_resume(s, path);
    if (rc) fuzz_debug("resume");
    if (rc == GLORA_OK && !glora_search_done(s)) {
        /* The accepted state must carry on: one more generation. */
        char *dir = scratch();
        if (dir) {
            /* e.g. no room left in a budget: an error, not a crash */
            if (glora_search_run(s, dir, NULL)) fuzz_debug("run");
            rm_dir(dir);
            free(dir);
        }
    }
    glora_search_free(s);
    return 0;
}

int fuzz_seed(const char *out) {
    setup();
    glora_search_problem_t p = problem();
    int stops[] = {0, 1, 4};
    for (int i = 0; i < 3; i++) {
        char *dir = scratch();
        if (!dir) return 1;
        glora_search_opts_t o = opts;
        o.stop_after = stops[i];
        glora_search_t *s;
        int rc = glora_search_create(&s, &p, &o, "fuzz-config", "fuzz-supernet");
        if (!rc) rc = glora_search_run(s, dir, NULL);
        glora_search_free(s);
        char src[512], name[64], *text = NULL;
        size_t n = 0;
        snprintf(src, sizeof src, "%s/checkpoint.json", dir);
        snprintf(name, sizeof name, "checkpoint-gen%d.json", stops[i]);
        if (!rc) rc = glora_read_file(src, 1 << 24, &text, &n);
        if (!rc) rc = fuzz_write(out, name, text, n);
        free(text);
        rm_dir(dir);
        free(dir);
        if (rc) {
            fprintf(stderr, "fuzz_seed: %s\n", glora_errmsg());
            return 1;
        }
    }
    return 0;
}
