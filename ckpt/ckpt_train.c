/* ckpt_train.c: what a training rank saves and loads (ckpt_train.h). */
#include "ckpt_train.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ckpt_internal.h"
#include "ckpt_store.h"
#include "log.h"
#include "sys.h"

/* The TP block of the global tensor this rank's slice of t is. */
static void tp_block(const qtx_tensor_desc *t, int64_t block[4]) {
    block[0] = t->split_dim == 0 ? t->split_offset : 0;
    block[1] = t->split_dim == 1 ? t->split_offset : 0;
    block[2] = t->local[0];
    block[3] = t->local[1];
}

static qtx_ckpt_piece piece_of(const qtx_tensor_desc *t, const char *kind, int64_t lo, int64_t hi) {
    qtx_ckpt_piece p;
    memset(&p, 0, sizeof p);
    snprintf(p.kind, sizeof p.kind, "%s", kind);
    snprintf(p.name, sizeof p.name, "%s", t->name);
    p.shape[0] = t->shape[0];
    p.shape[1] = t->shape[1];
    tp_block(t, p.block);
    p.flat[0] = lo - t->offset;
    p.flat[1] = hi - t->offset;
    return p;
}

/* This rank's DP part of bucket b: what it writes (the whole bucket is split over DP even
 * at ZeRO stage 0, where every replica holds all of it, so the write is parallel). */
static void dp_part(const qtx_zero *z, const qtx_bucket *b, int64_t *lo, int64_t *hi) {
    int64_t at = b->begin;
    for (int r = 0; r < z->g->dp_rank; r++) at += b->counts[r];
    *lo = at;
    *hi = at + b->counts[z->g->dp_rank];
}

/* Whether this rank writes tensor t at all: one holder per element of the global model. */
static int writes_tensor(const qtx_grid *g, const qtx_tensor_desc *t) {
    if (t->split_dim < 0 && g->tp_rank != 0) return 0;
    if (!strcmp(t->name, "token_embd") && !g->spec.has_embedding) return 0; /* tied copy */
    return 1;
}

/* Backend memory seen from the host for the checkpoint: directly on a host-memory backend,
 * else one piece at a time through a host buffer that grows to the largest piece (a tensor or
 * the part of one a rank owns), made per save or load, never in the step loop. One piece in
 * use at a time: each is written or copied in before the next is asked for. */
typedef struct stager {
    qtx_backend *be;
    float *buf;
    size_t cap; /* floats */
} stager;

static float *stage_buf(stager *s, int64_t n) {
    if ((size_t)n > s->cap) {
        free(s->buf);
        s->cap = (size_t)n;
        s->buf = qtx_malloc(s->cap * sizeof(float));
    }
    return s->buf;
}

/* n floats of backend memory at src, readable on the host until the next call. */
static const float *stage_out(stager *s, const float *src, int64_t n) {
    if (s->be->host_memory) return src;
    float *h = stage_buf(s, n);
    s->be->to_host(s->be, h, src, (size_t)n * sizeof(float));
    return h;
}

/* Where to read n floats meant for backend memory at dst; stage_in then puts them there. */
static float *stage_at(stager *s, float *dst, int64_t n) {
    return s->be->host_memory ? dst : stage_buf(s, n);
}
static void stage_in(stager *s, float *dst, int64_t n) {
    if (!s->be->host_memory) s->be->to_device(s->be, dst, s->buf, (size_t)n * sizeof(float));
}

