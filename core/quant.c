/* quant.c: quantized tensor formats (core/quant.h): the traits table, IEEE half precision,
 * ggml's reference quantize / dequantize, the choice of kernels per instruction set at run
 * time, and qtx_qmatmul. The kernels themselves live in quant_generic.c (which defines the
 * results) and quant_avx2.c, quant_avx512.c, quant_neon.c.
 *
 * The q4_0 reference must not have x * id + 8.5f contracted into one fma (ggml rounds the
 * product first, and the truncation that follows can tell): GCC contracts across statements
 * in its GNU modes (-std=gnu17, the default without -std), so the function says so itself.
 */
#include "quant.h"

#include <math.h>
#include <stdatomic.h>
#include <string.h>

#include "check.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <cpuid.h>
#endif
#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#ifndef HWCAP_ASIMD
#define HWCAP_ASIMD (1 << 1)
#endif
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1 << 20)
#endif
#endif

/* ---- the per-ISA tables (defined in quant_<isa>.c) ---- */

extern const qtx_quant_kernels qtx_quant_kernels_generic;
void qtx_dot_f32_generic(int64_t n, float *s, const void *w, const void *x);
void qtx_dot_f16_generic(int64_t n, float *s, const void *w, const void *x);
#if defined(__x86_64__) || defined(_M_X64)
#define QTX_QUANT_X86 1
extern const qtx_quant_kernels qtx_quant_kernels_avx2;
extern const qtx_quant_kernels qtx_quant_kernels_avx512;
extern const qtx_quant_kernels qtx_quant_kernels_avx512_vnni;
void qtx_dot_f32_avx2(int64_t n, float *s, const void *w, const void *x);
void qtx_dot_f16_avx2(int64_t n, float *s, const void *w, const void *x);
void qtx_dot_f32_avx512(int64_t n, float *s, const void *w, const void *x);
void qtx_dot_f16_avx512(int64_t n, float *s, const void *w, const void *x);
#endif
#if defined(__aarch64__)
extern const qtx_quant_kernels qtx_quant_kernels_neon;
void qtx_dot_f32_neon(int64_t n, float *s, const void *w, const void *x);
void qtx_dot_f16_neon(int64_t n, float *s, const void *w, const void *x);
#endif

typedef struct isa_impl {
    const qtx_quant_kernels *k; /* NULL: not compiled into this build */
    qtx_vec_dot_fn dot_f32;     /* f32 weights, f32 activations */
    qtx_vec_dot_fn dot_f16;     /* f16 weights, f32 activations */
} isa_impl;

static const isa_impl g_impl[QTX_ISA_COUNT] = {
    [QTX_ISA_GENERIC] = {&qtx_quant_kernels_generic, qtx_dot_f32_generic, qtx_dot_f16_generic},
#ifdef QTX_QUANT_X86
    [QTX_ISA_AVX2] = {&qtx_quant_kernels_avx2, qtx_dot_f32_avx2, qtx_dot_f16_avx2},
    [QTX_ISA_AVX512] = {&qtx_quant_kernels_avx512, qtx_dot_f32_avx512, qtx_dot_f16_avx512},
    [QTX_ISA_AVX512_VNNI] = {&qtx_quant_kernels_avx512_vnni, qtx_dot_f32_avx512,
                             qtx_dot_f16_avx512},
#endif
#if defined(__aarch64__)
    [QTX_ISA_NEON] = {&qtx_quant_kernels_neon, qtx_dot_f32_neon, qtx_dot_f16_neon},
#endif
};

static const char *const g_isa_names[QTX_ISA_COUNT] = {"generic", "avx2", "avx512", "avx512-vnni",
                                                       "neon"};

const char *qtx_isa_name(qtx_isa isa) {
    return (unsigned)isa < QTX_ISA_COUNT ? g_isa_names[isa] : "unknown";
}

#ifdef QTX_QUANT_X86
/* clang's __builtin_cpu_supports does not know "f16c"; the OS side is AVX's, which the avx2
 * check covers. */
static int cpu_has_f16c(void) {
    unsigned a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C);
}
#endif

