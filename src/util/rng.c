/* xoshiro256** seeded through splitmix64 (see util/rng.h). */
#include "util/rng.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

void glora_rng_seed(glora_rng_t *r, uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
}

uint64_t glora_rng_u64(glora_rng_t *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

uint64_t glora_rng_below(glora_rng_t *r, uint64_t n) {
    /* Reject the top partial range so every value is equally likely. */
    uint64_t limit = UINT64_MAX - (UINT64_MAX % n + 1) % n;
    uint64_t x;
    do x = glora_rng_u64(r); while (x > limit);
    return x % n;
}

double glora_rng_uniform(glora_rng_t *r) {
    return (double)(glora_rng_u64(r) >> 11) * 0x1.0p-53;
}

float glora_rng_uniform_f(glora_rng_t *r, float lo, float hi) {
    return lo + (hi - lo) * (float)glora_rng_uniform(r);
}

double glora_rng_normal(glora_rng_t *r) {
    double u1 = glora_rng_uniform(r), u2 = glora_rng_uniform(r);
    return sqrt(-2.0 * log(1.0 - u1)) * cos(2.0 * M_PI * u2);
}

void glora_rng_shuffle(glora_rng_t *r, uint32_t *idx, size_t n) {
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)glora_rng_below(r, i);
        uint32_t t = idx[i - 1];
        idx[i - 1] = idx[j];
        idx[j] = t;
    }
}

void glora_rng_fork(const glora_rng_t *r, uint64_t label, glora_rng_t *out) {
    uint64_t x = r->s[0] ^ rotl(r->s[1], 13) ^ rotl(r->s[2], 29) ^ rotl(r->s[3], 43);
    x ^= splitmix64(&label);
    glora_rng_seed(out, x);
}
