/* Subnet specs ("glora-subnet/1" JSON) through glora_spec_parse, then
 * written back and parsed again: the round trip must succeed. */
#include "fuzz.h"

#include <stdlib.h>
#include <string.h>

#include "glora/common.h"
#include "glora/spec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *json = malloc(size + 1);
    if (!json) return 0;
    memcpy(json, data, size);
    json[size] = '\0';
    glora_spec_t s;
    int rc = glora_spec_parse(&s, json, "fuzz.json");
    if (rc) fuzz_debug("spec");
    if (rc == GLORA_OK) {
        char *out = NULL;
        if (glora_spec_to_json(&s, &out) == GLORA_OK) {
            glora_spec_t t;
            if (glora_spec_parse(&t, out, "roundtrip.json") != GLORA_OK) abort();
            if (t.params != s.params || t.n_layers != s.n_layers) abort();
            glora_spec_free(&t);
        }
        free(out);
        glora_spec_free(&s);
    }
    free(json);
    return 0;
}
