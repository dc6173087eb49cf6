/* timm's classic ViT architectures and the hub's config.json (glora/timm.h). */
#include "glora/timm.h"
#include "glora/common.h"
#include "util/fileio.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const glora_timm_arch_t archs[] = {
    {"vit_tiny_patch16_224", 16, 224, 192, 12, 3},   {"vit_tiny_patch16_384", 16, 384, 192, 12, 3},
    {"vit_small_patch16_224", 16, 224, 384, 12, 6},  {"vit_small_patch16_384", 16, 384, 384, 12, 6},
    {"vit_small_patch32_224", 32, 224, 384, 12, 6},  {"vit_small_patch32_384", 32, 384, 384, 12, 6},
    {"vit_base_patch16_224", 16, 224, 768, 12, 12},  {"vit_base_patch16_384", 16, 384, 768, 12, 12},
    {"vit_base_patch32_224", 32, 224, 768, 12, 12},  {"vit_base_patch32_384", 32, 384, 768, 12, 12},
    {"vit_large_patch16_224", 16, 224, 1024, 24, 16}, {"vit_large_patch16_384", 16, 384, 1024, 24, 16},
    {"vit_large_patch32_224", 32, 224, 1024, 24, 16}, {"vit_large_patch32_384", 32, 384, 1024, 24, 16},
    {"deit_tiny_patch16_224", 16, 224, 192, 12, 3},  {"deit_small_patch16_224", 16, 224, 384, 12, 6},
    {"deit_base_patch16_224", 16, 224, 768, 12, 12}, {"deit_base_patch16_384", 16, 384, 768, 12, 12},
};

const glora_timm_arch_t *glora_timm_arch_find(const char *name) {
    if (!name) return NULL;
    if (strncmp(name, "timm/", 5) == 0) name += 5;
    char base[96];
    size_t n = strcspn(name, ".");
    if (n >= sizeof base) return NULL;
    memcpy(base, name, n);
    base[n] = '\0';
    size_t len = strlen(base);
    if (len > 6 && strcmp(base + len - 6, "_in21k") == 0) base[len - 6] = '\0';
    for (size_t i = 0; i < sizeof archs / sizeof archs[0]; i++)
        if (strcmp(archs[i].name, base) == 0) return &archs[i];
    return NULL;
}

const char *glora_timm_arch_names(void) {
    return "vit_tiny_patch16_224, vit_tiny_patch16_384, vit_small_patch16_224, vit_small_patch16_384, "
           "vit_small_patch32_224, vit_small_patch32_384, vit_base_patch16_224, vit_base_patch16_384, "
           "vit_base_patch32_224, vit_base_patch32_384, vit_large_patch16_224, vit_large_patch16_384, "
           "vit_large_patch32_224, vit_large_patch32_384, deit_tiny_patch16_224, deit_small_patch16_224, "
           "deit_base_patch16_224, deit_base_patch16_384";
}

/* ---- config.json --------------------------------------------------------- */

#define MAX_CONFIG (1u << 20)
#define MAX_KEYS 4096

/* Refuses an object with a key twice, at any depth (cJSON keeps both). */
static int check_duplicates(const cJSON *node, const char *path, const char *where) {
    if (!cJSON_IsObject(node) && !cJSON_IsArray(node)) return GLORA_OK;
    size_t n = 0;
    for (const cJSON *c = node->child; c; c = c->next, n++) {
        if (n >= MAX_KEYS)
            return glora_error(GLORA_EFORMAT, "config '%s': key '%s': more than %d entries", path, where, MAX_KEYS);
        if (cJSON_IsObject(node)) {
            for (const cJSON *d = node->child; d != c; d = d->next)
                if (strcmp(d->string, c->string) == 0)
                    return glora_error(GLORA_EFORMAT, "config '%s': key '%.80s' appears twice%s%s", path,
                                       c->string, where[0] ? " in " : "", where);
        }
        int rc = check_duplicates(c, path, cJSON_IsObject(node) ? c->string : where);
        if (rc) return rc;
    }
    return GLORA_OK;
}

#define BAD(key, why) glora_error(GLORA_EFORMAT, "config '%s': key '%s': %s", path, key, why)

static int get_number(const cJSON *obj, const char *key, const char *shown, double lo, double hi, int integer,
                      const char *path, double *out, int *present) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    *present = v != NULL && !cJSON_IsNull(v);
    if (!*present) return GLORA_OK;
    if (!cJSON_IsNumber(v)) return BAD(shown, "a number expected");
    double d = v->valuedouble;
    if (!(d >= lo && d <= hi) || (integer && d != floor(d))) {
        char why[96];
        snprintf(why, sizeof why, "%s between %g and %g expected", integer ? "an integer" : "a number", lo, hi);
        return BAD(shown, why);
    }
    *out = d;
    return GLORA_OK;
}

static int get_string(const cJSON *obj, const char *key, const char *shown, const char *path, char *out,
                      size_t cap) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v || cJSON_IsNull(v)) return GLORA_OK;
    if (!cJSON_IsString(v)) return BAD(shown, "a string expected");
    if (strlen(v->valuestring) >= cap) return BAD(shown, "too long");
    for (const char *p = v->valuestring; *p; p++)
        if ((unsigned char)*p < 0x20) return BAD(shown, "control characters");
    strcpy(out, v->valuestring);
    return GLORA_OK;
}

