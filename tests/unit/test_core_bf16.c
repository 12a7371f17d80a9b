/* test_core_bf16.c: bf16 rounding on the CPU and the parameters' bf16 copy (core/bf16.h) in
 * the staged backend's emulated bf16 products (core/backend.h).
 *   - qtx_bf16_of rounds to nearest even, ties both ways, signs, overflow to infinity, NaN
 *     to 0x7FFF (as CUDA's __float2bfloat16_rn);
 *   - qtx_bf16_params_find and _touch: inside, straddling, outside;
 *   - a model on the staged bf16 backend with the copy equals one that rounds per product,
 *     bit for bit, across AdamW updates (the backend's own writes) and across a write beside
 *     the backend followed by params_changed; without params_changed the copy is stale and
 *     the losses part (so the comparison can fail); bf16's loss is within 1e-2 of fp32's and
 *     not equal to it;
 *   - a backend keeps the newest model's binding when an older model on it is destroyed. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "bf16.h"
#include "fixture.h"
#include "model.h"
#include "testutil.h"

static float f32_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static void test_rounding(void) {
    static const struct {
        uint32_t in;
        uint16_t out;
    } cases[] = {
        {0x3F800000u, 0x3F80u}, /* 1 */
        {0x3F808000u, 0x3F80u}, /* halfway, to the even 0x3F80 */
        {0x3F818000u, 0x3F82u}, /* halfway, to the even 0x3F82 */
        {0x3F808001u, 0x3F81u}, /* above halfway */
        {0x3F807FFFu, 0x3F80u}, /* below halfway */
        {0xBF808001u, 0xBF81u}, /* negative */
        {0x00000001u, 0x0000u}, /* the smallest subnormal rounds to zero */
        {0x7F7FFFFFu, 0x7F80u}, /* the largest float rounds up to infinity */
        {0xFF800000u, 0xFF80u}, /* -infinity */
        {0x7FC00001u, 0x7FFFu}, /* NaN */
        {0xFFA00000u, 0x7FFFu}, /* a signalling NaN */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const uint16_t got = qtx_bf16_of(f32_bits(cases[i].in));
        T_CHECK(got == cases[i].out, "bf16 of 0x%08x: 0x%04x, want 0x%04x", cases[i].in, got,
                cases[i].out);
    }
    float x[3] = {f32_bits(0x3F808001u), -2.5f, 1e-3f}, y[3];
    qtx_bf16_round(y, x, 3);
    T_CHECK(y[0] == f32_bits(0x3F810000u) && y[1] == -2.5f &&
                y[2] == qtx_f32_of_bf16(qtx_bf16_of(1e-3f)),
            "qtx_bf16_round: %g %g %g", (double)y[0], (double)y[1], (double)y[2]);
}

static void test_params_range(void) {
    float buf[101] = {0}, other[4] = {0}; /* the parameters are buf[1 .. 101) */
    float *p = buf + 1;
    uint16_t copy[100];
    qtx_bf16_params b = {.base = p, .n = 100, .copy = copy};
    T_CHECK(qtx_bf16_params_find(&b, p + 10, 5) == 10, "inside");
    T_CHECK(qtx_bf16_params_find(&b, p + 95, 5) == 95, "up to the end");
    T_CHECK(qtx_bf16_params_find(&b, p + 98, 5) == -1, "straddling the end");
    T_CHECK(qtx_bf16_params_find(&b, buf, 2) == -1, "straddling the start");
    T_CHECK(qtx_bf16_params_find(&b, other, 1) == -1, "elsewhere");
    b.copy = NULL;
    T_CHECK(qtx_bf16_params_find(&b, p, 1) == -1, "no copy kept");
    qtx_bf16_params_touch(&b, other, sizeof other);
    qtx_bf16_params_touch(&b, buf, sizeof(float));
    T_CHECK(!b.stale, "writes elsewhere, and just before, leave the copy");
    qtx_bf16_params_touch(&b, (char *)(p + 99) + 3, 1);
    T_CHECK(b.stale, "a write into the last byte makes it stale");
    b.stale = 0;
    qtx_bf16_params_touch(&b, buf, 2 * sizeof(float));
    T_CHECK(b.stale, "a write straddling the start makes it stale");
}

