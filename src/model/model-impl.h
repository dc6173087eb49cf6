/* Internals shared by the files of src/model. */
#ifndef GLORA_MODEL_IMPL_H
#define GLORA_MODEL_IMPL_H

#include "glora/model.h"
#include "glora/npz.h"

/* The architecture of a Google-named ViT .npz, read off its array shapes
 * (the heads from the query kernels, returned in *heads and not set in a);
 * num_classes 0 without a head. Refuses an archive holding any array a
 * classic ViT has no place for. */
int glora_vit_npz_arch(const glora_npz_t *z, glora_vit_arch_t *a, int *heads);

/* Fills m's backbone tensors (and its head when with_head) from the .npz,
 * converting names and layouts as timm's _load_weights does. m's
 * architecture must be the one glora_vit_npz_arch gave (head aside). */
int glora_vit_npz_fill(glora_vit_t *m, const glora_npz_t *z, int with_head);

#endif
