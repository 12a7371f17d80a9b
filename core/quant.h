/* quant.h: quantized tensor formats and their kernels, ggml-compatible.
 *
 * One traits table per format (name, block size, bytes per block, reference quantize and
 * dequantize, the format activations are quantized to for a dot product, and the dot
 * product), like ggml's type_traits, instead of switch chains. Block layouts are bit-for-bit
 * ggml's, so the same bytes go into GGUF files llama.cpp reads:
 *   q8_0: 32 values = f16 scale d, then 32 int8 q;               x = d q
 *   q4_0: 32 values = f16 scale d, then 16 bytes of nibbles;      x = d (q - 8)
 *         byte j holds value j in its low nibble and value j + 16 in its high nibble.
 * Dot products of q8_0 / q4_0 weights run on q8_0 activations in integer arithmetic: per
 * block an exact int32 sum of products, scaled by d_w d_x and accumulated in float. Weight
 * bytes may take any value; activation quants lie in [-127, 127], which every q8_0 quantizer
 * here (and ggml's) produces, so SIMD paths may negate them without overflow. The
 * generic C path defines the results; AVX2, AVX-512 (with VNNI where present) and NEON
 * paths are chosen at run time and give the same per-block integer sums.
 */
#ifndef QTX_QUANT_H
#define QTX_QUANT_H

#include <stddef.h>
#include <stdint.h>

/* ggml's type ids, as stored in GGUF. */
typedef enum qtx_qtype {
    QTX_Q_F32 = 0,
    QTX_Q_F16 = 1,
    QTX_Q_Q4_0 = 2,
    QTX_Q_Q8_0 = 8,
    QTX_Q_Q4_0R = 0x100, /* q4_0 repacked for SIMD (below): in memory only, never in a file */
    QTX_Q_Q8_0R = 0x101, /* q8_0 likewise */
} qtx_qtype;

#define QTX_QK 32 /* values per q8_0 / q4_0 block */

typedef uint16_t qtx_f16;

typedef struct qtx_block_q8_0 {
    qtx_f16 d;
    int8_t qs[QTX_QK];
} qtx_block_q8_0; /* 34 bytes */

typedef struct qtx_block_q4_0 {
    qtx_f16 d;
    uint8_t qs[QTX_QK / 2];
} qtx_block_q4_0; /* 18 bytes */

/* q4_0r: q4_0 weights repacked row by row for wide integer dot products, as llama.cpp repacks
 * q4_0 at load; same bytes per row, other order. A row of nb blocks holds the nb f16 scales,
 * then the nibbles of its blocks in groups: 16 blocks at a time (256 bytes), then one group of 8
 * if at least 8 remain (128 bytes), then each remaining block's 16 bytes as in q4_0. In a group
 * of G blocks, byte 4 G c + 4 k + i (c < 4, k < G, i < 4) holds value 4 c + i of block k in its
 * low nibble and value 16 + 4 c + i in its high nibble: one 64-byte load, masked or shifted,
 * is one slice of four values of each of 16 blocks, and vpdpbusd sums every block in its own
 * lane (no horizontal adds; one scale conversion per 16 blocks).
 * q8r: the activation row q4_0r and q8_0r weights meet: n int8 quants of q8_0 blocks in the
 * matching order (in a group, byte 4 G s + 4 k + i, s < 8, holds value 4 (s % 4) + 16 (s / 4) + i
 * of block k; a remaining block's 32 values in order), then nb floats d_x, then nb floats -8 d_x
 * sum(x_b) (the -8 of every nibble, applied as d_w times it), qtx_q8r_row_bytes apart. */
/* A row of n values from one format to the other (the two buffers must not overlap). */
void qtx_q4_0r_pack_row(const void *q4_0, void *q4_0r, int64_t n);
void qtx_q4_0r_unpack_row(const void *q4_0r, void *q4_0, int64_t n);
size_t qtx_q8r_row_bytes(int64_t n); /* a multiple of 64 */
/* A q8r row of n values, in its three parts. */
typedef struct qtx_q8r_row {
    const int8_t *q; /* the n quants */
    const float *d;  /* d_x per block */
    const float *c;  /* -8 d_x sum(x) per block */
} qtx_q8r_row;
static inline qtx_q8r_row qtx_q8r_parts(const void *row, int64_t n) {
    const int8_t *q = (const int8_t *)row;
    const float *d = (const float *)(const void *)(q + n);
    return (qtx_q8r_row){q, d, d + n / QTX_QK};
}
/* One activation row from its q8_0 blocks. */
void qtx_q8r_from_q8_0(const void *x_q8_0, void *x_q8r, int64_t n);
/* q8_0r: q8_0 weights repacked the same way: the nb f16 scales, then the quants in q8r's
 * order, so that one 64-byte slice holds four values of each of 16 blocks. */
