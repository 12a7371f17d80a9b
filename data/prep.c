/* prep.c: qtx prep: documents -> ids (+ EOS) -> train/val HDF5 shards and index.json
 * (prep.h). Batches of documents are encoded on all threads (long documents cut at
 * qtx_tokenizer_split_point), then appended to the shards in document order, so the output
 * does not depend on the thread count. */
#include "prep.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "docsrc.h"
#include "rng.h"
#include "shard.h"
#include "tokenizer.h"
#include "sys.h"

#define BATCH_BYTES (8u << 20)
#define UNIT_BYTES (1u << 20) /* long documents are encoded in parallel pieces of this */
#define PATH_CAP 4096

typedef struct split_buf {
    qtx_ids tokens;
    int64_t *offs; /* n_docs + 1 */
    int64_t n_docs, cap_offs;
    int n_shards;
} split_buf;

typedef struct shard_rec {
    char name[32];
    int split;
    int64_t tokens, docs;
} shard_rec;

typedef struct prep {
    const qtx_prep_options *o;
    qtx_prep_stats *st;
    qtx_tokenizer *tok;
    uint32_t eos;
    char tmp_dir[PATH_CAP];
    split_buf split[2];
    shard_rec *shards;
    int n_shards, cap_shards;
    int64_t doc_index;
    uint64_t split_stream;
} prep;

static const char *SPLIT_NAME[2] = {"train", "val"};

static void path_join(char *dst, const char *dir, const char *name) {
    int n = snprintf(dst, PATH_CAP, "%s/%s", dir, name);
    QTX_CHECK(n > 0 && n < PATH_CAP, "path too long: %s/%s", dir, name);
}

/* Our own output names: index.json, tokenizer.json, {train,val}_NNNNN.h5. */
static int is_output_name(const char *n) {
    if (!strcmp(n, "index.json") || !strcmp(n, "tokenizer.json")) return 1;
    size_t len = strlen(n);
    return len > 3 && !strcmp(n + len - 3, ".h5") &&
           (!strncmp(n, "train_", 6) || !strncmp(n, "val_", 4));
}

/* Existing outputs in dir: checks (force == 0) or removes them (force == 1). A tokenizer.json
 * identical to the one in use is no conflict (it may be the very file given to --tokenizer). */
static int old_outputs(const char *dir, int force, const char *tok_hash, qtx_err *e) {
    DIR *d = opendir(dir);
    if (!d) return qtx_fail(e, QTX_ERR_INPUT, "%s: cannot list: %s", dir, strerror(errno));
    int rc = QTX_OK;
    struct dirent *de;
    char p[PATH_CAP], first[256] = "";
    while ((de = readdir(d))) {
        if (!is_output_name(de->d_name)) continue;
        path_join(p, dir, de->d_name);
        if (!force) {
            char hex[65];
            qtx_err ignored;
            if (!strcmp(de->d_name, "tokenizer.json") && !qtx_sha256_file(p, hex, &ignored) &&
                !strcmp(hex, tok_hash))
                continue;
            /* name the first in sorted order, so the message does not depend on readdir */
            if (!first[0] || strcmp(de->d_name, first) < 0)
                snprintf(first, sizeof first, "%s", de->d_name);
        } else if (unlink(p)) {
            rc = qtx_fail(e, QTX_ERR_RUNTIME, "%s: cannot remove: %s", p, strerror(errno));
            break;
        }
    }
    closedir(d);
    if (!rc && first[0])
        rc = qtx_fail(e, QTX_ERR_INPUT,
                      "%s already holds prepared data (%s); pass --force to replace it or choose "
                      "another -o",
                      dir, first);
    return rc;
}

/* Removes the staging directory and everything in it (only our files are ever there). */
static void remove_tmp(prep *pp) {
    if (!pp->tmp_dir[0]) return;
    DIR *d = opendir(pp->tmp_dir);
    if (d) {
        struct dirent *de;
        char p[PATH_CAP];
        while ((de = readdir(d))) {
            if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
            path_join(p, pp->tmp_dir, de->d_name);
            unlink(p);
        }
        closedir(d);
    }
    rmdir(pp->tmp_dir);
    pp->tmp_dir[0] = 0;
}

