/* cuda_check.h: how host code that drives the GPU stops on a device failure (QTX_CHECK with the
 * CUDA reason): CU for a CUDA runtime call, CUDA_OK for a qtx_cuda_* call given WHY for its
 * reason. Operations fail only when the device does, never on input. Internal: included by
 * core/cuda_backend.c and infer/cuda_infer_model.c. */
#ifndef QTX_CUDA_CHECK_H
#define QTX_CUDA_CHECK_H

#include <cuda_runtime_api.h>

#include "check.h"

#define CU(call)                                                                                   \
    QTX_CHECK((call) == cudaSuccess, "cuda: %s", cudaGetErrorString(cudaGetLastError()))
/* A qtx_cuda_* call: it returns 0, or -1 and writes its reason through WHY. */
#define CUDA_OK(call)                                                                              \
    do {                                                                                           \
        char why_[256] = "";                                                                       \
        QTX_CHECK((call) == 0, "cuda: %s", why_);                                                  \
    } while (0)
#define WHY why_, sizeof why_

#endif
