/* glora bench search: candidate evaluations per second of the search's
 * fitness (glora_search_fitness_score_ws: each candidate merged once, one
 * GEMM per adapted layer, one candidate per thread, buffers kept between
 * runs as the search keeps them between generations), beside the PyTorch peer
 * bench/bench_search.py (the official evaluation loop and a careful one)
 * run in the same invocation. */
#include "cli/cli.h"
#include "cli/commands.h"

#include "glora/common.h"
#include "glora/data.h"
#include "glora/gemm.h"
#include "glora/model.h"
#include "util/parallel.h"
#include "util/rng.h"
#include "glora/search.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static const cli_flag_t flags[] = {
    {"--candidates", NULL, "N", "timed candidates per run (default 40)"},
    {"--warmup", NULL, "N", "untimed candidates first (default 4; glora's at least one per thread, so that each "
                            "thread's buffers exist before the timing, as they do after a search's first candidates)"},
    {"--repeat", NULL, "N", "timed runs; the median is reported (default 3)"},
    {"--batch", NULL, "N", "glora's images per forward pass (search.batch; default 32)"},
    {"--arch", NULL, "A", "vit-tiny-28 (default) or vit-b16, random weights"},
    {"--precision", NULL, "P", "fp32 (default) or bf16 (search.precision)"},
    {"--images", NULL, "N", "images per candidate (default 200)"},
    {"--backbone", NULL, "FILE", "backbone safetensors (with --supernet)"},
    {"--supernet", NULL, "FILE", "supernet safetensors"},
    {"--data", NULL, "DIR", "directory with train-images-idx3-ubyte[.gz] and labels (default: data/fashion-mnist, "
                            "then /usr/share/datasets/fashion-mnist)"},
    {"--no-peer", NULL, NULL, "glora only"},
    {"--peer-script", NULL, "FILE", "the peer (default: bench/bench_search.py of the source tree)"},
    {"--peak-gflops", NULL, "X", "the peak for the 'physical limit' line (default: measured as glora bench peak "
                                 "does, for --precision, 1 s)"},
    {"--json", NULL, NULL, "JSON lines only"},
};

static const cli_cmd_t cmd = {
    .name = "bench search",
    .synopsis = "[--threads N] [--candidates N] [--warmup N] [--repeat N]\n"
                "                          [--arch vit-tiny-28|vit-b16] [--precision fp32|bf16]\n"
                "                          [--images N] [--backbone FILE --supernet FILE] [--data DIR]\n"
                "                          [--no-peer] [--peer-script FILE] [--json]",
    .summary =
        "Times the search's fitness: top-1 accuracy of random candidates from the official\n"
        "space on 200 images (Fashion-MNIST val200 = train examples 800..999 when found,\n"
        "else random images), as images/s and candidates/s, the median of --repeat runs,\n"
        "and glora's CPU seconds per image over them (its process, all threads: on a\n"
        "loaded machine, the figure to compare). Each run embeds the images and merges\n"
        "every candidate; glora's buffers (merged weights, kept packed, activations) are\n"
        "kept from run to run, as glora search keeps them from one generation to the next.\n"
        "Without model files the model is --arch (vit-tiny-28, or vit-b16: ViT-B/16 at\n"
        "224x224x3 on random images) with random weights and rank-4 GLoRA tensors.\n"
        "--precision bf16 runs glora's products with AVX512_BF16 and the peer's bf16\n"
        "autocast ways beside its fp32 ones. The PyTorch peer (bench/bench_search.py: the official evaluation\n"
        "loop and a careful one) runs in the same invocation, between glora's runs, with\n"
        "the same settings, through /usr/bin/python3 with OPENBLAS_CORETYPE and\n"
        "OPENBLAS_L2_SIZE unset.",
    .flags = flags,
    .n_flags = sizeof flags / sizeof flags[0],
    .threads_help = "threads for glora and torch (default 2)",
};

static int usage_error(const char *fmt, const char *arg) {
    fprintf(stderr, "glora: error: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nhint: see 'glora bench search --help'\n");
    return 2;
}

static int fail(void) {
    fprintf(stderr, "glora: error: %s\n", glora_errmsg());
    if (glora_errhint()) fprintf(stderr, "hint: %s\n", glora_errhint());
    return 1;
}

static int parse_count(const char *s, int lo, int hi, int *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return -1;
    *out = (int)v;
    return 0;
}


