/* test_data_loader.c: the streaming loader (loader.h): each epoch sees every sample once,
 * whatever dp; dp=4 batches concatenate to the dp=1 batch; saved state resumes exactly, also
 * across an epoch boundary and under another dp; prefetch changes nothing; errors are exact.
 *
 * Every token is unique: shard i holds (i + 1) * 1000000 + position, so a sample's first
 * token says which shard and window it is, and its other tokens must follow it in order. */
#include <dirent.h>
#include <fcntl.h>
#include <hdf5.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "loader.h"
#include "log.h"
#include "perm.h"
#include "shard.h"
#include "testutil.h"

#define SEQ 16
#define VOCAB (1 << 24)
#define BASE 1000000

static char g_dir[64];
static char g_glob[128];

/* shard lengths: 62, 0, 32 and 130 windows of 16 (+1): 224 samples = 28 batches of 8 */
static const int64_t g_len[] = {1000, 10, 517, 2081};
#define N_SHARDS 4
#define N_SAMPLES 224
static int64_t g_first[N_SHARDS + 1];

static void write_shard(const char *name, int idx, int64_t n, int64_t vocab, const char *hash) {
    uint32_t *t = malloc((size_t)n * sizeof *t);
    for (int64_t i = 0; i < n; i++) t[i] = (uint32_t)((idx + 1) * BASE + i);
    int64_t docs[2] = {0, n};
    qtx_shard_meta m = {0};
    m.vocab_size = vocab;
    snprintf(m.tokenizer_hash, sizeof m.tokenizer_hash, "%s", hash);
    char p[256];
    snprintf(p, sizeof p, "%s/%s", g_dir, name);
    qtx_err e = {0};
    T_CHECK(qtx_shard_write(p, t, n, docs, 1, &m, &e) == 0, "write %s: %s", p, e.msg);
    free(t);
}

static qtx_loader_options opts(int dp_rank, int dp_size, int prefetch) {
    qtx_loader_options o = {0};
    o.glob = g_glob;
    o.seq_len = SEQ;
    o.global_batch = 8;
    o.dp_rank = dp_rank;
    o.dp_size = dp_size;
    o.seed = 1234;
    o.shuffle = 1;
    o.tokenizer_hash = "h1";
    o.vocab_size = VOCAB;
    o.prefetch = prefetch;
    return o;
}

static qtx_loader *open_ok(qtx_loader_options o) {
    qtx_loader *l = NULL;
    qtx_err e = {0};
    int rc = qtx_loader_open(&l, &o, &e);
    T_CHECK(rc == 0 && l, "open: %s", e.msg);
    if (!l) exit(qtx_test_done("test_data_loader"));
    return l;
}

/* The global sample index of a sample, or -1 if its tokens are not a proper window. */
static int64_t sample_id(const int32_t *s) {
    int64_t shard = s[0] / BASE - 1, pos = s[0] % BASE;
    if (shard < 0 || shard >= N_SHARDS || pos % SEQ || pos + SEQ + 1 > g_len[shard]) return -1;
    for (int k = 1; k <= SEQ; k++)
        if (s[k] != s[0] + k) return -1;
    return g_first[shard] + pos / SEQ;
}

/* Runs one loader for `steps` steps and returns the sample ids it produced (rank_batch per
 * step), checking each is a proper window. */
static int64_t *run(qtx_loader *l, int steps, int rank_batch) {
    int64_t *ids = malloc((size_t)steps * rank_batch * sizeof *ids);
    int32_t *buf = malloc((size_t)rank_batch * (SEQ + 1) * sizeof *buf);
    qtx_err e = {0};
    for (int s = 0; s < steps; s++) {
        int rc = qtx_loader_next(l, buf, &e);
        T_CHECK(rc == 0, "next at step %d: %s", s, e.msg);
        for (int j = 0; j < rank_batch; j++) {
            int64_t id = sample_id(buf + j * (SEQ + 1));
            T_CHECK(id >= 0, "step %d sample %d is not a window (first token %d)", s, j,
                    buf[j * (SEQ + 1)]);
            ids[(size_t)s * rank_batch + j] = id;
        }
    }
    free(buf);
    return ids;
}

