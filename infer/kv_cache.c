/* kv_cache.c: the paged KV cache of decoding: block pool, sequences and their block tables,
 * the quantized storage of appended tokens, and attention of one query token over it.
 *
 * Pool layout: block p, layer l, kv head h holds block_tokens consecutive rows (one per token)
 * at ((p L + l) KV + h) block_tokens rows, so attention of one head walks contiguous rows.
 * Keys come first, values after them (64-byte aligned, so f32 values follow q8 keys safely).
 */
#include <limits.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "kv_cache.h"
#include "quant.h"
#include "vmath.h"

typedef struct kv_seq {
    int used;
    int32_t n_mapped; /* logical blocks with a physical block */
    int32_t *table;   /* [n_blocks] logical -> physical; shared by all layers */
    int64_t *len;     /* [n_layers] tokens cached per layer */
    float *k_off;     /* [n_layers, n_kv, hd] subtracted from keys before they are quantized */
} kv_seq;

struct qtx_kv_cache {
    int n_layers, n_kv, hd, bt;
    qtx_kv_type k_type, v_type;
    size_t k_row, v_row; /* bytes of one (token, kv head) row */
    int32_t n_blocks;
    uint8_t *pool; /* keys at 0, values at v_off */
    size_t pool_bytes, v_off;
    int32_t *free_ids; /* stack of free physical blocks */
    int32_t n_free;
    kv_seq *seqs;
    int n_seqs;    /* slots allocated */
    int n_threads; /* OpenMP threads at creation: scratch is sized for, and attend uses, these */
    const qtx_quant_kernels *kern; /* quantized keys and values: quantizer, dot products */
    float *row_tmp;                /* [hd]: a key or value on its way to the pool */
    float *sign;                   /* [hd]: the rotation's random signs */
    int rot_n;                     /* the rotation's chunk: largest power of two dividing hd */
};

/* R = H S over each chunk of rot_n values: S fixed random signs, H the Walsh-Hadamard
 * matrix over sqrt(rot_n) (kv_cache.h says why). */
static void hadamard(const qtx_kv_cache *c, float *x) {
    const int n = c->rot_n; /* a power of two, >= 32 */
    const float norm = 1.0f / sqrtf((float)n);
    for (float *v = x; v < x + c->hd; v += n) {
        /* The butterflies of spans 1, 2 and 4, in the order of the loops below, written out
         * per group of 8: the short spans do not vectorize, the long ones do. */
        for (int i = 0; i < n; i += 8) {
            float *g = v + i;
            const float a0 = g[0] + g[1], a1 = g[0] - g[1], a2 = g[2] + g[3], a3 = g[2] - g[3];
            const float a4 = g[4] + g[5], a5 = g[4] - g[5], a6 = g[6] + g[7], a7 = g[6] - g[7];
            const float b0 = a0 + a2, b2 = a0 - a2, b1 = a1 + a3, b3 = a1 - a3;
            const float b4 = a4 + a6, b6 = a4 - a6, b5 = a5 + a7, b7 = a5 - a7;
            g[0] = b0 + b4, g[4] = b0 - b4, g[1] = b1 + b5, g[5] = b1 - b5;
            g[2] = b2 + b6, g[6] = b2 - b6, g[3] = b3 + b7, g[7] = b3 - b7;
        }
        for (int len = 8; len < n; len *= 2)
            for (int i = 0; i < n; i += 2 * len) {
                float *lo = v + i, *hi = v + i + len;
#pragma omp simd
                for (int j = 0; j < len; j++) {
                    const float a = lo[j], b = hi[j];
                    lo[j] = a + b;
                    hi[j] = a - b;
                }
            }
#pragma omp simd
        for (int i = 0; i < n; i++) v[i] *= norm;
    }
}
void qtx_kv_rotate(const qtx_kv_cache *c, float *x) {
    for (int i = 0; i < c->hd; i++) x[i] *= c->sign[i];
    hadamard(c, x);
}
void qtx_kv_rotate_back(const qtx_kv_cache *c, float *x) {
    hadamard(c, x);
    for (int i = 0; i < c->hd; i++) x[i] *= c->sign[i];
}

