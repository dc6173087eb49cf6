/* glora - Generalized LoRA for vision transformers: the whole public API. */
#ifndef GLORA_H
#define GLORA_H
#include "glora/common.h"
#include "glora/gemm.h"
#include "glora/nn.h"
#include "glora/safetensors.h"
#include "glora/data.h"
#include "glora/image.h"
#include "glora/tasks.h"
#include "glora/config.h"
#include "glora/layer.h"
#include "glora/model.h"
#include "glora/spec.h"
#include "glora/train.h"
#include "glora/search.h"
#include "glora/pipeline.h"
#endif