/* The concatenation over ranks of `steps` steps at dp, from state st (fresh loaders). */
static int64_t *run_dp(int dp, int prefetch, qtx_loader_state st, int steps) {
    int rb = 8 / dp;
    int64_t *all = malloc((size_t)steps * 8 * sizeof *all);
    for (int r = 0; r < dp; r++) {
        qtx_loader *l = open_ok(opts(r, dp, prefetch));
        qtx_err e = {0};
        T_CHECK(qtx_loader_set_state(l, st, &e) == 0, "set_state: %s", e.msg);
        int64_t *ids = run(l, steps, rb);
        for (int s = 0; s < steps; s++)
            memcpy(all + (size_t)s * 8 + r * rb, ids + (size_t)s * rb, rb * sizeof *ids);
        free(ids);
        qtx_loader_close(l);
    }
    return all;
}

/* The Feistel order is a bijection of [0, n) for any n, and depends on seed and epoch. */
static void perm_bijection(void) {
    const uint64_t ns[] = {1, 2, 3, 4, 5, 17, 100, 1000, 4097, 65537, 300001};
    for (size_t k = 0; k < sizeof ns / sizeof *ns; k++) {
        uint64_t n = ns[k];
        unsigned char *seen = calloc(n, 1);
        qtx_perm p;
        qtx_perm_init(&p, n, 42, 3);
        uint64_t bad = 0, fixed = 0;
        for (uint64_t i = 0; i < n; i++) {
            uint64_t v = qtx_perm_apply(&p, i);
            if (v >= n || seen[v]++) bad++;
            fixed += v == i;
        }
        T_CHECK(bad == 0, "n %" PRIu64 ": %" PRIu64 " collisions or out of range", n, bad);
        T_CHECK(n < 100 || fixed < n / 20, "n %" PRIu64 ": %" PRIu64 " fixed points", n, fixed);
        free(seen);
    }
    qtx_perm a, b, c;
    qtx_perm_init(&a, 1000, 1, 0);
    qtx_perm_init(&b, 1000, 2, 0);
    qtx_perm_init(&c, 1000, 1, 1);
    int same_seed = 0, same_epoch = 0;
    for (uint64_t i = 0; i < 1000; i++) {
        same_seed += qtx_perm_apply(&a, i) == qtx_perm_apply(&b, i);
        same_epoch += qtx_perm_apply(&a, i) == qtx_perm_apply(&c, i);
    }
    T_CHECK(same_seed < 50 && same_epoch < 50, "orders too alike: %d %d", same_seed, same_epoch);
    /* the whole 64-bit range works (no table, no overflow) */
    qtx_perm big;
    qtx_perm_init(&big, UINT64_MAX - 5, 7, 0);
    T_CHECK(qtx_perm_apply(&big, 123) < UINT64_MAX - 5, "huge domain");
}

static void each_sample_once(void) {
    for (int dp = 1; dp <= 4; dp *= 2) {
        for (int pf = 0; pf <= 1; pf++) {
            qtx_loader_state zero = {0, 0};
            int64_t *all = run_dp(dp, pf, zero, 28 * 2); /* two whole epochs */
            for (int ep = 0; ep < 2; ep++) {
                int seen[N_SAMPLES] = {0};
                for (int i = 0; i < N_SAMPLES; i++) seen[all[ep * N_SAMPLES + i]]++;
                int bad = 0;
                for (int i = 0; i < N_SAMPLES; i++) bad += seen[i] != 1;
                T_CHECK(bad == 0, "dp %d prefetch %d epoch %d: %d samples not seen exactly once",
                        dp, pf, ep, bad);
            }
            T_CHECK(memcmp(all, all + N_SAMPLES, N_SAMPLES * sizeof *all) != 0,
                    "epochs 0 and 1 have the same order");
            free(all);
        }
    }
}

static void dp_union_equals_dp1(void) {
    qtx_loader_state zero = {0, 0};
    int steps = 70; /* 2.5 epochs */
    int64_t *d1 = run_dp(1, 1, zero, steps);
    int64_t *d4 = run_dp(4, 1, zero, steps);
    int64_t *d2 = run_dp(2, 0, zero, steps);
    for (int s = 0; s < steps; s++) {
        T_CHECK(memcmp(d1 + s * 8, d4 + s * 8, 8 * sizeof *d1) == 0,
                "step %d: dp=4 batches do not concatenate to the dp=1 batch", s);
        T_CHECK(memcmp(d1 + s * 8, d2 + s * 8, 8 * sizeof *d1) == 0,
                "step %d: dp=2 batches do not concatenate to the dp=1 batch", s);
    }
    /* the order really is the permutation of (seed, epoch) */
    qtx_perm p;
    qtx_perm_init(&p, N_SAMPLES, 1234, 1);
    T_CHECK(d1[28 * 8 + 3] == (int64_t)qtx_perm_apply(&p, 3), "epoch 1 position 3");
    free(d1);
    free(d4);
    free(d2);
}