/* ---- shards ---------------------------------------------------------------------------- */

static int flush_split(prep *pp, int which, qtx_err *e) {
    split_buf *b = &pp->split[which];
    if (!b->n_docs) return QTX_OK;
    if (pp->n_shards == pp->cap_shards) {
        pp->cap_shards = pp->cap_shards ? pp->cap_shards * 2 : 16;
        pp->shards = qtx_realloc(pp->shards, (size_t)pp->cap_shards * sizeof *pp->shards);
    }
    shard_rec *r = &pp->shards[pp->n_shards];
    snprintf(r->name, sizeof r->name, "%s_%05d.h5", SPLIT_NAME[which], b->n_shards);
    r->split = which;
    r->tokens = (int64_t)b->tokens.n;
    r->docs = b->n_docs;
    qtx_shard_meta meta = {.format_version = QTX_SHARD_FORMAT_VERSION,
                           .vocab_size = qtx_tokenizer_vocab_size(pp->tok),
                           .eos_id = pp->eos};
    snprintf(meta.tokenizer_hash, sizeof meta.tokenizer_hash, "%s", qtx_tokenizer_hash(pp->tok));
    char path[PATH_CAP];
    path_join(path, pp->tmp_dir, r->name);
    int rc = qtx_shard_write(path, b->tokens.v, (int64_t)b->tokens.n, b->offs, b->n_docs, &meta, e);
    if (rc) return rc;
    pp->n_shards++;
    pp->st->shards[which]++;
    b->n_shards++;
    b->tokens.n = 0;
    b->n_docs = 0;
    b->offs[0] = 0;
    return QTX_OK;
}

/* Appends one encoded document (its pieces' ids, then EOS) to its split. */
static int add_doc(prep *pp, const qtx_ids *parts, size_t n_parts, qtx_err *e) {
    const uint64_t idx = (uint64_t)pp->doc_index++;
    const int which = pp->o->val_fraction > 0 &&
                      qtx_rng_uniform(pp->o->seed, pp->split_stream, idx) < pp->o->val_fraction;
    split_buf *b = &pp->split[which];
    size_t n = 1;
    for (size_t i = 0; i < n_parts; i++) n += parts[i].n;
    if (b->n_docs && (int64_t)(b->tokens.n + n) > pp->o->shard_tokens) {
        int rc = flush_split(pp, which, e);
        if (rc) return rc;
    }
    if (b->tokens.n + n > b->tokens.cap) {
        size_t cap = b->tokens.cap ? b->tokens.cap : 1 << 16;
        while (cap < b->tokens.n + n) cap *= 2;
        b->tokens.v = qtx_realloc(b->tokens.v, cap * sizeof *b->tokens.v);
        b->tokens.cap = cap;
    }
    for (size_t i = 0; i < n_parts; i++) {
        if (!parts[i].n) continue;
        memcpy(b->tokens.v + b->tokens.n, parts[i].v, parts[i].n * sizeof *parts[i].v);
        b->tokens.n += parts[i].n;
    }
    b->tokens.v[b->tokens.n++] = pp->eos;
    if (b->n_docs + 2 > b->cap_offs) {
        b->cap_offs = b->cap_offs ? b->cap_offs * 2 : 4096;
        b->offs = qtx_realloc(b->offs, (size_t)b->cap_offs * sizeof *b->offs);
    }
    b->offs[++b->n_docs] = (int64_t)b->tokens.n;
    pp->st->docs[which]++;
    pp->st->tokens[which] += (int64_t)n;
    return QTX_OK;
}

/* ---- index.json and the tokenizer copy ------------------------------------------------- */

static int write_file(const char *path, const char *data, size_t n, qtx_err *e) {
    FILE *f = fopen(path, "wb");
    if (!f) return qtx_fail(e, QTX_ERR_RUNTIME, "%s: cannot create: %s", path, strerror(errno));
    int ok = fwrite(data, 1, n, f) == n;
    ok = fclose(f) == 0 && ok;
    if (!ok) return qtx_fail(e, QTX_ERR_RUNTIME, "%s: cannot write: %s", path, strerror(errno));
    return QTX_OK;
}

