/* quant_avx512.c: the AVX-512 kernels of core/quant.h (F + BW + VL, and a variant using VNNI's
 * vpdpbusd where the CPU has it), chosen at run time.
 *
 * Compiled on any x86-64 build (each function carries its target), empty elsewhere. Two
 * blocks share one 512-bit register; every block sum is exact over the whole int8 range:
 *   q4_0 x q8_0: unsigned nibbles u times signed x, minus 8 sum(x)
 *                (vpmaddubsw pairs, or vpdpbusd quads with VNNI)
 *   q8_0 x q8_0: widened to int16 and vpmaddwd; with VNNI (w + 128) x minus 128 sum(x),
 *                since vpdpbusd takes one unsigned operand.
 * Eight blocks' sums are gathered into one vector, converted and scaled once per block. The
 * activation quantizer gives the reference bytes (round half away from zero, like roundf).
 */
#if defined(__x86_64__) || defined(_M_X64)

#include <immintrin.h>

#include "quant.h"

#define AVX512 __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl")))
#define VNNI __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")))

/* ---- shared helpers and the matrix tiles (quant_tile_x86.h): 256-bit, with AVX-512VL's 32
 * registers; VNNI's vpdpbusd sums the four products of each lane in one instruction, without
 * vpmaddubsw's int16 step ---- */

#define TILE_ATTR AVX512
#define TILE_PAIR(a, b) _mm256_madd_epi16(_mm256_maddubs_epi16(a, b), _mm256_set1_epi16(1))
#define TILE_NAME(x) avx512_##x
#include "quant_tile_x86.h"
#undef TILE_ATTR
#undef TILE_PAIR
#undef TILE_NAME
#define TILE_ATTR VNNI
#define TILE_PAIR(a, b) _mm256_dpbusd_epi32(_mm256_setzero_si256(), a, b)
#define TILE_NAME(x) vnni_##x
#include "quant_tile_x86.h"

/* Pair registers [block b (8 lanes) | block b + 1 (8 lanes)] of blocks b..b+7 -> their sums. */
static inline AVX512 __m256i reduce_pairs(__m512i z0, __m512i z1, __m512i z2, __m512i z3) {
#define LO(z) _mm512_castsi512_si256(z)
#define HI(z) _mm512_extracti64x4_epi64(z, 1)
    return avx512_reduce8(LO(z0), HI(z0), LO(z1), HI(z1), LO(z2), HI(z2), LO(z3), HI(z3));
#undef LO
#undef HI
}

#define SCALES8(p)                                                                                 \
    _mm256_cvtph_ps(_mm_setr_epi16((short)(p)[0].d, (short)(p)[1].d, (short)(p)[2].d,              \
                                   (short)(p)[3].d, (short)(p)[4].d, (short)(p)[5].d,              \
                                   (short)(p)[6].d, (short)(p)[7].d))

/* The 64 signed values of two q8_0 blocks. */
static inline AVX512 __m512i load2_q8(const qtx_block_q8_0 *x) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)x[0].qs)),
                              _mm256_loadu_si256((const __m256i *)x[1].qs), 1);
}

/* The 64 nibbles (0..15) of two q4_0 blocks, in value order. */
static inline AVX512 __m512i load2_q4(const qtx_block_q4_0 *w) {
    const __m256i raw = _mm256_set_m128i(_mm_loadu_si128((const __m128i *)w[1].qs),
                                         _mm_loadu_si128((const __m128i *)w[0].qs));
    /* 128-bit lanes [w0 low, w1 low, w0 high, w1 high] -> [w0 low, w0 high, w1 low, w1 high] */
    __m512i z = _mm512_inserti64x4(_mm512_castsi256_si512(raw), _mm256_srli_epi16(raw, 4), 1);
    z = _mm512_shuffle_i64x2(z, z, _MM_SHUFFLE(3, 1, 2, 0));
    return _mm512_and_si512(z, _mm512_set1_epi8(0x0F));
}

/* Single blocks (the tail of a row), eight int32 lanes summing to the block's sum. */
static inline AVX512 __m256i part1_q8_0_q8_0(const qtx_block_q8_0 *w, const qtx_block_q8_0 *x) {
    const __m512i p =
        _mm512_madd_epi16(_mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)w->qs)),
                          _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)x->qs)));
    return _mm256_add_epi32(_mm512_castsi512_si256(p), _mm512_extracti64x4_epi64(p, 1));
}

