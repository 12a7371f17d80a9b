/* cmd_config.c: placeholder, replaced wholesale. */
#include <stdio.h>

#include "commands.h"

int qtx_cmd_config(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "qtx config: not built yet\n");
    return 1;
}
