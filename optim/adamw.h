/* adamw.h: AdamW over flat float ranges, and the global gradient norm.
 *
 * Works on any [lo, hi) range of the flat parameter buffer, so the same code updates a whole
 * model or one ZeRO shard; the caller says per range whether weight decay applies.
 */
#ifndef QTX_ADAMW_H
#define QTX_ADAMW_H

#include <stdint.h>

#include "kernels.h" /* qtx_adamw_step, qtx_adamw_apply, qtx_sum_squares */
#include "optim_config.h"

/* One AdamW step (torch.optim.AdamW semantics) on n elements: decoupled weight decay
 * p -= lr * wd * p, then the bias-corrected Adam update. t is the 1-based step count;
 * grad_scale multiplies every gradient (clipping). */
void qtx_adamw_update(float *p, const float *g, float *m, float *v, int64_t n, double lr,
                      double weight_decay, const qtx_optim_config *c, int64_t t, float grad_scale);

/* The constants of step t (1-based) for a range with this weight decay, in double, as
 * torch.optim.AdamW computes them; every backend's AdamW applies them. */
qtx_adamw_step qtx_adamw_constants(double lr, double weight_decay, const qtx_optim_config *c,
                                   int64_t t, float grad_scale);

/* 1 when every element is finite. */
int qtx_all_finite(const float *g, int64_t n);

/* The factor that brings a gradient of L2 norm `norm` down to `max_norm` (1 when below or
 * max_norm is 0), as torch.nn.utils.clip_grad_norm_ computes it. */
float qtx_clip_scale(double norm, double max_norm);

#endif
