/* infer_gguf.c: an inference model from a GGUF file: the llama metadata checked and turned
 * into a model config, the tensors found by name, the tokenizer read from the file. Apart from
 * infer_model.c so the forward pass builds without the tokenizer (the GPU tests, built with
 * nvcc alone, hold the CPU forward pass against the GPU's). */
#include <stdio.h>
#include <string.h>

#include "gguf.h"
#include "gguf_tokenizer.h"
#include "infer_model.h"

typedef struct gguf_src {
    const qtx_gguf *g;
    const char *path;
} gguf_src;

static int gguf_tensor(void *ctx, const char *name, int64_t rows, int64_t cols, qtx_qtensor *t,
                       qtx_err *e) {
    const gguf_src *src = ctx;
    const qtx_gguf *g = src->g;
    char full[96];
    snprintf(full, sizeof full, "%s.weight", name);
    const qtx_gguf_tensor *gt = qtx_gguf_find(g, full);
    if (!gt)
        return qtx_fail(e, QTX_ERR_INPUT, "%s: no tensor %s; is this a llama model?", src->path,
                        full);
    t->type = gt->type;
    t->data = gt->data;
    t->cols = gt->ne[0];
    t->rows = gt->n_dims > 1 ? gt->ne[1] : 1;
    if (gt->n_dims > 2)
        return qtx_fail(e, QTX_ERR_INPUT, "%s: tensor %s has %d dimensions, expected at most 2",
                        src->path, full, gt->n_dims);
    (void)rows;
    (void)cols;
    return QTX_OK;
}

static void gguf_free(void *g) {
    qtx_gguf_close(g);
}

int qtx_infer_load_gguf(qtx_infer_model *m, const char *path, qtx_gguf_load how, qtx_err *e) {
    qtx_gguf *g;
    int rc = qtx_gguf_open_with(&g, path, how, e);
    if (rc) return rc;
    const char *arch;
    size_t arch_len;
    if ((rc = qtx_gguf_get_str(g, "general.architecture", &arch, &arch_len, e))) goto fail;
    if (arch_len != 5 || memcmp(arch, "llama", 5)) {
        rc = qtx_fail(e, QTX_ERR_INPUT,
                      "%s: general.architecture is '%.*s'; qtx runs 'llama' models only", path,
                      (int)(arch_len < 64 ? arch_len : 64), arch);
        goto fail;
    }
    qtx_model_config c;
    memset(&c, 0, sizeof c);
    uint32_t u;
    const struct {
        const char *key;
        int *dst;
    } ints[] = {{"llama.embedding_length", &c.dim},
                {"llama.block_count", &c.n_layers},
                {"llama.attention.head_count", &c.n_heads},
                {"llama.attention.head_count_kv", &c.n_kv_heads},
                {"llama.feed_forward_length", &c.ffn_dim},
                {"llama.context_length", &c.max_seq_len}};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        if ((rc = qtx_gguf_get_u32(g, ints[i].key, &u, e))) goto fail;
        if (u == 0 || u > (1u << 24)) {
            rc = qtx_fail(e, QTX_ERR_INPUT, "%s: %s = %u is out of range", path, ints[i].key, u);
            goto fail;
        }
        *ints[i].dst = (int)u;
    }
    if ((rc = qtx_gguf_get_f32(g, "llama.rope.freq_base", &c.rope_theta, e))) goto fail;
    if ((rc = qtx_gguf_get_f32(g, "llama.attention.layer_norm_rms_epsilon", &c.norm_eps, e)))
        goto fail;
    if (c.dim % c.n_heads || c.n_heads % c.n_kv_heads || (c.dim / c.n_heads) % 2) {
        rc = qtx_fail(e, QTX_ERR_INPUT,
                      "%s: inconsistent attention shape: embedding %d, %d heads, %d kv heads", path,
                      c.dim, c.n_heads, c.n_kv_heads);
        goto fail;
    }
    const qtx_gguf_tensor *emb = qtx_gguf_find(g, "token_embd.weight");
    if (!emb || emb->n_dims != 2) {
        rc = qtx_fail(e, QTX_ERR_INPUT, "%s: no 2-D tensor token_embd.weight", path);
        goto fail;
    }
    c.vocab_size = (int)emb->ne[1];
    if (qtx_gguf_has(g, "tokenizer.ggml.tokens")) {
        int et;
        uint64_t n;
        if ((rc = qtx_gguf_get_arr(g, "tokenizer.ggml.tokens", &et, &n, e))) goto fail;
        if (n != (uint64_t)c.vocab_size) {
            rc = qtx_fail(e, QTX_ERR_INPUT,
                          "%s: the tokenizer has %llu tokens but token_embd.weight has %d rows; "
                          "the file is inconsistent",
                          path, (unsigned long long)n, c.vocab_size);
            goto fail;
        }
    }
    c.tie_embeddings = qtx_gguf_find(g, "output.weight") == NULL;
    qtx_tokenizer *tok = NULL;
    if (qtx_gguf_has(g, "tokenizer.ggml.model") && (rc = qtx_gguf_tokenizer(g, path, &tok, e)))
        goto fail;
    gguf_src src = {g, path};
    rc = qtx_infer_build(m, &c, gguf_tensor, &src, g, gguf_free, path, e);
    if (rc) {
        if (tok) qtx_tokenizer_free(tok);
        return rc;
    }
    m->tok = tok;
    m->free_tok = qtx_tokenizer_free;
    m->weights_own = how == QTX_GGUF_COPY;
    const char *h;
    size_t hl;
    if (qtx_gguf_has(g, "qtx.tokenizer.sha256") &&
        qtx_gguf_get_str(g, "qtx.tokenizer.sha256", &h, &hl, NULL) == QTX_OK &&
        hl < sizeof m->tokenizer_hash) {
        memcpy(m->tokenizer_hash, h, hl);
        m->tokenizer_hash[hl] = '\0';
    }
    return QTX_OK;
fail:
    qtx_gguf_close(g);
    return rc;
}