static kv_seq *seq_get(const qtx_kv_cache *c, int seq) {
    QTX_CHECK(seq >= 0 && seq < c->n_seqs && c->seqs[seq].used, "kv cache: no sequence %d", seq);
    return &c->seqs[seq];
}

/* The block_tokens rows of (physical block p, layer, kv head h). */
static uint8_t *k_rows(const qtx_kv_cache *c, int32_t p, int layer, int h) {
    const size_t r = (((size_t)p * c->n_layers + layer) * c->n_kv + h) * c->bt;
    return c->pool + r * c->k_row;
}
static uint8_t *v_rows(const qtx_kv_cache *c, int32_t p, int layer, int h) {
    const size_t r = (((size_t)p * c->n_layers + layer) * c->n_kv + h) * c->bt;
    return c->pool + c->v_off + r * c->v_row;
}

const char *qtx_kv_type_name(qtx_kv_type t) {
    return t == QTX_KV_F32 ? "f32" : t == QTX_KV_Q8 ? "q8" : t == QTX_KV_Q4 ? "q4" : NULL;
}

/* Bytes of one (token, kv head) row of hd values. */
static size_t row_bytes(qtx_kv_type t, int hd) {
    switch (t) {
    case QTX_KV_Q8:
        return (size_t)hd / QTX_QK * sizeof(qtx_block_q8_0);
    case QTX_KV_Q4:
        return (size_t)hd / QTX_QK * sizeof(qtx_block_q4_0);
    default:
        return (size_t)hd * sizeof(float);
    }
}

static int check_type(qtx_kv_type t, const char *side, int hd, qtx_err *e) {
    if (t != QTX_KV_F32 && t != QTX_KV_Q8 && t != QTX_KV_Q4)
        return qtx_fail(e, QTX_ERR_INPUT, "kv cache: unknown %s type %d (f32, q8 or q4)", side,
                        (int)t);
    if (t != QTX_KV_F32 && hd % QTX_QK != 0)
        return qtx_fail(e, QTX_ERR_INPUT,
                        "kv cache: %s type %s needs head_dim a multiple of %d, this model has "
                        "head_dim %d; use f32 for the %s",
                        side, qtx_kv_type_name(t), QTX_QK, hd, side);
    return QTX_OK;
}