/* Whether this CPU (and its OS, which must save the wider registers) runs isa. */
static int cpu_has(qtx_isa isa) {
    switch (isa) {
    case QTX_ISA_GENERIC:
        return 1;
#ifdef QTX_QUANT_X86
    case QTX_ISA_AVX2:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && cpu_has_f16c();
    case QTX_ISA_AVX512:
        return cpu_has(QTX_ISA_AVX2) && __builtin_cpu_supports("avx512f") &&
               __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
    case QTX_ISA_AVX512_VNNI:
        return cpu_has(QTX_ISA_AVX512) && __builtin_cpu_supports("avx512vnni");
#endif
#if defined(__aarch64__)
    case QTX_ISA_NEON: {
#if defined(__linux__)
        unsigned long hw = getauxval(AT_HWCAP);
        int ok = (hw & HWCAP_ASIMD) != 0;
#if defined(__ARM_FEATURE_DOTPROD)
        ok = ok && (hw & HWCAP_ASIMDDP) != 0; /* the kernels were compiled with sdot */
#endif
        return ok;
#else
        return 1;
#endif
    }
#endif
    default:
        return 0;
    }
}

const qtx_quant_kernels *qtx_quant_kernels_for(qtx_isa isa) {
    if ((unsigned)isa >= QTX_ISA_COUNT || !g_impl[isa].k) return NULL;
    return cpu_has(isa) ? g_impl[isa].k : NULL;
}

const qtx_quant_kernels *qtx_quant_kernels_best(void) {
    static _Atomic(const qtx_quant_kernels *) best;
    const qtx_quant_kernels *k = atomic_load_explicit(&best, memory_order_acquire);
    if (k) return k;
    for (int i = QTX_ISA_COUNT - 1; i >= 0 && !k; i--) k = qtx_quant_kernels_for((qtx_isa)i);
    atomic_store_explicit(&best, k, memory_order_release);
    return k;
}

/* ---- IEEE half precision ---- */

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

qtx_f16 qtx_f32_to_f16(float f) {
    const uint32_t x = f32_bits(f);
    const uint32_t sign = (x >> 16) & 0x8000u;
    const uint32_t ax = x & 0x7FFFFFFFu;
    if (ax >= 0x7F800000u) /* inf, or NaN: quiet, the top payload bits kept (as F16C does) */
        return (qtx_f16)(sign | (ax > 0x7F800000u ? 0x7E00u | ((ax >> 13) & 0x3FFu) : 0x7C00u));
    if (ax >= 0x38800000u) {            /* >= 2^-14: a normal half unless it rounds past 65504 */
        uint32_t r = ax - 0x38000000u;  /* rebias the exponent: 127 -> 15 */
        r += 0x0FFFu + ((r >> 13) & 1); /* round the 23-bit mantissa to 10, ties to even */
        r >>= 13;
        return (qtx_f16)(sign | (r >= 0x7C00u ? 0x7C00u : r));
    }
    /* a subnormal half (units of 2^-24) or zero */
    const uint32_t e = ax >> 23;
    if (e < 102) return (qtx_f16)sign; /* below 2^-25: rounds to zero */
    const uint32_t m = (ax & 0x7FFFFFu) | 0x800000u;
    const uint32_t shift = 126 - e; /* value = m 2^(e - 150) = (m >> shift) 2^-24 */
    uint32_t q = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1))) q++; /* may carry into the smallest normal */
    return (qtx_f16)(sign | q);
}

float qtx_f16_to_f32(qtx_f16 h) {
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    const uint32_t e = (h >> 10) & 0x1Fu;
    uint32_t m = h & 0x3FFu;
    if (e == 0x1F) return bits_f32(sign | 0x7F800000u | (m << 13));
    if (e) return bits_f32(sign | ((e + 112) << 23) | (m << 13));
    if (!m) return bits_f32(sign);
    uint32_t ef = 113; /* subnormal: normalise m 2^-24 */
    while (!(m & 0x400u)) {
        m <<= 1;
        ef--;
    }
    return bits_f32(sign | (ef << 23) | ((m & 0x3FFu) << 13));
}

/* ---- reference conversions (ggml-quants.c) ---- */

#if defined(__GNUC__) && !defined(__clang__)
#define NO_FP_CONTRACT __attribute__((optimize("fp-contract=off")))
#else
#define NO_FP_CONTRACT /* clang contracts within one expression only */
#endif

void qtx_quantize_row_q8_0_ref(const float *x, void *vy, int64_t n) {
    QTX_CHECK(n % QTX_QK == 0, "q8_0 row of %lld values is not a multiple of 32", (long long)n);
    qtx_block_q8_0 *y = vy;
    for (int64_t i = 0; i < n / QTX_QK; i++) {
        const float *xb = x + i * QTX_QK;
        float amax = 0.0f;
        for (int j = 0; j < QTX_QK; j++) {
            const float v = fabsf(xb[j]);
            amax = amax > v ? amax : v;
        }
        const float d = amax / 127;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = qtx_f32_to_f16(d);
        for (int j = 0; j < QTX_QK; j++) y[i].qs[j] = (int8_t)roundf(xb[j] * id);
    }
}

