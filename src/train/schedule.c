/* The learning-rate schedule: cosine with a linear warm-up, stepped once
 * per epoch (timm's CosineLRScheduler as the official GLoRA code sets it). */
#include "glora/train.h"

#include <math.h>

double glora_sched_lr(const glora_sched_t *s, int epoch) {
    if (epoch < s->warmup)
        return s->warmup_start + (double)epoch * (s->lr - s->warmup_start) / (double)s->warmup;
    if (s->epochs <= 0) return s->lr;
    /* timm does not shift the cosine by the warm-up (warmup_prefix=False). */
    const double pi = 3.14159265358979323846;
    return s->floor + 0.5 * (s->lr - s->floor) * (1.0 + cos(pi * (double)epoch / (double)s->epochs));
}

int glora_sched_default_warmup(int epochs) {
    /* round(epochs * 10 / 500), halves away from zero */
    return (int)floor((double)epochs * 10.0 / 500.0 + 0.5);
}