/* One model on a backend, with its AdamW moments. */
typedef struct run {
    qtx_backend be;
    qtx_model m;
    float *mom, *vel;
    size_t bytes;
} run;

static void run_open(run *r, qtx_backend be, const qtx_model_config *cfg, int B, int T,
                     const float *weights) {
    r->be = be;
    const qtx_shard_spec spec = qtx_shard_spec_full(cfg);
    qtx_model_options o = {.B = B, .T = T, .n_slots = 1, .backend = &r->be};
    qtx_model_create_ex(&r->m, cfg, &spec, &o);
    r->bytes = (size_t)r->m.layout.n_floats * sizeof(float);
    r->m.be.to_device(&r->m.be, r->m.params, weights, r->bytes);
    r->mom = r->m.be.alloc(&r->m.be, r->bytes);
    r->vel = r->m.be.alloc(&r->m.be, r->bytes);
}

static double run_step(run *r, const int32_t *tok, int64_t ntok) {
    qtx_model_zero_grads(&r->m);
    return qtx_model_train_step(&r->m, tok, 1.0f / (float)ntok) / (double)ntok;
}

static void run_adamw(run *r, int t) {
    const qtx_adamw_step s = {.beta1 = 0.9f,
                              .beta2 = 0.95f,
                              .eps = 1e-8f,
                              .step = 1e-2f / (1.0f - powf(0.9f, (float)t)),
                              .inv_sqrt_bc2 = 1.0f / sqrtf(1.0f - powf(0.95f, (float)t)),
                              .decay = 1.0f,
                              .grad_scale = 1.0f};
    r->m.be.adamw(&r->m.be, r->m.params, r->m.grads, r->mom, r->vel, r->m.layout.n_floats, &s);
}

static void run_close(run *r) {
    r->m.be.free(&r->m.be, r->mom, r->bytes);
    r->m.be.free(&r->m.be, r->vel, r->bytes);
    qtx_model_destroy(&r->m);
    qtx_backend_cpu_free(&r->be);
}

