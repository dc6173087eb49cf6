/* Checks shared by every JSON reader (cJSON keeps duplicate keys and its
 * lookups return the first, so a file saying "A" twice would be read as
 * whatever came first; glora refuses such files instead). */
#ifndef GLORA_UTIL_JSON_CHECK_H
#define GLORA_UTIL_JSON_CHECK_H

#include <stddef.h>

#include <cjson/cJSON.h>

/* Looks for an object anywhere under root with a key twice. Returns 0 when
 * there is none; otherwise 1, with the dotted path of the second occurrence
 * ("layers.blocks.0.attn.qkv.A", array items as "[3]") in where. -1 when out
 * of memory. */
int glora_json_find_dup(const cJSON *root, char *where, size_t cap);

#endif
