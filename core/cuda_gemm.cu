/* cuda_gemm.cu: cuBLASLt GEMMs with bf16 or fp32 inputs and fp32 accumulation
 * (core/cuda_gemm.h).
 *
 * cuBLASLt is column-major; a row-major X[r, c] is the column-major X^T, so the row-major
 * C = op(A) op(B) is computed as the column-major C^T = op(B)^T op(A)^T: B's storage is
 * cuBLASLt's first operand and A's the second, each with its own transpose flag.
 */
#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

#include "cuda_gemm.h"
#include "cuda_launch.h"

/* cuBLASLt is opened when a GEMM context is made, not linked: mapping its several hundred MB
 * at every start cost each `qtx` command 0.6 s (measured here), though only GPU runs use it.
 * The functions it needs, by name, typed from the header. */
// clang-format off
#define LT_FUNCS(X)                                                                                \
    X(cublasLtCreate)                                                                              \
    X(cublasLtDestroy)                                                                             \
    X(cublasLtMatmul)                                                                              \
    X(cublasLtMatmulAlgoGetHeuristic)                                                              \
    X(cublasLtMatmulDescCreate)                                                                    \
    X(cublasLtMatmulDescDestroy)                                                                   \
    X(cublasLtMatmulDescSetAttribute)                                                              \
    X(cublasLtMatmulPreferenceCreate)                                                              \
    X(cublasLtMatmulPreferenceDestroy)                                                             \
    X(cublasLtMatmulPreferenceSetAttribute)                                                        \
    X(cublasLtMatrixLayoutCreate)                                                                  \
    X(cublasLtMatrixLayoutDestroy)
// clang-format on

typedef struct lt_api {
#define LT_MEMBER(f) decltype(&::f) f;
    LT_FUNCS(LT_MEMBER)
#undef LT_MEMBER
} lt_api;

struct qtx_cuda_gemm {
    void *lib; /* the dlopen handle of libcublasLt */
    lt_api api;
    cublasLtHandle_t lt;
    void *ws;
    size_t ws_bytes;
};

