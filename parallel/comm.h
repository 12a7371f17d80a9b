/* comm.h: the one communicator interface of the project.
 *
 * A qtx_comm is a group of ranks with a backend behind it: MPI for host memory
 * (comm_mpi.c, always built) or NCCL for CUDA device memory (comm_nccl.c, built with
 * QTX_HAVE_NCCL). Callers see one set of calls and one set of counters per group, whatever
 * carries the bytes; the backends fill a small vtable (see the end of this file).
 *
 * Failures of the transport are not recoverable here: MPI runs with MPI_ERRORS_ARE_FATAL
 * and NCCL/CUDA errors go through QTX_CHECK. Misuse (a bad root, a negative count) is a
 * broken invariant and goes through QTX_CHECK as well.
 *
 * Counts above INT_MAX: MPI takes int counts, so the MPI backend splits an operation into
 * pieces of at most INT_MAX elements (chunking, not MPI_Type_contiguous: the predefined
 * reductions MPI_SUM/MPI_MAX do not apply to derived datatypes). All-reduce, bcast, send and
 * recv issue consecutive pieces; a reduce-scatterv or all-gatherv whose total exceeds the
 * limit becomes one rooted MPI_Ireduce / MPI_Ibcast per (part, piece), rooted at the part's
 * owner. All pieces of one call belong to one request, so callers never see the split. A
 * send and its matching recv must therefore give the same count.
 */
#ifndef QTX_COMM_H
#define QTX_COMM_H

#include <stddef.h>
#include <stdint.h>

#include "check.h"

typedef enum qtx_dtype { QTX_F32, QTX_F64, QTX_I32, QTX_I64, QTX_U8 } qtx_dtype;
typedef enum qtx_redop { QTX_SUM, QTX_MAX } qtx_redop;
typedef enum qtx_comm_op {
    QTX_OP_ALLREDUCE,
    QTX_OP_REDUCE_SCATTER,
    QTX_OP_ALLGATHER,
    QTX_OP_BCAST,
    QTX_OP_SEND,
    QTX_OP_RECV,
    QTX_OP_BARRIER,
    QTX_OP_COUNT
} qtx_comm_op;

typedef struct qtx_comm_counter {
    int64_t calls;
    int64_t bytes; /* payload bytes given to the call (the buffer size it covers) */
    /* Bytes this rank sends under the ring algorithm, in exact integer arithmetic:
     * all-reduce floor(2(p-1) * bytes / p); reduce-scatterv and all-gatherv
     * (total - own count) * elem_size, i.e. (p-1)/p of the FULL buffer when even;
     * bcast: bytes on the root, 0 elsewhere; send: bytes; recv: 0; barrier: 0. */
    int64_t wire_bytes;
    double wait_s; /* seconds spent blocked: inside blocking calls and inside qtx_comm_wait */
} qtx_comm_counter;

typedef struct qtx_comm qtx_comm;         /* opaque; a backend vtable inside */
typedef struct qtx_comm_req qtx_comm_req; /* a pending non-blocking operation */

/* Bytes of one element of t. */
size_t qtx_dtype_size(qtx_dtype t);

/* MPI backend. Calls MPI_Init_thread (MPI_THREAD_FUNNELED) unless MPI is already
 * initialised, and returns the world communicator (named "world"); a plain process without
 * mpirun is a one-rank world. Sets MPI_ERRORS_ARE_FATAL on the world, so an MPI failure on
 * any rank aborts the job. The world is a duplicate of MPI_COMM_WORLD, so our traffic never
 * matches messages of other MPI users in the process. */
qtx_comm *qtx_comm_mpi_init(int *argc, char ***argv);
/* Frees world, then MPI_Finalize when qtx_comm_mpi_init initialised MPI (a caller that
 * initialised MPI itself also finalises it). Every other communicator must be freed first. */
