/* ckpt_infer.c: gathering a checkpoint into an f32 inference model. */
#include "ckpt_infer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt_store.h"
#include "ckpt_train.h"

/* The gathered tensors, freed with the model. */
typedef struct gathered {
    int n, cap;
    float **bufs;
    char dir[4096];
} gathered;

static void gathered_free(void *p) {
    gathered *g = p;
    for (int i = 0; i < g->n; i++) free(g->bufs[i]);
    free(g->bufs);
    free(g);
}

static int ckpt_tensor(void *ctx, const char *name, int64_t rows, int64_t cols, qtx_qtensor *t,
                       qtx_err *e) {
    gathered *g = ctx;
    float *buf;
    int64_t shape[2];
    int rc = qtx_ckpt_read_full(g->dir, "param", name, &buf, shape, e);
    if (rc) return rc;
    if (g->n == g->cap)
        g->bufs = qtx_realloc(g->bufs, (size_t)(g->cap = 2 * g->cap + 16) * sizeof *g->bufs);
    g->bufs[g->n++] = buf;
    t->type = QTX_Q_F32;
    t->data = buf;
    /* 1-D tensors are [C, 1] in checkpoints and [1, C] as inference rows */
    t->rows = shape[1] == 1 && rows == 1 ? 1 : shape[0];
    t->cols = shape[1] == 1 && rows == 1 ? shape[0] : shape[1];
    (void)cols;
    return QTX_OK;
}

static int get_num(const cJSON *o, const char *key, double *v) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(x)) return -1;
    *v = x->valuedouble;
    return 0;
}

int qtx_ckpt_model_config(const char *step_dir, qtx_model_config *c, qtx_err *e) {
    qtx_ckpt_reader *r;
    int rc = qtx_ckpt_open(&r, step_dir, e);
    if (rc) return rc;
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(qtx_ckpt_meta(r), "model");
    double v[9];
    const char *keys[] = {"vocab_size", "dim",         "n_layers",   "n_heads", "n_kv_heads",
                          "ffn_dim",    "max_seq_len", "rope_theta", "norm_eps"};
    for (int i = 0; i < 9 && !rc; i++)
        if (get_num(m, keys[i], &v[i]) || v[i] <= 0 || v[i] > 1e9)
            rc = qtx_fail(e, QTX_ERR_INPUT,
                          "checkpoint %s: manifest.json has no valid model.%s; it was not "
                          "written by qtx train",
                          step_dir, keys[i]);
    if (!rc) {
        memset(c, 0, sizeof *c);
        c->vocab_size = (int)v[0];
        c->dim = (int)v[1];
        c->n_layers = (int)v[2];
        c->n_heads = (int)v[3];
        c->n_kv_heads = (int)v[4];
        c->ffn_dim = (int)v[5];
        c->max_seq_len = (int)v[6];
        c->rope_theta = (float)v[7];
        c->norm_eps = (float)v[8];
        c->tie_embeddings = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(m, "tie_embeddings"));
    }
    qtx_ckpt_close(r);
    return rc;
}

int qtx_infer_load_ckpt(qtx_infer_model *m, const char *path, qtx_err *e) {
    gathered *g = qtx_calloc(1, sizeof *g);
    int rc = qtx_ckpt_resolve(path, NULL, g->dir, sizeof g->dir, e);
    qtx_model_config c;
    if (!rc) rc = qtx_ckpt_model_config(g->dir, &c, e);
    if (rc) {
        gathered_free(g);
        return rc;
    }
    char tok_path[4200];
    snprintf(tok_path, sizeof tok_path, "%s/tokenizer.json", g->dir);
    qtx_tokenizer *tok = NULL;
    FILE *f = fopen(tok_path, "rb");
    if (f) {
        fclose(f);
        if ((rc = qtx_tokenizer_load(tok_path, &tok, e))) {
            gathered_free(g);
            return rc;
        }
    }
    rc = qtx_infer_build(m, &c, ckpt_tensor, g, g, gathered_free, g->dir, e);
    if (rc) {
        if (tok) qtx_tokenizer_free(tok);
        return rc;
    }
    m->tok = tok;
    if (tok) snprintf(m->tokenizer_hash, sizeof m->tokenizer_hash, "%s", qtx_tokenizer_hash(tok));
    return QTX_OK;
}
