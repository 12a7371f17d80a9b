/* cli.h: how every subcommand reports a usage error or a failed call: one line on stderr,
 * `qtx: error: ...`, and the exit status. */
#ifndef QTX_CLI_H
#define QTX_CLI_H

#include "check.h"

/* Prints `qtx: error: <formatted>` and returns 2. */
int qtx_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Prints `qtx: error: <e->msg>` and returns e->code (1 when unset). */
int qtx_report(const qtx_err *e);

/* The value of option argv[*i] ("--opt value" or "--opt=value", or alias), or NULL when
 * argv[*i] is not that option. Advances *i past a separate value; sets *missing when the
 * value is absent. */
const char *qtx_opt_value(int argc, char **argv, int *i, const char *name, const char *alias,
                          int *missing);

/* A whole decimal integer in [lo, hi] into *out; -1 on anything else (junk, overflow). */
int qtx_parse_int(const char *s, long long lo, long long hi, long long *out);

#endif
