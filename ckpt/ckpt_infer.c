/* ckpt_infer.c: gathering a checkpoint into an f32 inference model. */
#include "ckpt_infer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ckpt_store.h"
#include "ckpt_train.h"

/* The gathered tensors, freed with the model; the reader is open only while building. */
typedef struct gathered {
    int n, cap;
    float **bufs;
    qtx_ckpt_reader *r;
    char dir[4096];
} gathered;

static void gathered_free(void *p) {
    gathered *g = p;
    for (int i = 0; i < g->n; i++) free(g->bufs[i]);
    free(g->bufs);
    if (g->r) qtx_ckpt_close(g->r);
    free(g);
}

/* One tensor gathered whole through the checkpoint opened once for the whole model. */
static int ckpt_tensor(void *ctx, const char *name, int64_t rows, int64_t cols, qtx_qtensor *t,
                       qtx_err *e) {
    gathered *g = ctx;
    int64_t shape[2];
    if (!qtx_ckpt_has(g->r, "param", name, shape))
        return qtx_fail(e, QTX_ERR_INPUT, "checkpoint %s has no param %s", g->dir, name);
    const int64_t block[4] = {0, 0, shape[0], shape[1]};
    float *buf = qtx_malloc((size_t)(shape[0] * shape[1]) * sizeof(float));
    int rc = qtx_ckpt_read(g->r, "param", name, shape, block, 0, shape[0] * shape[1], buf, e);
    if (rc) {
        free(buf);
        return rc;
    }
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

int qtx_infer_load_ckpt(qtx_infer_model *m, const char *path, qtx_err *e) {
    gathered *g = qtx_calloc(1, sizeof *g);
    qtx_model_config c;
    int rc = qtx_ckpt_resolve(path, NULL, g->dir, sizeof g->dir, e);
    if (!rc) rc = qtx_ckpt_open(&g->r, g->dir, e);
    if (!rc) rc = qtx_ckpt_model_from_meta(qtx_ckpt_meta(g->r), g->dir, &c, e);
    qtx_tokenizer *tok = NULL;
    char tok_path[4200];
    snprintf(tok_path, sizeof tok_path, "%s/tokenizer.json", g->dir);
    if (!rc && access(tok_path, R_OK) == 0) rc = qtx_tokenizer_load(tok_path, &tok, e);
    if (rc) {
        gathered_free(g);
        return rc;
    }
    /* On failure the build frees g (the model's owner). */
    if ((rc = qtx_infer_build(m, &c, ckpt_tensor, g, g, gathered_free, g->dir, e))) {
        if (tok) qtx_tokenizer_free(tok);
        return rc;
    }
    qtx_ckpt_close(g->r); /* every tensor is gathered: the mapping is no longer needed */
    g->r = NULL;
    m->tok = tok;
    m->free_tok = qtx_tokenizer_free;
    if (tok) snprintf(m->tokenizer_hash, sizeof m->tokenizer_hash, "%s", qtx_tokenizer_hash(tok));
    return QTX_OK;
}
