/* test_parallel_comm.c: the communicator (parallel/comm.h) under MPI, run as 4 ranks.
 *
 * Every rank checks its own results; at the end the failure counts are all-reduced, so all
 * ranks exit with the same status. Values are small integers (or integers above 2^32 for
 * i64), so sums are exact in every dtype and any reduction order.
 */
#include "comm.h"
#include "testutil.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#ifdef QTX_HAVE_NCCL
#include <cuda_runtime_api.h>
#endif

static double gen(int r, int64_t i) {
    return (double)((r * 131 + i * 7) % 97) - 48.0;
}
static int64_t gen_i(int r, int64_t i) {
    return ((int64_t)(r + 1) << 33) + i * 3 - r;
}
static uint8_t gen_u8(int r, int64_t i) {
    return (uint8_t)(r * 31 + i * 7);
}

/* Uneven parts with an empty one: 3, 0, 7, 9, 11, ... */
static void uneven_counts(int p, int64_t *counts, int64_t *total) {
    *total = 0;
    for (int r = 0; r < p; r++) {
        counts[r] = r == 1 ? 0 : 2 * r + 3;
        *total += counts[r];
    }
}

static int64_t displ_of(const int64_t *counts, int rank) {
    int64_t d = 0;
    for (int r = 0; r < rank; r++) d += counts[r];
    return d;
}

static void test_allreduce(qtx_comm *w, int64_t n) {
    const int me = qtx_comm_rank(w), p = qtx_comm_size(w);
    float *f = malloc((size_t)n * sizeof *f);
    double *d = malloc((size_t)n * sizeof *d);
    int64_t *l = malloc((size_t)n * sizeof *l);
    for (int op = QTX_SUM; op <= QTX_MAX; op++) {
        for (int64_t i = 0; i < n; i++) {
            f[i] = (float)gen(me, i);
            d[i] = gen(me, i);
            l[i] = gen_i(me, i);
        }
        qtx_comm_allreduce(w, f, n, QTX_F32, (qtx_redop)op);
        qtx_comm_allreduce(w, d, n, QTX_F64, (qtx_redop)op);
        qtx_comm_allreduce(w, l, n, QTX_I64, (qtx_redop)op);
        int bad_f = 0, bad_d = 0, bad_l = 0;
        for (int64_t i = 0; i < n; i++) {
            double ed = op == QTX_SUM ? 0.0 : -INFINITY;
            int64_t el = op == QTX_SUM ? 0 : INT64_MIN;
            for (int r = 0; r < p; r++) {
                ed = op == QTX_SUM ? ed + gen(r, i) : fmax(ed, gen(r, i));
                el = op == QTX_SUM ? el + gen_i(r, i) : (gen_i(r, i) > el ? gen_i(r, i) : el);
            }
            bad_f += f[i] != (float)ed;
            bad_d += d[i] != ed;
            bad_l += l[i] != el;
        }
        T_CHECK(bad_f == 0, "f32 op %d n %lld: %d wrong", op, (long long)n, bad_f);
        T_CHECK(bad_d == 0, "f64 op %d n %lld: %d wrong", op, (long long)n, bad_d);
        T_CHECK(bad_l == 0, "i64 op %d n %lld: %d wrong", op, (long long)n, bad_l);
    }
    free(f);
    free(d);
    free(l);
}

