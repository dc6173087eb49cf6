/* The precision of eval and predict, with its note on stderr. */
#include "cli/cli_model.h"

#include "cli/cli.h"

void cli_set_precision(const glora_config_t *cfg, const char *key, glora_vit_t *m) {
    cli_progress_t pg;
    glora_stage_hooks_t h;
    cli_progress_hooks(&pg, &h);
    glora_precision_from_config(cfg, key, m, &h);
}