/* Save at a random step (prefetch running ahead), restore into fresh loaders. */
static void save_restore(void) {
    qtx_loader_state zero = {0, 0};
    int total = 80;
    int64_t *ref = run_dp(1, 0, zero, total);
    unsigned seed = 99;
    for (int trial = 0; trial < 6; trial++) {
        seed = seed * 1103515245u + 12345u;
        /* trial 0 saves just before the epoch boundary (step 27), the others at random */
        int at = trial == 0 ? 27 : (int)((seed >> 8) % 60);
        qtx_loader *a = open_ok(opts(1, 2, 1)), *b = open_ok(opts(0, 2, 1));
        int64_t *ia = run(a, at, 4), *ib = run(b, at, 4);
        qtx_loader_state st = qtx_loader_get_state(a), stb = qtx_loader_get_state(b);
        uint64_t taken = (uint64_t)at * 8;
        T_CHECK(st.epoch == stb.epoch && st.cursor == stb.cursor, "ranks disagree on state");
        T_CHECK((st.epoch == taken / N_SAMPLES && st.cursor == taken % N_SAMPLES) ||
                    (st.cursor == N_SAMPLES && st.epoch + 1 == taken / N_SAMPLES),
                "state after %d steps: (%" PRIu64 ", %" PRIu64 ")", at, st.epoch, st.cursor);
        free(ia);
        free(ib);
        qtx_loader_close(a);
        qtx_loader_close(b);

        int left = total - at;
        for (int dp = 1; dp <= 4; dp *= 2) {
            int64_t *got = run_dp(dp, dp != 2, st, left);
            T_CHECK(memcmp(got, ref + (size_t)at * 8, (size_t)left * 8 * sizeof *got) == 0,
                    "restored at step %d with dp=%d: stream differs", at, dp);
            free(got);
        }
    }

    /* set_state on a running prefetching loader discards what it read ahead */
    qtx_loader *l = open_ok(opts(0, 1, 1));
    int64_t *first = run(l, 10, 8);
    qtx_loader_state back = {0, 3 * 8};
    qtx_err e = {0};
    T_CHECK(qtx_loader_set_state(l, back, &e) == 0, "set_state: %s", e.msg);
    int64_t *again = run(l, 5, 8);
    T_CHECK(memcmp(again, ref + 3 * 8, 5 * 8 * sizeof *again) == 0, "rewind to step 3");
    qtx_loader_state past = {5, 300};
    T_CHECK(qtx_loader_set_state(l, past, &e) == QTX_ERR_INPUT, "cursor beyond the epoch");
    char want[1024];
    snprintf(want, sizeof want,
             "data: saved loader cursor 300 is beyond the 224 samples per epoch of %s: resume "
             "with the data (and seq_len) the run was saved with",
             g_glob);
    T_STREQ(e.msg, want);
    free(first);
    free(again);
    qtx_loader_close(l);
    free(ref);
}

static void prefetch_identical(void) {
    qtx_loader *a = open_ok(opts(1, 2, 0)), *b = open_ok(opts(1, 2, 1));
    int32_t x[4 * (SEQ + 1)], y[4 * (SEQ + 1)];
    qtx_err e = {0};
    int same = 1;
    for (int s = 0; s < 100; s++) {
        int ra = qtx_loader_next(a, x, &e), rb = qtx_loader_next(b, y, &e);
        same &= ra == 0 && rb == 0 && memcmp(x, y, sizeof x) == 0;
        qtx_loader_state sa = qtx_loader_get_state(a), sb = qtx_loader_get_state(b);
        same &= sa.epoch == sb.epoch && sa.cursor == sb.cursor;
    }
    T_CHECK(same, "prefetch on and off differ");
    T_CHECK(qtx_loader_samples_per_epoch(a) == N_SAMPLES, "samples per epoch %" PRId64,
            qtx_loader_samples_per_epoch(a));
    T_CHECK(qtx_loader_total_tokens(a) == 1000 + 10 + 517 + 2081, "total tokens");
    qtx_loader_close(a);
    qtx_loader_close(b);
}