/* Copies the tokenizer file byte for byte, checking it is still the file that was loaded. */
static int copy_tokenizer(prep *pp, qtx_err *e) {
    FILE *f = fopen(pp->o->tokenizer, "rb");
    if (!f)
        return qtx_fail(e, QTX_ERR_INPUT, "%s: cannot open: %s", pp->o->tokenizer, strerror(errno));
    qtx_bytes b = {0};
    char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) qtx_bytes_append(&b, buf, n);
    fclose(f);
    char hex[65];
    qtx_err tmp;
    char path[PATH_CAP];
    path_join(path, pp->tmp_dir, "tokenizer.json");
    int rc = write_file(path, b.p ? b.p : "", b.n, e);
    if (!rc && (qtx_sha256_file(path, hex, &tmp) || strcmp(hex, qtx_tokenizer_hash(pp->tok))))
        rc = qtx_fail(e, QTX_ERR_INPUT, "%s changed while qtx prep was running; run it again",
                      pp->o->tokenizer);
    qtx_bytes_free(&b);
    return rc;
}

static int write_index(prep *pp, qtx_err *e) {
    const qtx_prep_options *o = pp->o;
    const qtx_prep_stats *st = pp->st;
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "format", "qtx-prep");
    cJSON_AddNumberToObject(j, "version", 1);
    cJSON_AddStringToObject(j, "tokenizer", "tokenizer.json");
    cJSON_AddStringToObject(j, "tokenizer_hash", qtx_tokenizer_hash(pp->tok));
    cJSON_AddNumberToObject(j, "vocab_size", (double)qtx_tokenizer_vocab_size(pp->tok));
    cJSON_AddNumberToObject(j, "eos_id", pp->eos);
    cJSON_AddStringToObject(j, "dtype",
                            qtx_tokenizer_vocab_size(pp->tok) <= 65535 ? "uint16" : "uint32");
    char seed[32];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)o->seed);
    cJSON_AddStringToObject(j, "seed", seed); /* a string: 64 bits do not fit a double */
    cJSON_AddNumberToObject(j, "val_fraction", o->val_fraction);
    cJSON_AddNumberToObject(j, "shard_tokens", (double)o->shard_tokens);
    cJSON *inputs = cJSON_AddArrayToObject(j, "inputs");
    for (int i = 0; i < o->n_inputs; i++)
        cJSON_AddItemToArray(inputs, cJSON_CreateString(o->inputs[i]));
    cJSON_AddNumberToObject(j, "skipped_lines", (double)st->bad_lines);
    for (int s = 0; s < 2; s++) {
        cJSON *x = cJSON_AddObjectToObject(j, SPLIT_NAME[s]);
        cJSON_AddNumberToObject(x, "documents", (double)st->docs[s]);
        cJSON_AddNumberToObject(x, "tokens", (double)st->tokens[s]);
        cJSON_AddNumberToObject(x, "shards", (double)st->shards[s]);
    }
    cJSON *shards = cJSON_AddArrayToObject(j, "shards");
    for (int i = 0; i < pp->n_shards; i++) {
        cJSON *x = cJSON_CreateObject();
        cJSON_AddStringToObject(x, "file", pp->shards[i].name);
        cJSON_AddStringToObject(x, "split", SPLIT_NAME[pp->shards[i].split]);
        cJSON_AddNumberToObject(x, "tokens", (double)pp->shards[i].tokens);
        cJSON_AddNumberToObject(x, "documents", (double)pp->shards[i].docs);
        cJSON_AddItemToArray(shards, x);
    }
    char *text = cJSON_Print(j);
    cJSON_Delete(j);
    QTX_CHECK(text, "out of memory printing index.json");
    qtx_bytes b = {0};
    qtx_bytes_append(&b, text, strlen(text));
    qtx_bytes_append(&b, "\n", 1);
    cJSON_free(text);
    char path[PATH_CAP];
    path_join(path, pp->tmp_dir, "index.json");
    int rc = write_file(path, b.p, b.n, e);
    qtx_bytes_free(&b);
    return rc;
}

/* Moves the staged files into out_dir: shards first, index.json last, so a reader that sees
 * the index sees everything it lists. */