static void test_reduce_scatterv(qtx_comm *w) {
    const int me = qtx_comm_rank(w), p = qtx_comm_size(w);
    int64_t *counts = malloc((size_t)p * sizeof *counts), total;
    uneven_counts(p, counts, &total);
    const int64_t at = displ_of(counts, me);

    double *d = malloc((size_t)total * sizeof *d);
    for (int64_t i = 0; i < total; i++) d[i] = gen(me, i);
    qtx_comm_reduce_scatterv(w, d, counts, QTX_F64, QTX_SUM);
    int bad = 0;
    for (int64_t j = 0; j < counts[me]; j++) {
        double e = 0;
        for (int r = 0; r < p; r++) e += gen(r, at + j);
        bad += d[at + j] != e;
    }
    T_CHECK(bad == 0, "f64 sum: %d of %lld wrong on rank %d", bad, (long long)counts[me], me);

    /* Non-blocking, with the counts freed before the wait: the request holds its own copy. */
    int64_t *l = malloc((size_t)total * sizeof *l);
    for (int64_t i = 0; i < total; i++) l[i] = gen_i(me, i) * (me % 2 ? 1 : -1);
    int64_t *tmp = malloc((size_t)p * sizeof *tmp);
    memcpy(tmp, counts, (size_t)p * sizeof *tmp);
    qtx_comm_req *rq = qtx_comm_ireduce_scatterv(w, l, tmp, QTX_I64, QTX_MAX);
    memset(tmp, 0xff, (size_t)p * sizeof *tmp);
    free(tmp);
    qtx_comm_wait(rq);
    bad = 0;
    for (int64_t j = 0; j < counts[me]; j++) {
        int64_t e = INT64_MIN;
        for (int r = 0; r < p; r++) {
            const int64_t v = gen_i(r, at + j) * (r % 2 ? 1 : -1);
            e = v > e ? v : e;
        }
        bad += l[at + j] != e;
    }
    T_CHECK(bad == 0, "i64 max (non-blocking): %d wrong on rank %d", bad, me);
    free(l);
    free(d);
    free(counts);
}

static void test_allgatherv(qtx_comm *w) {
    const int me = qtx_comm_rank(w), p = qtx_comm_size(w);
    int64_t *counts = malloc((size_t)p * sizeof *counts), total;
    uneven_counts(p, counts, &total);
    const int64_t at = displ_of(counts, me);

    uint8_t *u = malloc((size_t)total);
    memset(u, 0xee, (size_t)total);
    for (int64_t j = 0; j < counts[me]; j++) u[at + j] = gen_u8(me, j);
    qtx_comm_allgatherv(w, u, counts, QTX_U8);
    double *d = malloc((size_t)total * sizeof *d);
    for (int64_t i = 0; i < total; i++) d[i] = -1e9;
    for (int64_t j = 0; j < counts[me]; j++) d[at + j] = gen(me, j);
    int64_t *tmp = malloc((size_t)p * sizeof *tmp);
    memcpy(tmp, counts, (size_t)p * sizeof *tmp);
    qtx_comm_req *rq = qtx_comm_iallgatherv(w, d, tmp, QTX_F64);
    free(tmp);
    qtx_comm_wait(rq);

    int bad_u = 0, bad_d = 0;
    for (int r = 0; r < p; r++) {
        const int64_t dr = displ_of(counts, r);
        for (int64_t j = 0; j < counts[r]; j++) {
            bad_u += u[dr + j] != gen_u8(r, j);
            bad_d += d[dr + j] != gen(r, j);
        }
    }
    T_CHECK(bad_u == 0, "u8: %d wrong on rank %d", bad_u, me);
    T_CHECK(bad_d == 0, "f64 (non-blocking): %d wrong on rank %d", bad_d, me);
    free(u);
    free(d);
    free(counts);
}

static void test_bcast(qtx_comm *w, int64_t n) {
    const int me = qtx_comm_rank(w), root = qtx_comm_size(w) - 1;
    double *d = malloc((size_t)n * sizeof *d);
    int32_t *k = malloc((size_t)n * sizeof *k);
    for (int64_t i = 0; i < n; i++) {
        d[i] = me == root ? gen(root, i) : -7.0;
        k[i] = me == root ? (int32_t)(1000 * root + i) : -1;
    }
    qtx_comm_bcast(w, d, n, QTX_F64, root);
    qtx_comm_bcast(w, k, n, QTX_I32, root);
    int bad = 0;
    for (int64_t i = 0; i < n; i++) bad += d[i] != gen(root, i) || k[i] != 1000 * root + i;
    T_CHECK(bad == 0, "bcast from %d: %d wrong on rank %d", root, bad, me);
    free(d);
    free(k);
}

