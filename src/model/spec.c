/* Subnet specs: read, validate and write "glora-subnet/1" JSON files
 * (format in glora/spec.h and docs/formats.md). */
#include "glora/spec.h"
#include "glora/common.h"
#include "util/fileio.h"
#include "util/json-check.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SPEC_MAX_BYTES (16u << 20)

static const char *const arch_keys[] = {"img_size", "in_chans", "patch", "dim", "depth",
                                        "heads", "mlp_hidden", "num_classes", "rank"};

static int *arch_field(glora_spec_t *s, int i) {
    int *f[] = {&s->arch.img_size, &s->arch.in_chans, &s->arch.patch, &s->arch.dim,
                &s->arch.depth, &s->arch.heads, &s->arch.mlp_hidden, &s->arch.num_classes,
                &s->rank};
    return f[i];
}

void glora_spec_free(glora_spec_t *s) {
    if (!s) return;
    free(s->cfg);
    free(s->class_names);
    memset(s, 0, sizeof *s);
}

/* A JSON number that is an integer in [lo, hi]. */
static int get_int(const cJSON *obj, const char *key, double lo, double hi, double *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsNumber(v)) return -1;
    double d = v->valuedouble;
    if (d != floor(d) || d < lo || d > hi) return -2;
    *out = d;
    return 0;
}

#define FAIL(...) return glora_error(GLORA_EFORMAT, __VA_ARGS__)

/* format, model (the architecture and rank) and supernet_sha256. */
static int parse_model(const cJSON *root, glora_spec_t *s, const char *path) {
    char dup[256];
    int d = glora_json_find_dup(root, dup, sizeof dup);
    if (d < 0) return glora_error(GLORA_ENOMEM, "cannot read subnet spec '%s': out of memory", path);
    if (d) FAIL("cannot read subnet spec '%s': key '%s' appears twice", path, dup);
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(root, "format");
    if (!cJSON_IsString(fmt))
        FAIL("cannot read subnet spec '%s': key 'format' missing (expected \"%s\")", path, GLORA_SPEC_FORMAT);
    if (strcmp(fmt->valuestring, GLORA_SPEC_FORMAT) != 0)
        FAIL("cannot read subnet spec '%s': format '%s' is not supported (expected \"%s\")", path,
             fmt->valuestring, GLORA_SPEC_FORMAT);
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!cJSON_IsObject(model)) FAIL("cannot read subnet spec '%s': key 'model' missing or not an object", path);
    for (int i = 0; i < 9; i++) {
        double v;
        int e = get_int(model, arch_keys[i], 1, 1e6, &v);
        if (e == -1) FAIL("cannot read subnet spec '%s': key 'model.%s' missing or not a number", path, arch_keys[i]);
        if (e == -2) FAIL("cannot read subnet spec '%s': key 'model.%s' must be a positive integer", path, arch_keys[i]);
        *arch_field(s, i) = (int)v;
    }
    if (glora_vit_arch_check(&s->arch) != GLORA_OK)
        FAIL("cannot read subnet spec '%s': key 'model': %s", path, glora_errmsg());
    if (s->rank > GLORA_MAX_RANK) FAIL("cannot read subnet spec '%s': key 'model.rank' above %d", path, GLORA_MAX_RANK);
    const cJSON *sha = cJSON_GetObjectItemCaseSensitive(root, "supernet_sha256");
    if (sha) {
        if (!cJSON_IsString(sha) || (strlen(sha->valuestring) != 64 && sha->valuestring[0] != '\0'))
            FAIL("cannot read subnet spec '%s': key 'supernet_sha256' must be 64 hex digits or \"\"", path);
        snprintf(s->supernet_sha256, sizeof s->supernet_sha256, "%s", sha->valuestring);
    }
    return GLORA_OK;
}

