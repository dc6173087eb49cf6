/* What the stages show on the terminal (see cli.h): the hooks of
 * glora_stage_hooks_t printed as the commands and glora run print them. */
#include "cli/cli.h"
#include "glora/common.h"
#include "util/parallel.h"

#include <stdio.h>
#include <string.h>

static void fmt_eta(double s, char buf[32]) {
    if (s < 0) s = 0;
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(buf, 32, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else snprintf(buf, 32, "%ld:%02ld", t / 60, t % 60);
}

static double eta(const glora_train_progress_t *p) {
    if (p->step == 0 || p->elapsed <= 0) return 0;
    double per_step = p->elapsed / (double)p->step;
    double left = (double)(p->steps - p->step) + (double)(p->epochs - p->epoch - 1) * (double)p->steps;
    return left * per_step;
}

/* The header is printed with the first report: none before an error. */
static void print_header(cli_progress_t *pg) {
    if (!pg->header[0]) return;
    fputs(pg->header, stderr);
    pg->header[0] = '\0';
}

static void on_note(void *ctx, const char *line) { fprintf(stderr, "%s\n", line); }

static void on_stage(void *ctx, const char *stage, int done_before) {
    const cli_progress_t *pg = ctx;
    fflush(stdout);
    if (done_before) fprintf(stderr, "== %s: done before (%s/run.json), skipped\n", stage, pg->run_dir);
    else fprintf(stderr, "== %s\n", stage);
}

/* ---- training ---- */

static void train_ready(void *ctx, const glora_train_info_t *info) {
    static const char *const names[] = {"pretrain", "finetune", "supernet", "retrain"};
    cli_progress_t *pg = ctx;
    char h1[32], h2[32];
    if (info->replaces_checkpoint)
        fprintf(stderr, "note: starting over; the checkpoint '%s' will be replaced (--resume continues it)\n",
                info->checkpoint);
    snprintf(pg->header, sizeof pg->header,
             "%s: %zu training images, %zu validation, %s of %s parameters train, %d epochs of %zu steps, %d threads\n",
             names[info->kind], info->n_train, info->n_val, cli_human((double)info->trainable, h1),
             cli_human((double)info->total, h2), info->epochs, info->steps, glora_max_threads());
}

static void train_step(const glora_train_progress_t *p, void *ctx) {
    cli_progress_t *pg = ctx;
    print_header(pg);
    if (!pg->tty) return;
    double now = glora_now();
    if (now - pg->last_print < 0.25 && p->step != p->steps) return;
    pg->last_print = now;
    char e[32];
    fmt_eta(eta(p), e);
    fprintf(stderr, "\r\033[Kepoch %d/%d  %zu/%zu  loss %.4f  acc %.2f%%  lr %.3g  %.0f img/s  ETA %s",
            p->epoch + 1, p->epochs, p->step, p->steps, p->loss, 100 * p->accuracy, p->lr,
            p->images_per_s, e);
    fflush(stderr);
}

static void train_epoch(const glora_train_progress_t *p, void *ctx) {
    cli_progress_t *pg = ctx;
    print_header(pg);
    char e[32], val[48] = "";
    fmt_eta(eta(p), e);
    if (p->has_val) snprintf(val, sizeof val, "  val %.2f%%", 100 * p->val_accuracy);
    fprintf(stderr, "%sepoch %d/%d  loss %.4f  acc %.2f%%%s  lr %.3g  %.0f img/s  %.1fs  ETA %s\n",
            pg->tty ? "\r\033[K" : "", p->epoch + 1, p->epochs, p->loss, 100 * p->accuracy, val, p->lr,
            p->images_per_s, p->elapsed, e);
}

static void train_done(void *ctx, const glora_train_info_t *info, const glora_train_result_t *res) {
    if (res->start_epoch > 0) fprintf(stderr, "resumed after epoch %d\n", res->start_epoch);
    if (res->start_epoch + res->epochs_run < info->epochs) {
        fprintf(stderr, "stopped after epoch %d of %d; the checkpoint is '%s' (continue with --resume)\n",
                res->start_epoch + res->epochs_run, info->epochs, info->checkpoint);
        return;
    }
    char vbuf[48] = "";
    if (res->has_val) snprintf(vbuf, sizeof vbuf, ", validation %.2f%%", 100 * res->val_accuracy);
    if (res->epochs_run > 0)
        fprintf(stderr, "wrote '%s' (train accuracy %.2f%%%s)\n", info->output, 100 * res->accuracy, vbuf);
    else /* every epoch was done before: this invocation measured nothing */
        fprintf(stderr, "wrote '%s' (all %d epochs were done before%s; see '%s')\n", info->output, info->epochs,
                vbuf, info->metrics);
}

/* ---- search ---- */

static void search_ready(void *ctx, const glora_search_setup_t *st) {
    cli_progress_t *pg = ctx;
    char lo[32], hi[32];
    pg->generations = st->opts.generations;
    pg->resume = st->resume;
    pg->dir = st->dir;
    size_t images = st->cv_folds >= 2 ? 0 : st->val->n;
    char what[96];
    for (int f = 0; f < st->cv_folds && st->cv_folds >= 2; f++) images += st->folds[f]->n;
    if (st->cv_folds >= 2) /* the accuracies below are pooled over the folds */
        snprintf(what, sizeof what, "%zu images in %d folds (each scored by its fold's supernet)", images,
                 st->cv_folds);
    else
        snprintf(what, sizeof what, "%zu validation images", images);
    snprintf(pg->header, sizeof pg->header, "search: %d layers, %s, %d threads, budget [%s, %s] params\n",
             glora_vit_layers(st->supernet), what, glora_max_threads(), cli_human((double)st->opts.min_params, lo),
             st->opts.max_params ? cli_human((double)st->opts.max_params, hi) : "unbounded");
}

static void search_batch(void *ctx, int gen, size_t n) {
    cli_progress_t *pg = ctx;
    pg->gen = gen;
    print_header(pg);
    if (pg->tty) fprintf(stderr, "\rgeneration %d/%d: evaluating 0/%zu candidates\033[K", gen, pg->generations, n);
}

static void search_tick(void *ctx, size_t done, size_t total) {
    const cli_progress_t *pg = ctx;
    fprintf(stderr, "\rgeneration %d/%d: evaluating %zu/%zu candidates\033[K", pg->gen, pg->generations, done, total);
}

static void search_generation(void *ctx, const glora_search_gen_t *g) {
    const cli_progress_t *pg = ctx;
    char h[32];
    fprintf(stderr, "%sgeneration %d/%d: best %.4f (%s params), parents mean %.4f, %zu evaluated "
                    "(%zu total), %.1f s\n",
            pg->tty ? "\r\033[K" : "", g->generation, pg->generations, g->best_acc,
            cli_human((double)g->best_params, h), g->parents_mean_acc, g->evaluated,
            g->evaluated_total, g->seconds);
}

static void search_start(void *ctx, int resumed_after, size_t evaluated) {
    const cli_progress_t *pg = ctx;
    if (resumed_after >= 0)
        fprintf(stderr, "resuming after generation %d of %d (%zu candidates evaluated)\n", resumed_after,
                pg->generations, evaluated);
    else if (pg->resume)
        fprintf(stderr, "no checkpoint in '%s': starting the search afresh\n", pg->dir);
}

static void search_done(void *ctx, const glora_search_setup_t *st, int rc, const glora_search_result_t *r) {
    const cli_progress_t *pg = ctx;
    if (rc) {
        if (pg->tty) fprintf(stderr, "\n");
        return;
    }
    const char *score = st->cv_folds >= 2 ? "cross-validated accuracy" : "val accuracy";
    if (r->best >= 0)
        printf("best: %s %.4f, %zu GLoRA parameters, found in generation %d: %s/best.json\n", score,
               r->best_acc, r->best_params, r->best_generation, st->dir);
    for (int i = 0; i < st->opts.n_budgets; i++) {
        char b[32];
        glora_search_budget_str(st->opts.budgets[i], b);
        if (r->budget_best[i] < 0)
            printf("under %s: no candidate evaluated\n", b);
        else
            printf("under %s: %s %.4f, %zu parameters: %s/best-under-%s.json\n", b, score,
                   r->budget_acc[i], r->budget_params[i], st->dir, b);
    }
    fflush(stdout);
}

static void merged(void *ctx, int layers, size_t params, const char *path) {
    fprintf(stderr, "merged %d layers (%zu GLoRA parameters) into '%s'\n", layers, params, path);
}

void cli_progress_hooks(cli_progress_t *pg, glora_stage_hooks_t *h) {
    memset(pg, 0, sizeof *pg);
    pg->tty = cli_is_tty();
    *h = (glora_stage_hooks_t){.ctx = pg, .note = on_note, .stage = on_stage, .train_ready = train_ready,
                               .train_step = train_step, .train_epoch = train_epoch, .train_done = train_done,
                               .search_ready = search_ready, .search_batch = search_batch,
                               .search_generation = search_generation, .search_start = search_start,
                               .search_tick = pg->tty ? search_tick : NULL, .search_done = search_done,
                               .merged = merged};
}