/* Blocking ring: even ranks send first, odd ranks receive first. */
static void ring_blocking(qtx_comm *w, int64_t n, int64_t *out) {
    const int me = qtx_comm_rank(w), p = qtx_comm_size(w);
    const int right = (me + 1) % p, left = (me + p - 1) % p;
    int64_t *s = malloc((size_t)n * sizeof *s);
    for (int64_t i = 0; i < n; i++) s[i] = gen_i(me, i);
    if (me % 2 == 0) {
        qtx_comm_send(w, s, n, QTX_I64, right, 7);
        qtx_comm_recv(w, out, n, QTX_I64, left, 7);
    } else {
        qtx_comm_recv(w, out, n, QTX_I64, left, 7);
        qtx_comm_send(w, s, n, QTX_I64, right, 7);
    }
    free(s);
}

static void test_ring(qtx_comm *w, int64_t n) {
    const int me = qtx_comm_rank(w), p = qtx_comm_size(w);
    if (p % 2) {
        if (me == 0) printf("SKIP: blocking ring needs an even number of ranks\n");
        return;
    }
    const int left = (me + p - 1) % p;
    int64_t *r = calloc((size_t)n, sizeof *r);
    ring_blocking(w, n, r);
    int bad = 0;
    for (int64_t i = 0; i < n; i++) bad += r[i] != gen_i(left, i);
    T_CHECK(bad == 0, "ring n %lld: %d wrong on rank %d", (long long)n, bad, me);
    free(r);
}

/* Both directions at once, sends posted before receives: large messages (rendezvous)
 * must not deadlock. */
static void test_bidirectional(qtx_comm *w, int64_t n) {
    const int me = qtx_comm_rank(w), p = qtx_comm_size(w);
    const int right = (me + 1) % p, left = (me + p - 1) % p;
    float *sr = malloc((size_t)n * sizeof *sr), *sl = malloc((size_t)n * sizeof *sl);
    float *rr = calloc((size_t)n, sizeof *rr), *rl = calloc((size_t)n, sizeof *rl);
    for (int64_t i = 0; i < n; i++) {
        sr[i] = (float)(me * 4 + 1 + i % 1000);
        sl[i] = (float)(me * 4 + 2 + i % 1000);
    }
    qtx_comm_req *req[4];
    req[0] = qtx_comm_isend(w, sr, n, QTX_F32, right, 1);
    req[1] = qtx_comm_isend(w, sl, n, QTX_F32, left, 2);
    req[2] = qtx_comm_irecv(w, rl, n, QTX_F32, left, 1);
    req[3] = qtx_comm_irecv(w, rr, n, QTX_F32, right, 2);
    qtx_comm_wait_all(req, 4);
    int bad = 0;
    for (int64_t i = 0; i < n; i++)
        bad +=
            rl[i] != (float)(left * 4 + 1 + i % 1000) || rr[i] != (float)(right * 4 + 2 + i % 1000);
    T_CHECK(bad == 0, "isend/irecv n %lld: %d wrong on rank %d", (long long)n, bad, me);
    T_CHECK(!req[0] && !req[1] && !req[2] && !req[3], "wait_all leaves requests set");
    free(sr);
    free(sl);
    free(rr);
    free(rl);
}

/* qtx_comm_isendrecv: a ring exchange in both directions, one request per rank per direction,
 * counted as one send and one receive. */
