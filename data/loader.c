/* loader.c: the streaming sample loader behind loader.h.
 *
 * Samples: shard i with n tokens has floor((n - 1) / seq_len) windows of seq_len + 1 tokens
 * starting at k * seq_len (a window's last token is the next window's first, as in llm.c);
 * the global sample index runs over the windows of all shards in name order. Epoch e visits
 * them in the order qtx_perm(seed, e) (the identity when shuffle is off). Step positions
 * [cursor, cursor + global_batch) are cut into dp_size contiguous rank slices; an epoch's
 * remainder smaller than a global batch is dropped.
 *
 * Prefetch: one producer thread fills a ring of PREFETCH_DEPTH batch buffers, each tagged
 * with the (epoch, cursor) it was read at. next() copies out the head buffer. set_state bumps
 * a generation counter, so a read in flight for the old position is thrown away when it
 * finishes instead of being handed out. Only next() moves the state that get_state reports.
 */
#include "loader.h"

#include <glob.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "perm.h"
#include "shard.h"

#define PREFETCH_DEPTH 2

typedef struct batch_slot {
    qtx_loader_state at; /* the (normalized) state this batch was read at */
    int rc;
    qtx_err err;
    int32_t *tokens;
} batch_slot;

struct qtx_loader {
    qtx_loader_options o; /* glob and tokenizer_hash point at the copies below */
    char *glob;
    char *tokenizer_hash;
    int n_shards;
    qtx_shard **shards;
    int64_t *first_sample; /* [n_shards + 1]: global index of each shard's first window */
    int64_t n_samples;
    int64_t total_tokens;
    int rank_batch; /* global_batch / dp_size */
    size_t sample_tokens;

    qtx_loader_state state; /* after the batches next() has handed out */
    int failed;             /* a read failed: next() repeats the error until set_state */
    qtx_err fail_err;

    /* prefetch. The fields after mu are guarded by it; a slot's tokens belong to whoever
     * holds the slot (the producer while filling it, next() while copying the head). */
    pthread_t thread;
    int has_thread;
    pthread_mutex_t mu;
    pthread_cond_t can_fill, can_take;
    int stop;
    uint64_t gen;           /* bumped by set_state; stale reads are discarded */
    qtx_loader_state fetch; /* where the producer reads next */
    int producer_stalled;   /* the producer hit an error and waits for set_state */
    int head, count;        /* ring of filled slots */
    batch_slot slots[PREFETCH_DEPTH];
};

/* The state a batch is really read at: an epoch without a full global batch left ends. */
static qtx_loader_state normalized(const qtx_loader *l, qtx_loader_state s) {
    if (s.cursor + (uint64_t)l->o.global_batch > (uint64_t)l->n_samples) {
        s.epoch++;
        s.cursor = 0;
    }
    return s;
}

