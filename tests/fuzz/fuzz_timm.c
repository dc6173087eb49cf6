/* timm hub config.json files through glora_timm_config_read; an accepted
 * config's values must be in the documented ranges, and its architecture
 * is looked up in glora's table (glora_timm_arch_find). */
#include "fuzz.h"

#include <stdlib.h>
#include <string.h>

#include "glora/common.h"
#include "glora/timm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_file(0, data, size);
    if (!path) return 0;
    glora_timm_config_t c = {.num_classes = -1}, before;
    memcpy(&before, &c, sizeof c);
    int rc = glora_timm_config_read(path, &c);
    if (rc) {
        fuzz_debug("timm");
        if (memcmp(&before, &c, sizeof c) != 0) abort(); /* a refused file changes nothing */
        return 0;
    }
    if (c.num_classes < -1 || c.num_classes > 1000000) abort();
    if (c.num_heads < 0 || c.num_heads > 1024) abort();
    for (int i = 0; i < 3; i++)
        if (c.input_size[i] < 0 || c.input_size[i] > 65536) abort();
    if (c.n_mean != 0 && c.n_mean != 1 && c.n_mean != 3) abort();
    if (c.n_std != 0 && c.n_std != 1 && c.n_std != 3) abort();
    for (int i = 0; i < c.n_std; i++)
        if (!(c.std[i] > 0)) abort();
    if (c.crop_pct < 0 || c.crop_pct > 1) abort();
    if (!memchr(c.architecture, 0, sizeof c.architecture) || !memchr(c.interpolation, 0, sizeof c.interpolation))
        abort();
    const glora_timm_arch_t *a = glora_timm_arch_find(c.architecture);
    if (a && (a->patch < 1 || a->dim < 1 || a->heads < 1)) abort();
    return 0;
}
