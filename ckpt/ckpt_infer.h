/* ckpt_infer.h: a training checkpoint as an inference model: every parameter gathered whole
 * (whatever layout saved it) in f32, plus the tokenizer the checkpoint carries. */
#ifndef QTX_CKPT_INFER_H
#define QTX_CKPT_INFER_H

#include "check.h"
#include "infer_model.h"

/* dir: anything qtx_ckpt_resolve accepts (a step dir, a checkpoint root, a run's out_dir). */
int qtx_infer_load_ckpt(qtx_infer_model *m, const char *dir, qtx_err *e);

/* The model config a checkpoint's manifest records. */
int qtx_ckpt_model_config(const char *step_dir, qtx_model_config *c, qtx_err *e);

#endif
