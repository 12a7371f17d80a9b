/* quant_tile_x86.h: the x86 matrix tile of core/quant.h (q8_0 / q4_0 weights times q8_0
 * activations) and the 256-bit helpers the x86 kernels share (block loads, nibble unpacking,
 * horizontal sums), written once and compiled per instruction set: quant_avx2.c and
 * quant_avx512.c include it after defining
 *   TILE_ATTR             the function target attribute,
 *   TILE_PAIR(a, b)       eight int32 lanes summing the 32 products of unsigned a and signed
 *                         b (vpmaddubsw + vpmaddwd, or vpdpbusd with VNNI),
 *   TILE_NAME(x)          a per-ISA name for the tile functions.
 *
 * Why a tile: a weight block is loaded, widened and its |w| taken once for up to QTX_TILE_C
 * activation rows, and an activation block once for up to QTX_TILE_R weight rows; the
 * QTX_TILE_R x QTX_TILE_C running sums are independent, which hides the FMA latency that
 * one row's single chain of blocks would expose.
 *
 * Exactness: both formats become signed bytes w (q8_0 as stored, any value; q4_0 nibble - 8)
 * and each block's products are |w| (unsigned; 128 for -128) times x carrying w's sign. That
 * is exact because activations lie in [-127, 127] (quant.h), and pairs of products stay
 * within +-2 * 128 * 127, inside vpmaddubsw's int16. Each block's eight int32 lanes are
 * converted to float and added, scaled by d_w d_x, into the element's own running sum, in
 * block order: an element comes out the same whatever the tile's shape.
 */
/* No include guard: each ISA's file includes this once, with its own macros. */

/* The f16 scale at p, as float in all eight lanes (reads 8 bytes at p: inside any block). */
static inline TILE_ATTR __m256 TILE_NAME(scale)(const void *p) {
    return _mm256_broadcastss_ps(_mm_cvtph_ps(_mm_loadl_epi64((const __m128i *)p)));
}

/* The 32 weights of a block as signed bytes. */
static inline TILE_ATTR __m256i TILE_NAME(load_q8)(const uint8_t *blk) {
    return _mm256_loadu_si256((const __m256i *)(blk + 2));
}

/* A q4_0 block's 32 nibbles (0..15) in value order: the low lane holds values 0..15 (low
 * nibbles), the high lane values 16..31 (high nibbles). */
static inline TILE_ATTR __m256i TILE_NAME(nibbles)(const uint8_t *blk) {
    const __m128i raw = _mm_loadu_si128((const __m128i *)(blk + 2));
    return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(raw, 4), raw), _mm256_set1_epi8(0x0F));
}

static inline TILE_ATTR __m256i TILE_NAME(load_q4)(const uint8_t *blk) {
    return _mm256_sub_epi8(TILE_NAME(nibbles)(blk), _mm256_set1_epi8(8));
}

