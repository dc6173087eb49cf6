/* The model setup glora eval and glora predict share. */
#include "cli/cli_infer.h"
#include "cli/cli_model.h"

#include "glora/common.h"

int cli_infer_load(const glora_config_t *cfg, glora_vit_t **m, glora_spec_t *spec, int *have_spec) {
    const char *adapter = glora_config_string(cfg, "model.adapter");
    *m = NULL;
    int rc = cli_load_model(cfg, m);
    if (!rc) rc = cli_load_subnet(*m, glora_config_string(cfg, "subnet"), adapter, spec, have_spec);
    if (!rc && (*m)->rank > 0 && !*have_spec) {
        rc = glora_error(GLORA_EINVAL, "model '%s': has GLoRA tensors but no subnet spec says which to use",
                         adapter);
        glora_error_hint("pass --subnet SPEC (a search's best.json, for example)");
    }
    if (rc) {
        glora_spec_free(spec);
        glora_vit_free(*m);
        *m = NULL;
        return rc;
    }
    cli_set_precision(cfg, "eval.precision", *m);
    return GLORA_OK;
}
