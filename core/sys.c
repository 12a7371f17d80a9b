/* sys.c: clock, cores, directories. */
#include "sys.h"

#include <sched.h> /* sched_getaffinity (the build defines _GNU_SOURCE) */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

double qtx_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int qtx_n_cores(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

int qtx_n_cpus_allowed(void) {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set)) return qtx_n_cores();
    const int n = CPU_COUNT(&set);
    return n > 0 ? n : 1;
}

int qtx_make_dirs(const char *path, qtx_err *e) {
    char p[4096];
    if (snprintf(p, sizeof p, "%s", path) >= (int)sizeof p)
        return qtx_fail(e, QTX_ERR_INPUT, "%s: path too long", path);
    for (char *s = p + 1;; s++) {
        if (*s != '/' && *s) continue;
        char c = *s;
        *s = 0;
        if (mkdir(p, 0777) && errno != EEXIST)
            return qtx_fail(e, QTX_ERR_INPUT, "%s: cannot create directory: %s", p,
                            strerror(errno));
        *s = c;
        if (!c) break;
    }
    struct stat st;
    if (stat(path, &st) || !S_ISDIR(st.st_mode))
        return qtx_fail(e, QTX_ERR_INPUT, "%s: not a directory", path);
    return QTX_OK;
}
