/* model_config.c: parameter and FLOP counts derived from the model config. */
#include "model_config.h"

int64_t qtx_model_n_params(const qtx_model_config *c) {
    int64_t d = c->dim, hd = c->dim / c->n_heads, kv = (int64_t)c->n_kv_heads * hd;
    int64_t per_layer =
        2 * d + d * d /* q */ + 2 * kv * d + d * d /* o */ + 3 * d * (int64_t)c->ffn_dim;
    int64_t embd = (int64_t)c->vocab_size * d;
    return embd + c->n_layers * per_layer + d + (c->tie_embeddings ? 0 : embd);
}

double qtx_model_flops_per_token(const qtx_model_config *c, int seq_len) {
    /* The embedding lookup does no FLOPs; a tied table still works as the head. */
    double n = (double)qtx_model_n_params(c);
    if (!c->tie_embeddings) n -= (double)c->vocab_size * c->dim;
    return 6.0 * n + 12.0 * c->n_layers * (double)seq_len * c->dim;
}
