/* cmd_config.c: `qtx config`: the configuration reference (docs/CONFIG.md is its output)
 * and a check of a config file without training. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "commands.h"
#include "config.h"

static const char HELP[] =
    "usage: qtx config --docs\n"
    "       qtx config check CONFIG.yaml [--set section.key=value]...\n"
    "\n"
    "  --docs       print the configuration reference as Markdown (docs/CONFIG.md is\n"
    "               'qtx config --docs > docs/CONFIG.md')\n"
    "  check        load and validate CONFIG.yaml as 'qtx train' would, with the same\n"
    "               --set overrides; print 'ok', or the error and exit 2\n"
    "  -h, --help   this help\n";

static int usage_error(const char *msg, const char *arg) {
    fprintf(stderr, "qtx: error: %s'%s'; see 'qtx config --help'\n", msg, arg);
    return 2;
}

static int check(int argc, char **argv) {
    const char *path = NULL;
    const char **sets = qtx_calloc((size_t)argc, sizeof *sets);
    int n_sets = 0, rc = 0;
    for (int i = 1; i < argc && rc == 0; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--set")) {
            if (i + 1 >= argc) {
                fprintf(stderr,
                        "qtx: error: option '--set' needs a value: --set section.key=value\n");
                rc = 2;
            } else {
                sets[n_sets++] = argv[++i];
            }
        } else if (!strncmp(a, "--set=", 6)) {
            sets[n_sets++] = a + 6;
        } else if (a[0] == '-' && a[1]) {
            rc = usage_error("unknown option for 'qtx config check': ", a);
        } else if (path) {
            rc = usage_error("qtx config check takes one CONFIG.yaml; unexpected ", a);
        } else {
            path = a;
        }
    }
    if (rc == 0 && !path) {
        fprintf(stderr, "qtx: error: missing CONFIG.yaml: usage: qtx config check CONFIG.yaml "
                        "[--set section.key=value]...\n");
        rc = 2;
    }
    if (rc == 0) {
        qtx_config c;
        qtx_err e = {0};
        if (qtx_config_load(&c, path, sets, n_sets, &e)) {
            fprintf(stderr, "qtx: error: %s\n", e.msg);
            rc = 2;
        } else {
            printf("ok\n");
        }
    }
    free(sets);
    return rc;
}

int qtx_cmd_config(int argc, char **argv) {
    if (argc < 2) {
        fputs(HELP, stderr);
        return 2;
    }
    const char *a = argv[1];
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
        fputs(HELP, stdout);
        return 0;
    }
    if (!strcmp(a, "--docs")) {
        if (argc > 2)
            return usage_error("qtx config --docs takes no arguments; unexpected ", argv[2]);
        qtx_config_write_docs(stdout);
        return fflush(stdout) == 0 ? 0 : 1;
    }
    if (!strcmp(a, "check")) {
        for (int i = 2; i < argc; i++)
            if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
                fputs(HELP, stdout);
                return 0;
            }
        return check(argc - 1, argv + 1);
    }
    return usage_error("unknown 'qtx config' command or option ", a);
}