int qtx_kv_create(qtx_kv_cache **out, int n_layers, int n_kv_heads, int head_dim,
                  int64_t max_tokens, int block_tokens, qtx_kv_type k_type, qtx_kv_type v_type,
                  qtx_err *e) {
    *out = NULL;
    if (block_tokens == 0) block_tokens = QTX_KV_BLOCK_TOKENS;
    if (n_layers < 1 || n_kv_heads < 1 || head_dim < 1)
        return qtx_fail(e, QTX_ERR_INPUT,
                        "kv cache: n_layers %d, n_kv_heads %d and head_dim %d must all be >= 1",
                        n_layers, n_kv_heads, head_dim);
    if (block_tokens < 1)
        return qtx_fail(e, QTX_ERR_INPUT, "kv cache: block_tokens %d must be >= 1 (0: %d)",
                        block_tokens, QTX_KV_BLOCK_TOKENS);
    if (max_tokens < 1)
        return qtx_fail(e, QTX_ERR_INPUT, "kv cache: --ctx %lld must be >= 1",
                        (long long)max_tokens);
    int rc = check_type(k_type, "key cache", head_dim, e);
    if (rc) return rc;
    if ((rc = check_type(v_type, "value cache", head_dim, e))) return rc;
    const int64_t n_blocks = (max_tokens + block_tokens - 1) / block_tokens;
    if (n_blocks > INT32_MAX)
        return qtx_fail(e, QTX_ERR_INPUT, "kv cache: --ctx %lld is too large",
                        (long long)max_tokens);

    qtx_kv_cache *c = qtx_calloc(1, sizeof *c);
    c->n_layers = n_layers;
    c->n_kv = n_kv_heads;
    c->hd = head_dim;
    c->bt = block_tokens;
    c->k_type = k_type;
    c->v_type = v_type;
    c->k_row = row_bytes(k_type, head_dim);
    c->v_row = row_bytes(v_type, head_dim);
    c->n_blocks = (int32_t)n_blocks;
    c->n_threads = omp_get_max_threads();
    const size_t rows = (size_t)n_blocks * (size_t)n_layers * (size_t)n_kv_heads * block_tokens;
    c->v_off = (rows * c->k_row + 63) / 64 * 64;
    c->pool_bytes = c->v_off + rows * c->v_row;
    c->pool = qtx_alloc_big(c->pool_bytes);
    c->free_ids = qtx_malloc((size_t)n_blocks * sizeof(int32_t));
    /* Popped from the end: block 0 goes out first. */
    for (int32_t i = 0; i < c->n_blocks; i++) c->free_ids[i] = c->n_blocks - 1 - i;
    c->n_free = c->n_blocks;
    c->kern = qtx_quant_kernels_best();
    c->row_tmp = qtx_malloc((size_t)head_dim * sizeof(float));
    c->sign = qtx_malloc((size_t)head_dim * sizeof(float));
    c->rot_n = head_dim & -head_dim;
    uint64_t r = 0x9E3779B97F4A7C15ull; /* fixed: the signs are part of the stored format */
    for (int i = 0; i < head_dim; i++) {
        r = r * 6364136223846793005ull + 1442695040888963407ull;
        c->sign[i] = (r >> 63) ? -1.0f : 1.0f;
    }
    *out = c;
    return QTX_OK;
}

void qtx_kv_free(qtx_kv_cache *c) {
    if (!c) return;
    for (int i = 0; i < c->n_seqs; i++) {
        free(c->seqs[i].table);
        free(c->seqs[i].len);
        free(c->seqs[i].k_off);
    }
    free(c->row_tmp);
    free(c->sign);
    free(c->seqs);
    free(c->free_ids);
    qtx_free_big(c->pool, c->pool_bytes);
    free(c);
}

int qtx_kv_seq_new(qtx_kv_cache *c, qtx_err *e) {
    (void)e;
    int id = 0;
    while (id < c->n_seqs && c->seqs[id].used) id++;
    if (id == c->n_seqs) {
        /* Slots are kept after a free (tables included), so this grows rarely. */
        const int n = c->n_seqs ? 2 * c->n_seqs : 4;
        c->seqs = qtx_realloc(c->seqs, (size_t)n * sizeof *c->seqs);
        for (int i = c->n_seqs; i < n; i++) {
            kv_seq *s = &c->seqs[i];
            s->used = 0;
            s->n_mapped = 0;
            s->table = qtx_malloc((size_t)c->n_blocks * sizeof(int32_t));
            s->len = qtx_calloc((size_t)c->n_layers, sizeof(int64_t));
            s->k_off = qtx_malloc((size_t)c->n_layers * c->n_kv * c->hd * sizeof(float));
        }
        c->n_seqs = n;
    }
    kv_seq *s = &c->seqs[id];
    s->used = 1;
    s->n_mapped = 0;
    memset(s->len, 0, (size_t)c->n_layers * sizeof(int64_t));
    memset(s->k_off, 0, (size_t)c->n_layers * c->n_kv * c->hd * sizeof(float));
    return id;
}

void qtx_kv_set_key_offset(qtx_kv_cache *c, int seq, int layer, const float *off) {
    QTX_CHECK(layer >= 0 && layer < c->n_layers, "kv cache: layer %d of %d", layer, c->n_layers);
    kv_seq *s = seq_get(c, seq);
    QTX_CHECK(s->len[layer] == 0, "kv cache: key offset of layer %d set after %lld tokens", layer,
              (long long)s->len[layer]);
    if (c->k_type == QTX_KV_F32) return; /* f32 keys need none: kept bit-exact */
    memcpy(s->k_off + (size_t)layer * c->n_kv * c->hd, off,
           (size_t)c->n_kv * c->hd * sizeof(float));
}