void qtx_comm_finalize(qtx_comm *world);
/* MPI_Abort on the world: every rank exits. */
_Noreturn void qtx_comm_abort(qtx_comm *c, int exit_code);
int qtx_comm_rank(const qtx_comm *c);
int qtx_comm_size(const qtx_comm *c);
const char *qtx_comm_name(const qtx_comm *c);
/* Ranks with the same color form a group, ordered by key; name labels counters ("dp",
 * "tp", ...). Collective over c. A negative color joins no group and returns NULL. */
qtx_comm *qtx_comm_split(qtx_comm *c, int color, int key, const char *name);
void qtx_comm_free(qtx_comm *c); /* NULL is a no-op */

/* This rank's place among the ranks of MPI communicator c that share its node (its local
 * rank: which GPU it takes). Collective over c. */
int qtx_comm_node_rank(qtx_comm *c);

/* Test hook of the MPI backend: the most elements one MPI call carries (0 restores the
 * default, INT_MAX), so the > INT_MAX path runs on small buffers. Must be the same on every
 * rank of c; later splits of c inherit it. No effect on other backends. */
void qtx_comm_mpi_set_chunk(qtx_comm *c, int64_t max_elems);

/* Blocking. count in elements. */
void qtx_comm_allreduce(qtx_comm *c, void *buf, int64_t count, qtx_dtype t, qtx_redop op);
/* In place: buf holds sum(counts) elements; on return this rank's reduced part is at
 * buf + displ(rank) where displ(r) = counts[0] + ... + counts[r-1]; the rest of buf is
 * unspecified. counts has size(c) entries and may be uneven (0 allowed). */
void qtx_comm_reduce_scatterv(qtx_comm *c, void *buf, const int64_t *counts, qtx_dtype t,
                              qtx_redop op);
/* In place: this rank's part is at buf + displ(rank); on return buf holds every rank's part. */
void qtx_comm_allgatherv(qtx_comm *c, void *buf, const int64_t *counts, qtx_dtype t);
void qtx_comm_bcast(qtx_comm *c, void *buf, int64_t count, qtx_dtype t, int root);
/* tag is ignored by NCCL, which matches send and recv by issue order. */
void qtx_comm_send(qtx_comm *c, const void *buf, int64_t count, qtx_dtype t, int peer, int tag);
void qtx_comm_recv(qtx_comm *c, void *buf, int64_t count, qtx_dtype t, int peer, int tag);
void qtx_comm_barrier(qtx_comm *c);

/* Non-blocking variants: return a request; the buffers must not be touched until
 * qtx_comm_wait. counts arrays are copied (caller may free them). */
qtx_comm_req *qtx_comm_iallreduce(qtx_comm *c, void *buf, int64_t count, qtx_dtype t, qtx_redop op);
qtx_comm_req *qtx_comm_ireduce_scatterv(qtx_comm *c, void *buf, const int64_t *counts, qtx_dtype t,
                                        qtx_redop op);
qtx_comm_req *qtx_comm_iallgatherv(qtx_comm *c, void *buf, const int64_t *counts, qtx_dtype t);
qtx_comm_req *qtx_comm_isend(qtx_comm *c, const void *buf, int64_t count, qtx_dtype t, int peer,
                             int tag);
qtx_comm_req *qtx_comm_irecv(qtx_comm *c, void *buf, int64_t count, qtx_dtype t, int peer, int tag);
/* A send to `to` and a receive from `from` of count elements each, issued together: NCCL
 * runs them as one group (a send and a receive queued one after the other on its stream would
 * wait on each other when two peers exchange), MPI as two requests. Counted as a send and a
 * receive. */
qtx_comm_req *qtx_comm_isendrecv(qtx_comm *c, const void *sendbuf, int to, int stag, void *recvbuf,
                                 int from, int rtag, int64_t count, qtx_dtype t);
