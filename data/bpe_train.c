/* bpe_train.c: byte-level BPE training, the way Hugging Face's BpeTrainer does it.
 *
 * Counting: texts are cut at added tokens, pre-tokenized, and each piece (a "word") counted,
 * per thread, then summed. Merging: every adjacent symbol pair has a count (sum over the words
 * holding it, times their counts) and a list of those words. A max-heap orders the pairs by
 * (count desc, left id asc, right id asc); entries go stale when a count drops and are then
 * re-pushed with the current count when they surface (lazy updates). Merging a pair rewrites
 * only the words on its list and moves counts only for the neighbouring pairs, so a step costs
 * what it changes, not the corpus size.
 */
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "tok_internal.h"

#define FEED_CHUNK (1u << 20) /* long texts are counted in parallel pieces of about this */

/* What one counting thread writes, on cache lines of its own (no false sharing). */
typedef struct counter {
    _Alignas(64) qtx_pretok pt;
    qtx_bmap counts; /* word bytes -> count */
    int64_t n_words;
} counter;

struct qtx_bpe_trainer {
    int64_t vocab_size, min_frequency;
    int n_threads;
    qtx_tokenizer *base; /* the 256 bytes and the special tokens: cuts and the pattern */
    int n_special;
    counter *th;    /* per thread */
    int64_t unique; /* distinct words, known once finish has summed the threads' counts */
    int64_t bytes;
};

static const char *const EOS[] = {QTX_EOS_TOKEN};

int qtx_bpe_trainer_new(const qtx_bpe_train_options *o, qtx_bpe_trainer **out, qtx_err *e) {
    *out = NULL;
    /* the special tokens: <|endoftext|> first unless listed, duplicates dropped */
    int n = 0;
    const char **sp = qtx_malloc((size_t)(o->n_special + 1) * sizeof *sp);
    int has_eos = 0;
    for (int i = 0; i < o->n_special; i++) has_eos |= !strcmp(o->special[i], QTX_EOS_TOKEN);
    if (!has_eos) sp[n++] = EOS[0];
    for (int i = 0; i < o->n_special; i++) {
        const char *s = o->special[i];
        size_t len = strlen(s);
        if (!len || qtx_utf8_valid_prefix((const uint8_t *)s, len) != len) {
            free(sp);
            return qtx_fail(e, QTX_ERR_INPUT, "special token %d is empty or not valid UTF-8",
                            i + 1);
        }
        int dup = 0;
        for (int k = 0; k < n; k++) dup |= !strcmp(sp[k], s);
        if (!dup) sp[n++] = s;
    }
    if (o->vocab_size < 256 + n || o->vocab_size > (int64_t)1 << 31) {
        free(sp);
        return qtx_fail(e, QTX_ERR_INPUT,
                        "vocabulary size %lld must be at least %d (256 bytes + %d special "
                        "tokens) and at most 2^31",
                        (long long)o->vocab_size, 256 + n, n);
    }

    const int64_t V = 256 + n;
    const char **tokens = qtx_malloc((size_t)V * sizeof *tokens);
    size_t *lens = qtx_malloc((size_t)V * sizeof *lens);
    uint8_t *kind = qtx_malloc((size_t)V);
    uint32_t *ids = qtx_malloc((size_t)n * sizeof *ids);
    int *special = qtx_malloc((size_t)n * sizeof *special);
    char bytes[256];
    for (int b = 0; b < 256; b++) {
        bytes[b] = (char)b;
        tokens[b] = &bytes[b];
        lens[b] = 1;
        kind[b] = 1;
    }
    for (int i = 0; i < n; i++) {
        tokens[256 + i] = sp[i];
        lens[256 + i] = strlen(sp[i]);
        kind[256 + i] = 2;
        ids[i] = (uint32_t)(256 + i);
        special[i] = 1;
    }
    qtx_tok_parts p = {.vocab_size = V,
                       .tokens = tokens,
                       .token_len = lens,
                       .kind = kind,
                       .added_ids = ids,
                       .added_special = special,
                       .n_added = n};
    qtx_tokenizer *base;
    int rc = qtx_tokenizer_build(&p, "(trainer)", &base, e);
    free(sp);
    free(tokens);
    free(lens);
    free(kind);
    free(ids);
    free(special);
    if (rc) return rc;

    qtx_bpe_trainer *tr = qtx_calloc(1, sizeof *tr);
    tr->vocab_size = o->vocab_size;
    tr->min_frequency = o->min_frequency > 1 ? o->min_frequency : 1;
    tr->n_threads = o->n_threads > 0 ? o->n_threads : 1;
    tr->base = base;
    tr->n_special = n;
    tr->unique = -1;
    tr->th = aligned_alloc(_Alignof(counter), (size_t)tr->n_threads * sizeof *tr->th);
    QTX_CHECK(tr->th, "out of memory");
    memset(tr->th, 0, (size_t)tr->n_threads * sizeof *tr->th);
    for (int i = 0; i < tr->n_threads; i++) {
        qtx_pretok_init(&tr->th[i].pt, base->re);
        qtx_bmap_init(&tr->th[i].counts, 1 << 16);
    }
    *out = tr;
    return QTX_OK;
}

