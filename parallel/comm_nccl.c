/* comm_nccl.c: the NCCL backend of comm.h, for buffers in CUDA device memory.
 *
 * Each communicator owns one CUDA stream; every operation is enqueued on it and a request
 * is an event recorded after the operation, so waiting is cudaEventSynchronize and the
 * host never blocks while the operation is queued. Built with QTX_HAVE_NCCL only; without
 * it qtx_comm_nccl_create reports that and returns NULL.
 */
#define QTX_COMM_BACKEND
#include "comm.h"

#ifdef QTX_HAVE_NCCL

#include <cuda_runtime_api.h>
#include <nccl.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define CUDA_CHECK(call)                                                                           \
    do {                                                                                           \
        cudaError_t err_ = (call);                                                                 \
        QTX_CHECK(err_ == cudaSuccess, "%s: %s", #call, cudaGetErrorString(err_));                 \
    } while (0)

#define NCCL_CHECK(call)                                                                           \
    do {                                                                                           \
        ncclResult_t res_ = (call);                                                                \
        QTX_CHECK(res_ == ncclSuccess, "%s: %s (%s)", #call, ncclGetErrorString(res_),             \
                  ncclGetLastError(NULL));                                                         \
    } while (0)

typedef struct nccl_comm {
    qtx_comm base;
    ncclComm_t comm;
    cudaStream_t stream;
    int device;
    int32_t *scratch;     /* one device int: the barrier all-reduces it */
    cudaStream_t follow;  /* qtx_comm_nccl_follow's stream, or NULL */
    cudaEvent_t followed; /* recorded on it before each operation */
} nccl_comm;

typedef struct nccl_req {
    qtx_comm_req base;
    cudaEvent_t done;
} nccl_req;

static const qtx_comm_backend nccl_backend;

static nccl_comm *as_nccl(qtx_comm *c) {
    QTX_CHECK(c->be == &nccl_backend, "communicator %s is not an NCCL communicator", c->name);
    return (nccl_comm *)c;
}

static ncclDataType_t nccl_type(qtx_dtype t) {
    switch (t) {
    case QTX_F32:
        return ncclFloat32;
    case QTX_F64:
        return ncclFloat64;
    case QTX_I32:
        return ncclInt32;
    case QTX_I64:
        return ncclInt64;
    case QTX_U8:
        return ncclUint8;
    }
    QTX_CHECK(0, "unknown qtx_dtype %d", (int)t);
    return ncclFloat32;
}

static ncclRedOp_t nccl_op(qtx_redop op) {
    QTX_CHECK(op == QTX_SUM || op == QTX_MAX, "unknown qtx_redop %d", (int)op);
    return op == QTX_SUM ? ncclSum : ncclMax;
}

/* Operations are enqueued with the comm's device current (a process may drive several),
 * after what the followed stream has queued so far. */
static nccl_comm *begin(qtx_comm *c) {
    nccl_comm *n = as_nccl(c);
    CUDA_CHECK(cudaSetDevice(n->device));
    if (n->follow) {
        CUDA_CHECK(cudaEventRecord(n->followed, n->follow));
        CUDA_CHECK(cudaStreamWaitEvent(n->stream, n->followed, 0));
    }
    return n;
}

void qtx_comm_nccl_follow(qtx_comm *c, void *stream) {
    nccl_comm *n = as_nccl(c);
    CUDA_CHECK(cudaSetDevice(n->device));
    if (!n->followed) CUDA_CHECK(cudaEventCreateWithFlags(&n->followed, cudaEventDisableTiming));
    n->follow = (cudaStream_t)stream;
}

static qtx_comm_req *record(nccl_comm *n) {
    nccl_req *r = qtx_calloc(1, sizeof *r);
    CUDA_CHECK(cudaEventCreateWithFlags(&r->done, cudaEventDisableTiming));
    CUDA_CHECK(cudaEventRecord(r->done, n->stream));
    return &r->base;
}

static nccl_comm *nccl_new(ncclComm_t comm, int device, const char *name) {
    nccl_comm *n = qtx_calloc(1, sizeof *n);
    int rank, size;
    NCCL_CHECK(ncclCommUserRank(comm, &rank));
    NCCL_CHECK(ncclCommCount(comm, &size));
    qtx_comm_init_base(&n->base, &nccl_backend, rank, size, name);
    n->comm = comm;
    n->device = device;
    CUDA_CHECK(cudaStreamCreateWithFlags(&n->stream, cudaStreamNonBlocking));
    CUDA_CHECK(cudaMalloc((void **)&n->scratch, sizeof *n->scratch));
    CUDA_CHECK(cudaMemset(n->scratch, 0, sizeof *n->scratch));
    return n;
}

qtx_comm *qtx_comm_nccl_create(qtx_comm *host, int device, const char *name, qtx_err *e) {
    QTX_CHECK(!host->be->device_memory,
              "qtx_comm_nccl_create: host communicator %s is not on "
              "host memory",
              host->name);
    /* Agree first on whether every rank can use its device: one rank giving up alone would
     * leave the others waiting in ncclCommInitRank. */
    int ndev = 0;
    cudaError_t ce = cudaGetDeviceCount(&ndev);
    if (ce == cudaSuccess && (device < 0 || device >= ndev)) ce = cudaErrorInvalidDevice;
    if (ce == cudaSuccess) ce = cudaSetDevice(device);
    int32_t bad = ce != cudaSuccess;
    qtx_comm_allreduce(host, &bad, 1, QTX_I32, QTX_MAX);
    if (bad) {
        if (ce != cudaSuccess)
            qtx_fail(e, QTX_ERR_RUNTIME,
                     "qtx_comm_nccl_create: rank %d of %s cannot use CUDA device %d (%d "
                     "found): %s",
                     host->rank, host->name, device, ndev, cudaGetErrorString(ce));
        else
            qtx_fail(e, QTX_ERR_RUNTIME,
                     "qtx_comm_nccl_create: another rank of %s cannot use its CUDA device",
                     host->name);
        return NULL;
    }
    ncclUniqueId id;
    memset(&id, 0, sizeof id);
    if (host->rank == 0) NCCL_CHECK(ncclGetUniqueId(&id));
    qtx_comm_bcast(host, &id, (int64_t)sizeof id, QTX_U8, 0);
    ncclComm_t comm;
    const ncclResult_t res = ncclCommInitRank(&comm, host->size, id, host->rank);
    if (res != ncclSuccess) {
        qtx_fail(e, QTX_ERR_RUNTIME, "qtx_comm_nccl_create: ncclCommInitRank on rank %d: %s (%s)",
                 host->rank, ncclGetErrorString(res), ncclGetLastError(NULL));
        return NULL;
    }
    return &nccl_new(comm, device, name)->base;
}

static qtx_comm *nccl_split(qtx_comm *c, int color, int key, const char *name) {
#if NCCL_VERSION_CODE >= NCCL_VERSION(2, 18, 0)
    nccl_comm *n = begin(c);
    ncclComm_t sub = NULL;
    NCCL_CHECK(ncclCommSplit(n->comm, color < 0 ? NCCL_SPLIT_NOCOLOR : color, key, &sub, NULL));
    if (!sub) return NULL;
    return &nccl_new(sub, n->device, name)->base;
#else
    qtx_log_error("qtx_comm_split: NCCL %d is older than 2.18 and cannot split %s; create the "
                  "group's NCCL communicator from a split host communicator instead",
                  NCCL_VERSION_CODE, c->name);
    return NULL;
#endif
}

static void nccl_free(qtx_comm *c) {
    nccl_comm *n = as_nccl(c); /* not begin(): the followed stream may be gone */
    CUDA_CHECK(cudaSetDevice(n->device));
    CUDA_CHECK(cudaStreamSynchronize(n->stream));
    NCCL_CHECK(ncclCommDestroy(n->comm));
    CUDA_CHECK(cudaFree(n->scratch));
    if (n->followed) CUDA_CHECK(cudaEventDestroy(n->followed));
    CUDA_CHECK(cudaStreamDestroy(n->stream));
    free(n);
}

static qtx_comm_req *nccl_iallreduce(qtx_comm *c, void *buf, int64_t count, qtx_dtype t,
                                     qtx_redop op) {
    nccl_comm *n = begin(c);
    NCCL_CHECK(
        ncclAllReduce(buf, buf, (size_t)count, nccl_type(t), nccl_op(op), n->comm, n->stream));
    return record(n);
}

static int uniform(const int64_t *counts, int p) {
    for (int q = 1; q < p; q++)
        if (counts[q] != counts[0]) return 0;
    return 1;
}

static qtx_comm_req *nccl_ireduce_scatterv(qtx_comm *c, void *buf, const int64_t *counts,
                                           qtx_dtype t, qtx_redop op) {
    nccl_comm *n = begin(c);
    const size_t es = qtx_dtype_size(t);
    char *b = buf;
    if (uniform(counts, c->size)) {
        /* In place: NCCL's recvbuff = sendbuff + rank * recvcount is exactly displ(rank). */
        const size_t k = (size_t)counts[0];
        NCCL_CHECK(ncclReduceScatter(b, b + (size_t)c->rank * k * es, k, nccl_type(t), nccl_op(op),
                                     n->comm, n->stream));
        return record(n);
    }
    NCCL_CHECK(ncclGroupStart());
    size_t displ = 0;
    for (int q = 0; q < c->size; q++) {
        if (counts[q])
            NCCL_CHECK(ncclReduce(b + displ * es, b + displ * es, (size_t)counts[q], nccl_type(t),
                                  nccl_op(op), q, n->comm, n->stream));
        displ += (size_t)counts[q];
    }
    NCCL_CHECK(ncclGroupEnd());
    return record(n);
}

static qtx_comm_req *nccl_iallgatherv(qtx_comm *c, void *buf, const int64_t *counts, qtx_dtype t) {
    nccl_comm *n = begin(c);
    const size_t es = qtx_dtype_size(t);
    char *b = buf;
    if (uniform(counts, c->size)) {
        const size_t k = (size_t)counts[0];
        NCCL_CHECK(
            ncclAllGather(b + (size_t)c->rank * k * es, b, k, nccl_type(t), n->comm, n->stream));
        return record(n);
    }
    NCCL_CHECK(ncclGroupStart());
    size_t displ = 0;
    for (int q = 0; q < c->size; q++) {
        if (counts[q])
            NCCL_CHECK(ncclBroadcast(b + displ * es, b + displ * es, (size_t)counts[q],
                                     nccl_type(t), q, n->comm, n->stream));
        displ += (size_t)counts[q];
    }
    NCCL_CHECK(ncclGroupEnd());
    return record(n);
}

static qtx_comm_req *nccl_ibcast(qtx_comm *c, void *buf, int64_t count, qtx_dtype t, int root) {
    nccl_comm *n = begin(c);
    NCCL_CHECK(ncclBroadcast(buf, buf, (size_t)count, nccl_type(t), root, n->comm, n->stream));
    return record(n);
}

static qtx_comm_req *nccl_isend(qtx_comm *c, const void *buf, int64_t count, qtx_dtype t, int peer,
                                int tag) {
    nccl_comm *n = begin(c);
    NCCL_CHECK(ncclSend(buf, (size_t)count, nccl_type(t), peer, n->comm, n->stream));
    return record(n);
}

static qtx_comm_req *nccl_irecv(qtx_comm *c, void *buf, int64_t count, qtx_dtype t, int peer,
                                int tag) {
    nccl_comm *n = begin(c);
    NCCL_CHECK(ncclRecv(buf, (size_t)count, nccl_type(t), peer, n->comm, n->stream));
    return record(n);
}

/* One group: NCCL posts both before either waits for its peer. */
static qtx_comm_req *nccl_isendrecv(qtx_comm *c, const void *sendbuf, int to, int stag,
                                    void *recvbuf, int from, int rtag, int64_t count, qtx_dtype t) {
    (void)stag, (void)rtag;
    nccl_comm *n = begin(c);
    NCCL_CHECK(ncclGroupStart());
    NCCL_CHECK(ncclSend(sendbuf, (size_t)count, nccl_type(t), to, n->comm, n->stream));
    NCCL_CHECK(ncclRecv(recvbuf, (size_t)count, nccl_type(t), from, n->comm, n->stream));
    NCCL_CHECK(ncclGroupEnd());
    return record(n);
}

/* Completes only when every rank has enqueued it, which is what a barrier needs. */
static qtx_comm_req *nccl_ibarrier(qtx_comm *c) {
    nccl_comm *n = begin(c);
    NCCL_CHECK(ncclAllReduce(n->scratch, n->scratch, 1, ncclInt32, ncclSum, n->comm, n->stream));
    return record(n);
}

static int nccl_test(qtx_comm_req *rq) {
    const nccl_req *r = (const nccl_req *)rq;
    const cudaError_t ce = cudaEventQuery(r->done);
    if (ce == cudaErrorNotReady) return 0;
    CUDA_CHECK(ce);
    return 1;
}

static void nccl_wait(qtx_comm_req *rq) {
    nccl_req *r = (nccl_req *)rq;
    CUDA_CHECK(cudaEventSynchronize(r->done));
    CUDA_CHECK(cudaEventDestroy(r->done));
    free(r);
}

static const qtx_comm_backend nccl_backend = {
    .kind = "nccl",
    .device_memory = 1,
    .split = nccl_split,
    .free = nccl_free,
    .iallreduce = nccl_iallreduce,
    .ireduce_scatterv = nccl_ireduce_scatterv,
    .iallgatherv = nccl_iallgatherv,
    .ibcast = nccl_ibcast,
    .isend = nccl_isend,
    .irecv = nccl_irecv,
    .isendrecv = nccl_isendrecv,
    .ibarrier = nccl_ibarrier,
    .test = nccl_test,
    .wait = nccl_wait,
};

#else /* !QTX_HAVE_NCCL */

void qtx_comm_nccl_follow(qtx_comm *c, void *stream) {
    (void)stream;
    QTX_CHECK(0, "qtx_comm_nccl_follow: %s is not an NCCL communicator (built without NCCL)",
              c->name);
}

qtx_comm *qtx_comm_nccl_create(qtx_comm *host, int device, const char *name, qtx_err *e) {
    qtx_fail(e, QTX_ERR_RUNTIME,
             "qtx_comm_nccl_create: this qtx was built without NCCL; rebuild where the CUDA "
             "toolkit and NCCL are found (CMake option QTX_CUDA)");
    return NULL;
}

#endif