static int get_list(const cJSON *obj, const char *key, const char *shown, const char *path, int *n, double *vals,
                    double lo) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v || cJSON_IsNull(v)) return GLORA_OK;
    if (cJSON_IsNumber(v)) {
        if (!(v->valuedouble > lo && v->valuedouble < 1e6)) return BAD(shown, "number out of range");
        vals[0] = v->valuedouble;
        *n = 1;
        return GLORA_OK;
    }
    int k = cJSON_IsArray(v) ? cJSON_GetArraySize(v) : -1;
    if (k != 1 && k != 3) return BAD(shown, "a list of 1 or 3 numbers expected");
    for (int i = 0; i < k; i++) {
        const cJSON *x = cJSON_GetArrayItem(v, i);
        if (!cJSON_IsNumber(x) || !(x->valuedouble > lo && x->valuedouble < 1e6))
            return BAD(shown, "a list of 1 or 3 numbers in range expected");
        vals[i] = x->valuedouble;
    }
    *n = k;
    return GLORA_OK;
}

static int parse_config(const cJSON *root, const char *path, glora_timm_config_t *cfg) {
    int rc, present;
    double d;
    if (!cJSON_IsObject(root)) return glora_error(GLORA_EFORMAT, "config '%s': not a JSON object", path);
    if ((rc = check_duplicates(root, path, ""))) return rc;
    if ((rc = get_string(root, "architecture", "architecture", path, cfg->architecture, sizeof cfg->architecture)))
        return rc;
    if ((rc = get_number(root, "num_classes", "num_classes", 0, 1e6, 1, path, &d, &present))) return rc;
    if (present) cfg->num_classes = (int)d;
    char pool[16] = "token";
    if ((rc = get_string(root, "global_pool", "global_pool", path, pool, sizeof pool))) return rc;
    if (strcmp(pool, "token") != 0 && pool[0] != '\0')
        return BAD("global_pool", "only \"token\" (the cls token) is supported: glora has no fc_norm / average pooling");
    const cJSON *ma = cJSON_GetObjectItemCaseSensitive(root, "model_args");
    if (ma && !cJSON_IsNull(ma)) {
        if (!cJSON_IsObject(ma)) return BAD("model_args", "an object expected");
        if ((rc = get_number(ma, "num_heads", "model_args.num_heads", 1, 1024, 1, path, &d, &present))) return rc;
        if (present) cfg->num_heads = (int)d;
    }
    const cJSON *pc = cJSON_GetObjectItemCaseSensitive(root, "pretrained_cfg");
    if (!pc || cJSON_IsNull(pc)) return GLORA_OK;
    if (!cJSON_IsObject(pc)) return BAD("pretrained_cfg", "an object expected");
    const cJSON *in = cJSON_GetObjectItemCaseSensitive(pc, "input_size");
    if (in && !cJSON_IsNull(in)) {
        if (!cJSON_IsArray(in) || cJSON_GetArraySize(in) != 3)
            return BAD("pretrained_cfg.input_size", "a list [channels, height, width] expected");
        for (int i = 0; i < 3; i++) {
            const cJSON *x = cJSON_GetArrayItem(in, i);
            if (!cJSON_IsNumber(x) || x->valuedouble != floor(x->valuedouble) || x->valuedouble < 1 ||
                x->valuedouble > 65536)
                return BAD("pretrained_cfg.input_size", "three integers 1..65536 expected");
            cfg->input_size[i] = (int)x->valuedouble;
        }
    }
    if ((rc = get_string(pc, "interpolation", "pretrained_cfg.interpolation", path, cfg->interpolation,
                         sizeof cfg->interpolation)))
        return rc;
    if ((rc = get_list(pc, "mean", "pretrained_cfg.mean", path, &cfg->n_mean, cfg->mean, -1e6))) return rc;
    if ((rc = get_list(pc, "std", "pretrained_cfg.std", path, &cfg->n_std, cfg->std, 0))) return rc;
    if ((rc = get_number(pc, "crop_pct", "pretrained_cfg.crop_pct", 1e-3, 1, 0, path, &d, &present))) return rc;
    if (present) cfg->crop_pct = d;
    return GLORA_OK;
}

int glora_timm_config_read(const char *path, glora_timm_config_t *cfg) {
    char *text;
    size_t n;
    int rc = glora_read_file(path, MAX_CONFIG, &text, &n);
    if (rc) return rc;
    if (strlen(text) != n) {
        free(text);
        return glora_error(GLORA_EFORMAT, "config '%s': holds a NUL byte", path);
    }
    cJSON *root = cJSON_Parse(text);
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        int line = 1;
        for (const char *p = text; at && p < at; p++) line += *p == '\n';
        free(text);
        return glora_error(GLORA_EFORMAT, "config '%s': invalid JSON near line %d", path, line);
    }
    glora_timm_config_t c = *cfg;
    rc = parse_config(root, path, &c);
    cJSON_Delete(root);
    free(text);
    if (!rc) *cfg = c;
    return rc;
}

int glora_timm_config_beside(const char *model_path, glora_timm_config_t *cfg, int *found, char *path_out,
                             size_t cap) {
    *found = 0;
    const char *slash = strrchr(model_path, '/');
    size_t dir = slash ? (size_t)(slash - model_path) + 1 : 0;
    char *p = malloc(dir + sizeof "config.json");
    if (!p) return glora_error(GLORA_ENOMEM, "model '%s': out of memory", model_path);
    memcpy(p, model_path, dir);
    memcpy(p + dir, "config.json", sizeof "config.json");
    int rc = GLORA_OK;
    if (access(p, F_OK) == 0) {
        rc = glora_timm_config_read(p, cfg);
        if (!rc) *found = 1;
    }
    if (path_out && cap) snprintf(path_out, cap, "%s", p);
    free(p);
    return rc;
}
