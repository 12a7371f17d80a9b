/* shard.h: HDF5 token shards (DESIGN.md, Data; docs/FORMATS.md).
 *
 * A shard is one HDF5 file: dataset /tokens (uint16 when vocab_size <= 65535, else uint32;
 * chunked, shuffle + deflate + fletcher32), dataset /doc_offsets (int64, n_docs + 1 entries,
 * the start of each document and the end), and attributes format_version, vocab_size,
 * eos_id, tokenizer_hash, n_tokens, n_docs. Offsets are 64-bit throughout.
 */
#ifndef QTX_SHARD_H
#define QTX_SHARD_H

#include <stdint.h>

#include "check.h"

#define QTX_SHARD_FORMAT_VERSION 1

typedef struct qtx_shard_meta {
    int format_version;
    int64_t vocab_size;
    uint32_t eos_id;
    char tokenizer_hash[72]; /* hex SHA-256 or similar of tokenizer.json; may be empty */
    int64_t n_tokens;
    int64_t n_docs;
} qtx_shard_meta;

/* Writes a complete shard to `path` through a temporary name in the same directory and an
 * atomic rename: a partial shard never appears under its final name. doc_offsets has
 * n_docs + 1 entries (0 ... n_tokens). meta->n_tokens/n_docs are taken from the arguments. */
int qtx_shard_write(const char *path, const uint32_t *tokens, int64_t n_tokens,
                    const int64_t *doc_offsets, int64_t n_docs, const qtx_shard_meta *meta,
                    qtx_err *e);

typedef struct qtx_shard qtx_shard;

/* Opens and validates a shard (format version, attributes, dataset shapes). Errors name the
 * file. */
int qtx_shard_open(const char *path, qtx_shard **out, qtx_err *e);
const qtx_shard_meta *qtx_shard_get_meta(const qtx_shard *s);
const char *qtx_shard_path(const qtx_shard *s);

/* Reads tokens [start, start + count) by hyperslab into dst, checking every id < vocab_size
 * and the chunk checksums (a corrupt chunk is an input error naming the file). */
int qtx_shard_read(qtx_shard *s, int64_t start, int64_t count, uint32_t *dst, qtx_err *e);

void qtx_shard_close(qtx_shard *s);

#endif