/* global_batch 12: 224 = 18 * 12 + 8, so 8 samples of each epoch are dropped */
static void remainder_dropped(void) {
    for (int dp = 1; dp <= 4; dp *= 2) {
        qtx_loader_options o = opts(dp - 1, dp, dp & 1);
        o.global_batch = 12;
        qtx_loader *l = open_ok(o);
        int rb = 12 / dp;
        int64_t *ids = run(l, 18, rb);
        qtx_loader_state st = qtx_loader_get_state(l);
        /* capture stderr around the step that starts epoch 1: it must say so */
        char logp[128];
        snprintf(logp, sizeof logp, "%s/log.txt", g_dir);
        fflush(stderr);
        int saved = dup(2), fd = open(logp, O_CREAT | O_TRUNC | O_WRONLY, 0644);
        dup2(fd, 2);
        qtx_log_setup(QTX_LOG_INFO, -1, 0);
        T_CHECK(st.epoch == 0 && st.cursor == 216,
                "dp %d: after 18 steps (%" PRIu64 ", %" PRIu64 ")", dp, st.epoch, st.cursor);
        free(ids);
        ids = run(l, 1, rb);
        fflush(stderr);
        dup2(saved, 2);
        close(saved);
        close(fd);
        qtx_log_setup(QTX_LOG_WARN, -1, 0);
        char logged[512] = {0};
        FILE *fp = fopen(logp, "r");
        size_t got = fread(logged, 1, sizeof logged - 1, fp);
        fclose(fp);
        unlink(logp);
        T_CHECK(got > 0 && strcmp(logged, "qtx: data: epoch 1 begins (224 samples per epoch; the "
                                          "last 8 of epoch 0, short of a global batch, were "
                                          "dropped)\n") == 0,
                "dp %d: epoch log line: '%s'", dp, logged);
        st = qtx_loader_get_state(l);
        T_CHECK(st.epoch == 1 && st.cursor == 12,
                "dp %d: after 19 steps (%" PRIu64 ", %" PRIu64 ")", dp, st.epoch, st.cursor);
        qtx_perm p;
        qtx_perm_init(&p, N_SAMPLES, 1234, 1);
        T_CHECK(ids[0] == (int64_t)qtx_perm_apply(&p, (uint64_t)(dp - 1) * rb),
                "dp %d: epoch 1 starts at its position 0", dp);
        free(ids);
        qtx_loader_close(l);
    }
}

static void validation_order(void) {
    qtx_loader_options o = opts(0, 1, 1);
    o.shuffle = 0;
    qtx_loader *l = open_ok(o);
    int64_t *ids = run(l, 28, 8);
    int ok = 1;
    for (int i = 0; i < N_SAMPLES; i++) ok &= ids[i] == i;
    T_CHECK(ok, "shuffle=0 must give windows in order");
    free(ids);
    qtx_loader_close(l);
}

static void expect_open_error(qtx_loader_options o, const char *want) {
    qtx_loader *l = NULL;
    qtx_err e = {0};
    int rc = qtx_loader_open(&l, &o, &e);
    T_CHECK(rc == QTX_ERR_INPUT && l == NULL, "open should fail (rc %d)", rc);
    T_STREQ(e.msg, want);
}