static inline AVX512 __m256i part1_q4_0_q8_0(const qtx_block_q4_0 *w, const qtx_block_q8_0 *x) {
    const __m256i q4 = avx512_nibbles((const uint8_t *)w);
    const __m256i y = _mm256_loadu_si256((const __m256i *)x->qs);
    const __m256i p = _mm256_maddubs_epi16(q4, y);
    const __m256i c = _mm256_maddubs_epi16(_mm256_set1_epi8(8), y);
    return _mm256_madd_epi16(_mm256_sub_epi16(p, c), _mm256_set1_epi16(1));
}

/* ---- AVX-512 F + BW ---- */

static inline AVX512 __m512i pair_q8_0_q8_0(const qtx_block_q8_0 *w, const qtx_block_q8_0 *x) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(part1_q8_0_q8_0(w, x)),
                              part1_q8_0_q8_0(w + 1, x + 1), 1);
}

static inline AVX512 __m512i pair_q4_0_q8_0(const qtx_block_q4_0 *w, const qtx_block_q8_0 *x) {
    const __m512i q4 = load2_q4(w), y = load2_q8(x);
    const __m512i p = _mm512_maddubs_epi16(q4, y);                  /* |pair| <= 3840 */
    const __m512i c = _mm512_maddubs_epi16(_mm512_set1_epi8(8), y); /* |pair| <= 2048 */
    return _mm512_madd_epi16(_mm512_sub_epi16(p, c), _mm512_set1_epi16(1));
}

/* ---- AVX-512 VNNI ---- */

static inline VNNI __m512i pair_q8_0_q8_0_vnni(const qtx_block_q8_0 *w, const qtx_block_q8_0 *x) {
    const __m512i k128 = _mm512_set1_epi8((char)0x80);
    const __m512i u = _mm512_xor_si512(load2_q8(w), k128), y = load2_q8(x); /* u = w + 128 */
    const __m512i z = _mm512_setzero_si512();
    return _mm512_sub_epi32(_mm512_dpbusd_epi32(z, u, y), _mm512_dpbusd_epi32(z, k128, y));
}

static inline VNNI __m512i pair_q4_0_q8_0_vnni(const qtx_block_q4_0 *w, const qtx_block_q8_0 *x) {
    const __m512i q4 = load2_q4(w), y = load2_q8(x), z = _mm512_setzero_si512();
    return _mm512_sub_epi32(_mm512_dpbusd_epi32(z, q4, y),
                            _mm512_dpbusd_epi32(z, _mm512_set1_epi8(8), y));
}

static inline VNNI __m256i part1_q8_0_q8_0_vnni(const qtx_block_q8_0 *w, const qtx_block_q8_0 *x) {
    const __m256i k128 = _mm256_set1_epi8((char)0x80), z = _mm256_setzero_si256();
    const __m256i u = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)w->qs), k128);
    const __m256i y = _mm256_loadu_si256((const __m256i *)x->qs);
    return _mm256_sub_epi32(_mm256_dpbusd_epi32(z, u, y), _mm256_dpbusd_epi32(z, k128, y));
}

static inline VNNI __m256i part1_q4_0_q8_0_vnni(const qtx_block_q4_0 *w, const qtx_block_q8_0 *x) {
    const __m256i q4 = vnni_nibbles((const uint8_t *)w);
    const __m256i y = _mm256_loadu_si256((const __m256i *)x->qs), z = _mm256_setzero_si256();
    return _mm256_sub_epi32(_mm256_dpbusd_epi32(z, q4, y),
                            _mm256_dpbusd_epi32(z, _mm256_set1_epi8(8), y));
}

/* ---- the kernels, once per (ISA, format) ---- */

#define SUMS8(PAIR, w, x)                                                                          \
    reduce_pairs(PAIR(w, x), PAIR((w) + 2, (x) + 2), PAIR((w) + 4, (x) + 4), PAIR((w) + 6, (x) + 6))

