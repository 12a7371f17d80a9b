/* cuda_launch.h: what the .cu files of core/ share about launching: the block size of
 * elementwise kernels, a grid for n elements (grid-stride loops cover the rest), and the check
 * after a launch. Internal: included by .cu files only. */
#ifndef QTX_CUDA_LAUNCH_H
#define QTX_CUDA_LAUNCH_H

#include <cuda_runtime.h>
#include <stdint.h>
#include <stdio.h>

#define QTX_EW_THREADS 256 /* threads per block of elementwise kernels */

/* Blocks for n elements, capped (a grid-stride loop takes the rest). */
static inline unsigned qtx_grid_for(int64_t n) {
    const int64_t b = (n + QTX_EW_THREADS - 1) / QTX_EW_THREADS;
    return (unsigned)(b < 65535 * 32 ? b : 65535 * 32);
}

/* 0, or -1 with the last launch's error in why. */
static inline int qtx_launched(const char *what, char *why, size_t cap) {
    const cudaError_t err = cudaGetLastError();
    if (err == cudaSuccess) return 0;
    if (why && cap) snprintf(why, cap, "%s: %s", what, cudaGetErrorString(err));
    return -1;
}

#endif
