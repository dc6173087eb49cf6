/* NumPy .npz archives (zip + .npy headers) through glora_npz_open, every
 * array read with glora_npz_read_f32 (CRC-32 and inflate included), and
 * the same bytes as a model through glora_vit_load (Google's ViT layout:
 * names, shapes, the architecture derived from them). An opened archive
 * must be consistent: every array found by its name, a read with the wrong
 * count refused. */
#include "fuzz.h"

#include <stdlib.h>
#include <string.h>

#include "glora/common.h"
#include "glora/model.h"
#include "glora/npz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_file(0, data, size);
    if (!path) return 0;
    glora_npz_t *z = NULL;
    int rc = glora_npz_open(&z, path);
    if (rc) {
        fuzz_debug("npz");
        if (z) abort();
    } else {
        size_t n = glora_npz_count(z);
        if (n == 0) abort(); /* an archive without arrays is refused */
        for (size_t i = 0; i < n; i++) {
            const glora_npz_array_t *a = glora_npz_array(z, i);
            if (!a || glora_npz_find(z, a->name) != a) abort();
            if (a->itemsize != 2 && a->itemsize != 4 && a->itemsize != 8) abort();
            if (a->ndim < 0 || a->ndim > GLORA_NPZ_MAX_NDIM) abort();
            if (a->numel > (1u << 22)) continue;
            float *dst = malloc((a->numel + 1) * sizeof *dst);
            if (!dst) continue;
            if (glora_npz_read_f32(z, a, dst, a->numel + 1) != GLORA_EINVAL) abort();
            if (glora_npz_read_f32(z, a, dst, a->numel)) fuzz_debug("npz read");
            free(dst);
        }
        if (glora_npz_array(z, n) != NULL) abort();
        glora_npz_close(z);
    }
    glora_vit_t *m = NULL;
    rc = glora_vit_load(&m, path, NULL, 0);
    if (rc) fuzz_debug("model");
    else glora_vit_free(m);
    return 0;
}
