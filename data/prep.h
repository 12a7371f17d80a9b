/* prep.h: text -> tokenized HDF5 shards (qtx prep; docs/DATA.md).
 *
 * Every document (docsrc.h) is encoded and ends with the EOS token (<|endoftext|>). Documents
 * go to validation with probability val_fraction, decided by a hash of (seed, document index):
 * the split is the same on every machine and thread count. Shards of about shard_tokens
 * tokens (whole documents; one longer document makes its own larger shard) are written as
 * DIR/train_00000.h5 ... and DIR/val_00000.h5 ..., with DIR/index.json and a byte copy of the
 * tokenizer as DIR/tokenizer.json. Output is staged in a temporary directory inside DIR and
 * moved into place only when everything succeeded: a failure leaves no partial files.
 */
#ifndef QTX_PREP_H
#define QTX_PREP_H

#include <stdint.h>

#include "check.h"

typedef struct qtx_prep_options {
    const char *tokenizer; /* tokenizer.json */
    const char *out_dir;   /* created when missing */
    const char *const *inputs;
    int n_inputs;
    double val_fraction;  /* [0, 1) */
    int64_t shard_tokens; /* > 0 */
    uint64_t seed;
    const char *doc_sep; /* see docsrc.h */
    const char *field;
    int skip_bad;
    int n_threads;
    int force;    /* replace shards already in out_dir (otherwise that is an error) */
    int progress; /* 0: quiet, 1: a summary line, 2: live progress on a terminal too */
} qtx_prep_options;

typedef struct qtx_prep_stats {
    int64_t docs[2], tokens[2], shards[2]; /* [0] train, [1] val */
    int64_t bad_lines;
    int64_t bytes; /* uncompressed input bytes */
    double seconds;
} qtx_prep_stats;

int qtx_prep_run(const qtx_prep_options *o, qtx_prep_stats *st, qtx_err *e);

#endif
