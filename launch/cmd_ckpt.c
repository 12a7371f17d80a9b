/* cmd_ckpt.c: `qtx ckpt info|verify PATH`: summarise or fully check a checkpoint
 * (ckpt/ckpt_store.h). PATH is a step directory, a checkpoint root or a run's out_dir (the
 * last two through their `latest`). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "ckpt_store.h"
#include "cli.h"
#include "commands.h"

static const char HELP[] =
    "usage: qtx ckpt info PATH\n"
    "       qtx ckpt verify PATH\n"
    "       qtx ckpt diff PATH_A PATH_B [--rtol R] [--kind param|adam_m|adam_v]\n"
    "\n"
    "PATH is a checkpoint directory (out/ckpt/step_00000010), a checkpoint root (out/ckpt)\n"
    "or a run's out_dir (out); the last two mean the checkpoint their 'latest' names.\n"
    "\n"
    "  info         print the format, step and other saved state, files, and every tensor\n"
    "               with its global shape and piece count; checks the manifest and indexes\n"
    "  verify       check every file's size and CRC-32 and every piece's CRC-32; prints\n"
    "               'ok DIR' or the first bad file and exits 2\n"
    "  diff         compare every tensor of A with B's, gathered whole whatever layouts\n"
    "               saved them: per tensor ||a - b|| / ||b||; exit 0 when every one is at\n"
    "               most --rtol (default 0: bit-identical), else 1 naming the worst\n"
    "  -h, --help   this help\n";

/* Every tensor (of `kind`, or all) in A and B, compared; 0 equal within rtol, 1 not. */
static int diff(const char *a, const char *b, double rtol, const char *only, qtx_err *e) {
    qtx_ckpt_reader *ra, *rb;
    if (qtx_ckpt_open(&ra, a, e)) return qtx_report(e);
    if (qtx_ckpt_open(&rb, b, e)) {
        qtx_ckpt_close(ra);
        return qtx_report(e);
    }
    const char *kind, *name;
    int64_t shape[2], shape_b[2];
    double worst = 0.0, worst_max = 0.0;
    char worst_name[96] = "";
    int rc = 0, n = 0;
    for (int i = 0; qtx_ckpt_tensor_at(ra, i, &kind, &name, shape) && !rc; i++) {
        if (only && strcmp(kind, only)) continue;
        if (!qtx_ckpt_has(rb, kind, name, shape_b) || shape_b[0] != shape[0] ||
            shape_b[1] != shape[1]) {
            rc = qtx_fail(e, QTX_ERR_INPUT, "checkpoint %s has no %s %s [%lld, %lld] like %s", b,
                          kind, name, (long long)shape[0], (long long)shape[1], a);
            break;
        }
        const int64_t cnt = shape[0] * shape[1], block[4] = {0, 0, shape[0], shape[1]};
        float *x = qtx_malloc((size_t)cnt * sizeof(float)),
              *y = qtx_malloc((size_t)cnt * sizeof(float));
        rc = qtx_ckpt_read(ra, kind, name, shape, block, 0, cnt, x, e);
        if (!rc) rc = qtx_ckpt_read(rb, kind, name, shape, block, 0, cnt, y, e);
        if (!rc) {
            /* ||a - b|| / ||b||: the whole tensor's error, not one element's (Adam turns
             * rounding-level gradient differences of near-zero elements into lr-sized
             * steps); the largest element difference relative to max|b| is shown too. */
            double dd = 0.0, bb = 0.0, md = 0.0, mb = 0.0;
            for (int64_t k = 0; k < cnt; k++) {
                const double d = (double)x[k] - (double)y[k], m = fabs((double)y[k]);
                dd += d * d;
                bb += m * m;
                if (fabs(d) > md || d != d) md = d != d ? INFINITY : fabs(d);
                if (m > mb) mb = m;
            }
            const double rel = dd == 0.0 ? 0.0 : bb > 0.0 ? sqrt(dd / bb) : INFINITY;
            const double rel_max = md == 0.0 ? 0.0 : mb > 0.0 ? md / mb : INFINITY;
            if (rel_max > worst_max) worst_max = rel_max;
            if (rel > worst || !worst_name[0]) {
                worst = rel;
                snprintf(worst_name, sizeof worst_name, "%s %s", kind, name);
            }
            n++;
        }
        free(x);
        free(y);
    }
    qtx_ckpt_close(ra);
    qtx_ckpt_close(rb);
    if (rc) return qtx_report(e);
    printf("%d tensors; largest relative difference %.3g (%s); largest element difference %.3g "
           "of max|b|\n",
           n, worst, worst_name, worst_max);
    if (worst > rtol) {
        printf("differ: %s exceeds --rtol %g\n", worst_name, rtol);
        return 1;
    }
    return fflush(stdout) == 0 ? 0 : 1;
}

int qtx_cmd_ckpt(int argc, char **argv) {
    const char *action = NULL, *path = NULL, *path_b = NULL, *only = NULL;
    double rtol = 0.0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(HELP, stdout);
            return 0;
        }
        if (action && !strcmp(action, "diff") && (!strcmp(a, "--rtol") || !strcmp(a, "--kind"))) {
            if (i + 1 >= argc) return qtx_usage_error("option '%s' needs a value", a);
            if (!strcmp(a, "--kind")) {
                only = argv[++i];
                if (strcmp(only, "param") && strcmp(only, "adam_m") && strcmp(only, "adam_v"))
                    return qtx_usage_error("--kind '%s': expected param, adam_m or adam_v "
                                           "(without --kind: all three)",
                                           only);
                continue;
            }
            char *end;
            rtol = strtod(argv[++i], &end);
            if (*end || !(rtol >= 0))
                return qtx_usage_error("--rtol '%s': expected a number >= 0", argv[i]);
            continue;
        }
        if (a[0] == '-' && a[1])
            return qtx_usage_error("unknown option '%s' for 'qtx ckpt'; see 'qtx ckpt --help'", a);
        if (!action) {
            if (strcmp(a, "info") && strcmp(a, "verify") && strcmp(a, "diff"))
                return qtx_usage_error(
                    "unknown 'qtx ckpt' command '%s': expected info, verify or diff; see 'qtx "
                    "ckpt --help'",
                    a);
            action = a;
        } else if (!path) {
            path = a;
        } else if (!path_b && !strcmp(action, "diff")) {
            path_b = a;
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
    char dir[4096], dir_b[4096];
    qtx_err e = {0};
    if (qtx_ckpt_resolve(path, NULL, dir, sizeof dir, &e)) return qtx_report(&e);
    if (!strcmp(action, "diff")) {
        if (!path_b) return qtx_usage_error("usage: qtx ckpt diff PATH_A PATH_B [--rtol R]");
        if (qtx_ckpt_resolve(path_b, NULL, dir_b, sizeof dir_b, &e)) return qtx_report(&e);
        return diff(dir, dir_b, rtol, only, &e);
    }
    if (!strcmp(action, "info")) {
        if (qtx_ckpt_info(dir, stdout, &e)) return qtx_report(&e);
        return fflush(stdout) == 0 ? 0 : 1;
    }
    if (qtx_ckpt_verify(dir, &e)) return qtx_report(&e);
    printf("ok %s\n", dir);
    return fflush(stdout) == 0 ? 0 : 1;
}
