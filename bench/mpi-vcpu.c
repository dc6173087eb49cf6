/*
 * bench/mpi-vcpu.c - how fast each vCPU of this machine runs a fixed piece
 * of work, alone and with the other vCPU busy, and how much of the time the
 * hypervisor takes (docs/PERFORMANCE.md, "MPI"). No glora code: it measures
 * the machine under glora's ranks.
 *
 *   cc -O2 -o mpi-vcpu bench/mpi-vcpu.c
 *   mpi-vcpu [-c CPU] [-s SECONDS] [-w fma|mem] [-m MB]
 *
 * It pins itself to CPU (default: where it starts) and repeats one unit of
 * work for SECONDS: "fma", ~1 ms of dependent multiply-adds on registers
 * (no memory traffic), or "mem", one read pass over an MB-megabyte buffer
 * (default 28: a training shard's tape and workspace at vit-tiny-28).
 * Each unit is timed with CLOCK_MONOTONIC (wall) and
 * CLOCK_THREAD_CPUTIME_ID (the time the guest kernel ran this thread).
 * This hypervisor reports no steal time (/proc/stat's steal stays 0), so
 * when the host takes the vCPU away, or runs something on the other
 * hardware thread of its core, the guest still counts the time as this
 * thread's: a unit then takes more CPU time than the same work usually
 * does. So:
 *   - wall - cpu: the guest kernel ran something else (other processes);
 *   - cpu / (fastest unit's cpu): the vCPU was slower than its best for
 *     the same work: the host (stolen or shared core), or, for "mem", the
 *     memory system shared with the other vCPU.
 * Prints one line: units, the fastest unit, the median and 90th percentile
 * of cpu / fastest, and the share of the run's CPU time above the fastest
 * speed ("lost": what the same work would not have needed on an undisturbed
 * vCPU), and wall - cpu.
 */
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now(clockid_t c) {
    struct timespec t;
    clock_gettime(c, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* ~1 ms of work on registers: 8 independent chains of dependent FMAs. */
static double unit_fma(long iters) {
    double a[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    const double b = 0.9999999, c = 1e-7;
    for (long i = 0; i < iters; i++)
        for (int k = 0; k < 8; k++) a[k] = a[k] * b + c;
    double s = 0;
    for (int k = 0; k < 8; k++) s += a[k];
    return s;
}

static double unit_mem(const float *buf, size_t n) {
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (size_t i = 0; i + 4 <= n; i += 4) {
        s0 += buf[i];
        s1 += buf[i + 1];
        s2 += buf[i + 2];
        s3 += buf[i + 3];
    }
    return (double)(s0 + s1 + s2 + s3);
}

int main(int argc, char **argv) {
    int cpu = -1, opt;
    double secs = 5, mb = 28;
    const char *work = "fma";
    while ((opt = getopt(argc, argv, "c:s:w:m:h")) != -1) {
        switch (opt) {
        case 'c': cpu = atoi(optarg); break;
        case 's': secs = atof(optarg); break;
        case 'w': work = optarg; break;
        case 'm': mb = atof(optarg); break;
        default:
            fprintf(stderr, "usage: mpi-vcpu [-c CPU] [-s SECONDS] [-w fma|mem] [-m MB]\n");
            return opt == 'h' ? 0 : 2;
        }
    }
    int mem = strcmp(work, "mem") == 0;
    if (!mem && strcmp(work, "fma") != 0) {
        fprintf(stderr, "mpi-vcpu: -w '%s': not fma or mem\n", work);
        return 2;
    }
    if (cpu < 0) cpu = sched_getcpu();
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0) {
        perror("mpi-vcpu: sched_setaffinity");
        return 1;
    }
    size_t n = (size_t)(mb * 1e6 / sizeof(float));
    float *buf = NULL;
    if (mem) {
        buf = malloc(n * sizeof *buf);
        if (!buf) {
            fprintf(stderr, "mpi-vcpu: out of memory for %.0f MB\n", mb);
            return 1;
        }
        for (size_t i = 0; i < n; i++) buf[i] = (float)(i & 7);
    }
    /* Calibrate the fma unit to ~1 ms. */
    long iters = 1000;
    while (!mem) {
        double t0 = now(CLOCK_THREAD_CPUTIME_ID);
        volatile double sink = unit_fma(iters);
        (void)sink;
        if (now(CLOCK_THREAD_CPUTIME_ID) - t0 > 1e-3) break;
        iters *= 2;
    }
    size_t cap = 1 << 20, k = 0;
    double *cw = malloc(cap * sizeof *cw), *cc = malloc(cap * sizeof *cc);
    if (!cw || !cc) return 1;
    volatile double sink = 0;
    double start = now(CLOCK_MONOTONIC);
    while (now(CLOCK_MONOTONIC) - start < secs && k < cap) {
        double w0 = now(CLOCK_MONOTONIC), c0 = now(CLOCK_THREAD_CPUTIME_ID);
        sink += mem ? unit_mem(buf, n) : unit_fma(iters);
        cc[k] = now(CLOCK_THREAD_CPUTIME_ID) - c0;
        cw[k] = now(CLOCK_MONOTONIC) - w0;
        k++;
    }
    double sum_c = 0, sum_w = 0, best = 1e30;
    for (size_t i = 0; i < k; i++) {
        sum_c += cc[i];
        sum_w += cw[i];
        if (cc[i] < best) best = cc[i];
    }
    qsort(cc, k, sizeof *cc, cmp);
    double lost = sum_c - best * (double)k;
    printf("vcpu %d %s: %zu units, fastest %.3f ms; cpu/fastest median %.3f p90 %.3f; "
           "lost %.1f%% of the cpu time; wall-cpu %.1f%% of the wall time\n",
           cpu, mem ? "mem" : "fma", k, 1e3 * best, cc[k / 2] / best, cc[k * 9 / 10] / best,
           100 * lost / sum_c, 100 * (sum_w - sum_c) / sum_w);
    free(cw);
    free(cc);
    free(buf);
    return 0;
}
