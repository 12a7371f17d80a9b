/* cli.c: the one-line error reporting shared by the subcommands. */
#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int qtx_usage_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "qtx: error: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return QTX_ERR_INPUT;
}

int qtx_report(const qtx_err *e) {
    fprintf(stderr, "qtx: error: %s\n", e->msg);
    return e->code ? e->code : QTX_ERR_RUNTIME;
}

const char *qtx_opt_value(int argc, char **argv, int *i, const char *name, const char *alias,
                          int *missing) {
    const char *a = argv[*i];
    size_t n = strlen(name);
    if (!strncmp(a, name, n) && a[n] == '=') return a + n + 1;
    if (strcmp(a, name) && !(alias && !strcmp(a, alias))) return NULL;
    if (*i + 1 >= argc) {
        *missing = 1;
        return NULL;
    }
    return argv[++*i];
}

int qtx_parse_int(const char *s, long long lo, long long hi, long long *out) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || errno || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}
