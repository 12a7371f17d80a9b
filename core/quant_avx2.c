/* quant_avx2.c: the AVX2 (+ FMA, F16C) kernels of core/quant.h, chosen at run time.
 *
 * Compiled on any x86-64 build (each function carries its target), empty elsewhere. Block
 * sums are exact: q8_0 x q8_0 multiplies |w| by x carrying w's sign with vpmaddubsw (exact
 * for every weight byte, -128 included, since activations never hold -128); q4_0 x q8_0
 * multiplies the unsigned nibbles and subtracts 8 sum(x). Dot products convert each block's
 * eight int32 lanes to float and scale them by d_w d_x (as ggml does), in two running sums;
 * blocks_* gather eight blocks' exact sums with horizontal adds for the tests. Decoding q4_0
 * has its own gemv (quant.h): unsigned nibbles, eight blocks per convert and fma, the -8 folded
 * into a correction.
 * The activation quantizer rounds half away from zero, like roundf in the reference.
 */
#if defined(__x86_64__) || defined(_M_X64)

#include <immintrin.h>
#include <string.h>

#include "quant.h"

#define AVX2 __attribute__((target("avx2,fma,f16c")))

#define TILE_ATTR AVX2
#define TILE_PAIR(a, b) _mm256_madd_epi16(_mm256_maddubs_epi16(a, b), _mm256_set1_epi16(1))
#define TILE_NAME(x) avx2_##x
#include "quant_tile_x86.h"

/* Eight int32 lanes whose sum is the block's exact sum of products. vpmaddubsw multiplies
 * |w| (unsigned, 128 for -128) by x carrying w's sign: exact for any weight byte as long as
 * x > -128, which the q8_0 quantizers guarantee (pairs stay within +-2 * 128 * 127). */
static inline AVX2 __m256i part_q8_0_q8_0(const qtx_block_q8_0 *w, const qtx_block_q8_0 *x) {
    const __m256i wv = _mm256_loadu_si256((const __m256i *)w->qs);
    const __m256i xv = _mm256_loadu_si256((const __m256i *)x->qs);
    const __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(wv, wv), _mm256_sign_epi8(xv, wv));
    return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}

static inline AVX2 __m256i part_q4_0_q8_0(const qtx_block_q4_0 *w, const qtx_block_q8_0 *x) {
    const __m256i q4 = avx2_nibbles((const uint8_t *)w);
    const __m256i y = _mm256_loadu_si256((const __m256i *)x->qs);
    const __m256i p = _mm256_maddubs_epi16(q4, y);                  /* |pair| <= 3840 */
    const __m256i c = _mm256_maddubs_epi16(_mm256_set1_epi8(8), y); /* |pair| <= 2048 */
    return _mm256_madd_epi16(_mm256_sub_epi16(p, c), _mm256_set1_epi16(1));
}

#define SUMS8(PART, w, x)                                                                          \
    avx2_reduce8(PART(w, x), PART((w) + 1, (x) + 1), PART((w) + 2, (x) + 2),                       \
                 PART((w) + 3, (x) + 3), PART((w) + 4, (x) + 4), PART((w) + 5, (x) + 5),           \
                 PART((w) + 6, (x) + 6), PART((w) + 7, (x) + 7))

#define DEFINE_BLOCKS(NAME, WT, PART)                                                              \
    static AVX2 void blocks_##NAME(int64_t nb, int32_t *isum, const void *vw, const void *vx) {    \
        const WT *w = vw;                                                                          \
        const qtx_block_q8_0 *x = vx;                                                              \
        int64_t b = 0;                                                                             \
        for (; b + 8 <= nb; b += 8)                                                                \
            _mm256_storeu_si256((__m256i *)(isum + b), SUMS8(PART, w + b, x + b));                 \
        for (; b < nb; b++) isum[b] = avx2_hsum_i32(PART(w + b, x + b));                           \
    }

DEFINE_BLOCKS(q8_0_q8_0, qtx_block_q8_0, part_q8_0_q8_0)
DEFINE_BLOCKS(q4_0_q8_0, qtx_block_q4_0, part_q4_0_q8_0)

