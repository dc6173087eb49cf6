/* The search over MPI ranks (see glora/search.h, "Distributed evaluation",
 * and util/comm.h). Rank 0 runs the algorithm: it alone owns the random
 * stream, the population, the checkpoint and the outputs. For each
 * generation it broadcasts the new candidates; every rank counts the correct
 * items of its static share of the (candidate, item) pairs; the counts are
 * summed (integers: exact in any order), so every accuracy is the same
 * correct / n_items as in one process. With a fitness that needs losses,
 * each rank also computes the per-item losses of its share; the shares are
 * gathered in rank order (which is (candidate, item) order: no float is
 * added across ranks) and every candidate's losses are then summed in item
 * order, as in one process (search_mean_losses): the same bits. The other ranks serve these requests
 * until rank 0 sends the end of the search with its status. */
#include "search/search-impl.h"

#include <stdlib.h>
#include <string.h>

#include "glora/common.h"
#include "util/comm.h"

enum { REQ_EVAL = 1, REQ_END = 2 };

/* This rank's pieces of the flattened (candidate, item) space,
 * candidate-major: a contiguous range, so at most two candidates are cut
 * (one at each end) and the rest come whole. */
static int count_share(const glora_search_problem_t *p, const glora_layer_cfg_t *genes, size_t n,
                       size_t lo, size_t hi, uint64_t *correct, double *loss) {
    const size_t ni = p->n_items, nl = (size_t)p->n_layers;
    const glora_layer_cfg_t **cands = malloc((n ? n : 1) * sizeof *cands);
    if (!cands) return glora_error(GLORA_ENOMEM, "search: out of memory");
    for (size_t i = 0; i < n; i++) cands[i] = genes + i * nl;
    int rc = 0;
    while (!rc && lo < hi) {
        size_t c = lo / ni, i0 = lo % ni;
        if (i0 != 0 || hi - lo < ni) { /* one cut candidate */
            size_t i1 = hi - c * ni < ni ? hi - c * ni : ni;
            rc = loss ? p->score(p->ctx, cands + c, 1, i0, i1, correct + c, loss + c * ni)
                      : p->count(p->ctx, cands + c, 1, i0, i1, correct + c);
            lo = c * ni + i1;
        } else { /* whole candidates */
            size_t k = (hi - lo) / ni;
            rc = loss ? p->score(p->ctx, cands + c, k, 0, ni, correct + c, loss + c * ni)
                      : p->count(p->ctx, cands + c, k, 0, ni, correct + c);
            lo += k * ni;
        }
    }
    free(cands);
    return rc;
}

/* Collective part of one evaluation, on every rank: genes of n candidates
 * (already broadcast) into correct[0..n) summed over ranks and, when loss
 * is not NULL, their mean losses into loss[0..n). */
static int count_all(const glora_search_problem_t *p, const glora_layer_cfg_t *genes, size_t n,
                     uint64_t *correct, double *loss) {
    const size_t ni = p->n_items;
    size_t lo, hi, bytes = 0;
    glora_comm_span(n * ni, glora_comm_rank(), glora_comm_size(), &lo, &hi);
    double *mine = NULL, *all = NULL;
    if (loss) {
        if (glora_size_mul(n, ni * sizeof(double), &bytes))
            glora_comm_abort("search: a generation too large to score");
        mine = malloc(bytes ? bytes : 1);
        all = malloc(bytes ? bytes : 1);
        if (!mine || !all) glora_comm_abort("search: out of memory for the losses of a generation");
    }
    memset(correct, 0, n * sizeof *correct);
    int rc = glora_comm_check(count_share(p, genes, n, lo, hi, correct, mine));
    if (!rc) glora_comm_sum_u64(correct, n);
    if (!rc && loss) {
        glora_comm_allgatherv(mine + lo, (hi - lo) * sizeof *mine, all);
        search_mean_losses(all, n, ni, loss);
    }
    free(mine);
    free(all);
    return rc;
}

int search_eval_distributed(struct glora_search *s, size_t start, size_t n, double *acc, double *loss) {
    size_t nl = (size_t)s->p.n_layers;
    uint64_t req[2] = {REQ_EVAL, n};
    glora_comm_bcast(req, sizeof req, 0);
    /* The generation's candidates are contiguous in s->genes. */
    glora_layer_cfg_t *genes = s->genes + start * nl;
    glora_comm_bcast(genes, n * nl * sizeof *genes, 0);
    uint64_t *correct = malloc((n ? n : 1) * sizeof *correct);
    if (!correct) glora_comm_abort("search: out of memory for the results of a generation");
    int rc = count_all(&s->p, genes, n, correct, loss);
    for (size_t i = 0; !rc && i < n; i++) acc[i] = (double)correct[i] / (double)s->p.n_items;
    free(correct);
    return rc;
}

int search_serve(struct glora_search *s) {
    size_t nl = (size_t)s->p.n_layers;
    for (;;) {
        uint64_t req[2];
        glora_comm_bcast(req, sizeof req, 0);
        if (req[0] == REQ_END) break;
        GLORA_ASSERT(req[0] == REQ_EVAL);
        size_t n = (size_t)req[1], bytes;
        if (glora_size_mul(n, nl * sizeof(glora_layer_cfg_t), &bytes))
            glora_comm_abort("search: a generation too large to receive");
        glora_layer_cfg_t *genes = malloc(bytes ? bytes : 1);
        uint64_t *correct = malloc((n ? n : 1) * sizeof *correct);
        double *loss = SEARCH_NEEDS_LOSS(s) ? malloc((n ? n : 1) * sizeof *loss) : NULL;
        if (!genes || !correct || (SEARCH_NEEDS_LOSS(s) && !loss))
            glora_comm_abort("search: out of memory for a generation");
        glora_comm_bcast(genes, bytes, 0);
        /* A failure here is agreed inside; rank 0 then ends the search. */
        count_all(&s->p, genes, n, correct, loss);
        free(loss);
        free(genes);
        free(correct);
    }
    return glora_comm_check(0); /* rank 0's status at the end */
}

int search_end_serving(int rc) {
    uint64_t req[2] = {REQ_END, 0};
    glora_comm_bcast(req, sizeof req, 0);
    return glora_comm_check(rc);
}
