/* glora bench train: supernet-training images/s on vit-tiny-28 (batch 64,
 * official 432-configuration space at rank 4, AdamW over the GLoRA tensors
 * and the head), side by side with the PyTorch peer bench/bench_train.py run
 * in the same invocation; peak RSS against what training must hold. */
#include "cli/cli.h"
#include "cli/cli_model.h"
#include "cli/commands.h"

#include "glora/common.h"
#include "glora/layer.h"
#include "glora/model.h"
#include "util/parallel.h"
#include "util/rng.h"
#include "glora/train.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <limits.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static const glora_config_key_t keys[] = {
    {"bench.batch", GLORA_CFG_INT, "64", "images per step", 1, 4096, NULL},
    {"bench.steps", GLORA_CFG_INT, "30", "timed steps per run", 1, 100000, NULL},
    {"bench.repeat", GLORA_CFG_INT, "3", "timed runs (the median is reported)", 1, 100, NULL},
    {"bench.rank", GLORA_CFG_INT, "4", "supernet rank", 1, GLORA_MAX_RANK, NULL},
    {"bench.arch", GLORA_CFG_STRING, "vit-tiny-28", "vit-tiny-28 or vit-b16 (224x224x3, random weights)", 0, 0, NULL},
    {"bench.shards", GLORA_CFG_INT, "0", "train.shards of the run (0: the default, 2)", 0, 64, NULL},
    {"bench.precision", GLORA_CFG_ENUM, "fp32", "train.precision of the run: fp32 or bf16 (the peer then runs its bf16 autocast too)", 0, 0, glora_precision_names},
    {"bench.peer", GLORA_CFG_STRING, "bench/bench_train.py", "PyTorch peer script (none: do not run it)", 0, 0, NULL},
    {"bench.python", GLORA_CFG_STRING, "/usr/bin/python3", "Python with torch for the peer", 0, 0, NULL},
};
static const glora_config_schema_t schema = GLORA_CONFIG_SCHEMA(keys);

static const cli_flag_t flags[] = {
    {"--batch", "bench.batch", "N", "batch size"},
    {"--steps", "bench.steps", "N", "timed steps per run"},
    {"--repeat", "bench.repeat", "N", "timed runs"},
    {"--arch", "bench.arch", "NAME", "vit-tiny-28 (default) or vit-b16"},
    {"--shards", "bench.shards", "N", "slices of each batch (train.shards)"},
    {"--precision", "bench.precision", "P", "fp32 (default) or bf16 (train.precision)"},
    {"--peer", "bench.peer", "SCRIPT", "PyTorch peer script (none to skip)"},
    {"--json", NULL, NULL, "print one JSON line instead of text"},
};

static const cli_cmd_t cmd = {
    .name = "bench train",
    .synopsis = "[CONFIG] [options]",
    .summary = "Supernet training speed on vit-tiny-28 (random weights and images, batch 64,\n"
               "every layer drawing from the official 432 configurations every step, AdamW\n"
               "over the GLoRA tensors and the head), 2 threads unless --threads says\n"
               "otherwise; then the PyTorch peer (bench/bench_train.py, the official layer\n"
               "code) at the same size in the same invocation, and the ratio. --arch vit-b16\n"
               "runs ViT-B/16 (224x224x3, random weights and images; give a small --steps and\n"
               "--repeat). --precision bf16 trains glora in bf16 (train.precision) and runs\n"
               "the peer's torch.autocast bf16 steps beside its fp32 ones.\n"
               "The default peer is the source tree's, found from the working directory or\n"
               "beside the build directory the binary lives in:\n"
               "  glora bench train",
    .schema = &schema,
    .flags = flags,
    .n_flags = sizeof flags / sizeof flags[0],
};

typedef struct {
    double runs[100];
    int n;
} runs_t;

static void on_epoch(const glora_train_progress_t *p, void *ctx) {
    runs_t *r = ctx;
    if (p->epoch > 0 && r->n < 100) r->runs[r->n++] = p->images_per_s; /* epoch 0 warms up */
}


/* Runs the peer and parses its JSON lines; 0 on success. ips[0], rss_mb[0]:
 * the fp32 steps; ips[1], rss_mb[1]: with bf16, the autocast bf16 steps. */
