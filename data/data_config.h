/* data_config.h: where training tokens come from and how they are batched. */
#ifndef QTX_DATA_CONFIG_H
#define QTX_DATA_CONFIG_H

#include <stdint.h>

#define QTX_PATH_MAX 1024

typedef struct qtx_data_config {
    char train[QTX_PATH_MAX]; /* glob of training shard files */
    char val[QTX_PATH_MAX];   /* glob of validation shard files; empty: no validation */
    int seq_len;
    int global_batch; /* sequences per optimizer step, whatever the layout */
    int micro_batch;  /* sequences per forward/backward on one rank */
    uint64_t seed;    /* sample order */
} qtx_data_config;

#endif
