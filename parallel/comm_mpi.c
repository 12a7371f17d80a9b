/* comm_mpi.c: the generic half of comm.h (argument checks, counters, timing, dispatch to a
 * backend's vtable) and the MPI backend for host memory.
 *
 * Every operation, blocking or not, goes through the backend's non-blocking entry; the
 * blocking calls wait at once. Counting happens here, once per logical call, so a backend
 * that splits a call into pieces (or into a group of NCCL calls) never shows it.
 */
#define QTX_COMM_BACKEND
#include "comm.h"

#include <limits.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sys.h"

/* ---------------------------------------------------------------- generic layer ---- */

size_t qtx_dtype_size(qtx_dtype t) {
    switch (t) {
    case QTX_F32:
        return 4;
    case QTX_F64:
        return 8;
    case QTX_I32:
        return 4;
    case QTX_I64:
        return 8;
    case QTX_U8:
        return 1;
    }
    QTX_CHECK(0, "unknown qtx_dtype %d", (int)t);
}

void qtx_comm_init_base(qtx_comm *c, const qtx_comm_backend *be, int rank, int size,
                        const char *name) {
    memset(c, 0, sizeof *c);
    c->be = be;
    c->rank = rank;
    c->size = size;
    snprintf(c->name, sizeof c->name, "%s", name ? name : "");
}

int qtx_comm_rank(const qtx_comm *c) {
    return c->rank;
}
int qtx_comm_size(const qtx_comm *c) {
    return c->size;
}
const char *qtx_comm_name(const qtx_comm *c) {
    return c->name;
}

qtx_comm *qtx_comm_split(qtx_comm *c, int color, int key, const char *name) {
    return c->be->split(c, color, key, name);
}

void qtx_comm_free(qtx_comm *c) {
    if (c) c->be->free(c);
}

const char *qtx_comm_op_name(qtx_comm_op op) {
    static const char *const names[QTX_OP_COUNT] = {
        "allreduce", "reduce_scatter", "allgather", "bcast", "send", "recv", "barrier"};
    QTX_CHECK((unsigned)op < QTX_OP_COUNT, "unknown qtx_comm_op %d", (int)op);
    return names[op];
}

const qtx_comm_counter *qtx_comm_counters(const qtx_comm *c, qtx_comm_op op) {
    QTX_CHECK((unsigned)op < QTX_OP_COUNT, "unknown qtx_comm_op %d", (int)op);
    return &c->counters[op];
}

void qtx_comm_reset_counters(qtx_comm *c) {
    memset(c->counters, 0, sizeof c->counters);
}

static void count_call(qtx_comm *c, qtx_comm_op op, int64_t bytes, int64_t wire) {
    qtx_comm_counter *k = &c->counters[op];
    k->calls++;
    k->bytes += bytes;
    k->wire_bytes += wire;
}

static int64_t checked_bytes(int64_t count, qtx_dtype t, const char *what) {
    const int64_t es = (int64_t)qtx_dtype_size(t);
    QTX_CHECK(count >= 0 && count <= INT64_MAX / es, "%s: bad count %lld", what, (long long)count);
    return count * es;
}

/* floor(2(p-1) * bytes / p) without overflowing for any bytes that fit int64. */
static int64_t ring_allreduce_wire(int64_t bytes, int p) {
    const int64_t f = 2 * (int64_t)(p - 1);
    return bytes / p * f + bytes % p * f / p;
}

/* Total elements of a v-operation, checked. */
static int64_t counts_total(const qtx_comm *c, const int64_t *counts, const char *what) {
    int64_t total = 0;
    for (int r = 0; r < c->size; r++) {
        QTX_CHECK(counts[r] >= 0 && counts[r] <= INT64_MAX - total, "%s: bad counts[%d] %lld", what,
                  r, (long long)counts[r]);
        total += counts[r];
    }
    return total;
}

static qtx_comm_req *adopt(qtx_comm_req *r, qtx_comm *c, qtx_comm_op op) {
    r->c = c;
    r->op = op;
    return r;
}

/* Blocking = issue + wait, timed as a whole. */
static void finish_blocking(qtx_comm_req *r, double t0) {
    qtx_comm *c = r->c;
    const qtx_comm_op op = r->op;
    c->be->wait(r);
    c->counters[op].wait_s += qtx_now_s() - t0;
}

