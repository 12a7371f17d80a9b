/* cmd_train.c: `qtx train CONFIG.yaml [--set k=v]... [--print-config] [--resume X]`. */
#include <stdio.h>

#include "cli.h"
#include "commands.h"
#include "config.h"
#include "log.h"
#include "train_args.h"
#include "trainer.h"

int qtx_cmd_train(int argc, char **argv) {
    static qtx_train_args a; /* large (paths); static keeps it off the stack */
    qtx_err e = {0};
    if (qtx_train_args_parse(argc, argv, &a, &e)) {
        return qtx_report(&e);
    }
    if (a.help) {
        qtx_train_usage(stdout);
        return 0;
    }
    if (a.print_config) {
        qtx_config_print(&a.config, stdout);
        return 0;
    }
    int rc = qtx_train_run(&a.config, &e);
    return rc ? qtx_report(&e) : 0;
}
