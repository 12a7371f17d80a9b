/* parallel_config.h: how the world of ranks is split (DESIGN.md, Parallelism). */
#ifndef QTX_PARALLEL_CONFIG_H
#define QTX_PARALLEL_CONFIG_H

#include "data_config.h" /* QTX_PATH_MAX */

typedef struct qtx_parallel_config {
    int dp;            /* data-parallel size; 0 means auto: world / (tp * pp) */
    int tp;            /* tensor-parallel size */
    int pp;            /* pipeline-parallel size */
    int zero;          /* ZeRO stage: 0, 1 or 2 */
    int micro_batches; /* micro-batches per optimizer step per DP rank; 0 means derive */
    char stage_layers[QTX_PATH_MAX]; /* "3,5": layers per pipeline stage; "" means even */
} qtx_parallel_config;

#endif
