/* cmd_tokenizer.c: qtx tokenizer train | encode | decode (byte-level BPE, data/tokenizer.h). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "cli.h"
#include "commands.h"
#include "docsrc.h"
#include "tokenizer.h"
#include "sys.h"

static const char TOP_HELP[] =
    "usage: qtx tokenizer <train|encode|decode> [options]\n"
    "\n"
    "Byte-level BPE as in GPT-2 / Hugging Face tokenizers; tokenizer.json is Hugging Face's "
    "format.\n"
    "\n"
    "  train    learn a tokenizer from text files\n"
    "  encode   print the token ids of a text\n"
    "  decode   turn token ids back into the exact bytes\n"
    "\n"
    "Run 'qtx tokenizer <command> --help' for its options.\n";

static const char TRAIN_HELP[] =
    "usage: qtx tokenizer train --vocab-size N -o tokenizer.json [options] FILES...\n"
    "\n"
    "Learns byte-level BPE merges from FILES (.txt, .jsonl, or either .gz): the 256 bytes get\n"
    "ids 0-255, then one id per merge, then the special tokens.\n"
    "\n"
    "  --vocab-size N        total vocabulary size, special tokens included (required)\n"
    "  -o, --output FILE     where to write tokenizer.json (required)\n"
    "  --special TOKEN       add a special token (repeatable); <|endoftext|> is always added\n"
    "  --min-frequency N     never merge a pair seen fewer than N times (default 2)\n"
    "  --doc-sep SEP         in text files, a line equal to SEP separates documents\n"
    "  --field NAME          JSONL field holding the text (default: text)\n"
    "  --skip-bad            skip malformed JSONL lines instead of failing\n"
    "  --threads N           threads for counting words (default: all cores)\n"
    "  -h, --help            this help\n";

static const char ENCODE_HELP[] =
    "usage: qtx tokenizer encode --tokenizer tokenizer.json [--threads N] [FILE]\n"
    "\n"
    "Prints the token ids of FILE (standard input when absent) on one line, separated by\n"
    "spaces. Special tokens such as <|endoftext|> in the text become their ids. Any bytes are\n"
    "accepted: invalid UTF-8 encodes to byte tokens.\n"
    "\n"
    "  --tokenizer FILE      tokenizer.json (required)\n"
    "  --threads N           threads for long texts (default: all cores; same ids for any N)\n"
    "  -h, --help            this help\n";

static const char DECODE_HELP[] =
    "usage: qtx tokenizer decode --tokenizer tokenizer.json [FILE]\n"
    "\n"
    "Reads token ids separated by whitespace from FILE (standard input when absent) and writes\n"
    "the bytes they stand for to standard output, exactly.\n"
    "\n"
    "  --tokenizer FILE      tokenizer.json (required)\n"
    "  -h, --help            this help\n";

/* Whole decimal number in [lo, hi]; 0 on success. */
/* Reads a whole file ("-" or NULL: standard input). */
static int read_all(const char *path, qtx_bytes *out, qtx_err *e) {
    FILE *f = path && strcmp(path, "-") ? fopen(path, "rb") : stdin;
    const char *name = path && strcmp(path, "-") ? path : "standard input";
    if (!f) return qtx_fail(e, QTX_ERR_INPUT, "%s: cannot open: %s", name, strerror(errno));
    char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) qtx_bytes_append(out, buf, n);
    int bad = ferror(f);
    if (f != stdin) fclose(f);
    if (bad) return qtx_fail(e, QTX_ERR_INPUT, "%s: read error: %s", name, strerror(errno));
    return QTX_OK;
}

/* ---- train ----------------------------------------------------------------------------- */