/* Forward FLOPs of one image: 2 x the multiply-adds of the patch embedding,
 * the linears of every block, attention's two products and the head. */
static double flops_per_image(const glora_vit_arch_t *a) {
    double T = a->tokens, C = a->dim, H = a->mlp_hidden;
    double pe = (double)a->num_patches * C * a->in_chans * a->patch * a->patch;
    double lin = T * (C * 3 * C + C * C + 2 * C * H);
    double att = 2 * T * T * C;
    return 2 * (pe + a->depth * (lin + att) + C * a->num_classes);
}

/* What glora executes per image: the last block runs the cls token's query,
 * projection and MLP alone (every token's key and value still), and the
 * patch embedding is shared by all candidates (not counted). */
static double flops_executed(const glora_vit_arch_t *a) {
    double T = a->tokens, C = a->dim, H = a->mlp_hidden;
    double lin = T * (C * 3 * C + C * C + 2 * C * H);
    double att = 2 * T * T * C;
    double last = T * 2 * C * C + C * C + C * C + 2 * C * H + 2 * T * C;
    return 2 * ((a->depth - 1) * (lin + att) + last + C * a->num_classes);
}

/* Peak resident memory of this process (not of the peer, a child), MB. */
static double cli_peak_rss_mb(void) {
    struct rusage ru;
    return getrusage(RUSAGE_SELF, &ru) == 0 ? (double)ru.ru_maxrss / 1024.0 : 0.0;
}

static int file_exists(const char *p) { return access(p, R_OK) == 0; }

static int find_data(const char *dir, char img[PATH_MAX], char lab[PATH_MAX]) {
    const char *dirs[] = {dir, "data/fashion-mnist", "/usr/share/datasets/fashion-mnist"};
    for (size_t d = dir ? 0 : 1; d < sizeof dirs / sizeof *dirs; d++) {
        for (int gz = 0; gz < 2; gz++) {
            snprintf(img, PATH_MAX, "%s/train-images-idx3-ubyte%s", dirs[d], gz ? ".gz" : "");
            snprintf(lab, PATH_MAX, "%s/train-labels-idx1-ubyte%s", dirs[d], gz ? ".gz" : "");
            if (file_exists(img) && file_exists(lab)) return 1;
        }
        if (dir) return 0; /* an explicit --data must hold the files */
    }
    return 0;
}

typedef struct {
    char impl[64];
    double images_per_s;
} peer_line_t;

/* Runs the peer; keeps its JSON lines (printed too with --json). */
static int run_peer(const char *script, int threads, int candidates, int warmup, int repeat,
                    const char *arch, int bf16, int images, const char *backbone,
                    const char *supernet, const char *datadir, int json, peer_line_t *lines,
                    int *n_lines) {
    char cmd[4 * PATH_MAX + 512];
    int n = snprintf(cmd, sizeof cmd,
                     "%s /usr/bin/python3 '%s' --threads %d "
                     "--candidates %d --warmup %d --repeat %d --images %d%s%s",
                     cli_peer_env(), script, threads, candidates, warmup, repeat, images,
                     backbone ? "" : " --arch ", backbone ? "" : arch);
    if (bf16) n += snprintf(cmd + n, sizeof cmd - (size_t)n, " --bf16");
    if (backbone)
        n += snprintf(cmd + n, sizeof cmd - (size_t)n, " --backbone '%s' --supernet '%s'", backbone,
                      supernet);
    if (datadir) snprintf(cmd + n, sizeof cmd - (size_t)n, " --data '%s'", datadir);
    FILE *p = popen(cmd, "r");
    if (!p) return glora_error(GLORA_EIO, "peer '%s': cannot start: %s", script, strerror(errno));
    char line[4096];
    *n_lines = 0;
    while (fgets(line, sizeof line, p)) {
        cJSON *j = cJSON_Parse(line);
        const cJSON *impl = cJSON_GetObjectItem(j, "impl"), *ips = cJSON_GetObjectItem(j, "images_per_s");
        if (cJSON_IsString(impl) && cJSON_IsNumber(ips) && *n_lines < 8) {
            snprintf(lines[*n_lines].impl, sizeof lines[0].impl, "%s", impl->valuestring);
            lines[*n_lines].images_per_s = ips->valuedouble;
            (*n_lines)++;
            if (json) fputs(line, stdout);
        }
        cJSON_Delete(j);
    }
    int st = pclose(p);
    if (st != 0 || *n_lines == 0)
        return glora_error(GLORA_EIO, "peer '%s': exited with status %d after %d result lines", script,
                           st, *n_lines);
    return 0;
}

