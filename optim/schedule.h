/* schedule.h: learning rate as a function of the optimizer step. */
#ifndef QTX_SCHEDULE_H
#define QTX_SCHEDULE_H

#include "optim_config.h"

/* Learning rate of 0-based optimizer step `step` out of total_steps. Warmup is linear from
 * lr/warmup to lr over warmup_steps; then cosine, linear or WSD decay heads for min_lr, reached at
 * step total_steps (nanoGPT convention); constant stays at lr. */
double qtx_lr_at(const qtx_optim_config *c, int step, int total_steps);

#endif