/* Opens libcublasLt.so.MAJOR of the toolkit built against and resolves every function. */
static int open_lt(qtx_cuda_gemm *g, char *why, size_t cap) {
    char name[64];
    snprintf(name, sizeof name, "libcublasLt.so.%d", CUBLAS_VER_MAJOR);
    g->lib = dlopen(name, RTLD_NOW | RTLD_LOCAL);
    if (!g->lib) {
        if (why && cap) snprintf(why, cap, "cannot open %s: %s", name, dlerror());
        return -1;
    }
#define LT_LOAD(f)                                                                                 \
    g->api.f = (decltype(&::f))dlsym(g->lib, #f);                                                  \
    if (!g->api.f) {                                                                               \
        if (why && cap) snprintf(why, cap, "%s lacks %s", name, #f);                               \
        dlclose(g->lib);                                                                           \
        g->lib = NULL;                                                                             \
        return -1;                                                                                 \
    }
    LT_FUNCS(LT_LOAD)
#undef LT_LOAD
    return 0;
}

#define LT_OK(call, what)                                                                          \
    do {                                                                                           \
        const cublasStatus_t st_ = (call);                                                         \
        if (st_ != CUBLAS_STATUS_SUCCESS) {                                                        \
            if (why && cap) snprintf(why, cap, "%s: cuBLASLt status %d", what, (int)st_);          \
            rc = -1;                                                                               \
            goto done;                                                                             \
        }                                                                                          \
    } while (0)

extern "C" {

int qtx_cuda_gemm_create(qtx_cuda_gemm **out, size_t workspace_bytes, char *why, size_t cap) {
    *out = NULL;
    qtx_cuda_gemm *g = (qtx_cuda_gemm *)calloc(1, sizeof *g);
    if (!g) {
        if (why && cap) snprintf(why, cap, "out of memory");
        return -1;
    }
    if (open_lt(g, why, cap)) {
        free(g);
        return -1;
    }
    if (g->api.cublasLtCreate(&g->lt) != CUBLAS_STATUS_SUCCESS) {
        if (why && cap) snprintf(why, cap, "cublasLtCreate failed");
        dlclose(g->lib);
        free(g);
        return -1;
    }
    if (workspace_bytes && cudaMalloc(&g->ws, workspace_bytes) != cudaSuccess) {
        if (why && cap)
            snprintf(why, cap, "cudaMalloc of %zu bytes of GEMM workspace failed", workspace_bytes);
        g->api.cublasLtDestroy(g->lt);
        dlclose(g->lib);
        free(g);
        return -1;
    }
    g->ws_bytes = workspace_bytes;
    *out = g;
    return 0;
}

void qtx_cuda_gemm_free(qtx_cuda_gemm *g) {
    if (!g) return;
    if (g->ws) cudaFree(g->ws);
    g->api.cublasLtDestroy(g->lt);
    dlclose(g->lib);
    free(g);
}

/* The largest power of two dividing p's address, at most 256. */
static uint32_t align_of(const void *p) {
    const uintptr_t a = (uintptr_t)p;
    uint32_t al = 256;
    while (al > 1 && a % al) al /= 2;
    return al;
}

/* The row-major GEMM for inputs of type in (bf16 or fp32), fp32 compute and output. */
static int gemm(qtx_cuda_gemm *g, cudaDataType_t in, int trans_a, int trans_b, int64_t M, int64_t N,
                int64_t K, float alpha, const void *A, int64_t lda, const void *B, int64_t ldb,
                float beta, float *C, int64_t ldc, void *stream, char *why, size_t cap) {
    int rc = 0;
    cublasLtMatmulDesc_t desc = NULL;
    cublasLtMatrixLayout_t lb = NULL, la = NULL, lc = NULL;
    cublasLtMatmulPreference_t pref = NULL;
    cublasLtMatmulHeuristicResult_t heur;
    int found = 0;
    /* column-major: first operand = B's storage, second = A's, result C^T [N, M] */
    const cublasOperation_t op1 = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    const cublasOperation_t op2 = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    LT_OK(g->api.cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F), "matmul desc");
    LT_OK(
        g->api.cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &op1, sizeof op1),
        "transa");
    LT_OK(
        g->api.cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &op2, sizeof op2),
        "transb");
    LT_OK(g->api.cublasLtMatrixLayoutCreate(&lb, in, trans_b ? K : N, trans_b ? N : K, ldb),
          "layout B");
    LT_OK(g->api.cublasLtMatrixLayoutCreate(&la, in, trans_a ? M : K, trans_a ? K : M, lda),
          "layout A");
    LT_OK(g->api.cublasLtMatrixLayoutCreate(&lc, CUDA_R_32F, N, M, ldc), "layout C");
    LT_OK(g->api.cublasLtMatmulPreferenceCreate(&pref), "preference");
    LT_OK(g->api.cublasLtMatmulPreferenceSetAttribute(
              pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &g->ws_bytes, sizeof g->ws_bytes),
          "workspace");
    /* The heuristic assumes 256-byte aligned operands unless told: views into the parameter
     * buffer and row offsets into activations are often less, so say what they are (the
     * first operand is B's storage, the second A's). */
    {
        const uint32_t al[4] = {align_of(B), align_of(A), align_of(C), align_of(C)};
        const cublasLtMatmulPreferenceAttributes_t attr[4] = {
            CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
            CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES};
        for (int k = 0; k < 4; k++)
            LT_OK(g->api.cublasLtMatmulPreferenceSetAttribute(pref, attr[k], &al[k], sizeof al[k]),
                  "alignment");
    }
    LT_OK(
        g->api.cublasLtMatmulAlgoGetHeuristic(g->lt, desc, lb, la, lc, lc, pref, 1, &heur, &found),
        "heuristic");
    if (!found) {
        if (why && cap)
            snprintf(why, cap, "cuBLASLt has no algorithm for this %s GEMM (%lld x %lld x %lld)",
                     in == CUDA_R_32F ? "fp32" : "bf16", (long long)M, (long long)N, (long long)K);
        rc = -1;
        goto done;
    }
    LT_OK(g->api.cublasLtMatmul(g->lt, desc, &alpha, B, lb, A, la, &beta, C, lc, C, lc, &heur.algo,
                                g->ws, g->ws_bytes, (cudaStream_t)stream),
          "matmul");
done:
    if (pref) g->api.cublasLtMatmulPreferenceDestroy(pref);
    if (lc) g->api.cublasLtMatrixLayoutDestroy(lc);
    if (la) g->api.cublasLtMatrixLayoutDestroy(la);
    if (lb) g->api.cublasLtMatrixLayoutDestroy(lb);
    if (desc) g->api.cublasLtMatmulDescDestroy(desc);
    return rc;
}

int qtx_cuda_gemm_bf16(qtx_cuda_gemm *g, int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,
                       float alpha, const uint16_t *A, int64_t lda, const uint16_t *B, int64_t ldb,
                       float beta, float *C, int64_t ldc, void *stream, char *why, size_t cap) {
    return gemm(g, CUDA_R_16BF, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc,
                stream, why, cap);
}

int qtx_cuda_gemm_f32(qtx_cuda_gemm *g, int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,
                      float alpha, const float *A, int64_t lda, const float *B, int64_t ldb,
                      float beta, float *C, int64_t ldc, void *stream, char *why, size_t cap) {
    return gemm(g, CUDA_R_32F, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc,
                stream, why, cap);
}

} /* extern "C" */

__global__ static void to_bf16_k(uint16_t *y, const float *x, int64_t n) {
    for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < n;
         e += (int64_t)gridDim.x * blockDim.x)
        y[e] = __bfloat16_as_ushort(__float2bfloat16_rn(x[e]));
}

__global__ static void from_bf16_k(float *y, const uint16_t *x, int64_t n) {
    for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < n;
         e += (int64_t)gridDim.x * blockDim.x)
        y[e] = __bfloat162float(__ushort_as_bfloat16(x[e]));
}

extern "C" int qtx_cuda_f32_to_bf16(uint16_t *y, const float *x, int64_t n, void *stream, char *why,
                                    size_t cap) {
    if (n > 0) to_bf16_k<<<qtx_grid_for(n), QTX_EW_THREADS, 0, (cudaStream_t)stream>>>(y, x, n);
    return qtx_launched("f32_to_bf16", why, cap);
}

extern "C" int qtx_cuda_bf16_to_f32(float *y, const uint16_t *x, int64_t n, void *stream, char *why,
                                    size_t cap) {
    if (n > 0) from_bf16_k<<<qtx_grid_for(n), QTX_EW_THREADS, 0, (cudaStream_t)stream>>>(y, x, n);
    return qtx_launched("bf16_to_f32", why, cap);
}
