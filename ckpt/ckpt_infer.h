/* ckpt_infer.h: a training checkpoint as an inference model: every parameter gathered whole
 * (whatever layout saved it) in f32, plus the tokenizer the checkpoint carries. */
#ifndef QTX_CKPT_INFER_H
#define QTX_CKPT_INFER_H

#include "check.h"
#include "infer_model.h"

/* dir: anything qtx_ckpt_resolve accepts (a step dir, a checkpoint root, a run's out_dir). */
int qtx_infer_load_ckpt(qtx_infer_model *m, const char *dir, qtx_err *e);

#endif