void qtx_q8_0r_pack_row(const void *q8_0, void *q8_0r, int64_t n);
void qtx_q8_0r_unpack_row(const void *q8_0r, void *q8_0, int64_t n);
/* Block b of a q4_0r / q8_0r weight row or of a q8r activation row of n values, in the plain
 * format (for the generic kernels and the tests). */
void qtx_q4_0r_get_block(const void *row, int64_t n, int64_t b, qtx_block_q4_0 *q);
void qtx_q8_0r_get_block(const void *row, int64_t n, int64_t b, qtx_block_q8_0 *q);
void qtx_q8r_get_block(const void *xrow, int64_t n, int64_t b, qtx_block_q8_0 *x);

/* IEEE half precision, round to nearest even (what ggml's F16C path and numpy do). */
qtx_f16 qtx_f32_to_f16(float f);
float qtx_f16_to_f32(qtx_f16 h);

typedef enum qtx_isa {
    QTX_ISA_GENERIC = 0,
    QTX_ISA_AVX2,
    QTX_ISA_AVX512,      /* AVX-512 F + BW */
    QTX_ISA_AVX512_VNNI, /* ... + VNNI (vpdpbusd) */
    QTX_ISA_NEON,        /* aarch64 NEON (+ dotprod where present) */
    QTX_ISA_COUNT
} qtx_isa;

/* Dot products of one weight row with one activation row of n values (n % 32 == 0). */
typedef void (*qtx_vec_dot_fn)(int64_t n, float *s, const void *w, const void *x);
/* The exact int32 sum of products of each block pair (nb blocks): what every ISA agrees on
 * bit for bit. */
typedef void (*qtx_dot_blocks_fn)(int64_t nb, int32_t *isum, const void *w, const void *x);

typedef struct qtx_qtype_traits {
    const char *name; /* "f32", "f16", "q4_0", "q8_0" */
    qtx_qtype type;
    int64_t block_size; /* values per block (1 for f32 / f16) */
    size_t block_bytes; /* bytes per block */
    int is_quantized;   /* q4_0, q8_0 */
    qtx_qtype dot_type; /* the format activations take for vec_dot */
    /* Reference conversions, bit-compatible with ggml's *_ref functions. */
    void (*quantize_row)(const float *x, void *y, int64_t n);
    void (*dequantize_row)(const void *x, float *y, int64_t n);
} qtx_qtype_traits;

/* NULL for a type id this build does not support. */
const qtx_qtype_traits *qtx_qtype_get(qtx_qtype t);
/* Bytes of a row of n values (n a multiple of the block size). */
size_t qtx_qtype_row_bytes(qtx_qtype t, int64_t n);

/* A tile of a matrix product: y[c * ldy + r] = dot(weight row r, activation row c) for
 * r < nr, c < nc (1 <= nr <= QTX_TILE_R, 1 <= nc <= QTX_TILE_C), n values per row, weight
 * rows w_row bytes apart and q8_0 activation rows x_row bytes apart. Every element is
 * computed the same way whatever the tile's shape. */
typedef void (*qtx_tile_fn)(int64_t n, int nr, int nc, const void *w, size_t w_row, const void *x,
                            size_t x_row, float *y, int64_t ldy);
/* A matrix-vector product (decoding) of q4_0 or q8_0 rows: y[r] = dot(weight row r, x) for
 * r < rows, given with x two floats per block b, xd[b] = d_x and cx[b] = -8 d_x sum(x_b) (q8_0
 * reads only xd). For q4_0 the products of the unsigned nibbles run without the sign trick, and the
 * -8 of every nibble becomes the term cx[b] d_w. Contiguous xd and cx let eight blocks be scaled by
 * one vector operation. Results equal the dot products up to float rounding. */
typedef void (*qtx_gemv_fn)(int64_t n, int64_t rows, const void *w, size_t w_row, const void *x,
                            const float *xd, const float *cx, float *y);
#define QTX_TILE_R 4 /* weight rows per tile */
#define QTX_TILE_C 3 /* activation rows per tile */

/* The kernels of one instruction set. */
typedef struct qtx_quant_kernels {
    qtx_isa isa;
    const char *name; /* "generic", "avx2", "avx512", "avx512-vnni", "neon" */
    void (*quantize_row_q8_0)(const float *x, void *y, int64_t n); /* activations */
    qtx_vec_dot_fn dot_q8_0_q8_0;
    qtx_vec_dot_fn dot_q4_0_q8_0;
    qtx_dot_blocks_fn blocks_q8_0_q8_0;
    qtx_dot_blocks_fn blocks_q4_0_q8_0;
    qtx_tile_fn tile_q8_0_q8_0; /* what qtx_qmatmul runs for quantized weights */
    qtx_tile_fn tile_q4_0_q8_0;
    qtx_gemv_fn gemv_q4_0_q8_0; /* NULL: qtx_qmatmul decodes q4_0 with dot_q4_0_q8_0 */
    qtx_gemv_fn gemv_q8_0_q8_0; /* NULL: with dot_q8_0_q8_0 (cx unused) */
    /* q4_0r weights, q8r activations (x_row bytes apart): any nr >= 1, nc <= QTX_TILE_C; every
     * element computed the same way whatever the tile's shape, matrix-vector products
     * included. NULL: this ISA has none (qtx_qmatmul runs q4_0r with the generic one). */
    qtx_tile_fn tile_q4_0r_q8r;
    qtx_tile_fn tile_q8_0r_q8r; /* the same for q8_0r weights */
} qtx_quant_kernels;

