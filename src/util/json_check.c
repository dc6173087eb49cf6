/* Duplicate-key detection for parsed JSON trees (see util/json-check.h). */
#include "util/json-check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_key(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Appends ".key" or "[i]" to where[len..]; returns the new length (clamped). */
static size_t append(char *where, size_t cap, size_t len, const cJSON *parent, const cJSON *c,
                     int index) {
    if (len >= cap) return len;
    int n;
    if (cJSON_IsArray(parent)) n = snprintf(where + len, cap - len, "[%d]", index);
    else n = snprintf(where + len, cap - len, "%s%s", len ? "." : "", c->string ? c->string : "");
    if (n < 0) return len;
    return len + (size_t)n < cap ? len + (size_t)n : cap - 1;
}

/* Depth is bounded by cJSON's own nesting limit (CJSON_NESTING_LIMIT). */
static int walk(const cJSON *node, char *where, size_t cap, size_t len) {
    if (!cJSON_IsObject(node) && !cJSON_IsArray(node)) return 0;
    if (cJSON_IsObject(node)) {
        size_t n = 0;
        for (const cJSON *c = node->child; c; c = c->next) n++;
        if (n > 1) {
            const char **keys = malloc(n * sizeof *keys);
            if (!keys) return -1;
            size_t k = 0;
            for (const cJSON *c = node->child; c; c = c->next) keys[k++] = c->string ? c->string : "";
            qsort(keys, n, sizeof *keys, cmp_key);
            const char *dup = NULL;
            for (size_t i = 1; i < n && !dup; i++)
                if (strcmp(keys[i - 1], keys[i]) == 0) dup = keys[i];
            free(keys);
            if (dup) {
                /* Name the second occurrence by the path of the key. */
                for (const cJSON *c = node->child; c; c = c->next)
                    if (c->string && strcmp(c->string, dup) == 0) {
                        append(where, cap, len, node, c, 0);
                        break;
                    }
                return 1;
            }
        }
    }
    int i = 0;
    for (const cJSON *c = node->child; c; c = c->next, i++) {
        if (!cJSON_IsObject(c) && !cJSON_IsArray(c)) continue;
        size_t l2 = append(where, cap, len, node, c, i);
        int r = walk(c, where, cap, l2);
        if (r) return r;
        where[len] = '\0';
    }
    return 0;
}

int glora_json_find_dup(const cJSON *root, char *where, size_t cap) {
    if (!cap) return 0;
    where[0] = '\0';
    return root ? walk(root, where, cap, 0) : 0;
}
