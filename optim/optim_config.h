/* optim_config.h: optimizer and learning-rate schedule settings. */
#ifndef QTX_OPTIM_CONFIG_H
#define QTX_OPTIM_CONFIG_H

typedef enum qtx_schedule {
    QTX_SCHED_COSINE = 0, /* linear warmup, cosine decay to min_lr at the last step */
    QTX_SCHED_LINEAR,     /* linear warmup, linear decay to min_lr */
    QTX_SCHED_WSD,        /* warmup, stable at lr, linear decay over the last decay_frac */
    QTX_SCHED_CONSTANT,   /* linear warmup, then lr */
} qtx_schedule;

typedef struct qtx_optim_config {
    double lr;
    double min_lr;
    int warmup_steps;
    qtx_schedule schedule;
    double decay_frac; /* WSD only: share of steps spent decaying */
    double beta1;
    double beta2;
    double eps;
    double weight_decay; /* decoupled, on 2-D weights only */
    double grad_clip;    /* global L2 norm; 0 disables */
    int max_skips;       /* consecutive non-finite steps before the run stops */
} qtx_optim_config;

#endif
