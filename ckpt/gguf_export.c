/* gguf_export.c: qtx_gguf_export (gguf_export.h): manifest -> model config, tokenizer.json ->
 * the tokenizer.ggml.* arrays, every parameter gathered whole -> converted to its GGUF type ->
 * gguf_write.h, written atomically. */
#include "gguf_export.h"

#include <errno.h>
#include <inttypes.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "ckpt_internal.h"
#include "ckpt_store.h"
#include "ckpt_train.h"
#include "gguf_write.h"
#include "log.h"
#include "params.h"
#include "tokenizer.h"

#define TOKENIZER_MAX ((int64_t)1 << 30)

/* llama.cpp's token types (llama_token_type / gguf's TokenType). */
enum { TOKEN_NORMAL = 1, TOKEN_CONTROL = 3, TOKEN_UNUSED = 5 };

int qtx_export_parse_quant(const char *s, qtx_qtype *out) {
    static const struct {
        const char *name;
        qtx_qtype t;
    } Q[] = {{"f32", QTX_Q_F32}, {"f16", QTX_Q_F16}, {"q8_0", QTX_Q_Q8_0}, {"q4_0", QTX_Q_Q4_0}};
    for (size_t i = 0; i < sizeof Q / sizeof Q[0]; i++)
        if (!strcmp(s, Q[i].name)) {
            *out = Q[i].t;
            return 0;
        }
    return -1;
}

/* llama.cpp's general.file_type (llama_ftype) of a file whose 2-D weights are t. */
static uint32_t file_type(qtx_qtype t) {
    switch (t) {
    case QTX_Q_F32:
        return 0;
    case QTX_Q_F16:
        return 1;
    case QTX_Q_Q4_0:
        return 2;
    case QTX_Q_Q8_0:
        return 7;
    case QTX_Q_Q4_0R: /* in memory only: never exported */
    case QTX_Q_Q8_0R:
        break;
    }
    return 0;
}

static int type_slot(qtx_qtype t) {
    return t == QTX_Q_F32 ? 0 : t == QTX_Q_F16 ? 1 : t == QTX_Q_Q4_0 ? 2 : 3;
}

/* ---- the model config from the manifest --------------------------------------------------- */

/* ---- the vocabulary ----------------------------------------------------------------------- */

typedef struct vocab {
    int64_t n;     /* = the model's vocab_size */
    char **tokens; /* n strings (owned) */
    size_t *lens;
    int32_t *types;
    int64_t n_merges;
    char **merges;     /* "left right" (owned) */
    int64_t eos;       /* -1: none */
    int64_t n_padding; /* ids with no token in tokenizer.json */
} vocab;

static void vocab_free(vocab *v) {
    for (int64_t i = 0; i < v->n && v->tokens; i++) free(v->tokens[i]);
    for (int64_t i = 0; i < v->n_merges; i++) free(v->merges[i]);
    free(v->tokens);
    free(v->lens);
    free(v->types);
    free(v->merges);
}

static char *dup_str(const char *s) {
    char *d = strdup(s);
    QTX_CHECK(d, "out of memory");
    return d;
}

/* The token strings, types and merges of tokenizer.json (json, checked by the tokenizer
 * loader already), for a model of n_vocab ids. */