static int shard_of(const qtx_loader *l, int64_t g) {
    int lo = 0, hi = l->n_shards - 1; /* last shard whose first_sample <= g */
    while (lo < hi) {
        int mid = lo + (hi - lo + 1) / 2;
        if (l->first_sample[mid] <= g)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}

/* Reads this rank's slice of the global batch at normalized state s into dst. Touches only
 * the shards and dst, so the producer thread can run it without the lock. */
static int read_batch(const qtx_loader *l, qtx_loader_state s, int32_t *dst, qtx_err *e) {
    qtx_perm perm;
    if (l->o.shuffle) qtx_perm_init(&perm, (uint64_t)l->n_samples, l->o.seed, s.epoch);
    uint64_t first = s.cursor + (uint64_t)l->o.dp_rank * (uint64_t)l->rank_batch;
    for (int j = 0; j < l->rank_batch; j++) {
        uint64_t p = first + (uint64_t)j;
        int64_t g = (int64_t)(l->o.shuffle ? qtx_perm_apply(&perm, p) : p);
        int i = shard_of(l, g);
        int64_t start = (g - l->first_sample[i]) * (int64_t)l->o.seq_len;
        /* int32 and uint32 may alias; ids are < vocab_size <= INT32_MAX (checked at open) */
        int rc = qtx_shard_read(l->shards[i], start, l->o.seq_len + 1,
                                (uint32_t *)(dst + (size_t)j * l->sample_tokens), e);
        if (rc) return rc;
    }
    return QTX_OK;
}

static qtx_loader_state advanced(const qtx_loader *l, qtx_loader_state s) {
    s.cursor += (uint64_t)l->o.global_batch;
    return s;
}

static void *producer(void *arg) {
    qtx_loader *l = arg;
    pthread_mutex_lock(&l->mu);
    for (;;) {
        while (!l->stop && (l->count == PREFETCH_DEPTH || l->producer_stalled))
            pthread_cond_wait(&l->can_fill, &l->mu);
        if (l->stop) break;
        uint64_t gen = l->gen;
        qtx_loader_state at = normalized(l, l->fetch);
        batch_slot *slot = &l->slots[(l->head + l->count) % PREFETCH_DEPTH];
        pthread_mutex_unlock(&l->mu);

        /* the slot is not in the ring yet, so nobody else touches it while we fill it */
        qtx_err err = {0};
        int rc = read_batch(l, at, slot->tokens, &err);

        pthread_mutex_lock(&l->mu);
        if (gen != l->gen) continue; /* set_state moved the loader meanwhile: drop it */
        slot->at = at;
        slot->rc = rc;
        slot->err = err;
        l->count++;
        l->fetch = advanced(l, at);
        if (rc) l->producer_stalled = 1;
        pthread_cond_signal(&l->can_take);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

int qtx_loader_next(qtx_loader *l, int32_t *dst, qtx_err *e) {
    if (l->failed) {
        if (e) *e = l->fail_err;
        return l->fail_err.code;
    }
    qtx_loader_state at = normalized(l, l->state);
    size_t n = (size_t)l->rank_batch * l->sample_tokens;
    int rc;
    qtx_err err = {0};
    if (!l->has_thread) {
        rc = read_batch(l, at, dst, &err);
    } else {
        pthread_mutex_lock(&l->mu);
        while (l->count == 0) pthread_cond_wait(&l->can_take, &l->mu);
        batch_slot *slot = &l->slots[l->head];
        pthread_mutex_unlock(&l->mu);
        /* the head slot stays ours until we release it below */
        QTX_CHECK(slot->at.epoch == at.epoch && slot->at.cursor == at.cursor,
                  "loader: prefetched batch (%" PRIu64 ", %" PRIu64 ") is not (%" PRIu64
                  ", %" PRIu64 ")",
                  slot->at.epoch, slot->at.cursor, at.epoch, at.cursor);
        rc = slot->rc;
        if (rc)
            err = slot->err;
        else
            memcpy(dst, slot->tokens, n * sizeof *dst);
        pthread_mutex_lock(&l->mu);
        l->head = (l->head + 1) % PREFETCH_DEPTH;
        l->count--;
        pthread_cond_signal(&l->can_fill);
        pthread_mutex_unlock(&l->mu);
    }
    if (rc) {
        l->failed = 1;
        l->fail_err = err;
        if (e) *e = err;
        return rc;
    }
    if (at.epoch != l->state.epoch) {
        uint64_t dropped = (uint64_t)l->n_samples - l->state.cursor;
        if (dropped)
            qtx_log_info("data: epoch %" PRIu64 " begins (%" PRId64 " samples per epoch; the "
                         "last %" PRIu64 " of epoch %" PRIu64 ", short of a global batch, were "
                         "dropped)",
                         at.epoch, l->n_samples, dropped, l->state.epoch);
        else
            qtx_log_info("data: epoch %" PRIu64 " begins (%" PRId64 " samples per epoch)", at.epoch,
                         l->n_samples);
    }
    l->state = advanced(l, at);
    return QTX_OK;
}

qtx_loader_state qtx_loader_get_state(const qtx_loader *l) {
    return l->state;
}

int qtx_loader_set_state(qtx_loader *l, qtx_loader_state s, qtx_err *e) {
    if (s.cursor > (uint64_t)l->n_samples)
        return qtx_fail(e, QTX_ERR_INPUT,
                        "data: saved loader cursor %" PRIu64 " is beyond the %" PRId64
                        " samples per epoch of %s: resume with the data (and seq_len) the run "
                        "was saved with",
                        s.cursor, l->n_samples, l->glob);
    l->state = s;
    l->failed = 0;
    if (l->has_thread) {
        pthread_mutex_lock(&l->mu);
        l->gen++;
        l->head = l->count = 0;
        l->fetch = s;
        l->producer_stalled = 0;
        pthread_cond_signal(&l->can_fill);
        pthread_mutex_unlock(&l->mu);
    }
    return QTX_OK;
}

int64_t qtx_loader_samples_per_epoch(const qtx_loader *l) {
    return l->n_samples;
}
int64_t qtx_loader_total_tokens(const qtx_loader *l) {
    return l->total_tokens;
}

void qtx_loader_close(qtx_loader *l) {
    if (!l) return;
    if (l->has_thread) {
        pthread_mutex_lock(&l->mu);
        l->stop = 1;
        pthread_cond_signal(&l->can_fill);
        pthread_mutex_unlock(&l->mu);
        pthread_join(l->thread, NULL);
        pthread_cond_destroy(&l->can_take);
        pthread_cond_destroy(&l->can_fill);
        pthread_mutex_destroy(&l->mu);
    }
    for (int i = 0; i < PREFETCH_DEPTH; i++) free(l->slots[i].tokens);
    for (int i = 0; i < l->n_shards; i++) qtx_shard_close(l->shards[i]);
    free(l->shards);
    free(l->first_sample);
    free(l->glob);
    free(l->tokenizer_hash);
    free(l);
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    return memcpy(qtx_malloc(n), s, n);
}

static int check_options(const qtx_loader_options *o, qtx_err *e) {
    if (!o->glob || !o->glob[0])
        return qtx_fail(e, QTX_ERR_INPUT, "data: no shard glob given: set the data path");
    if (o->seq_len < 1)
        return qtx_fail(e, QTX_ERR_INPUT, "data: seq_len %d must be at least 1", o->seq_len);
    if (o->dp_size < 1 || o->dp_rank < 0 || o->dp_rank >= o->dp_size)
        return qtx_fail(e, QTX_ERR_INPUT, "data: dp_rank %d is not in [0, dp_size %d)", o->dp_rank,
                        o->dp_size);
    if (o->global_batch < 1 || o->global_batch % o->dp_size != 0)
        return qtx_fail(e, QTX_ERR_INPUT,
                        "data: global_batch %d must be a positive multiple of dp_size %d",
                        o->global_batch, o->dp_size);
    if (o->vocab_size < 1 || o->vocab_size > INT32_MAX)
        return qtx_fail(e, QTX_ERR_INPUT,
                        "data: vocab_size %" PRId64 " must be in 1..2^31-1 (ids are int32)",
                        o->vocab_size);
    return QTX_OK;
}

/* Opens every shard matching the glob, in name order, and checks it fits the model. */
static int open_shards(qtx_loader *l, qtx_err *e) {
    glob_t g;
    int grc = glob(l->glob, 0, NULL, &g);
    if (grc == GLOB_NOMATCH || (grc == 0 && g.gl_pathc == 0)) {
        if (grc == 0) globfree(&g);
        return qtx_fail(e, QTX_ERR_INPUT,
                        "data: no shard files match '%s': check the data path (run qtx prep to "
                        "make shards)",
                        l->glob);
    }
    if (grc != 0)
        return qtx_fail(e, QTX_ERR_INPUT, "data: cannot expand '%s' (read error): check the path",
                        l->glob);
    /* sort ourselves: glob's order follows the locale, the sample order must not */
    qsort(g.gl_pathv, g.gl_pathc, sizeof *g.gl_pathv, cmp_str);
    l->shards = qtx_calloc(g.gl_pathc, sizeof *l->shards);
    l->first_sample = qtx_calloc(g.gl_pathc + 1, sizeof *l->first_sample);
    int rc = QTX_OK;
    const char *want_hash = l->tokenizer_hash;
    for (size_t i = 0; i < g.gl_pathc && !rc; i++) {
        qtx_shard *s = NULL;
        rc = qtx_shard_open(g.gl_pathv[i], &s, e);
        if (rc) break;
        l->shards[l->n_shards++] = s;
        const qtx_shard_meta *m = qtx_shard_get_meta(s);
        if (!want_hash[0]) { /* no hash given: the first shard's is the run's */
            free(l->tokenizer_hash);
            l->tokenizer_hash = dup_str(m->tokenizer_hash);
            l->o.tokenizer_hash = want_hash = l->tokenizer_hash;
        }
        if (m->vocab_size > l->o.vocab_size)
            rc = qtx_fail(e, QTX_ERR_INPUT,
                          "shard %s: vocab_size %" PRId64
                          " is larger than the model's vocab_size %" PRId64
                          ": use shards made with the model's tokenizer or raise vocab_size",
                          g.gl_pathv[i], m->vocab_size, l->o.vocab_size);
        else if (want_hash[0] && strcmp(m->tokenizer_hash, want_hash) != 0)
            rc = qtx_fail(e, QTX_ERR_INPUT,
                          "shard %s: tokenizer_hash '%s' differs from the run's '%s': the shard "
                          "was made with another tokenizer; re-run qtx prep with this one",
                          g.gl_pathv[i], m->tokenizer_hash, want_hash);
        int64_t n = m->n_tokens;
        int64_t windows = n >= 1 ? (n - 1) / l->o.seq_len : 0;
        l->first_sample[i + 1] = l->first_sample[i] + windows;
        l->total_tokens += n;
    }
    globfree(&g);
    return rc;
}

int qtx_loader_open(qtx_loader **out, const qtx_loader_options *o, qtx_err *e) {
    *out = NULL;
    int rc = check_options(o, e);
    if (rc) return rc;
    qtx_loader *l = qtx_calloc(1, sizeof *l);
    l->o = *o;
    l->glob = dup_str(o->glob);
    l->tokenizer_hash = dup_str(o->tokenizer_hash ? o->tokenizer_hash : "");
    l->o.glob = l->glob;
    l->o.tokenizer_hash = l->tokenizer_hash;
    l->rank_batch = o->global_batch / o->dp_size;
    l->sample_tokens = (size_t)o->seq_len + 1;

    if ((rc = open_shards(l, e))) goto fail;
    l->n_samples = l->first_sample[l->n_shards];
    int64_t longest = 0;
    for (int i = 0; i < l->n_shards; i++) {
        int64_t n = qtx_shard_get_meta(l->shards[i])->n_tokens;
        if (n > longest) longest = n;
    }
    if (l->n_samples == 0) {
        rc = qtx_fail(e, QTX_ERR_INPUT,
                      "data: seq_len %d is too long for every shard of '%s' (a sample needs %d "
                      "tokens, the longest shard has %" PRId64 "): lower seq_len or use more data",
                      o->seq_len, l->glob, o->seq_len + 1, longest);
        goto fail;
    }
    if (l->n_samples < o->global_batch) {
        rc = qtx_fail(e, QTX_ERR_INPUT,
                      "data: '%s' holds %" PRId64 " samples of seq_len %d, fewer than one "
                      "global_batch of %d: lower global_batch or use more data",
                      l->glob, l->n_samples, o->seq_len, o->global_batch);
        goto fail;
    }

    if (o->prefetch) {
        size_t n = (size_t)l->rank_batch * l->sample_tokens;
        for (int i = 0; i < PREFETCH_DEPTH; i++)
            l->slots[i].tokens = qtx_malloc(n * sizeof *l->slots[i].tokens);
        QTX_CHECK(pthread_mutex_init(&l->mu, NULL) == 0, "pthread_mutex_init failed");
        QTX_CHECK(pthread_cond_init(&l->can_fill, NULL) == 0, "pthread_cond_init failed");
        QTX_CHECK(pthread_cond_init(&l->can_take, NULL) == 0, "pthread_cond_init failed");
        QTX_CHECK(pthread_create(&l->thread, NULL, producer, l) == 0,
                  "cannot start the data prefetch thread");
        l->has_thread = 1;
    }
    *out = l;
    return QTX_OK;
fail:
    qtx_loader_close(l);
    return rc;
}

const char *qtx_loader_tokenizer_hash(const qtx_loader *l) {
    return l->tokenizer_hash;
}