static void test_sendrecv(qtx_comm *w, int64_t n) {
    const int me = qtx_comm_rank(w), p = qtx_comm_size(w);
    const int right = (me + 1) % p, left = (me + p - 1) % p;
    float *s = malloc((size_t)n * sizeof *s), *r = calloc((size_t)n, sizeof *r);
    for (int64_t i = 0; i < n; i++) s[i] = (float)(me * 7 + 3 + i % 997);
    const qtx_comm_counter s0 = *qtx_comm_counters(w, QTX_OP_SEND);
    const qtx_comm_counter r0 = *qtx_comm_counters(w, QTX_OP_RECV);
    qtx_comm_wait(qtx_comm_isendrecv(w, s, right, 5, r, left, 5, n, QTX_F32));
    int bad = 0;
    for (int64_t i = 0; i < n; i++) bad += r[i] != (float)(left * 7 + 3 + i % 997);
    T_CHECK(bad == 0, "isendrecv n %lld: %d wrong on rank %d", (long long)n, bad, me);
    const qtx_comm_counter *cs = qtx_comm_counters(w, QTX_OP_SEND);
    const qtx_comm_counter *cr = qtx_comm_counters(w, QTX_OP_RECV);
    T_CHECK(cs->calls - s0.calls == 1 && cr->calls - r0.calls == 1 &&
                cs->bytes - s0.bytes == n * 4 && cr->bytes - r0.bytes == n * 4 &&
                cs->wire_bytes - s0.wire_bytes == n * 4 && cr->wire_bytes == r0.wire_bytes,
            "isendrecv counters: send +%lld calls +%lld bytes, recv +%lld calls +%lld bytes",
            (long long)(cs->calls - s0.calls), (long long)(cs->bytes - s0.bytes),
            (long long)(cr->calls - r0.calls), (long long)(cr->bytes - r0.bytes));
    free(s);
    free(r);
}

static void test_overlap(qtx_comm *w) {
    const int me = qtx_comm_rank(w), p = qtx_comm_size(w);
    const int64_t n = 1 << 20;
    float *a = malloc((size_t)n * sizeof *a);
    for (int64_t i = 0; i < n; i++) a[i] = (float)gen(me, i);
    qtx_comm_req *rq = qtx_comm_iallreduce(w, a, n, QTX_F32, QTX_SUM);
    /* Computation meanwhile, polling now and then so MPI progresses. */
    double acc = 0;
    long polls = 0;
    int done = 0;
    for (long k = 0; !done && k < 100000; k++) {
        for (int j = 0; j < 1000; j++) acc += sin((double)(k * 1000 + j));
        done = qtx_comm_test(rq);
        polls++;
    }
    T_CHECK(done, "iallreduce not complete after %ld polls", polls);
    T_CHECK(qtx_comm_test(rq) == 1, "test of a complete request");
    qtx_comm_wait(rq);
    int bad = 0;
    for (int64_t i = 0; i < n; i++) {
        double e = 0;
        for (int r = 0; r < p; r++) e += gen(r, i);
        bad += a[i] != (float)e;
    }
    T_CHECK(bad == 0, "overlapped iallreduce: %d wrong on rank %d", bad, me);
    T_CHECK(isfinite(acc), "computation meanwhile");
    qtx_comm_wait(NULL);
    free(a);
}