static void test_param_copy(const char *path) {
    qtx_fixture f;
    qtx_model_config cfg;
    int B, T;
    if (qtx_fixture_open_model(&f, path, &cfg, &B, &T)) return;
    const qtx_fixture_tensor *tok = qtx_fixture_get(&f, "tokens");
    T_CHECK(tok != NULL, "%s: no tokens", path);
    if (!tok) {
        qtx_fixture_free(&f);
        return;
    }
    const qtx_shard_spec spec = qtx_shard_spec_full(&cfg);
    qtx_model ref; /* fp32 on the CPU: the weights and the loss to compare with */
    qtx_model_create(&ref, &cfg, &spec, B, T);
    T_CHECK(qtx_fixture_copy_tensors(&f, "", &ref.layout, ref.params) == 0, "%s: weights", path);
    const int64_t ntok = (int64_t)B * T;
    qtx_model_zero_grads(&ref);
    const double l32 = qtx_model_train_step(&ref, tok->data, 1.0f / (float)ntok) / (double)ntok;

    run a, b; /* the copy; rounding per product */
    run_open(&a, qtx_backend_cpu_staged_bf16(qtx_num_threads(), 1), &cfg, B, T, ref.params);
    run_open(&b, qtx_backend_cpu_staged_bf16(qtx_num_threads(), 0), &cfg, B, T, ref.params);
    double la = run_step(&a, tok->data, ntok), lb = run_step(&b, tok->data, ntok);
    T_CHECK(la == lb, "%s: bf16 loss with the copy %.9g, per product %.9g", path, la, lb);
    T_CHECK(fabs(la - l32) <= 1e-2 * fabs(l32) && la != l32, "%s: bf16 loss %.9g, fp32 %.9g", path,
            la, l32);
    for (int t = 1; t <= 3; t++) { /* the backend's own writes */
        run_adamw(&a, t);
        run_adamw(&b, t);
        la = run_step(&a, tok->data, ntok);
        lb = run_step(&b, tok->data, ntok);
        T_CHECK(la == lb, "%s: after update %d: %.9g vs %.9g", path, t, la, lb);
    }
    /* A write beside the backend (staged memory is the host's, as a collective would write
     * it): with params_changed the copy follows; without, it is stale and the losses part. */
    for (int64_t i = 0; i < a.m.layout.n_floats; i += 7) a.m.params[i] = b.m.params[i] *= 0.5f;
    const double stale = run_step(&a, tok->data, ntok);
    lb = run_step(&b, tok->data, ntok);
    T_CHECK(stale != lb, "%s: a stale copy went unnoticed (%.9g)", path, stale);
    a.m.be.params_changed(&a.m.be);
    la = run_step(&a, tok->data, ntok);
    T_CHECK(la == lb, "%s: after params_changed: %.9g vs %.9g", path, la, lb);
    run_close(&a);
    run_close(&b);

    /* Two models on one backend: y's binding replaces x's, and destroying x leaves y's copy
     * in use. Seen through a write beside the backend without params_changed: y then computes
     * what a lone model with a (stale) copy computes, z, not what rounding per product does. */
    qtx_backend be = qtx_backend_cpu_staged_bf16(qtx_num_threads(), 1);
    qtx_model_options o = {.B = B, .T = T, .n_slots = 1, .backend = &be};
    qtx_model x, y;
    qtx_model_create_ex(&x, &cfg, &spec, &o);
    qtx_model_create_ex(&y, &cfg, &spec, &o);
    y.be.to_device(&y.be, y.params, ref.params, (size_t)y.layout.n_floats * sizeof(float));
    qtx_model_destroy(&x);
    run z, w; /* a lone model with the copy; one rounding per product */
    run_open(&z, qtx_backend_cpu_staged_bf16(qtx_num_threads(), 1), &cfg, B, T, ref.params);
    run_open(&w, qtx_backend_cpu_staged_bf16(qtx_num_threads(), 0), &cfg, B, T, ref.params);
    qtx_model_zero_grads(&y);
    double ly = qtx_model_train_step(&y, tok->data, 1.0f / (float)ntok) / (double)ntok;
    double lz = run_step(&z, tok->data, ntok), lw = run_step(&w, tok->data, ntok);
    T_CHECK(ly == lz && lz == lw, "%s: two models on a backend: %.9g %.9g %.9g", path, ly, lz, lw);
    for (int64_t i = 0; i < y.layout.n_floats; i += 7) {
        y.params[i] *= 0.5f;
        z.m.params[i] *= 0.5f;
        w.m.params[i] *= 0.5f;
    }
    qtx_model_zero_grads(&y);
    ly = qtx_model_train_step(&y, tok->data, 1.0f / (float)ntok) / (double)ntok;
    lz = run_step(&z, tok->data, ntok);
    lw = run_step(&w, tok->data, ntok);
    T_CHECK(ly == lz && lz != lw,
            "%s: destroying another model unbound the live one: %.9g, with a copy %.9g, per "
            "product %.9g",
            path, ly, lz, lw);
    run_close(&z);
    run_close(&w);
    qtx_model_destroy(&y);
    qtx_backend_cpu_free(&be);
    qtx_model_destroy(&ref);
    qtx_fixture_free(&f);
}

int main(void) {
    test_rounding();
    test_params_range();
    test_param_copy("tests/fixtures/gqa_untied.qfx");
    test_param_copy("tests/fixtures/mha_tied.qfx");
    return qtx_test_done("test_core_bf16");
}
