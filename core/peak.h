/* peak.h: measured GEMM throughput, the default peak for MFU. */
#ifndef QTX_PEAK_H
#define QTX_PEAK_H

/* FLOP/s of a 1024^3 fp32 GEMM on the current thread count (best of 4 after a warmup). */
double qtx_measure_gemm_flops(void);

#endif
