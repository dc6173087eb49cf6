/* The epoch loop shared by every training command: shuffled batches,
 * forward, cross-entropy, backward, clipping, AdamW, validation and a
 * checkpoint after each epoch (see glora/train.h). */
#include "glora/train.h"
#include "util/rng.h"
#include "glora/common.h"
#include "glora/nn.h"
#include "util/parallel.h"
#include "glora/pipeline.h"
#include "util/bigmem.h"
#include "util/comm.h"
#include "util/strbuf.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define VAL_SUBNETS 4
#define MAX_SHARDS 64

typedef struct {
    size_t B, img, per;              /* batch, floats per image, images per shard */
    int V, L;                        /* classes, adapted layers */
    int shards;
    int sh_lo, sh_hi;                /* this rank's shards (util/comm.h span) */
    glora_grads_t *g;                /* shard 0's gradients: the sum after a step */
    glora_grads_t *gs[MAX_SHARDS];   /* gs[0] == g */
    glora_adamw_t *opt;
    glora_vit_linears_t *lin;
    int live;                        /* shards in memory at once: min(shards, threads) */
    glora_vit_tape_t *tape[MAX_SHARDS];
    glora_vit_bwd_t *bwd[MAX_SHARDS];
    glora_vit_linears_t *eval_lin;
    glora_vit_acts_t *eval_acts;
    float *xb, *losses, *probs, *dlogits, *logits;
    float *losses_all;               /* every rank's losses, in batch order */
    uint8_t *ok, *ok_all;            /* per example: top-1 right */
    /* One gather per step of every rank's losses and hits: rank k sends
     * ex_n[k] losses then ex_n[k] hit flags (for examples from ex_lo[k]). */
    unsigned char *gsend, *grecv;
    size_t *ex_lo, *ex_n, *gbytes;
    int *yb;
    uint32_t *perm;
    glora_layer_cfg_t *cfg;      /* per step (supernet) */
    glora_layer_cfg_t *val_cfg;  /* VAL_SUBNETS x layers (supernet) */
} run_t;

static void run_free(run_t *r) {
    for (int s = 0; s < MAX_SHARDS; s++) {
        glora_grads_free(r->gs[s]);
        glora_vit_tape_free(r->tape[s]);
        glora_vit_bwd_free(r->bwd[s]);
    }
    glora_adamw_free(r->opt);
    glora_vit_linears_free(r->lin);
    glora_vit_linears_free(r->eval_lin);
    glora_vit_acts_free(r->eval_acts);
    free(r->xb);
    free(r->losses);
    free(r->losses_all);
    free(r->ok);
    free(r->ok_all);
    free(r->gsend);
    free(r->grecv);
    free(r->ex_lo);
    free(r->probs);
    free(r->dlogits);
    free(r->logits);
    free(r->yb);
    free(r->perm);
    free(r->cfg);
    free(r->val_cfg);
}

static int check_opts(const glora_vit_t *m, const glora_train_opts_t *o,
                      const glora_dataset_t *train) {
    if (o->epochs < 1) return glora_error(GLORA_EINVAL, "training 'epochs': %d, must be at least 1", o->epochs);
    if (o->batch < 1 || o->batch > (1u << 20))
        return glora_error(GLORA_EINVAL, "training 'batch': %zu out of range", o->batch);
    if (o->shards < 0 || o->shards > MAX_SHARDS || (size_t)o->shards > o->batch)
        return glora_error(GLORA_EINVAL, "training 'shards': %d, must be 0..%d and at most the batch %zu",
                           o->shards, MAX_SHARDS, o->batch);
    if (train->n < o->batch)
        return glora_error(GLORA_EINVAL, "training 'data': %zu examples, fewer than one batch of %zu",
                           train->n, o->batch);
    if (train->n > UINT32_MAX) return glora_error(GLORA_EINVAL, "training 'data': too many examples");
    if (o->sampling != GLORA_SAMPLING_UNIFORM && o->sampling != GLORA_SAMPLING_SANDWICH)
        return glora_error(GLORA_EINVAL, "training 'sampling': %d is not a glora_sampling_t", (int)o->sampling);
    if ((o->space || o->fixed_cfg) && m->rank == 0)
        return glora_error(GLORA_EINVAL, "training 'model': GLoRA configurations need a model with "
                           "adapter tensors (rank 0)");
    if (o->space) {
        for (int t = 0; t < GLORA_NTENSORS; t++) {
            if (o->space->n[t] < 1)
                return glora_error(GLORA_EINVAL, "training 'space': no choice for %s", glora_tensor_letter(t));
            for (int k = 0; k < o->space->n[t]; k++)
                if (o->space->opt[t][k].kind == GLORA_LORA && o->space->opt[t][k].rank > m->rank)
                    return glora_error(GLORA_EINVAL, "training 'space': lora_%d above the model's rank %d",
                                       o->space->opt[t][k].rank, m->rank);
        }
    }
    for (size_t i = 0; i < train->n; i++)
        if (train->y[i] < 0 || train->y[i] >= m->arch.num_classes)
            return glora_error(GLORA_EINVAL, "training 'labels': example %zu has label %d, the head has %d classes",
                               i, train->y[i], m->arch.num_classes);
    return GLORA_OK;
}

