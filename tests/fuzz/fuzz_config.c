/* YAML configs with --set overrides: the input is a YAML file, optionally
 * followed by a line "%%" and one `key=value` assignment per line (as
 * --set gives them). Loaded against a schema with every key type and a
 * wildcard map; then every getter, the dump, its reload and the hash. */
#include "fuzz.h"

#include <stdlib.h>
#include <string.h>

#include "glora/common.h"
#include "glora/config.h"

static const char *const kinds[] = {"lora", "vector", "none", NULL};
static const glora_config_key_t keys[] = {
    {"a.int", GLORA_CFG_INT, "5", "", 0, 100, NULL},
    {"a.num", GLORA_CFG_NUMBER, "1e-3", "", 0, 1, NULL},
    {"a.flag", GLORA_CFG_BOOL, "no", "", 0, 0, NULL},
    {"a.name", GLORA_CFG_STRING, NULL, "", 0, 0, NULL},
    {"a.kind", GLORA_CFG_ENUM, "lora", "", 0, 0, kinds},
    {"a.size", GLORA_CFG_SIZE, "1.5M", "", 0, 0, NULL},
    {"b.strs", GLORA_CFG_STRINGS, "[]", "", 0, 0, kinds},
    {"b.ints", GLORA_CFG_INTS, "[1, 2]", "", 1, 64, NULL},
    {"b.nums", GLORA_CFG_NUMBERS, "[]", "", 0, 0, NULL},
    {"b.sizes", GLORA_CFG_SIZES, "[100K]", "", 0, 0, NULL},
    {"c.override.*.A", GLORA_CFG_STRINGS, "[]", "", 0, 0, NULL},
    {"c.override.*.n", GLORA_CFG_INT, "0", "", -5, 5, NULL},
};
static const glora_config_schema_t schema = GLORA_CONFIG_SCHEMA(keys);

static void use(const glora_config_t *c) {
    size_t n;
    volatile double sink = 0;
    sink += (double)glora_config_int(c, "a.int") + glora_config_number(c, "a.num") +
            glora_config_bool(c, "a.flag") + (double)glora_config_size(c, "a.size");
    const char *s = glora_config_string(c, "a.name");
    if (s) sink += (double)strlen(s);
    sink += (double)strlen(glora_config_string(c, "a.kind"));
    const char *const *strs = glora_config_strings(c, "b.strs", &n);
    for (size_t i = 0; i < n; i++) sink += (double)strlen(strs[i]);
    const int64_t *ints = glora_config_ints(c, "b.ints", &n);
    for (size_t i = 0; i < n; i++) sink += (double)ints[i];
    const double *nums = glora_config_numbers(c, "b.nums", &n);
    for (size_t i = 0; i < n; i++) sink += nums[i];
    const size_t *sizes = glora_config_sizes(c, "b.sizes", &n);
    for (size_t i = 0; i < n; i++) sink += (double)sizes[i];
    for (size_t i = 0; glora_config_map_key(c, "c.override", i); i++) sink += 1;
    (void)sink;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    char *sets = NULL;
    size_t yaml_len = size;
    char *sep = strstr(text, "\n%%\n");
    if (sep) {
        yaml_len = (size_t)(sep - text) + 1;
        sets = sep + 4;
    }
    glora_config_t *c = NULL;
    const char *path = fuzz_file(0, text, yaml_len);
    int rc = path ? glora_config_load(&c, path, &schema) : GLORA_EIO;
    if (rc) fuzz_debug("load");
    if (rc == GLORA_OK) {
        int ok = 1;
        for (char *line = sets; ok && line && *line;) {
            char *nl = strchr(line, '\n');
            if (nl) *nl = '\0';
            if (*line) ok = glora_config_set(c, line) == GLORA_OK;
            if (!ok) fuzz_debug("set");
            line = nl ? nl + 1 : NULL;
        }
        if (ok) {
            use(c);
            char hex[65], *yaml = NULL;
            glora_config_hash(c, hex);
            /* The dump reads back to the same values (same hash). */
            if (glora_config_dump(c, &yaml) == GLORA_OK) {
                glora_config_t *d = NULL;
                const char *p2 = fuzz_file(1, yaml, strlen(yaml));
                if (p2 && glora_config_load(&d, p2, &schema) == GLORA_OK) {
                    char hex2[65];
                    glora_config_hash(d, hex2);
                    if (strcmp(hex, hex2) != 0) abort();
                    glora_config_free(d);
                } else if (p2) {
                    abort(); /* glora wrote a config it cannot read */
                }
            }
            free(yaml);
        }
        glora_config_free(c);
    }
    free(text);
    return 0;
}