void qtx_bpe_trainer_free(qtx_bpe_trainer *tr) {
    if (!tr) return;
    for (int i = 0; i < tr->n_threads; i++) {
        qtx_pretok_free(&tr->th[i].pt);
        qtx_bmap_free(&tr->th[i].counts);
    }
    free(tr->th);
    qtx_tokenizer_free(tr->base);
    free(tr);
}

/* ---- counting -------------------------------------------------------------------------- */

typedef struct count_ctx {
    qtx_bmap *m;
    int64_t n;
} count_ctx;

static void count_piece(void *ctx, const char *piece, size_t len) {
    count_ctx *c = ctx;
    ++*qtx_bmap_put(c->m, piece, len, qtx_bmap_hash(piece, len), NULL);
    c->n++;
}

static void count_text(qtx_bpe_trainer *tr, int tid, const char *text, size_t len) {
    count_ctx c = {&tr->th[tid].counts, 0};
    size_t pos = 0;
    while (pos < len) {
        const qtx_added_token *a = NULL;
        size_t at = qtx_next_added(tr->base, text, len, pos, &a);
        if (at > pos) qtx_pretok_run(&tr->th[tid].pt, text + pos, at - pos, count_piece, &c);
        if (at == len) break;
        pos = at + a->len;
    }
    tr->th[tid].n_words += c.n;
}

typedef struct span {
    const char *p;
    size_t n;
} span;

void qtx_bpe_trainer_feed(qtx_bpe_trainer *tr, const char *const *texts, const size_t *lens,
                          int n) {
    size_t n_units = 0, cap = (size_t)n + 16;
    span *u = qtx_malloc(cap * sizeof *u);
    for (int i = 0; i < n; i++) {
        size_t pos = 0;
        tr->bytes += (int64_t)lens[i];
        while (pos < lens[i]) {
            size_t end =
                lens[i] - pos <= 2 * FEED_CHUNK
                    ? lens[i]
                    : qtx_tokenizer_split_point(tr->base, texts[i], lens[i], pos + FEED_CHUNK);
            if (n_units == cap) {
                cap *= 2;
                u = qtx_realloc(u, cap * sizeof *u);
            }
            u[n_units++] = (span){texts[i] + pos, end - pos};
            pos = end;
        }
    }
#pragma omp parallel for num_threads(tr->n_threads) schedule(dynamic, 1)
    for (long k = 0; k < (long)n_units; k++) {
        int tid = 0;
#ifdef _OPENMP
        tid = omp_get_thread_num();
#endif
        count_text(tr, tid, u[k].p, u[k].n);
    }
    free(u);
}

void qtx_bpe_trainer_stats(const qtx_bpe_trainer *tr, int64_t *unique_words, int64_t *total_words,
                           int64_t *bytes) {
    int64_t uw = 0, tw = 0;
    for (int i = 0; i < tr->n_threads; i++) {
        uw += (int64_t)tr->th[i].counts.n;
        tw += tr->th[i].n_words;
    }
    if (unique_words) *unique_words = tr->unique >= 0 ? tr->unique : uw;
    if (total_words) *total_words = tw;
    if (bytes) *bytes = tr->bytes;
}

/* ---- merging --------------------------------------------------------------------------- */

typedef struct pair {
    uint32_t a, b;
    int64_t count;
    uint32_t *words; /* words holding (or having held) the pair; no adjacent repeats */
    uint32_t n_words, cap_words;
    int64_t pushed_at; /* the merge step that last listed it as gaining */
} pair;