#define DEFINE_KERNELS(NAME, ATTR, WT, PAIR, PART1)                                                \
    static ATTR void blocks_##NAME(int64_t nb, int32_t *isum, const void *vw, const void *vx) {    \
        const WT *w = vw;                                                                          \
        const qtx_block_q8_0 *x = vx;                                                              \
        int64_t b = 0;                                                                             \
        for (; b + 8 <= nb; b += 8)                                                                \
            _mm256_storeu_si256((__m256i *)(isum + b), SUMS8(PAIR, w + b, x + b));                 \
        for (; b < nb; b++) isum[b] = avx512_hsum_i32(PART1(w + b, x + b));                        \
    }                                                                                              \
    static ATTR void dot_##NAME(int64_t n, float *s, const void *vw, const void *vx) {             \
        const WT *w = vw;                                                                          \
        const qtx_block_q8_0 *x = vx;                                                              \
        const int64_t nb = n / QTX_QK;                                                             \
        __m256 acc = _mm256_setzero_ps();                                                          \
        int64_t b = 0;                                                                             \
        for (; b + 8 <= nb; b += 8) {                                                              \
            /* a decode step streams the row: 4 KiB ahead, as quant_avx2.c measured */             \
            _mm_prefetch((const char *)(w + b) + 4096, _MM_HINT_T0);                               \
            const __m256 d = _mm256_mul_ps(SCALES8(w + b), SCALES8(x + b));                        \
            acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(SUMS8(PAIR, w + b, x + b)), d, acc);          \
        }                                                                                          \
        float sum = avx512_hsum(acc);                                                              \
        for (; b < nb; b++)                                                                        \
            sum += (float)avx512_hsum_i32(PART1(w + b, x + b)) *                                   \
                   (_cvtsh_ss(w[b].d) * _cvtsh_ss(x[b].d));                                        \
        *s = sum;                                                                                  \
    }

DEFINE_KERNELS(q8_0_q8_0, AVX512, qtx_block_q8_0, pair_q8_0_q8_0, part1_q8_0_q8_0)
DEFINE_KERNELS(q4_0_q8_0, AVX512, qtx_block_q4_0, pair_q4_0_q8_0, part1_q4_0_q8_0)
DEFINE_KERNELS(q8_0_q8_0_vnni, VNNI, qtx_block_q8_0, pair_q8_0_q8_0_vnni, part1_q8_0_q8_0_vnni)
DEFINE_KERNELS(q4_0_q8_0_vnni, VNNI, qtx_block_q4_0, pair_q4_0_q8_0_vnni, part1_q4_0_q8_0_vnni)

/* q4_0 and q8_0 decoding: the AVX2 gemvs (quant_avx2.c); AVX-512 ones are still to come. */
void qtx_gemv_q8_0_q8_0_avx2(int64_t n, int64_t rows, const void *w, size_t w_row, const void *x,
                             const float *xd, const float *cx, float *y);
void qtx_gemv_q4_0_q8_0_avx2(int64_t n, int64_t rows, const void *w, size_t w_row, const void *x,
                             const float *xd, const float *cx, float *y);
/* q4_0r and q8_0r without VNNI: the AVX2 tiles. */
void qtx_tile_q4_0r_q8r_avx2(int64_t n, int nr, int nc, const void *w, size_t w_row, const void *x,
                             size_t x_row, float *y, int64_t ldy);
void qtx_tile_q8_0r_q8r_avx2(int64_t n, int nr, int nc, const void *w, size_t w_row, const void *x,
                             size_t x_row, float *y, int64_t ldy);

/* ---- q4_0r / q8_0r x q8r (quant.h), VNNI ---- */

/* Bytes ahead of the weight stream to prefetch (quant_avx2.c's DOT_PF). */
#define R_PF 4096

#define R_INLINE static inline __attribute__((always_inline)) VNNI

/* A group's eight slices (four values of each block; S bytes apart) as vpdpbusd's unsigned
 * operand: q4_0r's nibbles (slice c's low nibbles, then its high ones), q8_0r's w + 128. */
R_INLINE void r_slices512(int q8, const uint8_t *g, __m512i u[8]) {
    const __m512i m4 = _mm512_set1_epi8(0x0F), k80 = _mm512_set1_epi8((char)0x80);
    for (int k = 0; k < (q8 ? 8 : 4); k++) {
        const __m512i v = _mm512_loadu_si512(g + 64 * k);
        if (q8) {
            u[k] = _mm512_xor_si512(v, k80);
        } else {
            u[k] = _mm512_and_si512(v, m4);
            u[4 + k] = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
        }
    }
}

