/* testutil.h: a minimal test harness: checks that count failures and name file:line. */
#ifndef QTX_TESTUTIL_H
#define QTX_TESTUTIL_H

#include <stdio.h>
#include <string.h>

extern int qtx_test_failures;
extern int qtx_test_checks;

#define T_CHECK(cond, ...)                                                                         \
    do {                                                                                           \
        qtx_test_checks++;                                                                         \
        if (!(cond)) {                                                                             \
            qtx_test_failures++;                                                                   \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                        \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
        }                                                                                          \
    } while (0)

#define T_STREQ(a, b) T_CHECK(strcmp((a), (b)) == 0, "\n  got:      %s\n  expected: %s", (a), (b))

/* Prints "N passed, N failed" and returns the exit status for main. */
int qtx_test_done(const char *name);

/* Relative error of two tensors as max|a-b| / max|b| (0 when both are zero). */
double qtx_rel_err(const float *a, const float *b, long n);

/* Removes a flat directory of test files and the directory itself. */
void qtx_test_remove_dir(const char *dir);

#endif
