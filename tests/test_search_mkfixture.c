/* Writes a small random backbone, a supernet on it and an IDX data split
 * into a directory, for the shell tests of `glora search` (not a test by
 * itself): usage: test_search_mkfixture DIR [ADAPTER_SEED]. The model is a 28x28 ViT with
 * dim 32, depth 3, 4 classes, rank 2; adapter values are large so that
 * subnets differ in accuracy on the 300 random images. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "glora/common.h"
#include "util/fileio.h"
#include "glora/model.h"
#include "util/rng.h"

static void be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

static int fail(void) {
    fprintf(stderr, "test_search_mkfixture: %s\n", glora_errmsg());
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 2 && argc != 3) {
        fprintf(stderr, "usage: test_search_mkfixture DIR [ADAPTER_SEED]\n");
        return 2;
    }
    const char *dir = argv[1];
    char path[1024];
    if (glora_mkdir_p(dir)) return fail();
    glora_vit_arch_t a = {.img_size = 28, .in_chans = 1, .patch = 7, .dim = 32, .depth = 3,
                          .heads = 4, .mlp_hidden = 128, .num_classes = 4};
    glora_vit_t *m;
    if (glora_vit_create(&m, &a, 2)) return fail();
    /* The backbone is always the same; the adapter seed changes the supernet. */
    glora_rng_t r, ra;
    glora_rng_seed(&r, 2026);
    glora_rng_seed(&ra, argc == 3 ? strtoull(argv[2], NULL, 10) : 1);
    for (int i = 0; i < m->n_params; i++) {
        const glora_param_t *p = &m->params[i];
        int ad = p->role == GLORA_ROLE_ADAPTER;
        float scale = ad ? 0.3f : 0.15f;
        if (strstr(p->name, "norm") && strstr(p->name, "weight")) scale = 0; /* LayerNorm gains 1 */
        for (size_t k = 0; k < p->numel; k++)
            m->mem[p->offset + k] = scale ? scale * (float)glora_rng_normal(ad ? &ra : &r) : 1.0f;
    }
    snprintf(path, sizeof path, "%s/backbone.safetensors", dir);
    const char *bmeta[] = {"glora.kind", "backbone"};
    if (glora_vit_save(m, path, GLORA_ROLE_BACKBONE | GLORA_ROLE_HEAD, bmeta, 1)) return fail();
    char sha[65];
    if (glora_sha256_file(path, sha)) return fail();
    snprintf(path, sizeof path, "%s/supernet.safetensors", dir);
    const char *smeta[] = {"glora.kind", "supernet", "glora.backbone_sha256", sha};
    if (glora_vit_save(m, path, GLORA_ROLE_ADAPTER | GLORA_ROLE_HEAD, smeta, 2)) return fail();
    glora_vit_free(m);

    enum { N = 300 };
    size_t nimg = 16 + (size_t)N * 28 * 28;
    uint8_t *img = malloc(nimg), lab[8 + N];
    if (!img) return 1;
    be32(img, 0x803), be32(img + 4, N), be32(img + 8, 28), be32(img + 12, 28);
    for (size_t i = 16; i < nimg; i++) img[i] = (uint8_t)glora_rng_below(&r, 256);
    be32(lab, 0x801), be32(lab + 4, N);
    for (int i = 0; i < N; i++) lab[8 + i] = (uint8_t)glora_rng_below(&r, 4);
    snprintf(path, sizeof path, "%s/images-idx3-ubyte", dir);
    if (glora_write_atomic(path, img, nimg)) return fail();
    snprintf(path, sizeof path, "%s/labels-idx1-ubyte", dir);
    if (glora_write_atomic(path, lab, sizeof lab)) return fail();
    free(img);
    return 0;
}
