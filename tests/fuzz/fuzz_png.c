/* PNG files through glora's decoder (libpng behind glora_image_decode_mem),
 * then preprocessing as predict does it (image_check.h). glora refuses a
 * chunk with a bad CRC, so nearly every mutation would stop at the first
 * CRC check: the harness decodes the input as it is, and then a copy with
 * every chunk's CRC-32 recomputed, which takes the mutation to libpng's
 * chunk parsers, the inflate of IDAT and glora's conversion. */
#include "fuzz.h"
#include "image_check.h"

#include <string.h>
#include <zlib.h>

static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Rewrites the CRC of every whole chunk after the signature; 1 if any
 * changed. */
static int fix_crcs(uint8_t *b, size_t n) {
    int changed = 0;
    size_t pos = 8;
    while (pos + 12 <= n) {
        uint32_t len = be32(b + pos);
        if (len > n - pos - 12) break;
        uint32_t crc = (uint32_t)crc32(0L, b + pos + 4, (uInt)len + 4);
        uint8_t *c = b + pos + 8 + len;
        if (be32(c) != crc) {
            c[0] = (uint8_t)(crc >> 24);
            c[1] = (uint8_t)(crc >> 16);
            c[2] = (uint8_t)(crc >> 8);
            c[3] = (uint8_t)crc;
            changed = 1;
        }
        pos += 12 + (size_t)len;
    }
    return changed;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_image(data, size);
    if (size < 8) return 0;
    uint8_t *copy = malloc(size);
    if (!copy) return 0;
    memcpy(copy, data, size);
    if (fix_crcs(copy, size)) fuzz_image(copy, size);
    free(copy);
    return 0;
}
