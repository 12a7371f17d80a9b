/* check.h: how every layer reports failure.
 *
 * Two kinds of failure, kept apart on purpose:
 *  - bad input (config, data, checkpoint, model file, CLI): the function fills a qtx_err
 *    with one line that names the place and the fix and returns QTX_ERR_INPUT (exit 2);
 *    the caller decides whether to print, so tests can assert the exact message.
 *  - broken invariants and system failures (out of memory, a library call failing):
 *    QTX_CHECK prints file:line and exits 1 at once.
 */
#ifndef QTX_CHECK_H
#define QTX_CHECK_H

#include <stdarg.h>
#include <stddef.h>

enum { QTX_OK = 0, QTX_ERR_RUNTIME = 1, QTX_ERR_INPUT = 2 };

typedef struct qtx_err {
    int code;       /* QTX_OK, QTX_ERR_RUNTIME or QTX_ERR_INPUT */
    char msg[1024]; /* one line, no trailing newline */
} qtx_err;

/* Fills e (when not NULL) with the message. */
void qtx_vfail(qtx_err *e, int code, const char *fmt, va_list ap);

/* Fills e (when not NULL) and returns code, so callers can `return qtx_fail(e, 2, ...)`.
 * Inline so that static analysis sees the error path return non-zero. */
static inline __attribute__((format(printf, 3, 4))) int qtx_fail(qtx_err *e, int code,
                                                                 const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    qtx_vfail(e, code, fmt, ap);
    va_end(ap);
    return code;
}

_Noreturn void qtx_fatal(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define QTX_CHECK(cond, ...)                                                                       \
    do {                                                                                           \
        if (!(cond)) qtx_fatal(__FILE__, __LINE__, __VA_ARGS__);                                   \
    } while (0)

/* Allocation that never returns NULL. qtx_alloc_big is 2 MiB aligned, asks for huge pages
 * and pre-touches (first touch of a 4 KiB page costs ~11 us here): call it at startup only. */
void *qtx_malloc(size_t n);
void *qtx_calloc(size_t n, size_t size);
void *qtx_realloc(void *p, size_t n);
void *qtx_alloc_big(size_t bytes);
void qtx_free_big(void *p, size_t bytes);

#endif
