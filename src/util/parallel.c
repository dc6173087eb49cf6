/* The OpenMP wrapper (see util/parallel.h). */
#include "util/parallel.h"

#ifdef _OPENMP
#include <omp.h>
int glora_max_threads(void) { return omp_get_max_threads(); }
void glora_set_threads(int n) { omp_set_num_threads(n < 1 ? 1 : n); }
int glora_thread_id(void) { return omp_get_thread_num(); }
int glora_in_parallel(void) { return omp_in_parallel(); }
#else
int glora_max_threads(void) { return 1; }
void glora_set_threads(int n) { (void)n; }
int glora_thread_id(void) { return 0; }
int glora_in_parallel(void) { return 0; }
#endif