typedef struct heap_entry {
    int64_t count;
    uint32_t a, b, idx;
} heap_entry;

typedef struct state {
    /* words: symbols sym[off[w] .. off[w] + len[w]) */
    uint32_t *sym;
    uint64_t *off;
    uint32_t *len;
    int64_t *wcount;
    int64_t *stamp; /* last merge step that rewrote the word */
    size_t n_words;
    pair *pairs;
    size_t n_pairs, cap_pairs;
    qtx_u64map pair_idx;
    heap_entry *heap;
    size_t n_heap, cap_heap;
    uint32_t *fresh; /* pairs that gained in the current merge */
    size_t n_fresh, cap_fresh;
} state;

static inline int heap_above(const heap_entry *x, const heap_entry *y) {
    if (x->count != y->count) return x->count > y->count;
    if (x->a != y->a) return x->a < y->a;
    return x->b < y->b;
}

static void hpush(state *s, heap_entry e) {
    if (s->n_heap == s->cap_heap) {
        s->cap_heap = s->cap_heap ? s->cap_heap * 2 : 1024;
        s->heap = qtx_realloc(s->heap, s->cap_heap * sizeof *s->heap);
    }
    size_t i = s->n_heap++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!heap_above(&e, &s->heap[p])) break;
        s->heap[i] = s->heap[p];
        i = p;
    }
    s->heap[i] = e;
}

static heap_entry hpop(state *s) {
    heap_entry top = s->heap[0], last = s->heap[--s->n_heap];
    size_t i = 0, n = s->n_heap;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && heap_above(&s->heap[c + 1], &s->heap[c])) c++;
        if (!heap_above(&s->heap[c], &last)) break;
        s->heap[i] = s->heap[c];
        i = c;
    }
    if (n) s->heap[i] = last;
    return top;
}

static uint32_t get_pair(state *s, uint32_t a, uint32_t b) {
    int ins;
    uint64_t *v = qtx_u64map_put(&s->pair_idx, (uint64_t)a << 32 | b, &ins);
    if (!ins) return (uint32_t)*v;
    if (s->n_pairs == s->cap_pairs) {
        s->cap_pairs = s->cap_pairs ? s->cap_pairs * 2 : 1 << 16;
        s->pairs = qtx_realloc(s->pairs, s->cap_pairs * sizeof *s->pairs);
    }
    QTX_CHECK(s->n_pairs < UINT32_MAX, "too many symbol pairs");
    s->pairs[s->n_pairs] = (pair){a, b, 0, NULL, 0, 0, -1};
    *v = s->n_pairs;
    return (uint32_t)s->n_pairs++;
}

/* Moves the count of pair (a, b) by delta for word w. A pair that gains during merge step
 * `step` (>= 0) is remembered, to be queued with its final count once the step is done;
 * pairs that lose are left stale in the heap and fixed when they surface. */
static void pair_add(state *s, uint32_t a, uint32_t b, int64_t delta, uint32_t w, int64_t step) {
    uint32_t idx = get_pair(s, a, b);
    pair *p = &s->pairs[idx];
    p->count += delta;
    if (delta <= 0) return;
    if (!p->n_words || p->words[p->n_words - 1] != w) {
        if (p->n_words == p->cap_words) {
            p->cap_words = p->cap_words ? p->cap_words * 2 : 4;
            p->words = qtx_realloc(p->words, p->cap_words * sizeof *p->words);
        }
        p->words[p->n_words++] = w;
    }
    if (step >= 0 && p->pushed_at != step) {
        p->pushed_at = step;
        if (s->n_fresh == s->cap_fresh) {
            s->cap_fresh = s->cap_fresh ? s->cap_fresh * 2 : 1024;
            s->fresh = qtx_realloc(s->fresh, s->cap_fresh * sizeof *s->fresh);
        }
        s->fresh[s->n_fresh++] = idx;
    }
}

/* Rewrites word w with (a, b) -> m, left to right without overlaps, moving the counts of the
 * neighbouring pairs (Hugging Face's Word::merge). */