/* ---- GLORA_STEP_STATS=<prefix>: where each rank's step goes ----
 * A diagnostic for docs/PERFORMANCE.md ("MPI"): per step, each phase's
 * wall time (CLOCK_MONOTONIC) beside the CPU time of the thread that ran it
 * (CLOCK_THREAD_CPUTIME_ID), the step's minor faults and context switches
 * (getrusage RUSAGE_THREAD), the time the guest kernel kept the main thread
 * runnable but not running (/proc/thread-self/schedstat) and the vCPU it
 * started and ended on. Rank r writes <prefix>.<r> (tab-separated, one
 * header line) when training ends; nothing is written during the steps.
 * Off (no clock read at all) when the variable is unset. */
enum { PH_DATA, PH_SUBNET, PH_MERGE, PH_SHARDS, PH_FOLD, PH_GATHER, PH_OPT, PH_N };
static const char *const ph_names[PH_N] = {"data", "subnet", "merge", "shards", "fold", "gather", "opt"};
#define PROBE_SLOTS 2

typedef struct {
    double wall, cpu;
} stamp_t;

typedef struct {
    int on;
    int sched_fd;                     /* /proc/thread-self/schedstat of the main thread */
    stamp_t t;                        /* start of the current phase (main thread) */
    double wall[PH_N], cpu[PH_N];     /* this step's phases (main thread) */
    double fwd_w[PROBE_SLOTS], fwd_c[PROBE_SLOTS], bwd_w[PROBE_SLOTS], bwd_c[PROBE_SLOTS];
    stamp_t step0;                    /* start of the step */
    double prev_end;                  /* wall time the previous step ended */
    struct rusage ru0;
    double run0, wait0;               /* schedstat at the step's start (ms) */
    int cpu_start;
    double fold0, bcast0;             /* comm stats at the step's start */
    sbuf_t out;
    int epoch, step;
} probe_t;

static probe_t g_probe = {.sched_fd = -1};

static stamp_t stamp(void) {
    struct timespec w, c;
    clock_gettime(CLOCK_MONOTONIC, &w);
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c);
    return (stamp_t){1e3 * (double)w.tv_sec + 1e-6 * (double)w.tv_nsec,
                     1e3 * (double)c.tv_sec + 1e-6 * (double)c.tv_nsec};
}

static void sched_read(double *run, double *wait) {
    char buf[128];
    *run = *wait = 0;
    if (g_probe.sched_fd < 0) return;
    ssize_t n = pread(g_probe.sched_fd, buf, sizeof buf - 1, 0);
    if (n <= 0) return;
    buf[n] = 0;
    unsigned long long r = 0, w = 0;
    if (sscanf(buf, "%llu %llu", &r, &w) == 2) {
        *run = 1e-6 * (double)r;
        *wait = 1e-6 * (double)w;
    }
}

