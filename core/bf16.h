/* bf16.h: bfloat16 on the CPU, and the one bf16 copy of the parameters that a backend with
 * bf16 matrix products keeps (backend.h: bind_params).
 *
 * Rounding is to nearest even, as torch's .to(torch.bfloat16) and the CUDA backend's
 * conversion (__float2bfloat16_rn) do for finite values. A training step reads each weight
 * in two or three products per micro-batch; a backend that rounds its operands at every
 * product converts each weight that many times, where one pass over the parameter buffer
 * after each optimizer step gives the same bits. qtx_bf16_params is that pass's bookkeeping:
 * which range is the parameter buffer, and whether its copy is stale. Backends mark it stale
 * on their own writes into the range (to_device, copy, zero, adamw); whoever else writes it
 * (a collective gathering updated shards) calls the backend's params_changed.
 */
#ifndef QTX_BF16_H
#define QTX_BF16_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* f32 -> bf16 bits, round to nearest even; any NaN becomes 0x7FFF, as on CUDA. */
static inline uint16_t qtx_bf16_of(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) return 0x7FFFu;
    u += 0x7FFFu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

static inline float qtx_f32_of_bf16(uint16_t h) {
    const uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* y[i] = x[i] rounded to bf16 and widened back to f32 (y may be x); OpenMP threads. */
void qtx_bf16_round(float *y, const float *x, int64_t n);

/* The parameter buffer a backend's products take weights from, and its bf16 copy. */
typedef struct qtx_bf16_params {
    const float *base; /* the fp32 parameters (backend memory), NULL until bound */
    int64_t n;         /* their count */
    void *copy;        /* the bf16 copy (backend memory), NULL when none is kept */
    int stale;         /* 1: copy no longer matches base */
} qtx_bf16_params;

/* The offset in elements of the span [p, p + span) within the parameters, or -1 when the span
 * is not wholly inside them or no copy is kept. */
static inline int64_t qtx_bf16_params_find(const qtx_bf16_params *b, const float *p, int64_t span) {
    if (!b->copy) return -1;
    const uintptr_t lo = (uintptr_t)b->base, at = (uintptr_t)p;
    if (at < lo || at >= lo + (uintptr_t)b->n * sizeof(float)) return -1;
    const int64_t i = (int64_t)((at - lo) / sizeof(float));
    return span <= b->n - i ? i : -1;
}

/* A write of `bytes` at dst: if it overlaps the parameters, their copy is stale. */
static inline void qtx_bf16_params_touch(qtx_bf16_params *b, const void *dst, size_t bytes) {
    if (!b->base || !bytes) return;
    const uintptr_t lo = (uintptr_t)b->base, hi = lo + (uintptr_t)b->n * sizeof(float);
    const uintptr_t d = (uintptr_t)dst;
    if (d < hi && d + bytes > lo) b->stale = 1;
}

#endif