static int write_rank(qtx_engine *eng, const char *tmp, int64_t *bytes, qtx_err *e) {
    const qtx_zero *z = &eng->zero;
    const qtx_param_layout *l = &eng->model.layout;
    qtx_ckpt_writer *w;
    int rc = qtx_ckpt_writer_open(&w, tmp, eng->g->rank, e);
    if (rc) return rc;
    stager st = {&eng->model.be, NULL, 0};
    for (int i = 0; i < z->n_buckets && !rc; i++) {
        const qtx_bucket *b = &z->b[i];
        int64_t plo, phi;
        dp_part(z, b, &plo, &phi);
        for (int k = l->units[i].t_begin; k < l->units[i].t_end && !rc; k++) {
            const qtx_tensor_desc *t = &l->tensors[k];
            const int64_t lo = t->offset > plo ? t->offset : plo;
            const int64_t hi = t->offset + t->numel < phi ? t->offset + t->numel : phi;
            if (lo >= hi || !writes_tensor(eng->g, t)) continue;
            const int64_t pos = b->shard_pos + (lo - b->own_begin);
            qtx_ckpt_piece p = piece_of(t, "param", lo, hi);
            rc = qtx_ckpt_write_piece(w, &p, stage_out(&st, eng->model.params + lo, hi - lo), e);
            p = piece_of(t, "adam_m", lo, hi);
            if (!rc) rc = qtx_ckpt_write_piece(w, &p, stage_out(&st, z->m + pos, hi - lo), e);
            p = piece_of(t, "adam_v", lo, hi);
            if (!rc) rc = qtx_ckpt_write_piece(w, &p, stage_out(&st, z->v + pos, hi - lo), e);
            *bytes += 3 * (hi - lo) * (int64_t)sizeof(float);
        }
    }
    free(st.buf);
    int crc = qtx_ckpt_writer_close(w, e);
    return rc ? rc : crc;
}

static cJSON *model_json(const qtx_model_config *c) {
    cJSON *m = cJSON_CreateObject();
    cJSON_AddNumberToObject(m, "vocab_size", c->vocab_size);
    cJSON_AddNumberToObject(m, "dim", c->dim);
    cJSON_AddNumberToObject(m, "n_layers", c->n_layers);
    cJSON_AddNumberToObject(m, "n_heads", c->n_heads);
    cJSON_AddNumberToObject(m, "n_kv_heads", c->n_kv_heads);
    cJSON_AddNumberToObject(m, "ffn_dim", c->ffn_dim);
    cJSON_AddNumberToObject(m, "max_seq_len", c->max_seq_len);
    cJSON_AddNumberToObject(m, "rope_theta", c->rope_theta);
    cJSON_AddNumberToObject(m, "norm_eps", c->norm_eps);
    cJSON_AddBoolToObject(m, "tie_embeddings", c->tie_embeddings);
    return m;
}

/* Copies the tokenizer into dir and describes it (file, bytes, CRC-32, hash). */
static int copy_tokenizer(const char *src, const char *dir, const char *hash, cJSON *meta,
                          qtx_err *e) {
    cJSON *tok = cJSON_AddObjectToObject(meta, "tokenizer");
    cJSON_AddStringToObject(tok, "hash", hash ? hash : "");
    if (!src || !src[0]) return QTX_OK;
    FILE *f = fopen(src, "rb");
    if (!f) return QTX_OK; /* the data came without one: the hash still identifies it */
    size_t cap = 1 << 16, n = 0;
    char *buf = qtx_malloc(cap);
    size_t got;
    while ((got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) buf = qtx_realloc(buf, cap *= 2);
    }
    fclose(f);
    char path[CKPT_PATH_MAX];
    int rc = QTX_OK;
    if (ckpt_path(path, dir, "tokenizer.json") || ckpt_write_file_sync(path, buf, n))
        rc = qtx_fail(e, QTX_ERR_RUNTIME, "checkpoint %s: writing tokenizer.json: %s", dir,
                      strerror(errno));
    cJSON_AddStringToObject(tok, "file", "tokenizer.json");
    cJSON_AddNumberToObject(tok, "bytes", (double)n);
    cJSON_AddNumberToObject(tok, "crc32", ckpt_crc32(0, buf, n));
    free(buf);
    return rc;
}

static cJSON *build_meta(const qtx_engine *eng, const qtx_ckpt_save_args *a) {
    const qtx_grid *g = eng->g;
    cJSON *meta = cJSON_CreateObject();
    cJSON_AddNumberToObject(meta, "step", a->step);
    cJSON_AddNumberToObject(meta, "skips", a->skips);
    cJSON *ld = cJSON_AddObjectToObject(meta, "loader");
    cJSON_AddNumberToObject(ld, "epoch", (double)a->loader.epoch);
    cJSON_AddNumberToObject(ld, "cursor", (double)a->loader.cursor);
    cJSON_AddItemToObject(meta, "model", model_json(&eng->model.cfg));
    cJSON *lay = cJSON_AddObjectToObject(meta, "layout");
    cJSON_AddNumberToObject(lay, "dp", g->dp_size);
    cJSON_AddNumberToObject(lay, "tp", g->tp_size);
    cJSON_AddNumberToObject(lay, "pp", g->pp_size);
    cJSON_AddNumberToObject(lay, "zero", g->zero);
    /* Adam's step count is `step`: the update of step s used t = s + 1 (skipped ones too). */
    cJSON_AddNumberToObject(meta, "adam_t", a->step);
    if (a->settings) cJSON_AddItemToObject(meta, "settings", cJSON_Duplicate(a->settings, 1));
    return meta;
}