static void probe_start(void) {
    const char *e = getenv("GLORA_STEP_STATS");
    memset(&g_probe, 0, sizeof g_probe);
    g_probe.sched_fd = -1;
    if (!e || !e[0]) return;
    g_probe.on = 1;
    g_probe.sched_fd = open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC);
    g_probe.prev_end = -1;
    sb_puts(&g_probe.out, "rank\tepoch\tstep\tcpu_start\tcpu_end\tstep_wall\tstep_cpu\tbetween");
    for (int p = 0; p < PH_N; p++) sb_printf(&g_probe.out, "\t%s_wall\t%s_cpu", ph_names[p], ph_names[p]);
    for (int k = 0; k < PROBE_SLOTS; k++)
        sb_printf(&g_probe.out, "\tfwd%d_wall\tfwd%d_cpu\tbwd%d_wall\tbwd%d_cpu", k, k, k, k);
    sb_puts(&g_probe.out, "\tfold_chain\tfold_bcast\tminflt\tmajflt\tnvcsw\tnivcsw\tsched_run\tsched_wait\n");
}

static void probe_step_begin(int epoch, int step) {
    if (!g_probe.on) return;
    g_probe.epoch = epoch;
    g_probe.step = step;
    memset(g_probe.wall, 0, sizeof g_probe.wall);
    memset(g_probe.cpu, 0, sizeof g_probe.cpu);
    memset(g_probe.fwd_w, 0, sizeof g_probe.fwd_w);
    memset(g_probe.fwd_c, 0, sizeof g_probe.fwd_c);
    memset(g_probe.bwd_w, 0, sizeof g_probe.bwd_w);
    memset(g_probe.bwd_c, 0, sizeof g_probe.bwd_c);
    getrusage(RUSAGE_THREAD, &g_probe.ru0);
    sched_read(&g_probe.run0, &g_probe.wait0);
    g_probe.cpu_start = sched_getcpu();
    glora_comm_stats(GLORA_COMM_FOLD, &g_probe.fold0, NULL, NULL);
    glora_comm_stats(GLORA_COMM_BCAST, &g_probe.bcast0, NULL, NULL);
    g_probe.step0 = g_probe.t = stamp();
}

/* Ends the main thread's current phase as phase p. */
static void probe_phase(int p) {
    if (!g_probe.on) return;
    stamp_t t = stamp();
    g_probe.wall[p] += t.wall - g_probe.t.wall;
    g_probe.cpu[p] += t.cpu - g_probe.t.cpu;
    g_probe.t = t;
}

static void probe_step_end(void) {
    if (!g_probe.on) return;
    stamp_t t = stamp();
    struct rusage ru;
    getrusage(RUSAGE_THREAD, &ru);
    double run, wait, fold, bcast;
    sched_read(&run, &wait);
    glora_comm_stats(GLORA_COMM_FOLD, &fold, NULL, NULL);
    glora_comm_stats(GLORA_COMM_BCAST, &bcast, NULL, NULL);
    sbuf_t *b = &g_probe.out;
    sb_printf(b, "%d\t%d\t%d\t%d\t%d\t%.3f\t%.3f\t%.3f", glora_comm_rank(), g_probe.epoch, g_probe.step,
              g_probe.cpu_start, sched_getcpu(), t.wall - g_probe.step0.wall, t.cpu - g_probe.step0.cpu,
              g_probe.prev_end < 0 ? 0.0 : g_probe.step0.wall - g_probe.prev_end);
    for (int p = 0; p < PH_N; p++) sb_printf(b, "\t%.3f\t%.3f", g_probe.wall[p], g_probe.cpu[p]);
    for (int k = 0; k < PROBE_SLOTS; k++)
        sb_printf(b, "\t%.3f\t%.3f\t%.3f\t%.3f", g_probe.fwd_w[k], g_probe.fwd_c[k], g_probe.bwd_w[k],
                  g_probe.bwd_c[k]);
    sb_printf(b, "\t%.3f\t%.3f\t%ld\t%ld\t%ld\t%ld\t%.3f\t%.3f\n", 1e3 * (fold - g_probe.fold0),
              1e3 * (bcast - g_probe.bcast0), ru.ru_minflt - g_probe.ru0.ru_minflt,
              ru.ru_majflt - g_probe.ru0.ru_majflt, ru.ru_nvcsw - g_probe.ru0.ru_nvcsw,
              ru.ru_nivcsw - g_probe.ru0.ru_nivcsw, run - g_probe.run0, wait - g_probe.wait0);
    g_probe.prev_end = t.wall;
}

