/*
 * util/comm.h - the one place that talks to MPI (internal to glora).
 *
 * A job is `size` ranks (processes) of `threads` OpenMP threads each. Engine
 * code calls these functions unconditionally: in a build without MPI
 * (configure without --with-mpi), or when glora is not started by an MPI
 * launcher, there is one rank and every call is the trivial single-process
 * version (a broadcast does nothing, a gather copies, a check returns its
 * argument). Nothing outside src/util/comm.c tests for MPI.
 *
 * Rules every caller keeps, so that results never depend on the number of
 * ranks:
 *   - work is split with glora_comm_span (static, contiguous, rank order);
 *   - floats are combined only by glora_comm_fold, a left fold in rank (and
 *     so shard) order, never by a tree reduction whose order MPI chooses;
 *   - integer counts may be summed in any order (glora_comm_sum_u64);
 *   - only rank 0 writes files (glora_comm_writer; the atomic file helpers of
 *     util/fileio.h write nothing on other ranks) and prints.
 *
 * Errors: a library status is local to a rank. glora_comm_check is the
 * collective point where ranks agree: every rank passes its status, and all
 * of them return the first failing rank's status with its message, so the
 * job stops together and rank 0 prints the message once. A failure that is
 * never agreed (a rank failing outside a collective step) is settled when the
 * process ends, by glora_comm_finalize: if the other ranks do not also reach
 * the end within a grace period, the failing rank prints its message and
 * aborts the job (never a hang).
 */
#ifndef GLORA_UTIL_COMM_H
#define GLORA_UTIL_COMM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Joins the MPI job when the process was started by an MPI launcher
 * (mpirun, mpiexec, srun; or GLORA_MPI=1 forces it); otherwise, and in a
 * build without MPI, the process is a job of one rank. quiet_others: on
 * ranks other than 0, stdout and stderr go to /dev/null (the real stderr is
 * kept for glora_comm_finalize and glora_comm_abort). Returns a status. */
int glora_comm_init(int *argc, char ***argv, int quiet_others);

/* Ends the job; status is this rank's exit status (0 ok). All ranks agree on
 * the job's status: returns the exit status the process should use. See the
 * header comment for failures that were not agreed. */
int glora_comm_finalize(int status);

int glora_comm_rank(void);
int glora_comm_size(void);
/* Non-zero on the rank that writes files and prints (rank 0). */
int glora_comm_writer(void);

/* Remembers the message of a failure this rank is about to exit with (the
 * CLI prints it on rank 0 at once; other ranks print it only if the failure
 * turns out to be theirs alone, see glora_comm_finalize). */
void glora_comm_note_failure(const char *msg, const char *hint);

/* Collective: every rank passes its status. Returns 0 when all are 0;
 * otherwise, on every rank, the status of the lowest failing rank, whose
 * message and hint become every rank's (glora_errmsg). */
int glora_comm_check(int rc);

/* Collective: bytes of buf from root to every rank. */
void glora_comm_bcast(void *buf, size_t bytes, int root);

/* Collective: v[0..n) summed element-wise over ranks, result on every rank
 * (integers: exact in any order). */
void glora_comm_sum_u64(uint64_t *v, size_t n);

/* Collective: every rank sends `bytes` bytes (which may differ per rank);
 * recv (on every rank) gets them concatenated in rank order. recv may not
 * alias send. */
void glora_comm_allgatherv(const void *send, size_t bytes, void *recv);

/* Collective: as glora_comm_allgatherv when every rank already knows what
 * each sends: bytes[r] (glora_comm_size() entries, the same on every rank)
 * from rank r; one exchange instead of two. */
void glora_comm_allgatherv_sized(const void *send, const size_t *bytes, void *recv);

/* The static split of n items over the ranks: rank r owns
 * [ceil(r*n/size), ceil((r+1)*n/size)), contiguous, in rank order; rank 0
 * owns item 0 whenever n > 0. */
void glora_comm_span(size_t n, int rank, int size, size_t *lo, size_t *hi);

/* Collective: a left fold of float vectors in item order. n_items items
 * (e.g. a batch's shards) are spread over ranks by glora_comm_span. Rank 0
 * starts with acc holding its first item; add(ctx, seg, off, len) must add
 * the caller's remaining items, in order, to seg = acc[off, off+len). The
 * running sum then passes from rank to rank (those owning items, in rank
 * order), each adding its items, in segments so that ranks overlap; at the
 * end every rank's acc holds (((item0 + item1) + item2) + ...), the same
 * bits as one process adding them in order. Ranks other than 0 do not need
 * acc initialised. */
void glora_comm_fold(float *acc, size_t n, size_t n_items,
                     void (*add)(void *ctx, float *seg, size_t off, size_t len), void *ctx);

/* Time and bytes spent in communication since the start (this rank),
 * by kind, for the performance notes and `--verbose` style reports. */
typedef enum {
    GLORA_COMM_BCAST,   /* broadcasts (candidates, stop signals, fold result) */
    GLORA_COMM_GATHER,  /* ordered gathers and integer sums (results) */
    GLORA_COMM_FOLD,    /* the ordered gradient fold (chain part) */
    GLORA_COMM_CHECK,   /* status agreement */
    GLORA_COMM_NKINDS
} glora_comm_kind_t;
void glora_comm_stats(glora_comm_kind_t kind, double *seconds, uint64_t *bytes, uint64_t *calls);

/* Prints "glora: error: <msg>" (on the real stderr) and ends every rank of
 * the job with exit status 1. For failures no collective step can settle. */
void glora_comm_abort(const char *msg) __attribute__((noreturn));

#ifdef __cplusplus
}
#endif
#endif