static int publish(prep *pp, qtx_err *e) {
    const char *dir = pp->o->out_dir;
    char from[PATH_CAP], to[PATH_CAP];
    for (int i = 0; i <= pp->n_shards + 1; i++) {
        const char *name = i < pp->n_shards    ? pp->shards[i].name
                           : i == pp->n_shards ? "tokenizer.json"
                                               : "index.json";
        path_join(from, pp->tmp_dir, name);
        path_join(to, dir, name);
        if (rename(from, to))
            return qtx_fail(e, QTX_ERR_RUNTIME, "cannot move %s to %s: %s", from, to,
                            strerror(errno));
    }
    rmdir(pp->tmp_dir);
    pp->tmp_dir[0] = 0;
    return QTX_OK;
}

/* ---- the run --------------------------------------------------------------------------- */

typedef struct unit {
    size_t doc;
    const char *p;
    size_t n;
} unit;

static void progress_line(const prep *pp, int64_t bytes, double t0, int final) {
    double dt = qtx_now_s() - t0;
    double mb = (double)bytes / 1e6;
    fprintf(stderr, "\rqtx prep: %.1f MB read, %.1f MB/s, %lld documents, %lld tokens%s", mb,
            dt > 0 ? mb / dt : 0.0, (long long)(pp->st->docs[0] + pp->st->docs[1]),
            (long long)(pp->st->tokens[0] + pp->st->tokens[1]), final ? "\n" : "");
    fflush(stderr);
}

static int run(prep *pp, qtx_docsrc *src, qtx_err *e) {
    const qtx_prep_options *o = pp->o;
    const int nt = o->n_threads > 0 ? o->n_threads : 1;
    const int live = o->progress >= 2 && isatty(2);
    qtx_encoder **enc = qtx_calloc((size_t)nt, sizeof *enc);
    for (int i = 0; i < nt; i++) enc[i] = qtx_encoder_new(pp->tok);
    unit *units = NULL;
    qtx_ids *ids = NULL;
    size_t cap_units = 0;
    size_t cap_docs = 1024; /* grows with the largest batch of documents */
    size_t *first_unit = qtx_malloc(cap_docs * sizeof *first_unit);
    int rc = QTX_OK;
    const double t0 = qtx_now_s();
    double last = t0;
    for (;;) {
        const qtx_doc *docs;
        size_t n_docs;
        rc = qtx_docsrc_next(src, BATCH_BYTES, &docs, &n_docs, e);
        if (rc || !n_docs) break;
        if (n_docs + 1 > cap_docs) {
            cap_docs = 2 * (n_docs + 1);
            first_unit = qtx_realloc(first_unit, cap_docs * sizeof *first_unit);
        }
        size_t n_units = 0;
        for (size_t d = 0; d < n_docs; d++) {
            first_unit[d] = n_units;
            for (size_t pos = 0; pos < docs[d].n;) {
                size_t end = docs[d].n - pos <= 2 * UNIT_BYTES
                                 ? docs[d].n
                                 : qtx_tokenizer_split_point(pp->tok, docs[d].p, docs[d].n,
                                                             pos + UNIT_BYTES);
                if (n_units == cap_units) {
                    size_t old = cap_units;
                    cap_units = cap_units ? cap_units * 2 : 4096;
                    units = qtx_realloc(units, cap_units * sizeof *units);
                    ids = qtx_realloc(ids, cap_units * sizeof *ids);
                    memset(ids + old, 0, (cap_units - old) * sizeof *ids);
                }
                units[n_units++] = (unit){d, docs[d].p + pos, end - pos};
                pos = end;
            }
        }
        first_unit[n_docs] = n_units;
#pragma omp parallel for num_threads(nt) schedule(dynamic, 16)
        for (long k = 0; k < (long)n_units; k++) {
            int tid = 0;
#ifdef _OPENMP
            tid = omp_get_thread_num();
#endif
            ids[k].n = 0;
            qtx_encode(enc[tid], units[k].p, units[k].n, &ids[k]);
        }
        for (size_t d = 0; d < n_docs && !rc; d++)
            rc = add_doc(pp, ids + first_unit[d], first_unit[d + 1] - first_unit[d], e);
        if (rc) break;
        if (live && qtx_now_s() - last > 0.2) {
            progress_line(pp, qtx_docsrc_bytes(src), t0, 0);
            last = qtx_now_s();
        }
    }
    if (live) progress_line(pp, qtx_docsrc_bytes(src), t0, 1);
    for (size_t k = 0; k < cap_units; k++) qtx_ids_free(&ids[k]);
    free(ids);
    free(units);
    free(first_unit);
    for (int i = 0; i < nt; i++) qtx_encoder_free(enc[i]);
    free(enc);
    return rc;
}