void qtx_kv_seq_free(qtx_kv_cache *c, int seq) {
    kv_seq *s = seq_get(c, seq);
    for (int32_t i = s->n_mapped - 1; i >= 0; i--) c->free_ids[c->n_free++] = s->table[i];
    s->n_mapped = 0;
    s->used = 0;
    memset(s->len, 0, (size_t)c->n_layers * sizeof(int64_t));
}

int64_t qtx_kv_seq_len(const qtx_kv_cache *c, int seq, int layer) {
    QTX_CHECK(layer >= 0 && layer < c->n_layers, "kv cache: layer %d of %d", layer, c->n_layers);
    return seq_get(c, seq)->len[layer];
}

/* q8 rows go through the ISA's quantizer (the reference's bytes, faster); q4 rows get the
 * scale of least error (their bytes are not ggml's, and need not be). */
static void store_row(const qtx_kv_cache *c, qtx_kv_type t, const float *x, uint8_t *dst, int hd) {
    if (t == QTX_KV_F32)
        memcpy(dst, x, (size_t)hd * sizeof(float));
    else if (t == QTX_KV_Q8)
        c->kern->quantize_row_q8_0(x, dst, hd);
    else
        qtx_quantize_row_q4_0_fit(x, dst, hd);
}

int qtx_kv_append(qtx_kv_cache *c, int seq, int layer, const float *k, const float *v, qtx_err *e) {
    QTX_CHECK(layer >= 0 && layer < c->n_layers, "kv cache: layer %d of %d", layer, c->n_layers);
    kv_seq *s = seq_get(c, seq);
    const int64_t pos = s->len[layer];
    const int64_t lb = pos / c->bt;
    if (lb >= s->n_mapped) {
        /* Lengths grow by one, so a layer only ever steps into the next unmapped block. */
        QTX_CHECK(lb == s->n_mapped, "kv cache: block table out of step");
        if (c->n_free == 0)
            return qtx_fail(e, QTX_ERR_RUNTIME,
                            "kv cache full: sequence %d needs token %lld but all %lld token slots "
                            "(%d blocks of %d) are in use; raise --ctx",
                            seq, (long long)pos + 1, (long long)qtx_kv_capacity(c),
                            (int)c->n_blocks, c->bt);
        s->table[s->n_mapped++] = c->free_ids[--c->n_free];
    }
    const int32_t phys = s->table[lb];
    const int slot = (int)(pos % c->bt);
    const float *off = s->k_off + (size_t)layer * c->n_kv * c->hd;
    for (int h = 0; h < c->n_kv; h++) {
        const float *kh = k + (int64_t)h * c->hd;
        if (c->k_type != QTX_KV_F32) {
            for (int i = 0; i < c->hd; i++) c->row_tmp[i] = kh[i] - off[(int64_t)h * c->hd + i];
            qtx_kv_rotate(c, c->row_tmp);
            kh = c->row_tmp;
        }
        store_row(c, c->k_type, kh, k_rows(c, phys, layer, h) + (size_t)slot * c->k_row, c->hd);
        const float *vh = v + (int64_t)h * c->hd;
        if (c->v_type != QTX_KV_F32) {
            memcpy(c->row_tmp, vh, (size_t)c->hd * sizeof(float));
            qtx_kv_rotate(c, c->row_tmp);
            vh = c->row_tmp;
        }
        store_row(c, c->v_type, vh, v_rows(c, phys, layer, h) + (size_t)slot * c->v_row, c->hd);
    }
    s->len[layer] = pos + 1;
    return QTX_OK;
}