qtx_comm_req *qtx_comm_iallreduce(qtx_comm *c, void *buf, int64_t count, qtx_dtype t,
                                  qtx_redop op) {
    const int64_t bytes = checked_bytes(count, t, "allreduce");
    count_call(c, QTX_OP_ALLREDUCE, bytes, ring_allreduce_wire(bytes, c->size));
    return adopt(c->be->iallreduce(c, buf, count, t, op), c, QTX_OP_ALLREDUCE);
}

qtx_comm_req *qtx_comm_ireduce_scatterv(qtx_comm *c, void *buf, const int64_t *counts, qtx_dtype t,
                                        qtx_redop op) {
    const int64_t total = counts_total(c, counts, "reduce_scatterv");
    const int64_t bytes = checked_bytes(total, t, "reduce_scatterv");
    const int64_t es = (int64_t)qtx_dtype_size(t);
    count_call(c, QTX_OP_REDUCE_SCATTER, bytes, (total - counts[c->rank]) * es);
    return adopt(c->be->ireduce_scatterv(c, buf, counts, t, op), c, QTX_OP_REDUCE_SCATTER);
}

qtx_comm_req *qtx_comm_iallgatherv(qtx_comm *c, void *buf, const int64_t *counts, qtx_dtype t) {
    const int64_t total = counts_total(c, counts, "allgatherv");
    const int64_t bytes = checked_bytes(total, t, "allgatherv");
    const int64_t es = (int64_t)qtx_dtype_size(t);
    count_call(c, QTX_OP_ALLGATHER, bytes, (total - counts[c->rank]) * es);
    return adopt(c->be->iallgatherv(c, buf, counts, t), c, QTX_OP_ALLGATHER);
}

static qtx_comm_req *ibcast(qtx_comm *c, void *buf, int64_t count, qtx_dtype t, int root) {
    const int64_t bytes = checked_bytes(count, t, "bcast");
    QTX_CHECK(root >= 0 && root < c->size, "bcast: root %d outside %s (size %d)", root, c->name,
              c->size);
    count_call(c, QTX_OP_BCAST, bytes, c->rank == root ? bytes : 0);
    return adopt(c->be->ibcast(c, buf, count, t, root), c, QTX_OP_BCAST);
}

qtx_comm_req *qtx_comm_isend(qtx_comm *c, const void *buf, int64_t count, qtx_dtype t, int peer,
                             int tag) {
    const int64_t bytes = checked_bytes(count, t, "send");
    QTX_CHECK(peer >= 0 && peer < c->size, "send: peer %d outside %s (size %d)", peer, c->name,
              c->size);
    QTX_CHECK(tag >= 0, "send: negative tag %d", tag);
    count_call(c, QTX_OP_SEND, bytes, bytes);
    return adopt(c->be->isend(c, buf, count, t, peer, tag), c, QTX_OP_SEND);
}

qtx_comm_req *qtx_comm_irecv(qtx_comm *c, void *buf, int64_t count, qtx_dtype t, int peer,
                             int tag) {
    const int64_t bytes = checked_bytes(count, t, "recv");
    QTX_CHECK(peer >= 0 && peer < c->size, "recv: peer %d outside %s (size %d)", peer, c->name,
              c->size);
    QTX_CHECK(tag >= 0, "recv: negative tag %d", tag);
    count_call(c, QTX_OP_RECV, bytes, 0);
    return adopt(c->be->irecv(c, buf, count, t, peer, tag), c, QTX_OP_RECV);
}

qtx_comm_req *qtx_comm_isendrecv(qtx_comm *c, const void *sendbuf, int to, int stag, void *recvbuf,
                                 int from, int rtag, int64_t count, qtx_dtype t) {
    const int64_t bytes = checked_bytes(count, t, "sendrecv");
    QTX_CHECK(to >= 0 && to < c->size && from >= 0 && from < c->size,
              "sendrecv: peers %d, %d outside %s (size %d)", to, from, c->name, c->size);
    QTX_CHECK(stag >= 0 && rtag >= 0, "sendrecv: negative tag");
    count_call(c, QTX_OP_SEND, bytes, bytes);
    count_call(c, QTX_OP_RECV, bytes, 0);
    return adopt(c->be->isendrecv(c, sendbuf, to, stag, recvbuf, from, rtag, count, t), c,
                 QTX_OP_SEND);
}

