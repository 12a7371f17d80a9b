/* trainer.c: the step loop.
 *
 * Per optimizer step: the loader hands this rank its global_batch / dp samples; they run as
 * micro-batches of data.micro_batch, accumulating gradients scaled by 1 / (tokens in the
 * global batch), so the update does not depend on how the batch was split. Then the global
 * gradient norm, clipping, the schedule's learning rate and AdamW. A non-finite loss or norm
 * skips the update; optim.max_skips in a row stop the run.
 */
#include "trainer.h"

#include <errno.h>
#include <math.h>
#include <omp.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "adamw.h"
#include "kernels.h"
#include "loader.h"
#include "log.h"
#include "metrics.h"
#include "model.h"
#include "peak.h"
#include "schedule.h"
#include "sys.h"

static int threads_for_rank(const qtx_config *cfg, int local_ranks) {
    if (cfg->device.threads > 0) return cfg->device.threads;
    int t = qtx_n_cores() / (local_ranks > 0 ? local_ranks : 1);
    return t > 0 ? t : 1;
}

typedef struct run {
    const qtx_config *cfg;
    qtx_model model;
    float *m, *v; /* AdamW moments, same layout as the parameters */
    qtx_loader *train, *val;
    int32_t *batch;    /* this rank's samples of one step */
    int local_samples; /* global_batch / dp */
    qtx_metrics metrics;
} run;

static double evaluate(run *r, qtx_err *e, int *n_batches, int *rc) {
    const qtx_config *c = r->cfg;
    *rc = QTX_OK;
    qtx_loader_state start = {0, 0};
    if ((*rc = qtx_loader_set_state(r->val, start, e)) != QTX_OK) return NAN;
    const int64_t per_batch = (int64_t)c->data.micro_batch * c->data.seq_len;
    double total = 0.0;
    int done = 0;
    for (int i = 0; i < c->train.eval_batches; i++) {
        if ((*rc = qtx_loader_next(r->val, r->batch, e)) != QTX_OK) return NAN;
        total += qtx_model_eval_loss(&r->model, r->batch);
        done++;
    }
    *n_batches = done;
    return done ? total / (double)(per_batch * done) : NAN;
}

static void apply_adamw(run *r, int step, double lr, float clip) {
    const qtx_param_layout *l = &r->model.layout;
    for (int i = 0; i < l->n_tensors; i++) {
        const qtx_tensor_desc *t = &l->tensors[i];
        qtx_adamw_update(r->model.params + t->offset, r->model.grads + t->offset, r->m + t->offset,
                         r->v + t->offset, t->numel, lr,
                         t->decay ? r->cfg->optim.weight_decay : 0.0, &r->cfg->optim, step + 1,
                         clip);
    }
}

static int open_loaders(run *r, qtx_err *e) {
    const qtx_config *c = r->cfg;
    qtx_loader_options o = {0};
    o.glob = c->data.train;
    o.seq_len = c->data.seq_len;
    o.global_batch = c->data.global_batch;
    o.dp_rank = 0;
    o.dp_size = 1;
    o.seed = c->data.seed;
    o.shuffle = 1;
    o.tokenizer_hash = "";
    o.vocab_size = c->model.vocab_size;
    o.prefetch = 1;
    int rc = qtx_loader_open(&r->train, &o, e);
    if (rc) return rc;
    if (c->data.val[0] && c->train.eval_every > 0) {
        o.glob = c->data.val;
        o.tokenizer_hash = qtx_loader_tokenizer_hash(r->train); /* val must share train's */
        o.global_batch = c->data.micro_batch;
        o.shuffle = 0;
        o.prefetch = 0;
        rc = qtx_loader_open(&r->val, &o, e);
    }
    return rc;
}