static void errors(void) {
    char want[1024], glob2[160], p[256];
    qtx_loader_options o = opts(0, 1, 1);

    snprintf(glob2, sizeof glob2, "%s/nothing_*.h5", g_dir);
    o.glob = glob2;
    snprintf(want, sizeof want,
             "data: no shard files match '%s': check the data path (run qtx prep to make shards)",
             glob2);
    expect_open_error(o, want);

    o = opts(0, 1, 1);
    o.vocab_size = 1000;
    snprintf(want, sizeof want,
             "shard %s/a_00.h5: vocab_size %d is larger than the model's vocab_size 1000: use "
             "shards made with the model's tokenizer or raise vocab_size",
             g_dir, VOCAB);
    expect_open_error(o, want);

    o = opts(0, 1, 1);
    o.tokenizer_hash = "h2";
    snprintf(want, sizeof want,
             "shard %s/a_00.h5: tokenizer_hash 'h1' differs from the run's 'h2': the shard was "
             "made with another tokenizer; re-run qtx prep with this one",
             g_dir);
    expect_open_error(o, want);
    o.tokenizer_hash = ""; /* empty: not checked */
    qtx_loader *l = open_ok(o);
    qtx_loader_close(l);

    o = opts(0, 1, 1);
    o.seq_len = 2100;
    snprintf(want, sizeof want,
             "data: seq_len 2100 is too long for every shard of '%s' (a sample needs 2101 "
             "tokens, the longest shard has 2081): lower seq_len or use more data",
             g_glob);
    expect_open_error(o, want);

    o = opts(0, 1, 1);
    o.global_batch = 256;
    snprintf(want, sizeof want,
             "data: '%s' holds 224 samples of seq_len 16, fewer than one global_batch of 256: "
             "lower global_batch or use more data",
             g_glob);
    expect_open_error(o, want);

    o = opts(0, 3, 1);
    expect_open_error(o, "data: global_batch 8 must be a positive multiple of dp_size 3");
    o = opts(4, 4, 1);
    expect_open_error(o, "data: dp_rank 4 is not in [0, dp_size 4)");

    /* a bad token inside a shard: next() reports it (also from the prefetch thread) and keeps
     * reporting it; the loader never exits */
    snprintf(glob2, sizeof glob2, "%s/bad_*.h5", g_dir);
    uint32_t t[40];
    for (int i = 0; i < 40; i++) t[i] = (uint32_t)i;
    t[20] = 5000;
    int64_t docs[2] = {0, 40};
    qtx_shard_meta m = {0};
    m.vocab_size = 100;
    snprintf(m.tokenizer_hash, sizeof m.tokenizer_hash, "h1");
    snprintf(p, sizeof p, "%s/bad_0.h5", g_dir);
    qtx_err e = {0};
    T_CHECK(qtx_shard_write(p, t, 40, docs, 1, &m, &e) == QTX_ERR_INPUT, "writer rejects id");
    m.vocab_size = 10000; /* write it with a big vocab, then claim a small one */
    T_CHECK(qtx_shard_write(p, t, 40, docs, 1, &m, &e) == 0, "write bad: %s", e.msg);
    hid_t f = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t a = H5Aopen(f, "vocab_size", H5P_DEFAULT);
    int64_t v = 100;
    H5Awrite(a, H5T_NATIVE_INT64, &v);
    H5Aclose(a);
    H5Fclose(f);
    for (int pf = 0; pf <= 1; pf++) {
        o = opts(0, 1, pf);
        o.glob = glob2;
        o.shuffle = 0;
        o.seq_len = 4;
        o.global_batch = 2;
        l = open_ok(o);
        int32_t buf[2 * 5];
        T_CHECK(qtx_loader_next(l, buf, &e) == 0, "first batch: %s", e.msg);
        T_CHECK(qtx_loader_next(l, buf, &e) == 0, "second batch: %s", e.msg);
        snprintf(want, sizeof want,
                 "shard %s: token id 5000 at position 20 is >= vocab_size 100: the file is "
                 "corrupt; regenerate it with qtx prep",
                 p);
        T_CHECK(qtx_loader_next(l, buf, &e) == QTX_ERR_INPUT, "bad token missed");
        T_STREQ(e.msg, want);
        memset(&e, 0, sizeof e);
        T_CHECK(qtx_loader_next(l, buf, &e) == QTX_ERR_INPUT, "error must persist");
        T_STREQ(e.msg, want);
        qtx_loader_state st = qtx_loader_get_state(l);
        T_CHECK(st.epoch == 0 && st.cursor == 4, "state after error: %" PRIu64 " %" PRIu64,
                st.epoch, st.cursor);
        qtx_loader_close(l);
    }
}

int main(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/qtx_test_loader_XXXXXX");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(g_glob, sizeof g_glob, "%s/a_*.h5", g_dir);
    qtx_log_setup(QTX_LOG_WARN, -1, 0); /* the epoch log lines would drown the output */
    /* written out of name order, to check the loader sorts */
    for (int i = N_SHARDS - 1; i >= 0; i--) {
        char name[32];
        snprintf(name, sizeof name, "a_%02d.h5", i);
        write_shard(name, i, g_len[i], VOCAB, "h1");
        int64_t n = g_len[i];
        g_first[i + 1] = (n - 1) / SEQ; /* summed below */
    }
    for (int i = 0; i < N_SHARDS; i++) g_first[i + 1] += g_first[i];
    T_CHECK(g_first[N_SHARDS] == N_SAMPLES, "fixture has %" PRId64 " samples", g_first[N_SHARDS]);

    perm_bijection();
    each_sample_once();
    dp_union_equals_dp1();
    save_restore();
    prefetch_identical();
    remainder_dropped();
    validation_order();
    errors();
    qtx_test_remove_dir(g_dir);
    return qtx_test_done("test_data_loader");
}