static int run_peer(const char *python, const char *script, int threads, int batch, int steps,
                    int repeat, const char *arch, int bf16, double ips[2], double rss_mb[2],
                    char *why, size_t why_n) {
    if (access(script, R_OK) != 0) {
        snprintf(why, why_n, "'%.400s' not found (run from the source tree, or --peer PATH)", script);
        return -1;
    }
    char cmdline[2 * PATH_MAX + 512];
    if (strlen(python) + strlen(script) > 2 * PATH_MAX) {
        snprintf(why, why_n, "peer command too long");
        return -1;
    }
    snprintf(cmdline, sizeof cmdline,
             "%s '%s' '%s' --threads %d --batch %d --steps %d "
             "--repeat %d --arch %s --classes 10 --warmup %d%s 2>&1",
             cli_peer_env(), python, script, threads, batch, steps, repeat, arch,
             strcmp(arch, "vit-b16") == 0 ? 1 : 5, bf16 ? " --bf16" : "");
    FILE *p = popen(cmdline, "r");
    if (!p) {
        snprintf(why, why_n, "cannot start '%s'", python);
        return -1;
    }
    char line[8192];
    int got = 0;
    while (fgets(line, sizeof line, p)) {
        cJSON *j = line[0] == '{' ? cJSON_Parse(line) : NULL;
        const cJSON *v = j ? cJSON_GetObjectItem(j, "images_per_s") : NULL;
        const cJSON *impl = j ? cJSON_GetObjectItem(j, "impl") : NULL;
        if (cJSON_IsNumber(v)) {
            const int w = cJSON_IsString(impl) && strstr(impl->valuestring, "bf16") ? 1 : 0;
            ips[w] = v->valuedouble;
            const cJSON *r = cJSON_GetObjectItem(j, "peak_rss_mb");
            rss_mb[w] = cJSON_IsNumber(r) ? r->valuedouble : 0;
            got |= 1 << w;
        }
        cJSON_Delete(j);
    }
    int st = pclose(p);
    const int found = got == (bf16 ? 3 : 1) ? 0 : -1;
    if (found != 0) snprintf(why, why_n, "'%.200s %.300s' printed no result (exit status %d)", python, script, st);
    return found;
}

/* The preset a with rank-R GLoRA tensors, initialised from seed 42, the
 * down factors non-zero as in a supernet under training. */
static int make_supernet(glora_vit_arch_t *a, int rank, glora_rng_t *rng, glora_vit_t **out) {
    int rc = glora_vit_arch_check(a);
    if (!rc) rc = glora_vit_create(out, a, rank);
    if (rc) return rc;
    glora_vit_t *m = *out;
    glora_rng_seed(rng, 42);
    glora_train_init_vit(m, rng);
    glora_train_init_adapters(m, rng);
    for (int l = 0; l < glora_vit_layers(m); l++) {
        glora_adapter_t *ad = &m->adapters[l];
        for (int k = 0; k < ad->out * rank; k++) {
            ad->Ad[k] = glora_rng_uniform_f(rng, -0.01f, 0.01f);
            ad->Bd[k] = glora_rng_uniform_f(rng, -0.01f, 0.01f);
        }
        for (int k = 0; k < ad->in * rank; k++) ad->Cd[k] = glora_rng_uniform_f(rng, -0.01f, 0.01f);
    }
    return GLORA_OK;
}

/* Memory training must hold, in MB: weights, the tapes and backward
 * workspaces of the shards in flight (glora/train.h: as many as threads,
 * and no more than GLORA_TRAIN_LIVE_BYTES of them), gradients and AdamW
 * moments of the trainable tensors. */
static double needed_mb(const glora_vit_t *m, const unsigned char *mask, int shards, int batch, int threads) {
    size_t trainable = 0;
    for (int i = 0; i < m->n_params; i++) trainable += mask[i] ? m->params[i].numel : 0;
    const int nsh = shards > 0 ? (shards < batch ? shards : batch) : (batch < 2 ? batch : 2);
    const size_t per = ((size_t)batch + (size_t)nsh - 1) / (size_t)nsh,
                 shard = glora_vit_shard_bytes(m, per), fit = GLORA_TRAIN_LIVE_BYTES / shard;
    size_t live = (size_t)(threads < nsh ? threads : nsh);
    if (live > fit) live = fit;
    if (live < 1) live = 1;
    const size_t acts = live * shard / sizeof(float);
    return (double)(m->n_floats + acts + 3 * trainable) * 4.0 / (1024.0 * 1024.0);
}

