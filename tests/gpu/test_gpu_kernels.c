/* test_gpu_kernels.c: each CUDA kernel of core/cuda_kernels.h against its CPU reference
 * (core/kernels.h, optim/adamw.h) on the same random inputs: RMSNorm forward and backward,
 * RoPE forward and inverse, SwiGLU forward and backward, the residual add and AdamW, within
 * 1e-5 relative (fp32 both sides; only the order of sums and fused multiply-adds differ),
 * odd sizes included; each repeats bit for bit (no atomics, fixed reduction orders). The
 * cuBLASLt bf16 GEMM, every transpose combination, against qtx_sgemm on the same bf16-rounded
 * inputs within 1e-4 (a product of two bf16 is exact in fp32: only the fp32 sums' order
 * differs), and the f32 <-> bf16 conversions bit for bit against round-to-nearest-even. The
 * q8_0 activation quantizer gives ggml's reference bytes; q8_0 / q4_0 matrix-vector products
 * (every weight byte, -128 included) within 1e-5 of the generic CPU qtx_qmatmul. Causal
 * grouped-query attention forward (out, lse) and backward (dqkv) against qtx_attention_fwd /
 * _bwd, and softmax cross-entropy (per-row losses summed, the gradient in place) against
 * qtx_head_xent with an identity head (so its logits are the inputs), within 1e-5; both
 * repeat bit for bit. A training step of a small model (GQA, untied head, odd batch shape) on
 * the CUDA backend against the CPU backend: loss within 1e-5, every gradient within 1e-4
 * (fp32 both sides; the sums run in other orders through some thousand operations), and the
 * GPU step repeats bit for bit; the same with bf16 GEMM inputs within 3e-3 and 3e-2.
 * Exits 77 (CTest: skipped) with the reason when no CUDA device is visible.
 */
#include <cuda_runtime.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adamw.h"
#include "cuda_attention.h"
#include "cuda_backend.h"
#include "cuda_gemm.h"
#include "cuda_infer.h"
#include "cuda_kernels.h"
#include "cuda_quant.h"
#include "cuda_xent.h"
#include "quant.h"
#include "kernels.h"
#include "model.h"
#include "testutil.h"

