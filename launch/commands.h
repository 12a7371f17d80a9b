/* commands.h: the qtx subcommands. Each takes argv after its own name (argv[0] is the
 * subcommand) and returns the process exit status: 0 ok, 1 runtime failure, 2 bad input. */
#ifndef QTX_COMMANDS_H
#define QTX_COMMANDS_H

int qtx_cmd_train(int argc, char **argv);
int qtx_cmd_tokenizer(int argc, char **argv);
int qtx_cmd_prep(int argc, char **argv);
int qtx_cmd_config(int argc, char **argv);
int qtx_cmd_ckpt(int argc, char **argv);
int qtx_cmd_export(int argc, char **argv);
int qtx_cmd_generate(int argc, char **argv);
int qtx_cmd_eval(int argc, char **argv);

#endif