static inline TILE_ATTR float TILE_NAME(hsum)(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline TILE_ATTR int32_t TILE_NAME(hsum_i32)(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
    return _mm_cvtsi128_si32(s);
}

/* Lane k of the result = the sum of the lanes of pk (eight blocks' exact sums at once). */
static inline TILE_ATTR __m256i TILE_NAME(reduce8)(__m256i p0, __m256i p1, __m256i p2, __m256i p3,
                                                   __m256i p4, __m256i p5, __m256i p6, __m256i p7) {
    const __m256i a = _mm256_hadd_epi32(_mm256_hadd_epi32(p0, p1), _mm256_hadd_epi32(p2, p3));
    const __m256i b = _mm256_hadd_epi32(_mm256_hadd_epi32(p4, p5), _mm256_hadd_epi32(p6, p7));
    return _mm256_add_epi32(_mm256_permute2x128_si256(a, b, 0x20),
                            _mm256_permute2x128_si256(a, b, 0x31));
}

/* One tile shape; NR, NC and Q4 are constants at every call, so the loops unroll and the
 * running sums live in registers. */
static inline __attribute__((always_inline)) TILE_ATTR void
TILE_NAME(tile_body)(const int Q4, const int NR, const int NC, int64_t nb, const uint8_t *w,
                     size_t w_row, const uint8_t *x, size_t x_row, float *y, int64_t ldy) {
    const size_t wb = Q4 ? sizeof(qtx_block_q4_0) : sizeof(qtx_block_q8_0);
    const size_t xb = sizeof(qtx_block_q8_0);
    __m256 acc[QTX_TILE_R][QTX_TILE_C];
    for (int r = 0; r < NR; r++)
        for (int c = 0; c < NC; c++) acc[r][c] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        __m256i xv[QTX_TILE_C];
        __m256 dx[QTX_TILE_C];
        for (int c = 0; c < NC; c++) {
            const uint8_t *xp = x + (size_t)c * x_row + (size_t)b * xb;
            xv[c] = TILE_NAME(load_q8)(xp);
            dx[c] = TILE_NAME(scale)(xp);
        }
        for (int r = 0; r < NR; r++) {
            const uint8_t *wp = w + (size_t)r * w_row + (size_t)b * wb;
            const __m256i wv = Q4 ? TILE_NAME(load_q4)(wp) : TILE_NAME(load_q8)(wp);
            const __m256i aw = _mm256_sign_epi8(wv, wv);
            const __m256 dw = TILE_NAME(scale)(wp);
            for (int c = 0; c < NC; c++) {
                const __m256i p = TILE_PAIR(aw, _mm256_sign_epi8(xv[c], wv));
                acc[r][c] =
                    _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_mul_ps(dw, dx[c]), acc[r][c]);
            }
        }
    }
    for (int r = 0; r < NR; r++)
        for (int c = 0; c < NC; c++) y[(int64_t)c * ldy + r] = TILE_NAME(hsum)(acc[r][c]);
}

#define TILE_SHAPE_CASE(Q4, NR, NC)                                                                \
    case (NR)*8 + (NC):                                                                            \
        if ((NR) <= QTX_TILE_R && (NC) <= QTX_TILE_C)                                              \
            TILE_NAME(tile_body)(Q4, NR, NC, n / QTX_QK, w, w_row, x, x_row, y, ldy);              \
        return;

#define TILE_SHAPES(Q4)                                                                            \
    switch (nr * 8 + nc) {                                                                         \
        TILE_SHAPE_CASE(Q4, 1, 1)                                                                  \
        TILE_SHAPE_CASE(Q4, 1, 2)                                                                  \
        TILE_SHAPE_CASE(Q4, 1, 3)                                                                  \
        TILE_SHAPE_CASE(Q4, 2, 1)                                                                  \
        TILE_SHAPE_CASE(Q4, 2, 2)                                                                  \
        TILE_SHAPE_CASE(Q4, 2, 3)                                                                  \
        TILE_SHAPE_CASE(Q4, 3, 1)                                                                  \
        TILE_SHAPE_CASE(Q4, 3, 2)                                                                  \
        TILE_SHAPE_CASE(Q4, 3, 3)                                                                  \
        TILE_SHAPE_CASE(Q4, 4, 1)                                                                  \
        TILE_SHAPE_CASE(Q4, 4, 2)                                                                  \
        TILE_SHAPE_CASE(Q4, 4, 3)                                                                  \
    default:                                                                                       \
        break;                                                                                     \
    }

_Static_assert(QTX_TILE_R <= 4 && QTX_TILE_C <= 3, "quant_tile_x86.h lists the shapes to 4 x 3");

static TILE_ATTR void TILE_NAME(tile_q8_0_q8_0)(int64_t n, int nr, int nc, const void *vw,
                                                size_t w_row, const void *vx, size_t x_row,
                                                float *y, int64_t ldy) {
    const uint8_t *w = vw, *x = vx;
    TILE_SHAPES(0)
}

static TILE_ATTR void TILE_NAME(tile_q4_0_q8_0)(int64_t n, int nr, int nc, const void *vw,
                                                size_t w_row, const void *vx, size_t x_row,
                                                float *y, int64_t ldy) {
    const uint8_t *w = vw, *x = vx;
    TILE_SHAPES(1)
}

#undef TILE_SHAPE_CASE
#undef TILE_SHAPES
