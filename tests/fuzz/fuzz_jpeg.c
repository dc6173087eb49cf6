/* JPEG files through glora's decoder (libjpeg behind
 * glora_image_decode_mem), then preprocessing as predict does it
 * (image_check.h). Inputs not starting with a JPEG's SOI marker are
 * decoded too (they must be refused cleanly), but the seeds and the
 * dictionary keep the fuzzer inside JPEG. */
#include "fuzz.h"
#include "image_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_image(data, size);
    return 0;
}
