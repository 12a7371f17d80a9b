/* cmd_prep.c: qtx prep: tokenize text into HDF5 token shards (data/prep.h). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "cli.h"
#include "commands.h"
#include "prep.h"
#include "sys.h"

static const char HELP[] =
    "usage: qtx prep --tokenizer tokenizer.json -o DIR [options] INPUTS...\n"
    "\n"
    "Tokenizes INPUTS into DIR/train_00000.h5 ..., DIR/val_00000.h5 ..., DIR/index.json and a\n"
    "copy DIR/tokenizer.json. Inputs: .txt (one document per file unless --doc-sep), .jsonl\n"
    "(one JSON object per line), or either gzipped (.gz). Every document ends with\n"
    "<|endoftext|>. Invalid UTF-8 is kept as byte tokens. Nothing partial is left on failure.\n"
    "\n"
    "  --tokenizer FILE      tokenizer.json (required; needs <|endoftext|>)\n"
    "  -o, --output DIR      output directory, created when missing (required)\n"
    "  --val-fraction F      share of documents for validation, in [0, 1) (default 0.01)\n"
    "  --shard-tokens N      tokens per shard, whole documents (default 50000000)\n"
    "  --seed S              seed of the train/val split (default 1234)\n"
    "  --doc-sep SEP         in text files, a line equal to SEP separates documents\n"
    "  --field NAME          JSONL field holding the text (default: text)\n"
    "  --skip-bad            skip malformed JSONL lines (counted) instead of failing\n"
    "  --threads N           encoding threads (default: all cores; same output for any N)\n"
    "  --force               replace data already in DIR\n"
    "  -q, --quiet           no progress or summary on stderr\n"
    "  -h, --help            this help\n";

int qtx_cmd_prep(int argc, char **argv) {
    qtx_prep_options o = {.val_fraction = 0.01, .shard_tokens = 50000000, .seed = 1234};
    o.n_threads = qtx_n_cores();
    o.progress = 2;
    const char **inputs = qtx_calloc((size_t)argc, sizeof *inputs);
    int rc = 2, only_inputs = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        int missing = 0;
        long long x;
        if (only_inputs || a[0] != '-' || !strcmp(a, "-")) {
            inputs[o.n_inputs++] = a;
        } else if (!strcmp(a, "--")) {
            only_inputs = 1;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(HELP, stdout);
            rc = 0;
            goto done;
        } else if (!strcmp(a, "--skip-bad")) {
            o.skip_bad = 1;
        } else if (!strcmp(a, "--force")) {
            o.force = 1;
        } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            o.progress = 0;
        } else if ((v = qtx_opt_value(argc, argv, &i, "--tokenizer", "-t", &missing))) {
            o.tokenizer = v;
        } else if ((v = qtx_opt_value(argc, argv, &i, "--output", "-o", &missing))) {
            o.out_dir = v;
        } else if ((v = qtx_opt_value(argc, argv, &i, "--val-fraction", NULL, &missing))) {
            char *end;
            errno = 0;
            o.val_fraction = strtod(v, &end);
            if (!*v || *end || errno || !(o.val_fraction >= 0 && o.val_fraction < 1)) {
                qtx_usage_error("--val-fraction: expected a number in [0, 1), got '%s'", v);
                goto done;
            }
        } else if ((v = qtx_opt_value(argc, argv, &i, "--shard-tokens", NULL, &missing))) {
            if (qtx_parse_int(v, 1, 1LL << 40, &x)) {
                qtx_usage_error("--shard-tokens: expected a positive integer, got '%s'", v);
                goto done;
            }
            o.shard_tokens = x;
        } else if ((v = qtx_opt_value(argc, argv, &i, "--seed", NULL, &missing))) {
            char *end;
            errno = 0;
            unsigned long long s = strtoull(v, &end, 10);
            if (!*v || *end || errno || v[0] == '-') {
                qtx_usage_error("--seed: expected a non-negative integer, got '%s'", v);
                goto done;
            }
            o.seed = s;
        } else if ((v = qtx_opt_value(argc, argv, &i, "--threads", NULL, &missing))) {
            if (qtx_parse_int(v, 1, 1024, &x)) {
                qtx_usage_error("--threads: expected an integer in [1, 1024], got '%s'", v);
                goto done;
            }
            o.n_threads = (int)x;
        } else if ((v = qtx_opt_value(argc, argv, &i, "--doc-sep", NULL, &missing))) {
            o.doc_sep = v;
        } else if ((v = qtx_opt_value(argc, argv, &i, "--field", NULL, &missing))) {
            o.field = v;
        } else {
            qtx_usage_error(
                missing ? "%s needs a value" : "unknown option '%s'; see qtx prep --help", a);
            goto done;
        }
        if (missing) {
            qtx_usage_error("%s needs a value", a);
            goto done;
        }
    }
    if (!o.tokenizer) {
        qtx_usage_error("qtx prep needs --tokenizer tokenizer.json");
        goto done;
    }
    if (!o.out_dir) {
        qtx_usage_error("qtx prep needs -o DIR");
        goto done;
    }
    if (!o.n_inputs) {
        qtx_usage_error("qtx prep needs input files");
        goto done;
    }
    o.inputs = inputs;
    qtx_prep_stats st;
    qtx_err e = {0};
    if (qtx_prep_run(&o, &st, &e)) {
        fprintf(stderr, "qtx: error: %s\n", e.msg);
        rc = e.code ? e.code : 1;
        goto done;
    }
    if (o.progress) {
        double mb = (double)st.bytes / 1e6;
        fprintf(stderr,
                "qtx prep: %.2f MB in %.2f s (%.1f MB/s, %d threads): train %lld documents, "
                "%lld tokens, %lld shards; val %lld documents, %lld tokens, %lld shards",
                mb, st.seconds, st.seconds > 0 ? mb / st.seconds : 0.0, o.n_threads,
                (long long)st.docs[0], (long long)st.tokens[0], (long long)st.shards[0],
                (long long)st.docs[1], (long long)st.tokens[1], (long long)st.shards[1]);
        if (st.bad_lines) fprintf(stderr, "; skipped %lld bad lines", (long long)st.bad_lines);
        fprintf(stderr, " -> %s\n", o.out_dir);
    }
    rc = 0;
done:
    free(inputs);
    return rc;
}
