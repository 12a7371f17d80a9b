/* test_optim_adamw.c: ten AdamW steps (cosine schedule with warmup, global-norm clipping,
 * decay on 2-D weights only) against the PyTorch reference's losses, learning rates, norms
 * and final weights; the batch runs as micro-batches of one sequence, so gradient
 * accumulation is checked too. Also the schedules' shapes. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "adamw.h"
#include "fixture.h"
#include "model.h"
#include "schedule.h"
#include "testutil.h"

static void check_adamw(const char *path) {
    qtx_fixture f;
    T_CHECK(qtx_fixture_load(&f, path) == 0, "cannot load %s", path);
    if (!f.n) return;
    qtx_model_config cfg;
    int B, T;
    qtx_fixture_model_config(&f, &cfg, &B, &T);
    const qtx_fixture_tensor *ot = qtx_fixture_get(&f, "optim");
    const qtx_fixture_tensor *tok = qtx_fixture_get(&f, "adamw_tokens");
    const qtx_fixture_tensor *losses = qtx_fixture_get(&f, "adamw_losses");
    const qtx_fixture_tensor *lrs = qtx_fixture_get(&f, "adamw_lrs");
    const qtx_fixture_tensor *gnorms = qtx_fixture_get(&f, "adamw_gnorms");
    T_CHECK(ot && tok && losses && lrs && gnorms, "%s: missing AdamW records", path);
    if (!ot || !tok || !losses || !lrs || !gnorms) goto done;
    const float *o = ot->data;
    qtx_optim_config oc = {0};
    oc.lr = o[0];
    oc.min_lr = o[1];
    oc.warmup_steps = (int)o[2];
    const int total = (int)o[3];
    oc.beta1 = o[4];
    oc.beta2 = o[5];
    oc.eps = o[6];
    oc.weight_decay = o[7];
    oc.grad_clip = o[8];
    oc.schedule = QTX_SCHED_COSINE;

    qtx_shard_spec spec = qtx_shard_spec_full(&cfg);
    qtx_model m;
    qtx_model_create(&m, &cfg, &spec, 1, T); /* micro-batches of one sequence */
    qtx_fixture_copy_tensors(&f, "", &m.layout, m.params);
    const int64_t n = m.layout.n_floats;
    float *mom = calloc((size_t)n, sizeof(float)), *vel = calloc((size_t)n, sizeof(float));
    const int64_t ntok = (int64_t)B * T;
    for (int s = 0; s < total; s++) {
        const int32_t *batch = (const int32_t *)tok->data + (int64_t)s * B * (T + 1);
        qtx_model_zero_grads(&m);
        double loss = 0.0;
        for (int b = 0; b < B; b++)
            loss += qtx_model_train_step(&m, batch + (int64_t)b * (T + 1), 1.0f / (float)ntok);
        loss /= (double)ntok;
        const double gnorm = sqrt(qtx_sum_squares(m.grads, n));
        const double lr = qtx_lr_at(&oc, s, total);
        const float want_loss = ((float *)losses->data)[s], want_lr = ((float *)lrs->data)[s];
        const float want_gn = ((float *)gnorms->data)[s];
        T_CHECK(fabs(loss - want_loss) <= 1e-4 * fabs(want_loss), "%s step %d: loss %.9g vs %.9g",
                path, s, loss, want_loss);
        T_CHECK(fabs(lr - want_lr) <= 1e-6 * fabs(want_lr), "%s step %d: lr %.9g vs %.9g", path, s,
                lr, want_lr);
        T_CHECK(fabs(gnorm - want_gn) <= 1e-4 * fabs(want_gn), "%s step %d: grad norm %.9g vs %.9g",
                path, s, gnorm, want_gn);
        const float clip = qtx_clip_scale(gnorm, oc.grad_clip);
        for (int i = 0; i < m.layout.n_tensors; i++) {
            const qtx_tensor_desc *t = &m.layout.tensors[i];
            qtx_adamw_update(m.params + t->offset, m.grads + t->offset, mom + t->offset,
                             vel + t->offset, t->numel, lr, t->decay ? oc.weight_decay : 0.0, &oc,
                             s + 1, clip);
        }
    }
    char name[160];
    for (int i = 0; i < m.layout.n_tensors; i++) {
        const qtx_tensor_desc *t = &m.layout.tensors[i];
        snprintf(name, sizeof name, "final.%s", t->name);
        const qtx_fixture_tensor *w = qtx_fixture_get(&f, name);
        T_CHECK(w && w->numel == t->numel, "%s: %s missing", path, name);
        if (!w) continue;
        double e = qtx_rel_err(m.params + t->offset, w->data, t->numel);
        T_CHECK(e < 1e-4, "%s: %s after %d steps rel err %.3g", path, name, total, e);
    }
    free(mom);
    free(vel);
    qtx_model_destroy(&m);
done:
    qtx_fixture_free(&f);
}

static void check_schedules(void) {
    qtx_optim_config c = {0};
    c.lr = 1.0;
    c.min_lr = 0.1;
    c.warmup_steps = 10;
    c.decay_frac = 0.2;
    const int total = 110;
    c.schedule = QTX_SCHED_COSINE;
    T_CHECK(fabs(qtx_lr_at(&c, 0, total) - 0.1) < 1e-12, "warmup starts at lr/warmup");
    T_CHECK(fabs(qtx_lr_at(&c, 9, total) - 1.0) < 1e-12, "warmup ends at lr");
    T_CHECK(fabs(qtx_lr_at(&c, 10, total) - 1.0) < 1e-12, "cosine starts at lr");
    T_CHECK(fabs(qtx_lr_at(&c, 60, total) - 0.55) < 1e-12, "cosine midpoint");
    T_CHECK(fabs(qtx_lr_at(&c, 110, total) - 0.1) < 1e-12, "cosine ends at min_lr");
    c.schedule = QTX_SCHED_LINEAR;
    T_CHECK(fabs(qtx_lr_at(&c, 60, total) - 0.55) < 1e-12, "linear midpoint");
    c.schedule = QTX_SCHED_WSD;
    T_CHECK(fabs(qtx_lr_at(&c, 80, total) - 1.0) < 1e-12, "wsd stable phase");
    T_CHECK(fabs(qtx_lr_at(&c, 100, total) - 0.55) < 1e-12, "wsd decay midpoint");
    T_CHECK(fabs(qtx_lr_at(&c, 110, total) - 0.1) < 1e-12, "wsd ends at min_lr");
    c.schedule = QTX_SCHED_CONSTANT;
    T_CHECK(fabs(qtx_lr_at(&c, 100, total) - 1.0) < 1e-12, "constant");
    T_CHECK(qtx_clip_scale(0.5, 1.0) == 1.0f, "no clip below max");
    T_CHECK(fabs(qtx_clip_scale(4.0, 1.0) - 0.25f) < 1e-6, "clip to max");
    T_CHECK(qtx_clip_scale(4.0, 0.0) == 1.0f, "clip disabled");
}

int main(void) {
    check_schedules();
    check_adamw("tests/fixtures/gqa_untied.qfx");
    check_adamw("tests/fixtures/mha_tied.qfx");
    return qtx_test_done("test_optim_adamw");
}
