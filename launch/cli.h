/* cli.h: how every subcommand reports a usage error or a failed call: one line on stderr,
 * `qtx: error: ...`, and the exit status. */
#ifndef QTX_CLI_H
#define QTX_CLI_H

#include "check.h"

/* Prints `qtx: error: <formatted>` and returns 2. */
int qtx_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Prints `qtx: error: <e->msg>` and returns e->code (1 when unset). */
int qtx_report(const qtx_err *e);

#endif
