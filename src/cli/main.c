/* glora command-line entry point (placeholder until the commands land). */
#include <stdio.h>
#include <string.h>
#include "glora/common.h"

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "--version") == 0) {
        printf("glora %s\n", GLORA_VERSION_STRING);
        return 0;
    }
    fprintf(stderr, "usage: glora <command> [options]\n");
    return 2;
}
