/* What the JPEG and PNG harnesses do with the bytes (tests/fuzz/fuzz_jpeg.c,
 * fuzz_png.c): glora_image_decode_mem, the decoded image checked (1 or 3
 * channels, positive sizes within GLORA_IMAGE_MAX_PIXELS), and for images
 * of at most 2^16 pixels the rest of what predict does with a file:
 * glora_image_preprocess to the other channel count, a size from 1 to 32,
 * squash or shorter-side resizing, each interpolation (chosen from the image's sizes, so
 * every seed takes a different path), and the normalisation. */
#ifndef GLORA_FUZZ_IMAGE_CHECK_H
#define GLORA_FUZZ_IMAGE_CHECK_H

#include <stdlib.h>

#include "fuzz.h"
#include "glora/common.h"
#include "glora/image.h"

static void fuzz_image(const uint8_t *data, size_t size) {
    glora_image_t img;
    int rc = glora_image_decode_mem(&img, data, size, "fuzz.img");
    if (rc) {
        fuzz_debug("decode");
        if (img.px) abort(); /* a refused image holds nothing */
        return;
    }
    if ((img.c != 1 && img.c != 3) || img.w < 1 || img.h < 1 || !img.px ||
        (size_t)img.w * (size_t)img.h > GLORA_IMAGE_MAX_PIXELS)
        abort();
    if ((size_t)img.w * (size_t)img.h <= (1u << 16)) {
        unsigned k = (unsigned)img.w * 7u + (unsigned)img.h;
        glora_image_prep_t prep = {
            .channels = 4 - img.c, /* the other one: 3 -> 1, 1 -> 3 */
            .size = 1 + (int)(k % 32),
            /* squash, or shorter unless the image is so long that its
             * shorter-side resize would take seconds */
            .resize = (glora_resize_t)(img.w <= 16 * img.h && img.h <= 16 * img.w ? k % 2 : 0),
            .interp = (glora_interp_t)(k / 2 % 3),
            .crop_pct = 0.5 + (double)(k % 5) / 10.0,
        };
        glora_image_t out;
        if (glora_image_preprocess(&out, &img, &prep, "fuzz.img") == GLORA_OK) {
            if (out.c != prep.channels || out.w != prep.size || out.h != prep.size) abort();
            static const float mean[3] = {0.5f, 0.4f, 0.3f}, stdv[3] = {0.2f, 0.25f, 0.3f};
            size_t n = (size_t)out.c * (size_t)out.h * (size_t)out.w;
            float *f = malloc(n * sizeof *f);
            if (f) glora_image_normalize(out.px, 1, out.c, out.h, out.w, mean, stdv, f);
            free(f);
            glora_image_free(&out);
        } else {
            abort(); /* every decoded image can be preprocessed */
        }
    }
    glora_image_free(&img);
}

#endif