/* What a run measured, for the report. */
typedef struct {
    const char *arch;
    int rank, batch, steps, threads;
    glora_precision_t prec;
    double ips, peak_mb, need_mb;
    int have_peer;
    const char *peer;
    double peer_ips[2], peer_rss[2]; /* fp32, bf16 autocast (with bf16) */
    const char *why;
} report_t;

static void report(const report_t *r, const runs_t *runs, int json) {
    const int bf16 = r->prec == GLORA_BF16;
    const double ips = r->ips;
    if (json) {
        printf("{\"bench\": \"train\", \"impl\": \"glora\", \"images_per_s\": %.1f, \"runs_images_per_s\": [", ips);
        for (int i = 0; i < runs->n; i++) printf("%s%.1f", i ? ", " : "", runs->runs[i]);
        printf("], \"threads\": %d, \"batch\": %d, \"steps\": %d, \"rank\": %d, \"peak_rss_mb\": %.1f, "
               "\"needed_mb\": %.1f, \"arch\": \"%s\", \"precision\": \"%s\"", r->threads, r->batch, r->steps,
               r->rank, r->peak_mb, r->need_mb, r->arch, glora_precision_name(r->prec));
        if (r->have_peer) {
            printf(", \"pytorch_images_per_s\": %.1f, \"ratio\": %.2f", r->peer_ips[0],
                   r->peer_ips[0] > 0 ? ips / r->peer_ips[0] : 0);
            if (bf16)
                printf(", \"pytorch_bf16_images_per_s\": %.1f, \"ratio_bf16\": %.2f", r->peer_ips[1],
                       r->peer_ips[1] > 0 ? ips / r->peer_ips[1] : 0);
        }
        printf("}\n");
        return;
    }
    printf("supernet training, %s, rank %d, batch %d, %d threads, %s\n", r->arch, r->rank, r->batch,
           r->threads, glora_precision_name(r->prec));
    printf("  glora          %8.2f images/s (median of", ips);
    for (int i = 0; i < runs->n; i++) printf(" %.3g", runs->runs[i]);
    printf(")\n");
    if (r->have_peer) {
        printf("  pytorch fp32   %8.2f images/s (%s, same invocation): glora %.2fx\n", r->peer_ips[0], r->peer,
               r->peer_ips[0] > 0 ? ips / r->peer_ips[0] : 0);
        if (bf16)
            printf("  pytorch bf16   %8.2f images/s (torch.autocast bf16): glora %.2fx\n", r->peer_ips[1],
                   r->peer_ips[1] > 0 ? ips / r->peer_ips[1] : 0);
    } else {
        printf("  pytorch  not run: %s\n", r->why[0] ? r->why : "--peer none");
    }
    printf("  peak RSS %.1f MB; weights + tapes of the shards in flight + gradients and AdamW state: "
           "%.1f MB (%.2fx)\n", r->peak_mb, r->need_mb, r->peak_mb / r->need_mb);
    if (r->have_peer && r->peer_rss[0] > 0)
        printf("  pytorch peak RSS %.1f MB (its process, all its steps)\n",
               r->peer_rss[bf16 && r->peer_rss[1] > r->peer_rss[0]]);
}

