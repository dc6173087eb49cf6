/*
 * util/rng.h - seeded, serialisable random numbers (xoshiro256**); internal
 * to glora, not installed.
 *
 * Every random draw in glora (initialisation, shuffling, supernet sampling,
 * the search) comes from a glora_rng_t, so a run is a function of its seed.
 * The state is four 64-bit words: checkpoints store them and resume exactly.
 */
#ifndef GLORA_RNG_H
#define GLORA_RNG_H

#include <stdint.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct glora_rng { uint64_t s[4]; } glora_rng_t;

/* Seeds the generator (any seed, including 0, gives a valid state). */
void glora_rng_seed(glora_rng_t *r, uint64_t seed);
uint64_t glora_rng_u64(glora_rng_t *r);
/* Uniform integer in [0, n), n >= 1, without modulo bias. */
uint64_t glora_rng_below(glora_rng_t *r, uint64_t n);
/* Uniform double in [0, 1) with 53 random bits. */
double glora_rng_uniform(glora_rng_t *r);
/* Uniform float in [lo, hi). */
float glora_rng_uniform_f(glora_rng_t *r, float lo, float hi);
/* Standard normal (Box-Muller, no cached second value so the state is all). */
double glora_rng_normal(glora_rng_t *r);
/* Fisher-Yates shuffle of idx[0..n). */
void glora_rng_shuffle(glora_rng_t *r, uint32_t *idx, size_t n);
/* An independent stream derived from this one's seed and a label, without
 * advancing r: used so that e.g. each epoch or candidate gets its own stream. */
void glora_rng_fork(const glora_rng_t *r, uint64_t label, glora_rng_t *out);

#ifdef __cplusplus
}
#endif
#endif
