/* The communication layer (see util/comm.h): MPI when built with it and
 * started by a launcher, a job of one rank otherwise. */
#include "util/comm.h"

#include "config.h"
#include "glora/common.h"

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef GLORA_HAVE_MPI
#include <mpi.h>
#endif

static int g_rank = 0, g_size = 1;
static int g_agreed;         /* the last failure was agreed by every rank */
static int g_stderr = -1;    /* the real stderr of a quiet rank */
static char g_msg[1024], g_hint[512];
static int g_noted;

static struct {
    double seconds;
    uint64_t bytes, calls;
} g_stats[GLORA_COMM_NKINDS];

__attribute__((unused)) static void account(glora_comm_kind_t k, double t0, uint64_t bytes) {
    g_stats[k].seconds += glora_now() - t0;
    g_stats[k].bytes += bytes;
    g_stats[k].calls++;
}

void glora_comm_stats(glora_comm_kind_t kind, double *seconds, uint64_t *bytes, uint64_t *calls) {
    GLORA_ASSERT(kind >= 0 && kind < GLORA_COMM_NKINDS);
    if (seconds) *seconds = g_stats[kind].seconds;
    if (bytes) *bytes = g_stats[kind].bytes;
    if (calls) *calls = g_stats[kind].calls;
}

int glora_comm_rank(void) { return g_rank; }
int glora_comm_size(void) { return g_size; }
int glora_comm_writer(void) { return g_rank == 0; }

void glora_comm_note_failure(const char *msg, const char *hint) {
    snprintf(g_msg, sizeof g_msg, "%s", msg ? msg : "");
    snprintf(g_hint, sizeof g_hint, "%s", hint ? hint : "");
    g_noted = 1;
}

void glora_comm_span(size_t n, int rank, int size, size_t *lo, size_t *hi) {
    GLORA_ASSERT(size >= 1 && rank >= 0 && rank < size);
    /* ceil(r*n/size) without overflow for any n below SIZE_MAX / size. */
    size_t s = (size_t)size;
    *lo = (n / s) * (size_t)rank + ((n % s) * (size_t)rank + s - 1) / s;
    *hi = (n / s) * (size_t)(rank + 1) + ((n % s) * (size_t)(rank + 1) + s - 1) / s;
}

/* Writes the failure to the real stderr of this rank. */
static void print_failure(const char *msg, const char *hint) {
    int fd = g_stderr >= 0 ? g_stderr : STDERR_FILENO;
    dprintf(fd, "glora: error: %s\n", msg);
    if (hint && hint[0]) dprintf(fd, "hint: %s\n", hint);
}

#ifdef GLORA_HAVE_MPI

static int g_mpi;            /* this process joined an MPI job */
static MPI_Comm g_work;      /* every collective of the engine */
static MPI_Comm g_exit;      /* only the exit agreement (see finalize) */

/* Environment variables MPI launchers set in the processes they start. */
static int launched_by_mpi(void) {
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMI_RANK", "PMIX_RANK",
                                       "PMI_FD", "MPI_LOCALNRANKS"};
    const char *force = getenv("GLORA_MPI");
    if (force && force[0]) return strcmp(force, "0") != 0;
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++)
        if (getenv(vars[i])) return 1;
    return 0;
}

int glora_comm_init(int *argc, char ***argv, int quiet_others) {
    if (!launched_by_mpi()) return GLORA_OK;
    int provided = 0;
    /* Only the main thread calls MPI; OpenMP threads compute in between. */
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        return glora_error(GLORA_ESTATE, "MPI 'MPI_Init_thread': failed");
    g_mpi = 1;
    MPI_Comm_dup(MPI_COMM_WORLD, &g_work);
    MPI_Comm_dup(MPI_COMM_WORLD, &g_exit);
    MPI_Comm_rank(g_work, &g_rank);
    MPI_Comm_size(g_work, &g_size);
    if (quiet_others && g_rank != 0) {
        fflush(stdout);
        fflush(stderr);
        g_stderr = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
        int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
        if (null >= 0) {
            dup2(null, STDOUT_FILENO);
            dup2(null, STDERR_FILENO);
            close(null);
        }
    }
    return GLORA_OK;
}

/* Seconds a rank that failed alone waits for the others to end too, before
 * it aborts the job: long enough for ranks failing the same way a little
 * later (slower file systems), short enough not to look like a hang. */
static double exit_grace(void) {
    const char *s = getenv("GLORA_MPI_EXIT_GRACE");
    double v = s ? atof(s) : 0;
    return v > 0 ? v : 20.0;
}

/* GLORA_COMM_STATS=1: each rank's time and bytes in communication, on its
 * real stderr, when the job ends (docs/PERFORMANCE.md). */
