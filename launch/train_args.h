/* train_args.h: the command line of `qtx train`, parsed into a loaded, validated config.
 *
 *   qtx train CONFIG.yaml [--set section.key=value]... [--print-config]
 *             [--resume latest|auto|PATH] [--help]
 */
#ifndef QTX_TRAIN_ARGS_H
#define QTX_TRAIN_ARGS_H

#include <stdio.h>

#include "check.h"
#include "config.h"

typedef struct qtx_train_args {
    qtx_config config;       /* the file, then each --set in order, then --resume; validated */
    const char *config_path; /* argv's CONFIG.yaml; NULL with --help */
    int print_config;        /* --print-config: print config as YAML, exit 0, no training */
    int help;                /* --help / -h: print qtx_train_usage to stdout, exit 0 */
} qtx_train_args;

/* argv[0] is "train". Returns QTX_OK, or QTX_ERR_INPUT with e->msg one line (the caller
 * prints "qtx: error: <msg>" and exits 2 before creating any file). With --help anywhere it
 * returns QTX_OK at once with a->help set and config left at its defaults. */
int qtx_train_args_parse(int argc, char **argv, qtx_train_args *a, qtx_err *e);

/* The `qtx train --help` text. */
void qtx_train_usage(FILE *f);

#endif
