/* kv_cache.h: the paged, optionally quantized key/value cache of decoding, and attention of
 * one query token over it.
 *
 * Paging. The cache owns one pool of physical blocks, each holding block_tokens tokens of
 * keys and values for every layer and kv head. A sequence has one block table (logical
 * block -> physical block) shared by all layers: the layers of a decoder advance in lock
 * step, so a per-layer table would only repeat the same mapping. Lengths are kept per layer
 * (a decode step appends layer 0 before layer 1); the first layer to step into a new
 * logical block takes a physical block from the pool for all. Freeing a sequence returns
 * its blocks. The pool is sized at creation (max_tokens, rounded up to whole blocks) and
 * never grows: the decode loop allocates nothing.
 *
 * Storage. Keys and values are each f32, q8 or q4 (the two may differ), quantized per
 * (token, kv head) over the head dimension in 32-value q8_0 / q4_0 blocks (core/quant.h),
 * so head_dim must be a multiple of 32 for a quantized type. Per token and layer that is
 * n_kv_heads * head_dim * 4 bytes (f32), * 34 / 32 (q8) or * 18 / 32 (q4) for K and again
 * for V. q4 blocks take the scale of least squared error (qtx_quantize_row_q4_0_fit).
 *
 * Rotation. Quantized keys and values are stored rotated by R (qtx_kv_rotate): a fixed
 * orthonormal map, random signs then a Walsh-Hadamard transform over chunks of the largest
 * power of two dividing head_dim. The query is rotated the same way before it is quantized
 * (Rq . Rk = q . k), and a head's output, a sum of rotated values, is rotated back once
 * (R^T). A few large channels (trained keys have them) are spread over the chunk instead of
 * setting a block's scale for the 31 small values beside them (QuaRot): on the trained test
 * model, the worst head output of q4 keys goes from cosine 0.971 to 0.990 against f32.
 *
 * Attention. With quantized keys the query head is quantized to q8_0 and each score is the
 * integer dot product of the quantized rows (q8 x q8 or q4 x q8, core/quant.h kernels of the
 * best ISA) times the two block scales; with f32 keys it is a float dot product. Scores are
 * scaled by 1/sqrt(head_dim), the softmax is in float, and values (dequantized on the fly)
 * are summed with the probabilities. Heads run in parallel (OpenMP); each output head is
 * computed by one thread in a fixed order, so results do not depend on the thread count.
 */
#ifndef QTX_KV_CACHE_H
#define QTX_KV_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "check.h"

typedef enum qtx_kv_type { QTX_KV_F32, QTX_KV_Q8, QTX_KV_Q4 } qtx_kv_type;
#define QTX_KV_N_TYPES 3

/* "f32", "q8" or "q4"; NULL for anything else. */
const char *qtx_kv_type_name(qtx_kv_type t);

#define QTX_KV_BLOCK_TOKENS 16 /* tokens per physical block when block_tokens is 0 */

typedef struct qtx_kv_cache qtx_kv_cache;

/* A pool of ceil(max_tokens / block_tokens) blocks (block_tokens 0: QTX_KV_BLOCK_TOKENS) for
 * n_layers layers of n_kv_heads heads of head_dim. Bad shapes or a quantized type with
 * head_dim not a multiple of 32 give QTX_ERR_INPUT and *out = NULL. */
int qtx_kv_create(qtx_kv_cache **out, int n_layers, int n_kv_heads, int head_dim,
                  int64_t max_tokens, int block_tokens, qtx_kv_type k_type, qtx_kv_type v_type,
                  qtx_err *e);
void qtx_kv_free(qtx_kv_cache *c); /* NULL is fine */

/* A new empty sequence: returns its id (>= 0; the lowest free one). Never fails today (the
 * sequence table grows), but takes e for symmetry with the calls that can. */
int qtx_kv_seq_new(qtx_kv_cache *c, qtx_err *e);
/* Returns the sequence's blocks to the pool and its id for reuse. */
void qtx_kv_seq_free(qtx_kv_cache *c, int seq);
/* Tokens cached for seq in layer. */
int64_t qtx_kv_seq_len(const qtx_kv_cache *c, int seq, int layer);

/* Key offset: quantized keys are stored less a per-(layer, kv head, channel) offset of the
 * sequence. Every score of one query then moves by the same q . offset, which the softmax
 * cancels exactly, while keys that share a large per-channel component (LLM keys do) lose it
 * before quantization and keep more of their 4 or 8 bits for what tells them apart. off is
 * [n_kv_heads * head_dim]; it must be set before the layer's first append (zero until then),
 * and is ignored for f32 keys. */
void qtx_kv_set_key_offset(qtx_kv_cache *c, int seq, int layer, const float *off);

/* x[head_dim] <- R x and x <- R^T x (R as above). For tests and references. */
void qtx_kv_rotate(const qtx_kv_cache *c, float *x);
void qtx_kv_rotate_back(const qtx_kv_cache *c, float *x);

/* Appends one token's k and v ([n_kv_heads * head_dim] each, kv head h at h * head_dim, after
 * RoPE) at the sequence's next position in layer. When the pool has no free block left it
 * returns QTX_ERR_RUNTIME with a message naming the capacity and --ctx, and caches nothing. */
int qtx_kv_append(qtx_kv_cache *c, int seq, int layer, const float *k, const float *v, qtx_err *e);

/* Causal attention of one query token over the first n_pos (1 <= n_pos <= length) cached
 * tokens of seq in layer: q and out are [n_heads * head_dim]; grouped-query, n_heads a
 * multiple of n_kv_heads, query head h reading kv head h / (n_heads / n_kv_heads). scratch
 * holds qtx_kv_scratch_floats(c, max_pos) floats for some max_pos >= n_pos: a slice per
 * OpenMP thread of the count at creation, which caps the threads attend uses (so raising
 * the thread count later cannot overrun it). */
void qtx_kv_attend(const qtx_kv_cache *c, int seq, int layer, const float *q, int n_heads,
                   int64_t n_pos, float *out, float *scratch);
/* qtx_kv_attend for n_tok query tokens at once (a prompt): q and out are [n_tok, n_heads *
 * head_dim], token i attending over the first n_pos + i cached tokens (so the cache holds
 * n_pos + n_tok - 1 or more). The (token, head) pairs share one parallel loop; each output
 * equals what qtx_kv_attend gives for that token, bit for bit. scratch as for qtx_kv_attend
 * with max_pos >= n_pos + n_tok - 1. */
void qtx_kv_attend_batch(const qtx_kv_cache *c, int seq, int layer, const float *q, int n_heads,
                         int n_tok, int64_t n_pos, float *out, float *scratch);
size_t qtx_kv_scratch_floats(const qtx_kv_cache *c, int64_t max_pos);

/* Tokens the pool holds over all sequences (whole blocks). */
int64_t qtx_kv_capacity(const qtx_kv_cache *c);
/* Memory held: the block pool (as sized; its allocation rounds up to 2 MiB pages) plus the
 * free list and block tables. */
size_t qtx_kv_bytes(const qtx_kv_cache *c);
/* Bytes of K plus V over all layers for one token: 2 L KV hd * 4 for f32, L KV hd / 32 * 34
 * per q8 side and * 18 per q4 side. Block tables are not counted. */
double qtx_kv_bytes_per_token(const qtx_kv_cache *c);

#endif
