/* gguf.h: a GGUF v3 reader (llama.cpp's model file; the spec is ggml's docs/gguf.md).
 *
 *     "GGUF"  version u32 (3)  tensor_count u64  kv_count u64
 *     kv_count x   key (string)  value type u32  value (an array: elem type u32, count u64, elems)
 *     tensor_count x  name (string)  n_dims u32  ne[n_dims] u64  type u32  offset u64
 *     padding to general.alignment (default 32), then the tensor data section
 *
 * A string is a u64 length and that many bytes (no NUL); everything is little-endian.
 *
 * qtx_gguf_open maps (or reads) the file and checks everything before returning: every length and
 * count against the bytes left (counts are capped before anything is allocated), every key and
 * tensor name unique, general.alignment a power of two, each tensor's dimensions (1 to 4,
 * ne[0] a multiple of its type's block size), type (f32, f16, q4_0, q8_0; any other ggml type
 * is refused by name), and data (aligned, inside the file, not overlapping another tensor's).
 * So every accessor below is a plain lookup that cannot read out of bounds.
 *
 * Errors are QTX_ERR_INPUT with one line: "FILE: what is wrong (offset N); what to do".
 * Strings handed out (keys, values, array elements, tensor names) are copies terminated by a
 * NUL (a value may also contain NUL bytes: its length is authoritative) and live until
 * qtx_gguf_close. A qtx_gguf is immutable once open and may be shared by threads.
 */
#ifndef QTX_GGUF_H
#define QTX_GGUF_H

#include <stddef.h>
#include <stdint.h>

#include "check.h"
#include "quant.h"

/* Metadata value types, as stored. */
typedef enum qtx_gguf_type {
    QTX_GGUF_U8 = 0,
    QTX_GGUF_I8 = 1,
    QTX_GGUF_U16 = 2,
    QTX_GGUF_I16 = 3,
    QTX_GGUF_U32 = 4,
    QTX_GGUF_I32 = 5,
    QTX_GGUF_F32 = 6,
    QTX_GGUF_BOOL = 7,
    QTX_GGUF_STR = 8,
    QTX_GGUF_ARR = 9,
    QTX_GGUF_U64 = 10,
    QTX_GGUF_I64 = 11,
    QTX_GGUF_F64 = 12,
} qtx_gguf_type;

#define QTX_GGUF_VERSION 3
#define QTX_GGUF_DEFAULT_ALIGNMENT 32
#define QTX_GGUF_MAX_DIMS 4
#define QTX_GGUF_NAME_MAX 63           /* longest tensor name (ggml's GGML_MAX_NAME - 1) */
#define QTX_GGUF_KEY_MAX 65535         /* longest key */
#define QTX_GGUF_MAX_KV (1 << 20)      /* more keys than this is a corrupt file */
#define QTX_GGUF_MAX_TENSORS (1 << 20) /* more tensors than this is a corrupt file */

typedef struct qtx_gguf qtx_gguf;

typedef struct qtx_gguf_tensor {
    const char *name;
    int n_dims;       /* 1..4 */
    int64_t ne[4];    /* ggml order: ne[0] is the contiguous dimension; unused ones are 1 */
    qtx_qtype type;   /* f32, f16, q4_0 or q8_0 */
    const void *data; /* inside the mapping; aligned to the file's alignment (up to 4096) */
    size_t nbytes;    /* ne[0..3] product / block size x block bytes */
    uint64_t offset;  /* in the data section, as stored */
} qtx_gguf_tensor;

/* How the file's bytes are held. A mapping is zero-copy and shares the page cache, on 4 KiB
 * pages; a copy is read into anonymous memory on 2 MiB pages at open, which costs the file's
 * size in memory and a read, and decodes faster (a decode step streams every weight, and
 * fewer TLB misses measured 5-20% more tokens/s here, docs/BENCHMARKS.md). */
typedef enum qtx_gguf_load { QTX_GGUF_MAP, QTX_GGUF_COPY } qtx_gguf_load;

/* Opens (as `how` says) and checks path. On failure *out is NULL. */
int qtx_gguf_open_with(qtx_gguf **out, const char *path, qtx_gguf_load how, qtx_err *e);
/* qtx_gguf_open_with(QTX_GGUF_MAP). */
int qtx_gguf_open(qtx_gguf **out, const char *path, qtx_err *e);
void qtx_gguf_close(qtx_gguf *g);

/* The path it was opened with, the alignment of its data, and the file size. */
const char *qtx_gguf_path(const qtx_gguf *g);
uint32_t qtx_gguf_alignment(const qtx_gguf *g);
uint64_t qtx_gguf_file_size(const qtx_gguf *g);

/* ---- metadata ------------------------------------------------------------------------------- */

/* Keys in file order: the count, and key i with its value type (and element type for arrays:
 * elem_type may be NULL). */
int qtx_gguf_n_kv(const qtx_gguf *g);
const char *qtx_gguf_key_at(const qtx_gguf *g, int i, int *type, int *elem_type);
/* Whether key exists (any type). */
int qtx_gguf_has(const qtx_gguf *g, const char *key);

/* Scalar values of exactly that type. A missing key, or one of another type, is
 * QTX_ERR_INPUT naming file, key, the expected and the found type. */
int qtx_gguf_get_u32(const qtx_gguf *g, const char *key, uint32_t *v, qtx_err *e);
int qtx_gguf_get_i32(const qtx_gguf *g, const char *key, int32_t *v, qtx_err *e);
int qtx_gguf_get_u64(const qtx_gguf *g, const char *key, uint64_t *v, qtx_err *e);
int qtx_gguf_get_f32(const qtx_gguf *g, const char *key, float *v, qtx_err *e);
int qtx_gguf_get_bool(const qtx_gguf *g, const char *key, int *v, qtx_err *e);
/* *s is NUL-terminated; *len (may be NULL) is its stored length. */
int qtx_gguf_get_str(const qtx_gguf *g, const char *key, const char **s, size_t *len, qtx_err *e);

/* An array: its element type and count (errors as above, expecting "array"). */
int qtx_gguf_get_arr(const qtx_gguf *g, const char *key, int *elem_type, uint64_t *n, qtx_err *e);
/* Element i of a string array; -1 when key is not a string array or i is out of range. */
int qtx_gguf_arr_str(const qtx_gguf *g, const char *key, uint64_t i, const char **s, size_t *len);
/* The elements of a numeric (or bool: one byte each) array, naturally aligned; NULL when key
 * is not such an array. Their type and count are qtx_gguf_get_arr's: check the type first. */
const void *qtx_gguf_arr_data(const qtx_gguf *g, const char *key);

/* ---- tensors -------------------------------------------------------------------------------- */

int qtx_gguf_n_tensors(const qtx_gguf *g);
/* Tensor i in file order (NULL when out of range). */
const qtx_gguf_tensor *qtx_gguf_tensor_at(const qtx_gguf *g, int i);
/* The tensor of that name, or NULL. */
const qtx_gguf_tensor *qtx_gguf_find(const qtx_gguf *g, const char *name);

/* ---- names ---------------------------------------------------------------------------------- */

/* "uint32", "float32", "string", "array", ...; "unknown" for others. */
const char *qtx_gguf_type_name(int type);
/* ggml's name of tensor type t ("f32", "q4_K", ...), or NULL for an id ggml does not define. */
const char *qtx_ggml_type_name(uint32_t t);

#endif