/* Writes <prefix>.<rank> (a diagnostic: no temporary, no fsync). */
static void probe_finish(void) {
    if (!g_probe.on) return;
    const char *e = getenv("GLORA_STEP_STATS");
    char path[4096];
    snprintf(path, sizeof path, "%s.%d", e, glora_comm_rank());
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd >= 0 && g_probe.out.buf) {
        size_t off = 0;
        while (off < g_probe.out.len) {
            ssize_t w = write(fd, g_probe.out.buf + off, g_probe.out.len - off);
            if (w <= 0) break;
            off += (size_t)w;
        }
    }
    if (fd >= 0) close(fd);
    if (g_probe.sched_fd >= 0) close(g_probe.sched_fd);
    free(g_probe.out.buf);
    memset(&g_probe, 0, sizeof g_probe);
    g_probe.sched_fd = -1;
}

static int argmax(const float *v, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (v[i] > v[best]) best = i;
    return best;
}

/* glora_comm_fold's step: adds this rank's shards after the first (rank 0
 * holds shard 0 in the accumulator itself) to seg = acc[off, off+len). */
static void add_shards(void *ctx, float *seg, size_t off, size_t len) {
    const run_t *r = ctx;
    for (int sh = r->sh_lo > 0 ? r->sh_lo : 1; sh < r->sh_hi; sh++) {
        const float *gsh = r->gs[sh]->mem + off;
#pragma omp parallel for schedule(static) if (len >= 65536)
        for (size_t k = 0; k < len; k++) seg[k] += gsh[k];
    }
}

/* Validation accuracy with the run's configuration(s). */
static int validate(const glora_vit_t *m, const glora_train_opts_t *o, run_t *r,
                    const glora_dataset_t *val, double *acc) {
    const int L = glora_vit_layers(m);
    int n_cfg = o->space ? VAL_SUBNETS : 1;
    size_t correct = 0;
    /* Collective under MPI: every rank gets the whole split's count. */
    for (int k = 0; k < n_cfg; k++) {
        const glora_layer_cfg_t *c = o->space ? r->val_cfg + (size_t)k * L : o->fixed_cfg;
        glora_vit_linears_set(r->eval_lin, m, c);
        size_t ok;
        int rc = glora_eval_correct(m, r->eval_lin, r->eval_acts, val, &ok);
        if (rc) return rc;
        correct += ok;
    }
    *acc = (double)correct / ((double)val->n * n_cfg);
    return GLORA_OK;
}

/* The shards, this rank's span of them, how many are in flight at once,
 * and every buffer of the run. */
