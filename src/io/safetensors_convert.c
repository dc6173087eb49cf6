/* safetensors dtypes and their conversion to float32. */
#include "glora/safetensors.h"
#include "glora/common.h"
#include "io-impl.h"

#include <string.h>

static const struct {
    const char *name;
    size_t size;
} dtypes[GLORA_ST_NDTYPES] = {
    [GLORA_ST_BOOL] = {"BOOL", 1},       [GLORA_ST_U8] = {"U8", 1},
    [GLORA_ST_I8] = {"I8", 1},           [GLORA_ST_F8_E5M2] = {"F8_E5M2", 1},
    [GLORA_ST_F8_E4M3] = {"F8_E4M3", 1}, [GLORA_ST_I16] = {"I16", 2},
    [GLORA_ST_U16] = {"U16", 2},         [GLORA_ST_F16] = {"F16", 2},
    [GLORA_ST_BF16] = {"BF16", 2},       [GLORA_ST_I32] = {"I32", 4},
    [GLORA_ST_U32] = {"U32", 4},         [GLORA_ST_F32] = {"F32", 4},
    [GLORA_ST_F64] = {"F64", 8},         [GLORA_ST_I64] = {"I64", 8},
    [GLORA_ST_U64] = {"U64", 8},
};

const char *glora_st_dtype_name(glora_st_dtype_t dtype) {
    return (unsigned)dtype < GLORA_ST_NDTYPES ? dtypes[dtype].name : "?";
}

size_t glora_st_dtype_size(glora_st_dtype_t dtype) {
    return (unsigned)dtype < GLORA_ST_NDTYPES ? dtypes[dtype].size : 0;
}

/* Little-endian loads that work at any alignment and on any host. */
static inline uint64_t load_le(const uint8_t *p, int nbytes) {
    uint64_t v = 0;
    for (int i = nbytes - 1; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static inline float bits_to_f32(uint32_t bits) {
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* IEEE half to single: exact, since every half is a single. Subnormal halves
 * (exponent 0) are man * 2^-24, normal in single precision; infinities and
 * NaNs keep their sign and payload (the quiet bit lands on single's). */
static inline float f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
    if (exp == 0) {
        float mag = (float)man * 0x1p-24f;
        return sign ? -mag : mag;
    }
    if (exp == 0x1f) return bits_to_f32(sign | 0x7f800000u | (man << 13));
    return bits_to_f32(sign | ((exp + 112u) << 23) | (man << 13));
}

/* bfloat16 is the top half of a single. */
static inline float bf16_to_f32(uint16_t h) { return bits_to_f32((uint32_t)h << 16); }

int glora_st_read_f32(const glora_st_t *st, const glora_st_tensor_t *t, float *dst,
                      size_t n) {
    char shown[GLORA_IO_SHOWN_NAME];
    glora_io_show_name(t->name, shown);
    if (n != t->numel)
        return glora_error(GLORA_EINVAL,
                           "tensor '%s' in '%s': %zu values, but the destination holds %zu",
                           shown, glora_st_path(st), t->numel, n);
    const uint8_t *src = t->data;
    switch (t->dtype) {
    case GLORA_ST_F32:
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        if (n) memcpy(dst, src, n * sizeof(float));
#else
        for (size_t i = 0; i < n; i++) dst[i] = bits_to_f32((uint32_t)load_le(src + 4 * i, 4));
#endif
        return GLORA_OK;
    case GLORA_ST_F16:
        for (size_t i = 0; i < n; i++) dst[i] = f16_to_f32((uint16_t)load_le(src + 2 * i, 2));
        return GLORA_OK;
    case GLORA_ST_BF16:
        for (size_t i = 0; i < n; i++) dst[i] = bf16_to_f32((uint16_t)load_le(src + 2 * i, 2));
        return GLORA_OK;
    case GLORA_ST_F64:
        for (size_t i = 0; i < n; i++) {
            uint64_t bits = load_le(src + 8 * i, 8);
            double d;
            memcpy(&d, &bits, sizeof d);
            dst[i] = (float)d;
        }
        return GLORA_OK;
    case GLORA_ST_BOOL:
        for (size_t i = 0; i < n; i++) dst[i] = src[i] ? 1.0f : 0.0f;
        return GLORA_OK;
    case GLORA_ST_U8:
        for (size_t i = 0; i < n; i++) dst[i] = (float)src[i];
        return GLORA_OK;
    case GLORA_ST_I8:
        for (size_t i = 0; i < n; i++) dst[i] = (float)(int8_t)src[i];
        return GLORA_OK;
    case GLORA_ST_I16:
        for (size_t i = 0; i < n; i++) dst[i] = (float)(int16_t)load_le(src + 2 * i, 2);
        return GLORA_OK;
    case GLORA_ST_U16:
        for (size_t i = 0; i < n; i++) dst[i] = (float)(uint16_t)load_le(src + 2 * i, 2);
        return GLORA_OK;
    case GLORA_ST_I32:
        for (size_t i = 0; i < n; i++) dst[i] = (float)(int32_t)load_le(src + 4 * i, 4);
        return GLORA_OK;
    case GLORA_ST_U32:
        for (size_t i = 0; i < n; i++) dst[i] = (float)(uint32_t)load_le(src + 4 * i, 4);
        return GLORA_OK;
    case GLORA_ST_I64:
        for (size_t i = 0; i < n; i++) dst[i] = (float)(int64_t)load_le(src + 8 * i, 8);
        return GLORA_OK;
    case GLORA_ST_U64:
        for (size_t i = 0; i < n; i++) dst[i] = (float)load_le(src + 8 * i, 8);
        return GLORA_OK;
    default:
        return glora_error(GLORA_EFORMAT,
                           "tensor '%s' in '%s': dtype %s cannot be read as float32",
                           shown, glora_st_path(st), glora_st_dtype_name(t->dtype));
    }
}
