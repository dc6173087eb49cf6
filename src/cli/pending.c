/* Weak stand-ins so the tool links while parts land (removed when all are in). */
#include <stdio.h>
#include "cli/commands.h"
#define PENDING(f) __attribute__((weak)) int f(int argc, char **argv) { (void)argc; fprintf(stderr, "glora: error: '%s' is not in this build yet\n", argv[0]); return 1; }
PENDING(glora_cmd_pretrain)
PENDING(glora_cmd_finetune)
PENDING(glora_cmd_supernet)
PENDING(glora_cmd_retrain)
PENDING(glora_cmd_search)
PENDING(glora_cmd_bench_gemm)
PENDING(glora_cmd_bench_train)
PENDING(glora_cmd_bench_search)