static void test_split(qtx_comm *w) {
    const int me = qtx_comm_rank(w), p = qtx_comm_size(w);
    if (p != 4) {
        if (me == 0) printf("SKIP: 2x2 split needs 4 ranks (have %d)\n", p);
        return;
    }
    qtx_comm *row = qtx_comm_split(w, me / 2, me, "tp");
    qtx_comm *col = qtx_comm_split(w, me % 2, me, "dp");
    T_CHECK(row && col, "split returned NULL");
    if (!row || !col) return;
    T_CHECK(qtx_comm_size(row) == 2 && qtx_comm_size(col) == 2, "sizes %d %d", qtx_comm_size(row),
            qtx_comm_size(col));
    T_CHECK(qtx_comm_rank(row) == me % 2, "row rank %d on %d", qtx_comm_rank(row), me);
    T_CHECK(qtx_comm_rank(col) == me / 2, "col rank %d on %d", qtx_comm_rank(col), me);
    T_STREQ(qtx_comm_name(row), "tp");
    T_STREQ(qtx_comm_name(col), "dp");
    T_STREQ(qtx_comm_name(w), "world");

    qtx_comm_reset_counters(w);
    int64_t v = me;
    qtx_comm_allreduce(row, &v, 1, QTX_I64, QTX_SUM);
    T_CHECK(v == 4 * (me / 2) + 1, "row sum %lld on %d", (long long)v, me);
    v = me;
    qtx_comm_allreduce(col, &v, 1, QTX_I64, QTX_SUM);
    T_CHECK(v == 2 * (me % 2) + 2, "col sum %lld on %d", (long long)v, me);
    double x = me;
    qtx_comm_bcast(col, &x, 1, QTX_F64, 1);
    T_CHECK(x == me % 2 + 2, "col bcast %g on %d", x, me);

    const qtx_comm_counter *k = qtx_comm_counters(row, QTX_OP_ALLREDUCE);
    T_CHECK(k->calls == 1 && k->bytes == 8 && k->wire_bytes == 8, "row counters %lld %lld %lld",
            (long long)k->calls, (long long)k->bytes, (long long)k->wire_bytes);
    T_CHECK(qtx_comm_counters(w, QTX_OP_ALLREDUCE)->calls == 0, "group calls counted on world");
    T_CHECK(qtx_comm_counters(col, QTX_OP_BCAST)->wire_bytes == (me / 2 == 1 ? 8 : 0),
            "col bcast wire bytes");

    /* A negative color joins no group. */
    qtx_comm *rest = qtx_comm_split(w, me == 0 ? -1 : 0, me, "rest");
    T_CHECK((me == 0) == (rest == NULL), "negative color on rank %d", me);
    if (rest) {
        T_CHECK(qtx_comm_size(rest) == 3 && qtx_comm_rank(rest) == me - 1, "rest %d/%d",
                qtx_comm_rank(rest), qtx_comm_size(rest));
        int32_t one = 1;
        qtx_comm_allreduce(rest, &one, 1, QTX_I32, QTX_SUM);
        T_CHECK(one == 3, "rest sum %d", one);
    }
    qtx_comm_free(rest);
    qtx_comm_free(row);
    qtx_comm_free(col);
}

static void expect_counter(qtx_comm *c, qtx_comm_op op, int64_t calls, int64_t bytes,
                           int64_t wire) {
    const qtx_comm_counter *k = qtx_comm_counters(c, op);
    T_CHECK(k->calls == calls && k->bytes == bytes && k->wire_bytes == wire,
            "%s on rank %d: calls %lld bytes %lld wire %lld, expected %lld %lld %lld",
            qtx_comm_op_name(op), qtx_comm_rank(c), (long long)k->calls, (long long)k->bytes,
            (long long)k->wire_bytes, (long long)calls, (long long)bytes, (long long)wire);
    T_CHECK(k->wait_s >= 0, "%s wait_s %g", qtx_comm_op_name(op), k->wait_s);
}

