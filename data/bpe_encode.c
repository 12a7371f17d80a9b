/* bpe_encode.c: text -> ids. Added tokens are cut out first, the rest is pre-tokenized, and
 * each piece is merged by rank with Hugging Face's algorithm (a min-heap of (rank, position),
 * stale entries skipped), behind a per-encoder cache of recent pieces. */
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "tok_internal.h"

#define CACHE_MAX_PIECE 64      /* longer pieces are rare and not worth caching */
#define CACHE_MAX_ENTRIES 65536 /* then the cache starts over: bounded memory */

typedef struct bpe_sym {
    uint32_t c;
    int32_t prev, next;
    uint32_t len; /* 0: merged into its left neighbour */
} bpe_sym;

typedef struct bpe_merge {
    uint32_t rank, pos, new_id;
} bpe_merge;

struct qtx_encoder {
    const qtx_tokenizer *t;
    qtx_pretok pt;
    qtx_bmap cache; /* piece -> (offset in cache_ids << 16 | id count) */
    qtx_ids cache_ids;
    bpe_sym *syms;
    size_t cap;
    bpe_merge *heap;
    size_t heap_cap;
    /* ids of the current qtx_encode call: encoder-owned, so threads encoding into adjacent
     * qtx_ids never write the same cache line per id (false sharing cost 4x on 2 threads) */
    qtx_ids acc;
};

static void grow(qtx_ids *a, size_t need) {
    size_t cap = a->cap ? a->cap : 256;
    while (cap < need) cap *= 2;
    a->v = qtx_realloc(a->v, cap * sizeof *a->v);
    a->cap = cap;
}

static inline void emit(qtx_ids *a, uint32_t id) {
    if (a->n == a->cap) grow(a, a->n + 1);
    a->v[a->n++] = id;
}

static inline void emit_n(qtx_ids *a, const uint32_t *ids, size_t n) {
    if (!n) return;
    if (a->n + n > a->cap) grow(a, a->n + n);
    memcpy(a->v + a->n, ids, n * sizeof *ids);
    a->n += n;
}

/* Encoders of different threads must not share a cache line: acc.n changes with every id. */
#define CACHE_LINE 64

qtx_encoder *qtx_encoder_new(const qtx_tokenizer *t) {
    size_t size = (sizeof(qtx_encoder) + CACHE_LINE - 1) / CACHE_LINE * CACHE_LINE;
    qtx_encoder *enc = aligned_alloc(CACHE_LINE, size);
    QTX_CHECK(enc, "out of memory");
    memset(enc, 0, size);
    enc->t = t;
    qtx_pretok_init(&enc->pt, t->re);
    qtx_bmap_init(&enc->cache, 4096);
    return enc;
}

void qtx_encoder_free(qtx_encoder *enc) {
    if (!enc) return;
    qtx_pretok_free(&enc->pt);
    qtx_bmap_free(&enc->cache);
    qtx_ids_free(&enc->cache_ids);
    qtx_ids_free(&enc->acc);
    free(enc->syms);
    free(enc->heap);
    free(enc);
}

/* ---- the min-heap on (rank, pos) ------------------------------------------------------- */

static inline int merge_less(const bpe_merge *a, const bpe_merge *b) {
    return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}

static void heap_push(qtx_encoder *enc, size_t *n, bpe_merge m) {
    if (*n == enc->heap_cap) {
        enc->heap_cap = enc->heap_cap ? 2 * enc->heap_cap : 64;
        enc->heap = qtx_realloc(enc->heap, enc->heap_cap * sizeof *enc->heap);
    }
    bpe_merge *h = enc->heap;
    size_t i = (*n)++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!merge_less(&m, &h[parent])) break;
        h[i] = h[parent];
        i = parent;
    }
    h[i] = m;
}

static bpe_merge heap_pop(bpe_merge *h, size_t *n) {
    bpe_merge top = h[0], last = h[--*n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && merge_less(&h[c + 1], &h[c])) c++;
        if (!merge_less(&h[c], &last)) break;
        h[i] = h[c];
        i = c;
    }
    if (*n) h[i] = last;
    return top;
}

static inline const uint64_t *find_merge(const qtx_tokenizer *t, uint32_t a, uint32_t b) {
    return qtx_u64map_find(&t->merges, (uint64_t)a << 32 | b);
}

/* ---- merging one piece ----------------------------------------------------------------- */

/* Appends the ids of one pre-tokenized piece (raw bytes). Hugging Face's Word::merge_all:
 * pop the lowest (rank, position); skip it when that symbol is gone or the pair there no
 * longer makes the same token; merge; push the pairs the new symbol forms. */
