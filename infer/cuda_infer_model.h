/* cuda_infer_model.h: an inference model's forward pass on one GPU (issue #7; `qtx generate
 * --device cuda`). The weights of a qtx_infer_model are copied to the device as they are
 * (q8_0 and q4_0 blocks unchanged, f16 widened to f32); products with quantized weights
 * quantize the activations to q8_0 and take exact integer block sums (core/cuda_quant.h),
 * f32 ones go through cuBLASLt. The KV cache holds ctx positions per layer, keys and values
 * f32 or q8_0 (q4 stays a CPU format for now), contiguous per layer rather than paged: one
 * sequence. The math is the CPU forward pass's (infer_model.h), so logits agree within float
 * rounding for f32 caches (tests/gpu/test_gpu_infer.c). Built with QTX_CUDA only.
 */
#ifndef QTX_CUDA_INFER_MODEL_H
#define QTX_CUDA_INFER_MODEL_H

#include <stdint.h>

#include "check.h"
#include "infer_model.h"
#include "kv_cache.h"

typedef struct qtx_infer_cuda qtx_infer_cuda;

/* Copies m's weights to GPU `device` and sizes a cache of ctx tokens and buffers for max_batch
 * tokens at once; logs the device memory used. m may be freed afterwards. Errors: no GPU, an
 * unsupported cache type or head size, out of device memory (QTX_ERR_INPUT / _RUNTIME). */
int qtx_infer_cuda_create(qtx_infer_cuda **out, const qtx_infer_model *m, int device, int64_t ctx,
                          qtx_kv_type k_type, qtx_kv_type v_type, int max_batch, qtx_err *e);

/* As qtx_infer_forward: n <= max_batch new tokens; logits (host memory) of the last one, or
 * of all n when all_logits. */
int qtx_infer_cuda_forward(qtx_infer_cuda *g, const int32_t *tokens, int n, float *logits,
                           int all_logits, qtx_err *e);

/* Forgets the sequence. */
void qtx_infer_cuda_reset(qtx_infer_cuda *g);

void qtx_infer_cuda_free(qtx_infer_cuda *g);

#endif
