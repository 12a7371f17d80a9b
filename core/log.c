/* log.c: the sink behind log.h. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>

static struct {
    qtx_log_level level;
    int rank;
    int all_ranks;
} g_log = {QTX_LOG_INFO, -1, 0};

void qtx_log_setup(qtx_log_level level, int rank, int all_ranks) {
    g_log.level = level;
    g_log.rank = rank;
    g_log.all_ranks = all_ranks;
}

static void emit(qtx_log_level lvl, const char *tag, const char *fmt, va_list ap) {
    if (lvl > g_log.level) return;
    if (lvl >= QTX_LOG_INFO && g_log.rank > 0 && !g_log.all_ranks) return;
    char line[2048];
    vsnprintf(line, sizeof line, fmt, ap);
    if (g_log.rank >= 0)
        fprintf(stderr, "qtx[%d]: %s%s\n", g_log.rank, tag, line);
    else
        fprintf(stderr, "qtx: %s%s\n", tag, line);
}

#define DEFINE_LOG(fn, lvl, tag)                                                                   \
    void fn(const char *fmt, ...) {                                                                \
        va_list ap;                                                                                \
        va_start(ap, fmt);                                                                         \
        emit(lvl, tag, fmt, ap);                                                                   \
        va_end(ap);                                                                                \
    }
DEFINE_LOG(qtx_log_error, QTX_LOG_ERROR, "error: ")
DEFINE_LOG(qtx_log_warn, QTX_LOG_WARN, "warning: ")
DEFINE_LOG(qtx_log_info, QTX_LOG_INFO, "")
DEFINE_LOG(qtx_log_debug, QTX_LOG_DEBUG, "debug: ")