static void bpe_piece(qtx_encoder *enc, const uint8_t *s, size_t len, qtx_ids *out) {
    const qtx_tokenizer *t = enc->t;
    if (t->ignore_merges) {
        int64_t id = qtx_tokenizer_token_id(t, (const char *)s, len);
        if (id >= 0) {
            emit(out, (uint32_t)id);
            return;
        }
    }
    if (len > enc->cap) {
        enc->cap = len * 2;
        free(enc->syms);
        enc->syms = qtx_malloc(enc->cap * sizeof *enc->syms);
    }
    bpe_sym *sy = enc->syms;
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        int64_t id = t->byte_id[s[i]];
        if (id < 0) continue; /* no unk token: Hugging Face drops unknown characters */
        sy[n] = (bpe_sym){(uint32_t)id, (int32_t)n - 1, (int32_t)n + 1, 1};
        n++;
    }
    if (!n) return;
    sy[n - 1].next = -1;
    size_t hn = 0;
    for (size_t i = 0; i + 1 < n; i++) {
        const uint64_t *m = find_merge(t, sy[i].c, sy[i + 1].c);
        if (m) heap_push(enc, &hn, (bpe_merge){(uint32_t)(*m >> 32), (uint32_t)i, (uint32_t)*m});
    }
    while (hn) {
        bpe_merge top = heap_pop(enc->heap, &hn);
        bpe_sym *cur = &sy[top.pos];
        if (!cur->len || cur->next < 0) continue;
        bpe_sym right = sy[cur->next];
        const uint64_t *m = find_merge(t, cur->c, right.c);
        if (!m || (uint32_t)*m != top.new_id) continue;
        sy[cur->next].len = 0;
        cur->c = top.new_id;
        cur->len += right.len;
        cur->next = right.next;
        if (right.next >= 0) sy[right.next].prev = (int32_t)top.pos;
        if (cur->prev >= 0) {
            m = find_merge(t, sy[cur->prev].c, cur->c);
            if (m)
                heap_push(enc, &hn,
                          (bpe_merge){(uint32_t)(*m >> 32), (uint32_t)cur->prev, (uint32_t)*m});
        }
        if (cur->next >= 0) {
            m = find_merge(t, cur->c, sy[cur->next].c);
            if (m) heap_push(enc, &hn, (bpe_merge){(uint32_t)(*m >> 32), top.pos, (uint32_t)*m});
        }
    }
    for (size_t i = 0; i < n; i++)
        if (sy[i].len) emit(out, sy[i].c);
}

static void on_piece(void *ctx, const char *piece, size_t len) {
    qtx_encoder *enc = ctx;
    const uint8_t *s = (const uint8_t *)piece;
    if (len == 1 && enc->t->byte_id[s[0]] >= 0) {
        emit(&enc->acc, (uint32_t)enc->t->byte_id[s[0]]);
        return;
    }
    if (len > CACHE_MAX_PIECE) {
        bpe_piece(enc, s, len, &enc->acc);
        return;
    }
    uint64_t h = qtx_bmap_hash(s, len);
    const uint64_t *hit = qtx_bmap_find(&enc->cache, s, len, h);
    if (hit) {
        emit_n(&enc->acc, enc->cache_ids.v + (*hit >> 16), *hit & 0xffff);
        return;
    }
    if (enc->cache.n >= CACHE_MAX_ENTRIES) {
        qtx_bmap_clear(&enc->cache);
        enc->cache_ids.n = 0;
    }
    size_t start = enc->cache_ids.n;
    bpe_piece(enc, s, len, &enc->cache_ids);
    size_t n = enc->cache_ids.n - start;
    *qtx_bmap_put(&enc->cache, s, len, h, NULL) = (uint64_t)start << 16 | n;
    emit_n(&enc->acc, enc->cache_ids.v + start, n);
}

/* ---- added tokens, then pieces --------------------------------------------------------- */

size_t qtx_next_added(const qtx_tokenizer *t, const char *text, size_t len, size_t from,
                      const qtx_added_token **hit) {
    for (size_t i = from; i < len; i++) {
        if (!t->added_first[(uint8_t)text[i]]) continue;
        for (int k = 0; k < t->n_added; k++) { /* longest first */
            const qtx_added_token *a = &t->added[k];
            if (a->len <= len - i && !memcmp(text + i, t->tok_bytes + a->off, a->len)) {
                *hit = a;
                return i;
            }
        }
    }
    return len;
}

void qtx_encode(qtx_encoder *enc, const char *text, size_t len, qtx_ids *out) {
    const qtx_tokenizer *t = enc->t;
    enc->acc.n = 0;
    size_t pos = 0;
    while (pos < len) {
        const qtx_added_token *a = NULL;
        size_t at = t->n_added ? qtx_next_added(t, text, len, pos, &a) : len;
        if (at > pos) qtx_pretok_run(&enc->pt, text + pos, at - pos, on_piece, enc);
        if (at == len) break;
        emit(&enc->acc, a->id);
        pos = at + a->len;
    }
    emit_n(out, enc->acc.v, enc->acc.n);
}

/* ---- parallel -------------------------------------------------------------------------- */

#define PARALLEL_CHUNK (1u << 20)

void qtx_encode_parallel(qtx_encoder *const *encs, int n, const char *text, size_t len,
                         qtx_ids *out) {
    if (n <= 1 || len < 2 * PARALLEL_CHUNK) {
        qtx_encode(encs[0], text, len, out);
        return;
    }
    const qtx_tokenizer *t = encs[0]->t;
    size_t n_cuts = 1, cap = 64;
    size_t *cut = qtx_malloc(cap * sizeof *cut);
    cut[0] = 0;
    while (cut[n_cuts - 1] < len) {
        if (n_cuts == cap) {
            cap *= 2;
            cut = qtx_realloc(cut, cap * sizeof *cut);
        }
        size_t from = cut[n_cuts - 1] + PARALLEL_CHUNK;
        cut[n_cuts++] = from >= len ? len : qtx_tokenizer_split_point(t, text, len, from);
    }
    const long n_chunks = (long)n_cuts - 1;
    qtx_ids *parts = qtx_calloc((size_t)n_chunks, sizeof *parts);
#pragma omp parallel for num_threads(n) schedule(dynamic, 1)
    for (long c = 0; c < n_chunks; c++) {
        int tid = 0;
#ifdef _OPENMP
        tid = omp_get_thread_num();
#endif
        qtx_encode(encs[tid], text + cut[c], cut[c + 1] - cut[c], &parts[c]);
    }
    for (long c = 0; c < n_chunks; c++) {
        emit_n(out, parts[c].v, parts[c].n);
        qtx_ids_free(&parts[c]);
    }
    free(parts);
    free(cut);
}
