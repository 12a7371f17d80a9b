/* bench_cuda_step.c: training-step throughput of the model on the CUDA backend (issue #7):
 * forward, backward and an AdamW update on device memory (no clipping), on random tokens;
 * prints one JSON line with tokens/s and MFU. A benchmark, not a test; it needs a GPU.
 *
 *   bench_cuda_step DIM LAYERS HEADS KV_HEADS FFN VOCAB SEQ BATCH STEPS BF16 [PEAK_TFLOPS]
 *
 * FLOPs per token are qtx_model_flops_per_token (6 N + 12 L T d, the count the trainer's MFU
 * uses); PEAK_TFLOPS defaults to 989, the H100/H200 SXM dense bf16 figure. Times are wall
 * clock between synchronised points (each step ends with the loss on the host), the median
 * of STEPS steps after two untimed ones.
 */
#include <stdio.h>
#include <stdlib.h>

#include "check.h"
#include "cuda_backend.h"
#include "cuda_kernels.h"
#include "model.h"
#include "sys.h"

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc < 11) {
        fprintf(stderr, "usage: bench_cuda_step DIM LAYERS HEADS KV_HEADS FFN VOCAB SEQ BATCH "
                        "STEPS BF16 [PEAK_TFLOPS]\n");
        return 2;
    }
    qtx_model_config cfg = {.dim = atoi(argv[1]),
                            .n_layers = atoi(argv[2]),
                            .n_heads = atoi(argv[3]),
                            .n_kv_heads = atoi(argv[4]),
                            .ffn_dim = atoi(argv[5]),
                            .vocab_size = atoi(argv[6]),
                            .max_seq_len = atoi(argv[7]),
                            .rope_theta = 10000.0f,
                            .norm_eps = 1e-5f,
                            .tie_embeddings = 0};
    const int T = atoi(argv[7]), B = atoi(argv[8]), steps = atoi(argv[9]), bf16 = atoi(argv[10]);
    const double peak = (argc > 11 ? atof(argv[11]) : 989.0) * 1e12;
    if (steps < 1 || B < 1 || T < 1) return 2;
    char why[256] = "";
    qtx_backend be;
    if (qtx_backend_cuda_create(&be, 0, bf16, why, sizeof why)) {
        fprintf(stderr, "bench_cuda_step: %s\n", why);
        return 1;
    }
    const qtx_shard_spec spec = qtx_shard_spec_full(&cfg);
    qtx_model_options o = {.B = B, .T = T, .n_slots = 1, .backend = &be};
    qtx_model m;
    qtx_model_create_ex(&m, &cfg, &spec, &o);
    qtx_model_init_weights(&m, 1);
    const int64_t nf = m.layout.n_floats;
    float *mom = be.alloc(&be, (size_t)nf * sizeof(float)),
          *vel = be.alloc(&be, (size_t)nf * sizeof(float));
    int32_t *tok = qtx_malloc((size_t)B * (T + 1) * sizeof(int32_t));
    uint64_t r = 88172645463325252ull;
    double *dt = qtx_malloc((size_t)steps * sizeof(double)), loss = 0.0;
    for (int s = -2; s < steps; s++) {
        for (int64_t i = 0; i < (int64_t)B * (T + 1); i++) {
            r ^= r << 13, r ^= r >> 7, r ^= r << 17;
            tok[i] = (int32_t)(r % (uint64_t)cfg.vocab_size);
        }
        const double t0 = qtx_now_s();
        qtx_model_zero_grads(&m);
        loss = qtx_model_train_step(&m, tok, 1.0f / (float)(B * T)) / (double)(B * T);
        QTX_CHECK(!qtx_cuda_adamw(m.params, m.grads, mom, vel, nf, 3e-4, 0.1, 0.9, 0.95, 1e-8,
                                  s + 3, 1.0f, qtx_backend_cuda_stream(&be), why, sizeof why),
                  "%s", why);
        /* written beside the backend: its bf16 copy of the weights is converted again at the
         * next step's first product, as in training */
        if (be.params_changed) be.params_changed(&be);
        float sync;
        be.to_host(&be, &sync, m.params, sizeof sync); /* waits for the update */
        if (s >= 0) dt[s] = qtx_now_s() - t0;
    }
    qsort(dt, (size_t)steps, sizeof *dt, cmp_double);
    const double med = dt[steps / 2], tps = (double)B * T / med;
    const double mfu = tps * qtx_model_flops_per_token(&cfg, T) / peak;
    printf("{\"backend\": \"%s\", \"params\": %lld, \"tokens_per_s\": %.1f, \"step_ms\": %.2f, "
           "\"mfu\": %.4f, \"peak_tflops\": %.0f, \"loss_last\": %.4f, \"B\": %d, \"T\": %d}\n",
           be.name, (long long)qtx_model_n_params(&cfg), tps, med * 1e3, mfu, peak / 1e12, loss, B,
           T);
    be.free(&be, mom, (size_t)nf * sizeof(float));
    be.free(&be, vel, (size_t)nf * sizeof(float));
    qtx_model_destroy(&m);
    qtx_backend_cuda_free(&be);
    free(tok);
    free(dt);
    return 0;
}