void qtx_comm_wait(qtx_comm_req *r);             /* completes and frees r; NULL is a no-op */
void qtx_comm_wait_all(qtx_comm_req **r, int n); /* waits each, sets each to NULL */
int qtx_comm_test(qtx_comm_req *r); /* progresses; 1 when complete (r still must be waited) */

/* Counters of this communicator (group), per operation kind. */
const qtx_comm_counter *qtx_comm_counters(const qtx_comm *c, qtx_comm_op op);
void qtx_comm_reset_counters(qtx_comm *c);
const char *qtx_comm_op_name(qtx_comm_op op);

/* NCCL backend for device memory (buffers are CUDA device pointers). Built when CUDA and
 * NCCL are found (CMake option QTX_CUDA, ON when found; defines QTX_HAVE_NCCL). Collective
 * over host: every rank first checks that it can use `device`, and if any rank cannot, all
 * return NULL with e filled (so no rank waits in NCCL for a peer that gave up); then rank 0
 * of host creates the ncclUniqueId and broadcasts it over host. Without NCCL it returns NULL
 * after filling e. qtx_comm_split of an NCCL comm uses ncclCommSplit (NCCL >= 2.18). */
qtx_comm *qtx_comm_nccl_create(qtx_comm *host, int device, const char *name, qtx_err *e);
/* Every later operation of NCCL communicator c starts, on the device, after the work already
 * queued on stream (a cudaStream_t: the compute stream that writes the buffers c reads), so a
 * gradient bucket is reduced as soon as backward has produced it while backward goes on.
 * NULL: no such wait. The host never blocks for it. */
void qtx_comm_nccl_follow(qtx_comm *c, void *stream);

/* ---- Backend interface: seen only by comm_*.c, which define QTX_COMM_BACKEND. ---- */
#ifdef QTX_COMM_BACKEND

/* Each entry issues its operation and returns a request the generic layer then owns
 * (it sets c and op). Arguments are already checked; counting and timing happen above. */
typedef struct qtx_comm_backend {
    const char *kind;  /* "mpi", "nccl" */
    int device_memory; /* buffers are device pointers */
    qtx_comm *(*split)(qtx_comm *c, int color, int key, const char *name);
    void (*free)(qtx_comm *c);
    qtx_comm_req *(*iallreduce)(qtx_comm *c, void *buf, int64_t count, qtx_dtype t, qtx_redop op);
    qtx_comm_req *(*ireduce_scatterv)(qtx_comm *c, void *buf, const int64_t *counts, qtx_dtype t,
                                      qtx_redop op);
    qtx_comm_req *(*iallgatherv)(qtx_comm *c, void *buf, const int64_t *counts, qtx_dtype t);
    qtx_comm_req *(*ibcast)(qtx_comm *c, void *buf, int64_t count, qtx_dtype t, int root);
    qtx_comm_req *(*isend)(qtx_comm *c, const void *buf, int64_t count, qtx_dtype t, int peer,
                           int tag);
    qtx_comm_req *(*irecv)(qtx_comm *c, void *buf, int64_t count, qtx_dtype t, int peer, int tag);
    qtx_comm_req *(*isendrecv)(qtx_comm *c, const void *sendbuf, int to, int stag, void *recvbuf,
                               int from, int rtag, int64_t count, qtx_dtype t);
    qtx_comm_req *(*ibarrier)(qtx_comm *c);
    int (*test)(qtx_comm_req *r);
    void (*wait)(qtx_comm_req *r); /* completes and frees */
} qtx_comm_backend;

/* The common head of every backend's communicator and request structs. */
struct qtx_comm {
    const qtx_comm_backend *be;
    int rank, size;
    char name[32];
    qtx_comm_counter counters[QTX_OP_COUNT];
};

struct qtx_comm_req {
    qtx_comm *c;
    qtx_comm_op op;
};

void qtx_comm_init_base(qtx_comm *c, const qtx_comm_backend *be, int rank, int size,
                        const char *name);

#endif /* QTX_COMM_BACKEND */

#endif