/* Dot products (one weight row streamed front to back: decoding): two running sums over
 * alternate blocks, each block's lanes converted and scaled as in the tile. */
#define DOT_BLOCK(WB, LOAD, b, acc)                                                                \
    do {                                                                                           \
        const uint8_t *wp = w + (size_t)(b) * (WB), *xp = x + (size_t)(b)*xb;                      \
        const __m256i wv = LOAD(wp);                                                               \
        const __m256i p =                                                                          \
            TILE_PAIR(_mm256_sign_epi8(wv, wv), _mm256_sign_epi8(avx2_load_q8(xp), wv));           \
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p),                                               \
                              _mm256_mul_ps(avx2_scale(wp), avx2_scale(xp)), acc);                 \
    } while (0)

/* Bytes ahead of the weight row to prefetch: a decode step streams every weight once, and
 * the hardware prefetchers stop at 4 KiB pages; 4 KiB ahead measured 10-20% more GB/s than
 * none (bench_quant 16384 4096, medians of 5, this VM). */
#define DOT_PF 4096
#define DEFINE_DOT(NAME, WB, LOAD)                                                                 \
    static AVX2 void dot_##NAME(int64_t n, float *s, const void *vw, const void *vx) {             \
        const uint8_t *w = vw, *x = vx;                                                            \
        const int64_t nb = n / QTX_QK;                                                             \
        const size_t xb = sizeof(qtx_block_q8_0);                                                  \
        __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();                             \
        int64_t b = 0;                                                                             \
        for (; b + 2 <= nb; b += 2) {                                                              \
            _mm_prefetch((const char *)w + (size_t)b * (WB) + DOT_PF, _MM_HINT_T0);                \
            DOT_BLOCK(WB, LOAD, b, acc0);                                                          \
            DOT_BLOCK(WB, LOAD, b + 1, acc1);                                                      \
        }                                                                                          \
        if (b < nb) DOT_BLOCK(WB, LOAD, b, acc0);                                                  \
        *s = avx2_hsum(_mm256_add_ps(acc0, acc1));                                                 \
    }

/* Eight f16 scales at p, p + stride, ... as floats. */
static inline AVX2 short load16(const uint8_t *p) {
    short v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline AVX2 __m256 scales8(const uint8_t *p, size_t s) {
    return _mm256_cvtph_ps(_mm_setr_epi16(load16(p), load16(p + s), load16(p + 2 * s),
                                          load16(p + 3 * s), load16(p + 4 * s), load16(p + 5 * s),
                                          load16(p + 6 * s), load16(p + 7 * s)));
}

/* Block j of a group: the eight int32 lanes of its nibbles times x. */
#define Q4_PART(j)                                                                                 \
    _mm256_madd_epi16(                                                                             \
        _mm256_maddubs_epi16(                                                                      \
            avx2_nibbles(g + (j) * sizeof(qtx_block_q4_0)),                                        \
            _mm256_loadu_si256((const __m256i *)(xg + (j) * sizeof(qtx_block_q8_0) + 2))),         \
        _mm256_set1_epi16(1))

/* q4_0 decoding (quant.h, qtx_gemv_fn), eight blocks at a time: the unsigned nibbles times x
 * by vpmaddubsw (at most 2 * 15 * 127 per pair: exact), the eight blocks' lanes summed into
 * one vector (lane k: block k's exact sum), then one convert and one fma with the eight
 * d_w d_x, and the -8 folded in as d_w times cx by another fma. Against one block at a time
 * this drops seven converts, scale broadcasts and fmas of eight: 1.15-1.36x the decode
 * tokens/s (qtx generate, small and m100 q4_0, 1 and 2 threads, 5 interleaved rounds).
 * Not static: the AVX-512 tables decode q4_0 with it too (every AVX-512 CPU runs AVX2). */
AVX2 void qtx_gemv_q4_0_q8_0_avx2(int64_t n, int64_t rows, const void *vw, size_t w_row,
                                  const void *vx, const float *xd, const float *cx, float *y) {
    const uint8_t *x = vx;
    const int64_t nb = n / QTX_QK;
    for (int64_t r = 0; r < rows; r++) {
        const uint8_t *w = (const uint8_t *)vw + (size_t)r * w_row;
        __m256 acc = _mm256_setzero_ps(), corr = _mm256_setzero_ps();
        int64_t b = 0;
        for (; b + 8 <= nb; b += 8) { /* 144 bytes: three lines to prefetch */
            const uint8_t *g = w + (size_t)b * sizeof(qtx_block_q4_0);
            const uint8_t *xg = x + (size_t)b * sizeof(qtx_block_q8_0);
            _mm_prefetch((const char *)g + DOT_PF, _MM_HINT_T0);
            _mm_prefetch((const char *)g + DOT_PF + 64, _MM_HINT_T0);
            _mm_prefetch((const char *)g + DOT_PF + 128, _MM_HINT_T0);
            const __m256i s = avx2_reduce8(Q4_PART(0), Q4_PART(1), Q4_PART(2), Q4_PART(3),
                                           Q4_PART(4), Q4_PART(5), Q4_PART(6), Q4_PART(7));
            const __m256 dw = scales8(g, sizeof(qtx_block_q4_0));
            acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_mul_ps(dw, _mm256_loadu_ps(xd + b)),
                                  acc);
            corr = _mm256_fmadd_ps(dw, _mm256_loadu_ps(cx + b), corr);
        }
        float sum = avx2_hsum(_mm256_add_ps(acc, corr));
        for (; b < nb; b++) {
            const uint8_t *g = w + (size_t)b * sizeof(qtx_block_q4_0);
            const uint8_t *xg = x + (size_t)b * sizeof(qtx_block_q8_0);
            const float dw = _cvtsh_ss((unsigned short)load16(g));
            sum += (float)avx2_hsum_i32(Q4_PART(0)) * (dw * xd[b]) + dw * cx[b];
        }
        y[r] = sum;
    }
}