int glora_cmd_bench_train(int argc, char **argv) {
    cli_args_t args;
    int rc = cli_parse(&cmd, argc, argv, &args);
    if (rc) return rc < 0 ? CLI_OK : rc;
    const glora_config_t *cfg = args.cfg;
    if (args.threads == 0) glora_set_threads(2);
    const int threads = glora_max_threads();
    const int batch = (int)glora_config_int(cfg, "bench.batch");
    const int steps = (int)glora_config_int(cfg, "bench.steps");
    const int repeat = (int)glora_config_int(cfg, "bench.repeat");
    const int rank = (int)glora_config_int(cfg, "bench.rank");
    const int json = cli_switch(&cmd, &args, "--json");

    glora_vit_t *m = NULL;
    unsigned char *mask = NULL;
    float *x = NULL;
    int *y = NULL;
    int status = CLI_FAIL;
    const char *arch = glora_config_string(cfg, "bench.arch");
    const int shards = (int)glora_config_int(cfg, "bench.shards");
    glora_precision_t prec = GLORA_FP32;
    if (glora_precision_parse(glora_config_string(cfg, "bench.precision"), "bench 'precision'", &prec))
        goto fail;
    if (prec == GLORA_BF16 && glora_bgemm_emulated())
        fprintf(stderr, "glora: note: this CPU lacks AVX512_BF16; bf16 runs an exact software "
                        "emulation (the same results, much slower)\n");
    const int b16 = strcmp(arch, "vit-b16") == 0;
    if (!b16 && strcmp(arch, "vit-tiny-28") != 0) {
        glora_error(GLORA_EINVAL, "bench 'arch': '%s', expected vit-tiny-28 or vit-b16", arch);
        goto fail;
    }
    /* The preset of glora init, with a 10-class head (labels are random). */
    glora_vit_arch_t a = glora_arch_preset(arch);
    a.num_classes = 10;
    glora_rng_t rng;
    if (make_supernet(&a, rank, &rng, &m)) goto fail;
    mask = calloc((size_t)m->n_params, 1);
    const size_t n = (size_t)batch * steps,
                 img = (size_t)a.in_chans * a.img_size * a.img_size;
    x = malloc(n * img * sizeof *x);
    y = malloc(n * sizeof *y);
    if (!mask || !x || !y) {
        glora_error(GLORA_ENOMEM, "bench 'train': out of memory");
        goto fail;
    }
    for (size_t i = 0; i < n * img; i++) x[i] = glora_rng_uniform_f(&rng, -1, 1);
    for (size_t i = 0; i < n; i++) y[i] = (int)glora_rng_below(&rng, 10);
    if (glora_train_select(m, "adapter,head", mask)) goto fail;
    glora_space_t space;
    glora_space_official(&space, rank);
    runs_t runs = {0};
    glora_train_opts_t o = {0};
    o.epochs = repeat + 1;
    o.batch = (size_t)batch;
    o.shards = shards;
    o.precision = prec;
    o.sched = (glora_sched_t){.lr = 1e-3, .warmup_start = 1e-6, .floor = 1e-5};
    o.adamw = (glora_adamw_cfg_t){0.9, 0.999, 1e-8, 1e-4};
    o.seed = 42;
    o.space = &space;
    o.on_epoch = on_epoch;
    o.cb_ctx = &runs;
    glora_dataset_t td = {.n = n, .c = a.in_chans, .h = a.img_size, .w = a.img_size, .x = x, .y = y, .num_classes = 10};
    if (!json) fprintf(stderr, "glora: %d timed runs of %d steps (batch %d, %d threads)...\n", repeat, steps, batch, threads);
    if (glora_train_run(m, mask, &o, &td, NULL, NULL)) goto fail;
    qsort(runs.runs, (size_t)runs.n, sizeof runs.runs[0], cli_cmp_double);
    const double ips = runs.runs[runs.n / 2];

    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    const double peak_mb = (double)ru.ru_maxrss / 1024.0;
    const double need_mb = needed_mb(m, mask, shards, batch, threads);

    report_t rep = {.arch = arch, .rank = rank, .batch = batch, .steps = steps, .threads = threads,
                    .prec = prec, .ips = ips, .peak_mb = peak_mb, .need_mb = need_mb};
    char why[600] = "";
    const char *peer = glora_config_string(cfg, "bench.peer");
    char found[PATH_MAX];
    /* The default peer is found from anywhere, as bench search finds its own. */
    if (peer && strcmp(peer, "bench/bench_train.py") == 0 &&
        cli_find_bench_script(peer, found, sizeof found))
        peer = found;
    rep.have_peer = peer && peer[0] && strcmp(peer, "none") != 0 &&
                    run_peer(glora_config_string(cfg, "bench.python"), peer, threads, batch, steps, repeat,
                             arch, prec == GLORA_BF16, rep.peer_ips, rep.peer_rss, why, sizeof why) == 0;
    rep.peer = peer;
    rep.why = why;
    report(&rep, &runs, json);
    status = CLI_OK;
    goto out;
fail:
    status = cli_fail();
out:
    free(mask);
    free(x);
    free(y);
    glora_vit_free(m);
    cli_args_free(&args);
    return status;
}
