/* cuda_backend.h: the CUDA backend of the model (core/backend.h, issue #7): device memory
 * from cudaMalloc, every operation on one stream of one GPU, the fp32 kernels of
 * cuda_kernels.h, cuda_attention.h and cuda_xent.h, and cuBLASLt GEMMs either in fp32 (so a
 * model on it can be held against the CPU backend within fp32 rounding) or, mixed precision,
 * with both inputs rounded to bf16 and fp32 accumulation and output (the tensor cores' path;
 * parameters, gradients and activations stay fp32). Built with QTX_CUDA only.
 *
 * bf16 today converts both GEMM operands on every call into a scratch that grows once, on
 * the first step; keeping bf16 copies of the weights between optimizer steps is to come.
 */
#ifndef QTX_CUDA_BACKEND_H
#define QTX_CUDA_BACKEND_H

#include <stddef.h>

#include "backend.h"

/* GPUs visible to this process: 0 with the reason in why when none (no driver, no device). */
int qtx_cuda_device_count(char *why, size_t cap);

/* GPU `device`'s PCI bus id ("0000:3b:00.0"): 0, or -1 with the reason in why. */
int qtx_cuda_device_bus_id(int device, char *out, size_t cap, char *why, size_t why_cap);

/* A backend on GPU `device`, with bf16 GEMM inputs when bf16: 0, or -1 with the reason in
 * why (no device, no memory). */
int qtx_backend_cuda_create(qtx_backend *out, int device, int bf16, char *why, size_t cap);
/* The cudaStream_t its operations run on: other work on its buffers (the optimizer) goes
 * there too, or waits for it. */
void *qtx_backend_cuda_stream(const qtx_backend *be);
/* Frees what create made; the models on it must be destroyed first. */
void qtx_backend_cuda_free(qtx_backend *be);

#endif