static void print_stats(void) {
    static const char *const names[] = {"bcast", "gather", "fold", "check"};
    const char *e = getenv("GLORA_COMM_STATS");
    if (!e || !e[0] || strcmp(e, "0") == 0) return;
    int fd = g_stderr >= 0 ? g_stderr : STDERR_FILENO;
    dprintf(fd, "comm rank %d/%d:", g_rank, g_size);
    for (int k = 0; k < GLORA_COMM_NKINDS; k++)
        dprintf(fd, " %s %llu calls %.3f MB %.4f s;", names[k], (unsigned long long)g_stats[k].calls,
                (double)g_stats[k].bytes / 1e6, g_stats[k].seconds);
    dprintf(fd, "\n");
}

int glora_comm_finalize(int status) {
    if (!g_mpi) return status;
    fflush(stdout);
    fflush(stderr);
    print_stats();
    int lone = status != 0 && !g_agreed;
    MPI_Request req;
    MPI_Ibarrier(g_exit, &req);
    double t0 = glora_now(), grace = exit_grace();
    int done = 0;
    while (!done) {
        MPI_Test(&req, &done, MPI_STATUS_IGNORE);
        if (done) break;
        if (lone && glora_now() - t0 > grace) {
            /* The others are still working (or waiting for this rank in a
             * collective step): this failure is this rank's alone. */
            if (g_rank != 0) print_failure(g_noted ? g_msg : glora_errmsg(), g_noted ? g_hint : NULL);
            MPI_Abort(MPI_COMM_WORLD, 1);
        }
        usleep(lone ? 1000 : 200);
    }
    /* Everyone ended. A failure no collective step agreed on (rank 0 has
     * printed its own): the lowest failing rank other than 0 prints its
     * message, unless rank 0 failed too. */
    int first = lone ? g_rank : g_size, first_all = g_size;
    MPI_Allreduce(&first, &first_all, 1, MPI_INT, MPI_MIN, g_exit);
    if (first_all != 0 && first_all == g_rank && g_rank != 0)
        print_failure(g_noted ? g_msg : glora_errmsg(), g_noted ? g_hint : NULL);
    int worst = status, worst_all = 0;
    MPI_Allreduce(&worst, &worst_all, 1, MPI_INT, MPI_MAX, g_exit);
    MPI_Comm_free(&g_work);
    MPI_Comm_free(&g_exit);
    MPI_Finalize();
    g_mpi = 0;
    return worst_all;
}

int glora_comm_check(int rc) {
    if (!g_mpi || g_size == 1) return rc;
    double t0 = glora_now();
    int mine = rc != 0 ? g_rank : g_size, first = g_size;
    MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, g_work);
    if (first == g_size) {
        account(GLORA_COMM_CHECK, t0, sizeof(int));
        return 0;
    }
    struct {
        int code;
        char msg[1024];
        char hint[512];
    } m;
    memset(&m, 0, sizeof m);
    if (g_rank == first) {
        m.code = rc;
        snprintf(m.msg, sizeof m.msg, "%s", glora_errmsg());
        snprintf(m.hint, sizeof m.hint, "%s", glora_errhint() ? glora_errhint() : "");
    }
    MPI_Bcast(&m, (int)sizeof m, MPI_BYTE, first, g_work);
    glora_error(m.code, "%s", m.msg);
    if (m.hint[0]) glora_error_hint("%s", m.hint);
    g_agreed = 1;
    account(GLORA_COMM_CHECK, t0, sizeof(int) + sizeof m);
    return m.code;
}

/* MPI counts are ints: large buffers go in pieces. */
#define PIECE ((size_t)1 << 30)

void glora_comm_bcast(void *buf, size_t bytes, int root) {
    if (!g_mpi || g_size == 1) return;
    double t0 = glora_now();
    for (size_t off = 0; off < bytes; off += PIECE) {
        size_t k = bytes - off < PIECE ? bytes - off : PIECE;
        MPI_Bcast((char *)buf + off, (int)k, MPI_BYTE, root, g_work);
    }
    account(GLORA_COMM_BCAST, t0, bytes);
}

void glora_comm_sum_u64(uint64_t *v, size_t n) {
    if (!g_mpi || g_size == 1) return;
    double t0 = glora_now();
    for (size_t off = 0; off < n; off += PIECE / 8) {
        size_t k = n - off < PIECE / 8 ? n - off : PIECE / 8;
        MPI_Allreduce(MPI_IN_PLACE, v + off, (int)k, MPI_UINT64_T, MPI_SUM, g_work);
    }
    account(GLORA_COMM_GATHER, t0, n * sizeof *v);
}

void glora_comm_allgatherv(const void *send, size_t bytes, void *recv) {
    if (!g_mpi || g_size == 1) {
        if (bytes) memcpy(recv, send, bytes);
        return;
    }
    double t0 = glora_now();
    int *counts = malloc(2 * (size_t)g_size * sizeof *counts);
    if (!counts) glora_comm_abort("MPI gather: out of memory");
    int *displs = counts + g_size;
    GLORA_ASSERT(bytes <= INT_MAX);
    int mine = (int)bytes;
    MPI_Allgather(&mine, 1, MPI_INT, counts, 1, MPI_INT, g_work);
    size_t total = 0;
    for (int r = 0; r < g_size; r++) {
        GLORA_ASSERT(total <= INT_MAX);
        displs[r] = (int)total;
        total += (size_t)counts[r];
    }
    GLORA_ASSERT(total <= INT_MAX);
    MPI_Allgatherv(send, mine, MPI_BYTE, recv, counts, displs, MPI_BYTE, g_work);
    free(counts);
    account(GLORA_COMM_GATHER, t0, total);
}

