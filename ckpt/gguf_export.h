/* gguf_export.h: a training checkpoint as a GGUF file llama.cpp runs (architecture "llama").
 *
 * Every parameter is gathered whole from the checkpoint (whatever layout saved it) and written
 * under llama.cpp's tensor names: token_embd.weight, blk.N.{attn_norm, attn_q, attn_k, attn_v,
 * attn_output, ffn_norm, ffn_gate, ffn_up, ffn_down}.weight, output_norm.weight and, for an
 * untied head, output.weight (a tied model has none: llama.cpp then uses token_embd). GGUF's
 * dimension order is reversed from row-major: a [rows, cols] weight has ne = {cols, rows}. Q
 * and K are not permuted: qtx rotates consecutive pairs (2i, 2i+1), which is llama.cpp's
 * "normal" RoPE, the one it uses for llama.
 *
 * Types: 1-D norm weights are always f32; 2-D weights take the chosen type (q8_0 and q4_0 only
 * when ne[0] is a multiple of 32, else f16, logged). The vocabulary comes from the
 * checkpoint's copy of tokenizer.json: tokens exactly as in its model.vocab (GPT-2 byte-to-
 * unicode form) ordered by id, added tokens as control tokens, merges "left right".
 */
#ifndef QTX_GGUF_EXPORT_H
#define QTX_GGUF_EXPORT_H

#include <stdint.h>

#include "check.h"
#include "quant.h"

typedef struct qtx_export_options {
    const char *ckpt;      /* anything qtx_ckpt_resolve accepts: a step dir, root or out_dir */
    const char *out;       /* the .gguf path */
    qtx_qtype quant;       /* type of the 2-D weights: f32, f16, q8_0 or q4_0 */
    int force;             /* replace an existing out */
    const char *name;      /* general.name; NULL: derived from the checkpoint's path */
    const char *tokenizer; /* tokenizer.json to use instead of the checkpoint's; may be NULL */
} qtx_export_options;

typedef struct qtx_export_stats {
    char dir[4096]; /* the step directory exported */
    int step;       /* its step, -1 when the manifest has none */
    int n_tensors;
    int n_by_type[4]; /* tensors written as f32, f16, q4_0, q8_0 */
    int64_t n_params;
    uint64_t bytes; /* of the file */
} qtx_export_stats;

/* The type --quant names ("f32", "f16", "q8_0", "q4_0"); -1 for anything else. */
int qtx_export_parse_quant(const char *s, qtx_qtype *out);

/* Writes o->out (atomically; an existing file only with force). Bad input (no checkpoint,
 * a manifest without a usable model, a missing tensor or tokenizer, an existing output) is
 * QTX_ERR_INPUT with one line; st may be NULL. */
int qtx_gguf_export(const qtx_export_options *o, qtx_export_stats *st, qtx_err *e);

#endif