int qtx_ckpt_save(qtx_engine *eng, const qtx_ckpt_save_args *a, double *seconds, int64_t *bytes,
                  qtx_err *e) {
    const qtx_grid *g = eng->g;
    const double t0 = qtx_now_s();
    char name[32], tmp[CKPT_PATH_MAX], final[CKPT_PATH_MAX];
    snprintf(name, sizeof name, "step_%08d", a->step);
    int64_t wrote = 0;
    int rc = QTX_OK, exists = 0;
    if (ckpt_path(final, a->ckpt_root, name) ||
        snprintf(tmp, sizeof tmp, "%s/.tmp_%s", a->ckpt_root, name) >= (int)sizeof tmp)
        rc = qtx_fail(e, QTX_ERR_INPUT, "train.out_dir: checkpoint path too long under %s",
                      a->ckpt_root);
    if (!rc && g->rank == 0) {
        struct stat st;
        exists = stat(final, &st) == 0;
        if (!exists) {
            ckpt_remove_tree(tmp); /* a crashed attempt at this very step */
            rc = qtx_make_dirs(tmp, e);
        }
    }
    qtx_comm_bcast(g->world, &exists, 1, QTX_I32, 0);
    if ((rc = qtx_comm_agree(g->world, rc, e))) return rc;
    if (exists) {
        qtx_log_warn("checkpoint %s exists and is never overwritten; not saving step %d again",
                     final, a->step);
        return QTX_OK;
    }
    rc = write_rank(eng, tmp, &wrote, e);
    if ((rc = qtx_comm_agree(g->world, rc, e))) return rc; /* tmp stays; pruned later */
    if (g->rank == 0) {
        cJSON *meta = build_meta(eng, a);
        rc = copy_tokenizer(a->tokenizer_path, tmp, a->tokenizer_hash, meta, e);
        if (!rc) rc = qtx_ckpt_write_manifest(tmp, g->world_size, meta, e);
        cJSON_Delete(meta);
        if (!rc) rc = qtx_ckpt_publish(tmp, final, e);
        if (!rc) rc = qtx_ckpt_prune(a->ckpt_root, a->keep, a->protect, e);
    }
    rc = qtx_comm_agree(g->world, rc, e);
    if (seconds) *seconds = qtx_now_s() - t0;
    if (bytes) *bytes = wrote;
    return rc;
}

/* ---- load ---------------------------------------------------------------------------------- */

static int model_int(const char *dir, const cJSON *m, const char *key, int64_t lo, int64_t hi,
                     int *out, qtx_err *e) {
    int64_t v;
    if (ckpt_json_i64(m, key, lo, hi, &v))
        return qtx_fail(e, QTX_ERR_INPUT,
                        "checkpoint %s: manifest.json: model.%s is missing or not an integer in "
                        "[%" PRId64 ", %" PRId64 "]; use a checkpoint saved by qtx train",
                        dir, key, lo, hi);
    *out = (int)v;
    return 0;
}

static int model_float(const char *dir, const cJSON *m, const char *key, float *out, qtx_err *e) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(m, key);
    if (!cJSON_IsNumber(v) || !(v->valuedouble > 0) || !isfinite(v->valuedouble))
        return qtx_fail(e, QTX_ERR_INPUT,
                        "checkpoint %s: manifest.json: model.%s is missing or not a positive "
                        "number; use a checkpoint saved by qtx train",
                        dir, key);
    *out = (float)v->valuedouble;
    return 0;
}