static int read_vocab(const char *name, const char *json, size_t len, int64_t n_vocab, vocab *v,
                      qtx_err *e) {
    qtx_tokenizer *tok;
    int rc = qtx_tokenizer_parse(json, len, name, &tok, e);
    if (rc) return rc;
    const int64_t tok_n = qtx_tokenizer_vocab_size(tok);
    v->eos = qtx_tokenizer_eos_id(tok);
    qtx_tokenizer_free(tok);
    if (tok_n > n_vocab)
        return qtx_fail(e, QTX_ERR_INPUT,
                        "%s has %" PRId64 " tokens but the model's vocab_size is %" PRId64
                        "; export with the tokenizer the model was trained with",
                        name, tok_n, n_vocab);
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!root) return qtx_fail(e, QTX_ERR_INPUT, "%s: not valid JSON", name);
    v->n = n_vocab;
    v->tokens = qtx_calloc((size_t)n_vocab, sizeof *v->tokens);
    v->lens = qtx_calloc((size_t)n_vocab, sizeof *v->lens);
    v->types = qtx_calloc((size_t)n_vocab, sizeof *v->types);
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON *vo = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *it;
    cJSON_ArrayForEach(it, vo) {
        if (!cJSON_IsNumber(it) || !(it->valuedouble >= 0 && it->valuedouble < (double)n_vocab))
            continue;
        const int64_t id = (int64_t)it->valuedouble;
        if (v->tokens[id]) continue;
        v->tokens[id] = dup_str(it->string);
        v->types[id] = TOKEN_NORMAL;
    }
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(root, "added_tokens")) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(it, "id");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(it, "content");
        if (!cJSON_IsNumber(id) || !cJSON_IsString(content) ||
            !(id->valuedouble >= 0 && id->valuedouble < (double)n_vocab))
            continue;
        const int64_t k = (int64_t)id->valuedouble;
        free(v->tokens[k]);
        v->tokens[k] = dup_str(content->valuestring);
        v->types[k] = TOKEN_CONTROL;
    }
    for (int64_t i = 0; i < n_vocab; i++) {
        if (!v->tokens[i]) { /* llama.cpp's converters fill gaps the same way */
            char pad[32];
            snprintf(pad, sizeof pad, "[PAD%" PRId64 "]", i);
            v->tokens[i] = dup_str(pad);
            v->types[i] = TOKEN_UNUSED;
            v->n_padding++;
        }
        v->lens[i] = strlen(v->tokens[i]);
    }
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    v->merges = qtx_calloc((size_t)cJSON_GetArraySize(merges) + 1, sizeof *v->merges);
    cJSON_ArrayForEach(it, merges) {
        char *m = NULL;
        if (cJSON_IsString(it)) {
            m = dup_str(it->valuestring);
        } else if (cJSON_GetArraySize(it) == 2 && cJSON_IsString(cJSON_GetArrayItem(it, 0)) &&
                   cJSON_IsString(cJSON_GetArrayItem(it, 1))) {
            const char *a = cJSON_GetArrayItem(it, 0)->valuestring,
                       *b = cJSON_GetArrayItem(it, 1)->valuestring;
            m = qtx_malloc(strlen(a) + strlen(b) + 2);
            sprintf(m, "%s %s", a, b);
        }
        if (m) v->merges[v->n_merges++] = m;
    }
    cJSON_Delete(root);
    return 0;
}

/* Reads the tokenizer: the given file, or the checkpoint's copy checked against the manifest's
 * size and CRC-32. */
static int load_tokenizer(const char *dir, const cJSON *meta, const char *override, char *path,
                          char **json, int64_t *len, qtx_err *e) {
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(meta, "tokenizer");
    const cJSON *file = cJSON_GetObjectItemCaseSensitive(t, "file");
    if (override) {
        snprintf(path, CKPT_PATH_MAX, "%s", override);
    } else if (!cJSON_IsString(file) || strchr(file->valuestring, '/') ||
               ckpt_path(path, dir, file->valuestring)) {
        return qtx_fail(e, QTX_ERR_INPUT,
                        "checkpoint %s has no tokenizer.json (it was saved without one); pass "
                        "--tokenizer FILE (the tokenizer.json the model was trained with)",
                        dir);
    }
    if (ckpt_read_all(path, TOKENIZER_MAX, json, len))
        return qtx_fail(e, QTX_ERR_INPUT, "%s: cannot read: %s", path, strerror(errno));
    if (override) return 0;
    int64_t bytes;
    const uint32_t crc = ckpt_crc32(0, *json, (size_t)*len);
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(t, "crc32");
    if (!ckpt_json_i64(t, "bytes", 0, CKPT_JSON_INT_MAX, &bytes) && bytes != *len)
        return qtx_fail(e, QTX_ERR_INPUT,
                        "checkpoint %s: %s is %" PRId64 " bytes, the manifest says %" PRId64
                        "; " CKPT_FIX,
                        dir, file->valuestring, *len, bytes);
    if (cJSON_IsNumber(c) && (uint32_t)c->valuedouble != crc)
        return qtx_fail(e, QTX_ERR_INPUT,
                        "checkpoint %s: %s: CRC mismatch (expected 0x%08x, got 0x%08x): the file "
                        "is corrupt; " CKPT_FIX,
                        dir, file->valuestring, (uint32_t)c->valuedouble, crc);
    return 0;
}