static qtx_comm_req *ibarrier(qtx_comm *c) {
    count_call(c, QTX_OP_BARRIER, 0, 0);
    return adopt(c->be->ibarrier(c), c, QTX_OP_BARRIER);
}

void qtx_comm_allreduce(qtx_comm *c, void *buf, int64_t count, qtx_dtype t, qtx_redop op) {
    const double t0 = qtx_now_s();
    finish_blocking(qtx_comm_iallreduce(c, buf, count, t, op), t0);
}

void qtx_comm_reduce_scatterv(qtx_comm *c, void *buf, const int64_t *counts, qtx_dtype t,
                              qtx_redop op) {
    const double t0 = qtx_now_s();
    finish_blocking(qtx_comm_ireduce_scatterv(c, buf, counts, t, op), t0);
}

void qtx_comm_allgatherv(qtx_comm *c, void *buf, const int64_t *counts, qtx_dtype t) {
    const double t0 = qtx_now_s();
    finish_blocking(qtx_comm_iallgatherv(c, buf, counts, t), t0);
}

void qtx_comm_bcast(qtx_comm *c, void *buf, int64_t count, qtx_dtype t, int root) {
    const double t0 = qtx_now_s();
    finish_blocking(ibcast(c, buf, count, t, root), t0);
}

void qtx_comm_send(qtx_comm *c, const void *buf, int64_t count, qtx_dtype t, int peer, int tag) {
    const double t0 = qtx_now_s();
    finish_blocking(qtx_comm_isend(c, buf, count, t, peer, tag), t0);
}

void qtx_comm_recv(qtx_comm *c, void *buf, int64_t count, qtx_dtype t, int peer, int tag) {
    const double t0 = qtx_now_s();
    finish_blocking(qtx_comm_irecv(c, buf, count, t, peer, tag), t0);
}

void qtx_comm_barrier(qtx_comm *c) {
    const double t0 = qtx_now_s();
    finish_blocking(ibarrier(c), t0);
}

void qtx_comm_wait(qtx_comm_req *r) {
    if (!r) return;
    const double t0 = qtx_now_s();
    finish_blocking(r, t0);
}

void qtx_comm_wait_all(qtx_comm_req **r, int n) {
    for (int i = 0; i < n; i++) {
        qtx_comm_wait(r[i]);
        r[i] = NULL;
    }
}

int qtx_comm_test(qtx_comm_req *r) {
    return r ? r->c->be->test(r) : 1;
}

/* ------------------------------------------------------------------ MPI backend ---- */

typedef struct mpi_comm {
    qtx_comm base;
    MPI_Comm comm;
    int64_t chunk; /* most elements one MPI call carries */
    int owns_mpi;  /* world only: qtx_comm_mpi_init called MPI_Init_thread */
} mpi_comm;

/* One logical operation: its MPI requests, the int counts/displs MPI may read until it
 * completes, and the fix-up the in-place reduce-scatter needs once it has. */
typedef struct mpi_req {
    qtx_comm_req base;
    int n;
    MPI_Request *reqs;
    int *ints;
    char *move_dst;
    const char *move_src;
    size_t move_bytes;
} mpi_req;

static const qtx_comm_backend mpi_backend;

static mpi_comm *as_mpi(qtx_comm *c) {
    QTX_CHECK(c->be == &mpi_backend, "communicator %s is not an MPI communicator", c->name);
    return (mpi_comm *)c;
}

static MPI_Datatype mpi_type(qtx_dtype t) {
    switch (t) {
    case QTX_F32:
        return MPI_FLOAT;
    case QTX_F64:
        return MPI_DOUBLE;
    case QTX_I32:
        return MPI_INT32_T;
    case QTX_I64:
        return MPI_INT64_T;
    case QTX_U8:
        return MPI_UINT8_T;
    }
    QTX_CHECK(0, "unknown qtx_dtype %d", (int)t);
}

static MPI_Op mpi_op(qtx_redop op) {
    QTX_CHECK(op == QTX_SUM || op == QTX_MAX, "unknown qtx_redop %d", (int)op);
    return op == QTX_SUM ? MPI_SUM : MPI_MAX;
}

static int pieces(int64_t count, int64_t chunk) {
    const int64_t n = (count + chunk - 1) / chunk;
    QTX_CHECK(n <= INT_MAX / 2, "operation of %lld elements needs too many pieces",
              (long long)count);
    return (int)n;
}