int64_t qtx_kv_capacity(const qtx_kv_cache *c) {
    return (int64_t)c->n_blocks * c->bt;
}

size_t qtx_kv_bytes(const qtx_kv_cache *c) {
    size_t b = sizeof *c + c->pool_bytes + (size_t)c->n_blocks * sizeof(int32_t);
    b += (size_t)c->n_seqs * (sizeof(kv_seq) + (size_t)c->n_blocks * sizeof(int32_t) +
                              (size_t)c->n_layers * sizeof(int64_t));
    return b;
}

double qtx_kv_bytes_per_token(const qtx_kv_cache *c) {
    return (double)c->n_layers * c->n_kv * (double)(c->k_row + c->v_row);
}

/* ---- attention ---- */

/* Floats of scratch per thread: the scores, then (quantized keys only) the rotated query and
 * its q8_0 blocks. */
static size_t head_scratch(const qtx_kv_cache *c, int64_t n_pos) {
    if (c->k_type == QTX_KV_F32) return (size_t)n_pos;
    const size_t qbytes = (size_t)c->hd / QTX_QK * sizeof(qtx_block_q8_0);
    return (size_t)n_pos + (size_t)c->hd + (qbytes + sizeof(float) - 1) / sizeof(float);
}

size_t qtx_kv_scratch_floats(const qtx_kv_cache *c, int64_t max_pos) {
    return (size_t)c->n_threads * head_scratch(c, max_pos);
}

/* o[hd] += p * row (dequantized block by block: scale folded into p once per 32 values). */
static void axpy_row(qtx_kv_type t, float *o, float p, const void *row, int hd) {
    if (t == QTX_KV_F32) {
        const float *x = row;
#pragma omp simd
        for (int i = 0; i < hd; i++) o[i] += p * x[i];
    } else if (t == QTX_KV_Q8) {
        const qtx_block_q8_0 *b = row;
        for (int j = 0; j < hd / QTX_QK; j++, o += QTX_QK) {
            const float s = p * qtx_f16_to_f32(b[j].d);
#pragma omp simd
            for (int i = 0; i < QTX_QK; i++) o[i] += s * (float)b[j].qs[i];
        }
    } else {
        const qtx_block_q4_0 *b = row;
        for (int j = 0; j < hd / QTX_QK; j++, o += QTX_QK) {
            const float s = p * qtx_f16_to_f32(b[j].d);
#pragma omp simd
            for (int i = 0; i < QTX_QK / 2; i++) {
                o[i] += s * (float)((b[j].qs[i] & 15) - 8);
                o[i + QTX_QK / 2] += s * (float)((b[j].qs[i] >> 4) - 8);
            }
        }
    }
}

/* One query head: scores over the sequence's blocks, softmax, weighted sum of values. */
static void attend_head(const qtx_kv_cache *c, const kv_seq *s, int layer, int kvh, const float *q,
                        int64_t n_pos, float *out, float *sc) {
    const int hd = c->hd;
    const float scale = 1.0f / sqrtf((float)hd);
    const int64_t n_lb = (n_pos + c->bt - 1) / c->bt;
    float *qr = sc + n_pos;
    void *qq = qr + hd;
    if (c->k_type != QTX_KV_F32) {
        memcpy(qr, q, (size_t)hd * sizeof(float));
        qtx_kv_rotate(c, qr);
        c->kern->quantize_row_q8_0(qr, qq, hd);
    }
    const qtx_vec_dot_fn dot = c->k_type == QTX_KV_Q8   ? c->kern->dot_q8_0_q8_0
                               : c->k_type == QTX_KV_Q4 ? c->kern->dot_q4_0_q8_0
                                                        : NULL;
    float mx = -INFINITY;
    for (int64_t lb = 0; lb < n_lb; lb++) {
        const uint8_t *rows = k_rows(c, s->table[lb], layer, kvh);
        const int64_t t0 = lb * c->bt, n = n_pos - t0 < c->bt ? n_pos - t0 : c->bt;
        for (int64_t t = 0; t < n; t++) {
            const void *kr = rows + (size_t)t * c->k_row;
            float d = 0.0f;
            if (dot) {
                dot(hd, &d, kr, qq); /* integer sums per block, times d_k d_q */
            } else {
                const float *k = kr;
#pragma omp simd reduction(+ : d)
                for (int i = 0; i < hd; i++) d += q[i] * k[i];
            }
            d *= scale;
            sc[t0 + t] = d;
            mx = d > mx ? d : mx;
        }
    }
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int64_t t = 0; t < n_pos; t++) {
        sc[t] = qtx_expf(sc[t] - mx);
        sum += sc[t];
    }
    const float inv = 1.0f / sum;
    memset(out, 0, (size_t)hd * sizeof(float));
    for (int64_t lb = 0; lb < n_lb; lb++) {
        const uint8_t *rows = v_rows(c, s->table[lb], layer, kvh);
        const int64_t t0 = lb * c->bt, n = n_pos - t0 < c->bt ? n_pos - t0 : c->bt;
        for (int64_t t = 0; t < n; t++)
            axpy_row(c->v_type, out, sc[t0 + t] * inv, rows + (size_t)t * c->v_row, hd);
    }
    if (c->v_type != QTX_KV_F32) qtx_kv_rotate_back(c, out);
}

