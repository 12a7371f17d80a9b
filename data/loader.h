/* loader.h: the streaming sample loader (DESIGN.md, Data).
 *
 * A sample is seq_len + 1 consecutive tokens of one shard (windows do not cross shards).
 * Each epoch visits every sample window of every shard once, in a permutation drawn from
 * (seed, epoch) that does not depend on the number of ranks. Optimizer step s takes the next
 * global_batch samples of the order; DP rank r takes samples [r*G/dp, (r+1)*G/dp) of them.
 * The state is (epoch, cursor): restoring it, also under another dp, continues exactly.
 */
#ifndef QTX_LOADER_H
#define QTX_LOADER_H

#include <stdint.h>

#include "check.h"

typedef struct qtx_loader_options {
    const char *glob; /* shard files; sorted by name */
    int seq_len;
    int global_batch; /* samples per step over all DP ranks */
    int dp_rank;
    int dp_size;
    uint64_t seed;
    int shuffle;                /* 0 for validation: shard order, window order */
    const char *tokenizer_hash; /* when non-empty, every shard must carry this hash */
    int64_t vocab_size;         /* every shard's vocab_size must be <= this */
    int prefetch;               /* prefetch batches on a background thread */
} qtx_loader_options;

typedef struct qtx_loader_state {
    uint64_t epoch;
    uint64_t cursor; /* samples of this epoch already taken by the whole DP group */
} qtx_loader_state;

typedef struct qtx_loader qtx_loader;

int qtx_loader_open(qtx_loader **out, const qtx_loader_options *o, qtx_err *e);

/* Fills dst with this rank's global_batch/dp_size samples of the next step, each seq_len + 1
 * token ids (int32), back to back. */
int qtx_loader_next(qtx_loader *l, int32_t *dst, qtx_err *e);

qtx_loader_state qtx_loader_get_state(const qtx_loader *l);
int qtx_loader_set_state(qtx_loader *l, qtx_loader_state s, qtx_err *e);
int64_t qtx_loader_samples_per_epoch(const qtx_loader *l);
int64_t qtx_loader_total_tokens(const qtx_loader *l);
/* The tokenizer hash every shard carries (the run's tokenizer). */
const char *qtx_loader_tokenizer_hash(const qtx_loader *l);
void qtx_loader_close(qtx_loader *l);

#endif