/* The optional class_names: model.num_classes non-empty strings. */
static int parse_class_names(const cJSON *root, glora_spec_t *s, const char *path) {
    const cJSON *names = cJSON_GetObjectItemCaseSensitive(root, "class_names");
    if (!names) return GLORA_OK;
    int ok = cJSON_IsArray(names) && cJSON_GetArraySize(names) == s->arch.num_classes;
    for (int c = 0; ok && c < s->arch.num_classes; c++) {
        const cJSON *v = cJSON_GetArrayItem(names, c);
        ok = cJSON_IsString(v) && v->valuestring[0] && strlen(v->valuestring) <= 1024;
    }
    if (!ok)
        FAIL("cannot read subnet spec '%s': key 'class_names' must be an array of model.num_classes (%d) "
             "non-empty strings", path, s->arch.num_classes);
    if (!(s->class_names = cJSON_PrintUnformatted(names)))
        return glora_error(GLORA_ENOMEM, "cannot read subnet spec '%s': out of memory", path);
    return GLORA_OK;
}

/* One entry of 'layers': layer l's five choices. */
static int parse_layer(const cJSON *layer, int l, glora_spec_t *s, const char *path) {
    if (!cJSON_IsObject(layer)) FAIL("cannot read subnet spec '%s': key 'layers.%s' must be an object", path, layer->string);
    const cJSON *item;
    cJSON_ArrayForEach(item, layer) {
        int known = 0;
        for (int t = 0; t < GLORA_NTENSORS; t++) known |= strcmp(item->string, glora_tensor_letter(t)) == 0;
        if (!known) FAIL("cannot read subnet spec '%s': key 'layers.%s.%s' is unknown (expected A, B, C, D, E)", path, layer->string, item->string);
    }
    for (int t = 0; t < GLORA_NTENSORS; t++) {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(layer, glora_tensor_letter(t));
        if (!cJSON_IsString(c)) FAIL("cannot read subnet spec '%s': key 'layers.%s.%s' missing or not a string", path, layer->string, glora_tensor_letter(t));
        if (glora_choice_parse(c->valuestring, t, s->rank, &s->cfg[l].t[t]) != GLORA_OK) {
            char why[512];
            snprintf(why, sizeof why, "%s", glora_errmsg());
            FAIL("cannot read subnet spec '%s': key 'layers.%s.%s': %s", path, layer->string, glora_tensor_letter(t), why);
        }
    }
    return GLORA_OK;
}

/* 'layers': every adapted layer of the model once; seen (n_layers bytes, zero) marks them. */
static int parse_layers(const cJSON *root, glora_spec_t *s, unsigned char *seen, const char *path) {
    const cJSON *layers = cJSON_GetObjectItemCaseSensitive(root, "layers");
    if (!cJSON_IsObject(layers)) FAIL("cannot read subnet spec '%s': key 'layers' missing or not an object", path);
    /* A fake model with just the architecture names the layers for us. */
    glora_vit_t shape = {.arch = s->arch};
    const cJSON *layer;
    cJSON_ArrayForEach(layer, layers) {
        int l = glora_vit_layer_index(&shape, layer->string), rc;
        if (l < 0) FAIL("cannot read subnet spec '%s': key 'layers.%s' is not an adapted layer of this model", path, layer->string);
        if (seen[l]) FAIL("cannot read subnet spec '%s': key 'layers.%s' appears twice", path, layer->string);
        seen[l] = 1;
        if ((rc = parse_layer(layer, l, s, path))) return rc;
    }
    for (int l = 0; l < s->n_layers; l++) {
        if (!seen[l]) {
            char name[48];
            glora_vit_layer_name(l, name);
            FAIL("cannot read subnet spec '%s': layer '%s' is missing from 'layers'", path, name);
        }
    }
    return GLORA_OK;
}

