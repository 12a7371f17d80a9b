/* cmd_train.c: placeholder, replaced wholesale. */
#include <stdio.h>

#include "commands.h"

int qtx_cmd_train(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "qtx train: not built yet\n");
    return 1;
}
