/* The GLoRA pipeline through the public API on a tiny ViT and synthetic
 * images: backbone -> supernet -> search -> retrain -> merge, then checks
 * that the merged plain ViT scores what the retrained subnet scores.
 *   examples/pipeline [DIR]      (files go to DIR, default example-run) */
#include <glora.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#define N 256 /* images of 8x8: class 1 is brighter on the left half */

/* Noise of mean 0 and variance 1 (Irwin-Hall: a sum of 12 uniforms) from
 * a small xorshift: any noise will do. */
static float noise(uint64_t *s) {
    double u = 0;
    for (int k = 0; k < 12; k++) {
        *s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
        u += (double)(*s >> 11) / 9007199254740992.0;
    }
    return (float)(u - 6.0);
}

static void die(const char *what) {
    fprintf(stderr, "pipeline: %s: %s\n", what, glora_errmsg());
    exit(1);
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "example-run";
    char path[4096];
    static float x[N * 64];
    static int y[N];
    uint64_t rng = 7;
    for (int i = 0; i < N; i++) {
        y[i] = i % 2;
        for (int p = 0; p < 64; p++) x[i * 64 + p] = noise(&rng) + (y[i] && p % 8 < 4);
    }
    glora_dataset_t data = {.n = N, .c = 1, .h = 8, .w = 8, .x = x, .y = y, .num_classes = 2};
    glora_vit_arch_t arch = {.img_size = 8, .in_chans = 1, .patch = 4, .dim = 16, .depth = 2, .heads = 2,
                             .mlp_hidden = 32, .num_classes = 2};
    glora_train_opts_t o = {.epochs = 3, .batch = 32, .sched = {.lr = 1e-3, .floor = 1e-5},
                            .adamw = {0.9, 0.999, 1e-8, 1e-4}, .seed = 1};
    glora_vit_t *backbone, *supernet, *merged;
    glora_space_t space;
    glora_spec_t subnet;
    mkdir(dir, 0777); /* (may exist) */
    /* 1. a backbone trained from scratch; 2. a rank-2 supernet on it */
    if (glora_backbone_create(&backbone, &arch, 1) ||
        glora_train_recipe(backbone, &(glora_recipe_t){.kind = GLORA_RECIPE_PRETRAIN}, &o, &data, NULL, NULL, NULL))
        die("backbone");
    glora_space_official(&space, 2);
    snprintf(path, sizeof path, "%s/supernet.safetensors", dir);
    if (glora_supernet_build(&supernet, backbone, 2, 2, 42) ||
        glora_train_recipe(supernet, &(glora_recipe_t){.kind = GLORA_RECIPE_SUPERNET, .space = &space}, &o, &data,
                           NULL, path, NULL))
        die("supernet");
    /* 3. the evolutionary search of a subnet under 1500 GLoRA parameters */
    glora_search_setup_t st = {.supernet = supernet, .val = &data, .dir = dir, .resume = 1};
    glora_search_opts_default(&st.opts);
    st.opts.population = 8, st.opts.parents = 3, st.opts.mutations = 3, st.opts.crossovers = 3;
    st.opts.generations = 2, st.opts.max_params = 1500;
    glora_search_result_t found;
    snprintf(path, sizeof path, "%s/best.json", dir);
    if (glora_search_supernet(&st, &found) || glora_spec_read(&subnet, path)) die("search");
    /* 4. retrain the subnet from the supernet's values; 5. merge it */
    snprintf(path, sizeof path, "%s/adapter.safetensors", dir);
    if (glora_train_recipe(supernet, &(glora_recipe_t){.kind = GLORA_RECIPE_RETRAIN, .subnet = &subnet}, &o, &data,
                           NULL, path, NULL))
        die("retrain");
    snprintf(path, sizeof path, "%s/merged.safetensors", dir);
    if (glora_merge(&merged, supernet, &subnet) || glora_merged_save(merged, &subnet, path)) die("merge");
    size_t a, b;
    if (glora_evaluate(supernet, subnet.cfg, &data, 0, &a) || glora_evaluate(merged, NULL, &data, 0, &b))
        die("evaluate");
    printf("subnet: %zu GLoRA parameters, search accuracy %.3f; retrained %zu/%d, merged %zu/%d\n",
           subnet.params, found.best_acc, a, N, b, N);
    glora_spec_free(&subnet);
    glora_vit_free(merged);
    glora_vit_free(supernet);
    glora_vit_free(backbone);
    return a == b ? 0 : 1;
}