static void test_counters(qtx_comm *w) {
    const int me = qtx_comm_rank(w), p = qtx_comm_size(w);
    static const char *const names[QTX_OP_COUNT] = {
        "allreduce", "reduce_scatter", "allgather", "bcast", "send", "recv", "barrier"};
    for (int op = 0; op < QTX_OP_COUNT; op++) T_STREQ(qtx_comm_op_name(op), names[op]);

    qtx_comm_reset_counters(w);
    for (int op = 0; op < QTX_OP_COUNT; op++) expect_counter(w, op, 0, 0, 0);

    /* All-reduce: floor(2(p-1) * bytes / p); 5 bytes shows the floor. */
    float f[1000] = {0};
    double d[3] = {0};
    uint8_t u[10] = {0};
    qtx_comm_allreduce(w, f, 1000, QTX_F32, QTX_SUM);
    qtx_comm_wait(qtx_comm_iallreduce(w, d, 3, QTX_F64, QTX_MAX));
    qtx_comm_allreduce(w, u, 5, QTX_U8, QTX_SUM);
    const int64_t ar_wire = 2 * (p - 1) * 4000 / p + 2 * (p - 1) * 24 / p + 2 * (p - 1) * 5 / p;
    expect_counter(w, QTX_OP_ALLREDUCE, 3, 4000 + 24 + 5, ar_wire);

    /* v-operations: (total - own count) * elem_size. */
    int64_t counts[64], total;
    uneven_counts(p, counts, &total);
    double *vd = calloc((size_t)total, sizeof *vd);
    float *vf = calloc((size_t)total, sizeof *vf);
    int32_t *vi = calloc((size_t)total, sizeof *vi);
    qtx_comm_reduce_scatterv(w, vd, counts, QTX_F64, QTX_SUM);
    qtx_comm_wait(qtx_comm_ireduce_scatterv(w, vf, counts, QTX_F32, QTX_SUM));
    qtx_comm_allgatherv(w, vi, counts, QTX_I32);
    expect_counter(w, QTX_OP_REDUCE_SCATTER, 2, total * 12, (total - counts[me]) * 12);
    expect_counter(w, QTX_OP_ALLGATHER, 1, total * 4, (total - counts[me]) * 4);

    /* Bcast: only the root sends. */
    double b[11] = {0};
    qtx_comm_bcast(w, b, 11, QTX_F64, p - 1);
    expect_counter(w, QTX_OP_BCAST, 1, 88, me == p - 1 ? 88 : 0);

    /* Send and recv, blocking and not. */
    if (p % 2 == 0) {
        int64_t r[6];
        ring_blocking(w, 6, r);
        const int right = (me + 1) % p, left = (me + p - 1) % p;
        uint8_t s8[10] = {0}, r8[10];
        qtx_comm_req *req[2] = {qtx_comm_isend(w, s8, 10, QTX_U8, right, 3),
                                qtx_comm_irecv(w, r8, 10, QTX_U8, left, 3)};
        qtx_comm_wait_all(req, 2);
        expect_counter(w, QTX_OP_SEND, 2, 58, 58);
        expect_counter(w, QTX_OP_RECV, 2, 58, 0);
    }

    qtx_comm_barrier(w);
    qtx_comm_barrier(w);
    expect_counter(w, QTX_OP_BARRIER, 2, 0, 0);
    T_CHECK(qtx_comm_counters(w, QTX_OP_BARRIER)->wait_s > 0, "barrier wait_s %g",
            qtx_comm_counters(w, QTX_OP_BARRIER)->wait_s);
    /* Non-blocking calls time only their wait, which covers at least the blocking part. */
    T_CHECK(qtx_comm_counters(w, QTX_OP_ALLREDUCE)->wait_s > 0, "allreduce wait_s");

    qtx_comm_reset_counters(w);
    for (int op = 0; op < QTX_OP_COUNT; op++) expect_counter(w, op, 0, 0, 0);
    free(vd);
    free(vf);
    free(vi);
}

/* The > INT_MAX path (pieces, rooted v-operations) on small buffers: at most 5 elements
 * per MPI call. */
