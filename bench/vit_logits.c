/* bench/vit_logits MODEL IO.safetensors [ARCH]: loads MODEL (safetensors or
 * .npz; ARCH a timm architecture name for the head count when the file does
 * not say), reports the load's wall time and peak memory, runs it on the
 * tensor "x" of IO and prints the largest difference to IO's "logits"
 * relative to the largest logit. Used by bench/check-vit-b16 (not a test). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "glora/common.h"
#include "glora/model.h"
#include "glora/safetensors.h"

/* A field of /proc/self/status in kB (-1 when absent). */
static long status_kb(const char *field) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    size_t n = strlen(field);
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, field, n) == 0 && line[n] == ':') v = atol(line + n + 1);
    if (f) fclose(f);
    return v;
}

static float *tensor(const char *path, const char *name, size_t *n) {
    glora_st_t *st;
    if (glora_st_open(&st, path)) return NULL;
    const glora_st_tensor_t *t = glora_st_find(st, name);
    float *v = t ? malloc(t->numel * sizeof *v) : NULL;
    if (v && glora_st_read_f32(st, t, v, t->numel)) { free(v); v = NULL; }
    if (v) *n = t->numel;
    glora_st_close(st);
    return v;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s MODEL IO.safetensors [ARCH]\n", argv[0]);
        return 2;
    }
    glora_vit_load_opts_t o = {.arch = argc > 3 ? argv[3] : NULL};
    glora_vit_t *m;
    double t0 = glora_now();
    if (glora_vit_load_ex(&m, argv[1], NULL, &o)) {
        fprintf(stderr, "error: %s\n", glora_errmsg());
        return 1;
    }
    double t1 = glora_now();
    printf("%s: loaded in %.2f s; %zu parameters (%.1f MB as float32); peak RSS %.1f MB "
           "(now: anonymous %.1f MB, file pages %.1f MB)\n", argv[1], t1 - t0, m->n_floats,
           m->n_floats * 4.0 / 1e6, status_kb("VmHWM") / 1e3, status_kb("RssAnon") / 1e3,
           status_kb("RssFile") / 1e3);
    size_t nx, nref;
    float *x = tensor(argv[2], "x", &nx), *ref = tensor(argv[2], "logits", &nref);
    if (!x || !ref) {
        fprintf(stderr, "error: %s\n", glora_errmsg());
        return 1;
    }
    size_t B = nx / ((size_t)m->arch.in_chans * m->arch.img_size * m->arch.img_size);
    glora_vit_linears_t *lin;
    glora_vit_acts_t *a;
    if (glora_vit_linears_create(&lin, m) || glora_vit_acts_create(&a, m, B, 0)) return 1;
    glora_vit_forward(m, lin, a, x, B);
    double maxabs = 0, maxerr = 0;
    for (size_t i = 0; i < nref; i++) {
        maxabs = fmax(maxabs, fabs(ref[i]));
        maxerr = fmax(maxerr, fabs((double)a->logits[i] - ref[i]));
    }
    printf("%s: %zu images x %d classes: max |glora - PyTorch| = %.3g, max |logit| = %.3g, relative %.3g\n",
           argv[1], B, m->arch.num_classes, maxerr, maxabs, maxerr / maxabs);
    int ok = nref == B * (size_t)m->arch.num_classes && maxerr <= 1e-4 * maxabs;
    glora_vit_acts_free(a);
    glora_vit_linears_free(lin);
    glora_vit_free(m);
    free(x);
    free(ref);
    return ok ? 0 : 1;
}
