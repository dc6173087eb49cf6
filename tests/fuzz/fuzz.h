/* The fuzz harness framework (docs/RELIABILITY.md). A harness is one file
 * fuzz_<name>.c that defines
 *
 *     int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
 *
 * calling glora's own entry point on the bytes, and optionally
 *
 *     int fuzz_seed(const char *dir);
 *
 * which writes extra seed inputs into dir (e.g. a file the harness can only
 * make by running glora). The same file links either with libFuzzer
 * (clang -fsanitize=fuzzer: `make fuzz`) or with driver.c (any compiler:
 * make check replays tests/fuzz/regress/<name>/ and the seeds). Harnesses
 * must not leak, print, or keep state between inputs beyond caches. */
#ifndef GLORA_FUZZ_H
#define GLORA_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int fuzz_seed(const char *dir);

/* A path that reads back as the n bytes (an in-memory regular file,
 * /proc/self/fd/N); valid until the next call with the same slot (0-3).
 * Returns NULL if the system refuses. */
const char *fuzz_file(int slot, const void *data, size_t n);

/* With FUZZ_DEBUG set, prints glora's message of a refused input to stderr
 * (to see how far a seed gets); otherwise nothing. */
void fuzz_debug(const char *what);

/* Writes n bytes to dir/name (for fuzz_seed). 0 on success. */
int fuzz_write(const char *dir, const char *name, const void *data, size_t n);

#endif