static uint64_t g_rng = 0x2545F4914F6CDD1Dull;
static float urand(void) { /* uniform in [-1, 1) */
    g_rng = g_rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((g_rng >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
}

static float *host_rand(int64_t n, float scale, float offset) {
    float *p = malloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++) p[i] = offset + scale * urand();
    return p;
}

static float *dev_copy(const float *h, int64_t n) {
    float *d = NULL;
    T_CHECK(cudaMalloc((void **)&d, (size_t)n * sizeof(float)) == cudaSuccess, "cudaMalloc");
    T_CHECK(cudaMemcpy(d, h, (size_t)n * sizeof(float), cudaMemcpyHostToDevice) == cudaSuccess,
            "to device");
    return d;
}

static float *host_copy(const float *d, int64_t n) {
    float *h = malloc((size_t)n * sizeof(float));
    T_CHECK(cudaDeviceSynchronize() == cudaSuccess, "kernel: %s",
            cudaGetErrorString(cudaGetLastError()));
    T_CHECK(cudaMemcpy(h, d, (size_t)n * sizeof(float), cudaMemcpyDeviceToHost) == cudaSuccess,
            "to host");
    return h;
}

/* GPU result d[n] against the CPU's c[n]. */
static void expect_close(const char *what, const float *d, const float *c, int64_t n) {
    float *h = host_copy(d, n);
    const double e = qtx_rel_err(h, c, (long)n);
    T_CHECK(e <= 1e-5, "%s: rel err %.3g vs the CPU kernel", what, e);
    printf("  %-28s rel err %.2g\n", what, e);
    free(h);
}

static void test_rmsnorm(int64_t n, int64_t c) {
    char why[256] = "";
    float *x = host_rand(n * c, 2.0f, 0.3f), *w = host_rand(c, 0.5f, 1.0f);
    float *dy = host_rand(n * c, 1.0f, 0.0f), *dx = host_rand(n * c, 0.1f, 0.0f);
    float *dw = host_rand(c, 0.1f, 0.0f);
    float *dx_d = dev_copy(dx, n * c), *dw_d = dev_copy(dw, c); /* accumulated into */
    float *y = malloc((size_t)(n * c) * sizeof(float)), *rstd = malloc((size_t)n * sizeof(float));
    float *x_d = dev_copy(x, n * c), *w_d = dev_copy(w, c), *dy_d = dev_copy(dy, n * c);
    float *y_d = dev_copy(y, n * c), *rstd_d = dev_copy(rstd, n);
    qtx_rmsnorm_fwd(y, rstd, x, w, n, c, 1e-5f);
    T_CHECK(!qtx_cuda_rmsnorm_fwd(y_d, rstd_d, x_d, w_d, n, c, 1e-5f, NULL, why, sizeof why), "%s",
            why);
    expect_close("rmsnorm fwd y", y_d, y, n * c);
    expect_close("rmsnorm fwd rstd", rstd_d, rstd, n);
    qtx_rmsnorm_bwd(dx, dw, dy, x, rstd, w, n, c);
    T_CHECK(!qtx_cuda_rmsnorm_bwd(dx_d, dw_d, dy_d, x_d, rstd_d, w_d, n, c, NULL, why, sizeof why),
            "%s", why);
    expect_close("rmsnorm bwd dx (+=)", dx_d, dx, n * c);
    expect_close("rmsnorm bwd dw (+=)", dw_d, dw, c);
    /* the same launch again gives the same bits */
    float *a = host_copy(y_d, n * c);
    T_CHECK(!qtx_cuda_rmsnorm_fwd(y_d, rstd_d, x_d, w_d, n, c, 1e-5f, NULL, why, sizeof why), "%s",
            why);
    float *b = host_copy(y_d, n * c);
    T_CHECK(memcmp(a, b, (size_t)(n * c) * sizeof(float)) == 0, "rmsnorm fwd repeats bit for bit");
    free(a), free(b), free(x), free(w), free(dy), free(dx), free(dw), free(y), free(rstd);
    cudaFree(x_d), cudaFree(w_d), cudaFree(dy_d), cudaFree(dx_d), cudaFree(dw_d), cudaFree(y_d);
    cudaFree(rstd_d);
}

static void test_rope(int64_t n, int T, int heads, int hd) {
    char why[256] = "";
    const int64_t ld = (int64_t)heads * hd + 16; /* rows wider than the heads: stride matters */
    float *x = host_rand(n * ld, 1.0f, 0.0f);
    float *cos_t = malloc((size_t)(T * hd / 2) * sizeof(float));
    float *sin_t = malloc((size_t)(T * hd / 2) * sizeof(float));
    qtx_rope_tables(cos_t, sin_t, T, hd, 10000.0f);
    float *x_d = dev_copy(x, n * ld), *c_d = dev_copy(cos_t, T * hd / 2);
    float *s_d = dev_copy(sin_t, T * hd / 2);
    for (int inverse = 0; inverse <= 1; inverse++) {
        qtx_rope(x, ld, n, T, heads, hd, cos_t, sin_t, inverse);
        T_CHECK(!qtx_cuda_rope(x_d, ld, n, T, heads, hd, c_d, s_d, inverse, NULL, why, sizeof why),
                "%s", why);
        expect_close(inverse ? "rope inverse" : "rope forward", x_d, x, n * ld);
    }
    free(x), free(cos_t), free(sin_t);
    cudaFree(x_d), cudaFree(c_d), cudaFree(s_d);
}

static void test_swiglu(int64_t n, int64_t f) {
    char why[256] = "";
    float *gu = host_rand(n * 2 * f, 4.0f, 0.0f), *dh = host_rand(n * f, 1.0f, 0.0f);
    float *h = malloc((size_t)(n * f) * sizeof(float));
    float *dgu = malloc((size_t)(n * 2 * f) * sizeof(float));
    float *gu_d = dev_copy(gu, n * 2 * f), *dh_d = dev_copy(dh, n * f), *h_d = dev_copy(dh, n * f);
    float *dgu_d = dev_copy(gu, n * 2 * f); /* overwritten */
    qtx_swiglu_fwd(h, gu, n, f);
    qtx_swiglu_bwd(dgu, dh, gu, n, f);
    T_CHECK(!qtx_cuda_swiglu_fwd(h_d, gu_d, n, f, NULL, why, sizeof why), "%s", why);
    T_CHECK(!qtx_cuda_swiglu_bwd(dgu_d, dh_d, gu_d, n, f, NULL, why, sizeof why), "%s", why);
    expect_close("swiglu fwd", h_d, h, n * f);
    expect_close("swiglu bwd (overwrites)", dgu_d, dgu, n * 2 * f);
    free(gu), free(dh), free(h), free(dgu);
    cudaFree(gu_d), cudaFree(dh_d), cudaFree(h_d), cudaFree(dgu_d);
}

static void test_add_adamw(int64_t n) {
    char why[256] = "";
    float *y = host_rand(n, 1.0f, 0.0f), *x = host_rand(n, 1.0f, 0.0f);
    float *y_d = dev_copy(y, n), *x_d = dev_copy(x, n);
    for (int64_t i = 0; i < n; i++) y[i] += x[i];
    T_CHECK(!qtx_cuda_add(y_d, x_d, n, NULL, why, sizeof why), "%s", why);
    expect_close("residual add", y_d, y, n);

    qtx_optim_config c;
    memset(&c, 0, sizeof c);
    c.beta1 = 0.9;
    c.beta2 = 0.95;
    c.eps = 1e-8;
    float *p = host_rand(n, 0.05f, 0.0f), *g = host_rand(n, 0.01f, 0.0f);
    float *m = host_rand(n, 0.001f, 0.0f), *v = host_rand(n, 1e-6f, 2e-6f);
    float *p_d = dev_copy(p, n), *g_d = dev_copy(g, n), *m_d = dev_copy(m, n),
          *v_d = dev_copy(v, n);
    for (int64_t t = 1; t <= 3; t++) { /* three steps: moments carry over */
        qtx_adamw_update(p, g, m, v, n, 3e-4, 0.1, &c, t, 0.5f);
        T_CHECK(!qtx_cuda_adamw(p_d, g_d, m_d, v_d, n, 3e-4, 0.1, c.beta1, c.beta2, c.eps, t, 0.5f,
                                NULL, why, sizeof why),
                "%s", why);
    }
    expect_close("adamw p (3 steps)", p_d, p, n);
    expect_close("adamw m", m_d, m, n);
    expect_close("adamw v", v_d, v, n);

    /* The same through the backend table, as ZeRO calls it: a fourth step from the constants,
     * and the sum of squares (double partial sums: within 1e-12, and the same bits twice). */
    qtx_backend be;
    T_CHECK(!qtx_backend_cuda_create(&be, 0, 0, why, sizeof why), "%s", why);
    const qtx_adamw_step k = qtx_adamw_constants(3e-4, 0.1, &c, 4, 0.5f);
    qtx_adamw_apply(p, g, m, v, n, &k);
    be.adamw(&be, p_d, g_d, m_d, v_d, n, &k);
    expect_close("backend adamw p (step 4)", p_d, p, n);
    expect_close("backend adamw m", m_d, m, n);
    expect_close("backend adamw v", v_d, v, n);
    const double sq = qtx_sum_squares(p, n), sq_d = be.sum_squares(&be, p_d, n);
    T_CHECK(fabs(sq_d - sq) <= 1e-12 * sq + 1e-30, "sum of squares %.17g vs the CPU's %.17g", sq_d,
            sq);
    T_CHECK(be.sum_squares(&be, p_d, n) == sq_d, "sum of squares repeats bit for bit");
    printf("  %-28s %.17g vs %.17g\n", "sum of squares", sq_d, sq);
    qtx_backend_cuda_free(&be);
    free(y), free(x), free(p), free(g), free(m), free(v);
    cudaFree(y_d), cudaFree(x_d), cudaFree(p_d), cudaFree(g_d), cudaFree(m_d), cudaFree(v_d);
}

/* f32 -> bf16 bits, round to nearest even (finite inputs). */
static uint16_t bf16_of(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    u += 0x7FFFu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

static float f32_of_bf16(uint16_t h) {
    const uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static void test_gemm_bf16(qtx_cuda_gemm *g, int ta, int tb, int64_t M, int64_t N, int64_t K) {
    char why[256] = "";
    const int64_t lda = ta ? M : K, ldb = tb ? K : N, na = M * K, nb = K * N;
    float *a = host_rand(na, 1.0f, 0.0f), *b = host_rand(nb, 1.0f, 0.0f);
    float *c = host_rand(M * N, 1.0f, 0.0f), *c_ref = malloc((size_t)(M * N) * sizeof(float));
    uint16_t *ah = malloc((size_t)na * 2), *bh = malloc((size_t)nb * 2);
    for (int64_t i = 0; i < na; i++) a[i] = f32_of_bf16(ah[i] = bf16_of(a[i]));
    for (int64_t i = 0; i < nb; i++) b[i] = f32_of_bf16(bh[i] = bf16_of(b[i]));
    memcpy(c_ref, c, (size_t)(M * N) * sizeof(float));
    qtx_sgemm(ta, tb, M, N, K, 0.5f, a, lda, b, ldb, 0.25f, c_ref, N);
    /* the bf16 operands through the device conversion: the same bits as bf16_of */
    float *a_d = dev_copy(a, na), *b_d = dev_copy(b, nb), *c_d = dev_copy(c, M * N);
    uint16_t *ah_d = NULL, *bh_d = NULL;
    T_CHECK(cudaMalloc((void **)&ah_d, (size_t)na * 2) == cudaSuccess &&
                cudaMalloc((void **)&bh_d, (size_t)nb * 2) == cudaSuccess,
            "cudaMalloc");
    T_CHECK(!qtx_cuda_f32_to_bf16(ah_d, a_d, na, NULL, why, sizeof why) &&
                !qtx_cuda_f32_to_bf16(bh_d, b_d, nb, NULL, why, sizeof why),
            "%s", why);
    uint16_t *back = malloc((size_t)na * 2);
    T_CHECK(cudaMemcpy(back, ah_d, (size_t)na * 2, cudaMemcpyDeviceToHost) == cudaSuccess, "copy");
    T_CHECK(memcmp(back, ah, (size_t)na * 2) == 0, "f32_to_bf16 rounds as round-to-nearest-even");
    T_CHECK(!qtx_cuda_gemm_bf16(g, ta, tb, M, N, K, 0.5f, ah_d, lda, bh_d, ldb, 0.25f, c_d, N, NULL,
                                why, sizeof why),
            "gemm %dx%dx%d ta %d tb %d: %s", (int)M, (int)N, (int)K, ta, tb, why);
    char what[64];
    snprintf(what, sizeof what, "gemm bf16 %lldx%lldx%lld %c%c", (long long)M, (long long)N,
             (long long)K, ta ? 'T' : 'N', tb ? 'T' : 'N');
    float *h = host_copy(c_d, M * N);
    const double e = qtx_rel_err(h, c_ref, (long)(M * N));
    T_CHECK(e <= 1e-4, "%s: rel err %.3g vs qtx_sgemm on the same bf16 values", what, e);
    printf("  %-28s rel err %.2g\n", what, e);
    free(h), free(back), free(a), free(b), free(c), free(c_ref), free(ah), free(bh);
    cudaFree(a_d), cudaFree(b_d), cudaFree(c_d), cudaFree(ah_d), cudaFree(bh_d);
}

static void test_quant(int64_t rows, int64_t n) {
    char why[256] = "";
    float *x = host_rand(n, 3.0f, 0.0f);
    for (int j = 0; j < 32 && j < n; j++) x[j] = 0.0f; /* an all-zero block: d = 0 */
    const size_t xb = qtx_qtype_row_bytes(QTX_Q_Q8_0, n);
    uint8_t *xq = malloc(xb), *xq_gpu = malloc(xb);
    qtx_quantize_row_q8_0_ref(x, xq, n);
    float *x_d = dev_copy(x, n);
    void *xq_d = NULL;
    T_CHECK(cudaMalloc(&xq_d, xb) == cudaSuccess, "cudaMalloc");
    T_CHECK(!qtx_cuda_quantize_q8_0(xq_d, x_d, n, NULL, why, sizeof why), "%s", why);
    T_CHECK(cudaDeviceSynchronize() == cudaSuccess &&
                cudaMemcpy(xq_gpu, xq_d, xb, cudaMemcpyDeviceToHost) == cudaSuccess,
            "copy");
    T_CHECK(memcmp(xq, xq_gpu, xb) == 0, "quantize_q8_0 n=%lld: bytes differ from the reference",
            (long long)n);
    const qtx_qtype types[2] = {QTX_Q_Q8_0, QTX_Q_Q4_0};
    for (int t = 0; t < 2; t++) {
        const size_t wb = qtx_qtype_row_bytes(types[t], n), bb = types[t] == QTX_Q_Q8_0 ? 34 : 18;
        uint8_t *w = malloc(wb * (size_t)rows);
        for (size_t i = 0; i < wb * (size_t)rows; i++) {
            g_rng = g_rng * 6364136223846793005ull + 1442695040888963407ull;
            w[i] = (uint8_t)(g_rng >> 56);
        }
        for (size_t b = 0; b < wb * (size_t)rows / bb; b++) { /* sane scales, either sign */
            const qtx_f16 d = qtx_f32_to_f16((b & 1 ? -0.01f : 0.02f) * (1.0f + urand()));
            memcpy(w + b * bb, &d, 2);
        }
        float *y = malloc((size_t)rows * sizeof(float));
        void *scratch = malloc(qtx_qmatmul_scratch_bytes(types[t], n, 1));
        qtx_qmatmul_with(qtx_quant_kernels_for(QTX_ISA_GENERIC), types[t], w, rows, n, x, 1, y,
                         scratch);
        void *w_d = NULL;
        float *y_d = NULL;
        T_CHECK(cudaMalloc(&w_d, wb * (size_t)rows) == cudaSuccess &&
                    cudaMalloc((void **)&y_d, (size_t)rows * sizeof(float)) == cudaSuccess,
                "cudaMalloc");
        T_CHECK(cudaMemcpy(w_d, w, wb * (size_t)rows, cudaMemcpyHostToDevice) == cudaSuccess,
                "copy");
        T_CHECK(!qtx_cuda_qmatvec((int)types[t], w_d, rows, n, xq_d, y_d, NULL, why, sizeof why),
                "%s", why);
        char what[64];
        snprintf(what, sizeof what, "qmatvec %s %lldx%lld", qtx_qtype_get(types[t])->name,
                 (long long)rows, (long long)n);
        expect_close(what, y_d, y, rows);
        free(w), free(y), free(scratch);
        cudaFree(w_d), cudaFree(y_d);
    }
    free(x), free(xq), free(xq_gpu);
    cudaFree(x_d), cudaFree(xq_d);
}

/* A device buffer of n floats, uninitialised. */
static float *dev_alloc(int64_t n) {
    float *d = NULL;
    T_CHECK(cudaMalloc((void **)&d, (size_t)n * sizeof(float)) == cudaSuccess, "cudaMalloc");
    return d;
}

static void test_attention(int B, int T, int H, int KV, int hd) {
    char why[256] = "";
    const int64_t ld = (int64_t)(H + 2 * KV) * hd, n = (int64_t)B * T;
    float *qkv = host_rand(n * ld, 1.5f, 0.0f), *dout = host_rand(n * H * hd, 1.0f, 0.0f);
    float *out = malloc((size_t)(n * H * hd) * sizeof(float));
    float *lse = malloc((size_t)B * H * T * sizeof(float));
    float *dqkv = malloc((size_t)(n * ld) * sizeof(float));
    const int nt = qtx_num_threads();
    float *scratch = malloc((size_t)qtx_attention_scratch_floats(T, nt) * sizeof(float));
    qtx_attention_fwd(out, lse, qkv, B, T, H, KV, hd, scratch, nt);
    qtx_attention_bwd(dqkv, dout, qkv, out, lse, B, T, H, KV, hd, scratch, nt);
    float *qkv_d = dev_copy(qkv, n * ld), *dout_d = dev_copy(dout, n * H * hd);
    float *out_d = dev_alloc(n * H * hd), *lse_d = dev_alloc((int64_t)B * H * T);
    float *dqkv_d = dev_alloc(n * ld), *d_d = dev_alloc((int64_t)B * H * T);
    T_CHECK(!qtx_cuda_attention_fwd(out_d, lse_d, qkv_d, B, T, H, KV, hd, NULL, why, sizeof why),
            "%s", why);
    expect_close("attention fwd out", out_d, out, n * H * hd);
    expect_close("attention fwd lse", lse_d, lse, (int64_t)B * H * T);
    /* backward from the CPU's out and lse, so dqkv is compared on the same inputs */
    float *o_d = dev_copy(out, n * H * hd), *l_d = dev_copy(lse, (int64_t)B * H * T);
    T_CHECK(!qtx_cuda_attention_bwd(dqkv_d, dout_d, qkv_d, o_d, l_d, d_d, B, T, H, KV, hd, NULL,
                                    why, sizeof why),
            "%s", why);
    expect_close("attention bwd dqkv", dqkv_d, dqkv, n * ld);
    float *a = host_copy(dqkv_d, n * ld);
    T_CHECK(!qtx_cuda_attention_bwd(dqkv_d, dout_d, qkv_d, o_d, l_d, d_d, B, T, H, KV, hd, NULL,
                                    why, sizeof why),
            "%s", why);
    float *b = host_copy(dqkv_d, n * ld);
    T_CHECK(memcmp(a, b, (size_t)(n * ld) * sizeof(float)) == 0, "attention bwd repeats");
    T_CHECK(qtx_cuda_attention_fwd(out_d, lse_d, qkv_d, B, T, H, KV, 48, NULL, why, sizeof why) ==
                -1,
            "head_dim 48 refused");
    char want[256];
    snprintf(want, sizeof want,
             "cuda attention: B %d, T %d, H %d over KV %d, head_dim 48: need head_dim a multiple "
             "of 32 up to 128 and H a multiple of KV",
             B, T, H, KV);
    T_STREQ(why, want);
    free(qkv), free(dout), free(out), free(lse), free(dqkv), free(scratch), free(a), free(b);
    cudaFree(qkv_d), cudaFree(dout_d), cudaFree(out_d), cudaFree(lse_d), cudaFree(dqkv_d);
    cudaFree(d_d), cudaFree(o_d), cudaFree(l_d);
}

/* rows x vl logits, a vocabulary slice from v0 (targets also outside it: target logit 0). */
static void test_xent(int64_t rows, int64_t vl, int64_t v0) {
    char why[256] = "";
    float *z = host_rand(rows * vl, 6.0f, 0.0f);
    float *W = calloc((size_t)(vl * vl), sizeof(float)),
          *dW = calloc((size_t)(vl * vl), sizeof(float));
    for (int64_t j = 0; j < vl; j++) W[j * vl + j] = 1.0f; /* identity: logits = z */
    int32_t *tg = malloc((size_t)rows * sizeof(int32_t));
    for (int64_t i = 0; i < rows; i++) tg[i] = (int32_t)((v0 + i * 7919) % (vl + 2 * v0 + 1));
    float *dx = malloc((size_t)(rows * vl) * sizeof(float));
    float *sc = malloc((size_t)(rows * (vl + 3)) * sizeof(float));
    const float gs = 1.0f / (float)rows;
    const double total = qtx_head_xent(dx, dW, z, W, tg, rows, vl, vl, v0, gs, sc, rows, NULL);
    float *z_d = dev_copy(z, rows * vl), *m_d = dev_alloc(rows), *s_d = dev_alloc(2 * rows);
    float *l_d = dev_alloc(rows);
    int32_t *t_d = NULL;
    T_CHECK(cudaMalloc((void **)&t_d, (size_t)rows * sizeof(int32_t)) == cudaSuccess, "malloc");
    T_CHECK(cudaMemcpy(t_d, tg, (size_t)rows * sizeof(int32_t), cudaMemcpyHostToDevice) ==
                cudaSuccess,
            "copy");
    T_CHECK(!qtx_cuda_xent_max(m_d, z_d, rows, vl, NULL, why, sizeof why), "%s", why);
    T_CHECK(!qtx_cuda_xent_sum(s_d, z_d, m_d, t_d, rows, vl, v0, NULL, why, sizeof why), "%s", why);
    T_CHECK(
        !qtx_cuda_xent_finish(l_d, z_d, m_d, s_d, t_d, rows, vl, v0, gs, 1, NULL, why, sizeof why),
        "%s", why);
    float *loss = host_copy(l_d, rows);
    double sum = 0.0;
    for (int64_t i = 0; i < rows; i++) sum += loss[i];
    T_CHECK(fabs(sum - total) <= 1e-5 * fabs(total), "xent loss %.9g vs the CPU's %.9g", sum,
            total);
    printf("  %-28s %.9g vs %.9g\n", "xent loss (summed rows)", sum, total);
    expect_close("xent gradient (in place)", z_d, dx, rows * vl);
    free(z), free(W), free(dW), free(tg), free(dx), free(sc), free(loss);
    cudaFree(z_d), cudaFree(m_d), cudaFree(s_d), cudaFree(l_d), cudaFree(t_d);
}

/* qtx_cuda_kv_attend against the same attention on the host in double: keys and values f32
 * or q8_0 rows (made by the reference quantizer), and with q8_0 keys the query quantized by
 * that quantizer too, the scores integer block sums times both scales. Within 1e-5. */
static void test_kv_attend(int n, int64_t p0, int H, int KV, int hd, int k_q8, int v_q8) {
    char why[256] = "";
    const int64_t P = p0 + n, kvd = (int64_t)KV * hd, ctx = P + 3;
    const qtx_qtype_traits *q8 = qtx_qtype_get(QTX_Q_Q8_0);
    const size_t q8_row = qtx_qtype_row_bytes(QTX_Q_Q8_0, kvd);
    float *q = host_rand((int64_t)n * H * hd, 1.0f, 0.0f);
    float *kf = host_rand(P * kvd, 1.0f, 0.0f), *vf = host_rand(P * kvd, 1.0f, 0.0f);
    uint8_t *kq = malloc(P * q8_row), *vq = malloc(P * q8_row);
    for (int64_t j = 0; j < P; j++) {
        q8->quantize_row(kf + j * kvd, kq + j * q8_row, kvd);
        q8->quantize_row(vf + j * kvd, vq + j * q8_row, kvd);
        /* the host reference reads what the cache holds */
        if (k_q8) q8->dequantize_row(kq + j * q8_row, kf + j * kvd, kvd);
        if (v_q8) q8->dequantize_row(vq + j * q8_row, vf + j * kvd, kvd);
    }
    float *ref = malloc((size_t)n * H * hd * sizeof(float)),
          *qh = malloc((size_t)hd * sizeof(float));
    uint8_t *qb = malloc(qtx_qtype_row_bytes(QTX_Q_Q8_0, hd));
    double *sc = malloc((size_t)P * sizeof(double));
    for (int i = 0; i < n; i++)
        for (int h = 0; h < H; h++) {
            const float *qi = q + ((int64_t)i * H + h) * hd;
            memcpy(qh, qi, (size_t)hd * sizeof(float));
            if (k_q8) { /* the query as the kernel sees it: q8_0, then back */
                q8->quantize_row(qi, qb, hd);
                q8->dequantize_row(qb, qh, hd);
            }
            const int kvh = h / (H / KV);
            double mx = -INFINITY, sum = 0.0;
            for (int64_t j = 0; j <= p0 + i; j++) {
                double d = 0.0;
                for (int t = 0; t < hd; t++) d += (double)qh[t] * kf[j * kvd + kvh * hd + t];
                sc[j] = d / sqrt((double)hd);
                if (sc[j] > mx) mx = sc[j];
            }
            for (int64_t j = 0; j <= p0 + i; j++) sum += (sc[j] = exp(sc[j] - mx));
            for (int t = 0; t < hd; t++) {
                double o = 0.0;
                for (int64_t j = 0; j <= p0 + i; j++) o += sc[j] * vf[j * kvd + kvh * hd + t];
                ref[((int64_t)i * H + h) * hd + t] = (float)(o / sum);
            }
        }
    float *q_d = dev_copy(q, (int64_t)n * H * hd), *o_d = dev_alloc((int64_t)n * H * hd);
    float *s_d = dev_alloc((int64_t)n * H * ctx);
    void *k_d = NULL, *v_d = NULL;
    const size_t kb = k_q8 ? P * q8_row : (size_t)(P * kvd) * sizeof(float);
    const size_t vb = v_q8 ? P * q8_row : (size_t)(P * kvd) * sizeof(float);
    T_CHECK(cudaMalloc(&k_d, kb) == cudaSuccess && cudaMalloc(&v_d, vb) == cudaSuccess, "malloc");
    cudaMemcpy(k_d, k_q8 ? (const void *)kq : (const void *)kf, kb, cudaMemcpyHostToDevice);
    cudaMemcpy(v_d, v_q8 ? (const void *)vq : (const void *)vf, vb, cudaMemcpyHostToDevice);
    T_CHECK(!qtx_cuda_kv_attend(o_d, q_d, n, p0, H, KV, hd, k_d, k_q8, v_d, v_q8, s_d, ctx, NULL,
                                why, sizeof why),
            "%s", why);
    char what[64];
    snprintf(what, sizeof what, "kv attend %s keys %s values", k_q8 ? "q8" : "f32",
             v_q8 ? "q8" : "f32");
    expect_close(what, o_d, ref, (int64_t)n * H * hd);
    free(q), free(kf), free(vf), free(kq), free(vq), free(ref), free(qh), free(qb), free(sc);
    cudaFree(q_d), cudaFree(o_d), cudaFree(s_d), cudaFree(k_d), cudaFree(v_d);
}

/* One training step of the same model on the CPU and on the CUDA backend. In fp32 only the
 * order of sums differs: loss within 1e-5, gradients within 1e-4. With bf16 GEMM inputs each
 * operand keeps 8 significant bits (rounding ~0.2% relative) through ~15 GEMMs a step: loss
 * within 3e-3, gradients within 3e-2. */
static void test_model_step(int bf16) {
    char why[256] = "";
    qtx_backend cu;
    T_CHECK(!qtx_backend_cuda_create(&cu, 0, bf16, why, sizeof why), "%s", why);
    const double tol_loss = bf16 ? 3e-3 : 1e-5, tol_grad = bf16 ? 3e-2 : 1e-4;
    qtx_model_config cfg = {.vocab_size = 300,
                            .dim = 128,
                            .n_layers = 2,
                            .n_heads = 4,
                            .n_kv_heads = 2,
                            .ffn_dim = 320,
                            .max_seq_len = 64,
                            .rope_theta = 10000.0f,
                            .norm_eps = 1e-5f,
                            .tie_embeddings = 0};
    const qtx_shard_spec spec = qtx_shard_spec_full(&cfg);
    enum { B = 3, T = 37 };
    int32_t tok[B * (T + 1)];
    for (int i = 0; i < B * (T + 1); i++) tok[i] = (int32_t)((i * 7919 + 13) % cfg.vocab_size);
    qtx_model_options o = {.B = B, .T = T, .n_slots = 1};
    qtx_model mc, mg;
    qtx_model_create_ex(&mc, &cfg, &spec, &o);
    o.backend = &cu;
    qtx_model_create_ex(&mg, &cfg, &spec, &o);
    qtx_model_init_weights(&mc, 42);
    qtx_model_init_weights(&mg, 42);
    const int64_t nf = mc.layout.n_floats;
    float *g = malloc((size_t)nf * sizeof(float)), *g2 = malloc((size_t)nf * sizeof(float));
    qtx_model_zero_grads(&mc);
    qtx_model_zero_grads(&mg);
    const double lc = qtx_model_train_step(&mc, tok, 1.0f / (B * T));
    const double lg = qtx_model_train_step(&mg, tok, 1.0f / (B * T));
    T_CHECK(fabs(lc - lg) <= tol_loss * fabs(lc), "%s model step loss: GPU %.9g vs CPU %.9g",
            cu.name, lg, lc);
    cu.to_host(&cu, g, mg.grads, (size_t)nf * sizeof(float));
    const double e = qtx_rel_err(g, mc.grads, (long)nf);
    T_CHECK(e <= tol_grad, "%s model step gradients: rel err %.3g vs the CPU backend", cu.name, e);
    printf("  %-28s loss %.9g vs %.9g, gradients rel err %.2g\n", cu.name, lg, lc, e);
    qtx_model_zero_grads(&mg);
    T_CHECK(qtx_model_train_step(&mg, tok, 1.0f / (B * T)) == lg, "GPU step loss repeats");
    cu.to_host(&cu, g2, mg.grads, (size_t)nf * sizeof(float));
    T_CHECK(memcmp(g, g2, (size_t)nf * sizeof(float)) == 0, "GPU step gradients repeat");
    free(g), free(g2);
    qtx_model_destroy(&mg);
    qtx_model_destroy(&mc);
    qtx_backend_cuda_free(&cu);
}

int main(void) {
    char why[256] = "";
    if (!qtx_cuda_available(why, sizeof why)) {
        printf("SKIP: no GPU (%s); the CUDA kernels are checked on a machine with one\n", why);
        return 77;
    }
    static const int64_t rows[] = {1, 7, 256}, cols[] = {64, 768, 1001};
    for (size_t i = 0; i < 3; i++)
        for (size_t j = 0; j < 3; j++) {
            printf("rmsnorm %lld x %lld\n", (long long)rows[i], (long long)cols[j]);
            test_rmsnorm(rows[i], cols[j]);
        }
    printf("rope\n");
    test_rope(37, 16, 4, 64);
    test_rope(256, 128, 12, 128);
    printf("swiglu\n");
    test_swiglu(5, 333);
    test_swiglu(256, 2048);
    printf("add, adamw\n");
    test_add_adamw(1);
    test_add_adamw(1000003);
    printf("quantized (q8_0 activations, q8_0 / q4_0 weights)\n");
    test_quant(1, 32);
    test_quant(37, 96);
    test_quant(4096, 4096 + 32);
    printf("attention (causal, grouped-query)\n");
    test_attention(2, 1, 4, 2, 64);
    test_attention(2, 100, 4, 2, 64);
    test_attention(1, 257, 8, 8, 128);
    test_attention(3, 65, 6, 2, 32);
    printf("cross-entropy\n");
    test_xent(1, 50, 0);
    test_xent(37, 1000, 0);
    test_xent(64, 4099, 100);
    printf("KV-cache attention (inference)\n");
    for (int kq = 0; kq <= 1; kq++)
        for (int vq = 0; vq <= 1; vq++) {
            test_kv_attend(1, 0, 4, 2, 64, kq, vq);
            test_kv_attend(5, 37, 8, 2, 128, kq, vq);
            test_kv_attend(3, 300, 6, 6, 64, kq, vq);
        }
    printf("model (a training step on the CUDA backend)\n");
    test_model_step(0);
    test_model_step(1);
    printf("gemm (cuBLASLt, bf16 in, fp32 accumulate)\n");
    qtx_cuda_gemm *g = NULL;
    T_CHECK(!qtx_cuda_gemm_create(&g, (size_t)32 << 20, why, sizeof why), "%s", why);
    if (g)
        for (int ta = 0; ta <= 1; ta++)
            for (int tb = 0; tb <= 1; tb++) {
                test_gemm_bf16(g, ta, tb, 64, 96, 160);
                test_gemm_bf16(g, ta, tb, 512, 1536, 768);
            }
    qtx_cuda_gemm_free(g);
    return qtx_test_done("test_gpu_kernels");
}
