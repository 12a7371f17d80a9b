/* trainer.h: the training loop of `qtx train`: data, model, optimizer, evaluation and
 * reporting, in that order, for one rank. */
#ifndef QTX_TRAINER_H
#define QTX_TRAINER_H

#include "check.h"
#include "comm.h"
#include "config.h"

/* Runs cfg to completion. Bad input (data, paths) returns QTX_ERR_INPUT before any file is
 * written; a run stopped by non-finite steps returns QTX_ERR_RUNTIME. */
/* world: every rank of the job (qtx_comm_mpi_init). On error only the rank that should
 * report leaves a message in e (others leave e->msg empty). */
int qtx_train_run(qtx_comm *world, const qtx_config *cfg, qtx_err *e);

#endif