NO_FP_CONTRACT void qtx_quantize_row_q4_0_ref(const float *x, void *vy, int64_t n) {
    QTX_CHECK(n % QTX_QK == 0, "q4_0 row of %lld values is not a multiple of 32", (long long)n);
    qtx_block_q4_0 *y = vy;
    for (int64_t i = 0; i < n / QTX_QK; i++) {
        const float *xb = x + i * QTX_QK;
        float amax = 0.0f, max = 0.0f; /* the value of largest magnitude, with its sign */
        for (int j = 0; j < QTX_QK; j++) {
            const float v = xb[j];
            if (amax < fabsf(v)) {
                amax = fabsf(v);
                max = v;
            }
        }
        const float d = max / -8;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = qtx_f32_to_f16(d);
        for (int j = 0; j < QTX_QK / 2; j++) {
            const float x0 = xb[j] * id, x1 = xb[j + QTX_QK / 2] * id;
            const int8_t i0 = (int8_t)(x0 + 8.5f), i1 = (int8_t)(x1 + 8.5f);
            const uint8_t q0 = (uint8_t)(i0 < 15 ? i0 : 15), q1 = (uint8_t)(i1 < 15 ? i1 : 15);
            y[i].qs[j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

/* 17 roundings put the largest magnitude at level -7 to -9 (clipped to -8); each gets the
 * least-squares scale of its levels, and the one of least error is kept. ggml's rounding is
 * the middle one, so no block is worse than ggml's but for the f16 rounding of the scale. */
void qtx_quantize_row_q4_0_fit(const float *x, void *vy, int64_t n) {
    QTX_CHECK(n % QTX_QK == 0, "q4_0 row of %lld values is not a multiple of 32", (long long)n);
    qtx_block_q4_0 *y = vy;
    for (int64_t b = 0; b < n / QTX_QK; b++, x += QTX_QK) {
        float amax = 0.0f, m = 0.0f;
        for (int i = 0; i < QTX_QK; i++)
            if (fabsf(x[i]) > amax) amax = fabsf(x[i]), m = x[i];
        float best_d = 0.0f, best_err = INFINITY;
        for (int is = -8; is <= 8 && amax > 0.0f; is++) {
            const float inv = (-8.0f + 0.125f * (float)is) / m;
            float sxl = 0.0f, sll = 0.0f;
            for (int i = 0; i < QTX_QK; i++) {
                const float l = fminf(fmaxf(roundf(inv * x[i]), -8.0f), 7.0f);
                sxl += x[i] * l;
                sll += l * l;
            }
            if (sll == 0.0f) continue;
            /* error of the best scale for these levels: sum x^2 - sxl^2 / sll */
            const float err = -sxl * sxl / sll;
            if (err < best_err) best_err = err, best_d = sxl / sll;
        }
        const qtx_f16 dh = qtx_f32_to_f16(best_d);
        const float d = qtx_f16_to_f32(dh), id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = dh;
        for (int i = 0; i < QTX_QK / 2; i++) {
            const float a = fminf(fmaxf(roundf(x[i] * id), -8.0f), 7.0f);
            const float c = fminf(fmaxf(roundf(x[i + QTX_QK / 2] * id), -8.0f), 7.0f);
            y[b].qs[i] = (uint8_t)((int)a + 8) | (uint8_t)(((int)c + 8) << 4);
        }
    }
}

void qtx_dequantize_row_q8_0(const void *vx, float *y, int64_t n) {
    QTX_CHECK(n % QTX_QK == 0, "q8_0 row of %lld values is not a multiple of 32", (long long)n);
    const qtx_block_q8_0 *x = vx;
    for (int64_t i = 0; i < n / QTX_QK; i++) {
        const float d = qtx_f16_to_f32(x[i].d);
        for (int j = 0; j < QTX_QK; j++) y[i * QTX_QK + j] = (float)x[i].qs[j] * d;
    }
}

void qtx_dequantize_row_q4_0(const void *vx, float *y, int64_t n) {
    QTX_CHECK(n % QTX_QK == 0, "q4_0 row of %lld values is not a multiple of 32", (long long)n);
    const qtx_block_q4_0 *x = vx;
    for (int64_t i = 0; i < n / QTX_QK; i++) {
        const float d = qtx_f16_to_f32(x[i].d);
        for (int j = 0; j < QTX_QK / 2; j++) {
            y[i * QTX_QK + j] = (float)((x[i].qs[j] & 0x0F) - 8) * d;
            y[i * QTX_QK + j + QTX_QK / 2] = (float)((x[i].qs[j] >> 4) - 8) * d;
        }
    }
}

static void row_f32_copy(const float *x, void *y, int64_t n) {
    memcpy(y, x, (size_t)n * sizeof(float));
}

static void row_f32_uncopy(const void *x, float *y, int64_t n) {
    memcpy(y, x, (size_t)n * sizeof(float));
}

static void row_f32_to_f16(const float *x, void *vy, int64_t n) {
    qtx_f16 *y = vy;
    for (int64_t i = 0; i < n; i++) y[i] = qtx_f32_to_f16(x[i]);
}

static void row_f16_to_f32(const void *vx, float *y, int64_t n) {
    const qtx_f16 *x = vx;
    for (int64_t i = 0; i < n; i++) y[i] = qtx_f16_to_f32(x[i]);
}

/* ---- q4_0r and q8r (quant.h): where each value lies ---- */

/* Block b of a row of nb blocks: the offset of its group in the row's nibbles, the group's
 * size G (0: a remaining block, kept as q4_0's 16 bytes) and b's place k in the group. */
static size_t r_group(int64_t nb, int64_t b, int *G, int *k) {
    const int64_t n16 = nb / 16 * 16, n8 = n16 + (nb - n16) / 8 * 8;
    if (b < n16) {
        *G = 16;
        *k = (int)(b % 16);
        return (size_t)(b / 16) * 256;
    }
    *G = b < n8 ? 8 : 0;
    *k = *G ? (int)(b - n16) : 0;
    return (size_t)(*G ? n16 : b) * (QTX_QK / 2);
}

/* Byte j of a q4_0 block already pairs the values q4_0r pairs (j and 16 + j), so packing
 * moves four bytes at a time: bytes 4 c .. 4 c + 3 of block k go to slice c of its group. */
static void r_put(uint8_t *r, int64_t nb, int64_t b, const qtx_block_q4_0 *q) {
    int G, k;
    uint8_t *nib = r + 2 * nb + r_group(nb, b, &G, &k);
    memcpy(r + 2 * b, &q->d, sizeof q->d);
    if (!G) {
        memcpy(nib, q->qs, sizeof q->qs);
        return;
    }
    for (int c = 0; c < 4; c++) memcpy(nib + 4 * G * c + 4 * k, q->qs + 4 * c, 4);
}

/* Block b of a q4_0r row, as q4_0. */
static void r_get(const uint8_t *r, int64_t nb, int64_t b, qtx_block_q4_0 *q) {
    int G, k;
    const uint8_t *nib = r + 2 * nb + r_group(nb, b, &G, &k);
    memcpy(&q->d, r + 2 * b, sizeof q->d);
    if (!G) {
        memcpy(q->qs, nib, sizeof q->qs);
        return;
    }
    for (int c = 0; c < 4; c++) memcpy(q->qs + 4 * c, nib + 4 * G * c + 4 * k, 4);
}

/* The 32 quants of block b into / out of a q8r-ordered area q (a q8r activation row's or a
 * q8_0r weight row's), four at a time. */
static void q8r_put(int8_t *q, int64_t nb, int64_t b, const int8_t *qs) {
    int G, k;
    int8_t *at = q + 2 * r_group(nb, b, &G, &k);
    if (!G) {
        memcpy(at, qs, QTX_QK);
        return;
    }
    for (int s = 0; s < 8; s++) memcpy(at + 4 * G * s + 4 * k, qs + 4 * (s % 4) + 16 * (s / 4), 4);
}

static void q8r_get(const int8_t *q, int64_t nb, int64_t b, int8_t *qs) {
    int G, k;
    const int8_t *at = q + 2 * r_group(nb, b, &G, &k);
    if (!G) {
        memcpy(qs, at, QTX_QK);
        return;
    }
    for (int s = 0; s < 8; s++) memcpy(qs + 4 * (s % 4) + 16 * (s / 4), at + 4 * G * s + 4 * k, 4);
}

/* Block b of a q8_0r row: its scale, then its quants in q8r's order. */
static void r8_put(uint8_t *r, int64_t nb, int64_t b, const qtx_block_q8_0 *q) {
    memcpy(r + 2 * b, &q->d, sizeof q->d);
    q8r_put((int8_t *)(r + 2 * nb), nb, b, q->qs);
}

void qtx_q8_0r_pack_row(const void *vq, void *vr, int64_t n) {
    const qtx_block_q8_0 *q = vq;
    for (int64_t b = 0; b < n / QTX_QK; b++) r8_put(vr, n / QTX_QK, b, &q[b]);
}

void qtx_q8_0r_get_block(const void *row, int64_t n, int64_t b, qtx_block_q8_0 *q) {
    const uint8_t *r = row;
    memcpy(&q->d, r + 2 * b, sizeof q->d);
    q8r_get((const int8_t *)(r + 2 * (n / QTX_QK)), n / QTX_QK, b, q->qs);
}

void qtx_q8_0r_unpack_row(const void *vr, void *vq, int64_t n) {
    qtx_block_q8_0 *q = vq;
    for (int64_t b = 0; b < n / QTX_QK; b++) qtx_q8_0r_get_block(vr, n, b, &q[b]);
}

void qtx_q4_0r_pack_row(const void *vq, void *vr, int64_t n) {
    const qtx_block_q4_0 *q = vq;
    for (int64_t b = 0; b < n / QTX_QK; b++) r_put(vr, n / QTX_QK, b, &q[b]);
}

void qtx_q4_0r_unpack_row(const void *vr, void *vq, int64_t n) {
    qtx_block_q4_0 *q = vq;
    for (int64_t b = 0; b < n / QTX_QK; b++) r_get(vr, n / QTX_QK, b, &q[b]);
}

size_t qtx_q8r_row_bytes(int64_t n) {
    return ((size_t)n + 2 * (size_t)(n / QTX_QK) * sizeof(float) + 63) / 64 * 64;
}

/* The floats a gemv or a q8r row carries per activation block: xd = d_x and cx = -8 d_x
 * sum(x), the -8 of every q4_0 nibble applied as d_w cx. */
static void x_block_floats(const qtx_block_q8_0 *x, int64_t nb, float *xd, float *cx) {
    for (int64_t b = 0; b < nb; b++) {
        int32_t sum = 0;
        for (int j = 0; j < QTX_QK; j++) sum += x[b].qs[j];
        xd[b] = qtx_f16_to_f32(x[b].d);
        cx[b] = -8.0f * (float)sum * xd[b];
    }
}

void qtx_q8r_from_q8_0(const void *vx, void *vr, int64_t n) {
    const qtx_block_q8_0 *x = vx;
    const int64_t nb = n / QTX_QK;
    int8_t *q = vr;
    for (int64_t b = 0; b < nb; b++) q8r_put(q, nb, b, x[b].qs);
    float *xd = (float *)(void *)(q + n);
    x_block_floats(x, nb, xd, xd + nb);
}

void qtx_q4_0r_get_block(const void *row, int64_t n, int64_t b, qtx_block_q4_0 *q) {
    r_get(row, n / QTX_QK, b, q);
}

void qtx_q8r_get_block(const void *xrow, int64_t n, int64_t b, qtx_block_q8_0 *x) {
    const qtx_q8r_row p = qtx_q8r_parts(xrow, n);
    q8r_get(p.q, n / QTX_QK, b, x->qs);
    x->d = qtx_f32_to_f16(p.d[b]); /* exact: it was an f16 */
}

/* The traits' conversions of q4_0r rows: block by block, through q4_0. */
static void quantize_row_q4_0r(const float *x, void *vr, int64_t n) {
    for (int64_t b = 0; b < n / QTX_QK; b++) {
        qtx_block_q4_0 q;
        qtx_quantize_row_q4_0_ref(x + b * QTX_QK, &q, QTX_QK);
        r_put(vr, n / QTX_QK, b, &q);
    }
}

static void dequantize_row_q4_0r(const void *vr, float *y, int64_t n) {
    for (int64_t b = 0; b < n / QTX_QK; b++) {
        qtx_block_q4_0 q;
        r_get(vr, n / QTX_QK, b, &q);
        qtx_dequantize_row_q4_0(&q, y + b * QTX_QK, QTX_QK);
    }
}

static void quantize_row_q8_0r(const float *x, void *vr, int64_t n) {
    for (int64_t b = 0; b < n / QTX_QK; b++) {
        qtx_block_q8_0 q;
        qtx_quantize_row_q8_0_ref(x + b * QTX_QK, &q, QTX_QK);
        r8_put(vr, n / QTX_QK, b, &q);
    }
}

static void dequantize_row_q8_0r(const void *vr, float *y, int64_t n) {
    for (int64_t b = 0; b < n / QTX_QK; b++) {
        qtx_block_q8_0 q;
        qtx_q8_0r_get_block(vr, n, b, &q);
        qtx_dequantize_row_q8_0(&q, y + b * QTX_QK, QTX_QK);
    }
}

/* ---- traits ---- */

static const qtx_qtype_traits g_traits[] = {
    {"f32", QTX_Q_F32, 1, sizeof(float), 0, QTX_Q_F32, row_f32_copy, row_f32_uncopy},
    {"f16", QTX_Q_F16, 1, sizeof(qtx_f16), 0, QTX_Q_F32, row_f32_to_f16, row_f16_to_f32},
    {"q4_0", QTX_Q_Q4_0, QTX_QK, sizeof(qtx_block_q4_0), 1, QTX_Q_Q8_0, qtx_quantize_row_q4_0_ref,
     qtx_dequantize_row_q4_0},
    {"q8_0", QTX_Q_Q8_0, QTX_QK, sizeof(qtx_block_q8_0), 1, QTX_Q_Q8_0, qtx_quantize_row_q8_0_ref,
     qtx_dequantize_row_q8_0},
    {"q4_0r", QTX_Q_Q4_0R, QTX_QK, sizeof(qtx_block_q4_0), 1, QTX_Q_Q8_0, quantize_row_q4_0r,
     dequantize_row_q4_0r},
    {"q8_0r", QTX_Q_Q8_0R, QTX_QK, sizeof(qtx_block_q8_0), 1, QTX_Q_Q8_0, quantize_row_q8_0r,
     dequantize_row_q8_0r},
};

_Static_assert(sizeof(qtx_block_q8_0) == 34, "q8_0 blocks are 34 bytes (ggml's block_q8_0)");
_Static_assert(sizeof(qtx_block_q4_0) == 18, "q4_0 blocks are 18 bytes (ggml's block_q4_0)");

const qtx_qtype_traits *qtx_qtype_get(qtx_qtype t) {
    for (size_t i = 0; i < sizeof g_traits / sizeof g_traits[0]; i++)
        if (g_traits[i].type == t) return &g_traits[i];
    return NULL;
}

/* The traits of t; an unsupported id is a broken invariant here (readers check ids first). */
static const qtx_qtype_traits *traits_of(qtx_qtype t, const char *where) {
    const qtx_qtype_traits *tr = qtx_qtype_get(t);
    QTX_CHECK(tr, "%s: unsupported tensor type id %d", where, (int)t);
    return tr;
}

size_t qtx_qtype_row_bytes(qtx_qtype t, int64_t n) {
    const qtx_qtype_traits *tr = traits_of(t, "qtx_qtype_row_bytes");
    QTX_CHECK(n >= 0 && n % tr->block_size == 0, "%s row of %lld values is not a multiple of %lld",
              tr->name, (long long)n, (long long)tr->block_size);
    return (size_t)(n / tr->block_size) * tr->block_bytes;
}

/* ---- matrix products ---- */

/* Scratch: the q8_0 activation rows, then (64-byte aligned) the float pairs a gemv takes
 * (xd, then cx; one activation row only, but sized for m so the size has one formula). */
static size_t xf_offset(int64_t m, int64_t n) {
    return ((size_t)m * qtx_qtype_row_bytes(QTX_Q_Q8_0, n - n % QTX_QK) + 63) / 64 * 64;
}

/* ... then (64-byte aligned) the q8r rows for q4_0r weights. */
static size_t q8r_offset(int64_t m, int64_t n) {
    return (xf_offset(m, n) + (size_t)(2 * m * (n / QTX_QK)) * sizeof(float) + 63) / 64 * 64;
}

size_t qtx_qmatmul_scratch_bytes(qtx_qtype wt, int64_t n, int64_t m) {
    const qtx_qtype_traits *tr = traits_of(wt, "qtx_qmatmul_scratch_bytes");
    if (tr->dot_type == QTX_Q_F32) return 0; /* activations are used as they are */
    if (wt == QTX_Q_Q4_0R || wt == QTX_Q_Q8_0R)
        return q8r_offset(m, n) + (size_t)m * qtx_q8r_row_bytes(n);
    return xf_offset(m, n) + (size_t)(2 * m * (n / QTX_QK)) * sizeof(float);
}

qtx_qtype qtx_qtype_repacked(const qtx_quant_kernels *k, qtx_qtype t) {
    if (!k) k = qtx_quant_kernels_best();
    if (k->isa == QTX_ISA_GENERIC) return t;
    if (t == QTX_Q_Q4_0 && k->tile_q4_0r_q8r) return QTX_Q_Q4_0R;
    if (t == QTX_Q_Q8_0 && k->tile_q8_0r_q8r) return QTX_Q_Q8_0R;
    return t;
}

void qtx_tile_by_dot(qtx_vec_dot_fn dot, int64_t n, int nr, int nc, const void *w, size_t w_row,
                     const void *x, size_t x_row, float *y, int64_t ldy) {
    for (int c = 0; c < nc; c++)
        for (int r = 0; r < nr; r++)
            dot(n, &y[(int64_t)c * ldy + r], (const char *)w + (size_t)r * w_row,
                (const char *)x + (size_t)c * x_row);
}

/* Weight rows per task: a tile's worth for batches of quantized weights, else 8 rows that
 * stay in cache while they meet every activation row. */
#define QMM_ROWS 8

typedef struct qmm_part {
    const char *w;
    size_t w_row;
    int64_t rows;
    float *Y;
    qtx_vec_dot_fn dot; /* one of dot / tile */
    qtx_tile_fn tile;
    qtx_gemv_fn gemv;
    const char *xa; /* the activations in the form the kernel reads */
    size_t x_row;
    int64_t rows_per_task, task0, n_tasks;
} qmm_part;

/* Rows [r0, r0 + nr) of one part against every activation row. */
static void qmm_task(const qmm_part *p, int64_t m, int64_t n, int64_t r0, int64_t nr,
                     const float *xf) {
    if (p->gemv) {
        p->gemv(n, nr, p->w + (size_t)r0 * p->w_row, p->w_row, p->xa, xf, xf + n / QTX_QK,
                &p->Y[r0]);
        return;
    }
    if (p->tile) {
        for (int64_t c0 = 0; c0 < m; c0 += QTX_TILE_C) {
            const int nc = (int)(m - c0 < QTX_TILE_C ? m - c0 : QTX_TILE_C);
            p->tile(n, (int)nr, nc, p->w + (size_t)r0 * p->w_row, p->w_row,
                    p->xa + (size_t)c0 * p->x_row, p->x_row, &p->Y[c0 * p->rows + r0], p->rows);
        }
        return;
    }
    for (int64_t i = 0; i < m; i++)
        for (int64_t r = r0; r < r0 + nr; r++)
            p->dot(n, &p->Y[i * p->rows + r], p->w + (size_t)r * p->w_row,
                   p->xa + (size_t)i * p->x_row);
}

void qtx_qmatmul_many(const qtx_quant_kernels *k, const qtx_qmm *ws, int n_w, int64_t n,
                      const float *X, int64_t m, void *scratch) {
    if (!k) k = qtx_quant_kernels_best();
    QTX_CHECK((unsigned)k->isa < QTX_ISA_COUNT && g_impl[k->isa].k == k,
              "qtx_qmatmul: unknown kernel table");
    QTX_CHECK(n_w >= 1 && n_w <= QTX_QMM_MAX && m >= 0 && n >= 0,
              "qtx_qmatmul: %d weights (1..%d), m = %lld, n = %lld", n_w, QTX_QMM_MAX, (long long)m,
              (long long)n);
    const size_t xq_row = qtx_qtype_row_bytes(QTX_Q_Q8_0, n - n % QTX_QK);
    qmm_part parts[QTX_QMM_MAX];
    int64_t n_tasks = 0, work = 0;
    int quantized = 0, use_xf = 0, use_q8r = 0;
    for (int i = 0; i < n_w; i++) {
        const qtx_qtype wt = ws[i].wt;
        const qtx_qtype_traits *tr = traits_of(wt, "qtx_qmatmul");
        QTX_CHECK(ws[i].rows >= 0 && n % tr->block_size == 0,
                  "qtx_qmatmul: %s weights need n %% %lld == 0 (n = %lld)", tr->name,
                  (long long)tr->block_size, (long long)n);
        qmm_part *p = &parts[i];
        memset(p, 0, sizeof *p);
        p->w = ws[i].W;
        p->w_row = qtx_qtype_row_bytes(wt, n);
        p->rows = ws[i].rows;
        p->Y = ws[i].Y;
        p->rows_per_task = QMM_ROWS;
        switch (wt) {
        case QTX_Q_F32:
        case QTX_Q_F16:
            p->dot = wt == QTX_Q_F32 ? g_impl[k->isa].dot_f32 : g_impl[k->isa].dot_f16;
            p->xa = (const char *)X;
            p->x_row = (size_t)n * sizeof(float);
            break;
        case QTX_Q_Q8_0:
        case QTX_Q_Q4_0:
            /* A batch runs in tiles; one activation row streams each weight row front to
             * back, which keeps the prefetchers further ahead than a tile's rows do. */
            if (m > 1) {
                p->tile = wt == QTX_Q_Q8_0 ? k->tile_q8_0_q8_0 : k->tile_q4_0_q8_0;
                p->rows_per_task = QTX_TILE_R;
            } else {
                p->dot = wt == QTX_Q_Q8_0 ? k->dot_q8_0_q8_0 : k->dot_q4_0_q8_0;
                p->gemv = wt == QTX_Q_Q4_0 ? k->gemv_q4_0_q8_0 : k->gemv_q8_0_q8_0;
                use_xf |= p->gemv != NULL;
            }
            p->xa = scratch;
            p->x_row = xq_row;
            quantized = 1;
            break;
        case QTX_Q_Q4_0R: /* tiles for any m: the rows of a matrix-vector task in one call */
        case QTX_Q_Q8_0R: {
            const qtx_quant_kernels *g = &qtx_quant_kernels_generic;
            p->tile = wt == QTX_Q_Q4_0R
                          ? (k->tile_q4_0r_q8r ? k->tile_q4_0r_q8r : g->tile_q4_0r_q8r)
                          : (k->tile_q8_0r_q8r ? k->tile_q8_0r_q8r : g->tile_q8_0r_q8r);
            p->rows_per_task = m > 1 ? QTX_TILE_R : QMM_ROWS;
            p->xa = (const char *)scratch + q8r_offset(m, n);
            p->x_row = qtx_q8r_row_bytes(n);
            quantized = use_q8r = 1;
            break;
        }
        default:
            QTX_CHECK(0, "qtx_qmatmul: unsupported weight type %s", tr->name);
        }
        p->task0 = n_tasks;
        p->n_tasks = (p->rows + p->rows_per_task - 1) / p->rows_per_task;
        n_tasks += p->n_tasks;
        work += p->rows * n * m;
    }
    if (quantized) { /* the activations once to q8_0, for every quantized weight */
        QTX_CHECK(scratch || m == 0 || n == 0, "qtx_qmatmul: quantized weights need scratch");
#pragma omp parallel for schedule(static) if (m > 1 && m * n >= 65536)
        for (int64_t i = 0; i < m; i++) {
            char *xq = (char *)scratch + (size_t)i * xq_row;
            k->quantize_row_q8_0(X + i * n, xq, n);
            if (use_q8r)
                qtx_q8r_from_q8_0(
                    xq, (char *)scratch + q8r_offset(m, n) + (size_t)i * qtx_q8r_row_bytes(n), n);
        }
    }
    float *xf = quantized ? (float *)(void *)((uint8_t *)scratch + xf_offset(m, n)) : NULL;
    if (use_xf) /* m == 1: d_x and -8 d_x sum(x) per block */
        x_block_floats(scratch, n / QTX_QK, xf, xf + n / QTX_QK);
        /* One loop over the tasks of all the weights: one fork and join for the whole group.
         * Guided: each thread takes a long run of rows first (one stream for the prefetchers),
         * then ever shorter ones, so a slower core (a busy hyperthread, a VM's shared vCPU) no
         * longer leaves the others waiting at the join. Each row's result is the same on any
         * thread. */
#pragma omp parallel for schedule(guided, 2) if (work >= 65536)
    for (int64_t t = 0; t < n_tasks; t++) {
        int i = 0;
        while (t >= parts[i].task0 + parts[i].n_tasks) i++;
        const qmm_part *p = &parts[i];
        const int64_t r0 = (t - p->task0) * p->rows_per_task;
        qmm_task(p, m, n, r0, p->rows - r0 < p->rows_per_task ? p->rows - r0 : p->rows_per_task,
                 xf);
    }
}

void qtx_qmatmul_with(const qtx_quant_kernels *k, qtx_qtype wt, const void *W, int64_t rows,
                      int64_t n, const float *X, int64_t m, float *Y, void *scratch) {
    const qtx_qmm w = {wt, W, rows, Y};
    qtx_qmatmul_many(k, &w, 1, n, X, m, scratch);
}

void qtx_qmatmul(qtx_qtype wt, const void *W, int64_t rows, int64_t n, const float *X, int64_t m,
                 float *Y, void *scratch) {
    qtx_qmatmul_with(NULL, wt, W, rows, n, X, m, Y, scratch);
}