/* q8_0 decoding (quant.h, qtx_gemv_fn; cx unused), eight blocks at a time: each block's exact
 * sum by the sign trick, the eight sums gathered into one vector, then one convert and one
 * fma with the eight d_w d_x. Against one block at a time (dot_q8_0_q8_0) this drops seven
 * converts, scale broadcasts and fmas of eight, so one core keeps more of the weight stream
 * in flight: on m100's shape (97 MB, rows of 768) it streamed 1.06x on one thread and
 * 1.09-1.15x on two (a harness, 9 interleaved rounds, two runs each, 09:05 UTC). */
AVX2 void qtx_gemv_q8_0_q8_0_avx2(int64_t n, int64_t rows, const void *vw, size_t w_row,
                                  const void *vx, const float *xd, const float *cx, float *y) {
    (void)cx;
    const uint8_t *x = vx;
    const int64_t nb = n / QTX_QK;
    const size_t bs = sizeof(qtx_block_q8_0);
    for (int64_t r = 0; r < rows; r++) {
        const uint8_t *w = (const uint8_t *)vw + (size_t)r * w_row;
        __m256 acc = _mm256_setzero_ps();
        int64_t b = 0;
        for (; b + 8 <= nb; b += 8) { /* 272 bytes: five lines to prefetch */
            const uint8_t *g = w + (size_t)b * bs;
            for (int k = 0; k < 5; k++)
                _mm_prefetch((const char *)g + DOT_PF + 64 * k, _MM_HINT_T0);
            const __m256i s = SUMS8(part_q8_0_q8_0, (const qtx_block_q8_0 *)(const void *)g,
                                    (const qtx_block_q8_0 *)(const void *)(x + (size_t)b * bs));
            acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s),
                                  _mm256_mul_ps(scales8(g, bs), _mm256_loadu_ps(xd + b)), acc);
        }
        float sum = avx2_hsum(acc);
        for (; b < nb; b++) {
            const uint8_t *g = w + (size_t)b * bs;
            const float dw = _cvtsh_ss((unsigned short)load16(g));
            sum += (float)avx2_hsum_i32(
                       part_q8_0_q8_0((const qtx_block_q8_0 *)(const void *)g,
                                      (const qtx_block_q8_0 *)(const void *)(x + (size_t)b * bs))) *
                   (dw * xd[b]);
        }
        y[r] = sum;
    }
}

