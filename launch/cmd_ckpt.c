/* cmd_ckpt.c: `qtx ckpt info|verify PATH`: summarise or fully check a checkpoint
 * (ckpt/ckpt_store.h). PATH is a step directory, a checkpoint root or a run's out_dir (the
 * last two through their `latest`). */
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "ckpt_store.h"
#include "cli.h"
#include "commands.h"

static const char HELP[] =
    "usage: qtx ckpt info PATH\n"
    "       qtx ckpt verify PATH\n"
    "\n"
    "PATH is a checkpoint directory (out/ckpt/step_00000010), a checkpoint root (out/ckpt)\n"
    "or a run's out_dir (out); the last two mean the checkpoint their 'latest' names.\n"
    "\n"
    "  info         print the format, step and other saved state, files, and every tensor\n"
    "               with its global shape and piece count; checks the manifest and indexes\n"
    "  verify       check every file's size and CRC-32 and every piece's CRC-32; prints\n"
    "               'ok DIR' or the first bad file and exits 2\n"
    "  -h, --help   this help\n";

int qtx_cmd_ckpt(int argc, char **argv) {
    const char *action = NULL, *path = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(HELP, stdout);
            return 0;
        }
        if (a[0] == '-' && a[1])
            return qtx_usage_error("unknown option '%s' for 'qtx ckpt'; see 'qtx ckpt --help'", a);
        if (!action) {
            if (strcmp(a, "info") && strcmp(a, "verify"))
                return qtx_usage_error(
                    "unknown 'qtx ckpt' command '%s': expected info or verify; see 'qtx ckpt "
                    "--help'",
                    a);
            action = a;
        } else if (!path) {
            path = a;
        } else {
            return qtx_usage_error("qtx ckpt %s takes one PATH; unexpected '%s'", action, a);
        }
    }
    if (!action) {
        fputs(HELP, stderr);
        return 2;
    }
    if (!path)
        return qtx_usage_error("missing PATH: usage: qtx ckpt %s PATH (a checkpoint directory, "
                               "checkpoint root or run out_dir)",
                               action);
    char dir[4096];
    qtx_err e = {0};
    if (qtx_ckpt_resolve(path, NULL, dir, sizeof dir, &e)) return qtx_report(&e);
    if (!strcmp(action, "info")) {
        if (qtx_ckpt_info(dir, stdout, &e)) return qtx_report(&e);
        return fflush(stdout) == 0 ? 0 : 1;
    }
    if (qtx_ckpt_verify(dir, &e)) return qtx_report(&e);
    printf("ok %s\n", dir);
    return fflush(stdout) == 0 ? 0 : 1;
}