static int run_alloc(run_t *r, const glora_vit_t *m, const unsigned char *trainable,
                     const glora_train_opts_t *o, const glora_dataset_t *train, int has_val,
                     const glora_dataset_t *val) {
    const glora_vit_arch_t *a = &m->arch;
    const size_t B = o->batch;
    int rc;
    r->B = B;
    r->img = (size_t)a->in_chans * a->img_size * a->img_size;
    r->V = a->num_classes;
    r->L = glora_vit_layers(m);
    /* The batch is cut into a fixed number of shards (never a function of
     * the threads): each runs forward and backward on its own slice with
     * its own activations and gradients, and their gradients are summed in
     * shard order. Threads take whole shards, so a step has one parallel
     * region instead of one per kernel. */
    r->shards = o->shards > 0 ? o->shards : 2;
    if ((size_t)r->shards > B) r->shards = (int)B;
    r->per = (B + (size_t)r->shards - 1) / (size_t)r->shards;
    /* Under MPI, rank k computes its span of the shards; the gradients are
     * then folded in shard order across ranks (glora_comm_fold), so the sum
     * is the same as in one process. gs[0] is every rank's accumulator.
     * Only as many of its shards as threads are in flight at once, each on
     * its own tape and workspace, and no more than GLORA_TRAIN_LIVE_BYTES of
     * them: activation memory is that of live * per images, however many
     * shards a batch is cut into (the results depend on the shards, never
     * on the threads, the ranks or live). */
    size_t lo, hi;
    glora_comm_span((size_t)r->shards, glora_comm_rank(), glora_comm_size(), &lo, &hi);
    r->sh_lo = (int)lo;
    r->sh_hi = (int)hi;
    const int mine = r->sh_hi - r->sh_lo;
    const size_t fit = GLORA_TRAIN_LIVE_BYTES / glora_vit_shard_bytes(m, r->per);
    r->live = glora_max_threads() < mine ? glora_max_threads() : mine;
    if ((size_t)r->live > fit) r->live = (int)fit;
    if (r->live < 1) r->live = 1;
    if ((rc = glora_grads_create(&r->gs[0], m, trainable))) return rc;
    for (int s = r->sh_lo > 0 ? r->sh_lo : 1; s < r->sh_hi; s++)
        if ((rc = glora_grads_create(&r->gs[s], m, trainable))) return rc;
    for (int s = 0; s < r->live; s++)
        if ((rc = glora_vit_tape_create(&r->tape[s], m, r->per)) ||
            (rc = glora_vit_bwd_create(&r->bwd[s], m, r->per)))
            return rc;
    r->g = r->gs[0];
    if ((rc = glora_adamw_create(&r->opt, r->g)) || (rc = glora_vit_linears_create(&r->lin, m)))
        return rc;
    if (has_val && ((rc = glora_vit_linears_create(&r->eval_lin, m)) ||
                    (rc = glora_vit_acts_create(&r->eval_acts, m, B < val->n ? B : val->n, 0))))
        return rc;
    const size_t V = (size_t)r->V, L = (size_t)r->L;
    r->xb = glora_big_alloc(B * r->img, sizeof(float));
    r->losses = malloc(B * sizeof(float));
    r->losses_all = malloc(B * sizeof(float));
    r->ok = malloc(B);
    r->ok_all = malloc(B);
    r->probs = malloc(B * V * sizeof(float));
    r->dlogits = malloc(B * V * sizeof(float));
    r->logits = malloc(B * V * sizeof(float));
    r->yb = malloc(B * sizeof(int));
    r->perm = malloc(train->n * sizeof(uint32_t));
    r->cfg = calloc(L, sizeof *r->cfg);
    r->val_cfg = calloc(L * VAL_SUBNETS, sizeof *r->val_cfg);
    const size_t nr = (size_t)glora_comm_size(), per_ex = sizeof(float) + 1;
    r->gsend = malloc(B * per_ex);
    r->grecv = malloc(B * per_ex);
    r->ex_lo = malloc(3 * nr * sizeof *r->ex_lo);
    if (!r->xb || !r->losses || !r->losses_all || !r->ok || !r->ok_all || !r->probs || !r->dlogits ||
        !r->logits || !r->yb || !r->perm || !r->cfg || !r->val_cfg || !r->gsend || !r->grecv || !r->ex_lo)
        return glora_error(GLORA_ENOMEM, "training 'run': out of memory for batch %zu", B);
    r->ex_n = r->ex_lo + nr;
    r->gbytes = r->ex_n + nr;
    for (size_t k = 0; k < nr; k++) {
        size_t slo, shi;
        glora_comm_span((size_t)r->shards, (int)k, (int)nr, &slo, &shi);
        const size_t e_lo = slo * r->per < B ? slo * r->per : B, e_hi = shi * r->per < B ? shi * r->per : B;
        r->ex_lo[k] = e_lo;
        r->ex_n[k] = e_hi - e_lo;
        r->gbytes[k] = r->ex_n[k] * per_ex;
    }
    return GLORA_OK;
}

/* Forward, loss and backward of shard sh (its gradients into gs[sh]) on
 * tape slot k. */
