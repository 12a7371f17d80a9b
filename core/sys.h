/* sys.h: the few operating-system helpers every layer needs: a monotonic clock, the core
 * count, and mkdir -p. */
#ifndef QTX_SYS_H
#define QTX_SYS_H

#include "check.h"

/* Seconds on a monotonic clock. */
double qtx_now_s(void);

/* Online cores, at least 1. */
int qtx_n_cores(void);
/* CPUs this process may run on (its affinity mask: mpirun may bind a rank to one core). */
int qtx_n_cpus_allowed(void);

/* Creates path and its missing parents; an existing directory is fine. Errors
 * (QTX_ERR_INPUT) name the directory that could not be made. */
int qtx_make_dirs(const char *path, qtx_err *e);

#endif
