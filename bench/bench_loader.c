/* bench_loader.c: tokens/s of the streaming loader with prefetch (data/loader.h).
 *
 * Writes ~50M tokens of synthetic shards (skewed ids, so deflate behaves roughly as on text)
 * to a fresh /tmp directory, streams shuffled batches through the loader with nothing else
 * running, prints one line, and removes the shards. A benchmark, not a test.
 *
 *   bench_loader [total_tokens [seq_len [global_batch [shuffle]]]]
 */
#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "loader.h"
#include "shard.h"
#include "sys.h"

#define VOCAB 32768
#define N_SHARDS 8
#define MAX_SECONDS 10.0

static void remove_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *de;
    char p[512];
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
            snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
            unlink(p);
        }
    closedir(d);
    rmdir(dir);
}

static double dir_bytes(const char *dir) {
    DIR *d = opendir(dir);
    double sum = 0;
    struct dirent *de;
    char p[512];
    struct stat st;
    while (d && (de = readdir(d))) {
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        if (de->d_name[0] != '.' && stat(p, &st) == 0) sum += (double)st.st_size;
    }
    if (d) closedir(d);
    return sum;
}

static int write_shards(const char *dir, int64_t total, qtx_err *e) {
    int64_t per = total / N_SHARDS;
    uint32_t *t = malloc((size_t)per * sizeof *t);
    int64_t n_docs = per / 2000;
    int64_t *docs = malloc((size_t)(n_docs + 1) * sizeof *docs);
    for (int64_t d = 0; d <= n_docs; d++) docs[d] = d * 2000;
    docs[n_docs] = per;
    uint64_t x = 88172645463325252ULL;
    qtx_shard_meta m = {0};
    m.vocab_size = VOCAB;
    snprintf(m.tokenizer_hash, sizeof m.tokenizer_hash, "bench");
    int rc = 0;
    for (int s = 0; s < N_SHARDS && !rc; s++) {
        for (int64_t i = 0; i < per; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            double u = (double)(x >> 11) * 0x1.0p-53;
            t[i] = (uint32_t)(u * u * u * VOCAB); /* skewed towards small ids, like BPE text */
        }
        char p[512];
        snprintf(p, sizeof p, "%s/shard_%03d.h5", dir, s);
        rc = qtx_shard_write(p, t, per, docs, n_docs, &m, e);
    }
    free(t);
    free(docs);
    return rc;
}

int main(int argc, char **argv) {
    int64_t total = argc > 1 ? atoll(argv[1]) : 50000000;
    int seq_len = argc > 2 ? atoi(argv[2]) : 1024;
    int batch = argc > 3 ? atoi(argv[3]) : 16;
    int shuffle = argc > 4 ? atoi(argv[4]) : 1;
    char dir[] = "/tmp/qtx_bench_loader_XXXXXX";
    if (!mkdtemp(dir)) {
        perror("bench_loader: mkdtemp");
        return 1;
    }
    qtx_err e = {0};
    double t0 = qtx_now_s();
    int rc = write_shards(dir, total, &e);
    double t_write = qtx_now_s() - t0;
    char glob[600];
    snprintf(glob, sizeof glob, "%s/shard_*.h5", dir);
    qtx_loader_options o = {.glob = glob,
                            .seq_len = seq_len,
                            .global_batch = batch,
                            .dp_rank = 0,
                            .dp_size = 1,
                            .seed = 1,
                            .shuffle = shuffle,
                            .tokenizer_hash = "bench",
                            .vocab_size = VOCAB,
                            .prefetch = 1};
    qtx_loader *l = NULL;
    if (!rc) rc = qtx_loader_open(&l, &o, &e);
    if (rc) {
        fprintf(stderr, "bench_loader: %s\n", e.msg);
        remove_dir(dir);
        return 1;
    }
    int32_t *buf = malloc((size_t)batch * (seq_len + 1) * sizeof *buf);
    int64_t steps_per_epoch = qtx_loader_samples_per_epoch(l) / batch, steps = 0;
    volatile int32_t sink = 0; /* keeps the copies observable */
    t0 = qtx_now_s();
    double t = t0;
    while (steps < steps_per_epoch && (t = qtx_now_s()) - t0 < MAX_SECONDS) {
        if ((rc = qtx_loader_next(l, buf, &e))) break;
        sink += buf[steps % ((int64_t)batch * seq_len)];
        steps++;
    }
    double secs = t - t0;
    if (rc)
        fprintf(stderr, "bench_loader: %s\n", e.msg);
    else
        printf("bench_loader: %.1fM tokens in %d shards (%.2f bytes/token, written in %.1f s), "
               "seq_len %d, global_batch %d, %s, prefetch: %.0f tokens/s (%" PRId64
               " steps in %.2f s)\n",
               (double)qtx_loader_total_tokens(l) / 1e6, N_SHARDS,
               dir_bytes(dir) / (double)qtx_loader_total_tokens(l), t_write, seq_len, batch,
               shuffle ? "shuffled" : "in order", (double)steps * batch * seq_len / secs, steps,
               secs);
    free(buf);
    qtx_loader_close(l);
    remove_dir(dir);
    return rc ? 1 : 0;
}