static void shard_pass(const glora_vit_t *m, const glora_train_opts_t *o, run_t *r,
                       const glora_layer_cfg_t *cfg, int sh, int k) {
    const size_t B = r->B, V = (size_t)r->V, off = (size_t)sh * r->per,
                 nb = off >= B ? 0 : (B - off < r->per ? B - off : r->per);
    glora_grads_zero(r->gs[sh]);
    if (nb == 0) return;
    glora_vit_tape_t *tp = r->tape[k];
    const int pk = k < PROBE_SLOTS ? k : PROBE_SLOTS - 1;
    stamp_t t0 = g_probe.on ? stamp() : (stamp_t){0, 0};
    glora_vit_train_forward(m, r->lin, cfg, tp, r->xb + off * r->img, nb);
    stamp_t t1 = g_probe.on ? stamp() : (stamp_t){0, 0};
    float *lg = r->logits + off * V;
    memcpy(lg, glora_vit_tape_logits(tp), nb * V * sizeof(float));
    glora_xent_forward(r->losses + off, r->probs + off * V, lg, r->yb + off, nb, (int)V,
                       o->label_smoothing);
    float *dl = r->dlogits + off * V;
    memset(dl, 0, nb * V * sizeof(float));
    glora_xent_backward(dl, r->probs + off * V, r->yb + off, nb, (int)V, o->label_smoothing,
                        1.0f / (float)B);
    glora_vit_backward(m, r->lin, cfg, tp, dl, nb, r->gs[sh], r->bwd[k]);
    for (size_t b = 0; b < nb; b++) r->ok[off + b] = argmax(lg + b * V, (int)V) == r->yb[off + b];
    if (g_probe.on) {
        stamp_t t2 = stamp();
        g_probe.fwd_w[pk] += t1.wall - t0.wall;
        g_probe.fwd_c[pk] += t1.cpu - t0.cpu;
        g_probe.bwd_w[pk] += t2.wall - t1.wall;
        g_probe.bwd_c[pk] += t2.cpu - t1.cpu;
    }
}

/* train.sampling sandwich (glora/train.h): on the steps of the run (0-based,
 * counted over all epochs, so resume keeps the cycle) with step % 4 == 0 every
 * layer takes the space's largest option of each tensor, with step % 4 == 1
 * the smallest; the other steps keep the uniform draw. The draw is always
 * made, so the random stream (shuffles, draws) is uniform's. Options order
 * by kind (none < scalar < vector < lora), then rank: by parameters, for any
 * layer shape. */
static void sandwich_override(const glora_train_opts_t *o, glora_layer_cfg_t *cfg, int L,
                              uint64_t step) {
    if (o->sampling != GLORA_SAMPLING_SANDWICH || step % 4 > 1) return;
    const int largest = step % 4 == 0;
    glora_layer_cfg_t pick;
    for (int t = 0; t < GLORA_NTENSORS; t++) {
        int best = 0;
        for (int j = 1; j < o->space->n[t]; j++) {
            const glora_choice_t a = o->space->opt[t][j], b = o->space->opt[t][best];
            const int ka = (int)a.kind * 1024 + a.rank, kb = (int)b.kind * 1024 + b.rank;
            if (largest ? ka > kb : ka < kb) best = j;
        }
        pick.t[t] = o->space->opt[t][best];
    }
    for (int l = 0; l < L; l++) cfg[l] = pick;
}

/* One optimiser step on the batch perm[idx ...]: this rank's shards in
 * waves of r->live, the gradients folded in shard order, clipping, AdamW.
 * Returns the gradient norm before clipping; losses_all and ok_all hold
 * every example's loss and top-1 hit. */