/* ---- q4_0r / q8_0r x q8r (quant.h) in 256 bits ---- */

#define R_INLINE static inline __attribute__((always_inline)) AVX2

/* Eight blocks of a group (S: the group's slice stride, 64 bytes in a group of 16, whose two
 * halves are two such units, or 32 in a group of 8) as eight slices of four values each:
 * u[s] the unsigned operand of vpmaddubsw (q4_0r: slice s % 4's low, then high nibbles;
 * q8_0r: |w|), sg[s] the signs x takes (q8_0r's w; unused for q4_0r). */
R_INLINE void r_unit_slices(int q8, const uint8_t *g, size_t S, __m256i u[8], __m256i sg[8]) {
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    for (int k = 0; k < (q8 ? 8 : 4); k++) {
        const __m256i v = _mm256_loadu_si256((const __m256i *)(g + S * k));
        if (q8) {
            sg[k] = v;
            u[k] = _mm256_sign_epi8(v, v);
        } else {
            u[k] = _mm256_and_si256(v, m4);
            u[4 + k] = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
        }
    }
}

/* Lane k: block k's exact sum against one activation row's slices at xs. q4_0r: unsigned
 * nibbles times x, the eight vpmaddubsw pair sums added in int16 (at most 8 * 2 * 15 * 127 =
 * 30480) before one vpmaddwd; q8_0r: the sign trick of part_q8_0_q8_0 per slice. */
R_INLINE __m256i r_unit_sums(int q8, const __m256i u[8], const __m256i sg[8], const int8_t *xs,
                             size_t S) {
#define X(s) _mm256_loadu_si256((const __m256i *)(xs + (s)*S))
    if (q8) {
        __m256i s = _mm256_setzero_si256();
        for (int k = 0; k < 8; k++)
            s = _mm256_add_epi32(s, TILE_PAIR(u[k], _mm256_sign_epi8(X(k), sg[k])));
        return s;
    }
    __m256i p = _mm256_maddubs_epi16(u[0], X(0));
    for (int k = 1; k < 8; k++) p = _mm256_add_epi16(p, _mm256_maddubs_epi16(u[k], X(k)));
#undef X
    return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}

/* A weight row meets up to QTX_TILE_C activation rows, eight blocks at a time (quant_avx512.c
 * has the 512-bit VNNI version): each unit's slices prepared once for every activation row,
 * then one convert and one fma per unit, and for q4_0r one more for the -8 correction. */
