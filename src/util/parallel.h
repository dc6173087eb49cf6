/*
 * util/parallel.h - the one place that talks to OpenMP (internal to glora:
 * not installed).
 *
 * Builds without OpenMP (--disable-openmp) get a single thread. Code that
 * parallelises a loop still uses "#pragma omp" directly (ignored without
 * OpenMP); everything that asks OpenMP a question goes through here.
 */
#ifndef GLORA_PARALLEL_H
#define GLORA_PARALLEL_H

#ifdef __cplusplus
extern "C" {
#endif

/* Threads a parallel region started here would use. */
int glora_max_threads(void);
/* Sets the number of threads for later parallel regions (n >= 1). */
void glora_set_threads(int n);
/* Index of the calling thread inside a parallel region (0 outside). */
int glora_thread_id(void);
/* Non-zero inside an active parallel region: kernels then run serially
 * rather than nest a second team of threads. */
int glora_in_parallel(void);

#ifdef __cplusplus
}
#endif
#endif