/* The current thread count, at most the one scratch was sized for. */
static int attend_threads(const qtx_kv_cache *c) {
    const int n = omp_get_max_threads();
    return n < c->n_threads ? n : c->n_threads;
}

void qtx_kv_attend_batch(const qtx_kv_cache *c, int seq, int layer, const float *q, int n_heads,
                         int n_tok, int64_t n_pos, float *out, float *scratch) {
    QTX_CHECK(layer >= 0 && layer < c->n_layers, "kv cache: layer %d of %d", layer, c->n_layers);
    const kv_seq *s = seq_get(c, seq);
    QTX_CHECK(n_heads >= c->n_kv && n_heads % c->n_kv == 0,
              "kv cache: %d query heads over %d kv heads", n_heads, c->n_kv);
    QTX_CHECK(n_tok >= 1 && n_pos >= 1 && n_pos + n_tok - 1 <= s->len[layer],
              "kv cache: attending %d tokens from position %lld over %lld cached", n_tok,
              (long long)n_pos, (long long)s->len[layer]);
    const int group = n_heads / c->n_kv;
    const int64_t qd = (int64_t)n_heads * c->hd, last = n_pos + n_tok - 1;
    const size_t stride = head_scratch(c, last);
    const int64_t n_jobs = (int64_t)n_tok * n_heads;
    /* Each (token, head) is one thread's work in a fixed order: results do not depend on
     * threads. Only the shortest contexts stay serial: a fork and join costs about 1 us here,
     * a decode step's attention over 16 positions of 8 heads of 64 already several (going
     * parallel from 16 positions instead of 128 took small q8_0's two-thread decode attention
     * from 111-134 to 65-89 us per token). One head per grab when there are few. */
#pragma omp parallel num_threads(attend_threads(c)) if (n_tok * last * n_heads * c->hd >= 8192)
    {
        float *sc = scratch + (size_t)omp_get_thread_num() * stride;
#pragma omp for schedule(dynamic, n_jobs >= 64 ? 4 : 1)
        for (int64_t j = 0; j < n_jobs; j++) {
            const int64_t i = j / n_heads;
            const int h = (int)(j % n_heads);
            attend_head(c, s, layer, h / group, q + i * qd + (int64_t)h * c->hd, n_pos + i,
                        out + i * qd + (int64_t)h * c->hd, sc);
        }
    }
}

void qtx_kv_attend(const qtx_kv_cache *c, int seq, int layer, const float *q, int n_heads,
                   int64_t n_pos, float *out, float *scratch) {
    qtx_kv_attend_batch(c, seq, layer, q, n_heads, 1, n_pos, out, scratch);
}
