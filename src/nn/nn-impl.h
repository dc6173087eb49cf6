/* Internals shared by the layer kernels of src/nn. */
#ifndef GLORA_NN_IMPL_H
#define GLORA_NN_IMPL_H

#include <stddef.h>

#include "util/parallel.h"

/* Below this many floats touched, a team of threads costs more than it saves
 * (waking a team is a few microseconds; a core streams ~1e3 floats per us). */
#define NN_PAR_MIN_WORK ((size_t)1 << 14)

/* Whether a kernel with `work` floats of work should open a parallel region:
 * never inside an enclosing one (the search evaluates candidates in parallel
 * and a nested team would oversubscribe the cores), never for tiny sizes. */
static inline int nn_parallel(size_t work) {
    return work >= NN_PAR_MIN_WORK && !glora_in_parallel();
}

/* Column blocks for reductions over rows (bias and norm-weight gradients):
 * each thread owns whole blocks and sums its rows in row order, so every
 * element's sum has one fixed order whatever the thread count. */
#define NN_COL_BLOCK 32

/* Hot elementwise and attention loops are compiled once per ISA and picked
 * at load time (ifunc): the build targets baseline x86-64, whose 4-wide SSE
 * halves or quarters their speed on AVX2 / AVX-512 machines. Each clone is
 * deterministic on its own; a given machine always runs the same one. ISA
 * names only (not arch=), so default-target inline helpers still inline. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define NN_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define NN_CLONES
#endif

/* Whether the AVX-512 + FMA kernels below run (isa.c): the CPU has the
 * instructions and GLORA_NN is not "plain". Decided once per process. */
int nn_use_avx512(void);

/* The AVX-512 attention pair kernels (attention_avx512.c): whether they
 * take head width hd, the first nq queries of one (batch, head) pair, and
 * the backward of one pair (the same bits as attention.c's plain loops). */
int nn_attn_avx512_fits(size_t hd);
void nn_attn_fwd_pair_avx512(float *o0, float *a, const float *base, size_t T, size_t Cs,
                             size_t hd, float scale, size_t nq);
void nn_attn_bwd_pair_avx512(float *dbase, float *da, const float *g0, const float *base,
                             const float *a, size_t T, size_t Cs, size_t hd, float scale,
                             int fused);

/* glora_attention_backward (fused 0) or glora_attention_backward_fma
 * (fused 1) with the build chosen: the AVX-512 pair kernel where avx512 is
 * set and it fits (the caller checked nn_use_avx512), else the plain loops.
 * For the tests, which compare the two bit for bit. */
void nn_attention_backward_with(int avx512, int fused, float *dqkv, float *datt, const float *dout,
                                const float *qkv, const float *att, size_t B, int T, int C, int NH);

/* The bf16 attention forward (attention_bf16.c defines it; the AVX512_BF16
 * pair kernel in attention_bf16_avx512.c gives the same bits): whether the
 * kernel takes head width hd; one pair's first nq queries (0, or -1 when
 * its buffers cannot be allocated: nothing written); the same in exact
 * portable C; the first Tq queries of every pair with the kernel where hw
 * is set (the tests compare the two bit for bit). */
int nn_attn_bf16_avx512_fits(size_t hd);
int nn_attn_bf16_pair_avx512(float *o0, float *a, const float *base, size_t T, size_t Cs,
                             size_t hd, float scale, size_t nq);
void nn_attn_bf16_pair_emulated(float *o0, float *a, const float *base, size_t T, size_t Cs,
                                size_t hd, float scale, size_t nq);
void nn_attention_forward_bf16_with(int hw, float *out, float *att, const float *qkv, size_t B,
                                    int T, int C, int NH, size_t Tq);

/* Row kernels in AVX-512 + FMA (rows_avx512.c): GELU forward and backward
 * on n values, and LayerNorm of one row of Cs channels (mean and rstd may
 * be NULL). */
void nn_gelu_fwd_avx512(float *out, const float *inp, size_t n);
void nn_gelu_bwd_avx512(float *dinp, const float *inp, const float *dout, size_t n);
void nn_gelu_fwd_deriv_avx512(float *out, float *deriv, const float *inp, size_t n);
void nn_layernorm_row_avx512(float *o, float *mean, float *rstd, const float *x,
                             const float *weight, const float *bias, size_t Cs, float eps);
/* The column sums of the GLoRA row form's backward (src/model/layer.c
 * col_dots) over columns [j0, j0 + nj) of G (N, ld): ga[j] += sum_n G Y0,
 * gb[j] += sum_n G s_n, gc[j] += sum_n G, each skipped when NULL, every
 * column summed over n in order from zero with a product rounded before
 * its add (no FMA): the same bits as the plain loops. */
void nn_col_dots_avx512(float *ga, const float *y0, float *gb, const float *s, float *gc,
                        const float *g, size_t N, size_t ld, size_t j0, size_t nj);

#endif
