/* One training step against the PyTorch reference (tests/fixtures/ref,
 * written by tests/ref/make_fixtures.py): the loss and every gradient of a
 * supernet step under two configurations (label smoothing 0.1), the loss and
 * every gradient of a full fine-tuning step, and two AdamW steps. Each
 * tensor must agree to a relative error of 1e-4 (of its largest value). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "glora/common.h"
#include "util/fileio.h"
#include "glora/layer.h"
#include "glora/model.h"
#include "glora/nn.h"
#include "glora/safetensors.h"
#include "glora/train.h"

#define FIX GLORA_SRCDIR "/tests/fixtures/ref/"

/* The configuration called name in configs.json. */
static void load_config(const glora_vit_t *m, const char *name, glora_layer_cfg_t *cfg) {
    char *text;
    size_t n;
    assert_int_equal(glora_read_file(FIX "configs.json", 1 << 20, &text, &n), GLORA_OK);
    cJSON *root = cJSON_Parse(text);
    free(text);
    assert_non_null(root);
    const cJSON *c;
    int found = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(root, "configs")) {
        if (strcmp(cJSON_GetObjectItem(c, "name")->valuestring, name) != 0) continue;
        const cJSON *layer;
        int layers = 0;
        cJSON_ArrayForEach(layer, cJSON_GetObjectItem(c, "layers")) {
            int l = glora_vit_layer_index(m, layer->string);
            assert_true(l >= 0);
            for (int t = 0; t < GLORA_NTENSORS; t++) {
                const char *s = cJSON_GetObjectItem(layer, glora_tensor_letter(t))->valuestring;
                assert_int_equal(glora_choice_parse(s, t, m->rank, &cfg[l].t[t]), GLORA_OK);
            }
            layers++;
        }
        assert_int_equal(layers, glora_vit_layers(m));
        found = 1;
    }
    cJSON_Delete(root);
    assert_true(found);
}

static float *read_tensor(const glora_st_t *st, const char *name, size_t numel) {
    const glora_st_tensor_t *t = glora_st_find(st, name);
    if (!t) fail_msg("fixture tensor '%s' missing", name);
    assert_int_equal(t->numel, numel);
    float *v = malloc(numel * sizeof *v);
    assert_int_equal(glora_st_read_f32(st, t, v, numel), GLORA_OK);
    return v;
}

/* Largest |got - want| over largest |want| (absolute when want is all
 * zero); fails above 1e-4. */
static double compare(const char *what, const float *got, const float *want, size_t n) {
    double maxabs = 0, maxerr = 0;
    for (size_t i = 0; i < n; i++) {
        if (fabs(want[i]) > maxabs) maxabs = fabs(want[i]);
        double e = fabs((double)got[i] - want[i]);
        if (e > maxerr) maxerr = e;
    }
    double rel = maxabs > 0 ? maxerr / maxabs : maxerr;
    if (rel > 1e-4) fail_msg("%s: max |error| %.3g, max |reference| %.3g", what, maxerr, maxabs);
    return rel;
}

/* Forward, loss and backward of one step; checks loss and gradients. */
static void step_check(glora_vit_t *m, const unsigned char *mask, const glora_layer_cfg_t *cfg,
                       const char *tag, const char *labels_name, float smoothing) {
    glora_st_t *fw, *ts;
    assert_int_equal(glora_st_open(&fw, FIX "forward.safetensors"), GLORA_OK);
    assert_int_equal(glora_st_open(&ts, FIX "train_step.safetensors"), GLORA_OK);
    const glora_st_tensor_t *tx = glora_st_find(fw, "x");
    assert_non_null(tx);
    const size_t B = (size_t)tx->shape[0];
    float *x = read_tensor(fw, "x", tx->numel);
    float *yf = read_tensor(ts, labels_name, B);
    int *y = malloc(B * sizeof *y);
    for (size_t b = 0; b < B; b++) y[b] = (int)yf[b];

    glora_grads_t *g;
    glora_vit_linears_t *lin;
    glora_vit_tape_t *acts;
    glora_vit_bwd_t *ws;
    assert_int_equal(glora_grads_create(&g, m, mask), 0);
    assert_int_equal(glora_vit_linears_create(&lin, m), 0);
    assert_int_equal(glora_vit_tape_create(&acts, m, B), 0);
    assert_int_equal(glora_vit_bwd_create(&ws, m, B), 0);
    const int V = m->arch.num_classes;
    float *losses = malloc(B * sizeof(float)), *probs = malloc(B * V * sizeof(float));
    float *dlogits = calloc(B * V, sizeof(float));

    glora_vit_train_linears_set(lin, m, cfg);
    glora_vit_train_forward(m, lin, cfg, acts, x, B);
    glora_xent_forward(losses, probs, glora_vit_tape_logits(acts), y, B, V, smoothing);
    glora_grads_zero(g);
    glora_xent_backward(dlogits, probs, y, B, V, smoothing, 1.0f / (float)B);
    glora_vit_backward(m, lin, cfg, acts, dlogits, B, g, ws);

    char name[160];
    snprintf(name, sizeof name, "loss.%s", tag);
    float *want_loss = read_tensor(ts, name, 1);
    float loss = 0;
    for (size_t b = 0; b < B; b++) loss += losses[b];
    loss /= (float)B;
    compare(name, &loss, want_loss, 1);
    double worst = 0;
    int checked = 0;
    for (int i = 0; i < m->n_params; i++) {
        if (!mask[i]) continue;
        snprintf(name, sizeof name, "grad.%s.%s", tag, m->params[i].name);
        float *want = read_tensor(ts, name, m->params[i].numel);
        double rel = compare(name, g->g[i], want, m->params[i].numel);
        if (rel > worst) worst = rel;
        checked++;
        free(want);
    }
    printf("%s: loss %.6f (reference %.6f), %d gradients, worst relative error %.3g\n", tag, loss,
           want_loss[0], checked, worst);
    free(want_loss); free(x); free(yf); free(y); free(losses); free(probs); free(dlogits);
    glora_grads_free(g);
    glora_vit_linears_free(lin);
    glora_vit_tape_free(acts);
    glora_vit_bwd_free(ws);
    glora_st_close(fw);
    glora_st_close(ts);
}

