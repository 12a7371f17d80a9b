/* tok_internal.h: what the tokenizer's source files share and nothing else sees: the hash
 * maps, the byte <-> unicode mapping, UTF-8 scanning, the pre-tokenizer and the layout of
 * qtx_tokenizer. Public API: tokenizer.h.
 */
#ifndef QTX_TOK_INTERNAL_H
#define QTX_TOK_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stddef.h>
#include <stdint.h>

#include "check.h"
#include "tokenizer.h"

/* ---- hashing ------------------------------------------------------------------------- */

uint64_t qtx_hash_bytes(const void *p, size_t n);

static inline uint64_t qtx_hash_u64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

/* Byte string -> uint64 map, open addressing; keys are copied into an arena owned by the
 * map. Values start at 0 when inserted. */
typedef struct qtx_bmap_slot {
    uint64_t hash; /* 0: empty (real hashes are forced non-zero) */
    uint64_t key_off;
    uint64_t value;
    uint32_t key_len;
} qtx_bmap_slot;

typedef struct qtx_bmap {
    qtx_bmap_slot *slots;
    size_t cap, n; /* cap is a power of two */
    char *keys;
    size_t keys_len, keys_cap;
} qtx_bmap;

void qtx_bmap_init(qtx_bmap *m, size_t cap_hint);
void qtx_bmap_free(qtx_bmap *m);
void qtx_bmap_clear(qtx_bmap *m);
/* The value of key, or NULL when absent. h: qtx_bmap_hash(key, len). */
uint64_t *qtx_bmap_find(const qtx_bmap *m, const void *key, size_t len, uint64_t h);
/* The value of key, inserting it (value 0, *inserted = 1) when absent. */
uint64_t *qtx_bmap_put(qtx_bmap *m, const void *key, size_t len, uint64_t h, int *inserted);
static inline uint64_t qtx_bmap_hash(const void *key, size_t len) {
    uint64_t h = qtx_hash_bytes(key, len);
    return h ? h : 1;
}
static inline const char *qtx_bmap_key(const qtx_bmap *m, const qtx_bmap_slot *s) {
    return m->keys + s->key_off;
}

/* uint64 key -> uint64 map (keys != UINT64_MAX), open addressing. */
typedef struct qtx_u64map {
    uint64_t *keys, *vals;
    size_t cap, n;
} qtx_u64map;

#define QTX_U64MAP_EMPTY UINT64_MAX
void qtx_u64map_init(qtx_u64map *m, size_t cap_hint);
void qtx_u64map_free(qtx_u64map *m);
uint64_t *qtx_u64map_find(const qtx_u64map *m, uint64_t key);
uint64_t *qtx_u64map_put(qtx_u64map *m, uint64_t key, int *inserted);

/* ---- SHA-256 ------------------------------------------------------------------------- */

typedef struct qtx_sha256 {
    uint32_t h[8];
    uint64_t len;
    uint8_t buf[64];
    size_t nbuf;
} qtx_sha256;

void qtx_sha256_init(qtx_sha256 *s);
void qtx_sha256_update(qtx_sha256 *s, const void *p, size_t n);
void qtx_sha256_hex(qtx_sha256 *s, char out[65]); /* finishes s */

/* ---- GPT-2 bytes <-> unicode --------------------------------------------------------- */

/* The code point GPT-2 shows byte b as: printable Latin-1 bytes stand for themselves, the
 * other 68 are moved to U+0100.. in byte order, so every byte is a visible character. */
uint32_t qtx_byte_to_cp(uint8_t b);
/* The byte of code point cp, or -1 when cp is not one of the 256. */
int qtx_cp_to_byte(uint32_t cp);
/* Appends the UTF-8 of qtx_byte_to_cp(b) to dst (2 bytes at most); returns bytes written. */
int qtx_byte_to_utf8(uint8_t b, char *dst);
/* Decodes a byte-level string (UTF-8 of mapped code points) into raw bytes; dst has room
 * for len bytes. Returns the byte count, or -1 when s is not a byte-level string. */