R_INLINE void r_tile(int q8, int64_t n, int nr, int nc, const void *vw, size_t w_row,
                     const void *vx, size_t x_row, float *y, int64_t ldy) {
    enum { C = QTX_TILE_C };
    const size_t bb = q8 ? QTX_QK : QTX_QK / 2; /* quant bytes per block */
    const int64_t nb = n / QTX_QK, n16 = nb / 16 * 16, n8 = n16 + (nb - n16) / 8 * 8;
    qtx_q8r_row x[C];
    for (int c = 0; c < C; c++)
        x[c] = qtx_q8r_parts((const char *)vx + (size_t)(c < nc ? c : 0) * x_row, n);
    for (int r = 0; r < nr; r++) {
        const uint8_t *w = (const uint8_t *)vw + (size_t)r * w_row, *q = w + 2 * nb;
        __m256 acc[C], corr[C];
        for (int c = 0; c < C; c++) acc[c] = corr[c] = _mm256_setzero_ps();
        for (int64_t b = 0; b < n8; b += 8) {
            /* unit: blocks b..b+7; in a group of 16 the upper half starts 32 bytes in */
            const int64_t g0 = b < n16 ? b / 16 * 16 : b;
            const size_t S = b < n16 ? 64 : 32, h = (size_t)(b - g0) / 8 * 32;
            const uint8_t *g = q + g0 * bb + h;
            if (b % 16 == 0) /* the group's bytes: 16 bb / 64 lines to prefetch */
                for (size_t k = 0; k < bb / 4; k++)
                    _mm_prefetch((const char *)g + DOT_PF + 64 * k, _MM_HINT_T0);
            __m256i u[8], sg[8];
            r_unit_slices(q8, g, S, u, sg);
            const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + 2 * b)));
            for (int c = 0; c < C; c++) {
                if (c >= nc) break;
                const __m256i s = r_unit_sums(q8, u, sg, x[c].q + g0 * QTX_QK + h, S);
                acc[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s),
                                         _mm256_mul_ps(dw, _mm256_loadu_ps(x[c].d + b)), acc[c]);
                if (!q8) corr[c] = _mm256_fmadd_ps(dw, _mm256_loadu_ps(x[c].c + b), corr[c]);
            }
        }
        float sum[C];
        for (int c = 0; c < C; c++) sum[c] = avx2_hsum(_mm256_add_ps(acc[c], corr[c]));
        for (int64_t b = n8; b < nb; b++) { /* a remaining block, laid out as in q4_0 / q8_0 */
            __m256i wv;
            if (q8) {
                wv = _mm256_loadu_si256((const __m256i *)(q + b * QTX_QK));
            } else { /* values j and 16 + j in byte j */
                const __m128i v = _mm_loadu_si128((const __m128i *)(q + b * (QTX_QK / 2)));
                wv = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(v, 4), v),
                                      _mm256_set1_epi8(0x0F));
            }
            const float dw = _cvtsh_ss((unsigned short)(w[2 * b] | w[2 * b + 1] << 8));
            for (int c = 0; c < C; c++) {
                if (c >= nc) break;
                const __m256i xv = _mm256_loadu_si256((const __m256i *)(x[c].q + b * QTX_QK));
                const int32_t is =
                    avx2_hsum_i32(q8 ? TILE_PAIR(_mm256_sign_epi8(wv, wv), _mm256_sign_epi8(xv, wv))
                                     : TILE_PAIR(wv, xv));
                float t = (float)is * (dw * x[c].d[b]);
                if (!q8) t += dw * x[c].c[b];
                sum[c] += t;
            }
        }
        for (int c = 0; c < C && c < nc; c++) y[(int64_t)c * ldy + r] = sum[c];
    }
}

/* Not static: the AVX-512 table without VNNI uses them. */
AVX2 void qtx_tile_q4_0r_q8r_avx2(int64_t n, int nr, int nc, const void *w, size_t w_row,
                                  const void *x, size_t x_row, float *y, int64_t ldy) {
    r_tile(0, n, nr, nc, w, w_row, x, x_row, y, ldy);
}

AVX2 void qtx_tile_q8_0r_q8r_avx2(int64_t n, int nr, int nc, const void *w, size_t w_row,
                                  const void *x, size_t x_row, float *y, int64_t ldy) {
    r_tile(1, n, nr, nc, w, w_row, x, x_row, y, ldy);
}

DEFINE_DOT(q8_0_q8_0, sizeof(qtx_block_q8_0), avx2_load_q8)
DEFINE_DOT(q4_0_q8_0, sizeof(qtx_block_q4_0), avx2_load_q4)

/* Eight values of x * id rounded half away from zero (roundf), as int32. */
static inline AVX2 __m256i round_away(__m256 p) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const __m256 t = _mm256_round_ps(p, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __m256 frac = _mm256_andnot_ps(sign, _mm256_sub_ps(p, t)); /* exact */
    const __m256 one = _mm256_or_ps(_mm256_set1_ps(1.0f), _mm256_and_ps(sign, p));
    const __m256 up = _mm256_and_ps(_mm256_cmp_ps(frac, _mm256_set1_ps(0.5f), _CMP_GE_OQ), one);
    return _mm256_cvttps_epi32(_mm256_add_ps(t, up));
}