/* ---- tensors ------------------------------------------------------------------------------ */

/* One parameter as written: its GGUF bytes (owned). */
typedef struct out_tensor {
    void *data;
} out_tensor;

/* Reads parameter d whole, converts it, and adds it to w. */
static int export_tensor(qtx_ckpt_reader *r, const char *dir, const qtx_tensor_desc *d,
                         qtx_qtype quant, qtx_gguf_writer *w, out_tensor *o, qtx_export_stats *st,
                         qtx_err *e) {
    int64_t shape[2];
    if (!qtx_ckpt_has(r, "param", d->name, shape))
        return qtx_fail(e, QTX_ERR_INPUT,
                        "checkpoint %s has no param %s; it is incomplete or not a qtx train "
                        "checkpoint of this model",
                        dir, d->name);
    if (shape[0] != d->shape[0] || shape[1] != d->shape[1])
        return qtx_fail(e, QTX_ERR_INPUT,
                        "checkpoint %s: param %s is [%" PRId64 ", %" PRId64 "] but its model "
                        "needs [%" PRId64 ", %" PRId64 "]",
                        dir, d->name, shape[0], shape[1], d->shape[0], d->shape[1]);
    const int64_t rows = shape[0], cols = shape[1], n = rows * cols;
    const int64_t block[4] = {0, 0, rows, cols};
    float *x = qtx_malloc((size_t)n * sizeof(float));
    int rc = qtx_ckpt_read(r, "param", d->name, shape, block, 0, n, x, e);
    if (rc) {
        free(x);
        return rc;
    }
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++) bad += !isfinite(x[i]);
    if (bad) {
        free(x);
        return qtx_fail(e, QTX_ERR_INPUT,
                        "checkpoint %s: param %s holds %" PRId64 " non-finite values; export an "
                        "earlier checkpoint",
                        dir, d->name, bad);
    }
    /* GGUF order: ne[0] is the contiguous (column) dimension */
    const int n_dims = d->ndim;
    const int64_t ne[2] = {d->ndim == 1 ? rows : cols, rows};
    char name[QTX_TENSOR_NAME_MAX + 8];
    snprintf(name, sizeof name, "%s.weight", d->name);
    qtx_qtype t = d->ndim == 1 ? QTX_Q_F32 : quant;
    if ((t == QTX_Q_Q8_0 || t == QTX_Q_Q4_0) && ne[0] % QTX_QK) {
        qtx_log_info("export: %s has ne[0] = %" PRId64 ", not a multiple of %d: written as f16 "
                     "instead of %s",
                     name, ne[0], QTX_QK, t == QTX_Q_Q8_0 ? "q8_0" : "q4_0");
        t = QTX_Q_F16;
    }
    size_t nbytes;
    if (t == QTX_Q_F32) {
        o->data = x;
        nbytes = (size_t)n * sizeof(float);
    } else if (t == QTX_Q_F16) {
        qtx_f16 *h = qtx_malloc((size_t)n * sizeof *h);
        for (int64_t i = 0; i < n; i++) h[i] = qtx_f32_to_f16(x[i]);
        free(x);
        o->data = h;
        nbytes = (size_t)n * sizeof *h;
    } else {
        const qtx_qtype_traits *tr = qtx_qtype_get(t);
        QTX_CHECK(tr && tr->quantize_row, "no quantizer for type %d", (int)t);
        const size_t row_bytes = (size_t)(cols / tr->block_size) * tr->block_bytes;
        unsigned char *q = qtx_malloc((size_t)rows * row_bytes);
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < rows; i++) tr->quantize_row(x + i * cols, q + i * row_bytes, cols);
        free(x);
        o->data = q;
        nbytes = (size_t)rows * row_bytes;
    }
    st->n_by_type[type_slot(t)]++;
    st->n_params += n;
    st->n_tensors++;
    return qtx_gguf_add_tensor(w, name, n_dims, ne, t, o->data, nbytes, e);
}

