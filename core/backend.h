/* backend.h: where the model computes. One table holds the operations of a training step
 * (the set of core/kernels.h, with its semantics: what is overwritten, what accumulated) and
 * the memory they work on, so core/model.c is written once for every device, as ggml's
 * backends are. The CPU backend is kernels.h itself, on host memory; the CUDA backend
 * (core/cuda_backend.h, built with QTX_CUDA) runs the same operations on device memory.
 *
 * Memory handed out by alloc belongs to the backend: only its own operations, copy, zero
 * and the two transfers touch it, unless host_memory says it is ordinary host memory (the
 * CPU backend), which the layers above may then read and write directly. Operations either
 * succeed or stop the process through QTX_CHECK with the device's reason: they fail only on
 * broken invariants or a failing device, never on input.
 */
#ifndef QTX_BACKEND_H
#define QTX_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "kernels.h"

typedef struct qtx_backend qtx_backend;

struct qtx_backend {
    const char *name; /* "cpu", "cuda" */
    int host_memory;  /* 1: alloc returns host memory the caller may touch */
    void *ctx;        /* the backend's own state */
    int n_threads;    /* CPU: the OpenMP threads its attention kernels use at most */

    /* Memory: zeroed, 64-byte aligned; alloc never returns NULL. */
    void *(*alloc)(qtx_backend *be, size_t bytes);
    void (*free)(qtx_backend *be, void *p, size_t bytes);
    void (*zero)(qtx_backend *be, void *p, size_t bytes);
    void (*copy)(qtx_backend *be, void *dst, const void *src, size_t bytes);
    void (*to_device)(qtx_backend *be, void *dst, const void *host, size_t bytes);
    void (*to_host)(qtx_backend *be, void *host, const void *src, size_t bytes);

    /* The model's operations, as in kernels.h. */
    void (*linear_fwd)(qtx_backend *be, float *y, const float *x, const float *W, int64_t n,
                       int64_t in, int64_t out, int accumulate);
    void (*linear_bwd)(qtx_backend *be, float *dx, float *dW, const float *dy, const float *x,
                       const float *W, int64_t n, int64_t in, int64_t out);
    void (*rmsnorm_fwd)(qtx_backend *be, float *y, float *rstd, const float *x, const float *w,
                        int64_t n, int64_t c, float eps);
    void (*rmsnorm_bwd)(qtx_backend *be, float *dx, float *dw, const float *dy, const float *x,
                        const float *rstd, const float *w, int64_t n, int64_t c);
    void (*rope)(qtx_backend *be, float *x, int64_t ld, int64_t n, int T, int n_heads, int hd,
                 const float *cos_t, const float *sin_t, int inverse);
    /* Floats of scratch the attention operations need for this shape. */
    int64_t (*attention_scratch_floats)(qtx_backend *be, int B, int T, int H);
    void (*attention_fwd)(qtx_backend *be, float *out, float *lse, const float *qkv, int B, int T,
                          int H, int KV, int hd, float *scratch);
    void (*attention_bwd)(qtx_backend *be, float *dqkv, const float *dout, const float *qkv,
                          const float *out, const float *lse, int B, int T, int H, int KV, int hd,
                          float *scratch);
    void (*swiglu_fwd)(qtx_backend *be, float *h, const float *gu, int64_t n, int64_t f);
    void (*swiglu_bwd)(qtx_backend *be, float *dgu, const float *dh, const float *gu, int64_t n,
                       int64_t f);
    void (*embedding_fwd)(qtx_backend *be, float *x, const float *E, const int32_t *tok, int64_t n,
                          int64_t c, int64_t v0, int64_t vl);
    void (*embedding_bwd)(qtx_backend *be, float *dE, const float *dx, const int32_t *tok,
                          int64_t n, int64_t c, int64_t v0, int64_t vl);
    void (*add)(qtx_backend *be, float *y, const float *x, int64_t n); /* y += x */
    /* qtx_head_xent; logits_scratch holds chunk * (vl + 4) floats of backend memory. */
    double (*head_xent)(qtx_backend *be, float *dx, float *dW, const float *x, const float *W,
                        const int32_t *targets, int64_t n, int64_t c, int64_t vl, int64_t v0,
                        float grad_scale, float *logits_scratch, int64_t chunk,
                        const qtx_tp_ops *tp);

    /* The optimizer's operations on the backend's memory (kernels.h). sum_squares returns to
     * the host: a synchronisation on a device. */
    void (*adamw)(qtx_backend *be, float *p, const float *g, float *m, float *v, int64_t n,
                  const qtx_adamw_step *s);
    double (*sum_squares)(qtx_backend *be, const float *x, int64_t n);

    /* Backends with bf16 products (NULL elsewhere): [p, p + n) is the parameter buffer the
     * weights come from (core/bf16.h); n = 0 says p goes away (forgotten if it is the one
     * bound). Such a backend keeps one bf16 copy of it, converted in one pass at the first
     * product after the buffer changed, instead of rounding the weights at every product.
     * Its own writes into the range (to_device, copy, zero, adamw) mark the copy stale; its
     * other operations never write parameters (they write activations and gradients); after
     * writing the range any other way (a collective) call params_changed. One buffer per
     * backend: binding another replaces it. */
    void (*bind_params)(qtx_backend *be, const float *p, int64_t n);
    void (*params_changed)(qtx_backend *be);
};

/* The CPU backend: kernels.h on host memory, the attention kernels on at most n_threads
 * OpenMP threads. A value: copy it into the model, nothing to free. */
qtx_backend qtx_backend_cpu(int n_threads);

/* The CPU backend that says its memory is not host memory ("staged"): the same kernels and
 * bits, but the layers above must move every parameter, moment and batch through alloc,
 * to_device and to_host, exactly as they do for a GPU. It runs the device code path of the
 * trainer, ZeRO and checkpoints on machines without a GPU (device.type: staged). */
qtx_backend qtx_backend_cpu_staged(int n_threads);

/* The staged backend with the bf16 products of the CUDA backend's device.precision: bf16,
 * emulated: each product's operands rounded to bf16 (round to nearest even), then multiplied
 * and summed in fp32 as on the tensor cores (the output head's logit gradients stay fp32:
 * qtx_head_xent is one kernel here). keep_copy: the weights come from one bf16 copy of the
 * parameters (bind_params); 0: rounded at every product. Free with qtx_backend_cpu_free. */
qtx_backend qtx_backend_cpu_staged_bf16(int n_threads, int keep_copy);

/* Frees what a CPU backend holds (nothing, except for the bf16 staged one). */
void qtx_backend_cpu_free(qtx_backend *be);

#endif
