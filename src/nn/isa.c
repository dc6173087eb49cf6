/* Which build of the hot layer kernels runs. The AVX-512 + FMA files
 * (attention_avx512.c, rows_avx512.c) need the CPU's instructions; without
 * them the plain C loops run, cloned per ISA (NN_CLONES). GLORA_NN=plain
 * forces the plain loops on any CPU (the tests run both builds);
 * GLORA_NN=auto or unset picks the fastest. The choice is made once, so a
 * process always runs one build and its results are reproducible. This
 * file is compiled for the baseline ISA: it runs before anything checks
 * the CPU. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn-impl.h"
#include "util/cpu.h"

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int avx512;

static void decide(void) {
    const char *v = getenv("GLORA_NN");
    avx512 = util_cpu_avx512();
    if (!v || !*v || strcmp(v, "auto") == 0) return;
    if (strcmp(v, "plain") == 0) {
        avx512 = 0;
        return;
    }
    /* The layer kernels return nothing, so a bad value is reported here. */
    fprintf(stderr, "glora: GLORA_NN='%s' is not one of auto, plain; using auto\n", v);
}

int nn_use_avx512(void) {
    pthread_once(&once, decide);
    return avx512;
}