/* general.name: the run's out_dir name for out_dir/ckpt/step_N, else the directory's name. */
static void default_name(const char *dir, char *out, size_t n) {
    char a[CKPT_PATH_MAX], b[CKPT_PATH_MAX], c[CKPT_PATH_MAX];
    snprintf(a, sizeof a, "%s", dir);
    snprintf(b, sizeof b, "%s", dirname(a)); /* .../ckpt */
    snprintf(c, sizeof c, "%s", b);
    if (!strcmp(basename(c), "ckpt")) {
        snprintf(c, sizeof c, "%s", dirname(b)); /* out_dir */
        snprintf(a, sizeof a, "%s", c);
        const char *run = basename(a);
        if (strcmp(run, ".") && strcmp(run, "/")) {
            snprintf(out, n, "%s", run);
            return;
        }
    }
    snprintf(a, sizeof a, "%s", dir);
    snprintf(out, n, "%s", basename(a));
}

int qtx_gguf_export(const qtx_export_options *o, qtx_export_stats *st_out, qtx_err *e) {
    qtx_export_stats st_local = {0}, *st = st_out ? st_out : &st_local;
    memset(st, 0, sizeof *st);
    st->step = -1;
    char *dir = st->dir;
    int rc = qtx_ckpt_resolve(o->ckpt, NULL, dir, sizeof st->dir, e);
    if (rc) return rc;
    struct stat sb;
    if (!o->force && lstat(o->out, &sb) == 0)
        return qtx_fail(e, QTX_ERR_INPUT,
                        "%s exists; pass --force to replace it, or choose another output path",
                        o->out);
    qtx_ckpt_reader *r;
    if ((rc = qtx_ckpt_open(&r, dir, e))) return rc;
    const cJSON *meta = qtx_ckpt_meta(r);
    int64_t step;
    if (!ckpt_json_i64(meta, "step", 0, INT32_MAX, &step)) st->step = (int)step;

    qtx_model_config cfg;
    vocab v = {0};
    char *json = NULL, tok_path[CKPT_PATH_MAX];
    int64_t json_len = 0;
    qtx_gguf_writer *w = NULL;
    qtx_param_layout l = {0};
    out_tensor *outs = NULL;
    rc = qtx_ckpt_model_from_meta(meta, dir, &cfg, e);
    if (!rc) rc = load_tokenizer(dir, meta, o->tokenizer, tok_path, &json, &json_len, e);
    if (!rc) rc = read_vocab(tok_path, json, (size_t)json_len, cfg.vocab_size, &v, e);
    if (rc) goto done;
    if (v.n_padding)
        qtx_log_info("export: %" PRId64 " of the model's %d ids have no token in %s: written as "
                     "unused [PADn] tokens",
                     v.n_padding, cfg.vocab_size, tok_path);

    w = qtx_gguf_writer_new();
    char name[256];
    if (o->name)
        snprintf(name, sizeof name, "%s", o->name);
    else
        default_name(dir, name, sizeof name);
    qtx_gguf_set_str(w, "general.architecture", "llama");
    qtx_gguf_set_str(w, "general.name", name);
    qtx_gguf_set_u32(w, "general.file_type", file_type(o->quant));
    qtx_gguf_set_u32(w, "general.quantization_version", 2);
    qtx_gguf_set_u32(w, "llama.vocab_size", (uint32_t)cfg.vocab_size);
    qtx_gguf_set_u32(w, "llama.context_length", (uint32_t)cfg.max_seq_len);
    qtx_gguf_set_u32(w, "llama.embedding_length", (uint32_t)cfg.dim);
    qtx_gguf_set_u32(w, "llama.block_count", (uint32_t)cfg.n_layers);
    qtx_gguf_set_u32(w, "llama.feed_forward_length", (uint32_t)cfg.ffn_dim);
    qtx_gguf_set_u32(w, "llama.attention.head_count", (uint32_t)cfg.n_heads);
    qtx_gguf_set_u32(w, "llama.attention.head_count_kv", (uint32_t)cfg.n_kv_heads);
    qtx_gguf_set_u32(w, "llama.rope.dimension_count", (uint32_t)(cfg.dim / cfg.n_heads));
    qtx_gguf_set_f32(w, "llama.rope.freq_base", cfg.rope_theta);
    qtx_gguf_set_f32(w, "llama.attention.layer_norm_rms_epsilon", cfg.norm_eps);
    qtx_gguf_set_str(w, "tokenizer.ggml.model", "gpt2");
    qtx_gguf_set_str(w, "tokenizer.ggml.pre", "gpt-2");
    qtx_gguf_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)v.tokens, v.lens,
                         (uint64_t)v.n);
    qtx_gguf_set_arr_i32(w, "tokenizer.ggml.token_type", v.types, (uint64_t)v.n);
    qtx_gguf_set_arr_str(w, "tokenizer.ggml.merges", (const char *const *)v.merges, NULL,
                         (uint64_t)v.n_merges);
    if (v.eos >= 0) {
        /* GPT-2 style: <|endoftext|> ends a document and, with no BOS of its own, starts one */
        qtx_gguf_set_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)v.eos);
        qtx_gguf_set_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)v.eos);
    } else {
        qtx_log_info("export: %s has no %s token: no bos/eos token ids written", tok_path,
                     QTX_EOS_TOKEN);
    }
    /* the model never saw a BOS prepended to a document: llama.cpp must not add one */
    qtx_gguf_set_bool(w, "tokenizer.ggml.add_bos_token", 0);
    qtx_gguf_set_bool(w, "tokenizer.ggml.add_eos_token", 0);
    /* The SHA-256 of the training tokenizer.json, which token shards carry: qtx eval checks
     * data against it (llama.cpp ignores keys it does not know). */
    const cJSON *th = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(meta, "tokenizer"), "hash");
    if (cJSON_IsString(th) && th->valuestring[0])
        qtx_gguf_set_str(w, "qtx.tokenizer.sha256", th->valuestring);

    const qtx_shard_spec spec = qtx_shard_spec_full(&cfg);
    qtx_layout_build(&l, &cfg, &spec);
    outs = qtx_calloc((size_t)l.n_tensors, sizeof *outs);
    for (int i = 0; i < l.n_tensors && !rc; i++)
        rc = export_tensor(r, dir, &l.tensors[i], o->quant, w, &outs[i], st, e);
    if (!rc) rc = qtx_gguf_write(w, o->out, o->force, e);
    if (!rc) st->bytes = qtx_gguf_writer_size(w);
done:
    for (int i = 0; outs && i < l.n_tensors; i++) free(outs[i].data);
    free(outs);
    qtx_layout_free(&l);
    qtx_gguf_writer_free(w);
    vocab_free(&v);
    free(json);
    qtx_ckpt_close(r);
    return rc;
}
