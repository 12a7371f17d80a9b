/* config.h: the whole run configuration, parsed from YAML against one schema table.
 *
 * The schema (config_schema.c) is the single source of truth: the parser, `--set`,
 * `--print-config` and docs/CONFIG.md are all driven by it.
 */
#ifndef QTX_CONFIG_H
#define QTX_CONFIG_H

#include <stdint.h>
#include <stddef.h>
#include <stdio.h>

#include "check.h"
#include "data_config.h"
#include "model_config.h"
#include "optim_config.h"
#include "parallel_config.h"

typedef struct qtx_train_config {
    int steps;
    uint64_t seed; /* weight initialisation */
    char out_dir[QTX_PATH_MAX];
    int log_every;
    int eval_every; /* 0 disables validation */
    int eval_batches;
    int ckpt_every; /* 0: only the final save */
    int ckpt_keep;
    char resume[QTX_PATH_MAX]; /* "", "auto", "latest" or a path */
    double peak_flops;         /* per rank, FLOP/s, for MFU; 0 means measure at start */
} qtx_train_config;

/* staged: the CPU kernels through the device code path (core/backend.h, qtx_backend_cpu_staged) */
typedef enum qtx_device_type {
    QTX_DEVICE_CPU = 0,
    QTX_DEVICE_CUDA,
    QTX_DEVICE_STAGED
} qtx_device_type;
typedef enum qtx_precision { QTX_PRECISION_FP32 = 0, QTX_PRECISION_BF16 } qtx_precision;

typedef struct qtx_device_config {
    qtx_device_type type;
    int threads; /* per rank; 0 means cores / ranks on this node */
    qtx_precision precision;
    int bf16_param_copy; /* bf16: weights from one bf16 copy of the parameters */
} qtx_device_config;

/* "cpu", "cuda", "staged" */
const char *qtx_device_type_name(qtx_device_type t);

typedef struct qtx_config {
    qtx_model_config model;
    qtx_data_config data;
    qtx_optim_config optim;
    qtx_train_config train;
    qtx_parallel_config parallel;
    qtx_device_config device;
} qtx_config;

/* Every field at its schema default. */
void qtx_config_defaults(qtx_config *c);

/* Parses YAML file `path` over the defaults, then applies each "section.key=value" of
 * `sets` (n_sets of them), then validates the whole. On bad input returns QTX_ERR_INPUT with
 * e->msg like "cfg.yaml:3:5: unknown key 'model.dimm' (did you mean 'model.dim'?)"; errors
 * from a --set start "--set model.dim=abc: ". A NULL path means defaults plus sets only. */
int qtx_config_load(qtx_config *c, const char *path, const char *const *sets, int n_sets,
                    qtx_err *e);

/* Range and cross-field checks (dim % n_heads, ...); called by qtx_config_load, which also
 * points each error at the line (or --set) that set the key. Here messages start with
 * "<path>: " (nothing when path is NULL). */
int qtx_config_validate(const qtx_config *c, const char *path, qtx_err *e);

/* Writes the effective config as YAML that qtx_config_load accepts. */
void qtx_config_print(const qtx_config *c, FILE *f);

/* Writes docs/CONFIG.md (Markdown) from the schema table. */
void qtx_config_write_docs(FILE *f);

#endif