long qtx_bytelevel_decode(const char *s, size_t len, uint8_t *dst);

/* ---- UTF-8 --------------------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at p (1..4), or 0 when p starts an invalid one
 * (overlong, surrogate, > U+10FFFF, truncated, stray continuation). n > 0. */
int qtx_utf8_seq_len(const uint8_t *p, size_t n);
/* End of the longest valid UTF-8 prefix of p[0, n). */
size_t qtx_utf8_valid_prefix(const uint8_t *p, size_t n);

/* ---- pre-tokenizer ------------------------------------------------------------------- */

/* The GPT-2 split pattern, with Oniguruma's \s (Unicode White_Space, which adds U+0085 to
 * PCRE2's \s) so that pieces match Hugging Face tokenizers exactly. */
pcre2_code *qtx_pretok_compile(qtx_err *e);

typedef struct qtx_pretok {
    const pcre2_code *re;
    pcre2_match_data *md;
    int jit; /* 1 when re is JIT-compiled */
} qtx_pretok;

void qtx_pretok_init(qtx_pretok *p, const pcre2_code *re);
void qtx_pretok_free(qtx_pretok *p);

/* Calls fn for each piece of text[0, len) in order; the pieces tile the text exactly.
 * Invalid UTF-8 bytes become one-byte pieces of their own (so any bytes round-trip); valid
 * stretches between them are split by the pattern. */
typedef void (*qtx_piece_fn)(void *ctx, const char *piece, size_t len);
void qtx_pretok_run(qtx_pretok *p, const char *text, size_t len, qtx_piece_fn fn, void *ctx);

/* ---- the tokenizer ------------------------------------------------------------------- */

typedef struct qtx_added_token {
    uint32_t id;
    uint32_t off, len; /* content in tok_bytes */
    int special;
} qtx_added_token;

struct qtx_tokenizer {
    char *name;         /* the file it came from, for messages */
    int64_t vocab_size; /* highest id + 1 */
    /* id -> bytes: tok_bytes[tok_off[id] .. tok_off[id + 1]); tok_kind 0: no such id,
     * 1: model vocab, 2: added token (decodes to its content) */
    uint64_t *tok_off;
    char *tok_bytes;
    uint8_t *tok_kind;
    int64_t byte_id[256]; /* id of each single-byte token, -1 when missing */
    /* merges: (left id << 32 | right id) -> (rank << 32 | merged id) */
    qtx_u64map merges;
    int64_t n_merges;
    uint32_t *merge_pairs; /* 2 * n_merges ids, by rank (kept for saving) */
    qtx_bmap vocab;        /* model token bytes -> id */
    int ignore_merges;
    /* added tokens, longest first (leftmost-longest matching) */
    qtx_added_token *added;
    int n_added;
    uint8_t added_first[256]; /* 1 for bytes that start some added token */
    size_t added_max_len;
    int64_t eos_id;
    pcre2_code *re;
    char hash[65];
};

/* Builds a tokenizer from its parts (the trainer and the JSON loader both end here):
 * tokens[id] as raw bytes (token_len[id] of them), kind[id] as tok_kind (0: a hole), merges
 * by rank, added tokens (which must have kind 2). Fails (QTX_ERR_INPUT, naming `name`) on
 * inconsistent input. Does not set hash. */
typedef struct qtx_tok_parts {
    int64_t vocab_size;
    const char *const *tokens;
    const size_t *token_len;
    const uint8_t *kind;
    const uint32_t *merge_pairs; /* 2 per merge, by rank: left id, right id; the merged id is
                                    the token whose bytes are the two concatenated */
    int64_t n_merges;
    const uint32_t *added_ids;
    const int *added_special;
    int n_added;
    int ignore_merges;
} qtx_tok_parts;

/* The leftmost-longest added token at or after `from`: its start (and *hit), or len. */
size_t qtx_next_added(const qtx_tokenizer *t, const char *text, size_t len, size_t from,
                      const qtx_added_token **hit);

int qtx_tokenizer_build(const qtx_tok_parts *p, const char *name, qtx_tokenizer **out, qtx_err *e);

#endif