/* params (checked against the layers), val_accuracy and generation. */
static int parse_result(const cJSON *root, glora_spec_t *s, const char *path) {
    size_t counted = glora_arch_config_params(&s->arch, s->cfg);
    s->params = counted;
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(root, "params");
    if (params) {
        if (!cJSON_IsNumber(params) || params->valuedouble != (double)counted)
            FAIL("cannot read subnet spec '%s': key 'params' says %.0f but the layers count %zu", path,
                 cJSON_IsNumber(params) ? params->valuedouble : -1.0, counted);
    }
    const cJSON *val = cJSON_GetObjectItemCaseSensitive(root, "val_accuracy");
    if (val) {
        if (!cJSON_IsNumber(val) || val->valuedouble < 0 || val->valuedouble > 1)
            FAIL("cannot read subnet spec '%s': key 'val_accuracy' must be a number in [0, 1]", path);
        s->has_val = 1;
        s->val_accuracy = val->valuedouble;
        double g = 0;
        if (cJSON_GetObjectItemCaseSensitive(root, "generation")) {
            if (get_int(root, "generation", 0, 1e9, &g) != 0)
                FAIL("cannot read subnet spec '%s': key 'generation' must be a non-negative integer", path);
        }
        s->generation = (int)g;
    }
    return GLORA_OK;
}
#undef FAIL

int glora_spec_parse(glora_spec_t *s, const char *json, const char *path) {
    memset(s, 0, sizeof *s);
    cJSON *root = cJSON_Parse(json);
    unsigned char *seen = NULL;
    int rc;
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        int line = 1;
        for (const char *p = json; at && p < at; p++) line += *p == '\n';
        return glora_error(GLORA_EFORMAT, "cannot read subnet spec '%s': invalid JSON near line %d",
                           path, line);
    }
    if (!cJSON_IsObject(root)) {
        rc = glora_error(GLORA_EFORMAT, "cannot read subnet spec '%s': not a JSON object", path);
    } else if (!(rc = parse_model(root, s, path)) && !(rc = parse_class_names(root, s, path))) {
        s->n_layers = GLORA_SITES * s->arch.depth;
        s->cfg = calloc((size_t)s->n_layers, sizeof *s->cfg);
        seen = calloc((size_t)s->n_layers, 1);
        if (!s->cfg || !seen) rc = glora_error(GLORA_ENOMEM, "cannot read subnet spec '%s': out of memory", path);
    }
    if (!rc) rc = parse_layers(root, s, seen, path);
    if (!rc) rc = parse_result(root, s, path);
    free(seen);
    cJSON_Delete(root);
    if (rc != GLORA_OK) {
        free(s->cfg);
        free(s->class_names);
        memset(s, 0, sizeof *s);
    }
    return rc;
}

int glora_spec_read(glora_spec_t *s, const char *path) {
    char *text;
    size_t n;
    memset(s, 0, sizeof *s);
    int rc = glora_read_file(path, SPEC_MAX_BYTES, &text, &n);
    if (rc) return rc;
    if (strlen(text) != n) {
        free(text);
        return glora_error(GLORA_EFORMAT, "cannot read subnet spec '%s': contains a NUL byte", path);
    }
    rc = glora_spec_parse(s, text, path);
    free(text);
    return rc;
}

int glora_spec_to_json(const glora_spec_t *s, char **json) {
    *json = NULL;
    cJSON *root = cJSON_CreateObject();
    cJSON *model = cJSON_CreateObject();
    cJSON *layers = cJSON_CreateObject();
    if (!root || !model || !layers) goto oom;
    cJSON_AddStringToObject(root, "format", GLORA_SPEC_FORMAT);
    cJSON_AddItemToObject(root, "model", model);
    for (int i = 0; i < 9; i++)
        cJSON_AddNumberToObject(model, arch_keys[i], *arch_field((glora_spec_t *)s, i));
    cJSON_AddStringToObject(root, "supernet_sha256", s->supernet_sha256);
    cJSON_AddNumberToObject(root, "params", (double)s->params);
    if (s->has_val) {
        cJSON_AddNumberToObject(root, "val_accuracy", s->val_accuracy);
        cJSON_AddNumberToObject(root, "generation", s->generation);
    }
    if (s->class_names) {
        cJSON *names = cJSON_Parse(s->class_names);
        if (!names) goto oom;
        cJSON_AddItemToObject(root, "class_names", names);
    }
    cJSON_AddItemToObject(root, "layers", layers);
    for (int l = 0; l < s->n_layers; l++) {
        char name[48], buf[16];
        glora_vit_layer_name(l, name);
        cJSON *lay = cJSON_CreateObject();
        if (!lay) goto oom;
        cJSON_AddItemToObject(layers, name, lay);
        for (int t = 0; t < GLORA_NTENSORS; t++)
            cJSON_AddStringToObject(lay, glora_tensor_letter(t), glora_choice_str(s->cfg[l].t[t], buf));
    }
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text) return glora_error(GLORA_ENOMEM, "subnet spec: out of memory");
    *json = text;
    return GLORA_OK;