static glora_vit_t *load_supernet(unsigned char **mask) {
    glora_vit_t *m;
    if (glora_vit_load(&m, FIX "backbone.safetensors", FIX "supernet.safetensors", 0))
        fail_msg("%s", glora_errmsg());
    *mask = calloc((size_t)m->n_params, 1);
    assert_int_equal(glora_train_select(m, "adapter,head", *mask), 0);
    return m;
}

static void test_supernet_step(void **state) {
    (void)state;
    unsigned char *mask;
    glora_vit_t *m = load_supernet(&mask);
    glora_layer_cfg_t cfg[GLORA_SITES * 8];
    assert_true(glora_vit_layers(m) <= GLORA_SITES * 8);
    const char *names[] = {"sub_rank", "all_lora4"};
    for (int k = 0; k < 2; k++) {
        load_config(m, names[k], cfg);
        step_check(m, mask, cfg, names[k], "labels", 0.1f);
    }
    free(mask);
    glora_vit_free(m);
}

static void test_full_step(void **state) {
    (void)state;
    glora_vit_t *m;
    if (glora_vit_load(&m, FIX "backbone.safetensors", NULL, 0)) fail_msg("%s", glora_errmsg());
    unsigned char *mask = calloc((size_t)m->n_params, 1);
    assert_int_equal(glora_train_select(m, "backbone,head", mask), 0);
    step_check(m, mask, NULL, "full", "labels7", 0.0f);
    free(mask);
    glora_vit_free(m);
}

static void test_adamw_steps(void **state) {
    (void)state;
    unsigned char *mask;
    glora_vit_t *m = load_supernet(&mask);
    glora_st_t *ts;
    assert_int_equal(glora_st_open(&ts, FIX "train_step.safetensors"), GLORA_OK);
    glora_grads_t *g;
    glora_adamw_t *opt;
    assert_int_equal(glora_grads_create(&g, m, mask), 0);
    assert_int_equal(glora_adamw_create(&opt, g), 0);
    char name[160];
    for (int i = 0; i < m->n_params; i++) {
        if (!mask[i]) continue;
        snprintf(name, sizeof name, "grad.sub_rank.%s", m->params[i].name);
        float *v = read_tensor(ts, name, m->params[i].numel);
        memcpy(g->g[i], v, m->params[i].numel * sizeof(float));
        free(v);
    }
    const glora_adamw_cfg_t c = {0.9, 0.999, 1e-8, 1e-4};
    double worst = 0;
    for (int step = 1; step <= 2; step++) {
        glora_adamw_step(opt, m, g, &c, 1e-3);
        for (int i = 0; i < m->n_params; i++) {
            if (!mask[i]) continue;
            snprintf(name, sizeof name, "adamw%d.%s", step, m->params[i].name);
            float *want = read_tensor(ts, name, m->params[i].numel);
            double rel = compare(name, m->mem + m->params[i].offset, want, m->params[i].numel);
            if (rel > worst) worst = rel;
            free(want);
        }
    }
    printf("adamw: 2 steps, worst relative error %.3g\n", worst);
    glora_st_close(ts);
    glora_adamw_free(opt);
    glora_grads_free(g);
    free(mask);
    glora_vit_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_supernet_step),
        cmocka_unit_test(test_full_step),
        cmocka_unit_test(test_adamw_steps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
