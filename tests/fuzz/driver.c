/* Replays inputs through a harness without libFuzzer (make check, and the
 * sanitizer build's make check): every file named, and every file of every
 * directory named. `--seed DIR` writes the harness's generated seeds into
 * DIR instead. Exit 0 when every input ran (a crash or a sanitizer report
 * ends the process with its own status). */
#include "fuzz.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

__attribute__((weak)) int fuzz_seed(const char *dir) {
    (void)dir;
    return 0;
}

static int run_file(const char *path, int verbose) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "fuzz driver: cannot open %s\n", path);
        return 1;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc(n > 0 ? (size_t)n : 1);
    if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
        fclose(f);
        free(buf);
        fprintf(stderr, "fuzz driver: cannot read %s\n", path);
        return 1;
    }
    fclose(f);
    if (verbose) fprintf(stderr, "fuzz driver: %s (%ld bytes)\n", path, n);
    LLVMFuzzerTestOneInput(buf, (size_t)n);
    free(buf);
    return 0;
}

int main(int argc, char **argv) {
    int verbose = getenv("FUZZ_VERBOSE") != NULL, bad = 0, ran = 0;
    if (argc == 3 && strcmp(argv[1], "--seed") == 0) return fuzz_seed(argv[2]) ? 1 : 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "fuzz driver: no %s\n", argv[i]);
            bad = 1;
            continue;
        }
        if (!S_ISDIR(st.st_mode)) {
            bad |= run_file(argv[i], verbose);
            ran++;
            continue;
        }
        DIR *d = opendir(argv[i]);
        struct dirent *e;
        while (d && (e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.') continue;
            char p[4096];
            snprintf(p, sizeof p, "%s/%s", argv[i], e->d_name);
            if (stat(p, &st) == 0 && S_ISREG(st.st_mode)) {
                bad |= run_file(p, verbose);
                ran++;
            }
        }
        if (d) closedir(d);
    }
    printf("%d inputs replayed\n", ran);
    return bad;
}