typedef struct {
    int threads, candidates, warmup, repeat, peer, json, batch, n_img;
    int warm; /* glora's warm-up candidates: --warmup, at least one per thread */
    const char *backbone, *supernet, *datadir, *script, *arch;
    glora_precision_t prec;
    double peak;
} opts_t;

/* The value of option a; returns non-zero when it is bad. */
static int parse_value(opts_t *o, const char *a, const char *v) {
    int bad = 0;
    if (!strcmp(a, "--candidates")) bad = parse_count(v, 1, 100000, &o->candidates);
    else if (!strcmp(a, "--warmup")) bad = parse_count(v, 0, 100000, &o->warmup);
    else if (!strcmp(a, "--repeat")) bad = parse_count(v, 1, 1000, &o->repeat);
    else if (!strcmp(a, "--batch")) bad = parse_count(v, 1, 200, &o->batch);
    else if (!strcmp(a, "--backbone")) o->backbone = v;
    else if (!strcmp(a, "--supernet")) o->supernet = v;
    else if (!strcmp(a, "--data")) o->datadir = v;
    else if (!strcmp(a, "--peer-script")) o->script = v;
    else if (!strcmp(a, "--images")) bad = parse_count(v, 1, 100000, &o->n_img);
    else if (!strcmp(a, "--arch")) {
        o->arch = v;
        bad = strcmp(v, "vit-tiny-28") != 0 && strcmp(v, "vit-b16") != 0;
    } else if (!strcmp(a, "--precision")) {
        bad = glora_precision_parse(v, "--precision", &o->prec) != GLORA_OK;
        glora_error_clear();
    }
    else {
        char *end;
        o->peak = strtod(v, &end);
        bad = *end || !(o->peak > 0);
    }
    return bad;
}

/* Returns -1 to go on, else the exit status (help printed: 0). */
static int parse_args(int argc, char **argv, opts_t *o) {
    *o = (opts_t){.threads = 2, .candidates = 40, .warmup = 4, .repeat = 3, .peer = 1, .batch = 32,
                  .n_img = 200, .arch = "vit-tiny-28", .prec = GLORA_FP32};
    cli_args_t args;
    int rc = cli_parse(&cmd, argc, argv, &args);
    if (rc) return rc < 0 ? CLI_OK : rc;
    if (args.threads) o->threads = args.threads;
    o->peer = !cli_switch(&cmd, &args, "--no-peer");
    o->json = cli_switch(&cmd, &args, "--json");
    for (size_t i = 0; i < cmd.n_flags; i++)
        if (args.values[i] && parse_value(o, flags[i].flag, args.values[i]))
            return usage_error("bad value '%s'", args.values[i]);
    if (!o->backbone != !o->supernet) return usage_error("%s", "--backbone and --supernet go together");
    o->warm = o->warmup > 0 && o->warmup < o->threads ? o->threads : o->warmup;
    return -1;
}

/* The supernet given, or vit-tiny-28 (the evaluation protocol,
 * docs/RESULTS.md) or ViT-B/16 with random weights and non-zero GLoRA
 * tensors. */
static int make_model(const opts_t *o, glora_rng_t *r, glora_vit_t **out) {
    glora_vit_t *m;
    if (o->backbone) {
        if (glora_vit_load(out, o->backbone, o->supernet, 0)) return GLORA_EIO;
        if ((*out)->rank < 1) return glora_error(GLORA_ESTATE, "supernet '%s': has no GLoRA tensors", o->supernet);
        return GLORA_OK;
    }
    glora_vit_arch_t a = {.img_size = 28, .in_chans = 1, .patch = 7, .dim = 128, .depth = 6,
                          .heads = 4, .mlp_hidden = 512, .num_classes = 10};
    if (!strcmp(o->arch, "vit-b16"))
        a = (glora_vit_arch_t){.img_size = 224, .in_chans = 3, .patch = 16, .dim = 768,
                               .depth = 12, .heads = 12, .mlp_hidden = 3072,
                               .num_classes = 1000};
    if (glora_vit_create(out, &a, 4)) return GLORA_ENOMEM;
    m = *out;
    for (int i = 0; i < m->n_params; i++) {
        const glora_param_t *p = &m->params[i];
        int gain = strstr(p->name, "norm") && strstr(p->name, ".weight");
        for (size_t k = 0; k < p->numel; k++)
            m->mem[p->offset + k] = gain ? 1.0f : 0.1f * (float)glora_rng_normal(r);
    }
    return GLORA_OK;
}

