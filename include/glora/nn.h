/*
 * glora/nn.h - the layers of a ViT as forward/backward pairs of free functions.
 *
 * Conventions (llm.c): forward writes its outputs (=); backward ACCUMULATES
 * (+=) into gradient buffers, which the caller zeroes once per step. Any
 * gradient pointer may be NULL: that gradient is then not computed (frozen
 * tensors get no buffer at all). Forward arguments: outputs, then inputs and
 * weights, then sizes. Backward: gradients out (d + forward name), then dout,
 * then what forward saved, then sizes.
 *
 * Shapes: B batch, T tokens (patches + 1 cls), C model dim, NH heads,
 * hd = C / NH, N = B*T rows where a layer treats tokens alike.
 * All buffers are float32, row-major, contiguous.
 *
 * Parallel with OpenMP over independent rows / (batch, head) pairs; every
 * reduction over rows (weight and bias gradients) is summed in a fixed order,
 * so results are identical for any number of threads.
 */
#ifndef GLORA_NN_H
#define GLORA_NN_H

#include <stddef.h>

#include "glora/gemm.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Patches of an image batch, in the order of a conv weight (C, Cin, P, P):
 * img is (B, Cin, H, W); patches is (B, NP, Cin*P*P) with NP = (H/P)*(W/P),
 * patches taken row by row, each flattened as [ci][ky][kx]. */
void glora_im2col(float *patches, const float *img, size_t B, int cin, int h, int w, int p);

/* Token sequence: x is (B, T, C) with T = NP + 1;
 * x[b,0,:] = cls + pos[0,:], x[b,1+i,:] = pe[b,i,:] + pos[1+i,:].
 * pe is (B, NP, C) (the patch projections), cls is (C), pos is (T, C). */
void glora_tokens_forward(float *x, const float *pe, const float *cls, const float *pos,
                          size_t B, int np, int C);
void glora_tokens_backward(float *dpe, float *dcls, float *dpos, const float *dx,
                           size_t B, int np, int C);

/* out (N, OC) = inp (N, IC) * weight^T + bias; weight (OC, IC), bias (OC) or NULL. */
void glora_linear_forward(float *out, const float *inp, const float *weight, const float *bias,
                          size_t N, int IC, int OC);
/* The same with the weight packed once (glora_sgemm_b_pack of the weight as
 * op(B) = weight^T, k = IC, n = OC); the same bits. */
void glora_linear_forward_packed(float *out, const float *inp, const glora_sgemm_b_t *weight,
                                 const float *bias, size_t N, int IC, int OC);
void glora_linear_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                           const float *inp, const float *weight, size_t N, int IC, int OC);

/* LayerNorm over the last dim C of inp (N, C); weight and bias (C) are
 * required; saves mean and rstd (N) for backward (either may be NULL in
 * inference). out = (inp - mean) * rstd * weight + bias with
 * rstd = 1 / sqrt(biased variance + eps). */
void glora_layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                             const float *weight, const float *bias, size_t N, int C, float eps);
void glora_layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                              const float *inp, const float *weight, const float *mean,
                              const float *rstd, size_t N, int C);

/* Multi-head self-attention core (no projections), timm layout:
 * qkv (B, T, 3C) holds, per token, q for all heads, then k, then v
 * (qkv.reshape(B,T,3,NH,hd)); out (B, T, C) with heads concatenated;
 * att (B, NH, T, T) keeps the softmax probabilities for backward.
 * scores = q k^T / sqrt(hd), no mask. */
void glora_attention_forward(float *out, float *att, const float *qkv,
                             size_t B, int T, int C, int NH);
/* The same for the first token's query alone (the cls token, all a
 * classifier reads of the last block): out (B, C), att (B, NH, 1, T). Each
 * value equals the corresponding one of glora_attention_forward bit for bit. */
void glora_attention_forward_first(float *out, float *att, const float *qkv,
                                   size_t B, int T, int C, int NH);
/* The two above in bf16, for inference under `precision: bf16` (no
 * backward): q k^T and p v as bf16 products with fp32 accumulation (q, k,
 * v and the probabilities rounded to bf16 once), the softmax in fp32; att
 * gets the fp32 probabilities. Deterministic, the same for any thread
 * count, and the same bits on a CPU without AVX512_BF16 (exact emulation).
 * The definition: src/nn/attention_bf16.c. */
void glora_attention_forward_bf16(float *out, float *att, const float *qkv,
                                  size_t B, int T, int C, int NH);
void glora_attention_forward_first_bf16(float *out, float *att, const float *qkv,
                                        size_t B, int T, int C, int NH);
/* datt is scratch of the size of att (contents on return unspecified). */
void glora_attention_backward(float *dqkv, float *datt, const float *dout,
                              const float *qkv, const float *att,
                              size_t B, int T, int C, int NH);
/* The same gradient with each product-and-sum one fused multiply-add (fp32
 * throughout; about half the arithmetic instructions): the backward of
 * bf16 training (`train.precision: bf16`). Its own fixed order (defined in
 * src/nn/attention.c): deterministic, the same for any thread count and
 * on every CPU, but not the bits of glora_attention_backward. */
void glora_attention_backward_fma(float *dqkv, float *datt, const float *dout,
                                  const float *qkv, const float *att,
                                  size_t B, int T, int C, int NH);

/* Exact GELU: x * 0.5 * (1 + erf(x / sqrt 2)), elementwise over n values
 * (the erf form, not tanh; accurate to a few float ulps, relative, also for
 * large negative x). */
void glora_gelu_forward(float *out, const float *inp, size_t n);
/* The same bits on the calling thread alone, with no OpenMP construct: for
 * short runs inside another kernel's threads (a GEMM's epilogue, per block
 * of rows), where even an inactive parallel region costs more than GELU. */
void glora_gelu_forward_serial(float *out, const float *inp, size_t n);
void glora_gelu_backward(float *dinp, const float *inp, const float *dout, size_t n);
/* For a backward that recomputes the forward: glora_gelu_forward's out
 * (the same bits) and deriv = d gelu / dx at inp, in one pass; then
 * glora_gelu_backward_deriv turns deriv (in d) into the gradient in place,
 * d = 0 + dout * d: the same bits as glora_gelu_backward into a zeroed
 * dinp, without evaluating the normal CDF again. */
void glora_gelu_forward_deriv(float *out, float *deriv, const float *inp, size_t n);
void glora_gelu_backward_deriv(float *d, const float *dout, size_t n);

/* out = a + b elementwise (residual connections); out may alias a or b. */
void glora_add(float *out, const float *a, const float *b, size_t n);

/* The cls token of each sequence: out (B, C) = x[b, 0, :]. Backward adds
 * dout into dx[b, 0, :]. */
void glora_cls_forward(float *out, const float *x, size_t B, int T, int C);
void glora_cls_backward(float *dx, const float *dout, size_t B, int T, int C);

/* Softmax cross-entropy with optional label smoothing s (0 = none): target
 * distribution (1-s) on the label plus s/V spread over all V classes.
 * losses (B) per example, probs (B, V) saved for backward. */
void glora_xent_forward(float *losses, float *probs, const float *logits, const int *targets,
                        size_t B, int V, float smoothing);
/* dlogits += scale * (probs - target distribution); scale is usually 1/B
 * for a mean loss. */
void glora_xent_backward(float *dlogits, const float *probs, const int *targets,
                         size_t B, int V, float smoothing, float scale);

#ifdef __cplusplus
}
#endif
#endif