R_INLINE void r_slices256(int q8, const uint8_t *g, __m256i u[8]) {
    const __m256i m4 = _mm256_set1_epi8(0x0F), k80 = _mm256_set1_epi8((char)0x80);
    for (int k = 0; k < (q8 ? 8 : 4); k++) {
        const __m256i v = _mm256_loadu_si256((const __m256i *)(g + 32 * k));
        if (q8) {
            u[k] = _mm256_xor_si256(v, k80);
        } else {
            u[k] = _mm256_and_si256(v, m4);
            u[4 + k] = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
        }
    }
}

/* A weight row meets up to QTX_TILE_C activation rows, each group of 16 blocks turned once
 * into its eight slices, which vpdpbusd sums lane by lane: lane k holds block k's exact sum of
 * the unsigned operand times x. Then per group one convert and two fmas: times d_w d_x, and
 * d_w kc times the activations' correction -8 d_x sum(x), which takes back q4_0r's -8 (kc = 1)
 * or q8_0r's +128 (kc = 16; exact). Against the q4_0 gemv (per block: nibble shuffles, a
 * horizontal reduction of eight lanes, scalar scale loads) q4_0r streamed 1.5x from L3 and
 * 1.7-2.3x from L2 (a harness on small's and m100's shapes, one thread). The group of 8 runs
 * the same in 256 bits; a remaining block alone. */
R_INLINE void r_tile(int q8, int64_t n, int nr, int nc, const void *vw, size_t w_row,
                     const void *vx, size_t x_row, float *y, int64_t ldy) {
    enum { C = QTX_TILE_C };
    const size_t bb = q8 ? QTX_QK : QTX_QK / 2; /* quant bytes per block */
    const float kc = q8 ? 16.0f : 1.0f;
    const int64_t nb = n / QTX_QK, n16 = nb / 16 * 16;
    qtx_q8r_row x[C];
    for (int c = 0; c < C; c++)
        x[c] = qtx_q8r_parts((const char *)vx + (size_t)(c < nc ? c : 0) * x_row, n);
    for (int r = 0; r < nr; r++) {
        const uint8_t *w = (const uint8_t *)vw + (size_t)r * w_row, *q = w + 2 * nb;
        __m512 acc[C], corr[C];
        for (int c = 0; c < C; c++) acc[c] = corr[c] = _mm512_setzero_ps();
        for (int64_t b = 0; b < n16; b += 16) {
            const uint8_t *g = q + b * bb;
            for (size_t k = 0; k < bb / 4; k++) /* the group's 16 bb bytes */
                _mm_prefetch((const char *)g + R_PF + 64 * k, _MM_HINT_T0);
            __m512i u[8];
            r_slices512(q8, g, u);
            const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(w + 2 * b)));
            const __m512 dwc = _mm512_mul_ps(dw, _mm512_set1_ps(kc));
            for (int c = 0; c < C; c++) {
                if (c >= nc) break;
                const int8_t *xg = x[c].q + b * QTX_QK;
                __m512i s0 = _mm512_setzero_si512(), s1 = _mm512_setzero_si512();
                for (int k = 0; k < 4; k++) {
                    s0 = _mm512_dpbusd_epi32(s0, u[k], _mm512_loadu_si512(xg + 64 * k));
                    s1 = _mm512_dpbusd_epi32(s1, u[4 + k], _mm512_loadu_si512(xg + 256 + 64 * k));
                }
                acc[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(s0, s1)),
                                         _mm512_mul_ps(dw, _mm512_loadu_ps(x[c].d + b)), acc[c]);
                corr[c] = _mm512_fmadd_ps(dwc, _mm512_loadu_ps(x[c].c + b), corr[c]);
            }
        }
        float sum[C];
        for (int c = 0; c < C; c++) sum[c] = _mm512_reduce_add_ps(_mm512_add_ps(acc[c], corr[c]));
        int64_t b = n16;
        if (nb - n16 >= 8) {
            __m256i u[8];
            r_slices256(q8, q + b * bb, u);
            const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + 2 * b)));
            const __m256 dwc = _mm256_mul_ps(dw, _mm256_set1_ps(kc));
            for (int c = 0; c < C; c++) {
                if (c >= nc) break;
                const int8_t *xg = x[c].q + b * QTX_QK;
                __m256i s0 = _mm256_setzero_si256(), s1 = _mm256_setzero_si256();
                for (int k = 0; k < 4; k++) {
                    s0 = _mm256_dpbusd_epi32(s0, u[k],
                                             _mm256_loadu_si256((const __m256i *)(xg + 32 * k)));
                    s1 = _mm256_dpbusd_epi32(
                        s1, u[4 + k], _mm256_loadu_si256((const __m256i *)(xg + 128 + 32 * k)));
                }
                const __m256 t = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_add_epi32(s0, s1)),
                                                 _mm256_mul_ps(dw, _mm256_loadu_ps(x[c].d + b)),
                                                 _mm256_mul_ps(dwc, _mm256_loadu_ps(x[c].c + b)));
                sum[c] += vnni_hsum(t);
            }
            b += 8;
        }
        for (; b < nb; b++) { /* a remaining block, laid out as in q4_0 / q8_0 */
            __m256i u;
            if (q8) {
                u = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(q + b * QTX_QK)),
                                     _mm256_set1_epi8((char)0x80));
            } else { /* values j and 16 + j in byte j */
                const __m128i v = _mm_loadu_si128((const __m128i *)(q + b * (QTX_QK / 2)));
                u = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(v, 4), v),
                                     _mm256_set1_epi8(0x0F));
            }
            const float dw = _cvtsh_ss((unsigned short)(w[2 * b] | w[2 * b + 1] << 8));
            for (int c = 0; c < C; c++) {
                if (c >= nc) break;
                const __m256i xv = _mm256_loadu_si256((const __m256i *)(x[c].q + b * QTX_QK));
                const int32_t is =
                    vnni_hsum_i32(_mm256_dpbusd_epi32(_mm256_setzero_si256(), u, xv));
                sum[c] += (float)is * (dw * x[c].d[b]) + kc * dw * x[c].c[b];
            }
        }
        for (int c = 0; c < C && c < nc; c++) y[(int64_t)c * ldy + r] = sum[c];
    }
}

