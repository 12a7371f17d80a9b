/* trainer.h: the training loop of `qtx train`: data, model, optimizer, evaluation and
 * reporting, in that order, for one rank. */
#ifndef QTX_TRAINER_H
#define QTX_TRAINER_H

#include "check.h"
#include "config.h"

/* Runs cfg to completion. Bad input (data, paths) returns QTX_ERR_INPUT before any file is
 * written; a run stopped by non-finite steps returns QTX_ERR_RUNTIME. */
int qtx_train_run(const qtx_config *cfg, qtx_err *e);

#endif