/* One block: the struct, n MPI requests, n_ints ints. */
static mpi_req *req_new(int n, int n_ints) {
    mpi_req *r = qtx_calloc(1, sizeof(mpi_req) + (size_t)n * sizeof(MPI_Request) +
                                   (size_t)n_ints * sizeof(int));
    r->n = n;
    r->reqs = (MPI_Request *)(r + 1);
    r->ints = (int *)(r->reqs + n);
    for (int i = 0; i < n; i++) r->reqs[i] = MPI_REQUEST_NULL;
    return r;
}

static mpi_comm *mpi_new(MPI_Comm comm, const char *name, int64_t chunk) {
    mpi_comm *m = qtx_calloc(1, sizeof *m);
    int rank, size;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    qtx_comm_init_base(&m->base, &mpi_backend, rank, size, name);
    m->comm = comm;
    m->chunk = chunk;
    return m;
}

qtx_comm *qtx_comm_mpi_init(int *argc, char ***argv) {
    int inited = 0;
    MPI_Initialized(&inited);
    if (!inited) {
        int provided = 0;
        QTX_CHECK(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) == MPI_SUCCESS,
                  "MPI_Init_thread failed");
        QTX_CHECK(provided >= MPI_THREAD_FUNNELED,
                  "MPI gives thread level %d, qtx needs MPI_THREAD_FUNNELED", provided);
    }
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_ARE_FATAL);
    MPI_Comm dup;
    MPI_Comm_dup(MPI_COMM_WORLD, &dup); /* inherits the fatal error handler */
    mpi_comm *m = mpi_new(dup, "world", INT_MAX);
    m->owns_mpi = !inited;
    return &m->base;
}

void qtx_comm_finalize(qtx_comm *world) {
    if (!world) return;
    const int owns = as_mpi(world)->owns_mpi;
    qtx_comm_free(world);
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (owns && !finalized) MPI_Finalize();
}

_Noreturn void qtx_comm_abort(qtx_comm *c, int exit_code) {
    (void)c; /* any communicator: the whole job goes */
    fflush(stdout);
    fflush(stderr);
    int inited = 0, finalized = 0;
    MPI_Initialized(&inited);
    MPI_Finalized(&finalized);
    if (inited && !finalized) MPI_Abort(MPI_COMM_WORLD, exit_code);
    _Exit(exit_code);
}

void qtx_comm_mpi_set_chunk(qtx_comm *c, int64_t max_elems) {
    QTX_CHECK(max_elems >= 0, "qtx_comm_mpi_set_chunk: negative size %lld", (long long)max_elems);
    if (c->be != &mpi_backend) return;
    as_mpi(c)->chunk = max_elems == 0 || max_elems > INT_MAX ? INT_MAX : max_elems;
}

int qtx_comm_node_rank(qtx_comm *c) {
    QTX_CHECK(c->be == &mpi_backend, "qtx_comm_node_rank: %s is not an MPI communicator", c->name);
    MPI_Comm node;
    MPI_Comm_split_type(as_mpi(c)->comm, MPI_COMM_TYPE_SHARED, c->rank, MPI_INFO_NULL, &node);
    int rank = 0;
    MPI_Comm_rank(node, &rank);
    MPI_Comm_free(&node);
    return rank;
}

static qtx_comm *mpi_split(qtx_comm *c, int color, int key, const char *name) {
    mpi_comm *m = as_mpi(c);
    MPI_Comm sub;
    MPI_Comm_split(m->comm, color < 0 ? MPI_UNDEFINED : color, key, &sub);
    if (sub == MPI_COMM_NULL) return NULL;
    return &mpi_new(sub, name, m->chunk)->base;
}

static void mpi_free(qtx_comm *c) {
    mpi_comm *m = as_mpi(c);
    MPI_Comm_free(&m->comm);
    free(m);
}

static qtx_comm_req *mpi_iallreduce(qtx_comm *c, void *buf, int64_t count, qtx_dtype t,
                                    qtx_redop op) {
    const mpi_comm *m = as_mpi(c);
    const size_t es = qtx_dtype_size(t);
    mpi_req *r = req_new(pieces(count, m->chunk), 0);
    for (int i = 0; i < r->n; i++) {
        const int64_t off = (int64_t)i * m->chunk;
        const int64_t n = count - off < m->chunk ? count - off : m->chunk;
        MPI_Iallreduce(MPI_IN_PLACE, (char *)buf + (size_t)off * es, (int)n, mpi_type(t),
                       mpi_op(op), m->comm, &r->reqs[i]);
    }
    return &r->base;
}