static VNNI void tile_q4_0r_q8r(int64_t n, int nr, int nc, const void *w, size_t w_row,
                                const void *x, size_t x_row, float *y, int64_t ldy) {
    r_tile(0, n, nr, nc, w, w_row, x, x_row, y, ldy);
}

static VNNI void tile_q8_0r_q8r(int64_t n, int nr, int nc, const void *w, size_t w_row,
                                const void *x, size_t x_row, float *y, int64_t ldy) {
    r_tile(1, n, nr, nc, w, w_row, x, x_row, y, ldy);
}

/* Sixteen values of x * id rounded half away from zero (roundf), as int8. */
static inline AVX512 __m128i round_away_i8(__m512 p) {
    const __m512i sign = _mm512_set1_epi32((int)0x80000000u);
    const __m512 t = _mm512_roundscale_ps(p, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __m512 frac = _mm512_abs_ps(_mm512_sub_ps(p, t)); /* exact */
    const __m512 one = _mm512_castsi512_ps(_mm512_or_si512(
        _mm512_castps_si512(_mm512_set1_ps(1.0f)), _mm512_and_si512(_mm512_castps_si512(p), sign)));
    const __mmask16 up = _mm512_cmp_ps_mask(frac, _mm512_set1_ps(0.5f), _CMP_GE_OQ);
    return _mm512_cvtsepi32_epi8(_mm512_cvttps_epi32(_mm512_mask_add_ps(t, up, t, one)));
}

/* Same bytes as qtx_quantize_row_q8_0_ref. */
static AVX512 void quantize_row_q8_0(const float *x, void *vy, int64_t n) {
    qtx_block_q8_0 *y = vy;
    for (int64_t i = 0; i < n / QTX_QK; i++) {
        const __m512 v0 = _mm512_loadu_ps(x + i * QTX_QK);
        const __m512 v1 = _mm512_loadu_ps(x + i * QTX_QK + 16);
        const float amax =
            _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
        const float d = amax / 127;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = qtx_f32_to_f16(d);
        const __m512 vid = _mm512_set1_ps(id);
        _mm_storeu_si128((__m128i *)y[i].qs, round_away_i8(_mm512_mul_ps(v0, vid)));
        _mm_storeu_si128((__m128i *)(y[i].qs + 16), round_away_i8(_mm512_mul_ps(v1, vid)));
    }
}

AVX512 void qtx_dot_f32_avx512(int64_t n, float *s, const void *vw, const void *vx) {
    const float *w = vw, *x = vx;
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t i = 0;
    for (; i + 64 <= n; i += 64) {
        a0 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i), _mm512_loadu_ps(x + i), a0);
        a1 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i + 16), _mm512_loadu_ps(x + i + 16), a1);
        a2 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i + 32), _mm512_loadu_ps(x + i + 32), a2);
        a3 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i + 48), _mm512_loadu_ps(x + i + 48), a3);
    }
    for (; i < n; i += 16) {
        const __mmask16 k = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        a0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(k, w + i), _mm512_maskz_loadu_ps(k, x + i), a0);
    }
    *s = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