int qtx_prep_run(const qtx_prep_options *o, qtx_prep_stats *st, qtx_err *e) {
    memset(st, 0, sizeof *st);
    const double t0 = qtx_now_s();
    if (o->n_inputs <= 0) return qtx_fail(e, QTX_ERR_INPUT, "no input files");
    if (!(o->val_fraction >= 0 && o->val_fraction < 1))
        return qtx_fail(e, QTX_ERR_INPUT, "--val-fraction must be in [0, 1), not %g",
                        o->val_fraction);
    if (o->shard_tokens <= 0) return qtx_fail(e, QTX_ERR_INPUT, "--shard-tokens must be positive");
    prep pp = {.o = o, .st = st, .split_stream = qtx_rng_stream("prep.val_split")};
    int rc = qtx_tokenizer_load(o->tokenizer, &pp.tok, e);
    if (rc) return rc;
    int64_t eos = qtx_tokenizer_eos_id(pp.tok);
    if (eos < 0) {
        qtx_tokenizer_free(pp.tok);
        return qtx_fail(e, QTX_ERR_INPUT,
                        "%s: no %s token; qtx prep ends every document with it (train the "
                        "tokenizer with qtx tokenizer train)",
                        o->tokenizer, QTX_EOS_TOKEN);
    }
    pp.eos = (uint32_t)eos;
    qtx_docsrc_options dso = {o->doc_sep, o->field, o->skip_bad};
    qtx_docsrc *src = NULL;
    rc = qtx_docsrc_open(o->inputs, o->n_inputs, &dso, &src, e);
    struct stat dst;
    const int dir_existed = stat(o->out_dir, &dst) == 0;
    if (!rc) rc = qtx_make_dirs(o->out_dir, e);
    if (!rc && !o->force) rc = old_outputs(o->out_dir, 0, qtx_tokenizer_hash(pp.tok), e);
    if (!rc) {
        snprintf(pp.tmp_dir, sizeof pp.tmp_dir, "%s/.qtx-prep.%ld", o->out_dir, (long)getpid());
        if (mkdir(pp.tmp_dir, 0777)) {
            rc = qtx_fail(e, QTX_ERR_INPUT, "%s: cannot create directory: %s", pp.tmp_dir,
                          strerror(errno));
            pp.tmp_dir[0] = 0;
        }
    }
    for (int s = 0; s < 2; s++) {
        pp.split[s].cap_offs = 4096;
        pp.split[s].offs = qtx_calloc(4096, sizeof(int64_t));
    }
    if (!rc) rc = run(&pp, src, e);
    if (src) st->bad_lines = qtx_docsrc_bad_lines(src);
    if (src) st->bytes = qtx_docsrc_bytes(src);
    if (!rc && st->docs[0] + st->docs[1] == 0)
        rc = qtx_fail(e, QTX_ERR_INPUT, "empty corpus: the inputs hold no documents%s",
                      st->bad_lines ? " (every JSONL line was skipped as malformed)" : "");
    if (!rc) rc = flush_split(&pp, 0, e);
    if (!rc) rc = flush_split(&pp, 1, e);
    if (!rc) rc = copy_tokenizer(&pp, e);
    if (!rc) rc = write_index(&pp, e);
    if (!rc && o->force) rc = old_outputs(o->out_dir, 1, NULL, e);
    if (!rc) rc = publish(&pp, e);
    remove_tmp(&pp); /* on failure: nothing partial is left behind */
    if (rc && !dir_existed) rmdir(o->out_dir);
    for (int s = 0; s < 2; s++) {
        qtx_ids_free(&pp.split[s].tokens);
        free(pp.split[s].offs);
    }
    free(pp.shards);
    qtx_docsrc_close(src);
    qtx_tokenizer_free(pp.tok);
    st->seconds = qtx_now_s() - t0;
    return rc;
}