static double train_step(glora_vit_t *m, const glora_train_opts_t *o, run_t *r,
                         const glora_dataset_t *train, const uint32_t *idx, glora_rng_t *rng,
                         size_t space_size, double lr, uint64_t step) {
    const size_t B = r->B;
    /* This rank's examples only (its span of the shards). */
    const size_t b_lo = (size_t)r->sh_lo * r->per < B ? (size_t)r->sh_lo * r->per : B;
    const size_t b_hi = (size_t)r->sh_hi * r->per < B ? (size_t)r->sh_hi * r->per : B;
    glora_dataset_batch(train, idx + b_lo, b_hi - b_lo, r->xb + b_lo * r->img);
    for (size_t b = b_lo; b < b_hi; b++) r->yb[b] = train->y[idx[b]];
    probe_phase(PH_DATA);
    const glora_layer_cfg_t *cfg = o->fixed_cfg;
    if (o->space) {
        for (int l = 0; l < r->L; l++)
            glora_space_config(o->space, (size_t)glora_rng_below(rng, space_size), &r->cfg[l]);
        sandwich_override(o, r->cfg, r->L, step);
        cfg = r->cfg;
    }
    probe_phase(PH_SUBNET);
    /* Merged weights follow the adapters as they train; with no
     * configuration the linears point at W0 itself. */
    glora_vit_train_linears_set(r->lin, m, cfg);
    probe_phase(PH_MERGE);
    const int nt = r->live;
    for (int wave = r->sh_lo; wave < r->sh_hi; wave += nt) {
#pragma omp parallel for schedule(static, 1) num_threads(nt) if (nt > 1)
        for (int k = 0; k < nt; k++)
            if (wave + k < r->sh_hi) shard_pass(m, o, r, cfg, wave + k, k);
    }
    probe_phase(PH_SHARDS); /* forward and backward apart: per slot, in shard_pass */
    /* Shard order, element by element: the same sums for any team and any
     * number of ranks. */
    glora_comm_fold(r->g->mem, r->g->n_floats, (size_t)r->shards, add_shards, r);
    probe_phase(PH_FOLD);
    /* Every rank's losses and hits, in one exchange. */
    const size_t nb = b_hi - b_lo;
    memcpy(r->gsend, r->losses + b_lo, nb * sizeof(float));
    memcpy(r->gsend + nb * sizeof(float), r->ok + b_lo, nb);
    glora_comm_allgatherv_sized(r->gsend, r->gbytes, r->grecv);
    for (int k = 0, off = 0; k < glora_comm_size(); off += (int)r->gbytes[k], k++) {
        memcpy(r->losses_all + r->ex_lo[k], r->grecv + off, r->ex_n[k] * sizeof(float));
        memcpy(r->ok_all + r->ex_lo[k], r->grecv + off + r->ex_n[k] * sizeof(float), r->ex_n[k]);
    }
    probe_phase(PH_GATHER);
    const double gnorm = glora_grads_clip(r->g, o->clip_norm);
    glora_adamw_step(r->opt, m, r->g, &o->adamw, lr);
    probe_phase(PH_OPT);
    return gnorm;
}

/* The random stream, the validation subnets (from their own stream) and,
 * with resume, the checkpoint's state; *start: epochs already done. */
static int run_start(glora_vit_t *m, const glora_train_opts_t *o, run_t *r, glora_rng_t *rng,
                     int *start) {
    glora_rng_seed(rng, o->seed);
    if (o->space) {
        /* Drawing the validation subnets does not move the training stream. */
        glora_rng_t vr;
        glora_rng_fork(rng, 0x76616c /* "val" */, &vr);
        size_t size = glora_space_size(o->space);
        for (int k = 0; k < VAL_SUBNETS * r->L; k++)
            glora_space_config(o->space, (size_t)glora_rng_below(&vr, size), &r->val_cfg[k]);
    }
    *start = 0;
    if (!(o->checkpoint && o->resume && access(o->checkpoint, F_OK) == 0)) return GLORA_OK;
    int rc = glora_comm_check(glora_checkpoint_load(o->checkpoint, m, r->g, r->opt, start, rng,
                                                    o->run_hash));
    if (rc) return rc;
    if (*start > o->epochs)
        return glora_error(GLORA_ESTATE, "checkpoint '%s': %d epochs done, more than the %d configured",
                           o->checkpoint, *start, o->epochs);
    return GLORA_OK;
}

