/* cmd_prep.c: placeholder until the data-pipeline work lands; replaced wholesale. */
#include <stdio.h>

#include "commands.h"

int qtx_cmd_prep(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "qtx prep: not built yet\n");
    return 1;
}
