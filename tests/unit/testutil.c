/* testutil.c: the counters and helpers behind testutil.h. */
#include "testutil.h"

#include <dirent.h>
#include <math.h>
#include <unistd.h>

int qtx_test_failures = 0;
int qtx_test_checks = 0;

int qtx_test_done(const char *name) {
    printf("%s: %d passed, %d failed\n", name, qtx_test_checks - qtx_test_failures,
           qtx_test_failures);
    return qtx_test_failures ? 1 : 0;
}

double qtx_rel_err(const float *a, const float *b, long n) {
    double md = 0, mb = 0;
    for (long i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > md || isnan(d)) md = isnan(d) ? INFINITY : d;
        if (fabs((double)b[i]) > mb) mb = fabs((double)b[i]);
    }
    return mb > 0 ? md / mb : md;
}

void qtx_test_remove_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *de;
    char p[1024];
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
            snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
            unlink(p);
        }
    closedir(d);
    rmdir(dir);
}
