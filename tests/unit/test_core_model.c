/* test_core_model.c: the model's forward and backward against the PyTorch reference
 * (tests/reference/llama_ref.py): logits and loss within 1e-5 relative, every gradient
 * within 1e-4 relative; the same batch twice gives bit-identical results. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "model.h"
#include "testutil.h"

static void check_fixture(const char *path) {
    qtx_fixture f;
    qtx_model_config cfg;
    int B, T;
    if (qtx_fixture_open_model(&f, path, &cfg, &B, &T)) return;
    qtx_shard_spec spec = qtx_shard_spec_full(&cfg);
    qtx_model m;
    qtx_model_create(&m, &cfg, &spec, B, T);
    T_CHECK(qtx_fixture_copy_tensors(&f, "", &m.layout, m.params) == 0, "%s: weights", path);
    const qtx_fixture_tensor *tok = qtx_fixture_get(&f, "tokens");
    const qtx_fixture_tensor *logits_ref = qtx_fixture_get(&f, "logits");
    const qtx_fixture_tensor *loss_ref = qtx_fixture_get(&f, "loss");
    T_CHECK(tok && logits_ref && loss_ref, "%s: missing records", path);
    if (!tok || !logits_ref || !loss_ref) goto out;
    T_CHECK(qtx_model_check_tokens(&m, tok->data, tok->numel, NULL) == QTX_OK, "token range");

    float *logits = malloc((size_t)logits_ref->numel * sizeof(float));
    qtx_model_logits(&m, tok->data, logits);
    double e = qtx_rel_err(logits, logits_ref->data, logits_ref->numel);
    T_CHECK(e < 1e-5, "%s: logits rel err %.3g", path, e);
    free(logits);

    const int64_t ntok = (int64_t)B * T;
    qtx_model_zero_grads(&m);
    double loss = qtx_model_train_step(&m, tok->data, 1.0f / (float)ntok) / (double)ntok;
    float lossf = (float)loss;
    e = qtx_rel_err(&lossf, loss_ref->data, 1);
    T_CHECK(e < 1e-5, "%s: loss %.9g vs %.9g", path, loss, ((float *)loss_ref->data)[0]);

    char name[160];
    for (int i = 0; i < m.layout.n_tensors; i++) {
        const qtx_tensor_desc *t = &m.layout.tensors[i];
        snprintf(name, sizeof name, "grad.%s", t->name);
        const qtx_fixture_tensor *g = qtx_fixture_get(&f, name);
        T_CHECK(g && g->numel == t->numel, "%s: %s missing", path, name);
        if (!g) continue;
        e = qtx_rel_err(m.grads + t->offset, g->data, t->numel);
        T_CHECK(e < 1e-4, "%s: %s rel err %.3g", path, name, e);
    }

    /* Determinism: the same step again gives the same bits. */
    float *g1 = malloc((size_t)m.layout.n_floats * sizeof(float));
    memcpy(g1, m.grads, (size_t)m.layout.n_floats * sizeof(float));
    qtx_model_zero_grads(&m);
    double loss2 = qtx_model_train_step(&m, tok->data, 1.0f / (float)ntok) / (double)ntok;
    T_CHECK(loss2 == loss, "%s: loss not reproducible", path);
    T_CHECK(memcmp(g1, m.grads, (size_t)m.layout.n_floats * sizeof(float)) == 0,
            "%s: gradients not bit-identical run to run", path);
    free(g1);
out:
    qtx_model_destroy(&m);
    qtx_fixture_free(&f);
}

int main(void) {
    check_fixture("tests/fixtures/gqa_untied.qfx");
    check_fixture("tests/fixtures/mha_tied.qfx");
    return qtx_test_done("test_core_model");
}
