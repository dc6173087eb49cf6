/* glora - Generalized LoRA for vision transformers: the whole public API. */
#ifndef GLORA_H
#define GLORA_H
#include "glora/common.h"
#include "glora/parallel.h"
#include "glora/rng.h"
#include "glora/fileio.h"
#include "glora/gemm.h"
#include "glora/nn.h"
#endif