/* The images: Fashion-MNIST val200 into *ds when found and fitting the
 * model (o->datadir then names its directory, for the peer), else random
 * images in *rnd (xr, yr its storage). *data is the one to use. */
typedef struct {
    glora_dataset_t ds, rnd;
    float *xr;
    int *yr;
    const glora_dataset_t *data;
    const char *desc;
} images_t;

static int make_images(opts_t *o, const glora_vit_arch_t *A, glora_rng_t *r, images_t *im) {
    static char dbuf[PATH_MAX];
    char img[PATH_MAX], lab[PATH_MAX];
    const int N_IMG = o->n_img;
    im->desc = "random images";
    im->data = &im->ds;
    if (find_data(o->datadir, img, lab) && A->img_size == 28 && A->in_chans == 1 && A->num_classes >= 10) {
        if (glora_idx_load(&im->ds, img, lab, 800, N_IMG, 0.5f, 0.5f)) return GLORA_EIO;
        im->desc = "fashion-mnist val200";
        if (!o->datadir) {
            snprintf(dbuf, sizeof dbuf, "%s", img);
            *strrchr(dbuf, '/') = 0;
            o->datadir = dbuf; /* the peer reads the same images */
        }
        return GLORA_OK;
    }
    if (o->datadir)
        return glora_error(GLORA_EINVAL, "data '%s': no train-images-idx3-ubyte[.gz] / labels there "
                                         "fitting the model", o->datadir);
    size_t n = (size_t)N_IMG * A->in_chans * A->img_size * A->img_size;
    im->xr = malloc(n * sizeof *im->xr);
    im->yr = malloc(N_IMG * sizeof *im->yr);
    if (!im->xr || !im->yr) return glora_error(GLORA_ENOMEM, "bench search: out of memory");
    for (size_t i = 0; i < n; i++) im->xr[i] = (float)glora_rng_normal(r);
    for (int i = 0; i < N_IMG; i++) im->yr[i] = (int)glora_rng_below(r, (uint64_t)A->num_classes);
    im->rnd = (glora_dataset_t){.n = N_IMG, .c = A->in_chans, .h = A->img_size, .w = A->img_size,
                                .x = im->xr, .y = im->yr, .num_classes = A->num_classes};
    im->data = &im->rnd;
    return GLORA_OK;
}

/* The result: runs[] (images/s in run order), their median g, CPU seconds
 * per image, the peers'. */