static int cmd_train(int argc, char **argv) {
    long long vocab = -1, min_freq = 2, threads = qtx_n_cores();
    const char *output = NULL, *doc_sep = NULL, *field = NULL;
    int skip_bad = 0;
    const char **special = qtx_calloc((size_t)argc, sizeof *special);
    const char **files = qtx_calloc((size_t)argc, sizeof *files);
    int n_special = 0, n_files = 0, rc = 2, only_files = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        int missing = 0;
        if (only_files || a[0] != '-' || !strcmp(a, "-")) {
            files[n_files++] = a;
        } else if (!strcmp(a, "--")) {
            only_files = 1;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(TRAIN_HELP, stdout);
            rc = 0;
            goto done;
        } else if (!strcmp(a, "--skip-bad")) {
            skip_bad = 1;
        } else if ((v = qtx_opt_value(argc, argv, &i, "--vocab-size", NULL, &missing))) {
            if (qtx_parse_int(v, 1, 1LL << 31, &vocab)) {
                qtx_usage_error("--vocab-size: expected a positive integer, got '%s'", v);
                goto done;
            }
        } else if ((v = qtx_opt_value(argc, argv, &i, "--min-frequency", NULL, &missing))) {
            if (qtx_parse_int(v, 1, 1LL << 62, &min_freq)) {
                qtx_usage_error("--min-frequency: expected a positive integer, got '%s'", v);
                goto done;
            }
        } else if ((v = qtx_opt_value(argc, argv, &i, "--threads", NULL, &missing))) {
            if (qtx_parse_int(v, 1, 1024, &threads)) {
                qtx_usage_error("--threads: expected an integer in [1, 1024], got '%s'", v);
                goto done;
            }
        } else if ((v = qtx_opt_value(argc, argv, &i, "--output", "-o", &missing))) {
            output = v;
        } else if ((v = qtx_opt_value(argc, argv, &i, "--special", NULL, &missing))) {
            special[n_special++] = v;
        } else if ((v = qtx_opt_value(argc, argv, &i, "--doc-sep", NULL, &missing))) {
            doc_sep = v;
        } else if ((v = qtx_opt_value(argc, argv, &i, "--field", NULL, &missing))) {
            field = v;
        } else {
            qtx_usage_error(missing ? "%s needs a value"
                                    : "unknown option '%s'; see qtx tokenizer train --help",
                            a);
            goto done;
        }
        if (missing) {
            qtx_usage_error("%s needs a value", a);
            goto done;
        }
    }
    if (vocab < 0) {
        qtx_usage_error("qtx tokenizer train needs --vocab-size N");
        goto done;
    }
    if (!output) {
        qtx_usage_error("qtx tokenizer train needs -o tokenizer.json");
        goto done;
    }
    if (!n_files) {
        qtx_usage_error("qtx tokenizer train needs input files");
        goto done;
    }

    qtx_err e = {0};
    qtx_bpe_train_options o = {.vocab_size = vocab,
                               .special = special,
                               .n_special = n_special,
                               .min_frequency = min_freq,
                               .n_threads = (int)threads};
    qtx_bpe_trainer *tr = NULL;
    qtx_docsrc *src = NULL;
    qtx_tokenizer *tok = NULL;
    qtx_docsrc_options dso = {doc_sep, field, skip_bad};
    double t0 = qtx_now_s();
    int64_t n_docs = 0;
    if (qtx_bpe_trainer_new(&o, &tr, &e) || qtx_docsrc_open(files, n_files, &dso, &src, &e)) {
        rc = qtx_report(&e);
        goto cleanup;
    }
    for (;;) {
        const qtx_doc *docs;
        size_t n;
        if (qtx_docsrc_next(src, 16u << 20, &docs, &n, &e)) {
            rc = qtx_report(&e);
            goto cleanup;
        }
        if (!n) break;
        const char **texts = qtx_malloc(n * sizeof *texts);
        size_t *lens = qtx_malloc(n * sizeof *lens);
        for (size_t k = 0; k < n; k++) {
            texts[k] = docs[k].p;
            lens[k] = docs[k].n;
        }
        qtx_bpe_trainer_feed(tr, texts, lens, (int)n);
        free(texts);
        free(lens);
        n_docs += (int64_t)n;
    }
    if (!n_docs) {
        fprintf(stderr, "qtx: error: empty corpus: the inputs hold no text\n");
        rc = 2;
        goto cleanup;
    }
    double t1 = qtx_now_s();
    int64_t uniq, words, bytes;
    if (qtx_bpe_trainer_finish(tr, &tok, &e) || qtx_tokenizer_save(tok, output, &e)) {
        rc = qtx_report(&e);
        goto cleanup;
    }
    double t2 = qtx_now_s();
    qtx_bpe_trainer_stats(tr, &uniq, &words, &bytes);
    fprintf(stderr,
            "qtx tokenizer train: %.2f MB, %lld documents, %lld words (%lld distinct) counted "
            "in %.2f s (%.1f MB/s, %lld threads)\n",
            (double)bytes / 1e6, (long long)n_docs, (long long)words, (long long)uniq, t1 - t0,
            (double)bytes / 1e6 / (t1 - t0 > 0 ? t1 - t0 : 1e-9), threads);
    fprintf(stderr,
            "qtx tokenizer train: %lld merges, vocabulary %lld, learned in %.2f s; total %.2f s "
            "(%.1f MB/s); wrote %s\n",
            (long long)qtx_tokenizer_n_merges(tok), (long long)qtx_tokenizer_vocab_size(tok),
            t2 - t1, t2 - t0, (double)bytes / 1e6 / (t2 - t0 > 0 ? t2 - t0 : 1e-9), output);
    if (qtx_tokenizer_vocab_size(tok) < vocab)
        fprintf(stderr,
                "qtx: warning: the corpus ran out of pairs seen %lld+ times: vocabulary %lld, "
                "not %lld\n",
                min_freq, (long long)qtx_tokenizer_vocab_size(tok), vocab);
    rc = 0;