void glora_comm_allgatherv_sized(const void *send, const size_t *bytes, void *recv) {
    if (!g_mpi || g_size == 1) {
        if (bytes[0]) memcpy(recv, send, bytes[0]);
        return;
    }
    double t0 = glora_now();
    int *counts = malloc(2 * (size_t)g_size * sizeof *counts);
    if (!counts) glora_comm_abort("MPI gather: out of memory");
    int *displs = counts + g_size;
    size_t total = 0;
    for (int r = 0; r < g_size; r++) {
        GLORA_ASSERT(bytes[r] <= INT_MAX && total <= INT_MAX);
        counts[r] = (int)bytes[r];
        displs[r] = (int)total;
        total += bytes[r];
    }
    GLORA_ASSERT(total <= INT_MAX);
    MPI_Allgatherv(send, counts[g_rank], MPI_BYTE, recv, counts, displs, MPI_BYTE, g_work);
    free(counts);
    account(GLORA_COMM_GATHER, t0, total);
}

/* Floats per message of the fold: about n / (ranks in the chain), so that
 * the chain is a pipeline of as many steps as ranks (time ~ 2n/bandwidth +
 * 2 * ranks * latency rather than ranks * n / bandwidth), within [2^12,
 * 2^18] floats to amortise latency and keep messages in cache. */
static size_t fold_segment(size_t n, int chain) {
    size_t seg = (n + (size_t)chain - 1) / (size_t)(chain > 0 ? chain : 1);
    if (seg < ((size_t)1 << 12)) seg = (size_t)1 << 12;
    if (seg > ((size_t)1 << 18)) seg = (size_t)1 << 18;
    return seg;
}

void glora_comm_fold(float *acc, size_t n, size_t n_items,
                     void (*add)(void *ctx, float *seg, size_t off, size_t len), void *ctx) {
    if (!g_mpi || g_size == 1) {
        if (n) add(ctx, acc, 0, n);
        return;
    }
    /* The chain: ranks owning items, in rank order (rank 0 first). */
    int prev = -1, next = -1, last = 0, chain = 0;
    for (int r = 0; r < g_size; r++) {
        size_t lo, hi;
        glora_comm_span(n_items, r, g_size, &lo, &hi);
        if (lo == hi) continue;
        chain++;
        if (r < g_rank) prev = r;
        if (r > g_rank && next < 0) next = r;
        last = r;
    }
    size_t mlo, mhi;
    glora_comm_span(n_items, g_rank, g_size, &mlo, &mhi);
    double t0 = glora_now();
    uint64_t moved = 0;
    if (mlo < mhi) {
        const size_t seg = fold_segment(n, chain);
        for (size_t off = 0; off < n; off += seg) {
            size_t k = n - off < seg ? n - off : seg;
            if (prev >= 0) {
                MPI_Recv(acc + off, (int)k, MPI_FLOAT, prev, 7, g_work, MPI_STATUS_IGNORE);
                moved += k * sizeof(float);
            }
            add(ctx, acc + off, off, k);
            if (next >= 0) {
                MPI_Send(acc + off, (int)k, MPI_FLOAT, next, 7, g_work);
                moved += k * sizeof(float);
            }
        }
    }
    account(GLORA_COMM_FOLD, t0, moved);
    glora_comm_bcast(acc, n * sizeof(float), last);
}

void glora_comm_abort(const char *msg) {
    print_failure(msg, NULL);
    if (g_mpi) MPI_Abort(MPI_COMM_WORLD, 1);
    exit(1);
}

#else /* a job of one rank */

int glora_comm_init(int *argc, char ***argv, int quiet_others) {
    (void)argc;
    (void)argv;
    (void)quiet_others;
    return GLORA_OK;
}

int glora_comm_finalize(int status) { return status; }

int glora_comm_check(int rc) {
    (void)g_agreed;
    return rc;
}

void glora_comm_bcast(void *buf, size_t bytes, int root) {
    (void)buf;
    (void)bytes;
    (void)root;
}

void glora_comm_sum_u64(uint64_t *v, size_t n) {
    (void)v;
    (void)n;
}

void glora_comm_allgatherv(const void *send, size_t bytes, void *recv) {
    if (bytes) memcpy(recv, send, bytes);
}

void glora_comm_allgatherv_sized(const void *send, const size_t *bytes, void *recv) {
    if (bytes[0]) memcpy(recv, send, bytes[0]);
}

void glora_comm_fold(float *acc, size_t n, size_t n_items,
                     void (*add)(void *ctx, float *seg, size_t off, size_t len), void *ctx) {
    (void)n_items;
    if (n) add(ctx, acc, 0, n);
}

void glora_comm_abort(const char *msg) {
    print_failure(msg, NULL);
    exit(1);
}

#endif
