/* ckpt_train.h: saving and resuming a training run's state through the checkpoint store:
 * parameters, AdamW moments, step, data cursor, the tokenizer, and the run's settings.
 *
 * Every rank writes in parallel what it alone owns: for each gradient unit (zero.h), its DP
 * part of the parameters and moments; a tensor replicated over TP is written by TP rank 0
 * only, and a tied head's copy on the last stage not at all. Pieces are named by the tensor's
 * global TP block, so a run on any other (dp, tp, pp, zero) reads exactly the slices it owns.
 */
#ifndef QTX_CKPT_TRAIN_H
#define QTX_CKPT_TRAIN_H

#include <cjson/cJSON.h>

#include "check.h"
#include "engine.h"
#include "loader.h"

typedef struct qtx_ckpt_save_args {
    const char *ckpt_root; /* out_dir/ckpt */
    int step;              /* completed optimizer steps */
    qtx_loader_state loader;
    int skips;                  /* consecutive skipped steps at the save */
    const char *tokenizer_path; /* copied into the checkpoint when it exists; may be NULL */
    const char *tokenizer_hash;
    const cJSON *settings; /* the run's settings (launch/: key -> value text); may be NULL */
    int keep;              /* checkpoints kept after this one is published; <= 0: all */
    const char *protect;   /* never pruned (the one the run resumed from); may be NULL */
} qtx_ckpt_save_args;

/* Collective over the engine's world. Writes out/ckpt/.tmp_step_N, publishes it as
 * step_N (8 digits), updates latest, prunes. A step directory that already exists is kept,
 * never overwritten (the save is skipped with a warning). Returns the agreed code; on
 * failure the previous checkpoint and latest are untouched. *seconds, *bytes (may be NULL):
 * wall time and bytes this rank wrote. */
int qtx_ckpt_save(qtx_engine *eng, const qtx_ckpt_save_args *a, double *seconds, int64_t *bytes,
                  qtx_err *e);

typedef struct qtx_ckpt_resume {
    int step;
    qtx_loader_state loader;
    int skips;
    char tokenizer_hash[80];
    int64_t bytes_read; /* by this rank: parameters and moments */
    cJSON *meta;        /* the manifest, owned: cJSON_Delete it */
} qtx_ckpt_resume;

/* Collective: loads step dir `dir` into the engine (parameters, and the moments of the
 * elements this rank owns) whatever layout saved it. The model must equal the saved one
 * (else one line naming the first differing key); every checksum touched is verified. */
int qtx_ckpt_load(qtx_engine *eng, const char *dir, qtx_ckpt_resume *out, qtx_err *e);

/* The model config a checkpoint's manifest records (meta: qtx_ckpt_meta), range-checked;
 * dir names the checkpoint in messages. */
int qtx_ckpt_model_from_meta(const cJSON *meta, const char *dir, qtx_model_config *c, qtx_err *e);

/* Reads the whole of tensor `name` ("param", "adam_m" or "adam_v") into dst (rows x cols of
 * its global shape), for tests and tools. */
int qtx_ckpt_read_full(const char *dir, const char *kind, const char *name, float **dst,
                       int64_t shape[2], qtx_err *e);

#endif