cleanup:
    qtx_tokenizer_free(tok);
    qtx_docsrc_close(src);
    qtx_bpe_trainer_free(tr);
done:
    free(special);
    free(files);
    return rc;
}

/* ---- encode / decode ------------------------------------------------------------------- */

/* Common options of encode and decode: --tokenizer, --threads (encode only), one FILE. */
static int parse_io(int argc, char **argv, const char *help, int allow_threads,
                    const char **tok_path, const char **file, long long *threads) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        int missing = 0;
        if (a[0] != '-' || !strcmp(a, "-")) {
            if (*file) return qtx_usage_error("one input file at most ('%s' and '%s')", *file, a);
            *file = a;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(help, stdout);
            return -1;
        } else if ((v = qtx_opt_value(argc, argv, &i, "--tokenizer", "-t", &missing))) {
            *tok_path = v;
        } else if (allow_threads &&
                   (v = qtx_opt_value(argc, argv, &i, "--threads", NULL, &missing))) {
            if (qtx_parse_int(v, 1, 1024, threads))
                return qtx_usage_error("--threads: expected an integer in [1, 1024], got '%s'", v);
        } else {
            return qtx_usage_error(missing ? "%s needs a value" : "unknown option '%s'; see --help",
                                   a);
        }
        if (missing) return qtx_usage_error("%s needs a value", a);
    }
    if (!*tok_path) return qtx_usage_error("--tokenizer FILE is required");
    return 0;
}

/* Writes ids as decimal text, space separated, through one buffer (fast for big outputs). */
static int print_ids(const qtx_ids *ids) {
    size_t cap = 1 << 16, n = 0;
    char *buf = qtx_malloc(cap + 16);
    int ok = 1;
    for (size_t i = 0; i < ids->n && ok; i++) {
        char tmp[12];
        int k = 0;
        uint32_t v = ids->v[i];
        do tmp[k++] = (char)('0' + v % 10);
        while (v /= 10);
        if (i) buf[n++] = ' ';
        while (k) buf[n++] = tmp[--k];
        if (n >= cap) {
            ok = fwrite(buf, 1, n, stdout) == n;
            n = 0;
        }
    }
    buf[n++] = '\n';
    ok = ok && fwrite(buf, 1, n, stdout) == n && fflush(stdout) == 0;
    free(buf);
    return ok ? 0 : 1;
}

/* The tokenizer and the whole input of encode/decode; on failure reports and returns the
 * exit status with nothing left to free. */
static int load_inputs(const char *tok_path, const char *file, qtx_tokenizer **tok,
                       qtx_bytes *text) {
    qtx_err e = {0};
    if (qtx_tokenizer_load(tok_path, tok, &e)) return qtx_report(&e);
    if (read_all(file, text, &e)) {
        qtx_tokenizer_free(*tok);
        return qtx_report(&e);
    }
    return 0;
}