static void test_chunked(qtx_comm *w) {
    const int me = qtx_comm_rank(w), p = qtx_comm_size(w);
    qtx_comm_mpi_set_chunk(w, 5);
    qtx_comm_reset_counters(w);
    test_allreduce(w, 23);
    test_reduce_scatterv(w); /* total 19 (4 ranks) > 5: rooted reduces */
    test_allgatherv(w);
    test_bcast(w, 17);
    test_ring(w, 13);
    test_bidirectional(w, 12);
    test_sendrecv(w, 12); /* 5-element pieces: both messages split */
    /* A split inherits the chunk and still works. */
    qtx_comm *half = qtx_comm_split(w, me % 2, me, "half");
    int64_t v[12];
    for (int i = 0; i < 12; i++) v[i] = me + i;
    qtx_comm_allreduce(half, v, 12, QTX_I64, QTX_MAX);
    const int top = p - 1 - ((p - 1 - me) % 2 != 0);
    T_CHECK(v[0] == top && v[11] == top + 11, "half max %lld, expected %d", (long long)v[0], top);
    qtx_comm_free(half);
    /* Each logical call counted once, however many pieces it took. */
    expect_counter(w, QTX_OP_ALLREDUCE, 6, 2 * (23 * 4 + 23 * 8 + 23 * 8),
                   2 * (2 * (p - 1) * (23 * 4) / p + 2 * (2 * (p - 1) * (23 * 8) / p)));
    T_CHECK(qtx_comm_counters(w, QTX_OP_REDUCE_SCATTER)->calls == 2, "reduce_scatter calls");
    T_CHECK(qtx_comm_counters(w, QTX_OP_ALLGATHER)->calls == 2, "allgather calls");
    T_CHECK(qtx_comm_counters(w, QTX_OP_BCAST)->calls == 2, "bcast calls");
    qtx_comm_mpi_set_chunk(w, 0);
}

/* Opt-in (QTX_TEST_COMM_BIG=1; 2 GiB per rank): a real all-reduce above INT_MAX elements. */
static void test_big(qtx_comm *w) {
    const char *env = getenv("QTX_TEST_COMM_BIG");
    if (!env || strcmp(env, "1") != 0) {
        if (qtx_comm_rank(w) == 0) printf("SKIP: > INT_MAX all-reduce (QTX_TEST_COMM_BIG=1)\n");
        return;
    }
    const int64_t n = (int64_t)INT32_MAX + 10;
    uint8_t *u = malloc((size_t)n);
    T_CHECK(u != NULL, "no memory for %lld bytes", (long long)n);
    if (!u) return;
    for (int64_t i = 0; i < n; i++) u[i] = (uint8_t)(i % 3);
    qtx_comm_allreduce(w, u, n, QTX_U8, QTX_SUM);
    const int p = qtx_comm_size(w);
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++) bad += u[i] != (uint8_t)(p * (i % 3));
    T_CHECK(bad == 0, "big all-reduce: %lld wrong", (long long)bad);
    free(u);
}

