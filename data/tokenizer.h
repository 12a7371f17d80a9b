/* tokenizer.h: byte-level BPE exactly as GPT-2 and Hugging Face `tokenizers` do it
 * (docs/DATA.md): the GPT-2 pre-tokenizer pattern, merges applied by rank, added/special
 * tokens (at least <|endoftext|>, the EOS) matched before pre-tokenization, Hugging Face
 * tokenizer.json read and written, and a BPE trainer.
 *
 * Any bytes round-trip: decode(encode(x)) == x. Invalid UTF-8 (which Hugging Face cannot
 * take at all) is split into one-byte pieces, each a byte token.
 *
 * A qtx_tokenizer is immutable once built and may be shared by threads; each thread encodes
 * through its own qtx_encoder (pattern match state and a cache of merged pieces).
 */
#ifndef QTX_TOKENIZER_H
#define QTX_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "check.h"

#define QTX_EOS_TOKEN "<|endoftext|>"

typedef struct qtx_tokenizer qtx_tokenizer;

/* A growable id array; start from {0} and release with qtx_ids_free. */
typedef struct qtx_ids {
    uint32_t *v;
    size_t n, cap;
} qtx_ids;

void qtx_ids_push(qtx_ids *a, uint32_t id);
void qtx_ids_free(qtx_ids *a);

/* A growable byte buffer; start from {0} and release with qtx_bytes_free. */
typedef struct qtx_bytes {
    char *p;
    size_t n, cap;
} qtx_bytes;

void qtx_bytes_append(qtx_bytes *b, const void *p, size_t n);
void qtx_bytes_free(qtx_bytes *b);

/* ---- tokenizer.json -------------------------------------------------------------------- */

/* Loads a Hugging Face tokenizer.json: model BPE (vocab + merges), no normalizer,
 * pre_tokenizer ByteLevel (add_prefix_space false, use_regex true), decoder ByteLevel or none,
 * added_tokens. Anything else, or malformed JSON, is QTX_ERR_INPUT with one line naming the
 * file and the offending field. */
int qtx_tokenizer_load(const char *path, qtx_tokenizer **out, qtx_err *e);
/* The same from memory; `name` stands for the file in messages. */
int qtx_tokenizer_parse(const char *json, size_t len, const char *name, qtx_tokenizer **out,
                        qtx_err *e);
/* Writes tokenizer.json (Hugging Face format, deterministic bytes) through a temporary file
 * and a rename, then sets the tokenizer's hash to that of the written file. */
int qtx_tokenizer_save(qtx_tokenizer *t, const char *path, qtx_err *e);
void qtx_tokenizer_free(qtx_tokenizer *t);

/* Highest id + 1 (ids of special tokens included). */
int64_t qtx_tokenizer_vocab_size(const qtx_tokenizer *t);
int64_t qtx_tokenizer_n_merges(const qtx_tokenizer *t);
/* Id of <|endoftext|>, or -1 when the tokenizer has none. */
int64_t qtx_tokenizer_eos_id(const qtx_tokenizer *t);
/* Id of the token whose bytes (or added-token content) are s[0, len), or -1. */
int64_t qtx_tokenizer_token_id(const qtx_tokenizer *t, const char *s, size_t len);
/* The bytes id decodes to (*len of them), or NULL when there is no such id. */
const char *qtx_tokenizer_token_bytes(const qtx_tokenizer *t, uint32_t id, size_t *len);
/* Lowercase hex SHA-256 of the tokenizer.json bytes this tokenizer was loaded from or saved
 * to ("" for one only built in memory): the tokenizer_hash of shard metadata. */
const char *qtx_tokenizer_hash(const qtx_tokenizer *t);
/* Lowercase hex SHA-256 of any file (out has 65 bytes). */
int qtx_sha256_file(const char *path, char out[65], qtx_err *e);

/* ---- encoding and decoding ------------------------------------------------------------- */

typedef struct qtx_encoder qtx_encoder;

qtx_encoder *qtx_encoder_new(const qtx_tokenizer *t);
void qtx_encoder_free(qtx_encoder *enc);

/* Appends the ids of text[0, len) to out. Added tokens (e.g. <|endoftext|>) in the text
 * become their ids, leftmost-longest, as in Hugging Face. */
void qtx_encode(qtx_encoder *enc, const char *text, size_t len, qtx_ids *out);

/* The smallest k >= from (k <= len; len when there is none) at which text can be cut so that
 * encoding both halves gives exactly the ids of the whole: between an ASCII letter and a space
 * followed by an ASCII letter, with no added token straddling the cut. Lets one long text be
 * encoded in parallel with the same result. */
size_t qtx_tokenizer_split_point(const qtx_tokenizer *t, const char *text, size_t len, size_t from);

/* Encodes text with n encoders (one per thread, n >= 1) on chunks cut by
 * qtx_tokenizer_split_point; appends to out the same ids as qtx_encode. */
void qtx_encode_parallel(qtx_encoder *const *encs, int n, const char *text, size_t len,
                         qtx_ids *out);

/* Appends the bytes of ids to out. An id without a token is QTX_ERR_INPUT naming its index. */
int qtx_decode(const qtx_tokenizer *t, const uint32_t *ids, size_t n, qtx_bytes *out, qtx_err *e);

/* ---- training -------------------------------------------------------------------------- */

typedef struct qtx_bpe_train_options {
    int64_t vocab_size;         /* 256 bytes + merges + special tokens */
    const char *const *special; /* extra special tokens; <|endoftext|> is always added */
    int n_special;
    int64_t min_frequency; /* pairs seen fewer times are never merged (>= 1) */
    int n_threads;         /* for counting words */
} qtx_bpe_train_options;

typedef struct qtx_bpe_trainer qtx_bpe_trainer;

/* Fails (QTX_ERR_INPUT) when vocab_size cannot hold the bytes and the special tokens or a
 * special token is empty. */
int qtx_bpe_trainer_new(const qtx_bpe_train_options *o, qtx_bpe_trainer **out, qtx_err *e);
/* Counts the pre-tokenized words of n texts, on the trainer's threads. Special tokens in the
 * texts are cut out first and never take part in merges. */
void qtx_bpe_trainer_feed(qtx_bpe_trainer *tr, const char *const *texts, const size_t *lens, int n);
/* Learns merges (call once, after all feeding) until the vocabulary is full (or no pair is
 * frequent enough): each step
 * merges the most frequent pair, ties going to the smallest (left id, right id). Ids: the 256
 * bytes (id = byte value), then one per merge, then the special tokens in order. */
int qtx_bpe_trainer_finish(qtx_bpe_trainer *tr, qtx_tokenizer **out, qtx_err *e);
/* Counting statistics: distinct words (exact after finish; before it an upper bound, summed
 * over threads), words, bytes fed. */
void qtx_bpe_trainer_stats(const qtx_bpe_trainer *tr, int64_t *unique_words, int64_t *total_words,
                           int64_t *bytes);
void qtx_bpe_trainer_free(qtx_bpe_trainer *tr);

#endif