/* The steps of one epoch; pr gets the epoch's loss, accuracy and speed. */
static int run_epoch(glora_vit_t *m, const glora_train_opts_t *o, run_t *r,
                     const glora_dataset_t *train, glora_rng_t *rng, glora_train_progress_t *pr) {
    const size_t B = r->B, steps = pr->steps;
    const size_t space_size = o->space ? glora_space_size(o->space) : 0;
    const double t0 = glora_now();
    /* The permutation depends on the stream only, not on the last one. */
    for (size_t i = 0; i < train->n; i++) r->perm[i] = (uint32_t)i;
    glora_rng_shuffle(rng, r->perm, train->n);
    double loss_sum = 0, gnorm = 0;
    size_t correct = 0;
    for (size_t s = 0; s < steps; s++) {
        probe_step_begin(pr->epoch + 1, (int)s + 1);
        gnorm = train_step(m, o, r, train, r->perm + s * B, rng, space_size, pr->lr,
                           (uint64_t)pr->epoch * steps + s);
        probe_step_end();
        for (size_t b = 0; b < B; b++) {
            loss_sum += r->losses_all[b];
            correct += r->ok_all[b];
        }
        if (!isfinite(loss_sum)) {
            int rc = glora_error(GLORA_ESTATE, "training 'loss': not finite at epoch %d step %zu",
                                 pr->epoch + 1, s + 1);
            glora_error_hint("lower the learning rate or enable gradient clipping (train.clip_norm)");
            return rc;
        }
        pr->step = s + 1;
        pr->elapsed = glora_now() - t0;
        pr->loss = loss_sum / (double)((s + 1) * B);
        pr->accuracy = (double)correct / (double)((s + 1) * B);
        pr->images_per_s = pr->elapsed > 0 ? (double)((s + 1) * B) / pr->elapsed : 0;
        pr->grad_norm = gnorm;
        if (o->on_step) o->on_step(pr, o->cb_ctx);
    }
    return GLORA_OK;
}

int glora_train_run(glora_vit_t *m, const unsigned char *trainable,
                    const glora_train_opts_t *o, const glora_dataset_t *train,
                    const glora_dataset_t *val, glora_train_result_t *res) {
    int rc = check_opts(m, o, train);
    if (rc) return rc;
    const size_t steps = train->n / o->batch;
    const int has_val = val && val->n > 0;
    /* The run's products (training and validation) at o->precision; the
     * model's own setting is given back at the end. */
    const glora_precision_t prec0 = m->precision;
    m->precision = o->precision;
    run_t r = {0};
    glora_train_result_t out = {0};
    glora_rng_t rng;
    int start = 0;
    probe_start();
    if ((rc = run_alloc(&r, m, trainable, o, train, has_val, val)) ||
        (rc = run_start(m, o, &r, &rng, &start)))
        goto done;
    out.start_epoch = start;
    glora_sched_t sched = o->sched;
    sched.epochs = o->epochs;
    double t_total = 0;
    size_t img_total = 0;
    for (int epoch = start; epoch < o->epochs; epoch++) {
        glora_train_progress_t pr = {.epoch = epoch, .epochs = o->epochs, .steps = steps,
                                     .lr = glora_sched_lr(&sched, epoch)};
        if ((rc = run_epoch(m, o, &r, train, &rng, &pr))) goto done;
        t_total += pr.elapsed;
        img_total += steps * r.B;
        /* Validation reads the weights only; its subnets were drawn up front,
         * so skipping some epochs changes nothing else. */
        const int last = epoch + 1 == o->epochs ||
                         (o->stop_after > 0 && out.epochs_run + 1 >= o->stop_after);
        if (has_val && (o->val_every <= 1 || (epoch + 1) % o->val_every == 0 || last)) {
            pr.has_val = 1;
            if ((rc = validate(m, o, &r, val, &pr.val_accuracy))) goto done;
        }
        if (o->checkpoint &&
            (rc = glora_comm_check(
                 glora_checkpoint_save(o->checkpoint, m, r.g, r.opt, epoch + 1, &rng, o->run_hash))) != 0)
            goto done;
        out.epochs_run++;
        out.loss = pr.loss;
        out.accuracy = pr.accuracy;
        if (pr.has_val) {
            out.has_val = 1;
            out.val_accuracy = pr.val_accuracy;
        }
        if (o->on_epoch) o->on_epoch(&pr, o->cb_ctx);
        if (o->stop_after > 0 && out.epochs_run >= o->stop_after) break;
    }
    out.images_per_s = t_total > 0 ? (double)img_total / t_total : 0;
    if (out.epochs_run == 0 && has_val) {
        out.has_val = 1;
        if ((rc = validate(m, o, &r, val, &out.val_accuracy))) goto done;
    }
    if (res) *res = out;
done:
    probe_finish();
    run_free(&r);
    m->precision = prec0;
    return rc;
}