static void report(const opts_t *o, const glora_vit_t *m, const char *data_desc, const double *runs, double g,
                   double cpu, const peer_line_t *pl, int npl) {
    const glora_vit_arch_t *A = &m->arch;
    const int N_IMG = o->n_img, repeat = o->repeat;
    const double peak = o->peak, fpi = flops_per_image(A), gflops = g * fpi * 1e-9;
    if (o->json) {
        printf("{\"bench\": \"search\", \"impl\": \"glora\", \"images_per_s\": %.4g, "
               "\"candidates_per_s\": %.4g, \"runs_images_per_s\": [",
               g, g / N_IMG);
        for (int k = 0; k < repeat; k++) printf("%s%.4g", k ? ", " : "", runs[k]);
        printf("], \"threads\": %d, \"images\": %d, \"candidates\": %d, \"rank\": %d, "
               "\"mflop_per_image\": %.1f, \"gflop_per_s\": %.1f, \"data\": \"%s\", "
               "\"precision\": \"%s\", \"executed_gflop_per_s\": %.1f, \"peak_gflop_per_s\": %.1f, "
               "\"peak_rss_mb\": %.1f, \"cpu_s_per_image\": %.4g",
               o->threads, N_IMG, o->candidates, m->rank, fpi * 1e-6, gflops, data_desc,
               glora_precision_name(o->prec), g * flops_executed(A) * 1e-9, peak, cli_peak_rss_mb(),
               cpu);
        for (int i = 0; i < npl; i++)
            printf(", \"speedup_vs_%s\": %.2f", pl[i].impl, pl[i].images_per_s > 0 ? g / pl[i].images_per_s : 0);
        printf("}\n");
        return;
    }
    printf("  %-18s %8.4g images/s  %7.3g candidates/s  (runs:", "glora", g, g / N_IMG);
    for (int k = 0; k < repeat; k++) printf(" %.4g", runs[k]);
    printf(")\n");
    printf("  %-18s %8.4g CPU s per image (glora's process, all threads, over the timed runs:\n"
           "  %-18s %8s on a loaded machine, compare this rather than images/s)\n",
           "CPU time", cpu, "", "");
    for (int i = 0; i < npl; i++)
        printf("  %-21s %8.4g images/s  glora is %.2fx\n", pl[i].impl, pl[i].images_per_s,
               pl[i].images_per_s > 0 ? g / pl[i].images_per_s : 0);
    printf("  physical limit: %.1f MFLOP per image (the whole forward) at %.0f GFLOP/s (%s "
           "peak, measured now) = %.0f images/s; glora reaches %.0f%% of it\n"
           "  (glora executes %.1f MFLOP per image, %.1f GFLOP/s = %.0f%% of the peak: the "
           "last block for the cls token alone, the patch embedding once per generation)\n"
           "  peak RSS %.0f MB\n",
           fpi * 1e-6, peak, glora_precision_name(o->prec), peak > 0 ? peak * 1e9 / fpi : 0,
           peak > 0 ? 100 * gflops / peak : 0, flops_executed(A) * 1e-6,
           g * flops_executed(A) * 1e-9,
           peak > 0 ? 100 * g * flops_executed(A) * 1e-9 / peak : 0, cli_peak_rss_mb());
}

/* The fitness of candidates [c0, c0 + n) on ws, the search's buffers kept
 * from one generation to the next as glora search keeps them. */
static int fitness(const opts_t *o, glora_search_ws_t *ws, const glora_vit_t *m,
                   const glora_layer_cfg_t **cands, size_t c0, size_t n,
                   const glora_dataset_t *data, uint64_t *correct) {
    memset(correct, 0, n * sizeof *correct);
    return glora_search_fitness_score_ws(ws, m, cands + c0, n, data, 0, data->n, (size_t)o->batch,
                                         correct, NULL);
}

/* User + system CPU seconds of this process (all its threads, not the
 * peer's), so far. */
