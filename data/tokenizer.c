/* tokenizer.c: building a qtx_tokenizer from its parts (vocab, merges, added tokens), its
 * accessors, decoding, the parallel-safe cut points, and the small buffers of tokenizer.h. */
#include "tokenizer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

/* ---- buffers --------------------------------------------------------------------------- */

void qtx_ids_push(qtx_ids *a, uint32_t id) {
    if (a->n == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 256;
        a->v = qtx_realloc(a->v, a->cap * sizeof *a->v);
    }
    a->v[a->n++] = id;
}

void qtx_ids_free(qtx_ids *a) {
    free(a->v);
    memset(a, 0, sizeof *a);
}

void qtx_bytes_append(qtx_bytes *b, const void *p, size_t n) {
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + n) cap *= 2;
        b->p = qtx_realloc(b->p, cap);
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, p, n);
    b->n += n;
}

void qtx_bytes_free(qtx_bytes *b) {
    free(b->p);
    memset(b, 0, sizeof *b);
}

/* ---- building -------------------------------------------------------------------------- */

static int cmp_added(const void *pa, const void *pb) {
    const qtx_added_token *a = pa, *b = pb;
    if (a->len != b->len) return a->len > b->len ? -1 : 1; /* longest first */
    return a->id < b->id ? -1 : a->id > b->id;
}

int qtx_tokenizer_build(const qtx_tok_parts *p, const char *name, qtx_tokenizer **out, qtx_err *e) {
    *out = NULL;
    const int64_t V = p->vocab_size;
    if (V <= 0 || V > (int64_t)UINT32_MAX)
        return qtx_fail(e, QTX_ERR_INPUT, "%s: vocabulary size %lld is out of range", name,
                        (long long)V);
    qtx_tokenizer *t = qtx_calloc(1, sizeof *t);
    t->name = strdup(name);
    QTX_CHECK(t->name, "out of memory");
    t->vocab_size = V;
    t->eos_id = -1;
    t->ignore_merges = p->ignore_merges;
    t->tok_kind = qtx_malloc((size_t)V);
    memcpy(t->tok_kind, p->kind, (size_t)V);
    t->tok_off = qtx_malloc(((size_t)V + 1) * sizeof *t->tok_off);
    size_t total = 0;
    for (int64_t id = 0; id < V; id++) total += p->kind[id] ? p->token_len[id] : 0;
    t->tok_bytes = qtx_malloc(total);
    size_t off = 0;
    for (int64_t id = 0; id < V; id++) {
        t->tok_off[id] = off;
        if (!p->kind[id]) continue;
        memcpy(t->tok_bytes + off, p->tokens[id], p->token_len[id]);
        off += p->token_len[id];
    }
    t->tok_off[V] = off;

    /* bytes -> id: model tokens first, then added tokens whose content no model token has */
    for (int b = 0; b < 256; b++) t->byte_id[b] = -1;
    qtx_bmap_init(&t->vocab, (size_t)V);
    for (int pass = 1; pass <= 2; pass++)
        for (int64_t id = 0; id < V; id++) {
            if (p->kind[id] != pass) continue;
            const char *s = t->tok_bytes + t->tok_off[id];
            size_t n = t->tok_off[id + 1] - t->tok_off[id];
            int ins;
            uint64_t *v = qtx_bmap_put(&t->vocab, s, n, qtx_bmap_hash(s, n), &ins);
            if (ins) *v = (uint64_t)id;
            if (pass == 1 && n == 1 && t->byte_id[(uint8_t)s[0]] < 0)
                t->byte_id[(uint8_t)s[0]] = id;
        }

    /* merges: a later duplicate of a pair overrides an earlier one, as in Hugging Face */
    t->n_merges = p->n_merges;
    t->merge_pairs = qtx_malloc((size_t)(p->n_merges ? p->n_merges : 1) * 2 * sizeof(uint32_t));
    qtx_u64map_init(&t->merges, (size_t)p->n_merges);
    char *cat = NULL;
    size_t cat_cap = 0;
    for (int64_t r = 0; r < p->n_merges; r++) {
        uint32_t a = p->merge_pairs[2 * r], b = p->merge_pairs[2 * r + 1];
        t->merge_pairs[2 * r] = a;
        t->merge_pairs[2 * r + 1] = b;
        if (a >= V || b >= V || !p->kind[a] || !p->kind[b]) {
            free(cat);
            qtx_tokenizer_free(t);
            return qtx_fail(e, QTX_ERR_INPUT, "%s: merge %lld uses an id not in the vocabulary",
                            name, (long long)r);
        }
        size_t la = t->tok_off[a + 1] - t->tok_off[a], lb = t->tok_off[b + 1] - t->tok_off[b];
        if (la + lb > cat_cap) {
            cat_cap = (la + lb) * 2;
            cat = qtx_realloc(cat, cat_cap);
        }
        memcpy(cat, t->tok_bytes + t->tok_off[a], la);
        memcpy(cat + la, t->tok_bytes + t->tok_off[b], lb);
        uint64_t *m = qtx_bmap_find(&t->vocab, cat, la + lb, qtx_bmap_hash(cat, la + lb));
        if (!m) {
            free(cat);
            qtx_tokenizer_free(t);
            return qtx_fail(e, QTX_ERR_INPUT,
                            "%s: merge %lld makes a token that is not in the vocabulary", name,
                            (long long)r);
        }
        *qtx_u64map_put(&t->merges, (uint64_t)a << 32 | b, NULL) = (uint64_t)r << 32 | *m;
    }
    free(cat);

    t->n_added = p->n_added;
    t->added = qtx_calloc((size_t)(p->n_added ? p->n_added : 1), sizeof *t->added);
    for (int i = 0; i < p->n_added; i++) {
        uint32_t id = p->added_ids[i];
        if (id >= V || p->kind[id] != 2 || t->tok_off[id + 1] == t->tok_off[id]) {
            qtx_tokenizer_free(t);
            return qtx_fail(e, QTX_ERR_INPUT, "%s: added token %d has no content", name, i);
        }
        qtx_added_token *a = &t->added[i];
        a->id = id;
        a->off = (uint32_t)t->tok_off[id];
        a->len = (uint32_t)(t->tok_off[id + 1] - t->tok_off[id]);
        a->special = p->added_special[i];
        t->added_first[(uint8_t)t->tok_bytes[a->off]] = 1;
        if (a->len > t->added_max_len) t->added_max_len = a->len;
        if (a->len == strlen(QTX_EOS_TOKEN) &&
            !memcmp(t->tok_bytes + a->off, QTX_EOS_TOKEN, a->len))
            t->eos_id = id;
    }
    qsort(t->added, (size_t)t->n_added, sizeof *t->added, cmp_added);

    t->re = qtx_pretok_compile(e);
    if (!t->re) {
        qtx_tokenizer_free(t);
        return QTX_ERR_RUNTIME;
    }
    *out = t;
    return QTX_OK;
}