static qtx_comm_req *mpi_ibcast(qtx_comm *c, void *buf, int64_t count, qtx_dtype t, int root) {
    const mpi_comm *m = as_mpi(c);
    const size_t es = qtx_dtype_size(t);
    mpi_req *r = req_new(pieces(count, m->chunk), 0);
    for (int i = 0; i < r->n; i++) {
        const int64_t off = (int64_t)i * m->chunk;
        const int64_t n = count - off < m->chunk ? count - off : m->chunk;
        MPI_Ibcast((char *)buf + (size_t)off * es, (int)n, mpi_type(t), root, m->comm, &r->reqs[i]);
    }
    return &r->base;
}

/* Pieces of every part, for the rooted fall-backs of the v-operations. */
static int parts_pieces(const mpi_comm *m, const int64_t *counts) {
    int n = 0;
    for (int p = 0; p < m->base.size; p++) {
        const int k = pieces(counts[p], m->chunk);
        QTX_CHECK(n <= INT_MAX / 2 - k, "v-operation needs too many pieces");
        n += k;
    }
    return n;
}

static qtx_comm_req *mpi_ireduce_scatterv(qtx_comm *c, void *buf, const int64_t *counts,
                                          qtx_dtype t, qtx_redop op) {
    const mpi_comm *m = as_mpi(c);
    const int p = c->size, me = c->rank;
    const size_t es = qtx_dtype_size(t);
    int64_t total = 0, my_displ = 0;
    for (int q = 0; q < p; q++) {
        if (q == me) my_displ = total;
        total += counts[q];
    }
    if (total <= m->chunk) {
        /* One MPI_Ireduce_scatter; in place it leaves our part at the start of buf. */
        mpi_req *r = req_new(1, p);
        for (int q = 0; q < p; q++) r->ints[q] = (int)counts[q];
        MPI_Ireduce_scatter(MPI_IN_PLACE, buf, r->ints, mpi_type(t), mpi_op(op), m->comm,
                            &r->reqs[0]);
        r->move_dst = (char *)buf + (size_t)my_displ * es;
        r->move_src = buf;
        r->move_bytes = (size_t)counts[me] * es;
        return &r->base;
    }
    /* Too big for int counts: reduce each part to its owner, piece by piece, in place. */
    mpi_req *r = req_new(parts_pieces(m, counts), 0);
    int k = 0;
    int64_t displ = 0;
    for (int q = 0; q < p; q++) {
        for (int64_t off = 0; off < counts[q]; off += m->chunk) {
            const int64_t n = counts[q] - off < m->chunk ? counts[q] - off : m->chunk;
            char *at = (char *)buf + (size_t)(displ + off) * es;
            MPI_Ireduce(q == me ? MPI_IN_PLACE : at, at, (int)n, mpi_type(t), mpi_op(op), q,
                        m->comm, &r->reqs[k++]);
        }
        displ += counts[q];
    }
    return &r->base;
}

static qtx_comm_req *mpi_iallgatherv(qtx_comm *c, void *buf, const int64_t *counts, qtx_dtype t) {
    const mpi_comm *m = as_mpi(c);
    const int p = c->size;
    const size_t es = qtx_dtype_size(t);
    int64_t total = 0;
    for (int q = 0; q < p; q++) total += counts[q];
    if (total <= m->chunk) {
        mpi_req *r = req_new(1, 2 * p);
        int *cnt = r->ints, *dsp = r->ints + p;
        for (int q = 0, d = 0; q < p; q++) {
            cnt[q] = (int)counts[q];
            dsp[q] = d;
            d += cnt[q];
        }
        MPI_Iallgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf, cnt, dsp, mpi_type(t), m->comm,
                        &r->reqs[0]);
        return &r->base;
    }
    /* Too big for int displacements: each owner broadcasts its part, piece by piece. */
    mpi_req *r = req_new(parts_pieces(m, counts), 0);
    int k = 0;
    int64_t displ = 0;
    for (int q = 0; q < p; q++) {
        for (int64_t off = 0; off < counts[q]; off += m->chunk) {
            const int64_t n = counts[q] - off < m->chunk ? counts[q] - off : m->chunk;
            MPI_Ibcast((char *)buf + (size_t)(displ + off) * es, (int)n, mpi_type(t), q, m->comm,
                       &r->reqs[k++]);
        }
        displ += counts[q];
    }
    return &r->base;
}