static double process_cpu_seconds(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0.0;
    return (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec +
           (double)ru.ru_stime.tv_sec + 1e-6 * (double)ru.ru_stime.tv_usec;
}

/* Times runs [k0, k1) of the fitness of the candidates after the warm-up;
 * their CPU time is added to *cpu. */
static int time_runs(const opts_t *o, glora_search_ws_t *ws, const glora_vit_t *m,
                     const glora_layer_cfg_t **cands, const glora_dataset_t *data,
                     uint64_t *correct, double *runs, int k0, int k1, double *cpu) {
    for (int k = k0; k < k1; k++) {
        double t0 = glora_now(), c0 = process_cpu_seconds();
        if (fitness(o, ws, m, cands, (size_t)o->warm, (size_t)o->candidates, data, correct))
            return GLORA_EINVAL;
        runs[k] = glora_now() - t0;
        *cpu += process_cpu_seconds() - c0;
    }
    return GLORA_OK;
}

/* The peer between glora's runs; npl 0 when it did not run. */
static void peer_runs(const opts_t *o, const images_t *im, peer_line_t *pl, int *npl) {
    char found[PATH_MAX];
    const char *script = o->script;
    *npl = 0;
    if (o->peer && !script && cli_find_bench_script("bench/bench_search.py", found, sizeof found)) script = found;
    if (o->peer && !script) {
        fprintf(stderr, "glora bench search: bench/bench_search.py not found (run from the source "
                        "tree or pass --peer-script); glora only\n");
    } else if (o->peer && run_peer(script, o->threads, o->candidates, o->warmup, o->repeat, o->arch,
                                   o->prec == GLORA_BF16, o->n_img, o->backbone, o->supernet,
                                   im->ds.n ? o->datadir : NULL, o->json, pl, npl)) {
        fprintf(stderr, "glora: warning: %s; glora only\n", glora_errmsg());
        *npl = 0;
    }
}

int glora_cmd_bench_search(int argc, char **argv) {
    opts_t o;
    int rc = parse_args(argc, argv, &o);
    if (rc >= 0) return rc;
    glora_set_threads(o.threads);
    glora_vit_t *m = NULL;
    images_t im = {0};
    glora_layer_cfg_t *cfg = NULL;
    const glora_layer_cfg_t **cands = NULL;
    double *runs = NULL, *sorted = NULL;
    uint64_t *correct = NULL;
    glora_search_ws_t *ws = glora_search_ws_new();
    peer_line_t pl[8];
    int npl = 0;
    glora_rng_t r;
    glora_rng_seed(&r, 1);
    rc = 1;
    if (make_model(&o, &r, &m)) goto out_fail;
    m->precision = o.prec;
    if (o.prec == GLORA_BF16 && glora_bgemm_emulated())
        fprintf(stderr, "glora: note: this CPU lacks AVX512_BF16; bf16 runs an exact software "
                        "emulation (the same results, much slower)\n");
    if (o.peak <= 0 && glora_gemm_peak(o.prec, 1.0, &o.peak) != GLORA_OK) {
        glora_error_clear();
        o.peak = 0;
    }
    const glora_vit_arch_t *A = &m->arch;
    if (make_images(&o, A, &r, &im)) goto out_fail;

    /* Random candidates of the official space, gene by gene. */
    int L = glora_vit_layers(m), total = o.warm + o.candidates;
    glora_space_t space;
    glora_space_official(&space, m->rank);
    cfg = malloc((size_t)total * (size_t)L * sizeof *cfg);
    cands = malloc((size_t)total * sizeof *cands);
    correct = malloc((size_t)total * sizeof *correct);
    runs = malloc((size_t)o.repeat * sizeof *runs);
    sorted = malloc((size_t)o.repeat * sizeof *sorted);
    if (!cfg || !cands || !correct || !runs || !sorted || !ws) goto out_oom;
    for (int c = 0; c < total; c++) {
        for (int l = 0; l < L; l++)
            for (int t = 0; t < GLORA_NTENSORS; t++)
                cfg[(size_t)c * L + l].t[t] = space.opt[t][glora_rng_below(&r, (uint64_t)space.n[t])];
        cands[c] = cfg + (size_t)c * L;
    }

    if (!o.json)
        printf("glora bench search: %dx%d ViT dim %d depth %d, rank %d, %d images (%s), %d candidates "
               "x %d runs, %d threads, %s (%s)\n",
               A->img_size, A->img_size, A->dim, A->depth, m->rank, o.n_img, im.desc, o.candidates,
               o.repeat, o.threads, glora_precision_name(o.prec),
               o.prec == GLORA_BF16 ? glora_bgemm_ukernel() : glora_gemm_ukernel());
    fflush(stdout);
    if (o.warm && fitness(&o, ws, m, cands, 0, (size_t)o.warm, im.data, correct)) goto out_fail;
    /* glora's runs before and after the peer's, so that a burst of load on
     * the shared machine does not fall on one side only. */
    int before = (o.repeat + 1) / 2;
    double cpu = 0.0;
    if (time_runs(&o, ws, m, cands, im.data, correct, runs, 0, before, &cpu)) goto out_fail;
    peer_runs(&o, &im, pl, &npl);
    if (time_runs(&o, ws, m, cands, im.data, correct, runs, before, o.repeat, &cpu)) goto out_fail;
    /* CPU seconds per image over all timed runs */
    cpu /= (double)o.repeat * o.candidates * o.n_img;
    /* runs[] become images/s in run order (printed), sorted[] gives the median */
    for (int k = 0; k < o.repeat; k++) runs[k] = (double)o.candidates * o.n_img / runs[k];
    memcpy(sorted, runs, (size_t)o.repeat * sizeof *sorted);
    report(&o, m, im.desc, runs, cli_median(sorted, o.repeat), cpu, pl, npl);
    rc = 0;
    goto out;
out_oom:
    glora_error(GLORA_ENOMEM, "bench search: out of memory");
out_fail:
    rc = fail();
out:
    free(cfg);
    free(cands);
    free(correct);
    glora_search_ws_free(ws);
    free(runs);
    free(sorted);
    free(im.xr);
    free(im.yr);
    glora_dataset_free(&im.ds);
    glora_vit_free(m);
    return rc;
}
