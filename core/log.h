/* log.h: leveled logging to stderr.
 *
 * The one piece of process-wide state in core: where logs go and how much. launch/ sets the
 * rank prefix and level once at startup; library code just calls qtx_log_*. Standard output
 * is never written here (generated text and machine output own it).
 */
#ifndef QTX_LOG_H
#define QTX_LOG_H

typedef enum qtx_log_level {
    QTX_LOG_ERROR = 0,
    QTX_LOG_WARN,
    QTX_LOG_INFO,
    QTX_LOG_DEBUG
} qtx_log_level;

/* rank < 0: no rank prefix. Only rank 0 (or a rank-less process) logs INFO and below unless
 * all_ranks is set; warnings and errors come from every rank. */
void qtx_log_setup(qtx_log_level level, int rank, int all_ranks);

void qtx_log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void qtx_log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void qtx_log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void qtx_log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