int qtx_ckpt_model_from_meta(const cJSON *meta, const char *dir, qtx_model_config *c, qtx_err *e) {
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(meta, "model");
    if (!cJSON_IsObject(m))
        return qtx_fail(e, QTX_ERR_INPUT,
                        "checkpoint %s: manifest.json has no \"model\" object; use a checkpoint "
                        "saved by qtx train",
                        dir);
    memset(c, 0, sizeof *c);
    const int64_t big = (int64_t)1 << 30;
    if (model_int(dir, m, "vocab_size", 1, big, &c->vocab_size, e) ||
        model_int(dir, m, "dim", 1, big, &c->dim, e) ||
        model_int(dir, m, "n_layers", 1, 1 << 20, &c->n_layers, e) ||
        model_int(dir, m, "n_heads", 1, 1 << 20, &c->n_heads, e) ||
        model_int(dir, m, "n_kv_heads", 1, 1 << 20, &c->n_kv_heads, e) ||
        model_int(dir, m, "ffn_dim", 1, big, &c->ffn_dim, e) ||
        model_int(dir, m, "max_seq_len", 1, big, &c->max_seq_len, e) ||
        model_float(dir, m, "rope_theta", &c->rope_theta, e) ||
        model_float(dir, m, "norm_eps", &c->norm_eps, e))
        return QTX_ERR_INPUT;
    const cJSON *tie = cJSON_GetObjectItemCaseSensitive(m, "tie_embeddings");
    if (!cJSON_IsBool(tie))
        return qtx_fail(e, QTX_ERR_INPUT,
                        "checkpoint %s: manifest.json: model.tie_embeddings is missing or not "
                        "true/false; use a checkpoint saved by qtx train",
                        dir);
    c->tie_embeddings = cJSON_IsTrue(tie);
    /* model_int bounded both counts to >= 1 (the analyzer cannot see into ckpt_json_i64) */
    const int heads_fit = c->dim % c->n_heads == 0;     /* NOLINT(clang-analyzer-core.DivideZero) */
    const int kv_fit = c->n_heads % c->n_kv_heads == 0; /* NOLINT(clang-analyzer-core.*) */
    if (!heads_fit || !kv_fit)
        return qtx_fail(e, QTX_ERR_INPUT,
                        "checkpoint %s: manifest.json: model.dim %d must be a multiple of n_heads "
                        "%d, and n_heads of n_kv_heads %d",
                        dir, c->dim, c->n_heads, c->n_kv_heads);
    return 0;
}

static int check_model(const cJSON *meta, const qtx_model_config *c, const char *dir, qtx_err *e) {
    qtx_model_config s;
    int rc = qtx_ckpt_model_from_meta(meta, dir, &s, e);
    if (rc) return rc;
    const struct {
        const char *key;
        double saved, want;
    } keys[] = {{"vocab_size", s.vocab_size, c->vocab_size},
                {"dim", s.dim, c->dim},
                {"n_layers", s.n_layers, c->n_layers},
                {"n_heads", s.n_heads, c->n_heads},
                {"n_kv_heads", s.n_kv_heads, c->n_kv_heads},
                {"ffn_dim", s.ffn_dim, c->ffn_dim},
                {"rope_theta", s.rope_theta, c->rope_theta},
                {"norm_eps", s.norm_eps, c->norm_eps},
                {"tie_embeddings", s.tie_embeddings, c->tie_embeddings}};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) /* s: every field set above */
        if ((float)keys[i].saved != (float)keys[i].want)      /* NOLINT(clang-analyzer-core.*) */
            return qtx_fail(e, QTX_ERR_INPUT,
                            "checkpoint %s was saved from another model: model.%s is %g there "
                            "and %g in this config; resume with the model it was trained with, or "
                            "start a fresh train.out_dir",
                            dir, keys[i].key, keys[i].saved, keys[i].want);
    return QTX_OK;
}

static int get_int(const cJSON *o, const char *path1, const char *path2, double *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, path1);
    if (path2) v = cJSON_GetObjectItemCaseSensitive(v, path2);
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 9e15) return -1;
    *out = v->valuedouble;
    return 0;
}

