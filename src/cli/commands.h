/* The glora commands: each takes argv with argv[0] = the command's own name
 * ("eval", or "gemm" for "glora bench gemm") and returns the exit status. */
#ifndef GLORA_COMMANDS_H
#define GLORA_COMMANDS_H

int glora_cmd_info(int argc, char **argv);
int glora_cmd_init(int argc, char **argv);
int glora_cmd_eval(int argc, char **argv);
int glora_cmd_predict(int argc, char **argv);
int glora_cmd_merge(int argc, char **argv);
int glora_cmd_convert(int argc, char **argv);
int glora_cmd_pretrain(int argc, char **argv);
int glora_cmd_finetune(int argc, char **argv);
int glora_cmd_supernet(int argc, char **argv);
int glora_cmd_retrain(int argc, char **argv);
int glora_cmd_search(int argc, char **argv);
int glora_cmd_report(int argc, char **argv);
int glora_cmd_make_task(int argc, char **argv);
int glora_cmd_run(int argc, char **argv);
int glora_cmd_bench_gemm(int argc, char **argv);
int glora_cmd_bench_train(int argc, char **argv);
int glora_cmd_bench_search(int argc, char **argv);
int glora_cmd_bench_comm(int argc, char **argv);
int glora_cmd_bench_peak(int argc, char **argv);

#endif