#ifdef QTX_HAVE_NCCL
static void test_nccl_device(qtx_comm *d) {
    const int me = qtx_comm_rank(d), p = qtx_comm_size(d);
    int64_t counts[64], total;
    uneven_counts(p, counts, &total);
    const int64_t n = 4096 > total ? 4096 : total;
    float *h = malloc((size_t)n * sizeof *h), *g = NULL;
    T_CHECK(cudaMalloc((void **)&g, (size_t)n * sizeof *h) == cudaSuccess, "cudaMalloc");

    for (int64_t i = 0; i < n; i++) h[i] = (float)gen(me, i);
    cudaMemcpy(g, h, (size_t)n * sizeof *h, cudaMemcpyHostToDevice);
    qtx_comm_allreduce(d, g, n, QTX_F32, QTX_SUM);
    cudaMemcpy(h, g, (size_t)n * sizeof *h, cudaMemcpyDeviceToHost);
    int bad = 0;
    for (int64_t i = 0; i < n; i++) {
        double e = 0;
        for (int r = 0; r < p; r++) e += gen(r, i);
        bad += h[i] != (float)e;
    }
    T_CHECK(bad == 0, "nccl allreduce: %d wrong", bad);

    const int64_t at = displ_of(counts, me);
    for (int64_t i = 0; i < total; i++) h[i] = (float)gen(me, i);
    cudaMemcpy(g, h, (size_t)total * sizeof *h, cudaMemcpyHostToDevice);
    qtx_comm_reduce_scatterv(d, g, counts, QTX_F32, QTX_SUM);
    cudaMemcpy(h, g, (size_t)total * sizeof *h, cudaMemcpyDeviceToHost);
    bad = 0;
    for (int64_t j = 0; j < counts[me]; j++) {
        double e = 0;
        for (int r = 0; r < p; r++) e += gen(r, at + j);
        bad += h[at + j] != (float)e;
    }
    T_CHECK(bad == 0, "nccl reduce_scatterv: %d wrong", bad);

    for (int64_t i = 0; i < total; i++) h[i] = -1;
    for (int64_t j = 0; j < counts[me]; j++) h[at + j] = (float)gen(me, j);
    cudaMemcpy(g, h, (size_t)total * sizeof *h, cudaMemcpyHostToDevice);
    qtx_comm_wait(qtx_comm_iallgatherv(d, g, counts, QTX_F32));
    cudaMemcpy(h, g, (size_t)total * sizeof *h, cudaMemcpyDeviceToHost);
    bad = 0;
    for (int r = 0; r < p; r++)
        for (int64_t j = 0; j < counts[r]; j++) bad += h[displ_of(counts, r) + j] != gen(r, j);
    T_CHECK(bad == 0, "nccl allgatherv: %d wrong", bad);
    qtx_comm_barrier(d);
    T_CHECK(qtx_comm_counters(d, QTX_OP_ALLREDUCE)->calls == 1, "nccl counters");
    cudaFree(g);
    free(h);
}
#endif

static void test_nccl(qtx_comm *w) {
    const int me = qtx_comm_rank(w);
    qtx_err e = {0};
    qtx_comm *d = qtx_comm_nccl_create(w, me, "dp_dev", &e);
    int32_t got = d != NULL;
    qtx_comm_allreduce(w, &got, 1, QTX_I32, QTX_SUM);
    T_CHECK(got == 0 || got == qtx_comm_size(w), "%d of %d ranks got an NCCL communicator", got,
            qtx_comm_size(w));
    if (!d) {
        T_CHECK(e.msg[0] != '\0', "NULL without a message");
        if (me == 0) printf("SKIP: NCCL device communicator: %s\n", e.msg);
        return;
    }
    T_STREQ(qtx_comm_name(d), "dp_dev");
#ifdef QTX_HAVE_NCCL
    test_nccl_device(d);
#endif
    qtx_comm_free(d);
}

int main(int argc, char **argv) {
    qtx_comm *w = qtx_comm_mpi_init(&argc, &argv);
    const int me = qtx_comm_rank(w), p = qtx_comm_size(w);
    T_CHECK(p >= 1 && p <= 64 && me >= 0 && me < p, "world %d/%d", me, p);
    if (me == 0) printf("test_parallel_comm: %d ranks\n", p);

    test_allreduce(w, 1000);
    test_reduce_scatterv(w);
    test_allgatherv(w);
    test_bcast(w, 37);
    test_ring(w, 100);
    test_bidirectional(w, 2 << 20); /* 8 MB each way */
    test_sendrecv(w, 2 << 20);
    test_overlap(w);
    test_split(w);
    test_counters(w);
    test_chunked(w);
    test_big(w);
    test_nccl(w);

    int64_t failures = qtx_test_failures;
    qtx_comm_allreduce(w, &failures, 1, QTX_I64, QTX_SUM);
    if (me == 0 || qtx_test_failures) {
        char label[64];
        snprintf(label, sizeof label, "test_parallel_comm rank %d", me);
        qtx_test_done(label);
    }
    if (me == 0)
        printf("test_parallel_comm: %lld failed checks over %d ranks\n", (long long)failures, p);
    qtx_comm_finalize(w);
    return failures ? 1 : 0;
}