AVX512 void qtx_dot_f16_avx512(int64_t n, float *s, const void *vw, const void *vx) {
    const qtx_f16 *w = vw;
    const float *x = vx;
#define LOADH(p) _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(p)))
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t i = 0;
    for (; i + 64 <= n; i += 64) {
        a0 = _mm512_fmadd_ps(LOADH(w + i), _mm512_loadu_ps(x + i), a0);
        a1 = _mm512_fmadd_ps(LOADH(w + i + 16), _mm512_loadu_ps(x + i + 16), a1);
        a2 = _mm512_fmadd_ps(LOADH(w + i + 32), _mm512_loadu_ps(x + i + 32), a2);
        a3 = _mm512_fmadd_ps(LOADH(w + i + 48), _mm512_loadu_ps(x + i + 48), a3);
    }
#undef LOADH
    for (; i < n; i += 16) {
        const __mmask16 k = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        const __m512 wv = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(k, w + i));
        a0 = _mm512_fmadd_ps(wv, _mm512_maskz_loadu_ps(k, x + i), a0);
    }
    *s = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

const qtx_quant_kernels qtx_quant_kernels_avx512 = {
    .isa = QTX_ISA_AVX512,
    .name = "avx512",
    .quantize_row_q8_0 = quantize_row_q8_0,
    .dot_q8_0_q8_0 = dot_q8_0_q8_0,
    .dot_q4_0_q8_0 = dot_q4_0_q8_0,
    .blocks_q8_0_q8_0 = blocks_q8_0_q8_0,
    .blocks_q4_0_q8_0 = blocks_q4_0_q8_0,
    .tile_q8_0_q8_0 = avx512_tile_q8_0_q8_0,
    .tile_q4_0_q8_0 = avx512_tile_q4_0_q8_0,
    .gemv_q4_0_q8_0 = qtx_gemv_q4_0_q8_0_avx2,
    .gemv_q8_0_q8_0 = qtx_gemv_q8_0_q8_0_avx2,
    .tile_q4_0r_q8r = qtx_tile_q4_0r_q8r_avx2,
    .tile_q8_0r_q8r = qtx_tile_q8_0r_q8r_avx2,
};

const qtx_quant_kernels qtx_quant_kernels_avx512_vnni = {
    .isa = QTX_ISA_AVX512_VNNI,
    .name = "avx512-vnni",
    .quantize_row_q8_0 = quantize_row_q8_0,
    .dot_q8_0_q8_0 = dot_q8_0_q8_0_vnni,
    .dot_q4_0_q8_0 = dot_q4_0_q8_0_vnni,
    .blocks_q8_0_q8_0 = blocks_q8_0_q8_0_vnni,
    .blocks_q4_0_q8_0 = blocks_q4_0_q8_0_vnni,
    .tile_q8_0_q8_0 = vnni_tile_q8_0_q8_0,
    .tile_q4_0_q8_0 = vnni_tile_q4_0_q8_0,
    .gemv_q4_0_q8_0 = qtx_gemv_q4_0_q8_0_avx2,
    .gemv_q8_0_q8_0 = qtx_gemv_q8_0_q8_0_avx2,
    .tile_q4_0r_q8r = tile_q4_0r_q8r,
    .tile_q8_0r_q8r = tile_q8_0r_q8r,
};

#endif