static int load_rank(qtx_engine *eng, qtx_ckpt_reader *r, int64_t *bytes, qtx_err *e) {
    qtx_zero *z = &eng->zero;
    const qtx_param_layout *l = &eng->model.layout;
    int rc = QTX_OK;
    stager st = {&eng->model.be, NULL, 0};
    for (int i = 0; i < l->n_tensors && !rc; i++) {
        const qtx_tensor_desc *t = &l->tensors[i];
        int64_t block[4];
        tp_block(t, block);
        float *dst = eng->model.params + t->offset;
        rc = qtx_ckpt_read(r, "param", t->name, t->shape, block, 0, t->numel,
                           stage_at(&st, dst, t->numel), e);
        if (!rc) stage_in(&st, dst, t->numel);
        *bytes += t->numel * (int64_t)sizeof(float);
    }
    for (int i = 0; i < z->n_buckets && !rc; i++) {
        const qtx_bucket *b = &z->b[i];
        for (int k = l->units[i].t_begin; k < l->units[i].t_end && !rc; k++) {
            const qtx_tensor_desc *t = &l->tensors[k];
            const int64_t lo = t->offset > b->own_begin ? t->offset : b->own_begin;
            const int64_t hi =
                t->offset + t->numel < b->own_end ? t->offset + t->numel : b->own_end;
            if (lo >= hi) continue;
            int64_t block[4];
            tp_block(t, block);
            const int64_t pos = b->shard_pos + (lo - b->own_begin);
            rc = qtx_ckpt_read(r, "adam_m", t->name, t->shape, block, lo - t->offset,
                               hi - t->offset, stage_at(&st, z->m + pos, hi - lo), e);
            if (!rc) stage_in(&st, z->m + pos, hi - lo);
            if (!rc)
                rc = qtx_ckpt_read(r, "adam_v", t->name, t->shape, block, lo - t->offset,
                                   hi - t->offset, stage_at(&st, z->v + pos, hi - lo), e);
            if (!rc) stage_in(&st, z->v + pos, hi - lo);
            *bytes += 2 * (hi - lo) * (int64_t)sizeof(float);
        }
    }
    free(st.buf);
    return rc;
}

int qtx_ckpt_load(qtx_engine *eng, const char *dir, qtx_ckpt_resume *out, qtx_err *e) {
    memset(out, 0, sizeof *out);
    qtx_ckpt_reader *r = NULL;
    int rc = qtx_ckpt_open(&r, dir, e);
    const cJSON *meta = rc ? NULL : qtx_ckpt_meta(r);
    if (!rc) rc = check_model(meta, &eng->model.cfg, dir, e);
    double step = 0, skips = 0, epoch = 0, cursor = 0;
    if (!rc && (get_int(meta, "step", NULL, &step) || get_int(meta, "skips", NULL, &skips) ||
                get_int(meta, "loader", "epoch", &epoch) ||
                get_int(meta, "loader", "cursor", &cursor) || step > 2e9))
        rc = qtx_fail(e, QTX_ERR_INPUT,
                      "checkpoint %s: manifest.json lacks a valid step, skips or loader "
                      "{epoch, cursor}; it was not written by qtx train",
                      dir);
    if (!rc) rc = load_rank(eng, r, &out->bytes_read, e);
    if (!rc) {
        out->step = (int)step;
        out->skips = (int)skips;
        out->loader.epoch = (uint64_t)epoch;
        out->loader.cursor = (uint64_t)cursor;
        const cJSON *h = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(meta, "tokenizer"), "hash");
        if (cJSON_IsString(h))
            snprintf(out->tokenizer_hash, sizeof out->tokenizer_hash, "%s", h->valuestring);
        out->meta = cJSON_Duplicate(meta, 1);
    }
    if (r) qtx_ckpt_close(r);
    rc = qtx_comm_agree(eng->g->world, rc, e);
    if (rc && out->meta) {
        cJSON_Delete(out->meta);
        out->meta = NULL;
    }
    return rc;
}

int qtx_ckpt_read_full(const char *dir, const char *kind, const char *name, float **dst,
                       int64_t shape[2], qtx_err *e) {
    *dst = NULL;
    qtx_ckpt_reader *r;
    int rc = qtx_ckpt_open(&r, dir, e);
    if (rc) return rc;
    if (!qtx_ckpt_has(r, kind, name, shape)) {
        qtx_ckpt_close(r);
        return qtx_fail(e, QTX_ERR_INPUT, "checkpoint %s has no %s %s", dir, kind, name);
    }
    const int64_t block[4] = {0, 0, shape[0], shape[1]};
    *dst = qtx_malloc((size_t)(shape[0] * shape[1]) * sizeof(float));
    rc = qtx_ckpt_read(r, kind, name, shape, block, 0, shape[0] * shape[1], *dst, e);
    qtx_ckpt_close(r);
    if (rc) {
        free(*dst);
        *dst = NULL;
    }
    return rc;
}
