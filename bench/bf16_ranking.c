/* What bf16 changes in the search's fitness: N random candidates of the
 * official space scored on a split in fp32 and in bf16 (the same
 * glora_search_fitness, only m->precision differs); prints Kendall's
 * tau-b between the two scorings, whether the best candidate is the same,
 * and the largest accuracy difference. Not built by make; from a build
 * directory:
 *   cc -O2 -I../include ../bench/bf16_ranking.c .libs/libglora.a -fopenmp \
 *      -lopenblas -lcjson -lyaml -lz -lm -o bf16_ranking
 *   ./bf16_ranking BACKBONE SUPERNET IMAGES LABELS START COUNT [N [SEED]] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "glora/common.h"
#include "glora/data.h"
#include "glora/gemm.h"
#include "glora/model.h"
#include "util/rng.h"
#include "glora/search.h"

static double kendall_tau_b(const double *x, const double *y, int n) {
    double conc = 0, disc = 0, tx = 0, ty = 0;
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++) {
            double dx = x[i] - x[j], dy = y[i] - y[j];
            if (dx == 0 && dy == 0) continue;
            if (dx == 0) tx++;
            else if (dy == 0) ty++;
            else if ((dx > 0) == (dy > 0)) conc++;
            else disc++;
        }
    return (conc - disc) / sqrt((conc + disc + tx) * (conc + disc + ty));
}

static int best(const double *a, int n) {
    int b = 0;
    for (int i = 1; i < n; i++)
        if (a[i] > a[b]) b = i;
    return b;
}

int main(int argc, char **argv) {
    if (argc < 7) {
        fprintf(stderr, "usage: %s BACKBONE SUPERNET IMAGES LABELS START COUNT [N [SEED]]\n", argv[0]);
        return 2;
    }
    int n = argc > 7 ? atoi(argv[7]) : 50, seed = argc > 8 ? atoi(argv[8]) : 1;
    glora_vit_t *m;
    glora_dataset_t ds = {0};
    if (glora_vit_load(&m, argv[1], argv[2], 0) ||
        glora_idx_load(&ds, argv[3], argv[4], (size_t)atol(argv[5]), (size_t)atol(argv[6]), 0.5f, 0.5f)) {
        fprintf(stderr, "error: %s\n", glora_errmsg());
        return 1;
    }
    int L = glora_vit_layers(m);
    glora_space_t space;
    glora_space_official(&space, m->rank);
    glora_layer_cfg_t *cfg = malloc((size_t)n * L * sizeof *cfg);
    const glora_layer_cfg_t **cands = malloc((size_t)n * sizeof *cands);
    double *a32 = malloc((size_t)n * sizeof *a32), *a16 = malloc((size_t)n * sizeof *a16);
    glora_rng_t r;
    glora_rng_seed(&r, (uint64_t)seed);
    for (int c = 0; c < n; c++) {
        for (int l = 0; l < L; l++)
            for (int t = 0; t < GLORA_NTENSORS; t++)
                cfg[(size_t)c * L + l].t[t] = space.opt[t][glora_rng_below(&r, (uint64_t)space.n[t])];
        cands[c] = cfg + (size_t)c * L;
    }
    double t0 = glora_now();
    if (glora_search_fitness(m, cands, (size_t)n, &ds, 32, a32)) return 1;
    double t1 = glora_now();
    m->precision = GLORA_BF16;
    if (glora_search_fitness(m, cands, (size_t)n, &ds, 32, a16)) return 1;
    double t2 = glora_now();
    double maxd = 0, mean32 = 0;
    int changed = 0;
    for (int c = 0; c < n; c++) {
        maxd = fmax(maxd, fabs(a32[c] - a16[c]));
        changed += a32[c] != a16[c];
        mean32 += a32[c] / n;
    }
    int b32 = best(a32, n), b16 = best(a16, n);
    printf("{\"candidates\": %d, \"images\": %zu, \"kendall_tau_b\": %.4f, \"same_winner\": %s, "
           "\"winner_fp32\": %d, \"winner_bf16\": %d, \"winner_acc_fp32\": %.4f, "
           "\"winner_acc_bf16\": %.4f, \"bf16_winner_acc_fp32\": %.4f, \"max_abs_acc_diff\": %.4f, "
           "\"candidates_changed\": %d, \"mean_acc_fp32\": %.4f, \"seconds_fp32\": %.1f, "
           "\"seconds_bf16\": %.1f, \"bf16_kernel\": \"%s\"}\n",
           n, ds.n, kendall_tau_b(a32, a16, n), b32 == b16 ? "true" : "false", b32, b16, a32[b32],
           a16[b16], a32[b16], maxd, changed, mean32, t1 - t0, t2 - t1, glora_bgemm_ukernel());
    free(cfg); free(cands); free(a32); free(a16);
    glora_dataset_free(&ds);
    glora_vit_free(m);
    return 0;
}
