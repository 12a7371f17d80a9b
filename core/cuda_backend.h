/* cuda_backend.h: the CUDA backend of the model (core/backend.h, issue #7): device memory
 * from cudaMalloc, every operation on one stream of one GPU, the fp32 kernels of
 * cuda_kernels.h, cuda_attention.h and cuda_xent.h, and cuBLASLt GEMMs either in fp32 (so a
 * model on it can be held against the CPU backend within fp32 rounding) or, mixed precision,
 * with both inputs rounded to bf16 and fp32 accumulation and output (the tensor cores' path;
 * master weights, gradients and activations stay fp32). Built with QTX_CUDA only.
 *
 * With bf16 the weights come from one bf16 copy of the parameter buffer (bind_params,
 * core/bf16.h), converted in one pass after each change (the optimizer step, a load), so a
 * step converts each weight once instead of at its two or three products per micro-batch;
 * activations and gradients are rounded into a scratch that grows once, on the first step.
 * QTX_CUDA_BF16_PER_PRODUCT rounds the weights at every product too (2 bytes per parameter
 * less memory, more conversion): the same bits.
 */
#ifndef QTX_CUDA_BACKEND_H
#define QTX_CUDA_BACKEND_H

#include <stddef.h>

#include "backend.h"

/* GPUs visible to this process: 0 with the reason in why when none (no driver, no device). */
int qtx_cuda_device_count(char *why, size_t cap);

/* GPU `device`'s PCI bus id ("0000:3b:00.0"): 0, or -1 with the reason in why. */
int qtx_cuda_device_bus_id(int device, char *out, size_t cap, char *why, size_t why_cap);

typedef enum qtx_cuda_precision {
    QTX_CUDA_FP32 = 0,            /* fp32 GEMMs */
    QTX_CUDA_BF16 = 1,            /* bf16 GEMM inputs, weights from the parameters' bf16 copy */
    QTX_CUDA_BF16_PER_PRODUCT = 2 /* bf16 GEMM inputs, every operand rounded at its product */
} qtx_cuda_precision;

/* A backend on GPU `device` with the GEMMs of `precision` (a qtx_cuda_precision): 0, or -1
 * with the reason in why (no device, no memory). */
int qtx_backend_cuda_create(qtx_backend *out, int device, int precision, char *why, size_t cap);
/* The cudaStream_t its operations run on: other work on its buffers (the optimizer) goes
 * there too, or waits for it. */
void *qtx_backend_cuda_stream(const qtx_backend *be);
/* Frees what create made; the models on it must be destroyed first. */
void qtx_backend_cuda_free(qtx_backend *be);

#endif
