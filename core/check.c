/* check.c: error reporting and the allocators behind check.h. */
#include "check.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

void qtx_vfail(qtx_err *e, int code, const char *fmt, va_list ap) {
    if (e) {
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
        e->code = code;
    }
}

void qtx_fatal(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "qtx: fatal: %s:%d: ", file, line);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    fflush(stderr);
    exit(QTX_ERR_RUNTIME);
}

void *qtx_malloc(size_t n) {
    void *p = malloc(n ? n : 1);
    QTX_CHECK(p, "out of memory allocating %zu bytes", n);
    return p;
}

void *qtx_calloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    QTX_CHECK(p, "out of memory allocating %zu x %zu bytes", n, size);
    return p;
}

void *qtx_realloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    QTX_CHECK(q, "out of memory growing a buffer to %zu bytes", n);
    return q;
}

#define HUGE_2M ((size_t)2 << 20)

void *qtx_alloc_big(size_t bytes) {
    size_t n = (bytes + HUGE_2M - 1) / HUGE_2M * HUGE_2M;
    if (n == 0) n = HUGE_2M;
    void *p = NULL;
    QTX_CHECK(posix_memalign(&p, HUGE_2M, n) == 0, "out of memory allocating %zu bytes", n);
#ifdef MADV_HUGEPAGE
    madvise(p, n, MADV_HUGEPAGE);
#endif
    memset(p, 0, n); /* pre-touch: page faults happen here, not in the step loop */
    return p;
}

void qtx_free_big(void *p, size_t bytes) {
    (void)bytes;
    free(p);
}
