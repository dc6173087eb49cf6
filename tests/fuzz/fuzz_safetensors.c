/* safetensors: header (JSON, offsets, dtypes, shapes, metadata) and tensors
 * (every dtype converted to float32) through glora_st_open_buffer; then
 * the same bytes as a model file through glora_vit_load (architecture from
 * the shapes and metadata, every tensor checked). */
#include "fuzz.h"

#include <stdlib.h>

#include "glora/common.h"
#include "glora/model.h"
#include "glora/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    glora_st_t *st;
    int rc = glora_st_open_buffer(&st, data, size, "fuzz.safetensors");
    if (rc) fuzz_debug("safetensors");
    if (rc == GLORA_OK) {
        for (size_t i = 0; i < glora_st_count(st); i++) {
            const glora_st_tensor_t *t = glora_st_tensor(st, i);
            if (glora_st_find(st, t->name) != t) abort(); /* the index must agree */
            if (t->numel > (1u << 20)) continue;
            float *dst = malloc((t->numel ? t->numel : 1) * sizeof *dst);
            if (dst) glora_st_read_f32(st, t, dst, t->numel);
            free(dst);
        }
        for (size_t i = 0; i < glora_st_meta_count(st); i++) {
            const char *k, *v;
            glora_st_meta_at(st, i, &k, &v);
            if (glora_st_meta(st, k) != v) abort();
        }
        glora_st_close(st);
    }
    const char *path = fuzz_file(0, data, size);
    glora_vit_t *m = NULL;
    rc = path ? glora_vit_load(&m, path, NULL, 0) : GLORA_EIO;
    if (rc) fuzz_debug("model");
    else glora_vit_free(m);
    return 0;
}
