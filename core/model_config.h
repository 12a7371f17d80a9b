/* model_config.h: the hyperparameters that define a Llama-family model's shapes. */
#ifndef QTX_MODEL_CONFIG_H
#define QTX_MODEL_CONFIG_H

#include <stdint.h>

typedef struct qtx_model_config {
    int vocab_size;
    int dim;
    int n_layers;
    int n_heads;
    int n_kv_heads;
    int ffn_dim;
    int max_seq_len;
    float rope_theta;
    float norm_eps;
    int tie_embeddings; /* 1: the output head reuses token_embd */
} qtx_model_config;

/* Total parameter count of the unsharded model. */
int64_t qtx_model_n_params(const qtx_model_config *c);

/* Training FLOPs per token: 6N + 12 * n_layers * seq_len * dim (the PaLM convention, with N
 * counting every parameter but the input embedding when it is not tied to the head). */
double qtx_model_flops_per_token(const qtx_model_config *c, int seq_len);

#endif
