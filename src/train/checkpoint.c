/* Training checkpoints: one safetensors file, written atomically, holding
 * everything a run needs to continue bit-identically (see glora/train.h and
 * docs/formats.md). */
#include "glora/train.h"
#include "util/rng.h"
#include "glora/common.h"
#include "glora/safetensors.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KIND "checkpoint"

int glora_checkpoint_save(const char *path, const glora_vit_t *m, const glora_grads_t *g,
                          const glora_adamw_t *opt, int epoch, const glora_rng_t *rng,
                          const char *run_hash) {
    int n = 0;
    for (int i = 0; i < m->n_params; i++) n += g->g[i] != NULL;
    glora_st_entry_t *e = calloc((size_t)3 * n + 1, sizeof *e);
    char (*names)[80] = calloc((size_t)2 * n + 1, sizeof *names);
    if (!e || !names) {
        free(e);
        free(names);
        return glora_error(GLORA_ENOMEM, "checkpoint '%s': out of memory", path);
    }
    size_t k = 0;
    int j = 0;
    for (int i = 0; i < m->n_params; i++) {
        if (!g->g[i]) continue;
        const glora_param_t *p = &m->params[i];
        e[k++] = (glora_st_entry_t){p->name, p->ndim, p->shape, m->mem + p->offset};
        snprintf(names[j], sizeof names[j], "adamw.m.%s", p->name);
        e[k++] = (glora_st_entry_t){names[j++], p->ndim, p->shape, opt->m + g->off[i]};
        snprintf(names[j], sizeof names[j], "adamw.v.%s", p->name);
        e[k++] = (glora_st_entry_t){names[j++], p->ndim, p->shape, opt->v + g->off[i]};
    }
    char epoch_s[24], step_s[24], rng_s[72];
    snprintf(epoch_s, sizeof epoch_s, "%d", epoch);
    snprintf(step_s, sizeof step_s, "%" PRId64, opt->t);
    snprintf(rng_s, sizeof rng_s, "%016" PRIx64 "%016" PRIx64 "%016" PRIx64 "%016" PRIx64,
             rng->s[0], rng->s[1], rng->s[2], rng->s[3]);
    const char *meta[] = {GLORA_META_KIND, KIND, GLORA_META_EPOCH, epoch_s, GLORA_META_ADAM_STEP, step_s,
                          GLORA_META_RNG, rng_s, GLORA_META_RUN_HASH, run_hash ? run_hash : ""};
    int rc = glora_st_write(path, e, k, meta, 5);
    free(e);
    free(names);
    return rc;
}

static int parse_u64_hex(const char *s, uint64_t *out) {
    uint64_t v = 0;
    for (int i = 0; i < 16; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0) return -1;
        v = v << 4 | (uint64_t)d;
    }
    *out = v;
    return 0;
}

int glora_checkpoint_load(const char *path, glora_vit_t *m, const glora_grads_t *g,
                          glora_adamw_t *opt, int *epoch, glora_rng_t *rng,
                          const char *run_hash) {
    glora_st_t *st;
    int rc = glora_st_open(&st, path);
    if (rc) return rc;
    const char *kind = glora_st_meta(st, GLORA_META_KIND);
    const char *ep = glora_st_meta(st, GLORA_META_EPOCH);
    const char *step = glora_st_meta(st, GLORA_META_ADAM_STEP);
    const char *rs = glora_st_meta(st, GLORA_META_RNG);
    const char *hash = glora_st_meta(st, GLORA_META_RUN_HASH);
    char *end;
    long e = ep ? strtol(ep, &end, 10) : -1;
    long long t = step ? strtoll(step, &end, 10) : -1;
    glora_rng_t r;
    if (!kind || strcmp(kind, KIND) != 0) {
        rc = glora_error(GLORA_EFORMAT, "checkpoint '%s': not a training checkpoint (glora.kind is '%s')",
                         path, kind ? kind : "");
        goto done;
    }
    if (e < 0 || t < 0 || !rs || strlen(rs) != 64 || !hash || parse_u64_hex(rs, &r.s[0]) ||
        parse_u64_hex(rs + 16, &r.s[1]) || parse_u64_hex(rs + 32, &r.s[2]) ||
        parse_u64_hex(rs + 48, &r.s[3])) {
        rc = glora_error(GLORA_EFORMAT, "checkpoint '%s': metadata glora.epoch / glora.adam_step / "
                         "glora.rng / glora.run_hash missing or malformed", path);
        goto done;
    }
    if (run_hash && strcmp(hash, run_hash) != 0) {
        rc = glora_error(GLORA_ESTATE, "checkpoint '%s': written by a run with other settings "
                         "(run hash %.12s..., this run %.12s...)", path, hash, run_hash);
        glora_error_hint("resume with the same config and --set options, or remove the checkpoint");
        goto done;
    }
    int n = 0;
    for (int i = 0; i < m->n_params; i++) {
        if (!g->g[i]) continue;
        const glora_param_t *p = &m->params[i];
        char name[80];
        n++;
        if ((rc = glora_st_load_f32(st, p->name, p->ndim, p->shape, m->mem + p->offset)) != 0)
            goto done;
        snprintf(name, sizeof name, "adamw.m.%s", p->name);
        if ((rc = glora_st_load_f32(st, name, p->ndim, p->shape, opt->m + g->off[i])) != 0) goto done;
        snprintf(name, sizeof name, "adamw.v.%s", p->name);
        if ((rc = glora_st_load_f32(st, name, p->ndim, p->shape, opt->v + g->off[i])) != 0) goto done;
    }
    if (glora_st_count(st) != (size_t)3 * n) {
        rc = glora_error(GLORA_ESTATE, "checkpoint '%s': holds %zu tensors, this run trains %d "
                         "(expected %d with the optimizer state)", path, glora_st_count(st), n, 3 * n);
        goto done;
    }
    opt->t = t;
    *epoch = (int)e;
    *rng = r;
done:
    glora_st_close(st);
    return rc;
}