oom:
    cJSON_Delete(root);
    cJSON_Delete(model);
    cJSON_Delete(layers);
    return glora_error(GLORA_ENOMEM, "subnet spec: out of memory");
}

int glora_spec_write(const glora_spec_t *s, const char *path) {
    char *json;
    int rc = glora_spec_to_json(s, &json);
    if (rc) return rc;
    size_t n = strlen(json);
    char *text = realloc(json, n + 2);
    if (!text) { free(json); return glora_error(GLORA_ENOMEM, "cannot write subnet spec '%s': out of memory", path); }
    text[n] = '\n';
    text[n + 1] = '\0';
    rc = glora_write_atomic(path, text, n + 1);
    free(text);
    return rc;
}

int glora_spec_from_model(glora_spec_t *s, const glora_vit_t *m, const glora_layer_cfg_t *cfg,
                          const char *supernet_sha256) {
    memset(s, 0, sizeof *s);
    s->arch = m->arch;
    s->rank = m->rank;
    s->n_layers = glora_vit_layers(m);
    s->cfg = malloc((size_t)s->n_layers * sizeof *s->cfg);
    if (!s->cfg) return glora_error(GLORA_ENOMEM, "subnet spec: out of memory");
    memcpy(s->cfg, cfg, (size_t)s->n_layers * sizeof *s->cfg);
    s->params = glora_vit_config_params(m, cfg);
    snprintf(s->supernet_sha256, sizeof s->supernet_sha256, "%s", supernet_sha256 ? supernet_sha256 : "");
    /* The model's class names, when they are its head's (one per class). */
    cJSON *names = m->class_names ? cJSON_Parse(m->class_names) : NULL;
    if (names && cJSON_GetArraySize(names) == m->arch.num_classes && !(s->class_names = strdup(m->class_names))) {
        cJSON_Delete(names);
        glora_spec_free(s);
        return glora_error(GLORA_ENOMEM, "subnet spec: out of memory");
    }
    cJSON_Delete(names);
    return GLORA_OK;
}

int glora_spec_check(const glora_spec_t *s, const glora_vit_t *m, const char *path) {
    const glora_vit_arch_t *a = &s->arch, *b = &m->arch;
#define SAME(f) if (a->f != b->f) return glora_error(GLORA_ESTATE, \
        "subnet spec '%s' does not fit the model: model.%s is %d in the spec, %d in the model", path, #f, a->f, b->f)
    SAME(img_size); SAME(in_chans); SAME(patch); SAME(dim); SAME(depth); SAME(heads); SAME(mlp_hidden);
    SAME(num_classes);
#undef SAME
    if (m->rank == 0)
        return glora_error(GLORA_ESTATE, "subnet spec '%s' needs GLoRA tensors, but the model has none (load a supernet or adapter)", path);
    for (int l = 0; l < s->n_layers; l++) {
        if (glora_layer_max_rank(&s->cfg[l]) > m->rank) {
            char name[48];
            glora_vit_layer_name(l, name);
            return glora_error(GLORA_ESTATE, "subnet spec '%s': layer '%s' uses rank %d, the model's GLoRA rank is %d",
                               path, name, glora_layer_max_rank(&s->cfg[l]), m->rank);
        }
    }
    return GLORA_OK;
}