void qtx_tokenizer_free(qtx_tokenizer *t) {
    if (!t) return;
    free(t->name);
    free(t->tok_off);
    free(t->tok_bytes);
    free(t->tok_kind);
    qtx_u64map_free(&t->merges);
    free(t->merge_pairs);
    qtx_bmap_free(&t->vocab);
    free(t->added);
    if (t->re) pcre2_code_free(t->re);
    free(t);
}

/* ---- accessors ------------------------------------------------------------------------- */

int64_t qtx_tokenizer_vocab_size(const qtx_tokenizer *t) {
    return t->vocab_size;
}
int64_t qtx_tokenizer_n_merges(const qtx_tokenizer *t) {
    return t->n_merges;
}
int64_t qtx_tokenizer_eos_id(const qtx_tokenizer *t) {
    return t->eos_id;
}
const char *qtx_tokenizer_hash(const qtx_tokenizer *t) {
    return t->hash;
}

int64_t qtx_tokenizer_token_id(const qtx_tokenizer *t, const char *s, size_t len) {
    uint64_t *v = qtx_bmap_find(&t->vocab, s, len, qtx_bmap_hash(s, len));
    return v ? (int64_t)*v : -1;
}

const char *qtx_tokenizer_token_bytes(const qtx_tokenizer *t, uint32_t id, size_t *len) {
    if (id >= t->vocab_size || !t->tok_kind[id]) return NULL;
    *len = t->tok_off[id + 1] - t->tok_off[id];
    return t->tok_bytes + t->tok_off[id];
}

int qtx_decode(const qtx_tokenizer *t, const uint32_t *ids, size_t n, qtx_bytes *out, qtx_err *e) {
    for (size_t i = 0; i < n; i++) {
        uint32_t id = ids[i];
        if (id >= t->vocab_size || !t->tok_kind[id])
            return qtx_fail(e, QTX_ERR_INPUT,
                            "token id %u (position %zu) is not in the vocabulary of %s (size "
                            "%lld)",
                            id, i, t->name, (long long)t->vocab_size);
        qtx_bytes_append(out, t->tok_bytes + t->tok_off[id], t->tok_off[id + 1] - t->tok_off[id]);
    }
    return QTX_OK;
}

/* ---- cut points ------------------------------------------------------------------------ */

static int ascii_letter(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* Pieces never span "letter|space letter" (no alternative of the pattern matches a letter
 * then a space, and " ?\p{L}+" starts afresh at the space), UTF-8 stretches are unaffected
 * by a cut next to ASCII, and the pattern never looks behind: so both halves split exactly
 * as the whole does, provided no added token straddles the cut. */
size_t qtx_tokenizer_split_point(const qtx_tokenizer *t, const char *text, size_t len,
                                 size_t from) {
    for (size_t k = from ? from : 1; k + 1 < len; k++) {
        if (text[k] != ' ' || !ascii_letter(text[k - 1]) || !ascii_letter(text[k + 1])) continue;
        int straddled = 0;
        for (int i = 0; i < t->n_added && !straddled; i++) {
            const qtx_added_token *a = &t->added[i];
            size_t first = k + 1 > a->len ? k + 1 - a->len : 0;
            for (size_t s = first; s < k && s + a->len <= len; s++)
                if (!memcmp(text + s, t->tok_bytes + a->off, a->len)) {
                    straddled = 1;
                    break;
                }
        }
        if (!straddled) return k;
    }
    return len;
}

/* ---- file hash ------------------------------------------------------------------------- */

int qtx_sha256_file(const char *path, char out[65], qtx_err *e) {
    FILE *f = fopen(path, "rb");
    if (!f) return qtx_fail(e, QTX_ERR_INPUT, "%s: cannot open: %s", path, strerror(errno));
    qtx_sha256 s;
    qtx_sha256_init(&s);
    char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) qtx_sha256_update(&s, buf, n);
    int bad = ferror(f);
    fclose(f);
    if (bad) return qtx_fail(e, QTX_ERR_INPUT, "%s: read error", path);
    qtx_sha256_hex(&s, out);
    return QTX_OK;
}