static void merge_word(state *s, uint32_t w, uint32_t a, uint32_t b, uint32_t m, int64_t step) {
    uint32_t *sym = s->sym + s->off[w];
    const uint32_t L = s->len[w];
    const int64_t c = s->wcount[w];
    uint32_t j = 0;
    for (uint32_t i = 0; i < L;) {
        if (i + 1 < L && sym[i] == a && sym[i + 1] == b) {
            if (j > 0) {
                pair_add(s, sym[j - 1], a, -c, w, step);
                pair_add(s, sym[j - 1], m, c, w, step);
            }
            if (i + 2 < L) {
                pair_add(s, b, sym[i + 2], -c, w, step);
                pair_add(s, m, sym[i + 2], c, w, step);
            }
            sym[j++] = m;
            i += 2;
        } else {
            sym[j++] = sym[i++];
        }
    }
    s->len[w] = j;
}

static void state_free(state *s) {
    free(s->sym);
    free(s->off);
    free(s->len);
    free(s->wcount);
    free(s->stamp);
    for (size_t i = 0; i < s->n_pairs; i++) free(s->pairs[i].words);
    free(s->pairs);
    qtx_u64map_free(&s->pair_idx);
    free(s->heap);
    free(s->fresh);
}

int qtx_bpe_trainer_finish(qtx_bpe_trainer *tr, qtx_tokenizer **out, qtx_err *e) {
    *out = NULL;
    /* sum the per-thread counts */
    qtx_bmap *all = &tr->th[0].counts;
    for (int t = 1; t < tr->n_threads; t++) {
        qtx_bmap *m = &tr->th[t].counts;
        for (size_t i = 0; i < m->cap; i++) {
            const qtx_bmap_slot *sl = &m->slots[i];
            if (!sl->hash) continue;
            *qtx_bmap_put(all, qtx_bmap_key(m, sl), sl->key_len, sl->hash, NULL) += sl->value;
        }
        qtx_bmap_clear(m);
    }

    tr->unique = (int64_t)all->n;
    state s = {0};
    s.n_words = all->n;
    size_t total_sym = all->keys_len;
    s.sym = qtx_malloc((total_sym ? total_sym : 1) * sizeof *s.sym);
    s.off = qtx_malloc((s.n_words ? s.n_words : 1) * sizeof *s.off);
    s.len = qtx_malloc((s.n_words ? s.n_words : 1) * sizeof *s.len);
    s.wcount = qtx_malloc((s.n_words ? s.n_words : 1) * sizeof *s.wcount);
    s.stamp = qtx_malloc((s.n_words ? s.n_words : 1) * sizeof *s.stamp);
    qtx_u64map_init(&s.pair_idx, 1 << 16);
    size_t w = 0, o = 0;
    for (size_t i = 0; i < all->cap; i++) {
        const qtx_bmap_slot *sl = &all->slots[i];
        if (!sl->hash) continue;
        const uint8_t *k = (const uint8_t *)qtx_bmap_key(all, sl);
        s.off[w] = o;
        s.len[w] = sl->key_len;
        s.wcount[w] = (int64_t)sl->value;
        s.stamp[w] = -1;
        for (uint32_t j = 0; j < sl->key_len; j++) s.sym[o++] = k[j];
        for (uint32_t j = 0; j + 1 < sl->key_len; j++)
            pair_add(&s, k[j], k[j + 1], s.wcount[w], (uint32_t)w, -1);
        w++;
    }
    for (size_t i = 0; i < s.n_pairs; i++)
        if (s.pairs[i].count >= tr->min_frequency)
            hpush(&s, (heap_entry){s.pairs[i].count, s.pairs[i].a, s.pairs[i].b, (uint32_t)i});

    /* the vocabulary: bytes, then merged tokens (a merge whose bytes some token already has
     * reuses that id, as in Hugging Face) */
    const int64_t target = tr->vocab_size - tr->n_special;
    size_t tok_cap = (size_t)target + 1;
    qtx_bytes tok_bytes = {0};
    uint64_t *tok_off = qtx_malloc((tok_cap + 1) * sizeof *tok_off);
    qtx_bmap tok_idx;
    qtx_bmap_init(&tok_idx, tok_cap);
    for (int b = 0; b < 256; b++) {
        tok_off[b] = (uint64_t)b;
        char c = (char)b;
        qtx_bytes_append(&tok_bytes, &c, 1);
        *qtx_bmap_put(&tok_idx, &c, 1, qtx_bmap_hash(&c, 1), NULL) = (uint64_t)b;
    }
    int64_t n_tok = 256;
    tok_off[n_tok] = tok_bytes.n;
    qtx_ids merges = {0};
    char *cat = NULL;
    size_t cat_cap = 0;
    for (int64_t step = 0; n_tok < target && s.n_heap; step++) {
        heap_entry top = hpop(&s);
        pair *p = &s.pairs[top.idx];
        if (top.count != p->count) { /* stale: its count dropped since it was queued */
            if (p->count >= tr->min_frequency)
                hpush(&s, (heap_entry){p->count, p->a, p->b, top.idx});
            step--;
            continue;
        }
        const uint32_t a = p->a, b = p->b;
        size_t la = tok_off[a + 1] - tok_off[a], lb = tok_off[b + 1] - tok_off[b];
        if (la + lb > cat_cap) {
            cat_cap = 2 * (la + lb);
            cat = qtx_realloc(cat, cat_cap);
        }
        memcpy(cat, tok_bytes.p + tok_off[a], la);
        memcpy(cat + la, tok_bytes.p + tok_off[b], lb);
        int ins;
        uint64_t *id = qtx_bmap_put(&tok_idx, cat, la + lb, qtx_bmap_hash(cat, la + lb), &ins);
        if (ins) {
            *id = (uint64_t)n_tok;
            qtx_bytes_append(&tok_bytes, cat, la + lb);
            tok_off[++n_tok] = tok_bytes.n;
        }
        const uint32_t m = (uint32_t)*id;
        qtx_ids_push(&merges, a);
        qtx_ids_push(&merges, b);

        s.n_fresh = 0;
        /* p may move when pairs grow: copy its word list out by index */
        for (uint32_t k = 0; k < s.pairs[top.idx].n_words; k++) {
            uint32_t wk = s.pairs[top.idx].words[k];
            if (s.stamp[wk] == step) continue;
            s.stamp[wk] = step;
            merge_word(&s, wk, a, b, m, step);
        }
        p = &s.pairs[top.idx];
        p->count = 0;
        free(p->words);
        p->words = NULL;
        p->n_words = p->cap_words = 0;
        for (size_t k = 0; k < s.n_fresh; k++) {
            const pair *q = &s.pairs[s.fresh[k]];
            if (q->count >= tr->min_frequency)
                hpush(&s, (heap_entry){q->count, q->a, q->b, s.fresh[k]});
        }
    }
    free(cat);
    qtx_bmap_free(&tok_idx);
    state_free(&s);

    /* assemble: model tokens, then the special tokens (the base tokenizer's added ones) */
    const int64_t V = n_tok + tr->n_special;
    const char **tokens = qtx_malloc((size_t)V * sizeof *tokens);
    size_t *lens = qtx_malloc((size_t)V * sizeof *lens);
    uint8_t *kind = qtx_malloc((size_t)V);
    uint32_t *ids = qtx_malloc((size_t)tr->n_special * sizeof *ids);
    int *special = qtx_malloc((size_t)tr->n_special * sizeof *special);
    for (int64_t i = 0; i < n_tok; i++) {
        tokens[i] = tok_bytes.p + tok_off[i];
        lens[i] = tok_off[i + 1] - tok_off[i];
        kind[i] = 1;
    }
    for (int i = 0; i < tr->n_special; i++) {
        size_t len;
        uint32_t base_id = (uint32_t)(256 + i); /* specials follow the bytes in the base */
        tokens[n_tok + i] = qtx_tokenizer_token_bytes(tr->base, base_id, &len);
        lens[n_tok + i] = len;
        kind[n_tok + i] = 2;
        ids[i] = (uint32_t)(n_tok + i);
        special[i] = 1;
    }
    qtx_tok_parts parts = {.vocab_size = V,
                           .tokens = tokens,
                           .token_len = lens,
                           .kind = kind,
                           .merge_pairs = merges.v,
                           .n_merges = (int64_t)merges.n / 2,
                           .added_ids = ids,
                           .added_special = special,
                           .n_added = tr->n_special};
    int rc = qtx_tokenizer_build(&parts, "(trained)", out, e);
    free(tokens);
    free(lens);
    free(kind);
    free(ids);
    free(special);
    free(tok_off);
    qtx_bytes_free(&tok_bytes);
    qtx_ids_free(&merges);
    return rc;
}