/* Same bytes as qtx_quantize_row_q8_0_ref. */
static AVX2 void quantize_row_q8_0(const float *x, void *vy, int64_t n) {
    qtx_block_q8_0 *y = vy;
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (int64_t i = 0; i < n / QTX_QK; i++) {
        const float *xb = x + i * QTX_QK;
        const __m256 v0 = _mm256_loadu_ps(xb), v1 = _mm256_loadu_ps(xb + 8);
        const __m256 v2 = _mm256_loadu_ps(xb + 16), v3 = _mm256_loadu_ps(xb + 24);
        const __m256 m =
            _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(sign, v0), _mm256_andnot_ps(sign, v1)),
                          _mm256_max_ps(_mm256_andnot_ps(sign, v2), _mm256_andnot_ps(sign, v3)));
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
        const float amax = _mm_cvtss_f32(m4);
        const float d = amax / 127;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = qtx_f32_to_f16(d);
        const __m256 vid = _mm256_set1_ps(id);
        const __m256i q0 = round_away(_mm256_mul_ps(v0, vid));
        const __m256i q1 = round_away(_mm256_mul_ps(v1, vid));
        const __m256i q2 = round_away(_mm256_mul_ps(v2, vid));
        const __m256i q3 = round_away(_mm256_mul_ps(v3, vid));
        /* packs work per 128-bit lane: dwords come out as q0 q1 q2 q3 (low halves), then the
         * high halves; the permutation restores the order */
        const __m256i q =
            _mm256_packs_epi16(_mm256_packs_epi32(q0, q1), _mm256_packs_epi32(q2, q3));
        _mm256_storeu_si256((__m256i *)y[i].qs, _mm256_permutevar8x32_epi32(
                                                    q, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
    }
}

AVX2 void qtx_dot_f32_avx2(int64_t n, float *s, const void *vw, const void *vx) {
    const float *w = vw, *x = vx;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i), _mm256_loadu_ps(x + i), a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 8), _mm256_loadu_ps(x + i + 8), a1);
        a2 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 16), _mm256_loadu_ps(x + i + 16), a2);
        a3 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 24), _mm256_loadu_ps(x + i + 24), a3);
    }
    for (; i + 8 <= n; i += 8)
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i), _mm256_loadu_ps(x + i), a0);
    float sum = avx2_hsum(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (; i < n; i++) sum += w[i] * x[i];
    *s = sum;
}

AVX2 void qtx_dot_f16_avx2(int64_t n, float *s, const void *vw, const void *vx) {
    const qtx_f16 *w = vw;
    const float *x = vx;
#define LOADH(p) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p)))
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm256_fmadd_ps(LOADH(w + i), _mm256_loadu_ps(x + i), a0);
        a1 = _mm256_fmadd_ps(LOADH(w + i + 8), _mm256_loadu_ps(x + i + 8), a1);
        a2 = _mm256_fmadd_ps(LOADH(w + i + 16), _mm256_loadu_ps(x + i + 16), a2);
        a3 = _mm256_fmadd_ps(LOADH(w + i + 24), _mm256_loadu_ps(x + i + 24), a3);
    }
    for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(LOADH(w + i), _mm256_loadu_ps(x + i), a0);
#undef LOADH
    float sum = avx2_hsum(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (; i < n; i++) sum += _cvtsh_ss(w[i]) * x[i];
    *s = sum;
}

const qtx_quant_kernels qtx_quant_kernels_avx2 = {
    .isa = QTX_ISA_AVX2,
    .name = "avx2",
    .quantize_row_q8_0 = quantize_row_q8_0,
    .dot_q8_0_q8_0 = dot_q8_0_q8_0,
    .dot_q4_0_q8_0 = dot_q4_0_q8_0,
    .blocks_q8_0_q8_0 = blocks_q8_0_q8_0,
    .blocks_q4_0_q8_0 = blocks_q4_0_q8_0,
    .tile_q8_0_q8_0 = avx2_tile_q8_0_q8_0,
    .tile_q4_0_q8_0 = avx2_tile_q4_0_q8_0,
    .gemv_q4_0_q8_0 = qtx_gemv_q4_0_q8_0_avx2,
    .gemv_q8_0_q8_0 = qtx_gemv_q8_0_q8_0_avx2,
    .tile_q4_0r_q8r = qtx_tile_q4_0r_q8r_avx2,
    .tile_q8_0r_q8r = qtx_tile_q8_0r_q8r_avx2,
};

#endif