/* Pieces of one message keep their order: MPI does not let messages with the same
 * (source, tag, communicator) overtake each other. */
static qtx_comm_req *mpi_isend(qtx_comm *c, const void *buf, int64_t count, qtx_dtype t, int peer,
                               int tag) {
    const mpi_comm *m = as_mpi(c);
    const size_t es = qtx_dtype_size(t);
    mpi_req *r = req_new(count ? pieces(count, m->chunk) : 1, 0);
    for (int i = 0; i < r->n; i++) {
        const int64_t off = (int64_t)i * m->chunk;
        const int64_t n = count - off < m->chunk ? count - off : m->chunk;
        MPI_Isend((const char *)buf + (size_t)off * es, (int)n, mpi_type(t), peer, tag, m->comm,
                  &r->reqs[i]);
    }
    return &r->base;
}

static qtx_comm_req *mpi_irecv(qtx_comm *c, void *buf, int64_t count, qtx_dtype t, int peer,
                               int tag) {
    const mpi_comm *m = as_mpi(c);
    const size_t es = qtx_dtype_size(t);
    mpi_req *r = req_new(count ? pieces(count, m->chunk) : 1, 0);
    for (int i = 0; i < r->n; i++) {
        const int64_t off = (int64_t)i * m->chunk;
        const int64_t n = count - off < m->chunk ? count - off : m->chunk;
        MPI_Irecv((char *)buf + (size_t)off * es, (int)n, mpi_type(t), peer, tag, m->comm,
                  &r->reqs[i]);
    }
    return &r->base;
}

/* Both messages' pieces in one request. */
static qtx_comm_req *mpi_isendrecv(qtx_comm *c, const void *sendbuf, int to, int stag,
                                   void *recvbuf, int from, int rtag, int64_t count, qtx_dtype t) {
    const mpi_comm *m = as_mpi(c);
    const size_t es = qtx_dtype_size(t);
    const int np = count ? pieces(count, m->chunk) : 1;
    mpi_req *r = req_new(2 * np, 0);
    for (int i = 0; i < np; i++) {
        const int64_t off = (int64_t)i * m->chunk;
        const int64_t n = count - off < m->chunk ? count - off : m->chunk;
        MPI_Irecv((char *)recvbuf + (size_t)off * es, (int)n, mpi_type(t), from, rtag, m->comm,
                  &r->reqs[np + i]);
        MPI_Isend((const char *)sendbuf + (size_t)off * es, (int)n, mpi_type(t), to, stag, m->comm,
                  &r->reqs[i]);
    }
    return &r->base;
}

static qtx_comm_req *mpi_ibarrier(qtx_comm *c) {
    mpi_req *r = req_new(1, 0);
    MPI_Ibarrier(as_mpi(c)->comm, &r->reqs[0]);
    return &r->base;
}

static int mpi_test(qtx_comm_req *rq) {
    mpi_req *r = (mpi_req *)rq;
    int done = 0;
    MPI_Testall(r->n, r->reqs, &done, MPI_STATUSES_IGNORE);
    return done;
}

static void mpi_wait(qtx_comm_req *rq) {
    mpi_req *r = (mpi_req *)rq;
    MPI_Waitall(r->n, r->reqs, MPI_STATUSES_IGNORE);
    if (r->move_bytes && r->move_dst != r->move_src)
        memmove(r->move_dst, r->move_src, r->move_bytes);
    free(r);
}

static const qtx_comm_backend mpi_backend = {
    .kind = "mpi",
    .device_memory = 0,
    .split = mpi_split,
    .free = mpi_free,
    .iallreduce = mpi_iallreduce,
    .ireduce_scatterv = mpi_ireduce_scatterv,
    .iallgatherv = mpi_iallgatherv,
    .ibcast = mpi_ibcast,
    .isend = mpi_isend,
    .irecv = mpi_irecv,
    .isendrecv = mpi_isendrecv,
    .ibarrier = mpi_ibarrier,
    .test = mpi_test,
    .wait = mpi_wait,
};