int qtx_train_run(const qtx_config *cfg, qtx_err *e) {
    run r;
    memset(&r, 0, sizeof r);
    r.cfg = cfg;
    const qtx_data_config *dc = &cfg->data;
    const int threads = threads_for_rank(cfg, 1);
    omp_set_num_threads(threads);

    /* Everything that can fail on bad input happens before out_dir is touched. */
    int rc = open_loaders(&r, e);
    if (rc) goto out;
    if ((rc = qtx_make_dirs(cfg->train.out_dir, e))) goto out;
    if ((rc = qtx_metrics_open(&r.metrics, cfg->train.out_dir, 0, cfg->train.log_every, e)))
        goto out;

    qtx_shard_spec spec = qtx_shard_spec_full(&cfg->model);
    qtx_model_create(&r.model, &cfg->model, &spec, dc->micro_batch, dc->seq_len);
    qtx_model_init_weights(&r.model, cfg->train.seed);
    const int64_t n = r.model.layout.n_floats;
    r.m = qtx_alloc_big((size_t)n * sizeof(float));
    r.v = qtx_alloc_big((size_t)n * sizeof(float));
    r.local_samples = dc->global_batch; /* dp = 1 */
    r.batch = qtx_alloc_big((size_t)r.local_samples * (dc->seq_len + 1) * sizeof(int32_t));

    const double peak =
        cfg->train.peak_flops > 0 ? cfg->train.peak_flops : qtx_measure_gemm_flops();
    const double flops_tok = qtx_model_flops_per_token(&cfg->model, dc->seq_len);
    const int64_t step_tokens = (int64_t)dc->global_batch * dc->seq_len;
    const int n_micro = r.local_samples / dc->micro_batch;
    const int64_t sample_len = dc->seq_len + 1;
    qtx_log_info("model: %lld parameters (%.1f MB fp32), %d layers, dim %d; activations %.1f MB",
                 (long long)qtx_model_n_params(&cfg->model), (double)n * 4 / 1e6,
                 cfg->model.n_layers, cfg->model.dim, (double)r.model.arena_bytes / 1e6);
    qtx_log_info("model state per rank: %.1f MB (params %.1f + grads %.1f + AdamW %.1f)",
                 (double)n * 16 / 1e6, (double)n * 4 / 1e6, (double)n * 4 / 1e6,
                 (double)n * 8 / 1e6);
    qtx_log_info("data: %lld tokens, %lld samples per epoch, %lld tokens per step; %d threads; "
                 "MFU peak %.1f GFLOP/s%s",
                 (long long)qtx_loader_total_tokens(r.train),
                 (long long)qtx_loader_samples_per_epoch(r.train), (long long)step_tokens, threads,
                 peak / 1e9, cfg->train.peak_flops > 0 ? " (train.peak_flops)" : " (measured)");

    if (r.val) { /* where validation starts, for comparison with every later evaluation */
        int nb = 0;
        double vl = evaluate(&r, e, &nb, &rc);
        if (rc) goto out;
        qtx_metrics_eval(&r.metrics, 0, vl, nb);
    }
    const double t_start = qtx_now_s();
    int skips = 0;
    for (int step = 0; step < cfg->train.steps; step++) {
        const double t0 = qtx_now_s();
        if ((rc = qtx_loader_next(r.train, r.batch, e))) goto out;
        /* No token range check here: the loader checked every id against its shard's
         * vocab_size, and every shard's vocab_size against the model's at open. */
        qtx_model_zero_grads(&r.model);
        double loss_sum = 0.0;
        for (int mb = 0; mb < n_micro; mb++)
            loss_sum +=
                qtx_model_train_step(&r.model, r.batch + (int64_t)mb * dc->micro_batch * sample_len,
                                     1.0f / (float)step_tokens);
        const double loss = loss_sum / (double)step_tokens;
        const double gnorm = sqrt(qtx_sum_squares(r.model.grads, n));
        const double lr = qtx_lr_at(&cfg->optim, step, cfg->train.steps);
        const int skipped = !isfinite(loss) || !isfinite(gnorm);
        if (skipped) {
            skips++;
            qtx_log_warn(
                "step %d: non-finite %s; update skipped (%d in a row, limit optim.max_skips = %d)",
                step + 1, isfinite(loss) ? "gradient" : "loss", skips, cfg->optim.max_skips);
        } else {
            skips = 0;
            apply_adamw(&r, step, lr, qtx_clip_scale(gnorm, cfg->optim.grad_clip));
        }
        const double t1 = qtx_now_s();
        qtx_step_stats s = {0};
        s.step = step + 1;
        s.total_steps = cfg->train.steps;
        s.loss = loss;
        s.lr = lr;
        s.grad_norm = gnorm;
        s.step_s = t1 - t0;
        s.tokens_per_s = (double)step_tokens / s.step_s;
        s.mfu = s.tokens_per_s * flops_tok / peak;
        s.elapsed_s = t1 - t_start;
        s.skipped = skipped;
        qtx_metrics_step(&r.metrics, &s);
        if (skips >= cfg->optim.max_skips) {
            rc = qtx_fail(e, QTX_ERR_RUNTIME,
                          "%d consecutive non-finite steps at step %d; lower optim.lr or "
                          "raise optim.warmup_steps",
                          skips, step + 1);
            goto out;
        }
        const int last = step + 1 == cfg->train.steps;
        if (r.val && ((step + 1) % cfg->train.eval_every == 0 || last)) {
            int nb = 0;
            double vl = evaluate(&r, e, &nb, &rc);
            if (rc) goto out;
            qtx_metrics_eval(&r.metrics, step + 1, vl, nb);
        }
    }
out:
    qtx_metrics_close(&r.metrics);
    if (r.train) qtx_loader_close(r.train);
    if (r.val) qtx_loader_close(r.val);
    if (r.model.params) {
        const size_t bytes = (size_t)r.model.layout.n_floats * sizeof(float);
        qtx_free_big(r.m, bytes);
        qtx_free_big(r.v, bytes);
        qtx_free_big(r.batch, (size_t)r.local_samples * (dc->seq_len + 1) * sizeof(int32_t));
        qtx_model_destroy(&r.model);
    }
    return rc;
}
