/* cuda_backend.h: the CUDA backend of the model (core/backend.h, issue #7): device memory
 * from cudaMalloc, every operation on one stream of one GPU, fp32 throughout (cuBLASLt fp32
 * GEMMs, the fp32 kernels of cuda_kernels.h, cuda_attention.h and cuda_xent.h), so a model on
 * it can be held against the CPU backend within fp32 rounding. Built with QTX_CUDA only.
 */
#ifndef QTX_CUDA_BACKEND_H
#define QTX_CUDA_BACKEND_H

#include <stddef.h>

#include "backend.h"

/* A backend on GPU `device`: 0, or -1 with the reason in why (no device, no memory). */
int qtx_backend_cuda_create(qtx_backend *out, int device, char *why, size_t cap);
/* Frees what create made; the models on it must be destroyed first. */
void qtx_backend_cuda_free(qtx_backend *be);

#endif