static int cmd_encode(int argc, char **argv) {
    const char *tok_path = NULL, *file = NULL;
    long long threads = qtx_n_cores();
    int rc = parse_io(argc, argv, ENCODE_HELP, 1, &tok_path, &file, &threads);
    if (rc) return rc < 0 ? 0 : rc;
    qtx_tokenizer *tok;
    qtx_bytes text = {0};
    if ((rc = load_inputs(tok_path, file, &tok, &text))) return rc;
    qtx_encoder **enc = qtx_calloc((size_t)threads, sizeof *enc);
    for (int i = 0; i < threads; i++) enc[i] = qtx_encoder_new(tok);
    qtx_ids ids = {0};
    qtx_encode_parallel(enc, (int)threads, text.p ? text.p : "", text.n, &ids);
    rc = print_ids(&ids);
    if (rc) fprintf(stderr, "qtx: error: cannot write the ids: %s\n", strerror(errno));
    for (int i = 0; i < threads; i++) qtx_encoder_free(enc[i]);
    free(enc);
    qtx_ids_free(&ids);
    qtx_bytes_free(&text);
    qtx_tokenizer_free(tok);
    return rc;
}

static int cmd_decode(int argc, char **argv) {
    const char *tok_path = NULL, *file = NULL;
    long long threads = 1;
    int rc = parse_io(argc, argv, DECODE_HELP, 0, &tok_path, &file, &threads);
    if (rc) return rc < 0 ? 0 : rc;
    qtx_tokenizer *tok;
    qtx_bytes text = {0};
    if ((rc = load_inputs(tok_path, file, &tok, &text))) return rc;
    const char *name = file && strcmp(file, "-") ? file : "standard input";
    qtx_ids ids = {0};
    rc = 0;
    for (size_t i = 0; i < text.n && !rc;) {
        char c = text.p[i];
        if (c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == ',') {
            i++;
            continue;
        }
        uint64_t v = 0;
        size_t j = i;
        while (j < text.n && text.p[j] >= '0' && text.p[j] <= '9' && v <= UINT32_MAX)
            v = v * 10 + (uint64_t)(text.p[j++] - '0');
        int sep_ok = j == text.n || text.p[j] == ' ' || text.p[j] == '\n' || text.p[j] == '\t' ||
                     text.p[j] == '\r' || text.p[j] == ',';
        if (j == i || !sep_ok || v > UINT32_MAX) {
            size_t k = j;
            while (k < text.n && k - i < 20 && text.p[k] != ' ' && text.p[k] != '\n') k++;
            if (k == i) k = i + 1;
            fprintf(stderr,
                    "qtx: error: %s: '%.*s' (byte %zu) is not a token id; decode reads ids "
                    "separated by spaces\n",
                    name, (int)(k - i), text.p + i, i);
            rc = 2;
            break;
        }
        qtx_ids_push(&ids, (uint32_t)v);
        i = j;
    }
    qtx_bytes out = {0};
    qtx_err e = {0};
    if (!rc && qtx_decode(tok, ids.v, ids.n, &out, &e)) rc = qtx_report(&e);
    if (!rc && (fwrite(out.p ? out.p : "", 1, out.n, stdout) != out.n || fflush(stdout))) {
        fprintf(stderr, "qtx: error: cannot write the text: %s\n", strerror(errno));
        rc = 1;
    }
    qtx_bytes_free(&out);
    qtx_ids_free(&ids);
    qtx_bytes_free(&text);
    qtx_tokenizer_free(tok);
    return rc;
}

int qtx_cmd_tokenizer(int argc, char **argv) {
    if (argc < 2)
        return qtx_usage_error("qtx tokenizer needs a command: train, encode or decode (see qtx "
                               "tokenizer --help)");
    const char *sub = argv[1];
    if (!strcmp(sub, "-h") || !strcmp(sub, "--help") || !strcmp(sub, "help")) {
        fputs(TOP_HELP, stdout);
        return 0;
    }
    if (!strcmp(sub, "train")) return cmd_train(argc - 1, argv + 1);
    if (!strcmp(sub, "encode")) return cmd_encode(argc - 1, argv + 1);
    if (!strcmp(sub, "decode")) return cmd_decode(argc - 1, argv + 1);
    return qtx_usage_error("unknown tokenizer command '%s'; use train, encode or decode", sub);
}