/* The kernels for isa, or NULL when this build or this CPU lacks it. */
const qtx_quant_kernels *qtx_quant_kernels_for(qtx_isa isa);
/* The best the CPU runs (decided once, on first call). */
const qtx_quant_kernels *qtx_quant_kernels_best(void);
/* The type weights of type t run fastest as with k (k NULL: the best kernels): q4_0r for q4_0
 * and q8_0r for q8_0 where k has a tile of its own for it (not the generic one), else t. */
qtx_qtype qtx_qtype_repacked(const qtx_quant_kernels *k, qtx_qtype t);

/* Y[m, rows] = X[m, n] W^T for W [rows, n] of type wt (f32, f16, q8_0, q4_0, q8_0r or q4_0r): X is
 * converted to W's dot type once, then rows are split over the OpenMP threads. m = 1 is a
 * matrix-vector product (decode); m > 1 a batch (prompt), in tiles of QTX_TILE_R weight
 * rows by QTX_TILE_C activation rows for quantized weights. scratch holds
 * qtx_qmatmul_scratch_bytes(wt, n, m) bytes. */
void qtx_qmatmul(qtx_qtype wt, const void *W, int64_t rows, int64_t n, const float *X, int64_t m,
                 float *Y, void *scratch);
size_t qtx_qmatmul_scratch_bytes(qtx_qtype wt, int64_t n, int64_t m);

/* One weight matrix of a fused product: Y [m, rows] = X W^T, W [rows, n] of type wt. */
typedef struct qtx_qmm {
    qtx_qtype wt;
    const void *W;
    int64_t rows;
    float *Y;
} qtx_qmm;

#define QTX_QMM_MAX 4 /* weights per qtx_qmatmul_many */

/* qtx_qmatmul of up to QTX_QMM_MAX weights that read the same X (Q, K and V; gate and up):
 * X goes to q8_0 once, and the rows of all the weights share one parallel loop, so the group
 * costs one fork and join. Each Y equals what qtx_qmatmul gives, bit for bit. k NULL: the
 * best kernels. scratch: qtx_qmatmul_scratch_bytes(q8_0, n, m) when any weight is
 * quantized. */
void qtx_qmatmul_many(const qtx_quant_kernels *k, const qtx_qmm *w, int n_w, int64_t n,
                      const float *X, int64_t m, void *scratch);

/* ---- Additions (core/quant.c) ---- */

/* The reference conversions the traits point at: ggml's quantize_row_*_ref and
 * dequantize_row_*, bit for bit (n % 32 == 0). */
void qtx_quantize_row_q8_0_ref(const float *x, void *y, int64_t n);
void qtx_quantize_row_q4_0_ref(const float *x, void *y, int64_t n);
void qtx_dequantize_row_q8_0(const void *x, float *y, int64_t n);
void qtx_dequantize_row_q4_0(const void *x, float *y, int64_t n);
/* q4_0 blocks with the scale of least squared error instead of ggml's largest/-8, which
 * spends a level on one value: ~10% less squared error on Gaussian blocks. Same format,
 * other bytes: for what this runtime stores itself (the q4 KV cache), not for export. */
void qtx_quantize_row_q4_0_fit(const float *x, void *y, int64_t n);

/* A tile computed one dot product at a time, for the kernel tables without their own;
 * QTX_TILE_BY_DOT(name, dot) defines such a tile function. */
void qtx_tile_by_dot(qtx_vec_dot_fn dot, int64_t n, int nr, int nc, const void *w, size_t w_row,
                     const void *x, size_t x_row, float *y, int64_t ldy);
#define QTX_TILE_BY_DOT(name, dot)                                                                 \
    static void name(int64_t n, int nr, int nc, const void *w, size_t w_row, const void *x,        \
                     size_t x_row, float *y, int64_t ldy) {                                        \
        qtx_tile_by_dot(dot, n, nr, nc, w, w_row, x, x_row, y, ldy);                               \
    }

/* "generic", "avx2", ... for any isa < QTX_ISA_COUNT, also one this build or CPU lacks. */
const char *qtx_isa_name(qtx_isa isa);

/* qtx_qmatmul with the kernels of one instruction set (k from qtx_quant_kernels_for; NULL
 * means qtx_quant_kernels_best()), for tests and benchmarks. f32 / f16 weights use that
 * ISA's float dot products. */
void qtx_qmatmul_with(const qtx_quant_kernels *k, qtx_qtype wt, const void *W, int64_t rows,
                      int64_t n, const float *X, int64_t m, float *Y, void *scratch);

#endif
