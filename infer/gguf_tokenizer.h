/* gguf_tokenizer.h: the byte-level BPE tokenizer a GGUF file carries (tokenizer.ggml.*),
 * rebuilt as this project's tokenizer so generation encodes prompts exactly as training did. */
#ifndef QTX_GGUF_TOKENIZER_H
#define QTX_GGUF_TOKENIZER_H

#include "check.h"
#include "gguf.h"
#include "tokenizer.h"

/* Needs tokenizer.ggml.model "gpt2", tokens, merges (token_type 3 marks control tokens). */
int qtx_gguf_tokenizer(const qtx_gguf *g, const char *path, qtx_tokenizer **out, qtx_err *e);

#endif
