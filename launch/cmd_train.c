/* cmd_train.c: `qtx train CONFIG.yaml [--set k=v]... [--print-config] [--resume X]`. */
#include <stdio.h>

#include "cli.h"
#include "comm.h"
#include "commands.h"
#include "config.h"
#include "log.h"
#include "stop_signals.h"
#include "train_args.h"
#include "trainer.h"

/* Every rank parses the same arguments and reaches the same verdict; rank 0 speaks. */
int qtx_cmd_train(int argc, char **argv) {
    static qtx_train_args a; /* large (paths); static keeps it off the stack */
    qtx_err e = {0};
    qtx_stop_signals_start(); /* before MPI starts its threads: they inherit the mask */
    qtx_comm *world = qtx_comm_mpi_init(&argc, &argv);
    const int rank0 = qtx_comm_rank(world) == 0;
    int rc = qtx_train_args_parse(argc, argv, &a, &e);
    if (rc && !rank0) e.msg[0] = '\0';
    if (!rc && a.help && rank0) qtx_train_usage(stdout);
    if (!rc && a.print_config && rank0) qtx_config_print(&a.config, stdout);
    /* The trainer leaves a message only on the rank that should report it. */
    if (!rc && !a.help && !a.print_config) rc = qtx_train_run(world, &a.config, &e);
    if (rc && e.msg[0]) qtx_report(&e);
    qtx_comm_finalize(world);
    return rc;
}
