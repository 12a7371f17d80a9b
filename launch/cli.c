/* cli.c: the one-line error reporting shared by the subcommands. */
#include "cli.h"

#include <stdarg.h>
#include <stdio.h>

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
